//! The decision engine: from one heartbeat's outcome, the clock and the quantity read from the
//! platform, decide whether to scale and what to tell people.
//!
//! Everything here is pure: no I/O, no wall clock (`now` is an argument), no async. The loop in
//! `bot.rs` feeds it and acts on what it returns; the simulator drives the same code with a
//! simulated clock. State that must outlive one heartbeat (streaks, the last scale, what was
//! already told, since when the app runs) lives in [`AppState`], one value per app.
//!
//! Scale to zero: heartbeats never take an app below one dyno (a fast heartbeat says the app
//! is fast, not that nobody uses it). Only [`stop_due`] does: no traffic for `idle_after`
//! while `min_dynos` in force is 0, or running for `max_age`. Traffic is the shell's input.
//!
//! Planned downtime is an input like the clock: the shell tells the engine which window is in
//! force with [`AppState::set_downtime`] before each heartbeat, and the engine decides what a
//! window means (no fails counted, no scaling from streaks, `downtime_dynos` held).

use crate::downtime::{local_time, Window};
use crate::router_log::RouterStats;
use crate::settings::AppSettings;
use autoscalebot_backends::notify::{Event, EventKind};
use autoscalebot_backends::probe::ProbeOutcome;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;

/// What one heartbeat means for scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Too slow, a timeout, a connection error or a 5xx: counts towards scaling up.
    Fail,
    /// Faster than `min_response_time_in_ms`: counts towards scaling down.
    Pass,
    /// Between the min and the max: breaks both streaks.
    InBand,
    /// A 4xx: the heartbeat URL or its auth is wrong. Breaks both streaks, never adds dynos.
    Misconfigured { status: u16 },
}

/// A classified heartbeat, with the numbers for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub observation: Observation,
    /// The measured time, when there was an answer or a timeout.
    pub response_time_ms: Option<u64>,
    /// A few words for logs and pings: "1203 ms", "timeout after 5000 ms", "503".
    pub summary: String,
}

/// Classifies a probe outcome against the settings' min and max (both strict, as in 2.1).
pub fn classify(
    outcome: &ProbeOutcome,
    max_response_time_ms: u64,
    min_response_time_ms: u64,
) -> Heartbeat {
    match outcome {
        ProbeOutcome::Response {
            status, elapsed, ..
        } => {
            let ms = elapsed.as_millis() as u64;
            let observation = match *status {
                400..=499 => Observation::Misconfigured { status: *status },
                500..=599 => Observation::Fail,
                _ if ms > max_response_time_ms => Observation::Fail,
                _ if ms < min_response_time_ms => Observation::Pass,
                _ => Observation::InBand,
            };
            let summary = if (200..300).contains(status) {
                format!("{ms} ms")
            } else {
                format!("status {status} in {ms} ms")
            };
            Heartbeat {
                observation,
                response_time_ms: Some(ms),
                summary,
            }
        }
        ProbeOutcome::Timeout { elapsed } => Heartbeat {
            observation: Observation::Fail,
            response_time_ms: Some(elapsed.as_millis() as u64),
            summary: format!("timeout after {} ms", elapsed.as_millis()),
        },
        ProbeOutcome::ConnectError { message } => Heartbeat {
            observation: Observation::Fail,
            response_time_ms: None,
            summary: message.clone(),
        },
    }
}

/// Classifies a router window from the log drain by its p95 against the same min and max as
/// a heartbeat (both strict). A window without requests is a pass: nobody waited, so the app
/// has more dynos than its traffic needs (the bounds still hold the size at `min_dynos`).
pub fn classify_router(
    stats: &RouterStats,
    max_response_time_ms: u64,
    min_response_time_ms: u64,
) -> Heartbeat {
    let seconds = stats.window.as_secs_f64();
    let Some(p95) = stats.latency_p95_ms else {
        return Heartbeat {
            observation: Observation::Pass,
            response_time_ms: None,
            summary: format!("router: no requests in {seconds} s"),
        };
    };
    let observation = if p95 > max_response_time_ms {
        Observation::Fail
    } else if p95 < min_response_time_ms {
        Observation::Pass
    } else {
        Observation::InBand
    };
    let p95_text = if p95 == u64::MAX {
        "router errors".to_string()
    } else {
        format!("{p95} ms")
    };
    Heartbeat {
        observation,
        response_time_ms: (p95 != u64::MAX).then_some(p95),
        summary: format!(
            "router p95 {p95_text} over {} requests in {seconds} s ({} errors)",
            stats.requests, stats.errors
        ),
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
        summary: format!("{}; {}", heartbeat.summary, router.summary),
    }
}

/// The bounds in force at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

pub fn bounds_at(settings: &AppSettings, now: DateTime<Utc>) -> Bounds {
    Bounds {
        min: settings
            .thresholds
            .min_dynos
            .at(now, settings.thresholds.time_zone),
        max: settings
            .thresholds
            .max_dynos
            .at(now, settings.thresholds.time_zone),
    }
}

/// Why the engine wants a new size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleReason {
    /// `number_of_fails_to_scale_up_after` consecutive fails.
    TooSlow,
    /// `number_of_passes_to_scale_down_after` consecutive passes.
    FastEnough,
    /// Above the max in force (a schedule change, or someone scaled by hand).
    AboveMax,
    /// Below the min in force.
    BelowMin,
    /// No traffic for `idle_after` while `min_dynos` in force is 0.
    Idle,
    /// Running for `max_age`, whatever the traffic.
    MaxAge,
    /// A planned downtime window holds the size at `downtime_dynos`.
    DowntimeHold,
    /// A window held by `downtime_dynos` ended: back to the size before it.
    DowntimeOver,
}

impl ScaleReason {
    pub fn describe(&self, settings: &AppSettings) -> String {
        match self {
            ScaleReason::TooSlow => format!(
                "{} consecutive heartbeats slower than {} ms or failing",
                settings.thresholds.number_of_fails_to_scale_up_after,
                settings.thresholds.max_response_time_ms
            ),
            ScaleReason::FastEnough => format!(
                "{} consecutive heartbeats faster than {} ms",
                settings.thresholds.number_of_passes_to_scale_down_after,
                settings.thresholds.min_response_time_ms
            ),
            ScaleReason::AboveMax => "above max_dynos in force".to_string(),
            ScaleReason::BelowMin => "below min_dynos in force".to_string(),
            ScaleReason::Idle => format!(
                "no traffic for {}",
                crate::settings::format_duration(
                    settings.thresholds.idle_after.unwrap_or_default()
                )
            ),
            ScaleReason::MaxAge => format!(
                "running for {} (max_age)",
                crate::settings::format_duration(settings.thresholds.max_age.unwrap_or_default())
            ),
            ScaleReason::DowntimeHold => {
                "holding downtime_dynos during planned downtime".to_string()
            }
            ScaleReason::DowntimeOver => "back to the size before the planned downtime".to_string(),
        }
    }
}

/// Real traffic, as the shell measures it: connections through the activator (and, once it
/// exists, router requests from the log drain). Heartbeats are not traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// When traffic was last seen (a connection opened or closed); `None`: not yet.
    pub last_at: Option<DateTime<Utc>>,
    /// Connections open now: an open connection is traffic, however quiet.
    pub open_connections: u64,
}

/// Why a running target should stop although no heartbeat asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Idle,
    MaxAge,
}

impl From<StopReason> for ScaleReason {
    fn from(reason: StopReason) -> Self {
        match reason {
            StopReason::Idle => ScaleReason::Idle,
            StopReason::MaxAge => ScaleReason::MaxAge,
        }
    }
}

/// The scale-to-zero rule, shared by the worker and the activator. `running_for`: how long the
/// target has run; `quiet_for`: how long since the last traffic (never more than
/// `running_for`), `None` while a connection is open or when nothing measures traffic.
/// `max_age` wins whatever the traffic and the minimum; `idle_after` needs `min_in_force` 0.
pub fn stop_due(
    idle_after: Option<Duration>,
    max_age: Option<Duration>,
    min_in_force: u32,
    running_for: Duration,
    quiet_for: Option<Duration>,
) -> Option<StopReason> {
    if max_age.is_some_and(|max_age| running_for >= max_age) {
        return Some(StopReason::MaxAge);
    }
    match (idle_after, quiet_for) {
        (Some(idle_after), Some(quiet_for)) if min_in_force == 0 && quiet_for >= idle_after => {
            Some(StopReason::Idle)
        }
        _ => None,
    }
}

/// A requested change of size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleTo {
    pub from: u32,
    pub to: u32,
    pub reason: ScaleReason,
}

/// What to do after one heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub bounds: Bounds,
    /// `Some` when the size should change; the shell sets it and reports back with
    /// [`AppState::scaled`] or [`AppState::scale_failed`].
    pub scale: Option<ScaleTo>,
    /// A streak asked for a scale but a cool-off holds it back until this moment.
    pub cooling_until: Option<DateTime<Utc>>,
    pub events: Vec<Event>,
}

/// A condition told once when it starts, again after `notify_repeat_after` while it lasts, and
/// once when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Alert {
    last_told: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlertChange {
    Started,
    Repeated,
    Ended,
}

impl Alert {
    fn is_on(&self) -> bool {
        self.last_told.is_some()
    }

    fn update(
        &mut self,
        active: bool,
        now: DateTime<Utc>,
        repeat_after: Duration,
    ) -> Option<AlertChange> {
        match (self.last_told, active) {
            (None, true) => {
                self.last_told = Some(now);
                Some(AlertChange::Started)
            }
            (Some(told), true) if elapsed(told, now) >= repeat_after => {
                self.last_told = Some(now);
                Some(AlertChange::Repeated)
            }
            (Some(_), false) => {
                self.last_told = None;
                Some(AlertChange::Ended)
            }
            _ => None,
        }
    }
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
}

/// Everything the engine remembers about one app between heartbeats.
#[derive(Debug, Clone, Default)]
pub struct AppState {
    pub consecutive_fails: u32,
    pub consecutive_passes: u32,
    /// Heartbeats in a row that were not fails / not passes: how long a lull has lasted.
    pub heartbeats_since_fail: u32,
    pub heartbeats_since_pass: u32,
    /// When the size last changed, for the cool-offs.
    pub last_scale_at: Option<DateTime<Utc>>,
    /// `(when, dynos moved)` within `notify_if_scale_diff_exceeds_period`.
    scale_history: VecDeque<(DateTime<Utc>, u32)>,
    needs_above_max: Alert,
    needs_below_min: Alert,
    scale_diff: Alert,
    platform_failing: Alert,
    /// The current outage was told as a refusal, so its end is told whatever
    /// `notify_on_scale_fails` says.
    platform_refusal_told: bool,
    /// Since when the app has run (quantity above 0), as far as the engine has seen; for
    /// `max_age` and so that a fresh start gets a whole `idle_after`.
    pub running_since: Option<DateTime<Utc>>,
    /// Set by the shell before each decision when something measures traffic; `None` means
    /// nothing does, and then `idle_after` never stops the app.
    pub traffic: Option<Traffic>,
    /// The planned downtime window in force, as last told by [`AppState::set_downtime`].
    downtime: Option<Window>,
    /// The size when `downtime_dynos` first held the formation, to go back to afterwards.
    size_before_downtime: Option<u32>,
    /// After a window held by `downtime_dynos`: the size to go back to, until reached.
    restore_after_downtime: Option<u32>,
}

impl AppState {
    pub fn new() -> Self {
        AppState::default()
    }

    /// The planned downtime window in force, if any.
    pub fn downtime(&self) -> Option<&Window> {
        self.downtime.as_ref()
    }

    /// Tells the engine which planned downtime window is in force at `now` (`None`: none).
    /// Returns the events of a downtime that starts or ends: overlapping and back-to-back
    /// windows are one downtime, told once. Both edges clear the streaks, so heartbeats from
    /// before a window never add to those after it.
    pub fn set_downtime(
        &mut self,
        settings: &AppSettings,
        now: DateTime<Utc>,
        window: Option<&Window>,
    ) -> Vec<Event> {
        let previous = std::mem::replace(&mut self.downtime, window.cloned());
        let zone = settings.thresholds.time_zone;
        let (kind, message, reason) = match (previous, window) {
            (None, Some(window)) => {
                self.clear_streaks();
                // The slowness is planned: what was told about being too slow no longer holds,
                // and is told afresh if it is still true after the window.
                self.needs_above_max = Alert::default();
                self.needs_below_min = Alert::default();
                // A window that starts before the last one's size was restored keeps that size.
                self.size_before_downtime = self.restore_after_downtime.take();
                let hold = settings
                    .downtime
                    .dynos
                    .map(|dynos| format!(" Holding {dynos} dynos."))
                    .unwrap_or_default();
                (
                    EventKind::DowntimeStarted,
                    format!(
                        "Planned downtime until {}: fails are not counted and the worker does not scale up.{hold}",
                        local_time(window.end, zone)
                    ),
                    format!("{}, from {}", window.local_span(zone), window.source),
                )
            }
            (Some(ended), None) => {
                self.clear_streaks();
                self.restore_after_downtime = self.size_before_downtime.take();
                let back = self
                    .restore_after_downtime
                    .map(|dynos| format!(" Going back to {dynos} dynos."))
                    .unwrap_or_default();
                (
                    EventKind::DowntimeEnded,
                    format!("Planned downtime is over: counting heartbeats afresh.{back}"),
                    format!("{}, from {}", ended.local_span(zone), ended.source),
                )
            }
            _ => return Vec::new(),
        };
        if !settings.notify.on_downtime {
            return Vec::new();
        }
        let mut event = self.event(settings, now, kind, message);
        event.reason = reason;
        vec![event]
    }

    /// Forgets both streaks: after a scale, around planned downtime, while stopped.
    fn clear_streaks(&mut self) {
        self.consecutive_fails = 0;
        self.consecutive_passes = 0;
    }

    /// Counts one heartbeat into the streaks. A fail clears the passes, a pass clears the
    /// fails, anything else clears both. During planned downtime nothing is counted.
    pub fn record(&mut self, observation: Observation) {
        if self.downtime.is_some() {
            return;
        }
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
                self.clear_streaks();
                self.heartbeats_since_fail = self.heartbeats_since_fail.saturating_add(1);
                self.heartbeats_since_pass = self.heartbeats_since_pass.saturating_add(1);
            }
        }
    }

    /// Records the heartbeat and decides, from the quantity just read from the platform.
    pub fn observe(
        &mut self,
        settings: &AppSettings,
        now: DateTime<Utc>,
        heartbeat: &Heartbeat,
        current: u32,
    ) -> Plan {
        self.record(heartbeat.observation);
        let mut plan = self.decide(settings, now, current);
        if plan.scale.is_none() {
            // The read worked and nothing needs writing: the platform is fine again.
            plan.events.extend(self.platform_answered(settings, now));
        }
        if settings.notify.on_every_ping {
            let band = match heartbeat.observation {
                Observation::Fail => "high",
                Observation::Pass => "low",
                Observation::InBand => "right",
                Observation::Misconfigured { .. } => "misconfigured",
            };
            let during = if self.downtime.is_some() {
                " (planned downtime)"
            } else {
                ""
            };
            let mut ping = self.event(
                settings,
                now,
                EventKind::Ping,
                format!("Ping: {}, {band}{during}", heartbeat.summary),
            );
            ping.response_time_ms = heartbeat.response_time_ms;
            ping.min_dynos = Some(plan.bounds.min);
            ping.max_dynos = Some(plan.bounds.max);
            ping.from_quantity = Some(current);
            plan.events.insert(0, ping);
        }
        for event in &mut plan.events {
            if event.response_time_ms.is_none() {
                event.response_time_ms = heartbeat.response_time_ms;
            }
        }
        plan
    }

    /// Decides from the streaks so far, without a new heartbeat.
    pub fn decide(&mut self, settings: &AppSettings, now: DateTime<Utc>, current: u32) -> Plan {
        let bounds = bounds_at(settings, now);
        if current == 0 {
            self.running_since = None;
        } else if self.running_since.is_none() {
            self.running_since = Some(now);
        }
        let mut plan = Plan {
            bounds,
            scale: None,
            cooling_until: None,
            events: Vec::new(),
        };
        if self.downtime.is_some() {
            plan.scale = self.hold_in_downtime(settings, bounds, current);
            plan.events.extend(self.check_scale_diff(settings, now));
            return plan;
        }
        if let Some(before) = self.restore_after_downtime {
            let to = before.max(bounds.min).min(bounds.max);
            if to != current {
                plan.scale = Some(ScaleTo {
                    from: current,
                    to,
                    reason: ScaleReason::DowntimeOver,
                });
                plan.events.extend(self.check_scale_diff(settings, now));
                return plan;
            }
            self.restore_after_downtime = None;
        }
        let wants_up =
            self.consecutive_fails >= settings.thresholds.number_of_fails_to_scale_up_after;
        let wants_down =
            self.consecutive_passes >= settings.thresholds.number_of_passes_to_scale_down_after;
        let mut needs_above_max = false;
        let mut needs_below_min = false;

        if current > bounds.max {
            plan.scale = Some(ScaleTo {
                from: current,
                to: bounds.max,
                reason: ScaleReason::AboveMax,
            });
        } else if current < bounds.min {
            plan.scale = Some(ScaleTo {
                from: current,
                to: bounds.min,
                reason: ScaleReason::BelowMin,
            });
        } else if wants_up {
            if current < bounds.max {
                let to = current
                    .saturating_add(settings.thresholds.increment)
                    .min(bounds.max);
                match self.cooling_until(settings.thresholds.scale_up_cooldown, now) {
                    Some(until) => plan.cooling_until = Some(until),
                    None => {
                        plan.scale = Some(ScaleTo {
                            from: current,
                            to,
                            reason: ScaleReason::TooSlow,
                        })
                    }
                }
            } else {
                needs_above_max = true;
            }
        } else if wants_down {
            // Heartbeats never stop the app: only idle_after and max_age take it to 0.
            let floor = bounds.min.max(1);
            if current > floor {
                let to = current
                    .saturating_sub(settings.thresholds.increment)
                    .max(floor);
                match self.cooling_until(settings.thresholds.scale_down_cooldown, now) {
                    Some(until) => plan.cooling_until = Some(until),
                    None => {
                        plan.scale = Some(ScaleTo {
                            from: current,
                            to,
                            reason: ScaleReason::FastEnough,
                        })
                    }
                }
            } else if current > 1 {
                // As in 2.1: at one dyno there is nothing below the min worth telling.
                needs_below_min = true;
            }
        }

        // A state that is on lasts through a short lull: it ends after as many calm heartbeats
        // in a row as it took to start it, or when the size leaves the bound. Otherwise answers
        // hovering around the limit would start and end it every few heartbeats: spam.
        // Planned downtime observes nothing, so it holds no state on either.
        let holding = plan.scale.is_none() && self.downtime.is_none();
        if !needs_above_max
            && holding
            && self.needs_above_max.is_on()
            && current >= bounds.max
            && self.heartbeats_since_fail < settings.thresholds.number_of_fails_to_scale_up_after
        {
            needs_above_max = true;
        }
        if !needs_below_min
            && holding
            && self.needs_below_min.is_on()
            && current <= bounds.min
            && current > 1
            && self.heartbeats_since_pass < settings.thresholds.number_of_passes_to_scale_down_after
        {
            needs_below_min = true;
        }

        let repeat = settings.notify.repeat_after;
        match self.needs_above_max.update(needs_above_max, now, repeat) {
            Some(change) if settings.notify.if_needs_exceed_max => {
                let (kind, message) = match change {
                    AlertChange::Started | AlertChange::Repeated => (
                        EventKind::NeedsAboveMax,
                        format!("We are at the max ({current}) dynos, but the response is still too slow."),
                    ),
                    AlertChange::Ended => (
                        EventKind::NeedsAboveMaxEnded,
                        format!("No longer too slow at the max; now at {current} dynos."),
                    ),
                };
                let mut event = self.event(settings, now, kind, message);
                event.reason = if kind == EventKind::NeedsAboveMax {
                    format!(
                        "{} consecutive heartbeats slower than {} ms; consider raising max_dynos",
                        self.consecutive_fails, settings.thresholds.max_response_time_ms
                    )
                } else {
                    String::new()
                };
                event.from_quantity = Some(current);
                event.min_dynos = Some(bounds.min);
                event.max_dynos = Some(bounds.max);
                plan.events.push(event);
            }
            _ => {}
        }
        match self.needs_below_min.update(needs_below_min, now, repeat) {
            Some(change) if settings.notify.if_needs_below_min => {
                let (kind, message) = match change {
                    AlertChange::Started | AlertChange::Repeated => (
                        EventKind::NeedsBelowMin,
                        format!(
                            "We are at the minimum ({current}) dynos, but the response is still low enough we could scale down further."
                        ),
                    ),
                    AlertChange::Ended => (
                        EventKind::NeedsBelowMinEnded,
                        format!("No longer fast enough to go below the minimum; now at {current} dynos."),
                    ),
                };
                let mut event = self.event(settings, now, kind, message);
                if kind == EventKind::NeedsBelowMin {
                    event.reason = format!(
                        "{} consecutive heartbeats faster than {} ms; consider lowering min_dynos",
                        self.consecutive_passes, settings.thresholds.min_response_time_ms
                    );
                }
                event.from_quantity = Some(current);
                event.min_dynos = Some(bounds.min);
                event.max_dynos = Some(bounds.max);
                plan.events.push(event);
            }
            _ => {}
        }
        if plan.scale.is_none() && current > 0 {
            if let Some(reason) = self.stop_due(settings, now, bounds.min) {
                plan.scale = Some(ScaleTo {
                    from: current,
                    to: 0,
                    reason: reason.into(),
                });
                plan.cooling_until = None;
            }
        }
        plan.events.extend(self.check_scale_diff(settings, now));
        plan
    }

    /// [`stop_due`] with what this state knows: since when the app runs, and its traffic.
    fn stop_due(&self, settings: &AppSettings, now: DateTime<Utc>, min: u32) -> Option<StopReason> {
        let running_for = elapsed(self.running_since?, now);
        let quiet_for = self.traffic.and_then(|traffic| {
            if traffic.open_connections > 0 {
                return None;
            }
            let since_traffic = traffic.last_at.map_or(running_for, |at| elapsed(at, now));
            Some(since_traffic.min(running_for))
        });
        stop_due(
            settings.thresholds.idle_after,
            settings.thresholds.max_age,
            min,
            running_for,
            quiet_for,
        )
    }

    /// Decides for an app read at quantity 0, with no heartbeat (a stopped app is not
    /// probed). Old streaks are forgotten; only a minimum above 0 starts it again.
    pub fn observe_stopped(&mut self, settings: &AppSettings, now: DateTime<Utc>) -> Plan {
        self.clear_streaks();
        let mut plan = self.decide(settings, now, 0);
        if plan.scale.is_none() {
            plan.events.extend(self.platform_answered(settings, now));
        }
        plan
    }

    /// During planned downtime no streak moves the size: fails are expected, and passes from
    /// a maintenance page say nothing about the load that comes back after it. With
    /// `downtime_dynos` the size is held there (over the bounds: it is what the team asked
    /// for the window); without it, only the bounds in force still move it.
    fn hold_in_downtime(
        &mut self,
        settings: &AppSettings,
        bounds: Bounds,
        current: u32,
    ) -> Option<ScaleTo> {
        let (to, reason) = match settings.downtime.dynos {
            Some(hold) => {
                self.size_before_downtime.get_or_insert(current);
                (hold, ScaleReason::DowntimeHold)
            }
            None if current > bounds.max => (bounds.max, ScaleReason::AboveMax),
            None if current < bounds.min => (bounds.min, ScaleReason::BelowMin),
            None => return None,
        };
        (to != current).then_some(ScaleTo {
            from: current,
            to,
            reason,
        })
    }

    fn cooling_until(&self, cooldown: Duration, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let last = self.last_scale_at?;
        if cooldown.is_zero() || elapsed(last, now) >= cooldown {
            return None;
        }
        Some(last + chrono::Duration::from_std(cooldown).unwrap_or(chrono::Duration::MAX))
    }

    /// The platform now runs `to` (it answered the write). Clears the streaks and returns the
    /// events to send.
    pub fn scaled(
        &mut self,
        settings: &AppSettings,
        now: DateTime<Utc>,
        scale: ScaleTo,
        dry_run: bool,
    ) -> Vec<Event> {
        self.clear_streaks();
        self.last_scale_at = Some(now);
        if scale.to == 0 {
            self.running_since = None;
        } else if scale.from == 0 {
            self.running_since = Some(now);
        }
        if scale.reason == ScaleReason::DowntimeOver {
            self.restore_after_downtime = None;
        }
        self.scale_history
            .push_back((now, scale.from.abs_diff(scale.to)));
        let mut events = self.platform_answered(settings, now);
        if settings.notify.on_every_scale {
            let message = if dry_run {
                format!("Would scale to ({}) dynos (dry run).", scale.to)
            } else {
                format!("Scaled to ({}) dynos.", scale.to)
            };
            let mut event = self.event(settings, now, EventKind::Scaled, message);
            event.reason = format!(
                "from {} to {}: {}",
                scale.from,
                scale.to,
                scale.reason.describe(settings)
            );
            self.fill(&mut event, settings, now, scale);
            events.push(event);
        }
        events.extend(self.check_scale_diff(settings, now));
        events
    }

    /// A read or write of the formation failed. The streaks stay, so the next heartbeat tries
    /// again from a fresh read.
    pub fn scale_failed(
        &mut self,
        settings: &AppSettings,
        now: DateTime<Utc>,
        scale: Option<ScaleTo>,
        error: &str,
    ) -> Vec<Event> {
        self.platform_failed(settings, now, scale, error, false)
    }

    /// The platform refused a call with a 4xx other than 429 (a bad key, no access, a wrong app
    /// or process type): a setting is wrong and no retry will fix it, so this is told even
    /// without `notify_on_scale_fails`, once, like any outage.
    pub fn scale_refused(
        &mut self,
        settings: &AppSettings,
        now: DateTime<Utc>,
        scale: Option<ScaleTo>,
        error: &str,
    ) -> Vec<Event> {
        self.platform_failed(settings, now, scale, error, true)
    }

    fn platform_failed(
        &mut self,
        settings: &AppSettings,
        now: DateTime<Utc>,
        scale: Option<ScaleTo>,
        error: &str,
        refused: bool,
    ) -> Vec<Event> {
        // Told once when failures start (and again after notify_repeat_after), not on every
        // heartbeat of an outage.
        let change = self
            .platform_failing
            .update(true, now, settings.notify.repeat_after);
        if change == Some(AlertChange::Started) {
            self.platform_refusal_told = refused;
        }
        let tell = settings.notify.on_scale_fails || refused;
        if !tell || change.is_none() {
            return Vec::new();
        }
        self.platform_refusal_told |= refused;
        let message = if refused {
            "The platform refuses the worker's calls: scaling is paused until a setting is fixed."
        } else {
            "Just tried to scale, and it failed."
        };
        let mut event = self.event(settings, now, EventKind::ScaleFailed, message);
        event.reason = error.to_string();
        if let Some(scale) = scale {
            self.fill(&mut event, settings, now, scale);
        }
        vec![event]
    }

    /// The platform answered: ends a scale-failure alert, if one is on.
    fn platform_answered(&mut self, settings: &AppSettings, now: DateTime<Utc>) -> Vec<Event> {
        let change = self
            .platform_failing
            .update(false, now, settings.notify.repeat_after);
        let refusal_told = std::mem::take(&mut self.platform_refusal_told);
        if change != Some(AlertChange::Ended) || !(settings.notify.on_scale_fails || refusal_told) {
            return Vec::new();
        }
        vec![self.event(
            settings,
            now,
            EventKind::ScaleRecovered,
            "Scaling works again: the platform answered.",
        )]
    }

    /// Tells when the dynos moved within the period exceed the threshold in force.
    fn check_scale_diff(&mut self, settings: &AppSettings, now: DateTime<Utc>) -> Vec<Event> {
        let (Some(threshold), Some(period)) = (
            &settings.notify.if_scale_diff_exceeds_threshold,
            settings.notify.if_scale_diff_exceeds_period,
        ) else {
            return Vec::new();
        };
        while let Some((at, _)) = self.scale_history.front() {
            if elapsed(*at, now) > period {
                self.scale_history.pop_front();
            } else {
                break;
            }
        }
        let moved: u32 = self.scale_history.iter().map(|(_, diff)| diff).sum();
        let limit = threshold.at(now, settings.thresholds.time_zone);
        let minutes = period.as_secs_f64() / 60.0;
        let change = self
            .scale_diff
            .update(moved > limit, now, settings.notify.repeat_after);
        let (kind, message, reason) = match change {
            None => return Vec::new(),
            Some(AlertChange::Started | AlertChange::Repeated) => (
                EventKind::ScaleDiffExceeded,
                "Too much scaling over too little time!".to_string(),
                format!("{moved} dynos moved in the last {minutes} minutes, more than the threshold of {limit}"),
            ),
            Some(AlertChange::Ended) => (
                EventKind::ScaleDiffEnded,
                "Scaling has calmed down.".to_string(),
                format!("{moved} dynos moved in the last {minutes} minutes, within the threshold of {limit}"),
            ),
        };
        let mut event = self.event(settings, now, kind, message);
        event.reason = reason;
        vec![event]
    }

    fn event(
        &self,
        settings: &AppSettings,
        now: DateTime<Utc>,
        kind: EventKind,
        message: impl Into<String>,
    ) -> Event {
        Event::new(now, &settings.app_name, kind, message)
    }

    fn fill(&self, event: &mut Event, settings: &AppSettings, now: DateTime<Utc>, scale: ScaleTo) {
        let bounds = bounds_at(settings, now);
        event.from_quantity = Some(scale.from);
        event.to_quantity = Some(scale.to);
        event.min_dynos = Some(bounds.min);
        event.max_dynos = Some(bounds.max);
    }
}

#[cfg(test)]
mod tests;
