//! How the worker talks to the platform: reading the size within the API key's budget,
//! setting it, and pausing platform calls after a refusal.
//!
//! It owns [`Pace`], the refusal pause and the accounting of each call against the budget:
//! every read and every write spends from the budget through [`Worker::spend`]. It must not
//! decide anything: the engine decides, the loop in [`super`] chooses when to call here and
//! hands what came of a call back to the engine.

use super::Worker;
use crate::budget::{ApiBudget, Call, REFRESH_EVERY_BEATS};
use crate::decision::{Acted, ScaleTo};
use crate::notices;
use autoscalebot_backends::retry::Backoff;
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
    Backoff::doubling(base, MAX_REFUSAL_PAUSE.max(base)).delay(count)
}

/// Logs a read or write that failed without a refusal: `what` failed, and the next heartbeat
/// tries again, unless the call ended because the worker is shutting down.
fn failed_call(app: &str, error: &ScaleError, message: &str, what: &str) {
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
    /// The budget's pace: a size [`REFRESH_EVERY_BEATS`] old is re-read when it is also this
    /// many heartbeats old, or while the budget has room (`None`: only then); see
    /// [`crate::budget::plan`].
    pub refresh_every_beats: Option<u32>,
}

/// What the beat tells when the key's budget has no call left for a read.
const NO_BUDGET: &str = "the API budget of this key has no call left; trying again next heartbeat";

/// Where this beat's size came from.
pub(super) enum Size {
    /// Read from the platform just now.
    Read(u32),
    /// The last size known, recent enough to decide from while nothing rests on it.
    Known(u32),
    /// The read failed.
    Failed(ScaleError),
    /// No call was made (a standby, a refusal pause, no budget left), with what the beat
    /// says about it.
    Skipped(Option<String>),
}

impl Size {
    pub(super) fn quantity(&self) -> Option<u32> {
        match self {
            Size::Read(quantity) | Size::Known(quantity) => Some(*quantity),
            Size::Failed(_) | Size::Skipped(_) => None,
        }
    }

    /// Why no call was made, for the beat's record.
    pub(super) fn skipped_why(&self) -> Option<String> {
        match self {
            Size::Skipped(why) => why.clone(),
            _ => None,
        }
    }
}

/// What came of a write.
pub(super) enum Applied {
    /// The platform reports this quantity (a dry run: the quantity it would).
    Done(u32),
    /// This copy no longer holds the leader lock: nothing was written.
    NotLeader,
    /// The key's budget has no call left: nothing was written, and the engine asks again.
    NoBudget,
    Failed(ScaleError),
}

impl Worker {
    /// The size to decide from: nothing for a standby or during a refusal pause; a read when
    /// nothing is known yet (or the last call failed), when the app is stopped, or when the
    /// size known is [`REFRESH_EVERY_BEATS`] old and the budget's pace allows a read; else
    /// the last size known, which the loop reads fresh before it acts on it.
    pub(super) async fn size(&mut self, leader: bool) -> Size {
        if !leader {
            // A standby keeps its streaks warm for the moment it takes over, and spends no
            // API call: the leader reads for both.
            tracing::debug!(app = %self.settings.app_name, "Standby: not reading, scaling or telling.");
            return Size::Skipped(None);
        }
        if let Some(paused) = self.paused_by_refusal() {
            // Heartbeats go on and count; the platform is left alone until the pause ends.
            return Size::Skipped(Some(paused));
        }
        // After a failed call nothing known is trusted: only a read tells that the platform
        // answers again.
        let Some(known) = self.scaler.recent().filter(|_| !self.call_failed) else {
            return self.confirm_size().await;
        };
        // A stopped app is only read, to see it run again.
        if !self.stopped && !self.stale(known.at) {
            return Size::Known(known.quantity);
        }
        let Some(pace) = self.pace.clone() else {
            return self.read().await;
        };
        let due = self.refresh_due(&pace, known.at);
        if self.spend(&pace, Call::Refresh { due }) {
            self.read().await
        } else {
            Size::Known(known.quantity)
        }
    }

    /// The size read at `read_at` is [`REFRESH_EVERY_BEATS`] heartbeats old: a scale made by
    /// hand since would go unseen any longer.
    fn stale(&self, read_at: Instant) -> bool {
        let age = Instant::now().saturating_duration_since(read_at);
        age >= self
            .settings
            .heartbeat
            .interval
            .saturating_mul(REFRESH_EVERY_BEATS)
    }

    /// A read for a decision: before a write the engine wants on a size only known.
    pub(super) async fn confirm_size(&mut self) -> Size {
        if let Some(pace) = self.pace.clone() {
            if !self.spend(&pace, Call::Decision) {
                tracing::warn!(app = %self.settings.app_name, "Not reading the formation: the API budget is spent.");
                return Size::Skipped(Some(NO_BUDGET.to_string()));
            }
        }
        self.read().await
    }

    /// The planned pace says the size read at `read_at` is stale.
    fn refresh_due(&self, pace: &Pace, read_at: Instant) -> bool {
        let age = Instant::now().saturating_duration_since(read_at);
        pace.refresh_every_beats
            .is_some_and(|beats| age >= self.settings.heartbeat.interval.saturating_mul(beats))
    }

    /// Takes one call from the key's budget when `call` may have it now.
    fn spend(&self, pace: &Pace, call: Call) -> bool {
        let mut budget = pace.budget.lock().expect("not poisoned");
        budget.try_take(Instant::now(), call)
    }

    async fn read(&mut self) -> Size {
        let result = self.scaler.current().await;
        self.account(&result);
        self.call_failed = result.is_err();
        match result {
            Ok(quantity) => Size::Read(quantity),
            Err(error) => Size::Failed(error),
        }
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
    fn paused_by_refusal(&self) -> Option<String> {
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

    /// A read or a write failed: counts it, logs it, pauses platform calls when the platform
    /// refused it, and says what to feed back to the engine.
    pub(super) fn failed(
        &mut self,
        error: &ScaleError,
        scale: Option<ScaleTo>,
        message: String,
        what: &str,
    ) -> Acted {
        self.telemetry.metrics.api_error(error.kind());
        if self.refused(error, &message) {
            Acted::Refused {
                scale,
                error: message,
            }
        } else {
            failed_call(&self.settings.app_name, error, &message, what);
            Acted::Failed {
                scale,
                error: message,
            }
        }
    }

    /// When the platform refused the call (a 4xx other than 429: a wrong key, app or process
    /// type, which trying again will not fix), pauses platform calls for a growing time and
    /// says so: one warning when the refusals start or change cause, quieter after.
    fn refused(&mut self, error: &ScaleError, message: &str) -> bool {
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

    /// Sets the size: in a dry run, only says so; otherwise with the leader lock confirmed and
    /// a call from the budget, and the shutdown hook called first when it stops the app.
    pub(super) async fn apply(&mut self, scale: ScaleTo) -> Applied {
        let app = &self.settings.app_name;
        let reason = notices::describe(&scale.reason);
        if self.dry_run {
            tracing::info!(%app, from = scale.from, to = scale.to, %reason, "Would scale (dry run).");
            return Applied::Done(scale.to);
        }
        if !self.leadership.confirm().await {
            tracing::warn!(%app, from = scale.from, to = scale.to, "Not scaling: this worker no longer holds the leader lock.");
            return Applied::NotLeader;
        }
        if let Some(pace) = &self.pace {
            if !self.spend(pace, Call::Decision) {
                tracing::warn!(%app, from = scale.from, to = scale.to, "Not scaling yet: the API budget is spent; trying again next heartbeat.");
                return Applied::NoBudget;
            }
        }
        if scale.to == 0 && scale.from > 0 {
            if let Some(hook) = &self.shutdown_hook {
                hook.call_and_log(&reason).await;
            }
        }
        let result = self.scaler.set(scale.to).await;
        self.account(&result);
        self.call_failed = result.is_err();
        match result {
            Ok(quantity) => {
                tracing::info!(%app, from = scale.from, to = quantity, %reason, "Scaled.");
                Applied::Done(quantity)
            }
            Err(error) => Applied::Failed(error),
        }
    }
}
