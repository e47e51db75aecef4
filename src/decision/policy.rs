//! Decision policies: how the size follows what the signal says, behind the engine's one step.
//!
//! A policy counts what each beat observed and says which size it would like from the current
//! one ([`Wish`]); the step around it applies what holds whatever the policy: the bounds in
//! force, the cool-offs, planned downtime, scale to zero and when to tell people. A new policy
//! is a variant of [`PolicyConfig`] and [`Policy`] and a file here; the step, the loop, the
//! simulator and the activator do not change. Pure: no I/O, no clock, no words.
//!
//! Two policies: 2.1's streaks ([`Streaks`]) and target tracking ([`Target`], whose rules are
//! [`crate::policy::target`]'s; this file only hands it the beat and reads its decision).

use super::{Config, Heartbeat, HeartbeatReading, Inputs, Observation, ScaleReason};
use crate::policy::queue::{QueueConfig, QueueDecision, QueueSignal, QueueState, QueueWhy};
use crate::policy::target::{
    HeartbeatSignal, RouterSignal, SignalLost, TargetConfig, TargetDecision, TargetInput,
    TargetState, Why,
};
use crate::router_log::RouterStats;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Which policy decides, with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyConfig {
    Streaks(StreaksConfig),
    Target(TargetConfig),
    /// Job workers on their queues (`crate::policy::queue`): the only policy that may take a
    /// process type to zero, when `min_dynos` is 0.
    Queue(QueueConfig),
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
#[derive(Debug, Clone, Copy, PartialEq)]
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
#[derive(Debug, Clone)]
pub enum Policy {
    Streaks(Streaks),
    Target(Box<Target>),
    Queue(Queue),
}

impl Policy {
    pub fn new(config: &PolicyConfig) -> Self {
        match config {
            PolicyConfig::Streaks(_) => Policy::Streaks(Streaks::default()),
            PolicyConfig::Target(_) => Policy::Target(Box::default()),
            PolicyConfig::Queue(_) => Policy::Queue(Queue::default()),
        }
    }

    /// Whether the policy reads its signal while the process type is stopped and may take it
    /// to zero: the queue policy, whose jobs wait whether or not a worker runs.
    pub fn watches_at_zero(&self) -> bool {
        matches!(self, Policy::Queue(_))
    }

    /// Takes in one beat of an app that runs: `seen` is what the signal in use means (`None`
    /// when nothing was observed); the beat's inputs and `now` are there for a policy that
    /// wants the router window's numbers, the size or a time window (the streaks need
    /// neither). Never called during planned downtime.
    pub fn observe(
        &mut self,
        config: &Config,
        seen: Option<&Heartbeat>,
        inputs: &Inputs,
        now: DateTime<Utc>,
    ) {
        match (self, &config.policy) {
            (Policy::Streaks(streaks), _) => {
                if let Some(seen) = seen {
                    streaks.observe(seen.observation)
                }
            }
            (Policy::Target(target), PolicyConfig::Target(rules)) => {
                target.observe(rules, config, inputs, now)
            }
            (Policy::Queue(queue), PolicyConfig::Queue(rules)) => queue.observe(rules, inputs, now),
            _ => {}
        }
    }

    /// Forgets what was counted: around planned downtime, and while the app is stopped.
    pub fn forget(&mut self) {
        match self {
            Policy::Streaks(streaks) => streaks.forget(),
            Policy::Target(target) => target.forget(),
            Policy::Queue(queue) => *queue = Queue::default(),
        }
    }

    /// The platform took a new size: 2.1 counts its streaks afresh; the target policy's
    /// decision was for the size before.
    pub fn scaled(&mut self) {
        match self {
            Policy::Streaks(streaks) => streaks.forget(),
            Policy::Target(target) => target.last = None,
            Policy::Queue(queue) => queue.last = None,
        }
    }

    /// The size the policy would like at `current` dynos (at `now`, for a policy that keeps
    /// time windows).
    pub fn wish(&self, config: &Config, current: u32, now: DateTime<Utc>) -> Wish {
        match (self, &config.policy) {
            (Policy::Streaks(streaks), PolicyConfig::Streaks(rules)) => {
                streaks.wish(rules, config, current)
            }
            (Policy::Target(target), PolicyConfig::Target(rules)) => {
                target.wish(rules, config, current, now)
            }
            (Policy::Queue(queue), PolicyConfig::Queue(rules)) => queue.wish(rules, current),
            _ => Wish::Keep,
        }
    }

    /// Why the policy leans towards more dynos now, with its numbers (for "needs more than
    /// max"); and whether a lull since is still too short to end that state.
    pub fn leaning_up(&self, config: &Config) -> (ScaleReason, bool) {
        match (self, &config.policy) {
            (Policy::Streaks(streaks), PolicyConfig::Streaks(rules)) => (
                ScaleReason::TooSlow {
                    beats: streaks.consecutive_fails,
                    slower_than_ms: config.max_response_time_ms,
                    signal: config.signal,
                },
                streaks.heartbeats_since_fail < rules.fails_to_scale_up,
            ),
            (Policy::Target(target), PolicyConfig::Target(rules)) => (
                target.up_reason.unwrap_or(ScaleReason::AboveMax),
                target.up.since < rules.confirmations.max(1),
            ),
            (Policy::Queue(queue), PolicyConfig::Queue(rules)) => (
                queue
                    .last
                    .and_then(|(_, decision, signal)| queue_reason(rules, decision.why, signal))
                    .unwrap_or(ScaleReason::AboveMax),
                false,
            ),
            _ => (ScaleReason::AboveMax, false),
        }
    }

    /// As [`Policy::leaning_up`], towards fewer dynos (for "needs less than min").
    pub fn leaning_down(&self, config: &Config) -> (ScaleReason, bool) {
        match (self, &config.policy) {
            (Policy::Streaks(streaks), PolicyConfig::Streaks(rules)) => (
                ScaleReason::FastEnough {
                    beats: streaks.consecutive_passes,
                    faster_than_ms: config.min_response_time_ms,
                    signal: config.signal,
                },
                streaks.heartbeats_since_pass < rules.passes_to_scale_down,
            ),
            (Policy::Target(target), PolicyConfig::Target(rules)) => (
                target.down_reason.unwrap_or(ScaleReason::BelowMin),
                target.down.since < rules.confirmations.max(1),
            ),
            (Policy::Queue(queue), PolicyConfig::Queue(rules)) => (
                queue
                    .last
                    .and_then(|(_, decision, signal)| queue_reason(rules, decision.why, signal))
                    .unwrap_or(ScaleReason::BelowMin),
                false,
            ),
            _ => (ScaleReason::BelowMin, false),
        }
    }

    /// The signal the policy needs is missing or stale: since when, and whether this beat is
    /// the first of it. Only the target policy holds for it (the streaks read an empty window
    /// as 2.1 read a fast answer).
    pub fn signal_lost(&self) -> Option<SignalLost> {
        match self {
            Policy::Streaks(_) | Policy::Queue(_) => None,
            Policy::Target(target) => target.last.as_ref().and_then(|(_, d)| d.signal_lost),
        }
    }
}

/// Target tracking in the engine: [`TargetState`] fed one beat at a time, its last decision,
/// and how long its observations have asked past the size (for the notices at a bound).
#[derive(Debug, Clone, Default)]
pub struct Target {
    state: TargetState,
    /// The last beat's decision, with the size it was taken at.
    last: Option<(u32, TargetDecision)>,
    up: Run,
    down: Run,
    up_reason: Option<ScaleReason>,
    down_reason: Option<ScaleReason>,
}

/// Observations in a row that asked past the size one way, and since the last that did.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    in_a_row: u32,
    since: u32,
}

impl Run {
    fn step(&mut self, asked: bool) {
        if asked {
            self.in_a_row += 1;
            self.since = 0;
        } else {
            self.in_a_row = 0;
            self.since = self.since.saturating_add(1);
        }
    }
}

impl Target {
    fn observe(
        &mut self,
        rules: &TargetConfig,
        config: &Config,
        inputs: &Inputs,
        now: DateTime<Utc>,
    ) {
        // No size this beat (a standby, no budget, a failed read): nothing to decide from; the
        // router window is a rolling one, so nothing is lost by waiting for the next.
        let Some(current) = inputs.size else {
            self.last = None;
            return;
        };
        let bounds = config.bounds_at(now);
        let input = TargetInput {
            router: inputs.router.as_ref().map(router_signal),
            heartbeat: inputs.heartbeat.as_ref().and_then(heartbeat_signal),
            current,
            bounds: crate::policy::Bounds {
                min: bounds.min,
                max: bounds.max,
            },
            downtime: false,
        };
        let decision = self.state.step(rules, &input, now);
        let wanted = decision
            .wanted
            .map(|(size, why)| (size, reason(rules, why)));
        self.up.step(wanted.is_some_and(|(size, _)| size > current));
        self.down
            .step(wanted.is_some_and(|(size, _)| size < current));
        match wanted {
            Some((size, reason)) if size > current => self.up_reason = reason,
            Some((size, reason)) if size < current => self.down_reason = reason,
            _ => {}
        }
        self.last = Some((current, decision));
    }

    fn forget(&mut self) {
        *self = Target {
            state: std::mem::take(&mut self.state),
            ..Target::default()
        };
        self.state.forget();
    }

    /// The last decision at `current`; at a bound, what the load asks past it, once
    /// `confirmations` observations in a row asked for it (the step tells it, never acts on it).
    fn wish(
        &self,
        rules: &TargetConfig,
        config: &Config,
        current: u32,
        now: DateTime<Utc>,
    ) -> Wish {
        let Some((at, decision)) = &self.last else {
            return Wish::Keep;
        };
        if *at != current {
            return Wish::Keep;
        }
        let because = reason(rules, decision.why);
        match (decision.to, because) {
            (Some(to), Some(reason)) if to > current => return Wish::More { to, reason },
            (Some(to), Some(reason)) if to < current => return Wish::Fewer { to, reason },
            _ => {}
        }
        let bounds = config.bounds_at(now);
        let confirmed = rules.confirmations.max(1);
        let wanted = decision
            .wanted
            .and_then(|(size, why)| Some((size, reason(rules, why)?)));
        match wanted {
            Some((to, reason))
                if to > current && current >= bounds.max && self.up.in_a_row >= confirmed =>
            {
                Wish::More { to, reason }
            }
            Some((to, reason))
                if to < current
                    && current <= bounds.min.max(1)
                    && self.down.in_a_row >= confirmed =>
            {
                Wish::Fewer { to, reason }
            }
            _ => Wish::Keep,
        }
    }
}

/// The drain's window as the target policy reads it.
fn router_signal(stats: &RouterStats) -> RouterSignal {
    RouterSignal {
        requests: stats.requests,
        requests_per_second: stats.requests_per_second,
        mean_service_ms: stats.mean_service_ms,
        p95_latency_ms: stats.latency_p95_ms.map(|ms| ms as f64),
        timeouts: stats.timeouts,
        unavailable: stats.unavailable,
        // No line yet: an empty window, which the policy holds on as a missing signal.
        age: stats.since_last_line.unwrap_or(Duration::ZERO),
        window: stats.window,
    }
}

/// The heartbeat as the target policy reads it. A 4xx says the URL is wrong, not that the app
/// is slow: no signal, so it never adds dynos.
fn heartbeat_signal(reading: &HeartbeatReading) -> Option<HeartbeatSignal> {
    match reading {
        HeartbeatReading::Answered { status, elapsed } if *status < 400 => {
            Some(HeartbeatSignal::Answered {
                response_ms: elapsed.as_secs_f64() * 1000.0,
            })
        }
        HeartbeatReading::Answered { status, .. } if *status < 500 => None,
        _ => Some(HeartbeatSignal::Failed),
    }
}

/// The engine's reason for a move of the target policy, with its numbers; `None` for a hold.
fn reason(rules: &TargetConfig, why: Why) -> Option<ScaleReason> {
    Some(match why {
        Why::Load {
            desired,
            requests_per_second,
            service_ms,
            sizing,
        } => ScaleReason::Load {
            desired,
            requests_per_second,
            service_ms,
            sizing,
            utilisation: rules.target_utilisation,
            dyno_concurrency: rules.dyno_concurrency,
            max_ms: rules.max_response_time_ms,
        },
        Why::Slow { ratio } => ScaleReason::SlowAnswers {
            ratio,
            max_ms: rules.max_response_time_ms,
        },
        Why::FastFor(delay) => ScaleReason::FastFor {
            delay,
            max_ms: rules.max_response_time_ms,
        },
        Why::AboveMax => ScaleReason::AboveMax,
        Why::BelowMin => ScaleReason::BelowMin,
        _ => return None,
    })
}

/// The queue policy in the engine: [`QueueState`] fed one reading a beat, and its last
/// decision with the size it was taken at and the reading behind it.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    state: QueueState,
    last: Option<(u32, QueueDecision, QueueSignal)>,
}

impl Queue {
    fn observe(&mut self, rules: &QueueConfig, inputs: &Inputs, now: DateTime<Utc>) {
        let (Some(current), Some(read)) = (inputs.size, inputs.queue.as_ref()) else {
            // No size or no reading this beat: nothing to decide from.
            self.last = None;
            return;
        };
        let signal = read.as_ref().ok();
        let decision = self.state.step(rules, signal, current, now);
        self.last = signal.map(|signal| (current, decision, *signal));
    }

    fn wish(&self, rules: &QueueConfig, current: u32) -> Wish {
        let Some((at, decision, signal)) = self.last else {
            return Wish::Keep;
        };
        let (Some(to), true) = (decision.to, at == current) else {
            return Wish::Keep;
        };
        let Some(reason) = queue_reason(rules, decision.why, signal) else {
            return Wish::Keep;
        };
        match to.cmp(&current) {
            std::cmp::Ordering::Greater => Wish::More { to, reason },
            std::cmp::Ordering::Less => Wish::Fewer { to, reason },
            std::cmp::Ordering::Equal => Wish::Keep,
        }
    }
}

/// The engine's reason for a move of the queue policy, with its numbers; `None` for a hold.
fn queue_reason(rules: &QueueConfig, why: QueueWhy, signal: QueueSignal) -> Option<ScaleReason> {
    let desired = match why {
        QueueWhy::Backlog { desired, .. }
        | QueueWhy::Late { desired, .. }
        | QueueWhy::Quiet { desired, .. } => desired,
        _ => return None,
    };
    Some(ScaleReason::Queue {
        desired,
        jobs: signal.jobs,
        oldest_age: signal.oldest_age,
        jobs_per_worker: rules.jobs_per_worker(),
        target_latency: rules.target_latency,
        quiet_for: match why {
            QueueWhy::Quiet { delay, .. } => Some(delay),
            _ => None,
        },
    })
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
                    beats: rules.fails_to_scale_up,
                    slower_than_ms: config.max_response_time_ms,
                    signal: config.signal,
                },
            }
        } else if self.consecutive_passes >= rules.passes_to_scale_down {
            Wish::Fewer {
                to: current.saturating_sub(rules.increment),
                reason: ScaleReason::FastEnough {
                    beats: rules.passes_to_scale_down,
                    faster_than_ms: config.min_response_time_ms,
                    signal: config.signal,
                },
            }
        } else {
            Wish::Keep
        }
    }
}
