//! The decision engine: one pure step from what a beat gathered to what to do.
//!
//! [`step`] takes the engine's [`State`], its [`Config`], the beat's [`Inputs`] (the
//! heartbeat's reading, the router window, the size, the planned downtime window in force, the
//! traffic) and `now`, and returns the next state and an [`Output`]: the size to scale to and
//! why, the [`Notice`]s to tell people with their numbers, and what was observed, for the
//! record. What came of a scale (or of a failed read) comes back through [`State::acted`]. The
//! worker's loop, the simulator and the activator all drive the engine this way.
//!
//! It must stay pure: no I/O, no clock (`now` is an argument), no async, nothing from
//! `autoscalebot-backends`, and no words for people (those are `crate::notices`').
//!
//! How the size follows the signal is a [`Policy`] behind the step (2.1's streaks, or target
//! tracking: [`PolicyConfig`]). What
//! holds whatever the policy lives here: the bounds in force, the cool-offs, planned downtime
//! (no fails counted, no scaling from the policy, `downtime_dynos` held), scale to zero (only
//! `idle_after` and `max_age` take an app to 0: a fast heartbeat says the app is fast, not that
//! nobody uses it) and when each condition is told.

mod observe;
mod policy;

pub use crate::policy::queue::{QueueConfig, QueueSignal};
pub use crate::policy::target::{SignalLost, Sizing, TargetConfig};
pub use observe::{
    classify, classify_router, combine, Heartbeat, HeartbeatReading, Observation, RouterReading,
    Seen,
};
pub use policy::{Policy, PolicyConfig, Queue, Streaks, StreaksConfig, Target, Wish};

use crate::downtime::Window;
use crate::router_log::RouterStats;
use crate::schedule::Schedule;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::VecDeque;
use std::time::Duration;

/// What the engine needs from an app's settings, and nothing else: no secrets, no URLs, no
/// backends. Built from the settings by `AppSettings::engine_config`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub min_dynos: Schedule,
    pub max_dynos: Schedule,
    /// The zone of the time-of-day tables (and of the times in downtime notices).
    pub time_zone: Tz,
    /// Slower than this (strictly) is a fail.
    pub max_response_time_ms: u64,
    /// Faster than this (strictly) is a pass.
    pub min_response_time_ms: u64,
    /// What a beat observes: for the words of the reasons and notices.
    pub signal: SignalKind,
    pub policy: PolicyConfig,
    pub scale_up_cooldown: Duration,
    pub scale_down_cooldown: Duration,
    /// Scale to zero after this long with no traffic (only while `min_dynos` in force is 0).
    pub idle_after: Option<Duration>,
    /// Stop after running this long, whatever the traffic.
    pub max_age: Option<Duration>,
    /// The size held during planned downtime.
    pub downtime_dynos: Option<u32>,
    pub notify: NotifyRules,
}

/// When to tell people what: the `notify_*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyRules {
    pub every_ping: bool,
    pub every_scale: bool,
    pub scale_fails: bool,
    pub downtime: bool,
    pub needs_above_max: bool,
    pub needs_below_min: bool,
    /// A condition still on is told again after this long.
    pub repeat_after: Duration,
    pub scale_diff: Option<ScaleDiffRule>,
}

/// `notify_if_scale_diff_exceeds_threshold` within `…_period_in_minutes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleDiffRule {
    pub threshold: Schedule,
    pub period: Duration,
}

impl Config {
    pub fn bounds_at(&self, now: DateTime<Utc>) -> Bounds {
        Bounds {
            min: self.min_dynos.at(now, self.time_zone),
            max: self.max_dynos.at(now, self.time_zone),
        }
    }
}

/// What a beat observes: the heartbeat, the router window of the log drain, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignalKind {
    #[default]
    Heartbeat,
    Router,
    Both,
}

/// The bounds in force at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

/// What one beat gathered.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The heartbeat's reading, when one was sent and the signal uses it.
    pub heartbeat: Option<HeartbeatReading>,
    /// The router window, when the signal uses the log drain.
    pub router: Option<RouterStats>,
    /// The size read from the platform, or the last one known; `None`: no size this beat
    /// (a standby, a pause, no budget, a failed read), so what was seen is counted and
    /// nothing is decided.
    pub size: Option<u32>,
    /// The planned downtime window in force.
    pub downtime: Option<Window>,
    /// Real traffic, when something measures it; `None`: nothing does, and then
    /// `idle_after` never stops the app.
    pub traffic: Option<Traffic>,
    /// The job queues' reading, when the queue policy decides: `Err` says why the source
    /// could not be read (never a secret), and then the size holds.
    pub queue: Option<Result<QueueSignal, String>>,
}

/// Real traffic, as the shell measures it: connections through the activator, router requests
/// from the log drain. Heartbeats are not traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// When traffic was last seen (a connection opened or closed); `None`: not yet.
    pub last_at: Option<DateTime<Utc>>,
    /// Connections open now: an open connection is traffic, however quiet.
    pub open_connections: u64,
}

/// What to do after one beat.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// What the beat's signal meant ([`Heartbeat::nothing`] when nothing was observed).
    pub observed: Heartbeat,
    pub bounds: Bounds,
    /// `Some` when the size should change; the shell sets it and reports back with
    /// [`State::acted`].
    pub scale: Option<ScaleTo>,
    /// The policy asked for a scale but a cool-off holds it back until this moment.
    pub cooling_until: Option<DateTime<Utc>>,
    /// What to tell people, in order.
    pub notices: Vec<Notice>,
    /// The policy holds because the signal it needs is missing or stale (the target policy on
    /// a quiet or garbled drain): since when, and whether this beat is the first of it.
    pub signal_lost: Option<SignalLost>,
}

impl Output {
    /// Whether acting on this output, or telling it, rests on the size it was decided at: a
    /// scale, or a notice that states the size (a ping, needs above the max or below the
    /// min, and their ends). Decided at a size only known, such an output is taken again
    /// at a size read fresh.
    pub fn rests_on_the_size(&self) -> bool {
        self.scale.is_some()
            || self.notices.iter().any(|notice| {
                matches!(
                    notice,
                    Notice::Ping { .. }
                        | Notice::NeedsAboveMax { .. }
                        | Notice::NeedsAboveMaxEnded { .. }
                        | Notice::NeedsBelowMin { .. }
                        | Notice::NeedsBelowMinEnded { .. }
                )
            })
    }
}

/// A requested change of size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleTo {
    pub from: u32,
    pub to: u32,
    pub reason: ScaleReason,
}

/// Why the engine wants a new size, with the numbers behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleReason {
    /// The streaks: `beats` consecutive beats of `signal` slower than `slower_than_ms` or
    /// failing.
    TooSlow {
        beats: u32,
        slower_than_ms: u64,
        signal: SignalKind,
    },
    /// The streaks: `beats` consecutive beats of `signal` faster than `faster_than_ms`.
    FastEnough {
        beats: u32,
        faster_than_ms: u64,
        signal: SignalKind,
    },
    /// The target policy: the router's `requests_per_second` at `service_ms` of work each need
    /// `desired` dynos, as `sizing` says: `dyno_concurrency` workers each busy at
    /// `utilisation`, a p95 under `max_ms`, or a backlog.
    Load {
        desired: u32,
        requests_per_second: f64,
        service_ms: f64,
        sizing: Sizing,
        utilisation: f64,
        dyno_concurrency: u32,
        max_ms: u64,
    },
    /// The target policy on the heartbeat alone: answers `ratio` times over `max_ms`.
    SlowAnswers { ratio: f64, max_ms: u64 },
    /// The target policy on the heartbeat alone: no answer over `max_ms` for `delay`.
    FastFor { delay: Duration, max_ms: u64 },
    /// Above the max in force (a schedule change, or someone scaled by hand).
    AboveMax,
    /// Below the min in force.
    BelowMin,
    /// No traffic for `after` (`idle_after`) while `min_dynos` in force is 0.
    Idle { after: Duration },
    /// Running for `age` (`max_age`), whatever the traffic.
    MaxAge { age: Duration },
    /// A planned downtime window holds the size at `downtime_dynos`.
    DowntimeHold,
    /// A window held by `downtime_dynos` ended: back to the size before it.
    DowntimeOver,
    /// A client is waiting for the stopped target: the activator starts it.
    Demand,
    /// The queue policy: `jobs` waiting (and the oldest's `oldest_age`) need `desired`
    /// workers, each clearing `jobs_per_worker` within `target_latency`; `quiet_for`: every
    /// reading of the scale-down delay asked for at most `desired`.
    Queue {
        desired: u32,
        jobs: Option<u64>,
        oldest_age: Option<Duration>,
        jobs_per_worker: f64,
        target_latency: Duration,
        quiet_for: Option<Duration>,
    },
}

/// Something to tell people, with its numbers; `crate::notices` words it.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// `notify_on_every_ping`: what this beat saw, at `dynos`.
    Ping {
        heartbeat: Heartbeat,
        in_downtime: bool,
        dynos: u32,
        bounds: Bounds,
    },
    /// `notify_on_every_scale`.
    Scaled {
        scale: ScaleTo,
        bounds: Bounds,
        dry_run: bool,
    },
    /// A read (`scale` is `None`) or a write of the size failed, or was `refused`.
    ScaleFailed {
        scale: Option<ScaleTo>,
        bounds: Bounds,
        error: String,
        refused: bool,
    },
    /// The platform answers again.
    ScaleRecovered,
    /// The job queues could not be read (told as scale failures are): the size holds.
    QueueFailed {
        error: String,
        dynos: Option<u32>,
    },
    /// The job queues are read again.
    QueueRecovered,
    /// At the max and the policy still wants more, `because` of this.
    NeedsAboveMax {
        dynos: u32,
        bounds: Bounds,
        because: ScaleReason,
    },
    NeedsAboveMaxEnded {
        dynos: u32,
        bounds: Bounds,
    },
    /// At the min and the policy still wants fewer, `because` of this.
    NeedsBelowMin {
        dynos: u32,
        bounds: Bounds,
        because: ScaleReason,
    },
    NeedsBelowMinEnded {
        dynos: u32,
        bounds: Bounds,
    },
    /// `moved` dynos within `period`, more than `threshold`.
    ScaleDiffExceeded {
        moved: u32,
        period: Duration,
        threshold: u32,
    },
    ScaleDiffEnded {
        moved: u32,
        period: Duration,
        threshold: u32,
    },
    /// The heartbeat cannot measure the app: it answers `status` (a 4xx), or, with `status`
    /// `None`, nothing has listened where it points since the worker started (connection
    /// refused). Told whatever the `notify_*` settings say: no setting turns off being told of
    /// a wrong setting.
    HeartbeatMisconfigured {
        status: Option<u16>,
    },
    /// The heartbeat answers again with something other than a 4xx.
    HeartbeatMisconfiguredEnded,
    /// A planned downtime started; `holding` is `downtime_dynos`.
    DowntimeStarted {
        window: Window,
        time_zone: Tz,
        holding: Option<u32>,
    },
    /// The planned downtime ended; `back_to` is the size held before it, if any; `signal` is
    /// what is counted afresh.
    DowntimeEnded {
        window: Window,
        time_zone: Tz,
        back_to: Option<u32>,
        signal: SignalKind,
    },
}

/// What came of acting on an [`Output`], or of reading the size.
#[derive(Debug, Clone, PartialEq)]
pub enum Acted {
    /// The platform runs `scale.to` now (in a dry run: would).
    Scaled { scale: ScaleTo, dry_run: bool },
    /// A read (`scale` is `None`) or a write failed; the next beat tries again.
    Failed {
        scale: Option<ScaleTo>,
        error: String,
    },
    /// The platform refused a call (a 4xx other than 429: a setting is wrong, and no retry
    /// will fix it): told even without `notify_on_scale_fails`.
    Refused {
        scale: Option<ScaleTo>,
        error: String,
    },
}

/// The one step: the next state and what to do, from `state` and this beat's `inputs` at
/// `now`. Pure, so the loop may take it at the size it knows and, if the platform says the
/// size moved before a write, take it again from the same state at the size read.
pub fn step(
    state: &State,
    config: &Config,
    inputs: &Inputs,
    now: DateTime<Utc>,
) -> (State, Output) {
    let mut next = state.clone();
    let output = next.advance(config, inputs, now);
    (next, output)
}

/// Why a running target should stop although no policy asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Idle,
    MaxAge,
}

/// The scale-to-zero rule. `running_for`: how long the target has run; `quiet_for`: how long
/// since the last traffic (never more than `running_for`), `None` while a connection is open or
/// when nothing measures traffic. `max_age` wins whatever the traffic and the minimum;
/// `idle_after` needs `min_in_force` 0.
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

/// The notice of an alert's change, when its rule says to tell: `on` for a start or a
/// repeat, `ended` for its end.
fn told(change: Option<AlertChange>, rule: bool, on: Notice, ended: Notice) -> Option<Notice> {
    match change? {
        _ if !rule => None,
        AlertChange::Ended => Some(ended),
        AlertChange::Started | AlertChange::Repeated => Some(on),
    }
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
}

/// Everything the engine remembers about one app between beats.
#[derive(Debug, Clone)]
pub struct State {
    policy: Policy,
    /// When the size last changed, for the cool-offs.
    pub last_scale_at: Option<DateTime<Utc>>,
    /// `(when, dynos moved)` within `notify_if_scale_diff_exceeds_period`.
    scale_history: VecDeque<(DateTime<Utc>, u32)>,
    needs_above_max: Alert,
    needs_below_min: Alert,
    scale_diff: Alert,
    platform_failing: Alert,
    /// The heartbeat answers a 4xx, or was refused before it ever connected.
    heartbeat_misconfigured: Alert,
    /// The app has answered a heartbeat since the start: a refused connection after that is a
    /// dyno gone, a fail, not a wrong URL.
    heartbeat_connected: bool,
    /// The queue source fails (told once, as the platform's failures).
    queue_failing: Alert,
    /// The current outage was told as a refusal, so its end is told whatever
    /// `notify_on_scale_fails` says.
    platform_refusal_told: bool,
    /// Since when the app has run (quantity above 0), as far as the engine has seen; for
    /// `max_age` and so that a fresh start gets a whole `idle_after`.
    pub running_since: Option<DateTime<Utc>>,
    /// The planned downtime window in force, as the last step was told.
    downtime: Option<Window>,
    /// The size when `downtime_dynos` first held the formation, to go back to afterwards.
    size_before_downtime: Option<u32>,
    /// After a window held by `downtime_dynos`: the size to go back to, until reached.
    restore_after_downtime: Option<u32>,
}

impl State {
    pub fn new(config: &Config) -> Self {
        State {
            policy: Policy::new(&config.policy),
            last_scale_at: None,
            scale_history: VecDeque::new(),
            needs_above_max: Alert::default(),
            needs_below_min: Alert::default(),
            scale_diff: Alert::default(),
            platform_failing: Alert::default(),
            heartbeat_misconfigured: Alert::default(),
            heartbeat_connected: false,
            queue_failing: Alert::default(),
            platform_refusal_told: false,
            running_since: None,
            downtime: None,
            size_before_downtime: None,
            restore_after_downtime: None,
        }
    }

    /// The heartbeat as this engine classifies it: [`classify`] against the max and min,
    /// except that a connection refused before the app ever answered is a wrong address,
    /// misconfigured as a 4xx is, rather than a fail (more dynos would not answer it either).
    pub fn classify_heartbeat(&self, config: &Config, reading: &HeartbeatReading) -> Heartbeat {
        let mut heartbeat = classify(
            reading,
            config.max_response_time_ms,
            config.min_response_time_ms,
        );
        if self.refused_before_answering(reading) {
            heartbeat.observation = Observation::Misconfigured { status: None };
        }
        heartbeat
    }

    fn refused_before_answering(&self, reading: &HeartbeatReading) -> bool {
        matches!(reading, HeartbeatReading::Unreachable { refused: true, .. })
            && !self.heartbeat_connected
    }

    /// The planned downtime window in force, if any.
    pub fn downtime(&self) -> Option<&Window> {
        self.downtime.as_ref()
    }

    /// The streaks' counts, when the policy is 2.1's streaks.
    pub fn streaks(&self) -> Option<&Streaks> {
        match &self.policy {
            Policy::Streaks(streaks) => Some(streaks),
            Policy::Target(_) | Policy::Queue(_) => None,
        }
    }

    /// [`step`] on this state, in place.
    fn advance(&mut self, config: &Config, inputs: &Inputs, now: DateTime<Utc>) -> Output {
        let mut notices = self.set_downtime(config, inputs.downtime.as_ref());
        notices.extend(self.check_heartbeat(config, inputs.heartbeat.as_ref(), now));
        notices.extend(self.queue_read(config, inputs, now));
        // A wrong address (see `classify_heartbeat`) is no heartbeat to any policy.
        let wrong_address = inputs
            .heartbeat
            .as_ref()
            .is_some_and(|reading| self.refused_before_answering(reading));
        let seen = observe::observed(
            inputs
                .heartbeat
                .as_ref()
                .map(|reading| self.classify_heartbeat(config, reading)),
            inputs.router.as_ref(),
            config.max_response_time_ms,
            config.min_response_time_ms,
        );
        let without_heartbeat;
        let inputs = if wrong_address {
            without_heartbeat = Inputs {
                heartbeat: None,
                ..inputs.clone()
            };
            &without_heartbeat
        } else {
            inputs
        };
        let mut output = Output {
            observed: seen.clone().unwrap_or_else(Heartbeat::nothing),
            bounds: config.bounds_at(now),
            scale: None,
            cooling_until: None,
            notices: Vec::new(),
            signal_lost: None,
        };
        match (inputs.size, &seen) {
            (None, seen) => {
                // No size to decide from: count what was seen, so the streaks stay warm.
                self.count(config, seen.as_ref(), inputs, now);
            }
            (Some(0), seen) if self.policy.watches_at_zero() => {
                // Jobs wait whether or not a worker runs: the first one starts it again.
                self.count(config, seen.as_ref(), inputs, now);
                self.decide(config, now, 0, inputs.traffic, &mut output);
            }
            (Some(0), _) => {
                // A stopped app: what a heartbeat saw before it stopped counts for nothing,
                // and old streaks are forgotten; only a minimum above 0 starts it again.
                self.policy.forget();
                self.decide(config, now, 0, inputs.traffic, &mut output);
            }
            (Some(current), seen) => {
                self.count(config, seen.as_ref(), inputs, now);
                if self.downtime.is_none() {
                    output.signal_lost = self.policy.signal_lost();
                }
                self.decide(config, now, current, inputs.traffic, &mut output);
                if let (true, Some(seen)) = (config.notify.every_ping, seen) {
                    let ping = Notice::Ping {
                        heartbeat: seen.clone(),
                        in_downtime: self.downtime.is_some(),
                        dynos: current,
                        bounds: output.bounds,
                    };
                    output.notices.insert(0, ping);
                }
            }
        }
        if inputs.size.is_some() && output.scale.is_none() {
            // The size is known and nothing needs writing: the platform is fine again.
            output.notices.extend(self.platform_answered(config, now));
        }
        notices.append(&mut output.notices);
        output.notices = notices;
        output
    }

    /// Tells when the heartbeat starts and stops being misconfigured: a 4xx, or a refused
    /// connection before the app ever answered; any other answer ends it. A beat without a
    /// heartbeat changes nothing, and neither does one in planned downtime (a maintenance page
    /// may answer anything).
    fn check_heartbeat(
        &mut self,
        config: &Config,
        reading: Option<&HeartbeatReading>,
        now: DateTime<Utc>,
    ) -> Option<Notice> {
        // A timeout, or a connection lost after the app answered, says nothing about the URL.
        let misconfigured = match reading? {
            HeartbeatReading::Answered { status, .. } => {
                self.heartbeat_connected = true;
                (400..500).contains(status).then_some(Some(*status))
            }
            reading if self.refused_before_answering(reading) => Some(None),
            _ => return None,
        };
        if self.downtime.is_some() {
            return None;
        }
        let change = self.heartbeat_misconfigured.update(
            misconfigured.is_some(),
            now,
            config.notify.repeat_after,
        );
        told(
            change,
            true,
            Notice::HeartbeatMisconfigured {
                status: misconfigured.flatten(),
            },
            Notice::HeartbeatMisconfiguredEnded,
        )
    }

    /// Takes the planned downtime window in force. Returns the notices of a downtime that
    /// starts or ends: overlapping and back-to-back windows are one downtime, told once. Both
    /// edges make the policy forget, so beats from before a window never add to those after.
    fn set_downtime(&mut self, config: &Config, window: Option<&Window>) -> Vec<Notice> {
        let previous = std::mem::replace(&mut self.downtime, window.cloned());
        let notice = match (previous, window) {
            (None, Some(window)) => {
                self.policy.forget();
                // The slowness is planned: what was told about being too slow no longer holds,
                // and is told afresh if it is still true after the window.
                self.needs_above_max = Alert::default();
                self.needs_below_min = Alert::default();
                // A window that starts before the last one's size was restored keeps that size.
                self.size_before_downtime = self.restore_after_downtime.take();
                Notice::DowntimeStarted {
                    window: window.clone(),
                    time_zone: config.time_zone,
                    holding: config.downtime_dynos,
                }
            }
            (Some(ended), None) => {
                self.policy.forget();
                self.restore_after_downtime = self.size_before_downtime.take();
                Notice::DowntimeEnded {
                    window: ended,
                    time_zone: config.time_zone,
                    back_to: self.restore_after_downtime,
                    signal: config.signal,
                }
            }
            _ => return Vec::new(),
        };
        if config.notify.downtime {
            vec![notice]
        } else {
            Vec::new()
        }
    }

    /// Counts one beat (`seen`: what it observed, if anything). During planned downtime
    /// nothing is counted.
    fn count(
        &mut self,
        config: &Config,
        seen: Option<&Heartbeat>,
        inputs: &Inputs,
        now: DateTime<Utc>,
    ) {
        if self.downtime.is_none() {
            self.policy.observe(config, seen, inputs, now);
        }
    }

    /// Decides at `current` dynos from what the policy counted so far.
    fn decide(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
        current: u32,
        traffic: Option<Traffic>,
        output: &mut Output,
    ) {
        let bounds = output.bounds;
        if current == 0 {
            self.running_since = None;
        } else if self.running_since.is_none() {
            self.running_since = Some(now);
        }
        if self.downtime.is_some() {
            output.scale = self.hold_in_downtime(config, bounds, current);
            output.notices.extend(self.check_scale_diff(config, now));
            return;
        }
        if let Some(before) = self.restore_after_downtime {
            let to = before.max(bounds.min).min(bounds.max);
            if to != current {
                output.scale = Some(ScaleTo {
                    from: current,
                    to,
                    reason: ScaleReason::DowntimeOver,
                });
                output.notices.extend(self.check_scale_diff(config, now));
                return;
            }
            self.restore_after_downtime = None;
        }
        let mut needs_above_max = false;
        let mut needs_below_min = false;

        if current > bounds.max {
            output.scale = Some(ScaleTo {
                from: current,
                to: bounds.max,
                reason: ScaleReason::AboveMax,
            });
        } else if current < bounds.min {
            output.scale = Some(ScaleTo {
                from: current,
                to: bounds.min,
                reason: ScaleReason::BelowMin,
            });
        } else {
            match self.policy.wish(config, current, now) {
                Wish::Keep => {}
                Wish::More { to, reason } if current < bounds.max => {
                    let scale = ScaleTo {
                        from: current,
                        to: to.min(bounds.max),
                        reason,
                    };
                    self.unless_cooling(config.scale_up_cooldown, now, scale, output);
                }
                Wish::More { .. } => needs_above_max = true,
                Wish::Fewer { to, reason } => {
                    // Only idle_after, max_age and the queue policy (whose empty queues say
                    // nobody needs a worker) take an app to 0, never a policy of answers.
                    let floor = if self.policy.watches_at_zero() {
                        bounds.min
                    } else {
                        bounds.min.max(1)
                    };
                    if current > floor {
                        let scale = ScaleTo {
                            from: current,
                            to: to.max(floor),
                            reason,
                        };
                        self.unless_cooling(config.scale_down_cooldown, now, scale, output);
                    } else if current > 1 {
                        // As in 2.1: at one dyno there is nothing below the min worth telling.
                        needs_below_min = true;
                    }
                }
            }
        }

        // A state that is on lasts through a short lull: it ends after as many calm beats in a
        // row as it took to start it, or when the size leaves the bound. Otherwise answers
        // hovering around the limit would start and end it every few beats: spam. Planned
        // downtime observes nothing, so it holds no state on either.
        let holding = output.scale.is_none() && self.downtime.is_none();
        let (up_because, up_lull_short) = self.policy.leaning_up(config);
        let (down_because, down_lull_short) = self.policy.leaning_down(config);
        if !needs_above_max
            && holding
            && self.needs_above_max.is_on()
            && current >= bounds.max
            && up_lull_short
        {
            needs_above_max = true;
        }
        if !needs_below_min
            && holding
            && self.needs_below_min.is_on()
            && current <= bounds.min
            && current > 1
            && down_lull_short
        {
            needs_below_min = true;
        }

        let repeat = config.notify.repeat_after;
        let above = self.needs_above_max.update(needs_above_max, now, repeat);
        let ended = Notice::NeedsAboveMaxEnded {
            dynos: current,
            bounds,
        };
        let on = Notice::NeedsAboveMax {
            dynos: current,
            bounds,
            because: up_because,
        };
        output
            .notices
            .extend(told(above, config.notify.needs_above_max, on, ended));
        let below = self.needs_below_min.update(needs_below_min, now, repeat);
        let ended = Notice::NeedsBelowMinEnded {
            dynos: current,
            bounds,
        };
        let on = Notice::NeedsBelowMin {
            dynos: current,
            bounds,
            because: down_because,
        };
        output
            .notices
            .extend(told(below, config.notify.needs_below_min, on, ended));
        if output.scale.is_none() && current > 0 {
            if let Some(reason) = self.stop_due(config, now, bounds.min, traffic) {
                output.scale = Some(ScaleTo {
                    from: current,
                    to: 0,
                    reason,
                });
                output.cooling_until = None;
            }
        }
        output.notices.extend(self.check_scale_diff(config, now));
    }

    /// Plans `scale` unless the cool-off since the last scale holds it.
    fn unless_cooling(
        &self,
        cooldown: Duration,
        now: DateTime<Utc>,
        scale: ScaleTo,
        output: &mut Output,
    ) {
        match self.cooling_until(cooldown, now) {
            Some(until) => output.cooling_until = Some(until),
            None => output.scale = Some(scale),
        }
    }

    /// [`stop_due`] with what this state knows (since when the app runs) and the traffic.
    fn stop_due(
        &self,
        config: &Config,
        now: DateTime<Utc>,
        min: u32,
        traffic: Option<Traffic>,
    ) -> Option<ScaleReason> {
        let running_for = elapsed(self.running_since?, now);
        let quiet_for = traffic.and_then(|traffic| {
            if traffic.open_connections > 0 {
                return None;
            }
            let since_traffic = traffic.last_at.map_or(running_for, |at| elapsed(at, now));
            Some(since_traffic.min(running_for))
        });
        let reason = stop_due(
            config.idle_after,
            config.max_age,
            min,
            running_for,
            quiet_for,
        )?;
        Some(match reason {
            StopReason::Idle => ScaleReason::Idle {
                after: config.idle_after.unwrap_or_default(),
            },
            StopReason::MaxAge => ScaleReason::MaxAge {
                age: config.max_age.unwrap_or_default(),
            },
        })
    }

    /// During planned downtime no policy moves the size: fails are expected, and passes from
    /// a maintenance page say nothing about the load that comes back after it. With
    /// `downtime_dynos` the size is held there (over the bounds: it is what the team asked
    /// for the window); without it, only the bounds in force still move it.
    fn hold_in_downtime(
        &mut self,
        config: &Config,
        bounds: Bounds,
        current: u32,
    ) -> Option<ScaleTo> {
        let (to, reason) = match config.downtime_dynos {
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

    /// What came of acting on the last step (or of reading the size): the engine's one
    /// feedback. Returns what to tell people.
    pub fn acted(&mut self, config: &Config, acted: &Acted, now: DateTime<Utc>) -> Vec<Notice> {
        match acted {
            Acted::Scaled { scale, dry_run } => self.scaled(config, now, *scale, *dry_run),
            Acted::Failed { scale, error } => {
                self.platform_failed(config, now, *scale, error, false)
            }
            Acted::Refused { scale, error } => {
                self.platform_failed(config, now, *scale, error, true)
            }
        }
    }

    /// The platform now runs `scale.to` (it answered the write).
    fn scaled(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
        scale: ScaleTo,
        dry_run: bool,
    ) -> Vec<Notice> {
        self.policy.scaled();
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
        let mut notices = self.platform_answered(config, now);
        if config.notify.every_scale {
            notices.push(Notice::Scaled {
                scale,
                bounds: config.bounds_at(now),
                dry_run,
            });
        }
        notices.extend(self.check_scale_diff(config, now));
        notices
    }

    /// A read or write failed, or was refused. The policy's counts stay, so the next beat
    /// tries again from a fresh read. Told once when failures start (and again after
    /// `notify_repeat_after`), not on every beat of an outage.
    fn platform_failed(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
        scale: Option<ScaleTo>,
        error: &str,
        refused: bool,
    ) -> Vec<Notice> {
        let change = self
            .platform_failing
            .update(true, now, config.notify.repeat_after);
        if change == Some(AlertChange::Started) {
            self.platform_refusal_told = refused;
        }
        let tell = config.notify.scale_fails || refused;
        if !tell || change.is_none() {
            return Vec::new();
        }
        self.platform_refusal_told |= refused;
        vec![Notice::ScaleFailed {
            scale,
            bounds: config.bounds_at(now),
            error: error.to_string(),
            refused,
        }]
    }

    /// The queue source's reading: a failure starts an alert told once (and again after
    /// `notify_repeat_after`) under `notify_on_scale_fails`, a reading ends it.
    fn queue_read(&mut self, config: &Config, inputs: &Inputs, now: DateTime<Utc>) -> Vec<Notice> {
        let Some(read) = &inputs.queue else {
            return Vec::new();
        };
        let change = self
            .queue_failing
            .update(read.is_err(), now, config.notify.repeat_after);
        let notice = match (change, read) {
            (Some(AlertChange::Ended), _) => Notice::QueueRecovered,
            (Some(_), Err(error)) => Notice::QueueFailed {
                error: error.clone(),
                dynos: inputs.size,
            },
            _ => return Vec::new(),
        };
        if config.notify.scale_fails {
            vec![notice]
        } else {
            Vec::new()
        }
    }

    /// The platform answered: ends a scale-failure alert, if one is on.
    fn platform_answered(&mut self, config: &Config, now: DateTime<Utc>) -> Vec<Notice> {
        let change = self
            .platform_failing
            .update(false, now, config.notify.repeat_after);
        let refusal_told = std::mem::take(&mut self.platform_refusal_told);
        if change != Some(AlertChange::Ended) || !(config.notify.scale_fails || refusal_told) {
            return Vec::new();
        }
        vec![Notice::ScaleRecovered]
    }

    /// Tells when the dynos moved within the period exceed the threshold in force.
    fn check_scale_diff(&mut self, config: &Config, now: DateTime<Utc>) -> Vec<Notice> {
        let Some(rule) = &config.notify.scale_diff else {
            return Vec::new();
        };
        while let Some((at, _)) = self.scale_history.front() {
            if elapsed(*at, now) > rule.period {
                self.scale_history.pop_front();
            } else {
                break;
            }
        }
        let moved: u32 = self.scale_history.iter().map(|(_, diff)| diff).sum();
        let threshold = rule.threshold.at(now, config.time_zone);
        let change = self
            .scale_diff
            .update(moved > threshold, now, config.notify.repeat_after);
        let period = rule.period;
        match change {
            None => Vec::new(),
            Some(AlertChange::Started | AlertChange::Repeated) => {
                vec![Notice::ScaleDiffExceeded {
                    moved,
                    period,
                    threshold,
                }]
            }
            Some(AlertChange::Ended) => vec![Notice::ScaleDiffEnded {
                moved,
                period,
                threshold,
            }],
        }
    }
}

#[cfg(test)]
mod tests;
