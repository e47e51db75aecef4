use super::*;
use crate::simulate::trace::Point;
use std::collections::HashMap;

fn settings(pairs: &[(&str, &str)]) -> AppSettings {
    let mut env: HashMap<String, String> = [
        ("AUTOSCALE_HEROKU_APP_NAME", "sim-test"),
        ("AUTOSCALE_HEROKU_API_KEY", "k"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (key, value) in pairs {
        env.insert(
            format!("AUTOSCALE_{}", key.to_uppercase()),
            value.to_string(),
        );
    }
    crate::settings::load(None, &env).unwrap().apps.remove(0)
}

/// A trace of `minutes` minutes from 0, at `rate(minute)` requests per second.
fn trace(minutes: i64, rate: impl Fn(i64) -> f64) -> Trace {
    let points = (0..minutes)
        .map(|m| Point {
            at_ms: m * 60_000,
            requests_per_second: rate(m),
        })
        .collect();
    Trace::from_points("test", points).unwrap()
}

const MODEL: DynoModel = DynoModel {
    dyno_concurrency: 4,
    service_time_ms: 50.0,
    timeout: Some(ROUTER_TIMEOUT),
};

fn bench<'a>(trace: &'a Trace, needs: &'a Needs) -> Bench<'a> {
    Bench {
        trace,
        model: MODEL,
        boot_time: Duration::from_secs(30),
        max_response_time_ms: 1000.0,
        needs,
    }
}

/// A heartbeat that fails exactly when the model's p95 is over 1000 ms, passes otherwise.
fn p95_probe(_: i64, moment: &Moment) -> ProbeOutcome {
    let elapsed = if moment.p95_ms() > 1000.0 { 2000 } else { 10 };
    ProbeOutcome::Response {
        status: 200,
        elapsed: Duration::from_millis(elapsed),
        downtime_header: None,
    }
}

#[test]
fn a_new_dyno_serves_only_after_its_boot_and_removal_stops_the_newest_first() {
    let mut fleet = Fleet::running(1, 0);
    fleet.resize(3, 1_000, 30_000);
    assert_eq!(fleet.quantity(), 3);
    assert_eq!(fleet.serving(30_999), 1);
    assert_eq!(fleet.serving(31_000), 3);
    fleet.resize(2, 2_000, 30_000);
    fleet.resize(1, 2_000, 30_000);
    assert_eq!(fleet.serving(31_000), 1, "the booting dynos went first");
}

#[test]
fn heartbeat_outcomes_follow_the_timeouts() {
    let timeout = Duration::from_secs(5);
    assert_eq!(
        heartbeat_outcome(120.4, timeout),
        ProbeOutcome::Response {
            status: 200,
            elapsed: Duration::from_secs_f64(0.1204),
            downtime_header: None,
        }
    );
    assert_eq!(
        heartbeat_outcome(5000.0, timeout),
        ProbeOutcome::Timeout { elapsed: timeout }
    );
    let long = Duration::from_secs(60);
    assert_eq!(
        heartbeat_outcome(30_000.0, long),
        ProbeOutcome::Response {
            status: 503,
            elapsed: ROUTER_TIMEOUT,
            downtime_header: None,
        }
    );
}

#[test]
fn the_fewest_dynos_are_enough_and_one_fewer_is_not() {
    assert_eq!(fewest_dynos(&MODEL, 0.0, 1000.0).0, 1);
    for rate in [10.0, 79.0, 150.0, 600.0] {
        let (dynos, p95_ms) = fewest_dynos(&MODEL, rate, 1000.0);
        assert!(p95_ms <= 1000.0, "{rate}: {dynos} dynos give {p95_ms} ms");
        // One fewer is either unstable (no steady state at all) or too slow.
        let fewer = dynos - 1;
        let fewer_suffices = fewer > 0
            && rate < MODEL.capacity_per_s(fewer)
            && Moment::steady(&MODEL, fewer, rate).p95_ms() <= 1000.0;
        assert!(!fewer_suffices, "{rate}: {fewer} would do");
    }
    // 50 ms × ln 20 ≈ 150 ms: a 100 ms target cannot be met; it stops where dynos stop helping.
    let (dynos, p95_ms) = fewest_dynos(&MODEL, 10.0, 100.0);
    assert!(dynos < 10 && p95_ms > 100.0);
}

#[test]
fn a_steady_load_costs_what_the_fleet_costs() {
    // One hour at 100 req/s; fixed at 3 dynos, the oracle at the fewest that suffice.
    let trace = trace(60, |_| 100.0);
    let needs = Needs::compute(&trace, &MODEL, 1000.0);
    let bench = bench(&trace, &needs);
    let settings = settings(&[("max_dynos", "3")]);
    let fixed = bench.run_fixed_at_max(&settings);
    assert!((fixed.totals.dyno_hours() - 3.0).abs() < 1e-9);
    assert_eq!(fixed.totals.slow_seconds, 0.0);
    assert_eq!(fixed.totals.scale_events, 0);
    let oracle = bench.run_oracle();
    let (need, _) = fewest_dynos(&MODEL, 100.0, 1000.0);
    assert!((oracle.totals.dyno_hours() - f64::from(need)).abs() < 1e-9);
    assert_eq!(oracle.totals.scale_events, 0);
}

#[test]
fn an_app_held_at_one_dyno_under_overload_is_slow_all_the_time() {
    // 200 req/s against one dyno's 80: overloaded from the first second.
    let trace = trace(30, |_| 200.0);
    let needs = Needs::compute(&trace, &MODEL, 1000.0);
    let bench = bench(&trace, &needs);
    let settings = settings(&[("max_dynos", "1")]);
    let run = bench.run_engine(
        &settings,
        &calendar_for(&settings),
        1,
        true,
        &mut p95_probe,
        &mut || {},
    );
    assert!(run.decisions.is_empty());
    // The first minute builds the backlog from nothing, so it may start fast.
    assert!(
        run.totals.slow_seconds >= 29.0 * 60.0,
        "{}",
        run.totals.slow_seconds
    );
    assert_eq!(run.beats.len(), 60, "a heartbeat every 30 s for 30 minutes");
}

#[test]
fn a_surge_is_answered_after_the_fail_streak_and_the_first_scale_up_is_timed() {
    // 20 req/s for ten minutes, then 200 req/s: one dyno (80 req/s) is not enough from minute 10.
    let trace = trace(40, |m| if m < 10 { 20.0 } else { 200.0 });
    let needs = Needs::compute(&trace, &MODEL, 1000.0);
    let bench = bench(&trace, &needs);
    let settings = settings(&[
        ("max_dynos", "5"),
        ("number_of_fails_to_scale_up_after", "3"),
    ]);
    let run = bench.run_engine(
        &settings,
        &calendar_for(&settings),
        1,
        false,
        &mut p95_probe,
        &mut || {},
    );
    let first_up = run.decisions.iter().find(|d| d.to > d.from).unwrap();
    // The heartbeat at 10:00 finds the queue the surge has not filled yet; it fails at
    // 10:30, 11:00 and 11:30: the third one scales.
    assert_eq!(first_up.at.timestamp_millis(), 11 * 60_000 + 30_000);
    assert_eq!(run.totals.reactions_s.first(), Some(&90.0));
    assert!(run.totals.surges >= 1);
    assert!(run.decisions.iter().all(|d| d.reason.is_some()));
}

#[test]
fn a_booting_dyno_is_billed_before_it_serves() {
    // Always failing heartbeats from one dyno, max 2: one scale-up at the third beat (60 s).
    let trace = trace(10, |_| 0.0);
    let needs = Needs::compute(&trace, &MODEL, 1000.0);
    let bench = bench(&trace, &needs);
    let settings = settings(&[("max_dynos", "2")]);
    let mut always_fail = |_: i64, _: &Moment| ProbeOutcome::Timeout {
        elapsed: Duration::from_secs(5),
    };
    let run = bench.run_engine(
        &settings,
        &calendar_for(&settings),
        1,
        true,
        &mut always_fail,
        &mut || {},
    );
    assert_eq!(run.decisions.len(), 1);
    assert_eq!(run.decisions[0].at.timestamp_millis(), 60_000);
    // 1 dyno for 10 minutes plus 1 more from 60 s on.
    let expected_s = 600.0 + 540.0;
    assert!((run.totals.dyno_seconds - expected_s).abs() < 1e-9);
    let beat = &run.beats[2];
    assert_eq!((beat.dynos, beat.serving_dynos), (2, 1));
    assert_eq!(run.beats[3].serving_dynos, 2, "serving after 30 s of boot");
}

#[test]
fn the_reactive_limit_follows_the_needs_but_waits_for_the_boot() {
    // 100 req/s for ten minutes, then 400 req/s: the needs rise at minute 10.
    let trace = trace(20, |m| if m < 10 { 100.0 } else { 400.0 });
    let needs = Needs::compute(&trace, &MODEL, 1000.0);
    let bench = bench(&trace, &needs);
    let settings = settings(&[("max_dynos", "20")]);
    let limit = bench.run_reactive_limit(&settings);
    let oracle = bench.run_oracle();
    assert_eq!(limit.decisions.len(), 1);
    assert_eq!(limit.decisions[0].at.timestamp_millis(), 10 * 60_000);
    assert_eq!(limit.decisions[0].to, needs.at(10 * 60_000));
    // Slow while the new dynos boot and while the old dynos' backlog drains, never before.
    // Random routing leaves a backlog where it is: each old dyno works off its own (at most
    // the router's 30 s of its capacity) at its own spare capacity once the others serve.
    let (old, new) = (needs.at(0), needs.at(10 * 60_000));
    let per_dyno = MODEL.capacity_per_s(1);
    let drain_s = per_dyno * 30.0 / (per_dyno - 400.0 / f64::from(new));
    assert!(limit.totals.slow_seconds >= 30.0, "{:?}", limit.totals);
    assert!(
        limit.totals.slow_seconds <= 30.0 + drain_s + 30.0,
        "{old} to {new} dynos, {drain_s} s to drain: {:?}",
        limit.totals
    );
    assert_eq!(oracle.totals.slow_seconds, 0.0);
    assert!((limit.totals.dyno_hours() - oracle.totals.dyno_hours()).abs() < 1e-9);
}

#[test]
fn the_target_policy_on_the_router_signal_answers_a_swamping_surge_within_two_windows() {
    let trace = trace(30, |m| if m < 10 { 60.0 } else { 600.0 });
    let needs = Needs::compute(&trace, &MODEL, 1000.0);
    let bench = bench(&trace, &needs);
    let settings = settings(&[
        ("max_dynos", "20"),
        ("signal", "router"),
        ("log_drain_password", "x"),
        ("http_port", "0"),
        ("policy", "target"),
    ]);
    let calendar = calendar_for(&settings);
    // The engine's own step with the target policy, on the simulated drain.
    let mut feed = bench.feed(settings.drain.router_window, 1);
    let run = bench.run_engine_on(
        &settings,
        &settings.engine_config(),
        &calendar,
        1,
        true,
        &mut |_, _| unreachable!("signal = \"router\" sends no heartbeat"),
        Some(&mut feed),
        &mut || {},
    );
    // The surge swamps the one dyno, and the router logs a request when it answers: the first
    // window shows what the dyno served, the next the router's timeouts (H12) of the requests
    // it could not. So the first scale-up comes at the second window, and the size reaches
    // what the load needs (the oracle's 8 for a p95 under the max; 600 req/s × 50 ms /
    // (4 × 0.9) = 8.3: nine at the target utilisation) within a few windows, several dynos at
    // a time, and settles at nine or ten after the scale-down delay. The dynos swamped before
    // the others served keep their queues (random routing moves no request), and their H12
    // lines ask for half as many again once or twice more before they drain.
    let ups: Vec<&Decision> = run.decisions.iter().filter(|d| d.to > d.from).collect();
    assert!((1..=4).contains(&ups.len()), "{:?}", run.decisions);
    let at_s = (ups[0].at.timestamp_millis() - 10 * 60_000) / 1000;
    assert!((30..=60).contains(&at_s), "{at_s}: {:?}", run.decisions);
    let need = needs.at(20 * 60_000);
    assert_eq!(need, 8);
    let reached = ups.iter().find(|d| d.to >= need).expect("reaches the need");
    let reached_s = (reached.at.timestamp_millis() - 10 * 60_000) / 1000;
    assert!(reached_s <= 180, "{reached_s}: {:?}", run.decisions);
    assert!(ups.iter().any(|d| d.to - d.from >= 3), "several at once");
    let last = run.decisions.last().unwrap();
    assert!((9..=10).contains(&last.to), "{:?}", run.decisions);
    assert!(matches!(
        ups[0].reason,
        Some(crate::decision::ScaleReason::Load { .. })
    ));
}
