//! The activator's pure state machine: Down → Starting → Up → Stopping → Down. It starts on
//! demand while Down; when to stop an Up target (`idle_after`, `max_age`) is the engine's
//! [`step`], taken on every tick with the target's size and traffic, as the worker's loop takes
//! it on every heartbeat.
//!
//! No I/O and no clock: every method takes `now`. The async shell (`run.rs`) carries out the
//! [`Action`]s and reports back; it keeps a copy of the phase in atomics for the hot path.

use crate::decision::{step, Acted, Config, Inputs, ScaleReason, ScaleTo, State, Traffic};
use crate::schedule::Schedule;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The engine's settings as the activator uses them: its own `idle_after`, no upper bound (it
/// starts and stops, and never follows a bound), and for a local command, which is no dyno,
/// no minimum either.
pub fn rules(mut config: Config, idle_after: Option<Duration>, local: bool) -> Config {
    config.idle_after = idle_after;
    config.max_dynos = Schedule::Fixed(u32::MAX);
    if local {
        config.min_dynos = Schedule::Fixed(0);
    }
    config
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Down,
    Starting,
    Up,
    Stopping,
}

/// What the shell must do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Start,
    /// Stop the target, for this reason (`Idle` or `MaxAge`).
    Stop(ScaleReason),
}

#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub phase: Phase,
    /// Failed starts so far: waiting clients give up when this moves past what they saw.
    pub failed_starts: u64,
    /// The size the target was started at, while it is up.
    size: u32,
    /// The engine's state for the target: since when it runs.
    engine: State,
}

impl Lifecycle {
    pub fn new(config: &Config) -> Self {
        Lifecycle {
            phase: Phase::Down,
            failed_starts: 0,
            size: 0,
            engine: State::new(config),
        }
    }

    /// A client wants the target. Starts it when it is down; otherwise the client waits for
    /// the start (or the stop, then a start) in progress.
    pub fn demand(&mut self) -> Option<Action> {
        if self.phase == Phase::Down {
            self.phase = Phase::Starting;
            return Some(Action::Start);
        }
        None
    }

    /// The start finished: the target accepts at `size` (`Some`), or it failed and is down
    /// again (`None`).
    pub fn started(&mut self, config: &Config, now: DateTime<Utc>, size: Option<u32>) {
        match size {
            Some(size) => {
                self.phase = Phase::Up;
                self.size = size;
                let scale = ScaleTo {
                    from: 0,
                    to: size,
                    reason: ScaleReason::Demand,
                };
                self.engine.acted(
                    config,
                    &Acted::Scaled {
                        scale,
                        dry_run: false,
                    },
                    now,
                );
            }
            None => {
                self.phase = Phase::Down;
                self.failed_starts += 1;
            }
        }
    }

    /// The timer: stop an Up target when the engine's step says so. `config`'s `min_dynos` is
    /// the minimum in force for a scaled target, 0 for a local command (not a dyno). Only a
    /// stop is the activator's to carry out: it neither follows the bounds nor tells anyone.
    pub fn tick(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
        traffic: Traffic,
    ) -> Option<Action> {
        if self.phase != Phase::Up {
            return None;
        }
        // The activator follows no bound: should a `min_dynos` schedule rise past the size it
        // started, the engine is told the size at that minimum, so that only its stop rules
        // act (as `max_age` stops the target whatever the bounds).
        let size = self.size.max(config.bounds_at(now).min);
        let inputs = Inputs {
            size: Some(size),
            traffic: Some(traffic),
            ..Inputs::default()
        };
        let (next, output) = step(&self.engine, config, &inputs, now);
        self.engine = next;
        match output.scale {
            Some(ScaleTo { to: 0, reason, .. }) => {
                self.phase = Phase::Stopping;
                Some(Action::Stop(reason))
            }
            _ => None,
        }
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
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::HashMap;

    /// `idle_after` 60 s and `max_age` 1 h, with `min_dynos` at `min_in_force` (0: a local
    /// command).
    fn config(min_in_force: u32) -> Config {
        let text = format!(
            "heroku_app_name = \"a\"\nheroku_api_key = \"k\"\nmax_age = \"1h\"\n\
             min_dynos = {min_in_force}\nmax_dynos = {}\n",
            min_in_force.max(1)
        );
        let settings = crate::settings::from_toml_str(&text, &HashMap::new())
            .unwrap()
            .apps
            .remove(0);
        rules(
            settings.engine_config(),
            Some(Duration::from_secs(60)),
            min_in_force == 0,
        )
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        start() + chrono::Duration::seconds(seconds)
    }

    /// No connection open, the last traffic `seconds` before `now`.
    fn quiet(now: DateTime<Utc>, seconds: i64) -> Traffic {
        Traffic {
            last_at: Some(now - chrono::Duration::seconds(seconds)),
            open_connections: 0,
        }
    }

    fn up(config: &Config, size: u32) -> Lifecycle {
        let mut life = Lifecycle::new(config);
        life.demand();
        life.started(config, start(), Some(size));
        life
    }

    #[test]
    fn demand_starts_a_down_target_once() {
        let config = config(0);
        let mut life = Lifecycle::new(&config);
        assert_eq!(life.demand(), Some(Action::Start));
        assert_eq!(life.phase, Phase::Starting);
        assert_eq!(life.demand(), None, "the start in progress serves everyone");
        life.started(&config, start(), Some(1));
        assert_eq!(life.phase, Phase::Up);
        assert_eq!(life.demand(), None);
    }

    #[test]
    fn a_failed_start_is_counted_and_the_next_demand_tries_again() {
        let config = config(0);
        let mut life = Lifecycle::new(&config);
        life.demand();
        life.started(&config, start(), None);
        assert_eq!((life.phase, life.failed_starts), (Phase::Down, 1));
        assert_eq!(life.demand(), Some(Action::Start));
    }

    #[test]
    fn idle_stops_after_idle_after_with_no_open_connection() {
        let config = config(0);
        let mut life = up(&config, 1);
        assert_eq!(life.tick(&config, at(120), quiet(at(120), 59)), None);
        let busy = Traffic {
            last_at: Some(at(100)),
            open_connections: 1,
        };
        assert_eq!(
            life.tick(&config, at(700), busy),
            None,
            "an open connection"
        );
        assert_eq!(
            life.tick(&config, at(700), quiet(at(700), 60)),
            Some(Action::Stop(ScaleReason::Idle {
                after: Duration::from_secs(60)
            }))
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
        let config = config(0);
        let mut life = up(&config, 1);
        let long_ago = |now| quiet(now, 10_000);
        assert_eq!(life.tick(&config, at(30), long_ago(at(30))), None);
        assert!(life.tick(&config, at(61), long_ago(at(61))).is_some());
    }

    #[test]
    fn max_age_stops_whatever_the_traffic_and_a_minimum_blocks_only_idle() {
        let config = config(2);
        let mut life = up(&config, 2);
        assert_eq!(life.tick(&config, at(600), quiet(at(600), 600)), None);
        let busy = Traffic {
            last_at: Some(at(3600)),
            open_connections: 9,
        };
        assert_eq!(
            life.tick(&config, at(3600), busy),
            Some(Action::Stop(ScaleReason::MaxAge {
                age: Duration::from_secs(3600)
            }))
        );
        life.stop_cancelled();
        assert_eq!(life.phase, Phase::Up);
    }

    #[test]
    fn a_minimum_risen_past_the_started_size_never_holds_max_age_back() {
        let config = config(2);
        let mut life = up(&config, 1);
        let busy = Traffic {
            last_at: Some(at(3600)),
            open_connections: 1,
        };
        assert_eq!(
            life.tick(&config, at(3600), busy),
            Some(Action::Stop(ScaleReason::MaxAge {
                age: Duration::from_secs(3600)
            }))
        );
    }

    #[test]
    fn a_down_or_starting_target_is_never_stopped_by_the_timer() {
        let config = config(0);
        let mut life = Lifecycle::new(&config);
        let later = at(99_999);
        assert_eq!(life.tick(&config, later, quiet(later, 99_999)), None);
        life.demand();
        assert_eq!(life.tick(&config, later, quiet(later, 99_999)), None);
    }
}
