//! The loop: one beat per heartbeat interval until shutdown, each a straight line.
//!
//! 1. **Gather** the inputs: the heartbeat (a stopped app gets none: its size is read first,
//!    and it is probed only if it runs again), the log drain's router window, the planned
//!    downtime window in force (the downtime file and the heartbeat's header, read into the
//!    [`Calendar`]), the traffic, and the size: the last size known while it is recent, read
//!    from the platform once it is [`crate::budget::REFRESH_EVERY_BEATS`] old (within the API
//!    key's budget, [`Pace`]), so that a steady beat makes one request, the heartbeat. With the
//!    queue policy, the job queues instead of the heartbeat, stopped or not (a job waiting is
//!    what starts a stopped worker type), each reading bounded by its timeout.
//! 2. **Step**: [`decision::step`], once. Should it, at a size only known, want a write or
//!    tell the size, or should the bounds have moved, the size is read first; only if the
//!    platform says it moved (someone scaled by hand) is the step taken again, from the same
//!    state, at the size read. No write ever goes out on a size that was not just read.
//! 3. **Act**: the scale, if any, then [`State::acted`] with what came of it (or of a failed
//!    read): the engine's one feedback.
//! 4. **Tell and record**: the beat's notices, worded by [`crate::notices`], sent once; the
//!    metrics, the telemetry and the `with_beats` channel.
//!
//! It never decides anything itself. Shutdown is a [`CancellationToken`] checked while waiting
//! and probing, never during a platform call, so a scale is never cut in half; the scaler holds
//! the same token and, once it is cancelled, starts no retry and no wait, so a call during a
//! platform outage ends in time and is reported like any failed call. Leadership is looked at
//! once a beat, and confirmed with the lock before every write: a standby
//! ([`Worker::with_leadership`]) keeps heartbeating and counting, but makes no API call and
//! tells nobody. When the platform refuses a call (401, 403, 404: a setting is wrong), platform
//! calls pause for a growing time while heartbeats go on. The shutdown hook is called before
//! every scale to 0.

mod downtime;
mod platform;
mod registry;

pub use crate::clock::{system_clock, tokio_clock, Clock};
pub use crate::telemetry::Beat;
pub use downtime::read_downtime_file;
pub use platform::{refusal_pause, Pace, MAX_REFUSAL_PAUSE};
pub use registry::{notifiers_for, scaler_for, send_test_notifications, shutdown_hook_for};

use crate::decision::{
    self, Acted, Bounds, Config, HeartbeatReading, Inputs, Observation, Output, QueueSignal, State,
};
use crate::downtime::Calendar;
use crate::drain::{Drain, DrainQueue};
use crate::metrics::WorkerMetrics;
use crate::notices;
use crate::router_log::RouterStats;
use crate::settings::{AppSettings, QueueFrom};
use crate::telemetry::Telemetry;
use crate::traffic::TrafficMeter;
use autoscalebot_backends::file_watch::{FileWatch, Watched};
use autoscalebot_backends::leader::Leadership;
use autoscalebot_backends::notify::{Dispatcher, Event, Notifier, TestNotifier};
use autoscalebot_backends::probe::{Heartbeat as HeartbeatProbe, Probe, ProbeOutcome};
use autoscalebot_backends::queue::QueueSource;
use autoscalebot_backends::scaler::Scaler;
use autoscalebot_backends::shutdown_hook::ShutdownHook;
use chrono::{DateTime, Utc};
use platform::{Applied, Refusal, Size};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// One app's worker: its settings, its engine state and its edges.
pub struct Worker {
    /// Shared with the telemetry (the server shows them): one copy per app.
    pub settings: Arc<AppSettings>,
    /// The engine's settings, taken from `settings` once.
    config: Config,
    pub state: State,
    probe: Arc<dyn Probe>,
    scaler: Arc<dyn Scaler>,
    dispatcher: Dispatcher,
    clock: Clock,
    dry_run: bool,
    /// The log drain's router window (the server fills it through the telemetry).
    drain: Drain,
    /// Real traffic, when something measures it (see [`Worker::with_traffic`]).
    traffic: Option<Arc<TrafficMeter>>,
    shutdown_hook: Option<ShutdownHook>,
    /// The last quantity read or set was 0: the next beat reads instead of probing.
    stopped: bool,
    telemetry: Telemetry,
    /// Every planned downtime window known, from each source.
    calendar: Calendar,
    /// The last error reading the downtime file, so that it is logged once, not every beat.
    downtime_file_error: Option<String>,
    /// Tells when the downtime file may have changed; shared by the apps of a worker
    /// ([`Worker::with_file_watch`]), else made at the first beat.
    file_watch: Option<FileWatch>,
    /// The downtime file as watched, from the first beat on.
    downtime_watched: Option<Watched>,
    refusal: Option<Refusal>,
    beats: Option<mpsc::UnboundedSender<Beat>>,
    /// Whether this copy of the worker may scale and notify now.
    leadership: Leadership,
    /// The API key's budget and the pace of re-reads; `None`: no budget to spend from.
    pace: Option<Pace>,
    /// The last read or write failed: the next beat reads rather than trust a size known.
    call_failed: bool,
    /// The bounds in force when the size was last read: when they move, a size only known
    /// is read fresh.
    bounds_read: Option<Bounds>,
    /// How long after the start the first heartbeat comes.
    first_beat_after: Duration,
    /// Since when the policy holds for want of a signal (logged once when it starts and once
    /// when it ends).
    signal_lost_since: Option<DateTime<Utc>>,
    /// Where the jobs wait, with the queue policy; `Err`: the source could not be built (every
    /// reading fails with that, so the size holds and it is told).
    queue: Option<Result<Arc<dyn QueueSource>, String>>,
    /// The queue source is failing (logged once when it starts and once when it ends).
    queue_failing: bool,
}

/// Where the heartbeat goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatConnection {
    /// On a kept connection of its own: the least a beat can cost. For a worker of one app.
    Own,
    /// Through the shared client's pool, which keeps one connection per host, not per app:
    /// for a worker of many apps, whose own connections would each hold their buffers.
    Pooled,
}

/// What one beat gathered.
struct Gathered {
    inputs: Inputs,
    size: Size,
    /// The app was believed stopped, so it was not probed.
    stopped: bool,
    /// The router window, when the drain is on (recorded whether or not it decides).
    router: Option<RouterStats>,
    now: DateTime<Utc>,
}

/// What acting on one step did.
struct Done {
    /// What to feed back to the engine.
    acted: Option<Acted>,
    scaled_to: Option<u32>,
    error: Option<String>,
    /// The lock said, before a write, that this copy no longer leads.
    lost_lead: bool,
}

/// The loop reads the probe's outcome into the engine's terms (the downtime header goes to
/// the calendar, not to the engine).
impl From<&ProbeOutcome> for HeartbeatReading {
    fn from(outcome: &ProbeOutcome) -> Self {
        match outcome {
            ProbeOutcome::Response {
                status, elapsed, ..
            } => HeartbeatReading::Answered {
                status: *status,
                elapsed: *elapsed,
            },
            ProbeOutcome::Timeout { elapsed } => HeartbeatReading::TimedOut { after: *elapsed },
            ProbeOutcome::ConnectError { message, refused } => HeartbeatReading::Unreachable {
                error: message.clone(),
                refused: *refused,
            },
        }
    }
}

impl Worker {
    pub fn new(
        settings: AppSettings,
        probe: Arc<dyn Probe>,
        scaler: Arc<dyn Scaler>,
        notifiers: Vec<Arc<dyn Notifier>>,
        clock: Clock,
        dry_run: bool,
    ) -> Self {
        let settings = Arc::new(settings);
        let dispatcher = Dispatcher::start(notifiers);
        let metrics = WorkerMetrics::new().app(
            &settings.app_name,
            &settings.process_type,
            dispatcher.counts(),
        );
        let drain = Drain::new(settings.drain.router_window);
        let telemetry = Telemetry::new(settings.clone(), clock.clone(), metrics, drain.clone());
        let mut calendar = Calendar::new(
            settings.thresholds.time_zone,
            settings.downtime.windows.clone(),
        );
        calendar.already_reported(&settings.downtime.warnings);
        let config = settings.engine_config();
        Worker {
            calendar,
            downtime_file_error: None,
            file_watch: None,
            downtime_watched: None,
            settings,
            state: State::new(&config),
            config,
            drain,
            probe,
            scaler,
            dispatcher,
            clock,
            dry_run,
            traffic: None,
            shutdown_hook: None,
            stopped: false,
            telemetry,
            refusal: None,
            beats: None,
            leadership: Leadership::always(),
            pace: None,
            call_failed: false,
            bounds_read: None,
            first_beat_after: Duration::ZERO,
            signal_lost_since: None,
            queue: None,
            queue_failing: false,
        }
    }

    /// Reads the job queues from `source` every beat (the queue policy decides on them).
    pub fn with_queue(mut self, source: Result<Arc<dyn QueueSource>, String>) -> Self {
        self.queue = Some(source);
        self
    }

    /// Counts in the worker's registry, with the other apps, instead of one of its own (the
    /// worker's one server shows every app's metrics).
    pub fn with_metrics(mut self, worker: &Arc<WorkerMetrics>) -> Self {
        self.telemetry.metrics = worker.app(
            &self.settings.app_name,
            &self.settings.process_type,
            self.dispatcher.counts(),
        );
        self
    }

    /// Watches the downtime file with `watch`, which the other apps of the worker share.
    pub fn with_file_watch(mut self, watch: FileWatch) -> Self {
        self.file_watch = Some(watch);
        self
    }

    /// Scales and notifies only while `leadership` says this copy leads.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    /// Spends formation reads and writes from a budget shared by the apps of one API key.
    pub fn with_budget(mut self, pace: Pace) -> Self {
        self.pace = Some(pace);
        self
    }

    /// Reads and writes through this scaler (one shared by the process types of one app).
    pub fn with_scaler(mut self, scaler: Arc<dyn Scaler>) -> Self {
        self.scaler = scaler;
        self
    }

    /// Waits this long before the first heartbeat, to spread many apps over the interval.
    pub fn with_first_beat_after(mut self, offset: Duration) -> Self {
        self.first_beat_after = offset;
        self
    }

    /// Sends every [`Beat`] to `beats` from now on (the demo's live timeline uses it).
    pub fn with_beats(mut self, beats: mpsc::UnboundedSender<Beat>) -> Self {
        self.beats = Some(beats);
        self
    }

    /// Feeds the engine real traffic from `meter` (an in-process activator, the log drain), so
    /// that `idle_after` can stop the app. Without it, `idle_after` never fires in the loop.
    pub fn with_traffic(mut self, meter: Arc<TrafficMeter>) -> Self {
        self.traffic = Some(meter);
        self
    }

    /// Calls `hook` before every scale to 0.
    pub fn with_shutdown_hook(mut self, hook: Option<ShutdownHook>) -> Self {
        self.shutdown_hook = hook;
        self
    }

    /// What the HTTP server shows and fills: metrics, recent beats, the log drain.
    pub fn telemetry(&self) -> Telemetry {
        self.telemetry.clone()
    }

    /// Builds the worker the settings describe: heartbeat probe, Heroku scaler, and the named
    /// notification backends. `test_notifier` receives events when "test" is named. Give the
    /// scaler the token [`Worker::run`] gets, so it stops retrying once shutdown begins.
    pub fn from_settings(
        settings: AppSettings,
        client: reqwest::Client,
        dry_run: bool,
        test_notifier: Option<TestNotifier>,
        connection: HeartbeatConnection,
        shutdown: &CancellationToken,
    ) -> Self {
        let downtime_header = settings
            .downtime
            .header
            .as_ref()
            .filter(|_| !settings.downtime.disable)
            .and_then(|name| reqwest::header::HeaderName::from_bytes(name.as_bytes()).ok());
        let probe = HeartbeatProbe::new(
            client.clone(),
            settings.heartbeat.url.clone(),
            settings.heartbeat.timeout,
        )
        .with_downtime_header(downtime_header);
        let probe = Arc::new(match connection {
            HeartbeatConnection::Own => probe.with_own_connection(),
            HeartbeatConnection::Pooled => probe,
        });
        let scaler = scaler_for(&settings, client.clone(), shutdown);
        let hook = shutdown_hook_for(&settings, client);
        let notifiers = notifiers_for(&settings, test_notifier);
        let drain_on = settings.drain.log_drain_password.is_some();
        let queue = settings.queue.as_ref().map(|queue| queue.source.clone());
        let mut worker = Worker::new(settings, probe, scaler, notifiers, system_clock(), dry_run)
            .with_shutdown_hook(hook);
        let source: Option<Result<Arc<dyn QueueSource>, String>> = match queue {
            Some(QueueFrom::Url(config)) => Some(autoscalebot_backends::queue::build(&config)),
            Some(QueueFrom::Drain { depth, latency }) => Some(Ok(Arc::new(DrainQueue::new(
                worker.drain.samples().clone(),
                depth,
                latency,
            )))),
            None => None,
        };
        if let Some(source) = source {
            worker = worker.with_queue(source);
        }
        // With a log drain, router requests are the app's traffic, so `idle_after` works.
        if drain_on {
            let meter = worker.drain.traffic();
            worker.with_traffic(meter)
        } else {
            worker
        }
    }

    /// Runs heartbeats every `heartbeat_interval_in_seconds` until `shutdown`, then delivers
    /// what notifications it can within a few seconds.
    pub fn run(self, shutdown: CancellationToken) -> impl std::future::Future<Output = ()> + Send {
        // On the heap: an async fn's state keeps its by-value arguments twice (as arguments
        // and as locals), and a worker of thousands of apps holds thousands of these tasks.
        Box::new(self).run_boxed(shutdown)
    }

    async fn run_boxed(mut self: Box<Self>, shutdown: CancellationToken) {
        if let Some(queue) = &self.queue {
            match queue {
                Ok(source) => tracing::info!(
                    app = %self.settings.app_name,
                    process_type = %self.settings.process_type,
                    queue = %source.describe(),
                    "The queue policy reads the job queues: no heartbeat is sent."
                ),
                Err(error) => tracing::error!(
                    app = %self.settings.app_name,
                    %error,
                    "The job queue cannot be read: the size holds until the settings are fixed."
                ),
            }
        }
        tracing::info!(
            app = %self.settings.app_name,
            scales = %self.scaler.describe(),
            heartbeat = %autoscalebot_backends::shown_url(&self.settings.heartbeat.url),
            signal = self.settings.drain.signal.as_str(),
            interval = ?self.settings.heartbeat.interval,
            dry_run = self.dry_run,
            "Worker started."
        );
        if self.settings.thresholds.idle_after.is_some() && self.traffic.is_none() {
            tracing::warn!(
                app = %self.settings.app_name,
                "idle_after is set but this worker measures no traffic, so it will not stop the app for idleness; `autoscalebot activate` does, in front of the app."
            );
        }
        self.log_downtime_sources();
        let mut ticker = tokio::time::interval_at(
            Instant::now() + self.first_beat_after,
            self.settings.heartbeat.interval,
        );
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.telemetry.stamp_alive();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            // Boxed while it runs, so that an idle app's task holds only the worker, not room
            // for its largest beat (thousands of apps wait at once).
            if Box::pin(self.beat_until(&shutdown)).await.is_none() {
                break;
            }
        }
        tracing::info!(app = %self.settings.app_name, "Worker stopping.");
        Box::pin(self.dispatcher.drain(std::time::Duration::from_secs(5))).await;
    }

    /// One whole beat (see [`Worker::run`]), never cut short.
    pub async fn beat(&mut self) -> Beat {
        let never = CancellationToken::new();
        self.beat_until(&never)
            .await
            .expect("a beat that is never cancelled ends")
    }

    /// One beat, straight: gather, step, act, feed back, tell and record. `None` when
    /// `shutdown` came while the heartbeat was out: only the heartbeat is cancellable, never a
    /// platform call (each has its own timeout).
    async fn beat_until(&mut self, shutdown: &CancellationToken) -> Option<Beat> {
        // Looked at once a beat; a write confirms it with the lock itself.
        let leader = self.leadership.is_leader();
        let mut gathered = self.gather(leader, shutdown).await?;
        let output = self.step(&mut gathered).await;
        let done = self.act(&gathered.size, &output).await;
        let events = self.feed_back(&output, done.acted.as_ref(), gathered.now);
        // Only the leader tells: a standby's news would be told twice.
        if leader && !done.lost_lead {
            for event in &events {
                self.dispatcher.dispatch(event);
            }
            self.telemetry.record_notifications(&events);
        }
        Some(self.record(gathered, output, done))
    }

    /// The beat's inputs: the heartbeat and the router window (for an app that runs), the
    /// planned downtime window in force, the traffic, and the size. A stopped app's size is read
    /// first, and the app is probed only if it runs again.
    async fn gather(&mut self, leader: bool, shutdown: &CancellationToken) -> Option<Gathered> {
        let mut size = None;
        if self.stopped {
            let read = self.size(leader).await;
            self.saw_size(&read);
            size = Some(read);
        }
        let stopped = self.stopped;
        let mut outcome = None;
        let mut router = None;
        let queue = match &self.queue {
            Some(source) => {
                let read = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return None,
                    read = Self::read_queue(source, (self.clock)()) => read,
                };
                self.log_queue(&read);
                if let Ok(signal) = &read {
                    self.telemetry.metrics.queue(signal.jobs, signal.oldest_age);
                }
                Some(read)
            }
            None => None,
        };
        if !stopped {
            if self.settings.drain.signal.uses_heartbeat() && self.queue.is_none() {
                let probed = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return None,
                    outcome = self.probe.probe() => outcome,
                };
                let alone = self
                    .state
                    .classify_heartbeat(&self.config, &HeartbeatReading::from(&probed));
                self.telemetry.metrics.heartbeat(&probed, alone.observation);
                outcome = Some(probed);
            }
            // With the drain on, the window is read every beat (metrics, status page) even when
            // only the heartbeat decides.
            if self.settings.drain.log_drain_password.is_some()
                || !self.settings.drain.signal.uses_heartbeat()
            {
                let stats = self.drain.stats((self.clock)());
                self.telemetry.metrics.router_window(&stats);
                router = Some(stats);
            }
            self.refresh_downtime(outcome.as_ref()).await;
        }
        let size = match size {
            Some(size) => size,
            None => {
                let read = self.size(leader).await;
                self.saw_size(&read);
                read
            }
        };
        let now = (self.clock)();
        let inputs = Inputs {
            heartbeat: outcome.as_ref().map(HeartbeatReading::from),
            router: router
                .clone()
                .filter(|_| self.settings.drain.signal.uses_router()),
            size: size.quantity(),
            // A stopped app's beat reads no downtime source (the header comes with a
            // heartbeat): the window last known stands.
            downtime: if stopped {
                self.state.downtime().cloned()
            } else {
                self.calendar.active(now).cloned()
            },
            traffic: self.traffic.as_ref().map(|meter| meter.snapshot(now)),
            queue,
        };
        Some(Gathered {
            inputs,
            size,
            stopped,
            router,
            now,
        })
    }

    /// One reading of the job queues, in the engine's terms.
    async fn read_queue(
        source: &Result<Arc<dyn QueueSource>, String>,
        now: DateTime<Utc>,
    ) -> Result<QueueSignal, String> {
        let source = source.as_ref().map_err(Clone::clone)?;
        let reading = source.read(now).await?;
        Ok(QueueSignal {
            jobs: reading.jobs,
            oldest_age: reading.oldest_age,
        })
    }

    /// Logs once when the queue source starts failing, and once when it answers again.
    fn log_queue(&mut self, read: &Result<QueueSignal, String>) {
        let app = &self.settings.app_name;
        match (read, self.queue_failing) {
            (Err(error), false) => {
                tracing::warn!(%app, %error, "Could not read the job queues: the size holds until they answer.");
                self.queue_failing = true;
            }
            (Ok(_), true) => {
                tracing::info!(%app, "The job queues answer again.");
                self.queue_failing = false;
            }
            (Ok(signal), false) => {
                tracing::debug!(%app, jobs = signal.jobs, oldest_age = ?signal.oldest_age, "Job queues read.");
            }
            (Err(_), true) => {}
        }
    }

    /// The engine's step. When, at a size only known, it wants a write or tells the size
    /// ([`Output::rests_on_the_size`]), or the bounds moved since the last read, the size is
    /// read first; only if the platform says it moved is the step taken again, from the same
    /// state, at the size read.
    async fn step(&mut self, gathered: &mut Gathered) -> Output {
        let now = gathered.now;
        let (mut next, mut output) =
            decision::step(&self.state, &self.config, &gathered.inputs, now);
        if let Size::Known(known) = gathered.size {
            if output.rests_on_the_size() || self.bounds_read != Some(output.bounds) {
                gathered.size = self.confirm_size().await;
                self.saw_size(&gathered.size);
                if gathered.size.quantity() != Some(known) {
                    gathered.inputs.size = gathered.size.quantity();
                    (next, output) =
                        decision::step(&self.state, &self.config, &gathered.inputs, now);
                }
            }
        }
        if let Size::Read(_) = gathered.size {
            self.bounds_read = Some(output.bounds);
        }
        self.log_step(&next, &output);
        self.log_signal(&output);
        self.state = next;
        output
    }

    /// Acts on the step's output: makes its scale, if any, or reports the failed read.
    async fn act(&mut self, size: &Size, output: &Output) -> Done {
        let mut done = Done {
            acted: None,
            scaled_to: None,
            error: size.skipped_why(),
            lost_lead: false,
        };
        let current = match size {
            Size::Failed(failure) => {
                let message = format!("reading the formation: {failure}");
                done.error = Some(message.clone());
                done.acted =
                    Some(self.failed(failure, None, message, "Could not read the formation"));
                return done;
            }
            Size::Skipped(_) => return done,
            Size::Read(current) | Size::Known(current) => *current,
        };
        self.platform_accepts();
        self.telemetry.metrics.dynos(current);
        self.telemetry
            .metrics
            .bounds(output.bounds.min, output.bounds.max);
        let Some(scale) = output.scale else {
            return done;
        };
        match self.apply(scale).await {
            Applied::Done(quantity) => {
                done.scaled_to = Some(quantity);
                // A dry run changes nothing: the app still runs and is still probed.
                self.stopped = quantity == 0 && !self.dry_run;
                if !self.dry_run {
                    self.telemetry.metrics.scaled(scale.from, quantity);
                }
                done.acted = Some(Acted::Scaled {
                    scale,
                    dry_run: self.dry_run,
                });
            }
            Applied::NotLeader => done.lost_lead = true,
            Applied::NoBudget => {}
            Applied::Failed(failure) => {
                let message = format!("setting the quantity to {}: {failure}", scale.to);
                done.error = Some(message.clone());
                done.acted = Some(self.failed(&failure, Some(scale), message, "Scale failed"));
            }
        }
        done
    }

    /// Feeds what came of the act back to the engine, and words the beat's notices: those of
    /// the step, then those of the feedback. Each carries the time the beat measured.
    fn feed_back(
        &mut self,
        output: &Output,
        acted: Option<&Acted>,
        now: DateTime<Utc>,
    ) -> Vec<Event> {
        let app = &self.settings.app_name;
        let response_time_ms = output.observed.response_time_ms;
        let mut events = notices::events(app, now, &output.notices, response_time_ms);
        if let Some(acted) = acted {
            let at = (self.clock)();
            let told = self.state.acted(&self.config, acted, at);
            events.extend(notices::events(app, at, &told, response_time_ms));
        }
        notices::name_heartbeat_url(&mut events, &self.settings.heartbeat.url);
        events
    }

    /// Records the beat: the telemetry (status page, liveness) and the `with_beats` channel.
    fn record(&self, gathered: Gathered, output: Output, done: Done) -> Beat {
        let quantity = gathered.size.quantity();
        let beat = Beat {
            at: gathered.now,
            heartbeat: output.observed.clone(),
            stopped: gathered.stopped,
            quantity,
            output: quantity.is_some().then_some(output),
            scaled_to: done.scaled_to,
            error: done.error,
            router: gathered.router,
            queue: gathered.inputs.queue,
        };
        self.telemetry.record_beat(&beat);
        self.telemetry.stamp_alive();
        if let Some(beats) = &self.beats {
            let _ = beats.send(beat.clone());
        }
        beat
    }

    /// Follows what a size says about the app: at 0 it is stopped (the next beats only read),
    /// above 0 it runs (and is probed).
    fn saw_size(&mut self, size: &Size) {
        match size.quantity() {
            Some(0) => self.stopped = true,
            Some(quantity) if self.stopped => {
                tracing::info!(app = %self.settings.app_name, quantity, "The app runs again; heartbeats resume.");
                self.stopped = false;
            }
            _ => {}
        }
    }

    /// Logs what the beat saw and what the step made of the downtime and the cool-offs.
    fn log_step(&self, next: &State, output: &Output) {
        let app = &self.settings.app_name;
        let heartbeat = &output.observed;
        if let Observation::Misconfigured { status } = heartbeat.observation {
            let url = autoscalebot_backends::shown_url(&self.settings.heartbeat.url);
            match status {
                Some(status) => tracing::warn!(
                    %app, status, %url,
                    "The heartbeat URL answered {status}: check heartbeat_url and app_url. A 4xx never adds dynos."
                ),
                None => tracing::warn!(
                    %app, %url,
                    "The heartbeat URL refused the connection, and the app has not answered since the worker started: check heartbeat_url and app_url. This never adds dynos."
                ),
            }
        } else {
            tracing::debug!(%app, heartbeat = %notices::summary(heartbeat), observation = ?heartbeat.observation, "Heartbeat.");
        }
        match (next.downtime(), self.state.downtime().is_some()) {
            (Some(window), false) => tracing::info!(
                %app, window = %window.local_span(self.settings.thresholds.time_zone), source = %window.source,
                "Planned downtime started: fails are not counted and the worker does not scale up."
            ),
            (None, true) => tracing::info!(
                %app,
                "Planned downtime ended: counting {} afresh.",
                notices::beats_of(self.config.signal)
            ),
            _ => {}
        }
        if let Some(until) = output.cooling_until {
            tracing::info!(%app, %until, "A scale is due but the cool-off holds it.");
        }
    }

    /// Logs once when the policy starts holding for want of a signal, and once when the signal
    /// is back.
    fn log_signal(&mut self, output: &Output) {
        let app = &self.settings.app_name;
        match (output.signal_lost, self.signal_lost_since) {
            (Some(lost), None) => {
                tracing::warn!(
                    %app, signal = self.settings.drain.signal.as_str(),
                    "No usable signal (the router window is empty, stale or only says the app is down): {}.",
                    notices::holding(lost.since, self.settings.thresholds.time_zone)
                );
                self.signal_lost_since = Some(lost.since);
            }
            (None, Some(since)) if output.observed.seen != decision::Seen::Nothing => {
                tracing::info!(%app, %since, "The signal is back: the target policy decides again.");
                self.signal_lost_since = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
