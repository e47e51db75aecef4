//! The loop: probe → decide → scale → notify, once per heartbeat interval, until shutdown.
//!
//! This is the thin async shell around the decision engine: it sleeps, asks the probe, reads the
//! quantity from the platform, hands both to [`AppState`] with the clock's `now`, and carries
//! out the plan. It never decides anything itself. Shutdown is a [`CancellationToken`] checked
//! while waiting and probing, never during a platform call, so a scale is never cut in half.
//! When the platform refuses a call (401, 403, 404: a setting is wrong), the loop pauses its
//! platform calls for a growing time while heartbeats go on, instead of knocking every beat.

use crate::decision::{classify, AppState, Heartbeat, Observation, Plan, ScaleTo};
use crate::settings::AppSettings;
use autoscalebot_backends::notify::{
    ConsoleNotifier, Dispatcher, Event, LogNotifier, Notifier, TestNotifier,
};
use autoscalebot_backends::probe::{Heartbeat as HeartbeatProbe, Probe, ProbeOutcome};
use autoscalebot_backends::scaler::{HerokuScaler, ScaleError, Scaler};
use chrono::{DateTime, Utc};
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
    pub heartbeat: Heartbeat,
    /// The quantity read from the platform, when the read worked.
    pub quantity: Option<u32>,
    pub plan: Option<Plan>,
    /// The quantity after this beat's scale, when one was made.
    pub scaled_to: Option<u32>,
    pub error: Option<String>,
}

/// The longest pause of platform calls after repeated refusals: a key or an app that gets
/// fixed on the platform's side is noticed within this long.
pub const MAX_REFUSAL_PAUSE: Duration = Duration::from_secs(600);

/// Platform calls are paused after the platform refused one (a 4xx other than 429).
#[derive(Debug, Clone)]
struct Refusal {
    /// Refusals in a row.
    count: u32,
    kind: &'static str,
    until: Instant,
}

/// The pause after `count` refusals in a row: one heartbeat interval (at least a second),
/// doubling with each refusal, at most [`MAX_REFUSAL_PAUSE`].
pub fn refusal_pause(heartbeat_interval: Duration, count: u32) -> Duration {
    let base = heartbeat_interval.max(Duration::from_secs(1));
    let doublings = count.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings)
        .min(MAX_REFUSAL_PAUSE.max(base))
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
    refusal: Option<Refusal>,
    beats: Option<mpsc::UnboundedSender<Beat>>,
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
        Worker {
            settings,
            state: AppState::new(),
            probe,
            scaler,
            dispatcher: Dispatcher::start(notifiers),
            clock,
            dry_run,
            refusal: None,
            beats: None,
        }
    }

    /// Sends every [`Beat`] of [`Worker::run`] to `beats` (the demo's live timeline uses it).
    pub fn with_beats(mut self, beats: mpsc::UnboundedSender<Beat>) -> Self {
        self.beats = Some(beats);
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
        let probe = Arc::new(HeartbeatProbe::new(
            client.clone(),
            settings.heartbeat_url.clone(),
            settings.heartbeat_timeout,
        ));
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
        let mut ticker = tokio::time::interval(self.settings.heartbeat_interval);
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
            let beat = self.act(outcome).await;
            if let Some(beats) = &self.beats {
                let _ = beats.send(beat);
            }
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
        let mut beat = Beat {
            at: (self.clock)(),
            heartbeat: heartbeat.clone(),
            quantity: None,
            plan: None,
            scaled_to: None,
            error: None,
        };
        if let Some(refusal) = &self.refusal {
            if Instant::now() < refusal.until {
                // Heartbeats go on and count; the platform is left alone until the pause ends.
                self.state.record(heartbeat.observation);
                tracing::debug!(%app, kind = refusal.kind, "Platform calls paused after a refusal.");
                beat.error = Some(format!(
                    "platform calls paused after {} refusal{} ({})",
                    refusal.count,
                    if refusal.count == 1 { "" } else { "s" },
                    refusal.kind
                ));
                return beat;
            }
        }
        let current = match self.scaler.current().await {
            Ok(quantity) => quantity,
            Err(error) => {
                self.state.record(heartbeat.observation);
                let now = (self.clock)();
                let message = format!("reading the formation: {error}");
                if !self.refused(&error, &message) {
                    tracing::warn!(%app, kind = error.kind(), error = %message, "Could not read the formation; trying again next heartbeat.");
                }
                let events = self.state.scale_failed(&self.settings, now, None, &message);
                self.send(&events);
                beat.error = Some(message);
                return beat;
            }
        };
        if let Some(refusal) = self.refusal.take() {
            tracing::info!(%app, kind = refusal.kind, "The platform accepts the worker's calls again.");
        }
        beat.quantity = Some(current);
        let now = (self.clock)();
        let plan = self.state.observe(&self.settings, now, &heartbeat, current);
        self.send(&plan.events);
        if let Some(until) = plan.cooling_until {
            tracing::info!(%app, %until, "A scale is due but the cool-off holds it.");
        }
        if let Some(scale) = plan.scale {
            match self.apply(scale).await {
                Ok(quantity) => {
                    beat.scaled_to = Some(quantity);
                    let events =
                        self.state
                            .scaled(&self.settings, (self.clock)(), scale, self.dry_run);
                    self.send(&events);
                }
                Err(error) => {
                    let message = format!("setting the quantity to {}: {error}", scale.to);
                    if !self.refused(&error, &message) {
                        tracing::warn!(%app, kind = error.kind(), error = %message, "Scale failed; trying again next heartbeat.");
                    }
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

    /// When the platform refused the call (a 4xx other than 429: a wrong key, app or process
    /// type, which trying again will not fix), pauses platform calls for a growing time and
    /// says so: one warning when the refusals start or change cause, quieter after.
    fn refused(&mut self, error: &ScaleError, message: &str) -> bool {
        if error.is_retriable() {
            return false;
        }
        let app = &self.settings.heroku_app_name;
        let kind = error.kind();
        let count = match &self.refusal {
            Some(refusal) if refusal.kind == kind => refusal.count + 1,
            _ => 1,
        };
        let pause = refusal_pause(self.settings.heartbeat_interval, count);
        if count == 1 {
            tracing::warn!(
                %app, kind, error = %message, pause = ?pause,
                "The platform refused the call; pausing platform calls while heartbeats go on."
            );
        } else {
            tracing::debug!(%app, kind, count, pause = ?pause, "Refused again; pausing longer.");
        }
        self.refusal = Some(Refusal {
            count,
            kind,
            until: Instant::now() + pause,
        });
        true
    }

    async fn apply(&self, scale: ScaleTo) -> Result<u32, ScaleError> {
        let app = &self.settings.heroku_app_name;
        let reason = scale.reason.describe(&self.settings);
        if self.dry_run {
            tracing::info!(%app, from = scale.from, to = scale.to, %reason, "Would scale (dry run).");
            return Ok(scale.to);
        }
        let quantity = self.scaler.set(scale.to).await?;
        tracing::info!(%app, from = scale.from, to = quantity, %reason, "Scaled.");
        Ok(quantity)
    }

    fn send(&self, events: &[Event]) {
        for event in events {
            self.dispatcher.dispatch(event);
        }
    }
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
