use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

/// The rules at round numbers: 85 % of 4 workers (3.4 busy per dyno), a delay of 300 s.
fn config() -> TargetConfig {
    TargetConfig {
        target_utilisation: 0.85,
        scale_down_delay: Duration::from_secs(300),
        ..TargetConfig::new(1000)
    }
}

const BOUNDS: Bounds = Bounds { min: 1, max: 20 };

/// The mean time in the dyno of requests of 50 ms of work at `rate` on `dynos` dynos of 4
/// workers fed at random (M/M/4 each); the router's 30 s when they are overloaded.
fn observed_ms(rate: f64, dynos: u32) -> f64 {
    let load = rate / f64::from(dynos.max(1)) * 0.05;
    if load >= 4.0 {
        return 30_000.0;
    }
    50.0 + crate::erlang::erlang_c(4, load) * 50.0 / (4.0 - load)
}

/// A fresh router window of requests of 50 ms of work at `rate` on `dynos` dynos.
fn window(rate: f64, dynos: u32) -> RouterSignal {
    router(rate, observed_ms(rate, dynos))
}

/// A fresh router window: `rate` req/s at a mean `service_ms`.
fn router(rate: f64, service_ms: f64) -> RouterSignal {
    RouterSignal {
        requests: (rate * 30.0) as u64,
        requests_per_second: rate,
        mean_service_ms: Some(service_ms),
        p95_latency_ms: Some(service_ms * 3.0),
        timeouts: 0,
        unavailable: 0,
        age: Duration::from_secs(1),
        window: Duration::from_secs(30),
    }
}

fn input(
    router: Option<RouterSignal>,
    heartbeat: Option<HeartbeatSignal>,
    current: u32,
) -> TargetInput {
    TargetInput {
        router,
        heartbeat,
        current,
        bounds: BOUNDS,
        downtime: false,
    }
}

fn on_router(state: &mut TargetState, seconds: i64, rate: f64, current: u32) -> TargetDecision {
    let input = input(Some(window(rate, current)), None, current);
    state.step(&config(), &input, at(seconds))
}

fn answered(response_ms: f64) -> Option<HeartbeatSignal> {
    Some(HeartbeatSignal::Answered { response_ms })
}

#[test]
fn the_defaults_are_valid_and_bad_knobs_are_named() {
    assert!(config().problems().is_empty());
    for utilisation in [0.0, -0.5, 1.01, f64::NAN] {
        let mut bad = config();
        bad.target_utilisation = utilisation;
        let named: Vec<&str> = bad.problems().iter().map(|(knob, _)| *knob).collect();
        assert_eq!(named, vec!["target_utilisation"], "{utilisation}");
    }
    let mut bad = config();
    bad.confirmations = 0;
    bad.dyno_concurrency = 0;
    assert_eq!(bad.problems().len(), 2);
    let mut full = config();
    full.target_utilisation = 1.0;
    assert!(full.problems().is_empty());
}

#[test]
fn the_size_is_rate_times_service_time_over_the_busy_workers_per_dyno() {
    // 400 req/s × 50 ms = 20 busy workers; 4 × 0.85 = 3.4 per dyno: 6 dynos.
    let mut state = TargetState::new();
    on_router(&mut state, -30, 50.0, 2);
    on_router(&mut state, 0, 400.0, 2);
    let decision = on_router(&mut state, 30, 400.0, 2);
    assert_eq!(decision.to, Some(6));
    assert!(
        matches!(decision.why, Why::Load { desired: 6, .. }),
        "{:?}",
        decision.why
    );
}

#[test]
fn a_surge_takes_the_size_straight_to_the_computed_size_after_two_observations() {
    let mut state = TargetState::new();
    on_router(&mut state, -30, 20.0, 1);
    let first = on_router(&mut state, 0, 1000.0, 1);
    assert_eq!(first.to, None, "one observation only confirms");
    assert_eq!(first.why, Why::Confirming { seen: 1, needed: 2 });
    let second = on_router(&mut state, 30, 1000.0, 1);
    // 1000 × 0.05 / 3.4 = 14.7: fifteen dynos in one scale.
    assert_eq!(second.to, Some(15));
}

#[test]
fn one_noisy_window_does_not_move_it_and_the_confirmed_size_is_the_smaller_wish() {
    let mut state = TargetState::new();
    for second in [0, 30, 60] {
        assert_eq!(on_router(&mut state, second, 100.0, 2).to, None);
    }
    // A spike, then calm again: nothing.
    assert_eq!(on_router(&mut state, 90, 1000.0, 2).to, None);
    assert_eq!(on_router(&mut state, 120, 100.0, 2).to, None);
    // Two windows that want more but not as much: the smaller one wins.
    assert_eq!(on_router(&mut state, 150, 1000.0, 2).to, None);
    assert_eq!(on_router(&mut state, 180, 300.0, 2).to, Some(5));
}

#[test]
fn it_scales_down_only_after_the_whole_delay_to_the_largest_wish_within_it() {
    let mut state = TargetState::new();
    // 10 dynos, load for 3: holds for the whole delay of 300 s, then goes to 3 at once.
    for second in (0..300).step_by(30) {
        let decision = on_router(&mut state, second, 200.0, 10);
        assert_eq!(decision.to, None, "{second}");
        assert!(matches!(decision.why, Why::Stabilising { .. }));
    }
    assert_eq!(on_router(&mut state, 300, 200.0, 10).to, Some(3));

    // A busier window within the delay holds the size it asked for.
    let mut state = TargetState::new();
    on_router(&mut state, 0, 200.0, 10);
    on_router(&mut state, 150, 500.0, 10);
    for second in (180..450).step_by(30) {
        on_router(&mut state, second, 200.0, 10);
    }
    // At 450 the window from 150 (8 dynos) is still within the 300 s.
    assert_eq!(on_router(&mut state, 420, 200.0, 10).to, Some(8));
}

#[test]
fn lines_that_say_the_app_is_down_never_scale_it_down() {
    let mut state = TargetState::new();
    let mut crashed = window(200.0, 10);
    crashed.unavailable = 40;
    for second in (0..900).step_by(30) {
        let decision = state.step(&config(), &input(Some(crashed), None, 10), at(second));
        assert_eq!(decision.to, None, "{second}");
    }
    let decision = state.step(&config(), &input(Some(crashed), None, 10), at(900));
    assert_eq!(decision.why, Why::AppDown { lines: 40 });
    // Once the app answers again, the delay has long passed: down at once.
    assert_eq!(on_router(&mut state, 930, 200.0, 10).to, Some(3));
}

#[test]
fn a_scale_up_is_not_delayed_by_the_scale_down_delay() {
    let mut state = TargetState::new();
    on_router(&mut state, 0, 100.0, 10);
    let first = on_router(&mut state, 30, 1000.0, 10);
    let second = on_router(&mut state, 60, 1000.0, 10);
    assert_eq!(second.to, Some(15), "{first:?} {second:?}");
}

#[test]
fn the_service_time_is_the_quietest_recent_windows_not_a_queued_one() {
    let mut state = TargetState::new();
    let calm = window(100.0, 2);
    state.step(&config(), &input(Some(calm), None, 2), at(0));
    // Overloaded: requests hit the 30 s timeout. The work is still 50 ms.
    let busy = window(600.0, 2);
    assert_eq!(busy.mean_service_ms, Some(30_000.0));
    state.step(&config(), &input(Some(busy), None, 2), at(30));
    let decision = state.step(&config(), &input(Some(busy), None, 2), at(60));
    // 600 × 0.05 / 3.4 = 8.8: nine, not the 25 that 30 s would ask for.
    assert_eq!(decision.to, Some(9));
    // After the horizon, with no window a steady queue explains, the raw mean is used.
    let later = SERVICE_HORIZON.as_secs() as i64 + 60;
    state.step(&config(), &input(Some(busy), None, 2), at(later));
    let decision = state.step(&config(), &input(Some(busy), None, 2), at(later + 30));
    assert!(matches!(decision.why, Why::Load { service_ms, .. } if service_ms == 30_000.0));
    assert_eq!(decision.to, Some(20));
}

#[test]
fn the_work_is_the_time_in_the_dyno_without_the_wait() {
    // Light load: almost no wait.
    assert!((work_in(50.0, 0.1, 4).unwrap() - 50.0).abs() < 0.2);
    // An M/M/4 at 68 req/s and 50 ms of work (85 % busy) holds a request about 112 ms.
    let load: f64 = 68.0 * 0.05;
    let waits = crate::erlang::erlang_c(4, load);
    let mean_ms = 50.0 + waits * 50.0 / (4.0 - load);
    assert!(
        (work_in(mean_ms, 68.0, 4).unwrap() - 50.0).abs() < 0.01,
        "{mean_ms}"
    );
    // A backlog no steady queue explains says nothing of the work.
    assert_eq!(work_in(30_000.0, 68.0, 4), None);
    assert_eq!(work_in(40.0, 0.0, 4), Some(40.0));
}

#[test]
fn a_missing_or_stale_signal_never_scales_down_and_is_reported_once() {
    let mut state = TargetState::new();
    let mut quiet = router(0.0, 50.0);
    quiet.requests = 0;
    quiet.mean_service_ms = None;
    for (i, second) in (0..900).step_by(30).enumerate() {
        let decision = state.step(&config(), &input(Some(quiet), None, 10), at(second));
        assert_eq!(decision.to, None);
        assert_eq!(decision.why, Why::SignalMissing);
        let lost = decision.signal_lost.unwrap();
        assert_eq!(lost.since, at(0));
        assert_eq!(lost.first, i == 0);
    }
    let mut stale = router(10.0, 50.0);
    stale.age = Duration::from_secs(600);
    let decision = state.step(&config(), &input(Some(stale), None, 10), at(900));
    assert_eq!(decision.to, None);
    assert!(matches!(decision.why, Why::SignalStale { .. }));
    assert!(
        !decision.signal_lost.unwrap().first,
        "still the same outage"
    );
    // The signal is back: the outage is over, the next loss is told again.
    let decision = on_router(&mut state, 930, 10.0, 10);
    assert_eq!(decision.signal_lost, None);
    let decision = state.step(&config(), &input(Some(quiet), None, 10), at(960));
    assert!(decision.signal_lost.unwrap().first);
    // No signal at all (no drain, no heartbeat): hold too.
    let decision = TargetState::new().step(&config(), &input(None, None, 10), at(0));
    assert_eq!((decision.to, decision.why), (None, Why::SignalMissing));
}

#[test]
fn with_the_router_lost_the_heartbeat_may_add_dynos_but_never_remove() {
    let mut state = TargetState::new();
    let mut quiet = router(0.0, 50.0);
    quiet.requests = 0;
    quiet.mean_service_ms = None;
    for second in (0..1200).step_by(30) {
        let fast = state.step(
            &config(),
            &input(Some(quiet), answered(20.0), 10),
            at(second),
        );
        assert_eq!(fast.to, None);
    }
    state.step(
        &config(),
        &input(Some(quiet), answered(3000.0), 10),
        at(1200),
    );
    let slow = state.step(
        &config(),
        &input(Some(quiet), answered(3000.0), 10),
        at(1230),
    );
    // Three times over: the largest step, 40 % more.
    assert_eq!(slow.to, Some(14));
    assert!(slow.signal_lost.is_some());
}

#[test]
fn the_bounds_in_force_win_at_once() {
    let mut state = TargetState::new();
    let bounds = Bounds { min: 3, max: 5 };
    let mut observe = |current: u32, rate: f64, seconds: i64| {
        let mut input = input(Some(window(rate, current)), None, current);
        input.bounds = bounds;
        state.step(&config(), &input, at(seconds))
    };
    assert_eq!(observe(8, 100.0, 0).to, Some(5), "above the max");
    assert_eq!(observe(1, 100.0, 30).to, Some(3), "below the min");
    observe(3, 10_000.0, 60);
    assert_eq!(
        observe(3, 10_000.0, 90).to,
        Some(5),
        "no further than the max"
    );
    for second in (120..900).step_by(30) {
        assert_eq!(observe(3, 0.1, second).to, None, "never under the min");
    }
}

#[test]
fn it_never_scales_to_zero_and_never_starts_a_stopped_app() {
    let mut state = TargetState::new();
    let bounds = Bounds { min: 0, max: 5 };
    let mut observe = |current: u32, seconds: i64| {
        let mut input = input(Some(window(0.01, current)), None, current);
        input.bounds = bounds;
        state.step(&config(), &input, at(seconds))
    };
    for second in (0..1200).step_by(30) {
        assert_ne!(observe(1, second).to, Some(0));
        assert_eq!(observe(0, second).to, None);
    }
}

#[test]
fn planned_downtime_freezes_the_size() {
    let mut state = TargetState::new();
    let mut input = input(Some(router(10_000.0, 50.0)), answered(9000.0), 2);
    input.downtime = true;
    input.bounds = Bounds { min: 4, max: 6 };
    for second in (0..600).step_by(30) {
        let decision = state.step(&config(), &input, at(second));
        assert_eq!((decision.to, decision.why), (None, Why::Downtime));
    }
    // After the window the count starts afresh: one observation only confirms.
    input.downtime = false;
    input.bounds = BOUNDS;
    assert_eq!(state.step(&config(), &input, at(600)).to, None);
}

#[test]
fn with_the_heartbeat_alone_the_step_grows_with_how_far_over_the_max_it_is() {
    let mut state = TargetState::new();
    let beat = |state: &mut TargetState, ms: f64, current: u32, seconds: i64| {
        state.step(&config(), &input(None, answered(ms), current), at(seconds))
    };
    assert_eq!(
        beat(&mut state, 1500.0, 4, 0).to,
        None,
        "one slow answer only confirms"
    );
    // 1.5 and 1.6 times over: the smaller asks for half as many again: 4 + 2.
    let decision = beat(&mut state, 1600.0, 4, 30);
    assert_eq!(decision.to, Some(6));
    assert_eq!(decision.why, Why::Slow { ratio: 1.5 });
    // Failures add 40 %, no more: 6 + 2.4, rounded up.
    let fail = Some(HeartbeatSignal::Failed);
    state.step(&config(), &input(None, fail, 6), at(60));
    assert_eq!(
        state.step(&config(), &input(None, fail, 6), at(90)).to,
        Some(9)
    );
    // Far over still adds 40 % at most: 9 + 3.6.
    beat(&mut state, 30_000.0, 9, 120);
    assert_eq!(beat(&mut state, 30_000.0, 9, 150).to, Some(13));
    // And the max holds: 16 + 6.4 is more than 20.
    beat(&mut state, 30_000.0, 16, 160);
    assert_eq!(beat(&mut state, 30_000.0, 16, 170).to, Some(20));
    // Just over the max adds one dyno.
    beat(&mut state, 1001.0, 20, 180);
    let at_max = beat(&mut state, 1001.0, 20, 210);
    assert_eq!(at_max.to, None);
}

#[test]
fn with_the_heartbeat_alone_it_goes_down_one_dyno_per_delay_and_not_back_to_a_slow_size() {
    let mut state = TargetState::new();
    let beat = |state: &mut TargetState, ms: f64, current: u32, seconds: i64| {
        state.step(&config(), &input(None, answered(ms), current), at(seconds))
    };
    let mut size = 10;
    let mut downs = Vec::new();
    for second in (0..1800).step_by(30) {
        if let Some(to) = beat(&mut state, 40.0, size, second).to {
            assert_eq!(to, size - 1, "one dyno at a time");
            downs.push(second);
            size = to;
        }
    }
    assert_eq!(downs, vec![300, 600, 900, 1200, 1500]);
    // Slow at 5: up to 6 or more; then 5 is not gone back to for four delays.
    beat(&mut state, 1300.0, 5, 1800);
    let up = beat(&mut state, 1300.0, 5, 1830).to.unwrap();
    assert_eq!(up, 7);
    for second in (1860..1830 + 4 * 300).step_by(30) {
        if let Some(to) = beat(&mut state, 40.0, up, second).to {
            assert!(to > 5, "back to the slow size at {second}");
        }
    }
}

fn bounds_strategy() -> impl Strategy<Value = Bounds> {
    (0u32..6, 0u32..12).prop_map(|(min, extra)| Bounds {
        min,
        max: min + extra,
    })
}

fn router_strategy() -> impl Strategy<Value = Option<RouterSignal>> {
    proptest::option::of(
        (0.0f64..5000.0, 1.0f64..40_000.0, 0u64..400, 0u64..600).prop_map(
            |(rate, service_ms, requests, age_s)| RouterSignal {
                requests,
                requests_per_second: rate,
                mean_service_ms: (requests > 0).then_some(service_ms),
                p95_latency_ms: (requests > 0).then_some(service_ms * 2.0),
                timeouts: 0,
                unavailable: 0,
                age: Duration::from_secs(age_s),
                window: Duration::from_secs(30),
            },
        ),
    )
}

fn heartbeat_strategy() -> impl Strategy<Value = Option<HeartbeatSignal>> {
    proptest::option::of(prop_oneof![
        (0.0f64..40_000.0).prop_map(|response_ms| HeartbeatSignal::Answered { response_ms }),
        Just(HeartbeatSignal::Failed),
    ])
}

fn config_strategy() -> impl Strategy<Value = TargetConfig> {
    (0.05f64..=1.0, 1u32..16, 0u64..900, 1u32..4).prop_map(
        |(utilisation, concurrency, delay_s, confirmations)| TargetConfig {
            target_utilisation: utilisation,
            dyno_concurrency: concurrency,
            scale_down_delay: Duration::from_secs(delay_s),
            confirmations,
            ..TargetConfig::new(1000)
        },
    )
}

proptest! {
    /// Whatever it observes, a scale lands inside the bounds in force, never during a planned
    /// downtime window, and never below the size while the router signal is missing or stale.
    #[test]
    fn the_size_stays_in_the_bounds_and_still_in_downtime(
        config in config_strategy(),
        steps in proptest::collection::vec(
            (router_strategy(), heartbeat_strategy(), bounds_strategy(), any::<bool>(), 1i64..120),
            1..60,
        ),
        initial in 0u32..20,
    ) {
        let mut state = TargetState::new();
        let mut current = initial;
        let mut seconds = 0;
        for (router, heartbeat, bounds, downtime, gap_s) in steps {
            seconds += gap_s;
            let input = TargetInput { router, heartbeat, current, bounds, downtime };
            let decision = state.step(&config, &input, at(seconds));
            if let Some(to) = decision.to {
                prop_assert!(!downtime, "moved during downtime");
                prop_assert!(to != current);
                prop_assert!(to >= bounds.min && to <= bounds.max, "{to} outside {bounds:?}");
                if decision.signal_lost.is_some() {
                    prop_assert!(to > current, "down without a signal");
                }
                current = to;
            }
        }
    }
}

#[test]
fn with_slow_requests_the_size_keeps_the_p95_under_the_max_not_only_the_utilisation() {
    // 70 req/s of 200 ms on dynos of 4: 14 busy workers, 4 dynos at 90 % of 4 (3.9 of 4
    // busy) would answer at a p95 of over a second; five keep it under.
    assert_eq!(fewest_for_latency(70.0, 200.0, 4, 1000.0, 4), 5);
    let p95 = |dynos: u32| {
        crate::erlang::Mmc::new(4, 70.0 / f64::from(dynos), 5.0)
            .unwrap()
            .response_quantile_s(0.95)
    };
    assert!(p95(4) > 1.0 && p95(5) <= 1.0, "{} {}", p95(4), p95(5));
    // Work that alone is slower than the max: the count past which more dynos stop helping.
    let stalled = fewest_for_latency(10.0, 2000.0, 4, 1000.0, 1);
    assert!((6..=30).contains(&stalled), "{stalled}");
    let mut state = TargetState::new();
    let config = TargetConfig {
        target_utilisation: 0.9,
        ..TargetConfig::new(1000)
    };
    // A request a second hardly waits: the work is learnt, 200 ms.
    let quiet = router(1.0, 200.0);
    state.step(&config, &input(Some(quiet), None, 1), at(0));
    let busy = router(70.0, 2500.0);
    state.step(&config, &input(Some(busy), None, 1), at(30));
    let decision = state.step(&config, &input(Some(busy), None, 1), at(60));
    assert_eq!(decision.to, Some(5), "{decision:?}");
    assert!(matches!(
        decision.why,
        Why::Load {
            sizing: Sizing::Latency,
            ..
        }
    ));
}

#[test]
fn the_work_is_the_median_of_the_recent_windows_so_small_noisy_windows_do_not_shrink_it() {
    let mut state = TargetState::new();
    // Windows of a dozen requests of 200 ms that hardly wait: their means scatter around
    // 200 ms, and the smallest is far below.
    let means = [
        140.0, 260.0, 190.0, 230.0, 150.0, 210.0, 250.0, 170.0, 205.0,
    ];
    for (index, mean) in means.iter().enumerate() {
        let small = RouterSignal {
            requests: 12,
            ..router(0.4, *mean)
        };
        state.step(
            &config(),
            &input(Some(small), None, 1),
            at(index as i64 * 30),
        );
    }
    let decision = state.step(
        &config(),
        &input(Some(router(0.4, 205.0)), None, 1),
        at(300),
    );
    let Why::Load { service_ms, .. } = decision.wanted.unwrap().1 else {
        panic!("{decision:?}");
    };
    assert!((190.0..=210.0).contains(&service_ms), "{service_ms}");
}

#[test]
fn a_backlog_asks_for_half_as_many_dynos_again_at_least() {
    let mut state = TargetState::new();
    on_router(&mut state, 0, 100.0, 4);
    // The router gave up on some requests: what was served says little of what was asked.
    let mut swamped = window(200.0, 4);
    swamped.timeouts = 30;
    state.step(&config(), &input(Some(swamped), None, 4), at(30));
    let decision = state.step(&config(), &input(Some(swamped), None, 4), at(60));
    assert_eq!(decision.to, Some(6), "{decision:?}");
    assert!(matches!(
        decision.why,
        Why::Load {
            sizing: Sizing::Backlog,
            ..
        }
    ));
}

#[test]
fn lines_served_before_a_scale_up_never_scale_it_up_again() {
    let mut state = TargetState::new();
    on_router(&mut state, 0, 100.0, 4);
    let mut swamped = window(200.0, 4);
    swamped.timeouts = 30;
    state.step(&config(), &input(Some(swamped), None, 4), at(30));
    let up = state.step(&config(), &input(Some(swamped), None, 4), at(60));
    assert_eq!(up.to, Some(6), "{up:?}");
    // The same lines, read again at the new size while they are still in the 30 s window.
    for seconds in [61, 75, 89] {
        let decision = state.step(&config(), &input(Some(swamped), None, 6), at(seconds));
        assert_eq!(decision.to, None, "{decision:?}");
        assert_eq!(decision.why, Why::Settling);
    }
    // A whole window after the scale, still swamped: that is news about the new size.
    state.step(&config(), &input(Some(swamped), None, 6), at(90));
    let again = state.step(&config(), &input(Some(swamped), None, 6), at(95));
    assert_eq!(again.to, Some(9), "{again:?}");
}
