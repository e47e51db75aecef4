//! The words people read: turns the engine's [`Notice`]s into the notifiers' [`Event`]s, and
//! words a scale's reason and a beat's observation for logs, the demo and the status page.
//!
//! Every sentence a notification carries is written here and nowhere else; the engine hands
//! over numbers. It decides nothing (which notice exists and when is the engine's) and sends
//! nothing (that is the loop's, through the dispatcher).

use crate::decision::{
    Bounds, Heartbeat, HeartbeatReading, Notice, Observation, ScaleReason, ScaleTo, Seen,
    SignalKind, Sizing,
};
use crate::downtime::local_time;
use crate::settings::format_duration;
use autoscalebot_backends::notify::{Event, EventKind};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The events of `notices`, told at `at` for `app`. Each carries `response_time_ms`, the time
/// measured by the beat behind it (a downtime's start or end is about the calendar, not about
/// a beat, and carries none).
pub fn events(
    app: &str,
    at: DateTime<Utc>,
    notices: &[Notice],
    response_time_ms: Option<u64>,
) -> Vec<Event> {
    notices
        .iter()
        .map(|notice| {
            let mut event = event(app, at, notice);
            if !matches!(
                notice,
                Notice::DowntimeStarted { .. } | Notice::DowntimeEnded { .. }
            ) {
                event.response_time_ms = event.response_time_ms.or(response_time_ms);
            }
            event
        })
        .collect()
}

/// One notice as an event.
pub fn event(app: &str, at: DateTime<Utc>, notice: &Notice) -> Event {
    let new = |kind: EventKind, message: String| Event::new(at, app, kind, message);
    match notice {
        Notice::Ping {
            heartbeat,
            in_downtime,
            dynos,
            bounds,
        } => {
            let band = match heartbeat.observation {
                Observation::Fail => "high",
                Observation::Pass => "low",
                Observation::InBand => "right",
                Observation::Misconfigured { .. } => "misconfigured",
            };
            let during = if *in_downtime {
                " (planned downtime)"
            } else {
                ""
            };
            let mut event = new(
                EventKind::Ping,
                format!("Ping: {}, {band}{during}", summary(heartbeat)),
            );
            event.response_time_ms = heartbeat.response_time_ms;
            event.from_quantity = Some(*dynos);
            with_bounds(event, *bounds)
        }
        Notice::Scaled {
            scale,
            bounds,
            dry_run,
        } => {
            let message = if *dry_run {
                format!("Would scale to ({}) dynos (dry run).", scale.to)
            } else {
                format!("Scaled to ({}) dynos.", scale.to)
            };
            let mut event = new(EventKind::Scaled, message);
            event.reason = format!(
                "from {} to {}: {}",
                scale.from,
                scale.to,
                describe(&scale.reason)
            );
            with_scale(event, *scale, *bounds)
        }
        Notice::ScaleFailed {
            scale,
            bounds,
            error,
            refused,
        } => {
            let message = if *refused {
                "The platform refuses the worker's calls: scaling is paused until a setting is fixed."
            } else {
                "Just tried to scale, and it failed."
            };
            let mut event = new(EventKind::ScaleFailed, message.to_string());
            event.reason.clone_from(error);
            match scale {
                Some(scale) => with_scale(event, *scale, *bounds),
                None => event,
            }
        }
        Notice::ScaleRecovered => new(
            EventKind::ScaleRecovered,
            "Scaling works again: the platform answered.".to_string(),
        ),
        Notice::QueueFailed { error, dynos } => {
            let holding = dynos
                .map(|dynos| format!(" at {dynos}"))
                .unwrap_or_default();
            let mut event = new(
                EventKind::ScaleFailed,
                format!(
                    "Could not read the job queues: the size holds{holding} until they answer."
                ),
            );
            event.reason.clone_from(error);
            event.from_quantity = *dynos;
            event
        }
        Notice::QueueRecovered => new(
            EventKind::ScaleRecovered,
            "The job queues answer again: the queue policy decides again.".to_string(),
        ),
        Notice::NeedsAboveMax {
            dynos,
            bounds,
            because,
        } => {
            let mut event = new(
                EventKind::NeedsAboveMax,
                format!("We are at the max ({dynos}) dynos, but the response is still too slow."),
            );
            event.reason = format!("{}; consider raising max_dynos", leaning(because));
            at_bound(event, *dynos, *bounds)
        }
        Notice::NeedsAboveMaxEnded { dynos, bounds } => at_bound(
            new(
                EventKind::NeedsAboveMaxEnded,
                format!("No longer too slow at the max; now at {dynos} dynos."),
            ),
            *dynos,
            *bounds,
        ),
        Notice::NeedsBelowMin {
            dynos,
            bounds,
            because,
        } => {
            let mut event = new(
                EventKind::NeedsBelowMin,
                format!(
                    "We are at the minimum ({dynos}) dynos, but the response is still low enough we could scale down further."
                ),
            );
            event.reason = format!("{}; consider lowering min_dynos", leaning(because));
            at_bound(event, *dynos, *bounds)
        }
        Notice::NeedsBelowMinEnded { dynos, bounds } => at_bound(
            new(
                EventKind::NeedsBelowMinEnded,
                format!("No longer fast enough to go below the minimum; now at {dynos} dynos."),
            ),
            *dynos,
            *bounds,
        ),
        Notice::ScaleDiffExceeded {
            moved,
            period,
            threshold,
        } => {
            let mut event = new(
                EventKind::ScaleDiffExceeded,
                "Too much scaling over too little time!".to_string(),
            );
            event.reason = moved_within(*moved, *period, "more than", *threshold);
            event
        }
        Notice::ScaleDiffEnded {
            moved,
            period,
            threshold,
        } => {
            let mut event = new(
                EventKind::ScaleDiffEnded,
                "Scaling has calmed down.".to_string(),
            );
            event.reason = moved_within(*moved, *period, "within", *threshold);
            event
        }
        Notice::HeartbeatMisconfigured { status } => {
            let (message, reason) = match status {
                Some(status) => (
                    format!("The heartbeat URL answers {status}: the worker cannot measure the app, so it adds no dynos for it."),
                    if matches!(status, 401 | 403) {
                        "the endpoint asks for a login: let the worker's GET through without one, or point heartbeat_url at an open endpoint"
                    } else {
                        "check app_url (`heroku apps:info` shows the app's Web URL: apps made since mid-2023 have a random suffix in their host name) and heartbeat_url (its exact path, trailing slash included), and that the app serves the endpoint"
                    },
                ),
                None => (
                    "Nothing listens where the heartbeat URL points (connection refused): the worker cannot measure the app.".to_string(),
                    "check app_url and heartbeat_url (the host and the port), and that the app runs",
                ),
            };
            let mut event = new(EventKind::HeartbeatMisconfigured, message);
            event.reason = format!("{reason}; `autoscalebot check --online` tries the URL");
            event
        }
        Notice::HeartbeatMisconfiguredEnded => new(
            EventKind::HeartbeatMisconfiguredEnded,
            "The heartbeat URL answers again: the worker measures the app.".to_string(),
        ),
        Notice::DowntimeStarted {
            window,
            time_zone,
            holding,
        } => {
            let hold = holding
                .map(|dynos| format!(" Holding {dynos} dynos."))
                .unwrap_or_default();
            let mut event = new(
                EventKind::DowntimeStarted,
                format!(
                    "Planned downtime until {}: fails are not counted and the worker does not scale up.{hold}",
                    local_time(window.end, *time_zone)
                ),
            );
            event.reason = format!("{}, from {}", window.local_span(*time_zone), window.source);
            event
        }
        Notice::DowntimeEnded {
            window,
            time_zone,
            back_to,
            signal,
        } => {
            let back = back_to
                .map(|dynos| format!(" Going back to {dynos} dynos."))
                .unwrap_or_default();
            let mut event = new(
                EventKind::DowntimeEnded,
                format!(
                    "Planned downtime is over: counting {} afresh.{back}",
                    beats_of(*signal)
                ),
            );
            event.reason = format!("{}, from {}", window.local_span(*time_zone), window.source);
            event
        }
    }
}

/// Names the heartbeat URL in the events about it, as it may be shown (never a user, a
/// password or a query, which may hold a token).
pub fn name_heartbeat_url(events: &mut [Event], url: &url::Url) {
    let mut about_it = events
        .iter_mut()
        .filter(|event| event.kind == EventKind::HeartbeatMisconfigured)
        .peekable();
    // Most beats tell nothing: the URL is not worded for them (a parse and a format a beat).
    if about_it.peek().is_none() {
        return;
    }
    let shown = autoscalebot_backends::shown_url(url);
    for event in about_it {
        event.reason = format!("heartbeat_url {shown}: {}", event.reason);
    }
}

/// "3 dynos moved in the last 30 minutes, more than the threshold of 2".
fn moved_within(moved: u32, period: Duration, relation: &str, threshold: u32) -> String {
    let minutes = period.as_secs_f64() / 60.0;
    format!("{moved} dynos moved in the last {minutes} minutes, {relation} the threshold of {threshold}")
}

/// A condition at a bound: told at `dynos`, with the bounds in force.
fn at_bound(mut event: Event, dynos: u32, bounds: Bounds) -> Event {
    event.from_quantity = Some(dynos);
    with_bounds(event, bounds)
}

fn with_bounds(mut event: Event, bounds: Bounds) -> Event {
    event.min_dynos = Some(bounds.min);
    event.max_dynos = Some(bounds.max);
    event
}

fn with_scale(mut event: Event, scale: ScaleTo, bounds: Bounds) -> Event {
    event.from_quantity = Some(scale.from);
    event.to_quantity = Some(scale.to);
    with_bounds(event, bounds)
}

/// What a beat of `signal` is called: "heartbeats", "router windows", or both.
pub fn beats_of(signal: SignalKind) -> &'static str {
    match signal {
        SignalKind::Heartbeat => "heartbeats",
        SignalKind::Router => "router windows",
        SignalKind::Both => "heartbeats and router windows",
    }
}

/// "3 consecutive heartbeats slower than 1000 ms", "3 consecutive router windows with a p95
/// slower than 1000 ms": a streak of `beats` of `signal`, `relation` to `ms`.
fn streak(beats: u32, signal: SignalKind, relation: &str, ms: u64) -> String {
    match signal {
        SignalKind::Heartbeat => format!("{beats} consecutive heartbeats {relation} {ms} ms"),
        SignalKind::Router => {
            format!("{beats} consecutive router windows with a p95 {relation} {ms} ms")
        }
        SignalKind::Both => format!(
            "{beats} consecutive beats where the heartbeat or the router window was {relation} {ms} ms"
        ),
    }
}

/// Why a scale happens, in a few words: "3 consecutive heartbeats slower than 1000 ms or
/// failing", "router: 42.0 req/s × 180 ms need 9 dynos at 90 % of 4 workers each".
pub fn describe(reason: &ScaleReason) -> String {
    match reason {
        ScaleReason::TooSlow {
            beats,
            slower_than_ms,
            signal,
        } => {
            let failing = match signal {
                SignalKind::Router => "or router errors",
                _ => "or failing",
            };
            format!(
                "{} {failing}",
                streak(*beats, *signal, "slower than", *slower_than_ms)
            )
        }
        ScaleReason::FastEnough {
            beats,
            faster_than_ms,
            signal: SignalKind::Both,
        } => format!(
            "{beats} consecutive beats where the heartbeat and the router window were faster than {faster_than_ms} ms"
        ),
        ScaleReason::FastEnough {
            beats,
            faster_than_ms,
            signal,
        } => streak(*beats, *signal, "faster than", *faster_than_ms),
        ScaleReason::Load {
            desired,
            requests_per_second,
            service_ms,
            sizing,
            utilisation,
            dyno_concurrency,
            max_ms,
        } => {
            let dynos = if *desired == 1 { "dyno" } else { "dynos" };
            let load = format!("router: {requests_per_second:.1} req/s × {service_ms:.0} ms");
            match sizing {
                Sizing::Utilisation => format!(
                    "{load} need {desired} {dynos} at {:.0} % of {dyno_concurrency} workers each",
                    utilisation * 100.0
                ),
                Sizing::Latency => {
                    format!("{load} need {desired} {dynos} for a p95 under {max_ms} ms")
                }
                Sizing::Backlog => format!(
                    "{load} served with a backlog (the app serves all it can): at least {desired} {dynos}"
                ),
            }
        }
        ScaleReason::SlowAnswers { ratio, max_ms } => {
            format!("heartbeats {ratio:.1} times the max of {max_ms} ms or failing")
        }
        ScaleReason::FastFor { delay, max_ms } => format!(
            "no heartbeat slower than {max_ms} ms for {}",
            format_duration(*delay)
        ),
        ScaleReason::AboveMax => "above max_dynos in force".to_string(),
        ScaleReason::BelowMin => "below min_dynos in force".to_string(),
        ScaleReason::Idle { after } => format!("no traffic for {}", format_duration(*after)),
        ScaleReason::MaxAge { age } => format!("running for {} (max_age)", format_duration(*age)),
        ScaleReason::DowntimeHold => "holding downtime_dynos during planned downtime".to_string(),
        ScaleReason::DowntimeOver => "back to the size before the planned downtime".to_string(),
        ScaleReason::Demand => "a client is waiting for the stopped app".to_string(),
        ScaleReason::Queue {
            desired,
            jobs,
            oldest_age,
            jobs_per_worker,
            target_latency,
            quiet_for,
        } => {
            let workers = if *desired == 1 { "worker" } else { "workers" };
            let target = format_duration(*target_latency);
            match (quiet_for, jobs, oldest_age) {
                (Some(delay), _, _) if *desired == 0 => {
                    format!("queues empty for {}", format_duration(*delay))
                }
                (Some(delay), _, _) => format!(
                    "queues needed at most {desired} {workers} for {}",
                    format_duration(*delay)
                ),
                (None, _, Some(age)) if age > target_latency => format!(
                    "queue: the oldest job waited {:.1} s, over the target of {target}: {desired} {workers}",
                    age.as_secs_f64()
                ),
                (None, jobs, _) => format!(
                    "queue: {} jobs waiting, {jobs_per_worker:.0} per worker within {target}: {desired} {workers}",
                    jobs.unwrap_or(0)
                ),
            }
        }
    }
}

/// What a policy leans on when it wants past a bound: "4 consecutive heartbeats slower than
/// 1000 ms".
fn leaning(because: &ScaleReason) -> String {
    match because {
        ScaleReason::TooSlow {
            beats,
            slower_than_ms,
            signal,
        } => streak(*beats, *signal, "slower than", *slower_than_ms),
        other => describe(other),
    }
}

/// What the status page and the log say while the policy holds for want of a signal.
pub fn holding(since: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    format!(
        "holding: no signal since {} (the target policy never scales down without one)",
        local_time(since, zone)
    )
}

/// What a beat saw, in a few words, for logs, pings and the status page: "1203 ms",
/// "timeout after 5000 ms", "status 503 in 12 ms", "router p95 1800 ms over 20 requests in
/// 30 s (0 errors)".
pub fn summary(heartbeat: &Heartbeat) -> String {
    seen_words(&heartbeat.seen)
}

/// [`summary`] of what was seen alone.
pub fn seen_words(seen_: &Seen) -> String {
    match seen_ {
        Seen::Heartbeat(HeartbeatReading::Answered { status, elapsed }) => {
            let ms = elapsed.as_millis();
            if (200..300).contains(status) {
                format!("{ms} ms")
            } else {
                format!("status {status} in {ms} ms")
            }
        }
        Seen::Heartbeat(HeartbeatReading::TimedOut { after }) => {
            format!("timeout after {} ms", after.as_millis())
        }
        Seen::Heartbeat(HeartbeatReading::Unreachable { error, .. }) => error.clone(),
        Seen::Router(router) => {
            let seconds = router.window.as_secs_f64();
            match router.latency_p95_ms {
                None if router.unavailable + router.silent == 0 => {
                    format!("router: no requests in {seconds} s")
                }
                None => format!(
                    "router: no requests served in {seconds} s, only {} lines saying the app is down (H10, H14…) and {} saying nothing of its speed (H80, H27…)",
                    router.unavailable, router.silent
                ),
                Some(p95) => {
                    let p95_text = if p95 == u64::MAX {
                        "router errors".to_string()
                    } else {
                        format!("{p95} ms")
                    };
                    format!(
                        "router p95 {p95_text} over {} requests in {seconds} s ({} errors)",
                        router.requests, router.errors
                    )
                }
            }
        }
        Seen::Both(heartbeat, router) => {
            format!("{}; {}", seen_words(heartbeat), seen_words(router))
        }
        Seen::Nothing => "stopped: no heartbeat".to_string(),
    }
}
