//! How the worker talks to the platform: reading the size within the API key's budget,
//! setting it, and pausing platform calls after a refusal.
//!
//! It owns [`Pace`], the refusal pause and the accounting of each call against the budget.
//! It must not decide anything: the engine plans, the loop in [`super`] chooses when to call
//! here, and what a result means for the engine's state is the loop's business, not this one's.

use super::Worker;
use crate::budget::{ApiBudget, Call};
use crate::decision::{AppState, Heartbeat, Plan, ScaleTo};
use autoscalebot_backends::scaler::ScaleError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The longest pause of platform calls after repeated refusals: a key or an app that gets
/// fixed on the platform's side is noticed within this long.
pub const MAX_REFUSAL_PAUSE: Duration = Duration::from_secs(600);

/// Platform calls are paused after the platform refused one (a 4xx other than 429).
#[derive(Debug, Clone)]
pub(super) struct Refusal {
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

/// Logs a read or write that failed without a refusal: `what` failed, and the next heartbeat
/// tries again, unless the call ended because the worker is shutting down.
pub(super) fn failed_call(app: &str, error: &ScaleError, message: &str, what: &str) {
    if matches!(error, ScaleError::ShuttingDown { .. }) {
        tracing::warn!(%app, kind = error.kind(), error = %message, "{what}: not retried because the worker is shutting down.");
    } else {
        tracing::warn!(%app, kind = error.kind(), error = %message, "{what}; trying again next heartbeat.");
    }
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
pub(super) enum Size {
    /// Read from the platform just now.
    Read(u32),
    /// The last size known: no decision needed a read. The engine already ran on a copy of
    /// its state, which becomes the state.
    Known(u32, Box<AppState>, Plan),
}

/// Why this heartbeat has no size.
pub(super) enum NoSize {
    Failed(ScaleError),
    /// The key's budget has no call left for this read.
    NoBudget,
}

impl Worker {
    /// The size to decide from: the last one known when no decision needs a read and the
    /// budget's pace does not ask for one, else a fresh read, spent from the budget.
    pub(super) async fn size(&mut self, heartbeat: &Heartbeat) -> Result<Size, NoSize> {
        let Some(pace) = self.pace.clone() else {
            return self.read().await.map(Size::Read);
        };
        let call = match self.scaler.recent() {
            // Nothing known yet (or the last read failed): a read is needed to decide.
            None => Call::Decision,
            Some(known) => {
                let now = (self.clock)();
                let mut state = self.state.clone();
                let plan = self.plan_on(&mut state, known.quantity, now, heartbeat);
                if plan.scale.is_some() {
                    Call::Decision
                } else {
                    let call = Call::Refresh {
                        due: self.refresh_due(&pace, known.at),
                    };
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

    /// The planned pace says the size read at `read_at` is stale.
    pub(super) fn refresh_due(&self, pace: &Pace, read_at: Instant) -> bool {
        let age = Instant::now().saturating_duration_since(read_at);
        pace.refresh_every_beats
            .is_some_and(|beats| age >= self.settings.heartbeat.interval.saturating_mul(beats))
    }

    pub(super) fn take(&self, pace: &Pace, call: Call) -> bool {
        let mut budget = pace.budget.lock().expect("not poisoned");
        budget.try_take(Instant::now(), call)
    }

    async fn read(&self) -> Result<u32, NoSize> {
        self.read_raw().await.map_err(NoSize::Failed)
    }

    pub(super) async fn read_raw(&self) -> Result<u32, ScaleError> {
        let result = self.scaler.current().await;
        self.account(&result);
        result
    }

    /// Tells the budget what the platform said about the account's calls.
    fn account<T>(&self, result: &Result<T, ScaleError>) {
        let Some(pace) = &self.pace else {
            return;
        };
        let mut budget = pace.budget.lock().expect("not poisoned");
        let now = Instant::now();
        if let Some(remaining) = self.scaler.rate_limit_remaining() {
            budget.heroku_remaining(now, remaining);
        }
        if matches!(result, Err(ScaleError::RateLimited { .. })) {
            budget.rate_limited(now);
        }
    }

    /// `Some(why)` while platform calls are paused after a refusal.
    pub(super) fn paused_by_refusal(&self) -> Option<String> {
        let refusal = self.refusal.as_ref()?;
        if Instant::now() >= refusal.until {
            return None;
        }
        tracing::debug!(app = %self.settings.app_name, kind = refusal.kind, "Platform calls paused after a refusal.");
        Some(format!(
            "platform calls paused after {} refusal{} ({})",
            refusal.count,
            if refusal.count == 1 { "" } else { "s" },
            refusal.kind
        ))
    }

    /// A platform call worked: ends a refusal pause, if one was on.
    pub(super) fn platform_accepts(&mut self) {
        if let Some(refusal) = self.refusal.take() {
            tracing::info!(app = %self.settings.app_name, kind = refusal.kind, "The platform accepts the worker's calls again.");
        }
    }

    /// When the platform refused the call (a 4xx other than 429: a wrong key, app or process
    /// type, which trying again will not fix), pauses platform calls for a growing time and
    /// says so: one warning when the refusals start or change cause, quieter after.
    pub(super) fn refused(&mut self, error: &ScaleError, message: &str) -> bool {
        if error.is_retriable() {
            return false;
        }
        let app = &self.settings.app_name;
        let kind = error.kind();
        let count = match &self.refusal {
            Some(refusal) if refusal.kind == kind => refusal.count + 1,
            _ => 1,
        };
        let pause = refusal_pause(self.settings.heartbeat.interval, count);
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

    /// Sets the size. `Ok(None)` when this copy no longer leads or the budget has no call left:
    /// nothing was written, and the streak stays for the next heartbeat.
    pub(super) async fn apply(&self, scale: ScaleTo) -> Result<Option<u32>, ScaleError> {
        let app = &self.settings.app_name;
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
        if scale.to == 0 && scale.from > 0 {
            if let Some(hook) = &self.shutdown_hook {
                hook.call_and_log(&reason).await;
            }
        }
        let result = self.scaler.set(scale.to).await;
        self.account(&result);
        let quantity = result?;
        tracing::info!(%app, from = scale.from, to = quantity, %reason, "Scaled.");
        Ok(Some(quantity))
    }
}
