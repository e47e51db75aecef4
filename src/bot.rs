//! The loop: probe → decide → scale → notify, once per heartbeat interval, until shutdown.
//!
//! This is the thin async shell around the decision engine: it sleeps, asks the probe, reads the
//! quantity from the platform, hands both to [`AppState`] with the clock's `now`, and carries
//! out the plan. It never decides anything itself. Shutdown is a [`CancellationToken`] checked
//! while waiting and probing, never during a platform call, so a scale is never cut in half.
//!
//! A stopped app (quantity 0) gets no heartbeat: its beat only reads the quantity, so that a
//! wake by the activator or a `min_dynos` schedule above 0 is seen. The shutdown hook is called
//! before every scale to 0.

use crate::activator::meter::TrafficMeter;
use crate::decision::{classify, AppState, Heartbeat, Observation, Plan, ScaleTo};
use crate::settings::{AppSettings, ScalerKind};
use autoscalebot_backends::notify::{
    ConsoleNotifier, Dispatcher, Event, LogNotifier, Notifier, TestNotifier,
};
use autoscalebot_backends::probe::{Heartbeat as HeartbeatProbe, Probe, ProbeOutcome};
use autoscalebot_backends::scaler::{CommandScaler, HerokuScaler, ScaleError, Scaler};
use autoscalebot_backends::shutdown_hook::ShutdownHook;
use chrono::{DateTime, Utc};
use std::sync::Arc;
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
    /// `None` when the app was stopped, so no heartbeat was sent.
    pub heartbeat: Option<Heartbeat>,
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
    /// Real traffic, when something measures it (see [`Worker::with_traffic`]).
    traffic: Option<Arc<TrafficMeter>>,
    shutdown_hook: Option<ShutdownHook>,
    /// The last quantity read or set was 0: the next beat reads instead of probing.
    stopped: bool,
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
            traffic: None,
            shutdown_hook: None,
            stopped: false,
        }
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
        let scaler = scaler_for(&settings, client.clone());
        let hook = shutdown_hook_for(&settings, client);
        let notifiers = notifiers_for(&settings.notification_backends, test_notifier);
        Worker::new(settings, probe, scaler, notifiers, system_clock(), dry_run)
            .with_shutdown_hook(hook)
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
        if self.settings.idle_after.is_some() && self.traffic.is_none() {
            tracing::warn!(
                app = %self.settings.heroku_app_name,
                "idle_after is set but this worker measures no traffic, so it will not stop the app for idleness; `autoscalebot activate` does, in front of the app."
            );
        }
        let mut ticker = tokio::time::interval(self.settings.heartbeat_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            // Not cancellable: a platform call in flight finishes (each has its own timeout).
            if self.stopped && self.stopped_beat().await.is_some() {
                continue;
            }
            let outcome = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                outcome = self.probe.probe() => outcome,
            };
            self.act(outcome).await;
        }
        tracing::info!(app = %self.settings.heroku_app_name, "Worker stopping.");
        self.dispatcher
            .drain(std::time::Duration::from_secs(5))
            .await;
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
        let app = self.settings.heroku_app_name.clone();
        let mut beat = Beat {
            at: (self.clock)(),
            heartbeat: None,
            quantity: None,
            plan: None,
            scaled_to: None,
            error: None,
        };
        match self.scaler.current().await {
            Ok(0) => {}
            Ok(quantity) => {
                tracing::info!(%app, quantity, "The app runs again; heartbeats resume.");
                self.stopped = false;
                return None;
            }
            Err(error) => {
                let message = format!("reading the formation: {error}");
                tracing::warn!(%app, kind = error.kind(), error = %message, "Could not read the formation; trying again next heartbeat.");
                let events =
                    self.state
                        .scale_failed(&self.settings, (self.clock)(), None, &message);
                self.send(&events);
                beat.error = Some(message);
                return Some(beat);
            }
        }
        beat.quantity = Some(0);
        let plan = self.state.observe_stopped(&self.settings, (self.clock)());
        self.carry_out(plan, &mut beat).await;
        Some(beat)
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
            heartbeat: Some(heartbeat.clone()),
            quantity: None,
            plan: None,
            scaled_to: None,
            error: None,
        };
        let current = match self.scaler.current().await {
            Ok(quantity) => quantity,
            Err(error) => {
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
        let now = (self.clock)();
        if let Some(meter) = &self.traffic {
            self.state.traffic = Some(meter.snapshot(now));
        }
        let plan = if current == 0 {
            // Stopped since the last beat: this heartbeat measured nothing worth counting.
            self.stopped = true;
            self.state.observe_stopped(&self.settings, now)
        } else {
            self.state.observe(&self.settings, now, &heartbeat, current)
        };
        self.carry_out(plan, &mut beat).await;
        beat
    }

    /// Sends the plan's events, then makes its scale, if any, and reports back to the engine.
    async fn carry_out(&mut self, plan: Plan, beat: &mut Beat) {
        let app = self.settings.heroku_app_name.clone();
        self.send(&plan.events);
        if let Some(until) = plan.cooling_until {
            tracing::info!(%app, %until, "A scale is due but the cool-off holds it.");
        }
        if let Some(scale) = plan.scale {
            match self.apply(scale).await {
                Ok(quantity) => {
                    beat.scaled_to = Some(quantity);
                    // A dry run changes nothing: the app still runs and is still probed.
                    self.stopped = quantity == 0 && !self.dry_run;
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
    }

    async fn apply(&self, scale: ScaleTo) -> Result<u32, ScaleError> {
        let app = &self.settings.heroku_app_name;
        let reason = scale.reason.describe(&self.settings);
        if self.dry_run {
            tracing::info!(%app, from = scale.from, to = scale.to, %reason, "Would scale (dry run).");
            return Ok(scale.to);
        }
        if scale.to == 0 && scale.from > 0 {
            if let Some(hook) = &self.shutdown_hook {
                hook.call_and_log(&reason).await;
            }
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

/// The scaler the settings name: the Heroku Platform API or the user's commands.
pub fn scaler_for(settings: &AppSettings, client: reqwest::Client) -> Arc<dyn Scaler> {
    match settings.scaler {
        ScalerKind::Heroku => Arc::new(HerokuScaler::new(
            client,
            &settings.heroku_api_url,
            &settings.heroku_app_name,
            &settings.process_type,
            settings.heroku_api_key.clone(),
            settings.heroku_api_timeout,
        )),
        ScalerKind::Command => Arc::new(CommandScaler::new(
            settings.commands.clone(),
            settings.command_timeout,
        )),
    }
}

/// The `[shutdown_hook]`, when one is set.
pub fn shutdown_hook_for(settings: &AppSettings, client: reqwest::Client) -> Option<ShutdownHook> {
    settings.shutdown_hook.as_ref().map(|hook| {
        ShutdownHook::new(
            client,
            hook.url.clone(),
            hook.method.clone(),
            hook.headers.clone(),
            hook.body.clone(),
            hook.timeout,
        )
    })
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
