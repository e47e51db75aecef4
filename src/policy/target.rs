//! Target tracking: compute the dynos the measured load needs and scale straight to it, up
//! fast (several dynos at once, as soon as two observations agree), down slowly (to the
//! largest size asked for during the whole scale-down delay, as Kubernetes' HPA stabilises).
//!
//! With the log drain the size comes from Little's law: busy workers = request rate × service
//! time, and each dyno should run at most `dyno_concurrency × target_utilisation` of them.
//! Heroku's `service=` includes the time a request waited inside a busy dyno, so the mean of a
//! busy window overstates the work: the work is what remains once the wait of a dyno of
//! `dyno_concurrency` workers fed at random (Heroku's router) is taken out, by Erlang C, and
//! the median of such estimates over the last [`SERVICE_HORIZON`] (weighted by requests) is
//! used, leaving out windows with a backlog (whose wait no steady queue explains), so that
//! neither a passing backlog nor the noise of small windows moves it. With the heartbeat
//! alone there is no load to read, so the step is sized from how far the answer is over
//! `max_response_time_in_ms`, and the size goes down one dyno per delay, never back to a size
//! that was recently slow.
//!
//! It holds (never moves down) while the signal is missing or stale, stays inside the bounds
//! in force, and is frozen during planned downtime. Pure: no I/O, `now` is an argument; what to
//! log or tell is the caller's business ([`TargetDecision::signal_lost`] says when to log).

use super::Bounds;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;

/// The share of each dyno's workers the policy keeps busy by default: 10 % headroom absorbs
/// most rises of traffic while a new dyno boots (tuned on three real traces in
/// `bench/policies.sh`: 0.85 costs 5–10 % more dyno-hours, 0.95 is slow too often).
pub const DEFAULT_TARGET_UTILISATION: f64 = 0.9;
/// Three minutes: HPA's 300 s holds noisy traffic (NASA's) 7 % more dyno-hours for few
/// slow minutes less; two minutes lets the World Cup's and Wikipedia's surges catch it small.
pub const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(180);
/// Two observations in a row must agree before a scale up: one noisy window does not move it.
pub const DEFAULT_CONFIRMATIONS: u32 = 2;
/// A router window whose newest line is older than this is stale.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);
/// Web workers × threads of a typical dyno (and `simulate`'s default).
pub const DEFAULT_DYNO_CONCURRENCY: u32 = 4;

/// How far back the quietest window is looked for when estimating the service time: long
/// enough to include a calm moment, short enough to follow a deploy that changes it.
pub const SERVICE_HORIZON: Duration = Duration::from_secs(30 * 60);
/// A window whose wait would put the dyno's workers busier than this is a backlog, not a
/// steady queue: its wait says nothing of the work.
const SATURATED_SHARE: f64 = 0.95;
/// A failed heartbeat (timeout, connection error, 5xx) counts as an answer this many times
/// over the max: far enough over for the largest step.
const FAILED_RATIO: f64 = 2.0;
/// With the heartbeat alone, the most one step adds, as a share of the dynos: an answer says
/// how slow, not how many dynos short (a queue's wait grows steeply near saturation), and a
/// larger step overshoots for long at one dyno down per delay (measured in
/// docs/benchmarks.md: 0.4 keeps half the streaks' slow minutes at the least cost).
const MAX_STEP_SHARE: f64 = 0.4;
/// With the heartbeat alone, a size that was slow is not gone back to for this many
/// scale-down delays: a fast answer says little about headroom.
const SLOW_MEMORY_DELAYS: u32 = 4;

/// The policy's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// The latency target: `max_response_time_in_ms`.
    pub max_response_time_ms: u64,
    /// The share of each dyno's workers kept busy, in (0, 1].
    pub target_utilisation: f64,
    /// Requests one dyno serves at once (web workers × threads).
    pub dyno_concurrency: u32,
    /// How long every observation must have asked for fewer dynos before scaling down.
    pub scale_down_delay: Duration,
    /// Observations in a row that must ask for more dynos before scaling up (at least 1).
    pub confirmations: u32,
    /// A router window older than this is stale: hold.
    pub stale_after: Duration,
}

impl TargetConfig {
    /// The defaults, for a latency target.
    pub fn new(max_response_time_ms: u64) -> Self {
        TargetConfig {
            max_response_time_ms,
            target_utilisation: DEFAULT_TARGET_UTILISATION,
            dyno_concurrency: DEFAULT_DYNO_CONCURRENCY,
            scale_down_delay: DEFAULT_SCALE_DOWN_DELAY,
            confirmations: DEFAULT_CONFIRMATIONS,
            stale_after: DEFAULT_STALE_AFTER,
        }
    }

    /// Every knob out of range, as `(knob, what is expected)`.
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut problems = Vec::new();
        if !(self.target_utilisation > 0.0 && self.target_utilisation <= 1.0) {
            problems.push((
                "target_utilisation",
                "a share of each dyno's workers above 0 and at most 1, such as 0.85",
            ));
        }
        if self.dyno_concurrency == 0 {
            problems.push(("dyno_concurrency", "a whole number of requests, 1 or more"));
        }
        if self.confirmations == 0 {
            problems.push(("confirmations", "a whole number of observations, 1 or more"));
        }
        if self.max_response_time_ms == 0 {
            problems.push(("max_response_time_in_ms", "a number of ms above 0"));
        }
        problems
    }

    /// Busy workers one dyno should carry.
    fn busy_per_dyno(&self) -> f64 {
        f64::from(self.dyno_concurrency.max(1)) * self.target_utilisation.clamp(0.01, 1.0)
    }
}

/// The router's view of the last window, as the log drain aggregates it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterSignal {
    /// Requests the router logged in the window (H80 maintenance pages and client aborts
    /// excluded: they say nothing of the app's load).
    pub requests: u64,
    pub requests_per_second: f64,
    /// Mean `service=` of the window's requests, H12 timeouts counted at their 30 s.
    pub mean_service_ms: Option<f64>,
    /// p95 of `connect=` + `service=`.
    pub p95_latency_ms: Option<f64>,
    /// H11, H12 and H13 lines (the app could not keep up) in the window.
    pub timeouts: u64,
    /// H10, H14… lines (the app is down): never a reason to remove dynos.
    pub unavailable: u64,
    /// Since the newest line arrived: the staleness of the window.
    pub age: Duration,
    /// How far back the window reaches.
    pub window: Duration,
}

/// What the heartbeat saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeartbeatSignal {
    Answered {
        response_ms: f64,
    },
    /// A timeout, a connection error or a 5xx.
    Failed,
}

/// One observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetInput {
    /// `None` when the worker has no drain.
    pub router: Option<RouterSignal>,
    /// `None` when no heartbeat was sent.
    pub heartbeat: Option<HeartbeatSignal>,
    /// The quantity the platform reports.
    pub current: u32,
    pub bounds: Bounds,
    /// A planned downtime window is in force.
    pub downtime: bool,
}

/// What set the size the load needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// Busy workers over `dyno_concurrency × target_utilisation` per dyno.
    Utilisation,
    /// The fewest dynos whose p95 stays under `max_response_time_in_ms`.
    Latency,
    /// A backlog: at least half as many dynos again.
    Backlog,
}

/// Why the policy moved or held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Why {
    /// Frozen: planned downtime.
    Downtime,
    AboveMax,
    BelowMin,
    /// The load needs `desired` dynos (router: rate × service time), as `sizing` says.
    Load {
        desired: u32,
        requests_per_second: f64,
        service_ms: f64,
        sizing: Sizing,
    },
    /// Heartbeat alone: `ratio` times over the max.
    Slow {
        ratio: f64,
    },
    /// Heartbeat alone: no slow answer for the whole scale-down delay.
    FastFor(Duration),
    /// More dynos are wanted but not yet by `needed` observations in a row.
    Confirming {
        seen: u32,
        needed: u32,
    },
    /// The window still holds lines served before the last scale up: they say nothing of the
    /// new size.
    Settling,
    /// Fewer dynos are wanted but the scale-down delay has not passed.
    Stabilising {
        desired: u32,
    },
    /// The size is what the load needs.
    Steady,
    /// The router window has no request (the drain is quiet, or sends garbage).
    SignalMissing,
    /// The router window's newest line is older than `stale_after`.
    SignalStale {
        age: Duration,
    },
    /// The router says the app is down (H10, H14…): not slow, and no reason to remove dynos.
    AppDown {
        lines: u64,
    },
}

impl Why {
    /// A few words for logs and notifications.
    pub fn describe(&self, config: &TargetConfig) -> String {
        match self {
            Why::Downtime => "planned downtime: the size is frozen".to_string(),
            Why::AboveMax => "above max_dynos in force".to_string(),
            Why::BelowMin => "below min_dynos in force".to_string(),
            Why::Load {
                desired,
                requests_per_second,
                service_ms,
                ..
            } => format!(
                "the router's {requests_per_second:.1} req/s at {service_ms:.0} ms of service need {desired} dynos at {:.0} % of {} workers each",
                config.target_utilisation * 100.0,
                config.dyno_concurrency
            ),
            Why::Slow { ratio } => format!(
                "heartbeat {ratio:.1} times the max of {} ms",
                config.max_response_time_ms
            ),
            Why::FastFor(delay) => format!(
                "no heartbeat over {} ms for {} s",
                config.max_response_time_ms,
                delay.as_secs()
            ),
            Why::Confirming { seen, needed } => {
                format!("more dynos wanted by {seen} of {needed} observations in a row")
            }
            Why::Stabilising { desired } => format!(
                "{desired} dynos would do, but not for the whole scale-down delay of {} s yet",
                config.scale_down_delay.as_secs()
            ),
            Why::Settling => {
                "the router window still holds lines from before the last scale up".to_string()
            }
            Why::Steady => "the size matches the load".to_string(),
            Why::SignalMissing => {
                "no request in the router window: holding (never down without a signal)"
                    .to_string()
            }
            Why::SignalStale { age } => format!(
                "the router window is {} s old: holding (never down on a stale signal)",
                age.as_secs()
            ),
            Why::AppDown { lines } => format!(
                "{lines} router lines say the app is down (H10, H14…): holding (never down while it is)"
            ),
        }
    }
}

/// A signal that went missing: since when, and whether this observation is the first of it
/// (log and tell once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalLost {
    pub since: DateTime<Utc>,
    pub first: bool,
}

/// What one observation decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetDecision {
    /// `Some(n)`, `n` different from the current size: scale to `n`.
    pub to: Option<u32>,
    pub why: Why,
    /// While the signal is missing or stale.
    pub signal_lost: Option<SignalLost>,
    /// The size this observation asked for before the bounds, the confirmations and the
    /// scale-down delay, and why (`Why::Load`, `Why::Slow` or `Why::FastFor`); `None` when it
    /// asked nothing (no usable signal, downtime). What the caller tells when the app is at a
    /// bound and the load asks past it.
    pub wanted: Option<(u32, Why)>,
}

/// What the policy remembers between observations.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// `(when, dynos wanted)` of the usable observations within the scale-down delay.
    wanted: VecDeque<(DateTime<Utc>, u32)>,
    /// Usable observations in a row that wanted more dynos than the size then.
    wanted_more_in_a_row: u32,
    /// `(when, work ms, requests)` of router windows within [`SERVICE_HORIZON`].
    service_ms: VecDeque<(DateTime<Utc>, f64, u64)>,
    /// Heartbeat alone: the ratios of the slow answers in a row.
    slow_ratios: Vec<f64>,
    /// Heartbeat alone: the last slow answer, and the size it was slow at.
    last_slow: Option<(DateTime<Utc>, u32)>,
    /// Heartbeat alone: since when every answer was under the max.
    fast_since: Option<DateTime<Utc>>,
    /// Since when the signal has been missing or stale.
    lost_since: Option<DateTime<Utc>>,
    /// When the router signal last scaled the app up.
    scaled_up_at: Option<DateTime<Utc>>,
}

impl TargetState {
    pub fn new() -> Self {
        TargetState::default()
    }

    /// Decides on one observation.
    pub fn step(
        &mut self,
        config: &TargetConfig,
        input: &TargetInput,
        now: DateTime<Utc>,
    ) -> TargetDecision {
        let current = input.current;
        let bounds = input.bounds;
        if input.downtime {
            // What was seen before the window says nothing of the load after it.
            self.forget_streaks();
            return hold(Why::Downtime);
        }
        if current > bounds.max {
            self.forget_streaks();
            return scale(current, bounds.max, Why::AboveMax);
        }
        if current < bounds.min {
            self.forget_streaks();
            return scale(current, bounds.min, Why::BelowMin);
        }
        if current == 0 {
            // A stopped app is started by the bounds or the activator, never by a policy.
            return hold(Why::Steady);
        }
        match (input.router, input.heartbeat) {
            (Some(router), heartbeat) => {
                let lost = if router.age > config.stale_after {
                    Some(Why::SignalStale { age: router.age })
                } else if router.requests == 0 || router.mean_service_ms.is_none() {
                    Some(Why::SignalMissing)
                } else {
                    None
                };
                match lost {
                    None => {
                        self.lost_since = None;
                        self.on_router(config, &router, current, bounds, now)
                    }
                    Some(why) => {
                        let signal_lost = self.lost(now);
                        // The heartbeat, when there is one, may still add dynos, never remove.
                        let mut decision = match heartbeat {
                            Some(beat) => {
                                let decision =
                                    self.on_heartbeat(config, beat, current, bounds, now);
                                match decision.to {
                                    Some(to) if to > current => decision,
                                    _ => hold(why),
                                }
                            }
                            None => hold(why),
                        };
                        decision.signal_lost = Some(signal_lost);
                        decision
                    }
                }
            }
            (None, Some(beat)) => {
                self.lost_since = None;
                self.on_heartbeat(config, beat, current, bounds, now)
            }
            (None, None) => {
                let mut decision = hold(Why::SignalMissing);
                decision.signal_lost = Some(self.lost(now));
                decision
            }
        }
    }

    fn lost(&mut self, now: DateTime<Utc>) -> SignalLost {
        match self.lost_since {
            Some(since) => SignalLost {
                since,
                first: false,
            },
            None => {
                self.lost_since = Some(now);
                SignalLost {
                    since: now,
                    first: true,
                }
            }
        }
    }

    /// Forgets the observations in a row and the wishes of the scale-down delay (around planned
    /// downtime, while the app is stopped); the service time estimate stays.
    pub fn forget(&mut self) {
        self.forget_streaks();
    }

    fn forget_streaks(&mut self) {
        self.wanted.clear();
        self.wanted_more_in_a_row = 0;
        self.slow_ratios.clear();
        self.fast_since = None;
    }

    /// The work per request over the horizon: the median of the windows' estimates, each
    /// weighted by its requests, this window's included when a steady queue explains it; `None`
    /// when no window of the horizon could be read that way. The median, not the smallest: a
    /// window of few requests is noisy, and the smallest of many noisy estimates is far below
    /// the work (30 % below at a dozen requests a window), which sizes the app into saturation;
    /// a few windows inflated by a passing backlog do not move a median.
    fn service_estimate_ms(
        &mut self,
        work_ms: Option<f64>,
        requests: u64,
        now: DateTime<Utc>,
    ) -> Option<f64> {
        if let Some(ms) = work_ms {
            self.service_ms.push_back((now, ms, requests.max(1)));
        }
        let horizon = chrono::Duration::from_std(SERVICE_HORIZON).unwrap_or_default();
        while self
            .service_ms
            .front()
            .is_some_and(|(at, ..)| now - *at > horizon)
        {
            self.service_ms.pop_front();
        }
        let mut estimates: Vec<(f64, u64)> = self
            .service_ms
            .iter()
            .map(|(_, ms, requests)| (*ms, *requests))
            .collect();
        estimates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = estimates.iter().map(|(_, requests)| requests).sum::<u64>() / 2;
        let mut seen = 0;
        estimates.into_iter().find_map(|(ms, requests)| {
            seen += requests;
            (seen > half).then_some(ms)
        })
    }

    fn on_router(
        &mut self,
        config: &TargetConfig,
        router: &RouterSignal,
        current: u32,
        bounds: Bounds,
        now: DateTime<Utc>,
    ) -> TargetDecision {
        // Lines served before a scale up were served by fewer dynos: read again, they would
        // ask for the same dynos once more, on top of those just added.
        let window = chrono::Duration::from_std(router.window).unwrap_or_default();
        if self.scaled_up_at.is_some_and(|at| now - at < window) {
            return hold(Why::Settling);
        }
        let mean_ms = router.mean_service_ms.unwrap_or_default().max(0.0);
        let per_dyno = router.requests_per_second.max(0.0) / f64::from(current.max(1));
        let work_ms = work_in(mean_ms, per_dyno, config.dyno_concurrency);
        let service_ms = self
            .service_estimate_ms(work_ms, router.requests, now)
            .unwrap_or(mean_ms);
        let rate = router.requests_per_second.max(0.0);
        let busy_workers = rate * service_ms / 1000.0;
        let by_utilisation = (busy_workers / config.busy_per_dyno()).ceil();
        let by_utilisation = if by_utilisation.is_finite() {
            by_utilisation.clamp(1.0, f64::from(u32::MAX)) as u32
        } else {
            u32::MAX
        };
        // The latency target too: with slow requests, dynos busy at the target utilisation
        // already answer over the max (at 200 ms of work and 4 workers, 90 % busy is a p95 of
        // about 1.5 s).
        let by_latency = fewest_for_latency(
            rate,
            service_ms,
            config.dyno_concurrency,
            config.max_response_time_ms as f64,
            by_utilisation,
        );
        // A backlog (a window no steady queue explains, or requests the router gave up on):
        // the app served all it could, and the router logs a request when it answers, so the
        // rate is what was served, not what was asked: at least half as many dynos again.
        let backlog = router.requests > 0 && (work_ms.is_none() || router.timeouts > 0);
        let by_backlog = if backlog {
            current.saturating_add(current.div_ceil(2).max(1))
        } else {
            0
        };
        let desired = by_utilisation.max(by_latency).max(by_backlog);
        let sizing = if desired == by_backlog && desired > by_utilisation.max(by_latency) {
            Sizing::Backlog
        } else if by_latency > by_utilisation {
            Sizing::Latency
        } else {
            Sizing::Utilisation
        };
        let load = Why::Load {
            desired,
            requests_per_second: router.requests_per_second,
            service_ms,
            sizing,
        };
        let decision = self.track(config, desired, current, bounds, now, load);
        if decision.to.is_some_and(|to| to > current) {
            self.scaled_up_at = Some(now);
        }
        let mut decision = match decision.to {
            Some(to) if to < current && router.unavailable > 0 => hold(Why::AppDown {
                lines: router.unavailable,
            }),
            _ => decision,
        };
        decision.wanted = Some((desired, load));
        decision
    }

    /// Records what this observation wants and decides: up to the smallest of the last
    /// `confirmations` wishes when they all want more; down to the largest wish of the whole
    /// scale-down delay when they all want less.
    fn track(
        &mut self,
        config: &TargetConfig,
        desired: u32,
        current: u32,
        bounds: Bounds,
        now: DateTime<Utc>,
        why: Why,
    ) -> TargetDecision {
        let floor = bounds.min.max(1).min(bounds.max);
        let desired = desired.max(floor).min(bounds.max);
        self.wanted.push_back((now, desired));
        let delay = chrono::Duration::from_std(config.scale_down_delay).unwrap_or_default();
        // Keep the newest wish older than the delay: it shows the delay is covered.
        while self.wanted.len() > 1
            && self
                .wanted
                .get(1)
                .is_some_and(|(at, ..)| now - *at >= delay)
        {
            self.wanted.pop_front();
        }
        if desired > current {
            self.wanted_more_in_a_row += 1;
        } else {
            self.wanted_more_in_a_row = 0;
        }
        let needed = config.confirmations.max(1);
        if desired > current {
            if self.wanted_more_in_a_row < needed {
                return hold(Why::Confirming {
                    seen: self.wanted_more_in_a_row,
                    needed,
                });
            }
            let confirmed = self
                .wanted
                .iter()
                .rev()
                .take(needed as usize)
                .map(|(_, wanted)| *wanted)
                .min()
                .unwrap_or(desired);
            self.wanted_more_in_a_row = 0;
            return scale(current, confirmed.max(current + 1).min(bounds.max), why);
        }
        if desired < current {
            let covered = self
                .wanted
                .front()
                .is_some_and(|(at, ..)| now - *at >= delay);
            let largest = self
                .wanted
                .iter()
                .map(|(_, wanted)| *wanted)
                .max()
                .unwrap_or(current);
            if covered && largest < current {
                return scale(current, largest, why);
            }
            return hold(Why::Stabilising { desired: largest });
        }
        hold(Why::Steady)
    }

    fn on_heartbeat(
        &mut self,
        config: &TargetConfig,
        heartbeat: HeartbeatSignal,
        current: u32,
        bounds: Bounds,
        now: DateTime<Utc>,
    ) -> TargetDecision {
        let max_ms = config.max_response_time_ms.max(1) as f64;
        let ratio = match heartbeat {
            HeartbeatSignal::Answered { response_ms } => response_ms.max(0.0) / max_ms,
            HeartbeatSignal::Failed => FAILED_RATIO,
        };
        let delay = chrono::Duration::from_std(config.scale_down_delay).unwrap_or_default();
        if ratio > 1.0 {
            self.fast_since = None;
            self.last_slow = Some((now, current));
            self.slow_ratios.push(ratio);
            let needed = config.confirmations.max(1) as usize;
            if self.slow_ratios.len() < needed {
                return hold(Why::Confirming {
                    seen: self.slow_ratios.len() as u32,
                    needed: needed as u32,
                });
            }
            if current >= bounds.max {
                let mut decision = hold(Why::Slow { ratio });
                decision.wanted = Some((current.saturating_add(1), Why::Slow { ratio }));
                return decision;
            }
            // The smallest of the confirming answers: the step that all of them ask for.
            let confirmed = self
                .slow_ratios
                .iter()
                .rev()
                .take(needed)
                .fold(f64::INFINITY, |a, &b| a.min(b));
            self.slow_ratios.clear();
            let step = (f64::from(current) * (confirmed - 1.0).min(MAX_STEP_SHARE))
                .ceil()
                .max(1.0) as u32;
            let why = Why::Slow { ratio: confirmed };
            let mut decision = scale(current, current.saturating_add(step).min(bounds.max), why);
            decision.wanted = Some((current.saturating_add(step), why));
            return decision;
        }
        self.slow_ratios.clear();
        let fast_since = *self.fast_since.get_or_insert(now);
        let floor = bounds.min.max(1).min(bounds.max);
        if now - fast_since < delay {
            return hold(Why::Steady);
        }
        if current <= floor {
            let mut decision = hold(Why::Steady);
            let why = Why::FastFor(config.scale_down_delay);
            decision.wanted = Some((current.saturating_sub(1), why));
            return decision;
        }
        let memory = delay * SLOW_MEMORY_DELAYS as i32;
        let recently_slow_at = self
            .last_slow
            .filter(|(at, _)| now - *at < memory)
            .map(|(_, size)| size);
        let to = current - 1;
        if recently_slow_at.is_some_and(|size| to <= size) {
            return hold(Why::Steady);
        }
        // The delay starts again: one dyno per delay.
        self.fast_since = Some(now);
        let why = Why::FastFor(config.scale_down_delay);
        let mut decision = scale(current, to, why);
        decision.wanted = Some((to, why));
        decision
    }
}

/// The fewest dynos, from `from` up, each a dyno of `workers` fed `rate / dynos` at random with
/// `service_ms` of work (M/M/c), whose p95 is at most `max_ms`; where even the work alone is
/// too slow, the count past which more dynos stop helping.
pub fn fewest_for_latency(rate: f64, service_ms: f64, workers: u32, max_ms: f64, from: u32) -> u32 {
    let from = from.max(1);
    if rate <= 0.0 || service_ms <= 0.0 || !rate.is_finite() || !service_ms.is_finite() {
        return from;
    }
    let service_per_s = 1000.0 / service_ms;
    let mut previous_p95_ms = f64::INFINITY;
    // Enough for any app: beyond it the bounds decide anyway.
    for dynos in from..from.saturating_add(1000) {
        let Some(queue) = crate::erlang::Mmc::new(workers, rate / f64::from(dynos), service_per_s)
        else {
            continue;
        };
        let p95_ms = queue.response_quantile_s(0.95) * 1000.0;
        if p95_ms <= max_ms || p95_ms >= previous_p95_ms * 0.99 {
            return dynos;
        }
        previous_p95_ms = p95_ms;
    }
    from.saturating_add(1000)
}

/// The mean work of a request whose mean time in the dyno was `mean_ms`, at `per_dyno_rate`
/// requests per second on a dyno of `workers` (M/M/c: time = S + C(c, λS)·S / (c − λS), which
/// grows with S; solved by bisection). `None` for a time only a dyno at saturation would
/// give (a backlog: its wait says nothing of the work).
pub fn work_in(mean_ms: f64, per_dyno_rate: f64, workers: u32) -> Option<f64> {
    let workers = workers.max(1);
    let c = f64::from(workers);
    let mean_s = mean_ms / 1000.0;
    if per_dyno_rate <= 0.0 || mean_s <= 0.0 {
        return Some(mean_ms);
    }
    let time_in_dyno = |work_s: f64| {
        let load = per_dyno_rate * work_s;
        work_s + crate::erlang::erlang_c(workers, load) * work_s / (c - load)
    };
    let (mut low, mut high) = (0.0, mean_s.min(c / per_dyno_rate * (1.0 - 1e-9)));
    if time_in_dyno(high) <= mean_s {
        return None;
    }
    for _ in 0..60 {
        let mid = 0.5 * (low + high);
        if time_in_dyno(mid) < mean_s {
            low = mid;
        } else {
            high = mid;
        }
    }
    let work_s = 0.5 * (low + high);
    // So close to saturation, no steady queue holds: the wait is a backlog's.
    (per_dyno_rate * work_s / c <= SATURATED_SHARE).then_some(work_s * 1000.0)
}

fn hold(why: Why) -> TargetDecision {
    TargetDecision {
        to: None,
        why,
        signal_lost: None,
        wanted: None,
    }
}

fn scale(current: u32, to: u32, why: Why) -> TargetDecision {
    TargetDecision {
        to: (to != current).then_some(to),
        why,
        signal_lost: None,
        wanted: None,
    }
}

#[cfg(test)]
mod tests;
