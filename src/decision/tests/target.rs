//! The target policy through the engine's one step: the size it computes, its confirmation,
//! up fast and down slowly, the hold on a missing signal, and what the step applies around it
//! (bounds, cool-offs, planned downtime), as the loop, the simulator and the activator see it.
//! The policy's own rules are tested in `crate::policy::target`; these test the wiring.

use super::*;
use proptest::prelude::*;

/// The router signal, the target policy, up to 10 dynos; the fixture's max is 1000 ms.
fn target_settings(extra: &str) -> AppSettings {
    let max = if extra.contains("max_dynos") {
        ""
    } else {
        "max_dynos = 10"
    };
    settings_with(&format!(
        "policy = \"target\"\nsignal = \"router\"\nlog_drain_password = \"x\"\nhttp_port = 0\n{max}\n{extra}"
    ))
}

/// A fresh 30 s router window: `rate` requests a second at a mean `service_ms`.
fn load(rate: f64, service_ms: f64) -> RouterStats {
    RouterStats {
        window: Duration::from_secs(30),
        requests: (rate * 30.0) as u64,
        requests_per_second: rate,
        mean_service_ms: Some(service_ms),
        latency_p95_ms: Some((service_ms * 2.5) as u64),
        since_last_line: Some(Duration::from_secs(1)),
        ..RouterStats::default()
    }
}

/// 10 requests a second at 98 ms: one dyno hardly queues, so the work is learnt (~97 ms).
fn quiet() -> RouterStats {
    load(10.0, 98.0)
}

/// 200 requests a second swamping one dyno: its lines say 3 s, a backlog's time.
fn surge() -> RouterStats {
    load(200.0, 3000.0)
}

/// A window with no line at all: the drain is quiet.
fn empty() -> RouterStats {
    RouterStats {
        window: Duration::from_secs(30),
        ..RouterStats::default()
    }
}

fn router(sim: &mut Sim, stats: RouterStats) -> Output {
    sim.step_with(None, Some(stats))
}

/// Learns the work from quiet windows, then surges until a scale (at most `beats` beats).
fn surge_from_quiet(sim: &mut Sim, beats: usize) {
    for _ in 0..3 {
        router(sim, quiet());
    }
    assert!(sim.scales.is_empty(), "quiet windows need one dyno");
    for _ in 0..beats {
        router(sim, surge());
        if !sim.scales.is_empty() {
            break;
        }
    }
}

#[test]
fn a_surge_goes_straight_to_the_computed_size_once_two_windows_agree() {
    let mut sim = Sim::new(target_settings("notify_on_every_scale = true"), 1);
    for _ in 0..3 {
        router(&mut sim, quiet());
    }
    let first = router(&mut sim, surge());
    assert_eq!(first.scale, None, "one window does not move it");
    let second = router(&mut sim, surge());
    let scale = second.scale.expect("the second agreeing window scales");
    // 200 req/s × ~97 ms of work = 19.5 busy workers; at 90 % of 4 per dyno, 5.4: 6 dynos.
    assert_eq!((scale.from, scale.to), (1, 6), "several dynos at once");
    let ScaleReason::Load {
        desired,
        requests_per_second,
        service_ms,
        ..
    } = scale.reason
    else {
        panic!("{:?}", scale.reason);
    };
    assert_eq!(desired, 6);
    assert_eq!(requests_per_second, 200.0);
    assert!((97.0..=98.0).contains(&service_ms), "{service_ms}");
    let told = sim
        .events
        .iter()
        .find(|event| event.kind == EventKind::Scaled)
        .unwrap();
    assert!(
        told.reason
            .contains("router: 200.0 req/s × 97 ms need 6 dynos at 90 % of 4 workers each"),
        "{}",
        told.reason
    );
}

#[test]
fn one_noisy_window_does_not_move_it() {
    let mut sim = Sim::new(target_settings(""), 1);
    for stats in [
        quiet(),
        quiet(),
        surge(),
        quiet(),
        surge(),
        quiet(),
        quiet(),
    ] {
        router(&mut sim, stats);
    }
    assert!(sim.scales.is_empty(), "{:?}", sim.scales);
}

#[test]
fn it_scales_up_fast_and_down_slowly_after_the_whole_delay() {
    let mut sim = Sim::new(target_settings(""), 1);
    surge_from_quiet(&mut sim, 4);
    assert_eq!(sim.dynos, 6);
    let scaled_up_at = sim.now - chrono::Duration::seconds(30);
    // Back to quiet: every window asks for one dyno, but only a whole delay of them scales.
    while sim.scales.len() == 1 {
        router(&mut sim, quiet());
        assert!(
            sim.now - scaled_up_at < chrono::Duration::minutes(10),
            "never down"
        );
    }
    let down = sim.scales[1];
    assert_eq!(
        (down.from, down.to),
        (6, 1),
        "down to the largest wish of the delay"
    );
    let waited = sim.now - chrono::Duration::seconds(30) - scaled_up_at;
    assert!(
        waited >= chrono::Duration::minutes(3),
        "down only after scale_down_delay (3m): {waited}"
    );
    assert!(matches!(down.reason, ScaleReason::Load { desired: 1, .. }));
}

#[test]
fn the_bounds_in_force_hold_the_target_policy_and_past_the_max_is_told() {
    let mut sim = Sim::new(target_settings("max_dynos = 4\nmin_dynos = 2"), 1);
    let output = router(&mut sim, quiet());
    let scale = output.scale.expect("below the min moves at once");
    assert_eq!((scale.to, scale.reason), (2, ScaleReason::BelowMin));
    for _ in 0..2 {
        router(&mut sim, quiet());
    }
    for _ in 0..4 {
        router(&mut sim, surge());
    }
    assert_eq!(sim.dynos, 4, "the computed 6, within max_dynos");
    assert_eq!(sim.scales.len(), 2);
    for _ in 0..3 {
        router(&mut sim, surge());
    }
    let told = sim
        .events
        .iter()
        .find(|event| event.kind == EventKind::NeedsAboveMax)
        .expect("at the max and the load asks for more: told");
    assert!(told.reason.contains("need 6 dynos"), "{}", told.reason);
    for _ in 0..20 {
        router(&mut sim, quiet());
    }
    assert_eq!(sim.dynos, 2, "down to the min in force, never below");
}

#[test]
fn a_quiet_stale_or_garbled_drain_holds_says_so_once_and_never_scales_down() {
    let mut sim = Sim::new(target_settings(""), 1);
    surge_from_quiet(&mut sim, 4);
    assert_eq!(sim.dynos, 6);
    let lost_at = sim.now;
    let mut firsts = 0;
    let maintenance = RouterStats {
        silent: 400,
        errors: 400,
        since_last_line: Some(Duration::from_secs(1)),
        ..empty()
    };
    let crashed = RouterStats {
        unavailable: 90,
        errors: 90,
        since_last_line: Some(Duration::from_secs(1)),
        ..empty()
    };
    let stale = RouterStats {
        since_last_line: Some(Duration::from_secs(600)),
        window: Duration::from_secs(900),
        ..quiet()
    };
    let windows = [empty(), maintenance, crashed, stale];
    for stats in windows.iter().cycle().take(80) {
        let output = router(&mut sim, stats.clone());
        let lost = output.signal_lost.expect("no usable signal: told");
        assert_eq!(lost.since, lost_at, "one loss, since its first beat");
        firsts += usize::from(lost.first);
        assert_ne!(output.observed.observation, Observation::Fail);
    }
    assert_eq!(firsts, 1, "logged once");
    assert_eq!(sim.dynos, 6, "40 minutes without a signal: held");
    assert_eq!(sim.scales.len(), 1);
    let back = router(&mut sim, quiet());
    assert_eq!(back.signal_lost, None, "the signal is back");
}

#[test]
fn lines_that_say_nothing_of_the_speed_hold_the_streaks_too() {
    let stats = RouterStats {
        silent: 16,
        errors: 16,
        ..empty()
    };
    let seen = classify_router(&stats, 1000, 400);
    assert_eq!(
        seen.observation,
        Observation::InBand,
        "H80: neither slow nor fast"
    );
    assert!(notices::summary(&seen).contains("no requests served"));
    let crashed = RouterStats {
        unavailable: 3,
        ..empty()
    };
    assert_eq!(
        classify_router(&crashed, 1000, 400).observation,
        Observation::InBand,
        "H10: down, not fast"
    );
    let mut sim = Sim::new(
        settings_with("signal = \"router\"\nlog_drain_password = \"x\"\nhttp_port = 0"),
        3,
    );
    for _ in 0..16 {
        router(&mut sim, stats.clone());
    }
    assert_eq!(
        sim.dynos, 3,
        "maintenance pages neither add nor remove dynos"
    );
    for _ in 0..5 {
        router(&mut sim, empty());
    }
    assert_eq!(
        sim.dynos, 2,
        "an entirely empty window is a pass, as before"
    );
}

#[test]
fn planned_downtime_freezes_the_target_policy_and_it_confirms_afresh_after() {
    let mut sim = Sim::new(target_settings(""), 1);
    for _ in 0..3 {
        router(&mut sim, quiet());
    }
    // 12:01:30 to 12:06: the surge is all inside the window.
    sim.windows = vec![window_minutes(2, 6)];
    router(&mut sim, surge());
    for _ in 0..8 {
        let output = router(&mut sim, surge());
        assert_eq!(output.scale, None, "frozen in the window");
        assert_eq!(output.signal_lost, None);
    }
    assert!(sim.scales.is_empty());
    assert_eq!(sim.now, noon() + chrono::Duration::minutes(6));
    let first_after = router(&mut sim, surge());
    assert_eq!(
        first_after.scale, None,
        "the window's windows do not confirm"
    );
    router(&mut sim, surge());
    assert_eq!(sim.dynos, 6);
}

#[test]
fn the_cool_offs_hold_the_target_policy() {
    let mut sim = Sim::new(target_settings("scale_down_cooldown = \"10m\""), 1);
    surge_from_quiet(&mut sim, 4);
    let scaled_up_at = sim.now - chrono::Duration::seconds(30);
    let mut cooling = false;
    while sim.scales.len() == 1 {
        cooling |= router(&mut sim, quiet()).cooling_until.is_some();
        assert!(sim.now - scaled_up_at < chrono::Duration::minutes(20));
    }
    assert!(cooling, "the delay passed, the cool-off held it");
    assert!(
        sim.now - chrono::Duration::seconds(30) - scaled_up_at >= chrono::Duration::minutes(10)
    );
}

#[test]
fn with_the_heartbeat_alone_the_step_grows_with_how_far_over_the_max_it_is() {
    let mut sim = Sim::new(settings_with("policy = \"target\"\nmax_dynos = 10"), 5);
    sim.beat_ms(2500);
    assert!(sim.scales.is_empty(), "one slow answer does not move it");
    sim.beat_ms(2500);
    assert_eq!(
        sim.dynos, 7,
        "2.5 times the max: the largest step, 40 % more"
    );
    assert_eq!(
        notices::describe(&sim.scales[0].reason),
        "heartbeats 2.5 times the max of 1000 ms or failing"
    );
    sim.outcome(HeartbeatReading::Answered {
        status: 404,
        elapsed: Duration::from_millis(5000),
    });
    sim.outcome(HeartbeatReading::Answered {
        status: 404,
        elapsed: Duration::from_millis(5000),
    });
    assert_eq!(sim.dynos, 7, "a 4xx never adds dynos");
}

#[test]
fn the_streaks_on_router_windows_are_worded_as_router_windows() {
    let mut sim = Sim::new(
        settings_with("signal = \"router\"\nlog_drain_password = \"x\"\nhttp_port = 0\nnotify_on_every_scale = true"),
        1,
    );
    sim.windows = vec![window_minutes(0, 1)];
    for _ in 0..5 {
        router(&mut sim, load(100.0, 1500.0));
    }
    let reason = notices::describe(&sim.scales[0].reason);
    assert_eq!(
        reason,
        "3 consecutive router windows with a p95 slower than 1000 ms or router errors"
    );
    let ended = sim
        .events
        .iter()
        .find(|event| event.kind == EventKind::DowntimeEnded)
        .unwrap();
    assert_eq!(
        ended.message,
        "Planned downtime is over: counting router windows afresh."
    );
}

/// One beat of the property test: what the drain and the heartbeat said.
#[derive(Debug, Clone)]
struct Beat {
    router: Option<RouterStats>,
    heartbeat: Option<HeartbeatReading>,
}

fn beat_strategy() -> impl Strategy<Value = Beat> {
    let router = prop_oneof![
        (0.0..2000.0f64, 5.0..5000.0f64).prop_map(|(rate, ms)| load(rate, ms)),
        Just(empty()),
        (1u64..500).prop_map(|lines| RouterStats {
            silent: lines,
            unavailable: lines / 2,
            since_last_line: Some(Duration::from_secs(2)),
            ..empty()
        }),
        (0.0..2000.0f64, 5.0..5000.0f64, 100u64..10_000).prop_map(|(rate, ms, age)| {
            RouterStats {
                since_last_line: Some(Duration::from_secs(age)),
                ..load(rate, ms)
            }
        }),
    ];
    let heartbeat = prop_oneof![
        (0u64..20_000).prop_map(|ms| HeartbeatReading::Answered {
            status: 200,
            elapsed: Duration::from_millis(ms),
        }),
        Just(HeartbeatReading::TimedOut {
            after: Duration::from_secs(5)
        }),
        Just(HeartbeatReading::Answered {
            status: 503,
            elapsed: Duration::from_millis(30),
        }),
    ];
    (
        proptest::option::of(router),
        proptest::option::of(heartbeat),
    )
        .prop_map(|(router, heartbeat)| Beat { router, heartbeat })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Whatever the drain and the heartbeat say, through the step: the size never leaves the
    /// bounds in force (which change at 12:20), and never moves during a planned downtime window
    /// but for those bounds.
    #[test]
    fn the_target_policy_never_leaves_the_bounds_nor_moves_in_downtime(
        beats in proptest::collection::vec(beat_strategy(), 1..90),
        max_before in 1u32..12,
        max_after in 1u32..12,
        min in 0u32..4,
        start in 0u32..14,
        downtime in (0i64..40, 1i64..20),
        signal in prop_oneof![Just("router"), Just("heartbeat"), Just("both")],
    ) {
        let min = min.min(max_before).min(max_after);
        let settings = settings_with(&format!(
            "policy = \"target\"\nsignal = \"{signal}\"\nlog_drain_password = \"x\"\nhttp_port = 0\n\
             max_dynos = {{ \"0:00\" = {max_before}, \"12:20\" = {max_after} }}\nmin_dynos = {min}\n\
             scale_down_delay = \"1m\""
        ));
        let config = settings.engine_config();
        let mut sim = Sim::new(settings, start);
        let (from, length) = downtime;
        sim.windows = vec![window_minutes(from, from + length)];
        for beat in beats {
            let now = sim.now;
            let bounds = config.bounds_at(now);
            let in_downtime = crate::downtime::active_window(&sim.windows, now).is_some();
            let output = sim.step_with(beat.heartbeat.clone(), beat.router.clone());
            prop_assert!(
                (bounds.min..=bounds.max).contains(&sim.dynos),
                "{} dynos outside {bounds:?} at {now}", sim.dynos
            );
            if in_downtime {
                if let Some(scale) = output.scale {
                    prop_assert!(
                        matches!(scale.reason, ScaleReason::AboveMax | ScaleReason::BelowMin),
                        "moved in downtime: {scale:?}"
                    );
                    prop_assert!(scale.to == bounds.min || scale.to == bounds.max);
                }
            }
        }
    }
}
