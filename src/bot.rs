//! The loop: probe → decide → scale → notify, once per heartbeat interval, until shutdown.
//!
//! This is the thin async shell around the decision engine: it sleeps, asks the probe, reads the
//! quantity from the platform, hands both to [`AppState`] with the clock's `now`, and carries
//! out the plan. It never decides anything itself. Shutdown is a [`CancellationToken`] checked
//! while waiting and probing, never during a platform call, so a scale is never cut in half.
//! Before each decision it also reads the downtime file and the heartbeat's downtime header
//! into the [`Calendar`] and tells the engine which window, if any, is in force.
//!
//! With many apps on one API key ([`Worker::with_budget`]) the size is read only when a
//! decision may change it (the engine, run on a copy of its state with the last size known,
//! wants a scale), when the planned pace says it is stale, or while the key's budget has room;
//! otherwise the last size known stands. A standby ([`Worker::with_leadership`]) keeps
//! heartbeating and counting, but makes no API call and tells nobody.

use crate::budget::{ApiBudget, Call};
use crate::decision::{classify, AppState, Heartbeat, Observation, Plan, ScaleTo};
use crate::downtime::{Calendar, Learned};
use crate::settings::AppSettings;
use autoscalebot_backends::notify::{
    ConsoleNotifier, Dispatcher, Event, LogNotifier, Notifier, TestNotifier,
};
use autoscalebot_backends::leader::Leadership;
use autoscalebot_backends::probe::{Heartbeat as HeartbeatProbe, Probe, ProbeOutcome};
use autoscalebot_backends::scaler::{HerokuScaler, ScaleError, Scaler};
use chrono::{DateTime, Utc};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::MissedTickBehavior;
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
    pub heartbeat: Heartbeat,
    /// The quantity read from the platform, when the read worked.
    pub quantity: Option<u32>,
    pub plan: Option<Plan>,
    /// The quantity after this beat's scale, when one was made.
    pub scaled_to: Option<u32>,
    pub error: Option<String>,
}

/// One app's worker: its settings, its engine state and its edges.
pub struct Worker {
    pub settings: AppSettings,
    pub state: AppState,
    probe: Arc<dyn Probe>,
    scaler: Arc<dyn Scaler>,
    dispatcher: Dispatcher,
    clock: Clock,
    dry_run: bool,
    /// Every planned downtime window known, from each source.
    calendar: Calendar,
    /// The last error reading the downtime file, so that it is logged once, not every beat.
    downtime_file_error: Option<String>,
    /// Whether this copy of the worker may scale and notify now.
    leadership: Leadership,
    /// The API key's budget and the pace of re-reads; `None`: read on every heartbeat.
    pace: Option<Pace>,
    /// How long after the start the first heartbeat comes.
    first_beat_after: Duration,
}

/// The budget an app spends from, shared with the other apps of its API key.
#[derive(Clone)]
pub struct Pace {
    pub budget: Arc<Mutex<ApiBudget>>,
    /// Re-read the size at least every this many heartbeats (`None`: only while the budget
    /// has room); see [`crate::budget::plan`].
    pub refresh_every_beats: Option<u32>,
}

/// Where this heartbeat's size came from.
enum Size {
    /// Read from the platform just now.
    Read(u32),
    /// The last size known: no decision needed a read. The engine already ran on a copy of
    /// its state, which becomes the state.
    Known(u32, Box<AppState>, Plan),
}

/// Why this heartbeat has no size.
enum NoSize {
    Failed(ScaleError),
    /// The key's budget has no call left for this read.
    NoBudget,
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
        let mut calendar = Calendar::new(settings.time_zone, settings.downtime.clone());
        calendar.already_reported(&settings.downtime_warnings);
        Worker {
            calendar,
            downtime_file_error: None,
            settings,
            state: AppState::new(),
            probe,
            scaler,
            dispatcher: Dispatcher::start(notifiers),
            clock,
            dry_run,
            leadership: Leadership::always(),
            pace: None,
            first_beat_after: Duration::ZERO,
        }
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

    /// Builds the worker the settings describe: heartbeat probe, Heroku scaler, and the named
    /// notification backends. `test_notifier` receives events when "test" is named.
    pub fn from_settings(
        settings: AppSettings,
        client: reqwest::Client,
        dry_run: bool,
        test_notifier: Option<TestNotifier>,
    ) -> Self {
        let downtime_header = settings
            .downtime_header
            .as_ref()
            .filter(|_| !settings.downtime_disable)
            .and_then(|name| reqwest::header::HeaderName::from_bytes(name.as_bytes()).ok());
        let probe = Arc::new(
            HeartbeatProbe::new(
                client.clone(),
                settings.heartbeat_url.clone(),
                settings.heartbeat_timeout,
            )
            .with_downtime_header(downtime_header),
        );
        let scaler = Arc::new(HerokuScaler::new(
            client,
            &settings.heroku_api_url,
            &settings.heroku_app_name,
            &settings.process_type,
            settings.heroku_api_key.clone(),
            settings.heroku_api_timeout,
        ));
        let notifiers = notifiers_for(&settings.notification_backends, test_notifier);
        Worker::new(settings, probe, scaler, notifiers, system_clock(), dry_run)
    }

    /// Runs heartbeats every `heartbeat_interval_in_seconds` until `shutdown`, then delivers
    /// what notifications it can within a few seconds.
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(
            app = %self.settings.heroku_app_name,
            target = %self.scaler.describe(),
            heartbeat = %self.settings.heartbeat_url,
            interval = ?self.settings.heartbeat_interval,
            dry_run = self.dry_run,
            "Worker started."
        );
        self.log_downtime_sources();
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + self.first_beat_after,
            self.settings.heartbeat_interval,
        );
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let outcome = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                outcome = self.probe.probe() => outcome,
            };
            // Not cancellable: a platform call in flight finishes (each has its own timeout).
            self.act(outcome).await;
        }
        tracing::info!(app = %self.settings.heroku_app_name, "Worker stopping.");
        self.dispatcher
            .drain(std::time::Duration::from_secs(5))
            .await;
    }

    /// One whole heartbeat: probe, then act on it.
    pub async fn beat(&mut self) -> Beat {
        let outcome = self.probe.probe().await;
        self.act(outcome).await
    }

    /// Classifies the outcome, reads the size, decides, scales, notifies.
    pub async fn act(&mut self, outcome: ProbeOutcome) -> Beat {
        let settings = &self.settings;
        let heartbeat = classify(
            &outcome,
            settings.max_response_time_ms,
            settings.min_response_time_ms,
        );
        let app = settings.heroku_app_name.clone();
        if let Observation::Misconfigured { status } = heartbeat.observation {
            tracing::warn!(
                %app, status, url = %settings.heartbeat_url,
                "The heartbeat URL answered {status}: check heartbeat_url and app_url. A 4xx never adds dynos."
            );
        } else {
            tracing::debug!(%app, heartbeat = %heartbeat.summary, observation = ?heartbeat.observation, "Heartbeat.");
        }
        self.refresh_downtime(&outcome);
        let now = (self.clock)();
        let was_down = self.state.downtime().is_some();
        let window = self.calendar.active(now).cloned();
        let events = self
            .state
            .set_downtime(&self.settings, now, window.as_ref());
        match (&window, was_down) {
            (Some(window), false) => tracing::info!(
                %app, window = %window.local_span(self.settings.time_zone), source = %window.source,
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
            quantity: None,
            plan: None,
            scaled_to: None,
            error: None,
        };
        if !self.leadership.is_leader() {
            // A standby keeps its streaks warm for the moment it takes over, and spends no
            // API call: the leader reads for both.
            self.state.record(heartbeat.observation);
            tracing::debug!(%app, "Standby: not reading, scaling or telling.");
            return beat;
        }
        let (current, plan) = match self.size(&heartbeat).await {
            Ok(Size::Read(quantity)) => {
                let now = (self.clock)();
                let plan = self.state.observe(&self.settings, now, &heartbeat, quantity);
                (quantity, plan)
            }
            Ok(Size::Known(quantity, state, plan)) => {
                self.state = *state;
                (quantity, plan)
            }
            Err(NoSize::NoBudget) => {
                self.state.record(heartbeat.observation);
                let message = "the API budget of this key has no call left; trying again next heartbeat".to_string();
                tracing::warn!(%app, "Not reading the formation: the API budget is spent.");
                beat.error = Some(message);
                return beat;
            }
            Err(NoSize::Failed(error)) => {
                self.state.record(heartbeat.observation);
                let now = (self.clock)();
                let message = format!("reading the formation: {error}");
                tracing::warn!(%app, kind = error.kind(), error = %message, "Could not read the formation; trying again next heartbeat.");
                let events = self.state.scale_failed(&self.settings, now, None, &message);
                self.send(&events);
                beat.error = Some(message);
                return beat;
            }
        };
        beat.quantity = Some(current);
        self.send(&plan.events);
        if let Some(until) = plan.cooling_until {
            tracing::info!(%app, %until, "A scale is due but the cool-off holds it.");
        }
        if let Some(scale) = plan.scale {
            match self.apply(scale).await {
                Ok(None) => {}
                Ok(Some(quantity)) => {
                    beat.scaled_to = Some(quantity);
                    let events =
                        self.state
                            .scaled(&self.settings, (self.clock)(), scale, self.dry_run);
                    self.send(&events);
                }
                Err(error) => {
                    let message = format!("setting the quantity to {}: {error}", scale.to);
                    tracing::warn!(%app, kind = error.kind(), error = %message, "Scale failed; trying again next heartbeat.");
                    let events = self.state.scale_failed(
                        &self.settings,
                        (self.clock)(),
                        Some(scale),
                        &message,
                    );
                    self.send(&events);
                    beat.error = Some(message);
                }
            }
        }
        beat.plan = Some(plan);
        beat
    }

    /// Logs, once at start, where downtime can come from and what is already known.
    fn log_downtime_sources(&self) {
        let app = &self.settings.heroku_app_name;
        if self.settings.downtime_disable {
            tracing::info!(%app, "Planned downtime is disabled (downtime_disable).");
            return;
        }
        for problem in &self.settings.downtime_warnings {
            tracing::warn!(%app, source = %problem.source, entry = ?problem.text, error = %problem.error, "Ignoring a bad downtime entry.");
        }
        for window in self.calendar.windows() {
            tracing::info!(%app, window = %window.local_span(self.settings.time_zone), source = %window.source, "Planned downtime window.");
        }
        if let Some(path) = &self.settings.downtime_file {
            tracing::info!(%app, file = %path.display(), present = path.exists(), "Watching the downtime file.");
        }
    }

    /// Reads the downtime header of this heartbeat and the downtime file into the calendar.
    /// A bad entry or an unreadable file is logged once and ignored; the worker goes on.
    fn refresh_downtime(&mut self, outcome: &ProbeOutcome) {
        if self.settings.downtime_disable {
            return;
        }
        if let (
            Some(name),
            ProbeOutcome::Response {
                downtime_header, ..
            },
        ) = (&self.settings.downtime_header, outcome)
        {
            let learned = self.calendar.header_seen(name, downtime_header.as_deref());
            self.log_learned(learned);
        }
        let Some(path) = self.settings.downtime_file.clone() else {
            return;
        };
        match read_downtime_file(&path) {
            Ok(text) => {
                self.downtime_file_error = None;
                let learned = self.calendar.file_read(&path, text.as_deref());
                self.log_learned(learned);
            }
            Err(error) => {
                // The windows read before stay in force.
                if self.downtime_file_error.as_ref() != Some(&error) {
                    tracing::warn!(app = %self.settings.heroku_app_name, file = %path.display(), %error, "Could not read the downtime file; keeping the windows read before.");
                    self.downtime_file_error = Some(error);
                }
            }
        }
    }

    fn log_learned(&self, learned: Learned) {
        let app = &self.settings.heroku_app_name;
        for problem in learned.new_problems {
            tracing::warn!(%app, source = %problem.source, entry = ?problem.text, error = %problem.error, "Ignoring a bad downtime entry.");
        }
        for window in learned.new_windows {
            tracing::info!(%app, window = %window.local_span(self.settings.time_zone), source = %window.source, "Planned downtime window found.");
        }
    }

    /// The size to decide from: the last one known when no decision needs a read and the
    /// budget's pace does not ask for one, else a fresh read, spent from the budget.
    async fn size(&mut self, heartbeat: &Heartbeat) -> Result<Size, NoSize> {
        let Some(pace) = self.pace.clone() else {
            return self.read().await.map(Size::Read);
        };
        let call = match self.scaler.recent() {
            // Nothing known yet (or the last read failed): a read is needed to decide.
            None => Call::Decision,
            Some(known) => {
                let now = (self.clock)();
                let mut state = self.state.clone();
                let plan = state.observe(&self.settings, now, heartbeat, known.quantity);
                if plan.scale.is_some() {
                    Call::Decision
                } else {
                    let age = tokio::time::Instant::now().saturating_duration_since(known.at);
                    let due = pace.refresh_every_beats.is_some_and(|beats| {
                        age >= self.settings.heartbeat_interval.saturating_mul(beats)
                    });
                    let call = Call::Refresh { due };
                    if !self.take(&pace, call) {
                        return Ok(Size::Known(known.quantity, Box::new(state), plan));
                    }
                    return self.read().await.map(Size::Read);
                }
            }
        };
        if !self.take(&pace, call) {
            return Err(NoSize::NoBudget);
        }
        self.read().await.map(Size::Read)
    }

    fn take(&self, pace: &Pace, call: Call) -> bool {
        let mut budget = pace.budget.lock().expect("not poisoned");
        budget.try_take(tokio::time::Instant::now(), call)
    }

    async fn read(&self) -> Result<u32, NoSize> {
        let result = self.scaler.current().await;
        self.account(&result);
        result.map_err(NoSize::Failed)
    }

    /// Tells the budget what the platform said about the account's calls.
    fn account<T>(&self, result: &Result<T, ScaleError>) {
        let Some(pace) = &self.pace else {
            return;
        };
        let mut budget = pace.budget.lock().expect("not poisoned");
        let now = tokio::time::Instant::now();
        if let Some(remaining) = self.scaler.rate_limit_remaining() {
            budget.heroku_remaining(now, remaining);
        }
        if matches!(result, Err(ScaleError::RateLimited { .. })) {
            budget.rate_limited(now);
        }
    }

    /// Sets the size. `Ok(None)` when this copy no longer leads or the budget has no call left:
    /// nothing was written, and the streak stays for the next heartbeat.
    async fn apply(&self, scale: ScaleTo) -> Result<Option<u32>, ScaleError> {
        let app = &self.settings.heroku_app_name;
        let reason = scale.reason.describe(&self.settings);
        if self.dry_run {
            tracing::info!(%app, from = scale.from, to = scale.to, %reason, "Would scale (dry run).");
            return Ok(Some(scale.to));
        }
        if !self.leadership.confirm().await {
            tracing::warn!(%app, from = scale.from, to = scale.to, "Not scaling: this worker no longer holds the leader lock.");
            return Ok(None);
        }
        if let Some(pace) = &self.pace {
            if !self.take(pace, Call::Decision) {
                tracing::warn!(%app, from = scale.from, to = scale.to, "Not scaling yet: the API budget is spent; trying again next heartbeat.");
                return Ok(None);
            }
        }
        let result = self.scaler.set(scale.to).await;
        self.account(&result);
        let quantity = result?;
        tracing::info!(%app, from = scale.from, to = quantity, %reason, "Scaled.");
        Ok(Some(quantity))
    }

    fn send(&self, events: &[Event]) {
        // Only the leader tells: a standby's news would be told twice.
        if !self.leadership.is_leader() {
            return;
        }
        for event in events {
            self.dispatcher.dispatch(event);
        }
    }
}

/// The most of a downtime file that is read: a few lines are expected, so a huge file is a
/// mistake (a log pointed at by accident) and is refused rather than parsed.
const DOWNTIME_FILE_MAX_BYTES: u64 = 64 * 1024;

/// The downtime file's text, `None` when it does not exist. Plain `std::fs` on purpose: one
/// open and read of a small file per heartbeat takes microseconds, and keeps the loop's
/// paused-time tests deterministic (tokio's file I/O goes through a thread pool).
pub fn read_downtime_file(path: &Path) -> Result<Option<String>, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(DOWNTIME_FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > DOWNTIME_FILE_MAX_BYTES {
        return Err(format!(
            "larger than {} KiB; expected a few lines",
            DOWNTIME_FILE_MAX_BYTES / 1024
        ));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "not UTF-8 text".to_string())
}

/// The notifiers named in `notification_backends`, in order.
pub fn notifiers_for(
    names: &[String],
    test_notifier: Option<TestNotifier>,
) -> Vec<Arc<dyn Notifier>> {
    names
        .iter()
        .filter_map(|name| -> Option<Arc<dyn Notifier>> {
            match name.as_str() {
                "console" => Some(Arc::new(ConsoleNotifier)),
                "log" => Some(Arc::new(LogNotifier)),
                "test" => Some(Arc::new(test_notifier.clone().unwrap_or_default())),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
