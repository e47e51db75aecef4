//! The engine's rules, one test each, and the 33 cases of autoscalebot 2.1's own suite ported
//! (`../shared/reference/autoscalebot-2.1.md`). The fixture is 2.1's: MIN 400 ms, MAX 1000 ms,
//! FAILS 3, PASSES 5, MIN_DYNOS 1, MAX_DYNOS 3, INCREMENT 1, NOTIFY_IF_NEEDS_BELOW_MIN on.

use super::*;
use crate::notices;
use crate::settings::{from_toml_str, AppSettings};
use autoscalebot_backends::notify::{Event, EventKind};
use chrono::TimeZone;
use std::collections::HashMap;

const FIXTURE: &str = r#"
heroku_app_name = "test-app"
heroku_api_key = "secret-key"
min_response_time_in_ms = 400
max_response_time_in_ms = 1000
number_of_fails_to_scale_up_after = 3
number_of_passes_to_scale_down_after = 5
min_dynos = 1
max_dynos = 3
increment = 1
notify_if_needs_below_min = true
notification_backends = ["test"]
"#;

fn settings_with(extra: &str) -> AppSettings {
    let text = format!("{FIXTURE}\n{extra}");
    // Later keys win in our tests: strip fixture keys that `extra` redefines.
    let redefined: Vec<&str> = extra
        .lines()
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim()))
        .collect();
    let text: String = text
        .lines()
        .enumerate()
        .filter(|(index, line)| {
            let in_fixture = *index < FIXTURE.lines().count() + 1;
            let key = line.split_once('=').map(|(key, _)| key.trim());
            !(in_fixture && key.is_some_and(|key| redefined.contains(&key)))
        })
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    from_toml_str(&text, &HashMap::new())
        .unwrap_or_else(|error| panic!("fixture settings: {error}"))
        .apps
        .remove(0)
}

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

/// Plays heartbeats against the engine as the loop would, with a platform that always obeys.
struct Sim {
    settings: AppSettings,
    state: State,
    dynos: u32,
    now: DateTime<Utc>,
    events: Vec<Event>,
    scales: Vec<ScaleTo>,
    platform_fails: bool,
    /// Planned downtime windows, told to the engine before each heartbeat as the loop does.
    windows: Vec<Window>,
    /// Real traffic, told to the engine with each heartbeat as the loop does.
    traffic: Option<Traffic>,
}

impl Sim {
    fn new(settings: AppSettings, dynos: u32) -> Self {
        Sim {
            state: State::new(&settings.engine_config()),
            settings,
            dynos,
            now: noon(),
            events: Vec::new(),
            scales: Vec::new(),
            platform_fails: false,
            windows: Vec::new(),
            traffic: None,
        }
    }

    fn outcome(&mut self, reading: HeartbeatReading) -> Output {
        self.step_with(Some(reading), None)
    }

    /// One beat: the engine's step with what was seen, then what came of its scale.
    fn step_with(
        &mut self,
        heartbeat: Option<HeartbeatReading>,
        router: Option<RouterStats>,
    ) -> Output {
        let config = self.settings.engine_config();
        let inputs = Inputs {
            heartbeat,
            router,
            size: Some(self.dynos),
            downtime: crate::downtime::active_window(&self.windows, self.now).cloned(),
            traffic: self.traffic,
            queue: None,
        };
        let (state, output) = step(&self.state, &config, &inputs, self.now);
        self.state = state;
        self.tell(&output.notices);
        if let Some(scale) = output.scale {
            let acted = if self.platform_fails {
                Acted::Failed {
                    scale: Some(scale),
                    error: "the platform answered 503".to_string(),
                }
            } else {
                self.dynos = scale.to;
                self.scales.push(scale);
                Acted::Scaled {
                    scale,
                    dry_run: false,
                }
            };
            let told = self.state.acted(&config, &acted, self.now);
            self.tell(&told);
        }
        self.now += chrono::Duration::seconds(30);
        output
    }

    fn tell(&mut self, told: &[Notice]) {
        let app = self.settings.app_name.clone();
        self.events
            .extend(notices::events(&app, self.now, told, None));
    }

    fn beat_ms(&mut self, ms: u64) -> Output {
        self.outcome(HeartbeatReading::Answered {
            status: 200,
            elapsed: Duration::from_millis(ms),
        })
    }

    fn fails(&mut self, count: usize) {
        for _ in 0..count {
            self.beat_ms(2000);
        }
    }

    fn passes(&mut self, count: usize) {
        for _ in 0..count {
            self.beat_ms(10);
        }
    }

    fn kinds(&self) -> Vec<EventKind> {
        self.events.iter().map(|event| event.kind).collect()
    }
}

// ---- autoscalebot 2.1's suite, ported ----

#[test]
fn case_01_scale_requests_are_clamped_to_the_bounds() {
    let mut sim = Sim::new(settings_with("increment = 5"), 1);
    sim.fails(3);
    assert_eq!(sim.dynos, 3, "a request for 6 clamps to the max of 3");
    let mut sim = Sim {
        settings: settings_with(""),
        ..sim
    };
    sim.passes(5);
    assert_eq!(sim.dynos, 2);
}

#[test]
fn case_02_the_count_after_scaling_is_the_new_count() {
    let mut sim = Sim::new(settings_with("increment = 2"), 1);
    sim.fails(3);
    assert_eq!(sim.dynos, 3);
    assert_eq!(sim.scales.last().map(|scale| scale.to), Some(3));
}

#[test]
fn case_03_the_latest_heartbeat_decides_the_streak() {
    let mut sim = Sim::new(settings_with(""), 2);
    sim.fails(2);
    sim.passes(1);
    assert_eq!(sim.state.streaks().unwrap().consecutive_fails, 0);
    assert_eq!(sim.state.streaks().unwrap().consecutive_passes, 1);
}

#[test]
fn case_04_seven_passes_scale_down_once_and_keep_counting() {
    let mut sim = Sim::new(settings_with(""), 3);
    sim.passes(7);
    assert_eq!(sim.dynos, 2, "one scale-down after the 5th pass");
    assert_eq!(
        sim.state.streaks().unwrap().consecutive_passes,
        2,
        "counting restarts after a scale"
    );
}

#[test]
fn case_05_needs_scale_up_only_after_the_fail_streak() {
    let mut sim = Sim::new(settings_with(""), 1);
    assert_eq!(sim.beat_ms(10).scale, None);
    assert_eq!(sim.beat_ms(2000).scale, None);
    assert_eq!(sim.beat_ms(2000).scale, None);
    let plan = sim.beat_ms(2000);
    assert_eq!(plan.scale.map(|scale| (scale.from, scale.to)), Some((1, 2)));
}

#[test]
fn case_06_needs_scale_down_only_after_the_pass_streak() {
    let mut sim = Sim::new(settings_with(""), 3);
    assert_eq!(sim.beat_ms(2000).scale, None);
    for _ in 0..4 {
        assert_eq!(sim.beat_ms(10).scale, None);
    }
    let plan = sim.beat_ms(10);
    assert_eq!(plan.scale.map(|scale| (scale.from, scale.to)), Some((3, 2)));
}

#[test]
fn case_07_scale_up_one_step() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.fails(3);
    assert_eq!(sim.dynos, 2);
}

#[test]
fn case_08_scale_ups_stop_at_the_max() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.fails(3 * 4);
    assert_eq!(sim.dynos, 3);
    assert_eq!(sim.scales.len(), 2);
}

#[test]
fn case_09_scale_down_one_step() {
    let mut sim = Sim::new(settings_with(""), 3);
    sim.passes(5);
    assert_eq!(sim.dynos, 2);
}

#[test]
fn case_10_scale_downs_stop_at_the_min() {
    let mut sim = Sim::new(settings_with(""), 3);
    sim.passes(5 * 4);
    assert_eq!(sim.dynos, 1);
    assert_eq!(sim.scales.len(), 2);
}

#[test]
fn case_11_five_fails_per_round() {
    let mut sim = Sim::new(settings_with(""), 1);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        sim.fails(5);
        sizes.push(sim.dynos);
    }
    assert_eq!(sizes, vec![2, 3, 3]);
}

#[test]
fn case_12_five_passes_per_round() {
    let mut sim = Sim::new(settings_with(""), 3);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        sim.passes(5);
        sizes.push(sim.dynos);
    }
    assert_eq!(sizes, vec![2, 1, 1]);
}

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, hour, minute, 0).unwrap()
}

#[test]
fn case_13_max_table() {
    let settings = settings_with(r#"max_dynos = { "0:00" = 2, "9:00" = 5, "17:00" = 3 }"#);
    let max = |h, m| settings.engine_config().bounds_at(at(h, m)).max;
    assert_eq!(
        [max(1, 0), max(12, 0), max(18, 0), max(9, 5), max(9, 0)],
        [2, 5, 3, 5, 5]
    );
}

#[test]
fn case_14_min_table() {
    let settings = settings_with(
        r#"min_dynos = { "0:00" = 2, "9:00" = 5, "17:00" = 3 }
max_dynos = 10"#,
    );
    let min = |h, m| settings.engine_config().bounds_at(at(h, m)).min;
    assert_eq!(
        [min(1, 0), min(12, 0), min(18, 0), min(9, 5), min(9, 0)],
        [2, 5, 3, 5, 5]
    );
}

#[test]
fn case_15_increment_two() {
    let mut sim = Sim::new(settings_with("increment = 2"), 1);
    sim.fails(3);
    assert_eq!(sim.dynos, 3);
}

#[test]
fn case_16_a_raised_min_moves_the_size_up_on_the_next_heartbeat() {
    let mut sim = Sim::new(settings_with("min_dynos = 2"), 1);
    let plan = sim.beat_ms(700);
    assert_eq!(
        plan.scale.map(|scale| scale.reason),
        Some(ScaleReason::BelowMin)
    );
    assert_eq!(sim.dynos, 2);
}

#[test]
fn case_17_a_lowered_max_moves_the_size_down_on_the_next_heartbeat() {
    let mut sim = Sim::new(settings_with("max_dynos = 2"), 4);
    let plan = sim.beat_ms(2000);
    assert_eq!(
        plan.scale.map(|scale| scale.reason),
        Some(ScaleReason::AboveMax)
    );
    assert_eq!(sim.dynos, 2);
}

#[test]
fn case_18_scaling_clears_the_streaks() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.fails(3);
    assert_eq!(sim.dynos, 2);
    assert_eq!(
        (
            sim.state.streaks().unwrap().consecutive_fails,
            sim.state.streaks().unwrap().consecutive_passes
        ),
        (0, 0)
    );
    sim.fails(2);
    assert_eq!(sim.dynos, 2, "two more fails are not a new streak of three");
}

#[test]
fn case_19_low_low_low_high_high_high_scales_up() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.passes(3);
    sim.fails(3);
    assert_eq!(sim.dynos, 2);
}

#[test]
fn case_20_half_a_second_is_in_band() {
    let heartbeat = classify(
        &HeartbeatReading::Answered {
            status: 200,
            elapsed: Duration::from_millis(500),
        },
        1000,
        400,
    );
    assert_eq!(heartbeat.observation, Observation::InBand);
}

#[test]
fn case_21_an_error_is_a_fail() {
    let heartbeat = classify(
        &HeartbeatReading::Unreachable {
            error: "connection refused".into(),
            refused: true,
        },
        1000,
        400,
    );
    assert_eq!(heartbeat.observation, Observation::Fail);
}

#[test]
fn case_22_two_seconds_is_a_fail() {
    let heartbeat = classify(
        &HeartbeatReading::Answered {
            status: 200,
            elapsed: Duration::from_secs(2),
        },
        1000,
        400,
    );
    assert_eq!(heartbeat.observation, Observation::Fail);
}

#[test]
fn case_23_an_instant_answer_is_a_pass() {
    let heartbeat = classify(
        &HeartbeatReading::Answered {
            status: 200,
            elapsed: Duration::ZERO,
        },
        1000,
        400,
    );
    assert_eq!(heartbeat.observation, Observation::Pass);
}

#[test]
fn case_24_scale_difference_over_the_threshold_within_the_period_is_told() {
    let settings = settings_with(
        "max_dynos = 10\nnotify_if_scale_diff_exceeds_threshold = 2\nnotify_if_scale_diff_exceeds_period_in_minutes = 30",
    );
    let mut sim = Sim::new(settings, 1);
    sim.fails(3 * 3);
    assert_eq!(sim.dynos, 4, "three scale-ups of one");
    let told: Vec<&Event> = sim
        .events
        .iter()
        .filter(|event| event.kind == EventKind::ScaleDiffExceeded)
        .collect();
    assert_eq!(told.len(), 1, "told once, on the third dyno moved");
    assert!(told[0].message.contains("Too much scaling"));
    assert!(
        told[0].reason.contains("3 dynos moved"),
        "{}",
        told[0].reason
    );
}

#[test]
fn case_25_scale_difference_spread_over_more_than_the_period_is_not_told() {
    let settings = settings_with(
        "max_dynos = 10\nnotify_if_scale_diff_exceeds_threshold = 2\nnotify_if_scale_diff_exceeds_period_in_minutes = 30",
    );
    let mut sim = Sim::new(settings, 1);
    for _ in 0..3 {
        sim.fails(3);
        // 20 minutes of in-band heartbeats between scale-ups.
        for _ in 0..40 {
            sim.beat_ms(700);
        }
    }
    assert_eq!(sim.dynos, 4);
    assert!(!sim.kinds().contains(&EventKind::ScaleDiffExceeded));
}

#[test]
fn case_26_at_the_max_and_still_slow_is_told_once() {
    let mut sim = Sim::new(settings_with(""), 3);
    sim.fails(5);
    let told: Vec<&Event> = sim
        .events
        .iter()
        .filter(|event| event.kind == EventKind::NeedsAboveMax)
        .collect();
    assert_eq!(told.len(), 1);
    assert!(told[0].message.contains("max (3)"), "{}", told[0].message);
}

#[test]
fn case_27_needs_below_min_is_not_told_at_one_dyno() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.passes(10);
    assert!(sim.events.is_empty(), "{:?}", sim.kinds());
}

#[test]
fn case_28_needs_below_min_is_told_once_at_a_min_of_two() {
    let mut sim = Sim::new(settings_with("min_dynos = 2"), 2);
    sim.passes(5);
    assert_eq!(sim.kinds(), vec![EventKind::NeedsBelowMin]);
    assert!(sim.events[0].message.contains("minimum (2)"));
}

#[test]
fn case_29_needs_above_max_disabled_tells_nothing() {
    let mut sim = Sim::new(settings_with("notify_if_needs_exceed_max = false"), 3);
    sim.fails(5);
    assert!(sim.events.is_empty());
}

#[test]
fn case_30_needs_below_min_disabled_tells_nothing() {
    let mut sim = Sim::new(
        settings_with("min_dynos = 2\nnotify_if_needs_below_min = false"),
        2,
    );
    sim.passes(5);
    assert!(sim.events.is_empty());
}

#[test]
fn case_31_a_failing_scale_is_told_once() {
    let mut sim = Sim::new(settings_with("notify_on_scale_fails = true"), 1);
    sim.platform_fails = true;
    sim.fails(3);
    assert_eq!(sim.kinds(), vec![EventKind::ScaleFailed]);
    assert!(sim.events[0].message.contains("failed"));
    assert_eq!(sim.dynos, 1);
}

#[test]
fn case_32_every_scale_is_told() {
    let mut sim = Sim::new(settings_with("notify_on_every_scale = true"), 1);
    sim.fails(6);
    sim.passes(5);
    let scaled: Vec<&Event> = sim
        .events
        .iter()
        .filter(|event| event.kind == EventKind::Scaled)
        .collect();
    assert_eq!(scaled.len(), 3);
    assert_eq!(scaled[0].message, "Scaled to (2) dynos.");
    assert_eq!(
        (scaled[2].from_quantity, scaled[2].to_quantity),
        (Some(3), Some(2))
    );
}

#[tokio::test]
async fn case_33_every_backend_gets_the_message() {
    use autoscalebot_backends::notify::{Dispatcher, Notifier, TestNotifier};
    let first = TestNotifier::new();
    let second = TestNotifier::new();
    let notifiers: Vec<std::sync::Arc<dyn Notifier>> = vec![
        std::sync::Arc::new(first.clone()),
        std::sync::Arc::new(second.clone()),
    ];
    let dispatcher = Dispatcher::start(notifiers);
    let mut sim = Sim::new(settings_with("notify_on_every_scale = true"), 1);
    sim.fails(3);
    for event in &sim.events {
        dispatcher.dispatch(event);
    }
    dispatcher.drain(Duration::from_secs(5)).await;
    assert_eq!(first.events().len(), 1);
    assert_eq!(first.events(), second.events());
}

// ---- rules beyond 2.1 ----

#[test]
fn a_4xx_breaks_streaks_and_never_adds_dynos() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.fails(2);
    sim.outcome(HeartbeatReading::Answered {
        status: 404,
        elapsed: Duration::from_millis(5000),
    });
    sim.fails(2);
    assert_eq!(sim.dynos, 1);
    for _ in 0..10 {
        sim.outcome(HeartbeatReading::Answered {
            status: 401,
            elapsed: Duration::from_millis(5000),
        });
    }
    assert_eq!(sim.dynos, 1);
    assert_eq!(sim.state.streaks().unwrap().consecutive_fails, 0);
}

fn not_found(sim: &mut Sim) {
    sim.outcome(HeartbeatReading::Answered {
        status: 404,
        elapsed: Duration::from_millis(5),
    });
}

fn refused(sim: &mut Sim) {
    sim.outcome(HeartbeatReading::Unreachable {
        error: "connection failed: Connection refused (os error 111)".into(),
        refused: true,
    });
}

fn heartbeat_kinds(sim: &Sim) -> Vec<EventKind> {
    sim.kinds()
        .into_iter()
        .filter(|kind| {
            matches!(
                kind,
                EventKind::HeartbeatMisconfigured | EventKind::HeartbeatMisconfiguredEnded
            )
        })
        .collect()
}

#[test]
fn a_4xx_heartbeat_is_told_once_while_it_lasts_and_its_end_once() {
    // Told with no notify_* setting on: nothing turns off being told of a wrong setting.
    let mut sim = Sim::new(settings_with("notify_if_needs_below_min = false"), 1);
    for _ in 0..20 {
        not_found(&mut sim);
    }
    assert_eq!(heartbeat_kinds(&sim), [EventKind::HeartbeatMisconfigured]);
    let told = &sim.events[0];
    assert!(told.message.contains("answers 404"), "{}", told.message);
    assert!(
        told.reason.contains("app_url") && told.reason.contains("heartbeat_url"),
        "what to check: {}",
        told.reason
    );
    assert_eq!(sim.dynos, 1, "and it never added a dyno");
    sim.beat_ms(500);
    sim.beat_ms(500);
    assert_eq!(
        heartbeat_kinds(&sim),
        [
            EventKind::HeartbeatMisconfigured,
            EventKind::HeartbeatMisconfiguredEnded
        ]
    );
}

#[test]
fn a_4xx_heartbeat_is_told_again_after_notify_repeat_after_like_any_condition() {
    let mut sim = Sim::new(settings_with("notify_repeat_after = \"10m\""), 1);
    // 25 beats of 30 s: told at the start and once 10 minutes on.
    for _ in 0..25 {
        not_found(&mut sim);
    }
    assert_eq!(count(&sim, EventKind::HeartbeatMisconfigured), 2);
}

#[test]
fn an_auth_wall_is_told_as_such() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.outcome(HeartbeatReading::Answered {
        status: 401,
        elapsed: Duration::from_millis(5),
    });
    assert!(
        sim.events[0].reason.contains("login"),
        "{}",
        sim.events[0].reason
    );
}

#[test]
fn a_refused_connection_is_misconfigured_only_until_the_app_first_answers() {
    let mut sim = Sim::new(settings_with(""), 1);
    for _ in 0..4 {
        refused(&mut sim);
    }
    assert_eq!(heartbeat_kinds(&sim), [EventKind::HeartbeatMisconfigured]);
    assert_eq!(sim.dynos, 1, "a wrong address never adds dynos");
    assert!(
        sim.events[0].message.contains("connection refused"),
        "{}",
        sim.events[0].message
    );
    sim.beat_ms(500);
    assert_eq!(
        heartbeat_kinds(&sim),
        [
            EventKind::HeartbeatMisconfigured,
            EventKind::HeartbeatMisconfiguredEnded
        ]
    );
    // Once the app has answered, a refused connection is a dyno gone: a fail, not a wrong URL.
    refused(&mut sim);
    refused(&mut sim);
    refused(&mut sim);
    assert_eq!(heartbeat_kinds(&sim).len(), 2);
    assert_eq!(sim.dynos, 2, "three fails in a row add a dyno");
}

#[test]
fn a_refused_connection_from_the_start_never_adds_dynos_under_the_target_policy() {
    let mut sim = Sim::new(settings_with("policy = \"target\"\nmax_dynos = 10"), 1);
    for _ in 0..12 {
        refused(&mut sim);
    }
    assert_eq!(sim.dynos, 1);
    assert!(sim.scales.is_empty());
    assert_eq!(heartbeat_kinds(&sim), [EventKind::HeartbeatMisconfigured]);
}

#[test]
fn a_timeout_neither_starts_nor_ends_a_misconfigured_heartbeat() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.outcome(HeartbeatReading::TimedOut {
        after: Duration::from_secs(5),
    });
    assert!(heartbeat_kinds(&sim).is_empty());
    not_found(&mut sim);
    sim.outcome(HeartbeatReading::TimedOut {
        after: Duration::from_secs(5),
    });
    assert_eq!(heartbeat_kinds(&sim), [EventKind::HeartbeatMisconfigured]);
}

#[test]
fn a_4xx_during_planned_downtime_is_not_told() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.windows = vec![window_minutes(0, 10)];
    for _ in 0..10 {
        not_found(&mut sim);
    }
    assert!(heartbeat_kinds(&sim).is_empty(), "{:?}", sim.kinds());
    // After the window, a 4xx that lasts is told.
    for _ in 0..12 {
        not_found(&mut sim);
    }
    assert_eq!(heartbeat_kinds(&sim), [EventKind::HeartbeatMisconfigured]);
}

#[test]
fn a_5xx_and_a_timeout_are_fails() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.outcome(HeartbeatReading::Answered {
        status: 503,
        elapsed: Duration::from_millis(3),
    });
    sim.outcome(HeartbeatReading::TimedOut {
        after: Duration::from_secs(5),
    });
    sim.outcome(HeartbeatReading::Unreachable {
        error: "reset".into(),
        refused: false,
    });
    assert_eq!(sim.dynos, 2);
}

#[test]
fn the_max_and_min_are_strict() {
    let exactly = |ms| {
        classify(
            &HeartbeatReading::Answered {
                status: 200,
                elapsed: Duration::from_millis(ms),
            },
            1000,
            400,
        )
        .observation
    };
    assert_eq!(exactly(1000), Observation::InBand);
    assert_eq!(exactly(1001), Observation::Fail);
    assert_eq!(exactly(400), Observation::InBand);
    assert_eq!(exactly(399), Observation::Pass);
}

#[test]
fn scale_up_cooldown_holds_a_second_scale_up() {
    let mut sim = Sim::new(settings_with("scale_up_cooldown = \"5m\""), 1);
    sim.fails(3);
    assert_eq!(sim.dynos, 2);
    let started = sim.now;
    sim.fails(3);
    assert_eq!(
        sim.dynos, 2,
        "90 s after the last scale, within a 5 m cool-off"
    );
    let plan = sim.beat_ms(2000);
    assert!(plan.cooling_until.is_some());
    while sim.now < started + chrono::Duration::minutes(5) {
        sim.beat_ms(2000);
    }
    assert_eq!(
        sim.dynos, 3,
        "the streak kept counting, so it scales once the cool-off ends"
    );
}

#[test]
fn scale_down_cooldown_does_not_slow_scale_ups() {
    let mut sim = Sim::new(
        settings_with("max_dynos = 5\nscale_down_cooldown = \"10m\""),
        1,
    );
    sim.fails(6);
    assert_eq!(sim.dynos, 3);
    sim.passes(5);
    assert_eq!(sim.dynos, 3, "the scale-down waits for the cool-off");
    for _ in 0..20 {
        sim.beat_ms(10);
    }
    assert_eq!(sim.dynos, 2);
}

#[test]
fn bound_moves_ignore_the_cooldowns() {
    let mut sim = Sim::new(settings_with("scale_down_cooldown = \"1h\""), 2);
    sim.passes(5);
    assert_eq!(sim.dynos, 1);
    sim.settings = settings_with("scale_down_cooldown = \"1h\"\nmin_dynos = 2");
    sim.beat_ms(700);
    assert_eq!(sim.dynos, 2);
    sim.settings = settings_with("scale_down_cooldown = \"1h\"\nmin_dynos = 1\nmax_dynos = 1");
    sim.beat_ms(700);
    assert_eq!(sim.dynos, 1);
}

#[test]
fn needs_above_max_is_repeated_after_the_period_and_its_end_is_told() {
    let mut sim = Sim::new(settings_with("notify_repeat_after = \"10m\""), 3);
    sim.fails(3 + 19); // 10 minutes of fails at 30 s
    assert_eq!(
        sim.kinds(),
        vec![EventKind::NeedsAboveMax],
        "not told again within 10 minutes"
    );
    sim.fails(2);
    assert_eq!(
        sim.kinds(),
        vec![EventKind::NeedsAboveMax, EventKind::NeedsAboveMax]
    );
    // It ends after as many calm heartbeats in a row as it took fails to start it.
    sim.beat_ms(700);
    sim.beat_ms(700);
    assert_eq!(
        sim.events.len(),
        2,
        "a lull of two heartbeats is not an end"
    );
    sim.beat_ms(700);
    assert_eq!(sim.kinds().last(), Some(&EventKind::NeedsAboveMaxEnded));
    assert_eq!(sim.events.len(), 3);
}

#[test]
fn answers_hovering_around_the_max_are_one_state_not_many() {
    let mut sim = Sim::new(settings_with(""), 3);
    for _ in 0..20 {
        sim.fails(3);
        sim.beat_ms(700);
        sim.beat_ms(700);
    }
    assert_eq!(sim.kinds(), vec![EventKind::NeedsAboveMax]);
    sim.passes(3);
    assert_eq!(
        sim.kinds(),
        vec![EventKind::NeedsAboveMax, EventKind::NeedsAboveMaxEnded]
    );
}

#[test]
fn needs_below_min_lasts_through_a_lull_and_ends_when_the_min_rises_past_it() {
    let mut sim = Sim::new(settings_with("min_dynos = 2"), 2);
    sim.passes(5);
    sim.beat_ms(700);
    sim.passes(5);
    assert_eq!(sim.kinds(), vec![EventKind::NeedsBelowMin]);
    for _ in 0..5 {
        sim.beat_ms(700);
    }
    assert_eq!(
        sim.kinds(),
        vec![EventKind::NeedsBelowMin, EventKind::NeedsBelowMinEnded]
    );
}

#[test]
fn every_ping_is_told_with_its_band() {
    let mut sim = Sim::new(settings_with("notify_on_every_ping = true"), 2);
    sim.beat_ms(10);
    sim.beat_ms(700);
    sim.beat_ms(2000);
    let messages: Vec<&str> = sim
        .events
        .iter()
        .map(|event| event.message.as_str())
        .collect();
    assert_eq!(
        messages,
        vec![
            "Ping: 10 ms, low",
            "Ping: 700 ms, right",
            "Ping: 2000 ms, high"
        ]
    );
}

#[test]
fn schedule_across_midnight_in_a_non_utc_zone() {
    // In Auckland (UTC+13 in March), 23:00 UTC is 12:00 the next day: the day entry applies.
    let settings = settings_with(
        r#"time_zone = "Pacific/Auckland"
max_dynos = 6
min_dynos = { "8:00" = 4, "20:00" = 1 }"#,
    );
    let utc_evening = Utc.with_ymd_and_hms(2026, 3, 10, 23, 0, 0).unwrap();
    assert_eq!(settings.engine_config().bounds_at(utc_evening).min, 4);
    // 10:00 UTC is 23:00 in Auckland: the evening entry applies, and it wraps past midnight.
    let utc_morning = Utc.with_ymd_and_hms(2026, 3, 10, 10, 0, 0).unwrap();
    assert_eq!(settings.engine_config().bounds_at(utc_morning).min, 1);
    let after_midnight = Utc.with_ymd_and_hms(2026, 3, 10, 14, 0, 0).unwrap(); // 3:00 local
    assert_eq!(settings.engine_config().bounds_at(after_midnight).min, 1);

    let mut sim = Sim::new(settings, 1);
    sim.now = utc_evening;
    sim.beat_ms(700);
    assert_eq!(
        sim.dynos, 4,
        "the day's min is applied on the next heartbeat"
    );
    sim.now = utc_morning;
    sim.passes(5);
    assert_eq!(
        sim.dynos, 3,
        "at night the min is 1, so fast answers scale down"
    );
}

#[test]
fn the_scale_difference_threshold_can_follow_the_time_of_day() {
    let settings = settings_with(
        r#"max_dynos = 10
notify_if_scale_diff_exceeds_threshold = { "0:00" = 1, "9:00" = 5 }
notify_if_scale_diff_exceeds_period_in_minutes = 60"#,
    );
    let mut sim = Sim::new(settings.clone(), 1);
    sim.fails(3 * 3); // noon: threshold 5, three dynos moved
    assert!(!sim.kinds().contains(&EventKind::ScaleDiffExceeded));
    let mut sim = Sim::new(settings, 1);
    sim.now = at(3, 0); // night: threshold 1
    sim.fails(3 * 2);
    assert!(sim.kinds().contains(&EventKind::ScaleDiffExceeded));
}

#[test]
fn dry_run_scales_are_worded_as_such() {
    let config = settings_with("notify_on_every_scale = true").engine_config();
    let mut state = State::new(&config);
    let scale = ScaleTo {
        from: 1,
        to: 2,
        reason: ScaleReason::TooSlow {
            beats: 3,
            slower_than_ms: 1000,
            signal: SignalKind::Heartbeat,
        },
    };
    let told = state.acted(
        &config,
        &Acted::Scaled {
            scale,
            dry_run: true,
        },
        noon(),
    );
    let events = notices::events("test-app", noon(), &told, None);
    assert_eq!(events[0].message, "Would scale to (2) dynos (dry run).");
}

#[test]
fn an_outage_is_told_once_then_its_end() {
    let mut sim = Sim::new(settings_with("notify_on_scale_fails = true"), 1);
    sim.platform_fails = true;
    sim.fails(8);
    assert_eq!(sim.kinds(), vec![EventKind::ScaleFailed]);
    sim.platform_fails = false;
    sim.fails(1);
    assert_eq!(sim.dynos, 2);
    assert_eq!(
        sim.kinds(),
        vec![EventKind::ScaleFailed, EventKind::ScaleRecovered]
    );
}

// ---- planned downtime ----

use crate::downtime::Source;

/// A window from `from` to `to` minutes after noon (the simulation's start).
fn window_minutes(from: i64, to: i64) -> Window {
    Window {
        start: noon() + chrono::Duration::minutes(from),
        end: noon() + chrono::Duration::minutes(to),
        source: Source::File {
            path: "downtime.txt".into(),
            line: 1,
        },
    }
}

fn count(sim: &Sim, kind: EventKind) -> usize {
    sim.kinds().iter().filter(|told| **told == kind).count()
}

#[test]
fn during_downtime_fails_are_not_counted_and_nothing_scales_up() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.windows = vec![window_minutes(0, 10)];
    sim.fails(20); // the whole window at 30 s
    assert_eq!(sim.dynos, 1);
    assert!(sim.scales.is_empty());
    assert_eq!(sim.state.streaks().unwrap().consecutive_fails, 0);
    assert!(
        !sim.kinds().contains(&EventKind::NeedsAboveMax),
        "{:?}",
        sim.kinds()
    );
}

#[test]
fn scale_up_resumes_after_the_window_from_fresh_counts() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.windows = vec![window_minutes(1, 5)];
    sim.fails(2); // before the window: two of the three fails
    sim.fails(8); // 12:01 to 12:04:30, in the window
    assert_eq!(sim.dynos, 1);
    sim.fails(2); // 12:05 (the end is not in the window) and 12:05:30
    assert_eq!(sim.dynos, 1, "the two fails before the window do not count");
    sim.fails(1);
    assert_eq!(sim.dynos, 2, "three fresh fails after the window scale up");
    assert!(matches!(sim.scales[0].reason, ScaleReason::TooSlow { .. }));
}

#[test]
fn the_start_and_the_end_are_told_once_each_in_local_time_with_the_source() {
    let mut sim = Sim::new(settings_with("time_zone = \"America/Vancouver\""), 1);
    sim.windows = vec![window_minutes(0, 5)];
    sim.fails(30);
    assert_eq!(
        sim.kinds(),
        vec![
            EventKind::DowntimeStarted,
            EventKind::DowntimeEnded,
            EventKind::NeedsAboveMax
        ],
        "after the window, 1 -> 2 -> 3 dynos, then too slow at the max"
    );
    assert_eq!(count(&sim, EventKind::DowntimeStarted), 1);
    assert_eq!(count(&sim, EventKind::DowntimeEnded), 1);
    let started = &sim.events[0];
    assert_eq!(started.kind, EventKind::DowntimeStarted);
    // Noon UTC is 05:00 in Vancouver in March (PDT).
    assert_eq!(
        started.message,
        "Planned downtime until 2026-03-10 05:05 PDT: fails are not counted and the worker does not scale up."
    );
    assert_eq!(
        started.reason,
        "2026-03-10 05:00 PDT to 2026-03-10 05:05 PDT, from downtime.txt line 1"
    );
    assert_eq!(started.at, noon());
    let ended = &sim.events[1];
    assert_eq!(ended.kind, EventKind::DowntimeEnded);
    assert_eq!(ended.at, noon() + chrono::Duration::minutes(5));
    assert_eq!(
        ended.message,
        "Planned downtime is over: counting heartbeats afresh."
    );
}

#[test]
fn overlapping_and_back_to_back_windows_are_one_downtime() {
    let mut sim = Sim::new(settings_with(""), 1);
    sim.windows = vec![
        window_minutes(0, 4),
        window_minutes(3, 6),
        window_minutes(6, 8),
    ];
    sim.fails(16 + 2);
    assert_eq!(count(&sim, EventKind::DowntimeStarted), 1);
    assert_eq!(count(&sim, EventKind::DowntimeEnded), 1);
    let ended = sim
        .events
        .iter()
        .find(|event| event.kind == EventKind::DowntimeEnded)
        .unwrap();
    assert_eq!(ended.at, noon() + chrono::Duration::minutes(8));
    assert!(sim.scales.is_empty(), "two fails after the window");
}

#[test]
fn downtime_dynos_holds_the_size_and_the_size_before_comes_back_after() {
    let mut sim = Sim::new(
        settings_with("downtime_dynos = 1\nnotify_on_every_scale = true"),
        3,
    );
    sim.windows = vec![window_minutes(0, 5)];
    sim.beat_ms(700);
    assert_eq!(
        sim.dynos, 1,
        "held at downtime_dynos from the first heartbeat"
    );
    assert_eq!(sim.scales[0].reason, ScaleReason::DowntimeHold);
    sim.dynos = 2; // someone scales by hand during the window
    sim.beat_ms(700);
    assert_eq!(sim.dynos, 1, "held again");
    sim.fails(8);
    assert_eq!(sim.dynos, 1);
    assert_eq!(sim.now, noon() + chrono::Duration::minutes(5));
    sim.beat_ms(700);
    assert_eq!(sim.dynos, 3, "back to the size before the window");
    assert_eq!(sim.scales.last().unwrap().reason, ScaleReason::DowntimeOver);
    sim.beat_ms(700);
    sim.beat_ms(700);
    assert_eq!(sim.scales.len(), 3, "no more scales");
    let started = sim
        .events
        .iter()
        .find(|event| event.kind == EventKind::DowntimeStarted)
        .unwrap();
    assert!(
        started.message.ends_with("Holding 1 dynos."),
        "{}",
        started.message
    );
    let ended = sim
        .events
        .iter()
        .find(|event| event.kind == EventKind::DowntimeEnded)
        .unwrap();
    assert!(
        ended.message.ends_with("Going back to 3 dynos."),
        "{}",
        ended.message
    );
    let scaled: Vec<&str> = sim
        .events
        .iter()
        .filter(|event| event.kind == EventKind::Scaled)
        .map(|event| event.reason.as_str())
        .collect();
    assert_eq!(
        scaled,
        [
            "from 3 to 1: holding downtime_dynos during planned downtime",
            "from 2 to 1: holding downtime_dynos during planned downtime",
            "from 1 to 3: back to the size before the planned downtime"
        ]
    );
}

#[test]
fn downtime_dynos_may_leave_the_bounds_and_the_way_back_is_within_them() {
    let mut sim = Sim::new(
        settings_with("downtime_dynos = 0\nmin_dynos = 2\nmax_dynos = 5"),
        5,
    );
    sim.windows = vec![window_minutes(0, 1)];
    sim.beat_ms(700);
    assert_eq!(
        sim.dynos, 0,
        "downtime_dynos = 0 stops the app for the window"
    );
    sim.settings = settings_with("downtime_dynos = 0\nmin_dynos = 2\nmax_dynos = 4");
    sim.beat_ms(700);
    sim.beat_ms(700);
    assert_eq!(sim.dynos, 4, "back to 5, within the max now in force");
}

#[test]
fn a_scale_back_that_fails_is_tried_again() {
    let mut sim = Sim::new(settings_with("downtime_dynos = 1"), 3);
    sim.windows = vec![window_minutes(0, 1)];
    sim.beat_ms(700);
    sim.beat_ms(700);
    sim.platform_fails = true;
    sim.beat_ms(700);
    assert_eq!(sim.dynos, 1);
    sim.platform_fails = false;
    sim.beat_ms(700);
    assert_eq!(sim.dynos, 3);
}

#[test]
fn during_downtime_passes_do_not_scale_down() {
    let mut sim = Sim::new(settings_with(""), 3);
    sim.windows = vec![window_minutes(0, 10)];
    sim.passes(20);
    assert_eq!(sim.dynos, 3);
    assert_eq!(sim.state.streaks().unwrap().consecutive_passes, 0);
}

#[test]
fn during_downtime_without_downtime_dynos_the_bounds_still_apply() {
    let mut sim = Sim::new(settings_with(""), 5);
    sim.windows = vec![window_minutes(0, 10)];
    sim.beat_ms(2000);
    assert_eq!(sim.dynos, 3);
    assert_eq!(sim.scales[0].reason, ScaleReason::AboveMax);
}

#[test]
fn notify_on_downtime_off_tells_nothing_but_still_holds() {
    let mut sim = Sim::new(settings_with("notify_on_downtime = false"), 1);
    sim.windows = vec![window_minutes(0, 5)];
    sim.fails(12);
    assert!(sim.events.is_empty(), "{:?}", sim.kinds());
    assert_eq!(sim.dynos, 1);
}

#[test]
fn a_failed_formation_read_during_downtime_counts_nothing() {
    let config = settings_with("").engine_config();
    let mut state = State::new(&config);
    // The read failed: no size, so the beat only counts what it saw.
    let slow = |downtime: Option<Window>| Inputs {
        heartbeat: Some(HeartbeatReading::Answered {
            status: 200,
            elapsed: Duration::from_millis(2000),
        }),
        downtime,
        ..Inputs::default()
    };
    for _ in 0..2 {
        (state, _) = step(&state, &config, &slow(Some(window_minutes(0, 5))), noon());
    }
    assert_eq!(state.streaks().unwrap().consecutive_fails, 0);
    assert!(state.downtime().is_some());
    let later = noon() + chrono::Duration::minutes(5);
    (state, _) = step(&state, &config, &slow(None), later);
    assert_eq!(state.streaks().unwrap().consecutive_fails, 1);
}

#[test]
fn too_slow_at_the_max_is_dropped_silently_by_a_window_and_told_afresh_after() {
    let mut sim = Sim::new(settings_with(""), 3);
    sim.fails(3);
    assert_eq!(sim.kinds(), vec![EventKind::NeedsAboveMax]);
    sim.windows = vec![window_minutes(2, 4)];
    sim.fails(1 + 4 + 3); // to 12:02, the window, three fails after it
    assert_eq!(
        sim.kinds(),
        vec![
            EventKind::NeedsAboveMax,
            EventKind::DowntimeStarted,
            EventKind::DowntimeEnded,
            EventKind::NeedsAboveMax
        ]
    );
}

#[test]
fn pings_during_downtime_say_so() {
    let mut sim = Sim::new(settings_with("notify_on_every_ping = true"), 2);
    sim.windows = vec![window_minutes(0, 1)];
    sim.beat_ms(2000);
    assert_eq!(
        sim.events[1].message,
        "Ping: 2000 ms, high (planned downtime)"
    );
}

// ---- The router signal (issue 7) ----

fn router_stats(latency_p95_ms: Option<u64>, requests: u64) -> RouterStats {
    RouterStats {
        window: Duration::from_secs(30),
        requests,
        requests_per_second: requests as f64 / 30.0,
        latency_p95_ms,
        ..Default::default()
    }
}

#[test]
fn a_router_window_is_classified_by_its_p95_against_the_same_min_and_max() {
    let classify = |p95| classify_router(&router_stats(p95, 90), 1000, 400).observation;
    assert_eq!(classify(Some(1001)), Observation::Fail);
    assert_eq!(
        classify(Some(1000)),
        Observation::InBand,
        "strict, as heartbeats"
    );
    assert_eq!(classify(Some(400)), Observation::InBand);
    assert_eq!(classify(Some(399)), Observation::Pass);
    assert_eq!(classify(Some(u64::MAX)), Observation::Fail, "router errors");
    let idle = classify_router(&router_stats(None, 0), 1000, 400);
    assert_eq!(idle.observation, Observation::Pass);
    let idle_summary = notices::summary(&idle);
    assert!(idle_summary.contains("no requests"), "{idle_summary}");
    let slow = classify_router(&router_stats(Some(1200), 90), 1000, 400);
    assert_eq!(slow.response_time_ms, Some(1200));
    assert!(notices::summary(&slow).contains("p95 1200 ms over 90 requests"));
}

#[test]
fn router_windows_drive_the_same_streaks_and_scales() {
    let mut sim = Sim::new(settings_with(""), 1);
    for _ in 0..3 {
        sim.step_with(None, Some(router_stats(Some(1500), 300)));
    }
    assert_eq!(sim.dynos, 2, "three slow windows add a dyno");
}

#[test]
fn with_both_signals_a_fail_from_either_counts() {
    use Observation::*;
    let beat = |observation| Heartbeat {
        observation,
        response_time_ms: Some(10),
        seen: Seen::Nothing,
    };
    let cases = [
        (Fail, Pass, Fail),
        (Pass, Fail, Fail),
        (Pass, Pass, Pass),
        (Pass, InBand, InBand),
        (InBand, Pass, InBand),
        (
            Misconfigured { status: Some(404) },
            Pass,
            Misconfigured { status: Some(404) },
        ),
        (Misconfigured { status: Some(404) }, Fail, Fail),
    ];
    for (heartbeat, router, expected) in cases {
        assert_eq!(
            combine(&beat(heartbeat), &beat(router)).observation,
            expected,
            "{heartbeat:?} + {router:?}"
        );
    }
    let combined = combine(
        &Heartbeat {
            observation: Pass,
            response_time_ms: Some(30),
            seen: Seen::Heartbeat(HeartbeatReading::Answered {
                status: 200,
                elapsed: Duration::from_millis(30),
            }),
        },
        &classify_router(&router_stats(Some(1500), 9), 1000, 400),
    );
    assert_eq!(combined.response_time_ms, Some(1500));
    assert!(notices::summary(&combined).starts_with("30 ms; router p95 1500 ms"));
}

// ---- Scale to zero: idle_after, max_age, and a stopped app ----

#[test]
fn stop_due_is_max_age_whatever_the_traffic_and_idle_only_at_a_zero_minimum() {
    let minutes = |m: u64| Duration::from_secs(m * 60);
    let idle = Some(minutes(10));
    let age = Some(minutes(600));
    assert_eq!(stop_due(idle, age, 0, minutes(5), Some(minutes(5))), None);
    assert_eq!(
        stop_due(idle, age, 0, minutes(30), Some(minutes(10))),
        Some(StopReason::Idle)
    );
    assert_eq!(
        stop_due(idle, age, 1, minutes(30), Some(minutes(30))),
        None,
        "min_dynos 1 in force"
    );
    assert_eq!(
        stop_due(idle, age, 0, minutes(30), None),
        None,
        "a connection is open"
    );
    assert_eq!(
        stop_due(idle, age, 3, minutes(600), None),
        Some(StopReason::MaxAge)
    );
    assert_eq!(
        stop_due(None, None, 0, minutes(9999), Some(minutes(9999))),
        None
    );
}

#[test]
fn passes_never_take_the_app_below_one_dyno() {
    let mut sim = Sim::new(settings_with("min_dynos = 0"), 2);
    sim.passes(5);
    assert_eq!(sim.dynos, 1);
    sim.passes(20);
    assert_eq!(sim.dynos, 1, "only idle_after or max_age go to zero");
    assert!(sim.scales.iter().all(|scale| scale.to > 0));
}

#[test]
fn idle_after_scales_to_zero_after_that_long_without_traffic() {
    let mut sim = Sim::new(settings_with("min_dynos = 0\nidle_after = \"10m\""), 1);
    let start = sim.now;
    sim.traffic = Some(Traffic {
        last_at: Some(start),
        open_connections: 0,
    });
    // 30 s per beat: 19 beats reach 9.5 minutes of quiet, the 21st is past 10.
    for _ in 0..20 {
        sim.beat_ms(500);
    }
    assert_eq!(sim.dynos, 1, "not yet ten minutes");
    sim.beat_ms(500);
    assert_eq!(sim.dynos, 0);
    let last = sim.scales.last().unwrap();
    assert_eq!(
        last.reason,
        ScaleReason::Idle {
            after: Duration::from_secs(600)
        }
    );
    assert!(notices::describe(&last.reason).contains("10m"));
}

#[test]
fn traffic_or_an_open_connection_keeps_the_app_up() {
    let mut sim = Sim::new(settings_with("min_dynos = 0\nidle_after = \"2m\""), 1);
    for _ in 0..40 {
        sim.traffic = Some(Traffic {
            last_at: Some(sim.now - chrono::Duration::seconds(60)),
            open_connections: 0,
        });
        sim.beat_ms(500);
    }
    assert_eq!(sim.dynos, 1, "traffic every minute");
    sim.traffic = Some(Traffic {
        last_at: Some(sim.now - chrono::Duration::hours(1)),
        open_connections: 1,
    });
    sim.beat_ms(500);
    assert_eq!(sim.dynos, 1, "a quiet but open connection is traffic");
}

#[test]
fn without_a_traffic_signal_idle_after_never_stops_the_app() {
    let mut sim = Sim::new(settings_with("min_dynos = 0\nidle_after = \"1m\""), 1);
    for _ in 0..20 {
        sim.beat_ms(500);
    }
    assert_eq!(sim.dynos, 1);
}

#[test]
fn a_fresh_start_gets_a_whole_idle_after() {
    let mut sim = Sim::new(settings_with("min_dynos = 0\nidle_after = \"2m\""), 0);
    // Traffic last seen long ago, then the app is started (say, by a schedule).
    sim.traffic = Some(Traffic {
        last_at: Some(sim.now - chrono::Duration::hours(5)),
        open_connections: 0,
    });
    sim.dynos = 1;
    sim.beat_ms(500);
    assert_eq!(sim.dynos, 1, "just started: quiet for 0 s, not 5 h");
    for _ in 0..4 {
        sim.beat_ms(500);
    }
    assert_eq!(sim.dynos, 0);
}

#[test]
fn max_age_stops_the_app_whatever_the_traffic_and_the_minimum_restarts_it() {
    let mut sim = Sim::new(settings_with("min_dynos = 1\nmax_age = \"5m\""), 2);
    sim.traffic = Some(Traffic {
        last_at: None,
        open_connections: 7,
    });
    // 30 s per beat: at 5 minutes (the 11th beat) it has run for max_age.
    for _ in 0..10 {
        sim.beat_ms(500);
    }
    assert_eq!(sim.dynos, 2);
    sim.beat_ms(500);
    assert_eq!(sim.dynos, 0);
    assert_eq!(
        sim.scales.last().unwrap().reason,
        ScaleReason::MaxAge {
            age: Duration::from_secs(300)
        }
    );
    assert_eq!(sim.state.running_since, None);
    // At 0 the loop does not probe; the engine's stopped decision brings back the minimum.
    let plan = stopped(&mut sim.state, &sim.settings, sim.now);
    let scale = plan.scale.expect("below min_dynos");
    assert_eq!(
        (scale.from, scale.to, scale.reason),
        (0, 1, ScaleReason::BelowMin)
    );
}

#[test]
fn a_stopped_app_stays_stopped_at_a_zero_minimum_and_forgets_old_streaks() {
    let settings = settings_with("min_dynos = { \"0:00\" = 0, \"13:00\" = 2 }");
    let config = settings.engine_config();
    let mut state = State::new(&config);
    let fail = Inputs {
        heartbeat: Some(HeartbeatReading::TimedOut {
            after: Duration::from_secs(5),
        }),
        ..Inputs::default()
    };
    for _ in 0..2 {
        (state, _) = step(&state, &config, &fail, noon());
    }
    assert_eq!(state.streaks().unwrap().consecutive_fails, 2);
    let plan = stopped(&mut state, &settings, noon());
    assert_eq!(plan.scale, None);
    assert_eq!(state.streaks().unwrap().consecutive_fails, 0);
    // The schedule's 13:00 minimum wakes it.
    let plan = stopped(&mut state, &settings, noon() + chrono::Duration::hours(1));
    assert_eq!(plan.scale.map(|scale| scale.to), Some(2));
}

#[test]
fn a_refusal_is_told_even_without_notify_on_scale_fails_and_so_is_its_end() {
    let settings = settings_with("");
    assert!(!settings.notify.on_scale_fails);
    let config = settings.engine_config();
    let mut state = State::new(&config);
    let error = "reading the formation: the platform refused the API key (401 unauthorized)";
    let refused = Acted::Refused {
        scale: None,
        error: error.to_string(),
    };
    let told = notices::events(
        "test-app",
        noon(),
        &state.acted(&config, &refused, noon()),
        None,
    );
    assert_eq!(told.len(), 1);
    assert!(told[0].message.contains("refuses"), "{}", told[0].message);
    assert!(told[0].reason.contains("401"));
    let later = noon() + chrono::Duration::seconds(30);
    assert!(
        state.acted(&config, &refused, later).is_empty(),
        "told once"
    );
    // An ordinary failure stays silent without notify_on_scale_fails.
    let mut quiet = State::new(&config);
    let failed = Acted::Failed {
        scale: None,
        error: "503".to_string(),
    };
    assert!(quiet.acted(&config, &failed, noon()).is_empty());
    // The end of a refusal is told.
    let inputs = Inputs {
        heartbeat: Some(HeartbeatReading::Answered {
            status: 200,
            elapsed: Duration::from_millis(700),
        }),
        size: Some(1),
        ..Inputs::default()
    };
    let (_, plan) = step(
        &state,
        &config,
        &inputs,
        later + chrono::Duration::seconds(30),
    );
    let kinds: Vec<EventKind> = notices::events("test-app", later, &plan.notices, None)
        .iter()
        .map(|event| event.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::ScaleRecovered]);
}

/// The beat of a stopped app: its size read at 0, no heartbeat.
fn stopped(state: &mut State, settings: &AppSettings, now: DateTime<Utc>) -> Output {
    let inputs = Inputs {
        size: Some(0),
        ..Inputs::default()
    };
    let (next, output) = step(state, &settings.engine_config(), &inputs, now);
    *state = next;
    output
}

#[test]
fn the_step_is_pure_the_same_state_and_inputs_give_the_same_output() {
    let config = settings_with("notify_on_every_ping = true").engine_config();
    let mut state = State::new(&config);
    let slow = Inputs {
        heartbeat: Some(HeartbeatReading::Answered {
            status: 200,
            elapsed: Duration::from_millis(2000),
        }),
        size: Some(1),
        ..Inputs::default()
    };
    for _ in 0..2 {
        (state, _) = step(&state, &config, &slow, noon());
    }
    let before = format!("{state:?}");
    let (first_state, first) = step(&state, &config, &slow, noon());
    let (second_state, second) = step(&state, &config, &slow, noon());
    assert_eq!(first, second);
    assert_eq!(format!("{first_state:?}"), format!("{second_state:?}"));
    assert_eq!(
        format!("{state:?}"),
        before,
        "the state given is left as it was"
    );
    assert_eq!(
        first.scale.map(|scale| (scale.from, scale.to)),
        Some((1, 2)),
        "the third fail scales"
    );
}

mod queue;
mod target;
