//! The activator's pure state machine: Down → Starting → Up → Stopping → Down, with the rules
//! for when to start (demand while Down) and when to stop (the engine's [`stop_due`]).
//!
//! No I/O and no clock: every method takes `now`. The async shell (`run.rs`) carries out the
//! [`Action`]s and reports back; it keeps a copy of the phase in atomics for the hot path.

use crate::decision::{stop_due, StopReason};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Down,
    Starting,
    Up,
    Stopping,
}

/// What the shell must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop(StopReason),
}

/// The rules in force, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub idle_after: Option<Duration>,
    pub max_age: Option<Duration>,
}

/// What the traffic meter says at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub open_connections: u64,
    /// Since the last connection opened or closed; `None`: none yet.
    pub since_last: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub phase: Phase,
    /// When the target last came up.
    pub up_since: Option<Instant>,
    /// Failed starts so far: waiting clients give up when this moves past what they saw.
    pub failed_starts: u64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: Phase::Down,
            up_since: None,
            failed_starts: 0,
        }
    }
}

impl Lifecycle {
    /// A client wants the target. Starts it when it is down; otherwise the client waits for
    /// the start (or the stop, then a start) in progress.
    pub fn demand(&mut self) -> Option<Action> {
        if self.phase == Phase::Down {
            self.phase = Phase::Starting;
            return Some(Action::Start);
        }
        None
    }

    /// The start finished: the target accepts (`ok`), or it failed and is down again.
    pub fn started(&mut self, now: Instant, ok: bool) {
        if ok {
            self.phase = Phase::Up;
            self.up_since = Some(now);
        } else {
            self.phase = Phase::Down;
            self.up_since = None;
            self.failed_starts += 1;
        }
    }

    /// The timer: stop an Up target when the engine's scale-to-zero rule says so. `min_in_force`
    /// is `min_dynos` in force for a scaled target, 0 for a local command (not a dyno).
    pub fn tick(
        &mut self,
        now: Instant,
        rules: Rules,
        activity: Activity,
        min_in_force: u32,
    ) -> Option<Action> {
        if self.phase != Phase::Up {
            return None;
        }
        let running_for = now.saturating_duration_since(self.up_since?);
        let quiet_for = (activity.open_connections == 0)
            .then(|| activity.since_last.unwrap_or(running_for).min(running_for));
        let reason = stop_due(
            rules.idle_after,
            rules.max_age,
            min_in_force,
            running_for,
            quiet_for,
        )?;
        self.phase = Phase::Stopping;
        Some(Action::Stop(reason))
    }

    /// A stop decided by [`Lifecycle::tick`] was called off: a connection arrived meanwhile.
    pub fn stop_cancelled(&mut self) {
        if self.phase == Phase::Stopping {
            self.phase = Phase::Up;
        }
    }

    /// The stop finished, or the target went away by itself (its process exited).
    pub fn stopped(&mut self) {
        self.phase = Phase::Down;
        self.up_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        idle_after: Some(Duration::from_secs(60)),
        max_age: Some(Duration::from_secs(3600)),
    };

    fn quiet(seconds: u64) -> Activity {
        Activity {
            open_connections: 0,
            since_last: Some(Duration::from_secs(seconds)),
        }
    }

    #[test]
    fn demand_starts_a_down_target_once() {
        let mut life = Lifecycle::default();
        assert_eq!(life.demand(), Some(Action::Start));
        assert_eq!(life.phase, Phase::Starting);
        assert_eq!(life.demand(), None, "the start in progress serves everyone");
        life.started(Instant::now(), true);
        assert_eq!(life.phase, Phase::Up);
        assert_eq!(life.demand(), None);
    }

    #[test]
    fn a_failed_start_is_counted_and_the_next_demand_tries_again() {
        let mut life = Lifecycle::default();
        life.demand();
        life.started(Instant::now(), false);
        assert_eq!((life.phase, life.failed_starts), (Phase::Down, 1));
        assert_eq!(life.demand(), Some(Action::Start));
    }

    #[test]
    fn idle_stops_after_idle_after_with_no_open_connection() {
        let start = Instant::now();
        let mut life = Lifecycle::default();
        life.demand();
        life.started(start, true);
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(life.tick(at(120), RULES, quiet(59), 0), None);
        let busy = Activity {
            open_connections: 1,
            since_last: Some(Duration::from_secs(600)),
        };
        assert_eq!(
            life.tick(at(700), RULES, busy, 0),
            None,
            "an open connection"
        );
        assert_eq!(
            life.tick(at(700), RULES, quiet(60), 0),
            Some(Action::Stop(StopReason::Idle))
        );
        assert_eq!(life.phase, Phase::Stopping);
        assert_eq!(
            life.demand(),
            None,
            "a client arriving now waits for the stop"
        );
        life.stopped();
        assert_eq!(life.demand(), Some(Action::Start), "then starts it again");
    }

    #[test]
    fn a_fresh_start_gets_a_whole_idle_after_even_after_a_long_quiet() {
        let start = Instant::now();
        let mut life = Lifecycle::default();
        life.demand();
        life.started(start, true);
        let long_ago = quiet(10_000);
        assert_eq!(
            life.tick(start + Duration::from_secs(30), RULES, long_ago, 0),
            None
        );
        assert!(life
            .tick(start + Duration::from_secs(61), RULES, long_ago, 0)
            .is_some());
    }

    #[test]
    fn max_age_stops_whatever_the_traffic_and_a_minimum_blocks_only_idle() {
        let start = Instant::now();
        let mut life = Lifecycle::default();
        life.demand();
        life.started(start, true);
        assert_eq!(
            life.tick(start + Duration::from_secs(600), RULES, quiet(600), 2),
            None
        );
        let busy = Activity {
            open_connections: 9,
            since_last: Some(Duration::ZERO),
        };
        assert_eq!(
            life.tick(start + Duration::from_secs(3600), RULES, busy, 2),
            Some(Action::Stop(StopReason::MaxAge))
        );
        life.stop_cancelled();
        assert_eq!(life.phase, Phase::Up);
    }

    #[test]
    fn a_down_or_starting_target_is_never_stopped_by_the_timer() {
        let mut life = Lifecycle::default();
        let later = Instant::now() + Duration::from_secs(99_999);
        assert_eq!(life.tick(later, RULES, quiet(99_999), 0), None);
        life.demand();
        assert_eq!(life.tick(later, RULES, quiet(99_999), 0), None);
    }
}
