//! What one beat saw, in the engine's terms, and what it means for scaling: a heartbeat's
//! reading and a router window, each classified against `max_response_time_in_ms` and
//! `min_response_time_in_ms` (both strict, as in 2.1), and the two combined for
//! `signal = "both"`.
//!
//! Pure and wordless: what was seen is kept as numbers ([`Seen`]), and `crate::notices` words
//! it for logs, pings and the status page.

use crate::router_log::RouterStats;
use std::time::Duration;

/// What the heartbeat request got, as the loop read it from the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatReading {
    /// An answer with this status, `elapsed` covering the whole response.
    Answered { status: u16, elapsed: Duration },
    /// No whole answer within the heartbeat timeout.
    TimedOut { after: Duration },
    /// No answer at all (refused, reset, DNS, TLS), with the error's words. `refused`: the
    /// connection was refused, so nothing listens where the URL points.
    Unreachable { error: String, refused: bool },
}

/// What one beat means for scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Too slow, a timeout, a connection error or a 5xx: counts towards scaling up.
    Fail,
    /// Faster than `min_response_time_in_ms`: counts towards scaling down.
    Pass,
    /// Between the min and the max: breaks both streaks.
    InBand,
    /// A 4xx (`status`), or a connection refused before the app ever answered (`None`): the
    /// heartbeat URL or its auth is wrong. Breaks both streaks, never adds dynos.
    Misconfigured { status: Option<u16> },
}

/// A classified beat, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub observation: Observation,
    /// The measured time (the heartbeat's, or the router's p95), when there is one.
    pub response_time_ms: Option<u64>,
    pub seen: Seen,
}

/// What was seen, for the words people read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Heartbeat(HeartbeatReading),
    Router(RouterReading),
    /// `signal = "both"`: the heartbeat, then the router window.
    Both(Box<Seen>, Box<Seen>),
    /// Nothing was observed: the app is stopped, so no heartbeat was sent.
    Nothing,
}

/// The numbers of a router window that a beat's summary shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterReading {
    pub window: Duration,
    pub requests: u64,
    pub errors: u64,
    /// Lines that say the app is down (H10, H14…) or nothing of its speed (H80, H27…).
    pub unavailable: u64,
    pub silent: u64,
    /// `None`: no requests; `u64::MAX`: router errors without times.
    pub latency_p95_ms: Option<u64>,
}

impl Heartbeat {
    /// The beat of an app that was not observed (stopped): in band, so it counts for nothing.
    pub fn nothing() -> Self {
        Heartbeat {
            observation: Observation::InBand,
            response_time_ms: None,
            seen: Seen::Nothing,
        }
    }
}

/// Classifies a heartbeat reading against the min and max (both strict, as in 2.1).
pub fn classify(
    reading: &HeartbeatReading,
    max_response_time_ms: u64,
    min_response_time_ms: u64,
) -> Heartbeat {
    let (observation, response_time_ms) = match reading {
        HeartbeatReading::Answered { status, elapsed } => {
            let ms = elapsed.as_millis() as u64;
            let observation = match *status {
                400..=499 => Observation::Misconfigured {
                    status: Some(*status),
                },
                500..=599 => Observation::Fail,
                _ if ms > max_response_time_ms => Observation::Fail,
                _ if ms < min_response_time_ms => Observation::Pass,
                _ => Observation::InBand,
            };
            (observation, Some(ms))
        }
        HeartbeatReading::TimedOut { after } => (Observation::Fail, Some(after.as_millis() as u64)),
        HeartbeatReading::Unreachable { .. } => (Observation::Fail, None),
    };
    Heartbeat {
        observation,
        response_time_ms,
        seen: Seen::Heartbeat(reading.clone()),
    }
}

/// Classifies a router window from the log drain by its p95 against the same min and max as
/// a heartbeat (both strict). A window without any line is a pass, as in 2.1's drain: nobody
/// waited, so the app has more dynos than its traffic needs (the bounds still hold the size at
/// `min_dynos`). A window whose only lines say the app is down or say nothing of its speed
/// (H10/H14 crashes, H80 maintenance, client aborts) is in band: no reason to add dynos, and
/// none to remove any.
pub fn classify_router(
    stats: &RouterStats,
    max_response_time_ms: u64,
    min_response_time_ms: u64,
) -> Heartbeat {
    let seen = Seen::Router(RouterReading {
        window: stats.window,
        requests: stats.requests,
        errors: stats.errors,
        unavailable: stats.unavailable,
        silent: stats.silent,
        latency_p95_ms: stats.latency_p95_ms,
    });
    let Some(p95) = stats.latency_p95_ms else {
        let quiet = stats.unavailable == 0 && stats.silent == 0;
        return Heartbeat {
            observation: if quiet {
                Observation::Pass
            } else {
                Observation::InBand
            },
            response_time_ms: None,
            seen,
        };
    };
    let observation = if p95 > max_response_time_ms {
        Observation::Fail
    } else if p95 < min_response_time_ms {
        Observation::Pass
    } else {
        Observation::InBand
    };
    Heartbeat {
        observation,
        response_time_ms: (p95 != u64::MAX).then_some(p95),
        seen,
    }
}

/// `signal = "both"`: a fail from either is a fail; a pass needs both; a misconfigured
/// heartbeat is reported as such unless the router says fail.
pub fn combine(heartbeat: &Heartbeat, router: &Heartbeat) -> Heartbeat {
    use Observation::*;
    let observation = match (heartbeat.observation, router.observation) {
        (Fail, _) | (_, Fail) => Fail,
        (Pass, Pass) => Pass,
        (misconfigured @ Misconfigured { .. }, _) => misconfigured,
        _ => InBand,
    };
    Heartbeat {
        observation,
        response_time_ms: match (heartbeat.response_time_ms, router.response_time_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
        seen: Seen::Both(
            Box::new(heartbeat.seen.clone()),
            Box::new(router.seen.clone()),
        ),
    }
}

/// What the beat's signals mean together: the heartbeat (as the engine classified it), the
/// router window, or both combined. `None` when neither was observed.
pub(super) fn observed(
    heartbeat: Option<Heartbeat>,
    router: Option<&RouterStats>,
    max_response_time_ms: u64,
    min_response_time_ms: u64,
) -> Option<Heartbeat> {
    let router =
        router.map(|stats| classify_router(stats, max_response_time_ms, min_response_time_ms));
    match (heartbeat, router) {
        (Some(heartbeat), Some(router)) => Some(combine(&heartbeat, &router)),
        (heartbeat, router) => heartbeat.or(router),
    }
}
