//! Decision policies: how the size follows what the signal says, behind the engine's one step.
//!
//! A policy counts what each beat observed and says which size it would like from the current
//! one ([`Wish`]); the step around it applies what holds whatever the policy: the bounds in
//! force, the cool-offs, planned downtime, scale to zero and when to tell people. A new policy
//! is a variant of [`PolicyConfig`] and [`Policy`] and a file here; the step, the loop, the
//! simulator and the activator do not change. Pure: no I/O, no clock, no words.
//!
//! One policy today: 2.1's streaks ([`Streaks`]).

use super::{Config, Heartbeat, Inputs, Observation, ScaleReason};
use chrono::{DateTime, Utc};

/// Which policy decides, with its own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyConfig {
    Streaks(StreaksConfig),
}

/// 2.1's streaks: `increment` dynos after a streak of fails or passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreaksConfig {
    /// `number_of_fails_to_scale_up_after`.
    pub fails_to_scale_up: u32,
    /// `number_of_passes_to_scale_down_after`.
    pub passes_to_scale_down: u32,
    pub increment: u32,
}

/// What a policy would like from the current size, before the bounds and cool-offs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wish {
    Keep,
    /// More dynos: `to` (above the current size, maybe above the max in force).
    More {
        to: u32,
        reason: ScaleReason,
    },
    /// Fewer dynos: `to` (below the current size, maybe below the min in force).
    Fewer {
        to: u32,
        reason: ScaleReason,
    },
}

/// A policy's state between beats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    Streaks(Streaks),
}

impl Policy {
    pub fn new(config: &PolicyConfig) -> Self {
        match config {
            PolicyConfig::Streaks(_) => Policy::Streaks(Streaks::default()),
        }
    }

    /// Takes in one observed beat of an app that runs: `seen` is what the signal in use
    /// means; the beat's inputs and `now` are there for a policy that wants the router
    /// window's numbers or a time window (the streaks need neither). Never called during
    /// planned downtime.
    pub fn observe(&mut self, seen: &Heartbeat, _inputs: &Inputs, _now: DateTime<Utc>) {
        match self {
            Policy::Streaks(streaks) => streaks.observe(seen.observation),
        }
    }

    /// Forgets what was counted: around planned downtime, and while the app is stopped.
    pub fn forget(&mut self) {
        match self {
            Policy::Streaks(streaks) => streaks.forget(),
        }
    }

    /// The platform took a new size: 2.1 counts its streaks afresh.
    pub fn scaled(&mut self) {
        match self {
            Policy::Streaks(streaks) => streaks.forget(),
        }
    }

    /// The size the policy would like at `current` dynos (at `now`, for a policy that keeps
    /// time windows).
    pub fn wish(&self, config: &Config, current: u32, _now: DateTime<Utc>) -> Wish {
        match (self, &config.policy) {
            (Policy::Streaks(streaks), PolicyConfig::Streaks(rules)) => {
                streaks.wish(rules, config, current)
            }
        }
    }

    /// Why the policy leans towards more dynos now, with its numbers (for "needs more than
    /// max"); and whether a lull since is still too short to end that state.
    pub fn leaning_up(&self, config: &Config) -> (ScaleReason, bool) {
        match (self, &config.policy) {
            (Policy::Streaks(streaks), PolicyConfig::Streaks(rules)) => (
                ScaleReason::TooSlow {
                    heartbeats: streaks.consecutive_fails,
                    slower_than_ms: config.max_response_time_ms,
                },
                streaks.heartbeats_since_fail < rules.fails_to_scale_up,
            ),
        }
    }

    /// As [`Policy::leaning_up`], towards fewer dynos (for "needs less than min").
    pub fn leaning_down(&self, config: &Config) -> (ScaleReason, bool) {
        match (self, &config.policy) {
            (Policy::Streaks(streaks), PolicyConfig::Streaks(rules)) => (
                ScaleReason::FastEnough {
                    heartbeats: streaks.consecutive_passes,
                    faster_than_ms: config.min_response_time_ms,
                },
                streaks.heartbeats_since_pass < rules.passes_to_scale_down,
            ),
        }
    }
}

/// 2.1's counts: heartbeats in a row that failed or passed, and how long a lull has lasted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streaks {
    pub consecutive_fails: u32,
    pub consecutive_passes: u32,
    /// Heartbeats in a row that were not fails / not passes: how long a lull has lasted.
    pub heartbeats_since_fail: u32,
    pub heartbeats_since_pass: u32,
}

impl Streaks {
    /// A fail clears the passes, a pass clears the fails, anything else clears both.
    fn observe(&mut self, observation: Observation) {
        match observation {
            Observation::Fail => {
                self.consecutive_fails += 1;
                self.consecutive_passes = 0;
                self.heartbeats_since_fail = 0;
                self.heartbeats_since_pass = self.heartbeats_since_pass.saturating_add(1);
            }
            Observation::Pass => {
                self.consecutive_passes += 1;
                self.consecutive_fails = 0;
                self.heartbeats_since_pass = 0;
                self.heartbeats_since_fail = self.heartbeats_since_fail.saturating_add(1);
            }
            Observation::InBand | Observation::Misconfigured { .. } => {
                self.forget();
                self.heartbeats_since_fail = self.heartbeats_since_fail.saturating_add(1);
                self.heartbeats_since_pass = self.heartbeats_since_pass.saturating_add(1);
            }
        }
    }

    fn forget(&mut self) {
        self.consecutive_fails = 0;
        self.consecutive_passes = 0;
    }

    /// `increment` more after `fails_to_scale_up` fails in a row; `increment` fewer after
    /// `passes_to_scale_down` passes in a row.
    fn wish(&self, rules: &StreaksConfig, config: &Config, current: u32) -> Wish {
        if self.consecutive_fails >= rules.fails_to_scale_up {
            Wish::More {
                to: current.saturating_add(rules.increment),
                reason: ScaleReason::TooSlow {
                    heartbeats: rules.fails_to_scale_up,
                    slower_than_ms: config.max_response_time_ms,
                },
            }
        } else if self.consecutive_passes >= rules.passes_to_scale_down {
            Wish::Fewer {
                to: current.saturating_sub(rules.increment),
                reason: ScaleReason::FastEnough {
                    heartbeats: rules.passes_to_scale_down,
                    faster_than_ms: config.min_response_time_ms,
                },
            }
        } else {
            Wish::Keep
        }
    }
}
