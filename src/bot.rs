//! The loop: probe → decide → scale → notify, once per heartbeat interval, until shutdown.
//!
//! This is the thin async shell around the decision engine: it sleeps, asks the probe, reads the
//! quantity from the platform, hands both to [`AppState`] with the clock's `now`, and carries
//! out the plan. It never decides anything itself. Shutdown is a [`CancellationToken`] checked
//! while waiting and probing, never during a platform call, so a scale is never cut in half;
//! the scaler holds the same token and, once it is cancelled, starts no retry and no wait, so
//! a call during a platform outage ends in time and is reported like any failed call.
//! When the platform refuses a call (401, 403, 404: a setting is wrong), the loop pauses its
//! platform calls for a growing time while heartbeats go on, instead of knocking every beat.
//!
//! A stopped app (quantity 0) gets no heartbeat: its beat only reads the quantity, so that a
//! wake by the activator or a `min_dynos` schedule above 0 is seen. The shutdown hook is called
//! before every scale to 0.
//!
//! Before each decision it also reads the downtime file and the heartbeat's downtime header
//! into the [`Calendar`] and tells the engine which window, if any, is in force.
//!
//! With many apps on one API key ([`Worker::with_budget`]) the size is read only when a
//! decision may change it (the engine, run on a copy of its state with the last size known,
//! wants a scale), when the planned pace says it is stale, or while the key's budget has room;
//! otherwise the last size known stands. A standby ([`Worker::with_leadership`]) keeps
//! heartbeating and counting, but makes no API call and tells nobody.

mod downtime;
mod platform;
mod registry;

pub use downtime::read_downtime_file;
pub use platform::{refusal_pause, Pace, MAX_REFUSAL_PAUSE};
pub use registry::{notifiers_for, scaler_for, send_test_notifications, shutdown_hook_for};

use crate::activator::meter::TrafficMeter;
use crate::budget::Call;
use crate::decision::{classify, classify_router, combine, AppState, Heartbeat, Observation, Plan};
use crate::downtime::Calendar;
use crate::metrics::WorkerMetrics;
use crate::router_log::RouterStats;
use crate::settings::AppSettings;
use crate::telemetry::Telemetry;
use autoscalebot_backends::leader::Leadership;
use autoscalebot_backends::notify::{Dispatcher, Event, Notifier, TestNotifier};
use autoscalebot_backends::probe::{Heartbeat as HeartbeatProbe, Probe, ProbeOutcome};
use autoscalebot_backends::scaler::Scaler;
use autoscalebot_backends::shutdown_hook::ShutdownHook;
use chrono::{DateTime, Utc};
use platform::{failed_call, NoSize, Refusal, Size};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Where `now` comes from. Production uses the system clock; loop tests use tokio's clock so
/// that `tokio::time::pause` and `advance` move it too.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A clock that starts at `start` and follows tokio's (pausable) time.
pub fn tokio_clock(start: DateTime<Utc>) -> Clock {
    let origin = tokio::time::Instant::now();
    Arc::new(move || start + chrono::Duration::from_std(origin.elapsed()).unwrap_or_default())
}

/// What one heartbeat did, for logs, the demo's timeline and tests.
#[derive(Debug, Clone)]
pub struct Beat {
    pub at: DateTime<Utc>,
    /// For a stopped app (`stopped`), a placeholder: no heartbeat was sent.
    pub heartbeat: Heartbeat,
    /// The app was read at quantity 0, so it was not probed.
    pub stopped: bool,
    /// The quantity read from the platform, when the read worked.
    pub quantity: Option<u32>,
    pub plan: Option<Plan>,
    /// The quantity after this beat's scale, when one was made.
    pub scaled_to: Option<u32>,
    pub error: Option<String>,
    /// The router window, when `signal` uses the log drain.
    pub router: Option<RouterStats>,
}

/// One app's worker: its settings, its engine state and its edges.
pub struct Worker {
    /// Shared with the telemetry (the server shows them): one copy per app.
    pub settings: Arc<AppSettings>,
    pub state: AppState,
    probe: Arc<dyn Probe>,
    scaler: Arc<dyn Scaler>,
    dispatcher: Dispatcher,
    clock: Clock,
    dry_run: bool,
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
    refusal: Option<Refusal>,
    beats: Option<mpsc::UnboundedSender<Beat>>,
    /// Whether this copy of the worker may scale and notify now.
    leadership: Leadership,
    /// The API key's budget and the pace of re-reads; `None`: read on every heartbeat.
    pace: Option<Pace>,
    /// How long after the start the first heartbeat comes.
    first_beat_after: Duration,
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
        let telemetry = Telemetry::new(settings.clone(), clock.clone(), metrics);
        let mut calendar = Calendar::new(
            settings.thresholds.time_zone,
            settings.downtime.windows.clone(),
        );
        calendar.already_reported(&settings.downtime.warnings);
        Worker {
            calendar,
            downtime_file_error: None,
            settings,
            state: AppState::new(),
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
            first_beat_after: Duration::ZERO,
        }
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

    /// Feeds the engine real traffic from `meter` (an in-process activator, a log drain), so
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

    /// What the HTTP server shows and fills: metrics, recent beats, the router window.
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
        shutdown: &CancellationToken,
    ) -> Self {
        let downtime_header = settings
            .downtime
            .header
            .as_ref()
            .filter(|_| !settings.downtime.disable)
            .and_then(|name| reqwest::header::HeaderName::from_bytes(name.as_bytes()).ok());
        let probe = Arc::new(
            HeartbeatProbe::new(
                client.clone(),
                settings.heartbeat.url.clone(),
                settings.heartbeat.timeout,
            )
            .with_downtime_header(downtime_header),
        );
        let scaler = scaler_for(&settings, client.clone(), shutdown);
        let hook = shutdown_hook_for(&settings, client);
        let notifiers = notifiers_for(&settings, test_notifier);
        let drain_on = settings.drain.log_drain_password.is_some();
        let worker = Worker::new(settings, probe, scaler, notifiers, system_clock(), dry_run)
            .with_shutdown_hook(hook);
        // With a log drain, router requests are the app's traffic, so `idle_after` works.
        if drain_on {
            let meter = worker.telemetry.traffic();
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
        tracing::info!(
            app = %self.settings.app_name,
            scales = %self.scaler.describe(),
            heartbeat = %self.settings.heartbeat.url,
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
            // Not cancellable: a platform call in flight finishes (each has its own timeout).
            // The beat's futures are boxed while they run, so that an idle app's task holds
            // only the worker, not room for its largest beat (thousands of apps wait at once).
            if self.stopped && Box::pin(self.stopped_beat()).await.is_some() {
                continue;
            }
            if self.settings.drain.signal.uses_heartbeat() {
                let outcome = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    outcome = self.probe.probe() => outcome,
                };
                // Not cancellable: a platform call in flight finishes (each has its own timeout).
                Box::pin(self.act(outcome)).await;
            } else {
                Box::pin(self.act_on_router()).await;
            }
        }
        tracing::info!(app = %self.settings.app_name, "Worker stopping.");
        Box::pin(self.dispatcher.drain(std::time::Duration::from_secs(5))).await;
    }

    /// One whole heartbeat: probe, then act on it; for a stopped app, only a read.
    pub async fn beat(&mut self) -> Beat {
        if self.stopped {
            if let Some(beat) = self.stopped_beat().await {
                return beat;
            }
        }
        let outcome = self.probe.probe().await;
        self.act(outcome).await
    }

    /// The beat of an app believed stopped: read the quantity, no heartbeat. `None` when the
    /// app runs again (someone woke it), so the caller probes it at once.
    async fn stopped_beat(&mut self) -> Option<Beat> {
        let app = self.settings.app_name.clone();
        let none = Heartbeat {
            observation: Observation::InBand,
            response_time_ms: None,
            summary: "stopped: no heartbeat".to_string(),
        };
        let mut beat = Beat {
            at: (self.clock)(),
            heartbeat: none.clone(),
            stopped: true,
            quantity: None,
            plan: None,
            scaled_to: None,
            error: None,
            router: None,
        };
        if !self.leadership.is_leader() {
            return Some(beat);
        }
        if let Some(paused) = self.paused_by_refusal() {
            beat.error = Some(paused);
            self.publish(&beat);
            return Some(beat);
        }
        let read = match (self.pace.clone(), self.scaler.recent()) {
            (Some(pace), Some(known)) => {
                let mut state = self.state.clone();
                let wants = state
                    .observe_stopped(&self.settings, (self.clock)())
                    .scale
                    .is_some();
                let call = if wants {
                    Call::Decision
                } else {
                    Call::Refresh {
                        due: self.refresh_due(&pace, known.at),
                    }
                };
                if self.take(&pace, call) {
                    self.read_raw().await
                } else if wants {
                    beat.error = Some("the API budget of this key has no call left".into());
                    self.publish(&beat);
                    return Some(beat);
                } else {
                    Ok(known.quantity)
                }
            }
            (Some(pace), None) if !self.take(&pace, Call::Decision) => {
                beat.error = Some("the API budget of this key has no call left".into());
                self.publish(&beat);
                return Some(beat);
            }
            _ => self.read_raw().await,
        };
        match read {
            Ok(0) => self.platform_accepts(),
            Ok(quantity) => {
                self.platform_accepts();
                tracing::info!(%app, quantity, "The app runs again; heartbeats resume.");
                self.stopped = false;
                return None;
            }
            Err(error) => {
                let message = format!("reading the formation: {error}");
                if !self.refused(&error, &message) {
                    failed_call(&app, &error, &message, "Could not read the formation");
                }
                let events =
                    self.state
                        .scale_failed(&self.settings, (self.clock)(), None, &message);
                self.send(&events);
                beat.error = Some(message);
                self.publish(&beat);
                return Some(beat);
            }
        }
        beat.quantity = Some(0);
        let plan = self.state.observe_stopped(&self.settings, (self.clock)());
        self.carry_out(plan, &mut beat, &none).await;
        self.telemetry.record_beat(&beat);
        self.telemetry.stamp_alive();
        self.publish(&beat);
        Some(beat)
    }

    /// Classifies the outcome (with the router window when `signal = "both"`), reads the
    /// size, decides, scales, notifies.
    pub async fn act(&mut self, outcome: ProbeOutcome) -> Beat {
        let settings = &self.settings;
        let heartbeat = classify(
            &outcome,
            settings.thresholds.max_response_time_ms,
            settings.thresholds.min_response_time_ms,
        );
        self.telemetry
            .metrics
            .heartbeat(&outcome, heartbeat.observation);
        // With the drain on, the window is read every beat (metrics, status page) even when
        // only the heartbeat decides.
        let router = settings
            .drain
            .log_drain_password
            .is_some()
            .then(|| self.telemetry.router_stats());
        let observed = match &router {
            Some(stats) if settings.drain.signal.uses_router() => {
                combine(&heartbeat, &self.classify_router(stats))
            }
            _ => heartbeat,
        };
        self.decide_and_scale(Some(&outcome), observed, router)
            .await
    }

    /// One beat of `signal = "router"`: the router window alone, no heartbeat sent.
    pub async fn act_on_router(&mut self) -> Beat {
        let stats = self.telemetry.router_stats();
        let observed = self.classify_router(&stats);
        self.decide_and_scale(None, observed, Some(stats)).await
    }

    fn classify_router(&self, stats: &RouterStats) -> Heartbeat {
        classify_router(
            stats,
            self.settings.thresholds.max_response_time_ms,
            self.settings.thresholds.min_response_time_ms,
        )
    }

    /// `outcome` is the heartbeat's, when one was sent (its downtime header is read).
    async fn decide_and_scale(
        &mut self,
        outcome: Option<&ProbeOutcome>,
        heartbeat: Heartbeat,
        router: Option<RouterStats>,
    ) -> Beat {
        let beat = self
            .decide_and_scale_inner(outcome, heartbeat, router)
            .await;
        self.telemetry.record_beat(&beat);
        self.telemetry.stamp_alive();
        self.publish(&beat);
        beat
    }

    async fn decide_and_scale_inner(
        &mut self,
        outcome: Option<&ProbeOutcome>,
        heartbeat: Heartbeat,
        router: Option<RouterStats>,
    ) -> Beat {
        let settings = &self.settings;
        let app = settings.app_name.clone();
        if let Observation::Misconfigured { status } = heartbeat.observation {
            tracing::warn!(
                %app, status, url = %settings.heartbeat.url,
                "The heartbeat URL answered {status}: check heartbeat_url and app_url. A 4xx never adds dynos."
            );
        } else {
            tracing::debug!(%app, heartbeat = %heartbeat.summary, observation = ?heartbeat.observation, "Heartbeat.");
        }
        self.refresh_downtime(outcome);
        let now = (self.clock)();
        let was_down = self.state.downtime().is_some();
        let window = self.calendar.active(now).cloned();
        let events = self
            .state
            .set_downtime(&self.settings, now, window.as_ref());
        match (&window, was_down) {
            (Some(window), false) => tracing::info!(
                %app, window = %window.local_span(self.settings.thresholds.time_zone), source = %window.source,
                "Planned downtime started: fails are not counted and the worker does not scale up."
            ),
            (None, true) => {
                tracing::info!(%app, "Planned downtime ended: counting heartbeats afresh.")
            }
            _ => {}
        }
        self.send(&events);
        let mut beat = Beat {
            at: (self.clock)(),
            heartbeat: heartbeat.clone(),
            stopped: false,
            quantity: None,
            plan: None,
            scaled_to: None,
            error: None,
            router,
        };
        if !self.leadership.is_leader() {
            // A standby keeps its streaks warm for the moment it takes over, and spends no
            // API call: the leader reads for both.
            self.state.record(heartbeat.observation);
            tracing::debug!(%app, "Standby: not reading, scaling or telling.");
            return beat;
        }
        if let Some(paused) = self.paused_by_refusal() {
            // Heartbeats go on and count; the platform is left alone until the pause ends.
            self.state.record(heartbeat.observation);
            beat.error = Some(paused);
            return beat;
        }
        let (current, plan) = match self.size(&heartbeat).await {
            Ok(Size::Read(quantity)) => {
                let now = (self.clock)();
                let plan = self.plan_from(quantity, now, &heartbeat);
                (quantity, plan)
            }
            Ok(Size::Known(quantity, state, plan)) => {
                self.state = *state;
                (quantity, plan)
            }
            Err(NoSize::NoBudget) => {
                self.state.record(heartbeat.observation);
                let message =
                    "the API budget of this key has no call left; trying again next heartbeat"
                        .to_string();
                tracing::warn!(%app, "Not reading the formation: the API budget is spent.");
                beat.error = Some(message);
                return beat;
            }
            Err(NoSize::Failed(error)) => {
                self.state.record(heartbeat.observation);
                let now = (self.clock)();
                self.telemetry.metrics.api_error(error.kind());
                let message = format!("reading the formation: {error}");
                let events = if self.refused(&error, &message) {
                    self.state
                        .scale_refused(&self.settings, now, None, &message)
                } else {
                    failed_call(&app, &error, &message, "Could not read the formation");
                    self.state.scale_failed(&self.settings, now, None, &message)
                };
                self.send_with(events, &heartbeat);
                beat.error = Some(message);
                return beat;
            }
        };
        self.platform_accepts();
        beat.quantity = Some(current);
        self.telemetry.metrics.dynos(current);
        if current == 0 {
            // Stopped since the last beat: this heartbeat measured nothing worth counting.
            self.stopped = true;
        }
        self.telemetry
            .metrics
            .bounds(plan.bounds.min, plan.bounds.max);
        self.carry_out(plan, &mut beat, &heartbeat).await;
        beat
    }

    /// The engine's plan for this heartbeat at `current` dynos, on the worker's state.
    fn plan_from(&mut self, current: u32, now: DateTime<Utc>, heartbeat: &Heartbeat) -> Plan {
        let mut state = std::mem::take(&mut self.state);
        let plan = self.plan_on(&mut state, current, now, heartbeat);
        self.state = state;
        plan
    }

    /// The engine's plan at `current` dynos on `state` (the worker's, or a copy of it).
    fn plan_on(
        &self,
        state: &mut AppState,
        current: u32,
        now: DateTime<Utc>,
        heartbeat: &Heartbeat,
    ) -> Plan {
        if let Some(meter) = &self.traffic {
            state.traffic = Some(meter.snapshot(now));
        }
        if current == 0 {
            state.observe_stopped(&self.settings, now)
        } else {
            state.observe(&self.settings, now, heartbeat, current)
        }
    }

    /// Sends the plan's events, then makes its scale, if any, and reports back to the engine.
    async fn carry_out(&mut self, plan: Plan, beat: &mut Beat, heartbeat: &Heartbeat) {
        let app = self.settings.app_name.clone();
        self.send(&plan.events);
        if let Some(until) = plan.cooling_until {
            tracing::info!(%app, %until, "A scale is due but the cool-off holds it.");
        }
        if let Some(scale) = plan.scale {
            match self.apply(scale).await {
                Ok(None) => {}
                Ok(Some(quantity)) => {
                    beat.scaled_to = Some(quantity);
                    // A dry run changes nothing: the app still runs and is still probed.
                    self.stopped = quantity == 0 && !self.dry_run;
                    if !self.dry_run {
                        self.telemetry.metrics.scaled(scale.from, quantity);
                    }
                    let events =
                        self.state
                            .scaled(&self.settings, (self.clock)(), scale, self.dry_run);
                    self.send_with(events, heartbeat);
                }
                Err(error) => {
                    self.telemetry.metrics.api_error(error.kind());
                    let message = format!("setting the quantity to {}: {error}", scale.to);
                    let now = (self.clock)();
                    let events = if self.refused(&error, &message) {
                        self.state
                            .scale_refused(&self.settings, now, Some(scale), &message)
                    } else {
                        failed_call(&app, &error, &message, "Scale failed");
                        self.state
                            .scale_failed(&self.settings, now, Some(scale), &message)
                    };
                    self.send_with(events, heartbeat);
                    beat.error = Some(message);
                }
            }
        }
        beat.plan = Some(plan);
    }

    /// Hands a copy of the beat to the `with_beats` channel, if any.
    fn publish(&self, beat: &Beat) {
        if let Some(beats) = &self.beats {
            let _ = beats.send(beat.clone());
        }
    }

    fn send(&self, events: &[Event]) {
        // Only the leader tells: a standby's news would be told twice.
        if !self.leadership.is_leader() {
            return;
        }
        for event in events {
            self.dispatcher.dispatch(event);
        }
        self.telemetry.record_notifications(events);
    }

    /// Events made after a scale or a failed call carry the heartbeat that led to them, so a
    /// reader sees the response time behind a scale.
    fn send_with(&self, mut events: Vec<Event>, heartbeat: &crate::decision::Heartbeat) {
        for event in &mut events {
            event.response_time_ms = event.response_time_ms.or(heartbeat.response_time_ms);
        }
        self.send(&events);
    }
}

#[cfg(test)]
mod tests;
