use super::*;
use clap::Parser;

/// Parses flags as the CLI does.
#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    args: SimulateArgs,
}

fn args(flags: &[&str]) -> SimulateArgs {
    Flags::try_parse_from(std::iter::once("simulate").chain(flags.iter().copied()))
        .unwrap()
        .args
}

fn write_settings(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_flags_have_the_documented_defaults() {
    let args = args(&["--trace", "builtin:flash-crowd"]);
    assert_eq!(
        args.dyno_concurrency, None,
        "the settings' dyno_concurrency, 4"
    );
    assert_eq!(args.service_time_ms, None);
    assert_eq!(args.boot_time, Duration::from_secs(30));
    assert_eq!(args.dyno_cost_per_hour, 0.035);
    assert_eq!(args.rate_scale, 1.0);
    assert_eq!(args.seed, 1);
}

#[test]
fn bad_flags_are_bad_input_naming_the_flag() {
    for (flags, named) in [
        (&["--service-time-ms", "0"][..], "--service-time-ms"),
        (&["--rate-scale", "-2"][..], "--rate-scale"),
        (&["--dyno-cost-per-hour", "-1"][..], "--dyno-cost-per-hour"),
        (&["--plot", "week.png"][..], "--plot"),
    ] {
        let mut all = vec!["--trace", "builtin:flash-crowd"];
        all.extend_from_slice(flags);
        let error = check_flags(&args(&all)).unwrap_err();
        assert!(error.0.contains(named), "{error}");
    }
    assert!(Flags::try_parse_from(["simulate", "--trace", "x", "--boot-time", "soon"]).is_err());
}

#[test]
fn a_settings_file_without_credentials_still_simulates() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_settings(&dir, "max_dynos = 5\n");
    let settings = load_settings(Some(&path), &HashMap::new()).unwrap();
    assert_eq!(settings.thresholds.max_dynos.highest(), 5);
    // The worker itself still refuses the same file.
    assert!(settings::load(Some(&path), &HashMap::new()).is_err());
}

#[test]
fn other_problems_in_the_settings_are_still_reported_without_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_settings(&dir, "max_dynos = \"lots\"\n");
    let error = load_settings(Some(&path), &HashMap::new()).unwrap_err();
    let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, vec!["max_dynos"]);
}

#[test]
fn the_defaults_reference_is_autoscalebot_2_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_settings(
        &dir,
        "max_dynos = 9\nmin_response_time_in_ms = 50\ntime_zone = \"Europe/Paris\"\n",
    );
    let ours = load_settings(Some(&path), &HashMap::new()).unwrap();
    let defaults = defaults_like(&ours);
    // The 2.1 README's defaults.
    assert_eq!(defaults.thresholds.max_response_time_ms, 1000);
    assert_eq!(defaults.thresholds.min_response_time_ms, 200);
    assert_eq!(defaults.thresholds.number_of_fails_to_scale_up_after, 3);
    assert_eq!(defaults.thresholds.number_of_passes_to_scale_down_after, 5);
    assert_eq!(defaults.thresholds.max_dynos.highest(), 3);
    assert_eq!(defaults.thresholds.min_dynos.highest(), 1);
    assert_eq!(defaults.thresholds.increment, 1);
    assert_eq!(defaults.heartbeat.interval, Duration::from_secs(30));
    assert_eq!(defaults.thresholds.time_zone, chrono_tz::Europe::Paris);
}

fn run_flash_crowd(seed: &str) -> Simulation {
    let dir = tempfile::tempdir().unwrap();
    let path = write_settings(&dir, "max_dynos = 4\n");
    let settings = load_settings(Some(&path), &HashMap::new()).unwrap();
    let trace = trace::load("builtin:flash-crowd", settings.thresholds.time_zone).unwrap();
    simulate(
        settings,
        trace,
        &args(&["--trace", "builtin:flash-crowd", "--seed", seed]),
    )
    .unwrap()
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    let first = run_flash_crowd("7");
    let again = run_flash_crowd("7");
    let other = run_flash_crowd("8");
    assert_eq!(first.ours.beats, again.ours.beats);
    assert_eq!(first.ours.totals, again.ours.totals);
    assert_ne!(first.ours.beats, other.ours.beats);
}

#[test]
fn the_rows_bracket_each_other_as_they_must() {
    let sim = run_flash_crowd("1");
    let hours = 6.0;
    // Fixed at 4 dynos for six hours, never slow at this load.
    assert!((sim.fixed.totals.dyno_hours() - 4.0 * hours).abs() < 1e-9);
    assert_eq!(sim.fixed.totals.slow_seconds, 0.0);
    assert_eq!(sim.oracle.totals.slow_seconds, 0.0);
    // An autoscaler runs between one dyno and the max all the time.
    for run in [&sim.ours, &sim.defaults_run] {
        let dyno_hours = run.totals.dyno_hours();
        assert!((hours..=4.0 * hours).contains(&dyno_hours), "{dyno_hours}");
        assert!(
            run.totals.scale_events >= 2,
            "the surge must scale up and back down"
        );
    }
    // The surge at 09:00 is answered by a scale-up.
    assert!(sim.ours.decisions.iter().any(|d| d.to > d.from));
    assert!(!sim.ours.totals.reactions_s.is_empty());
}

fn router_log_trace(mean_ms: f64, requests: usize, timeouts: usize) -> Trace {
    let mut trace = Trace::from_points(
        "router.log",
        vec![trace::Point {
            at_ms: 0,
            requests_per_second: 10.0,
        }],
    )
    .unwrap();
    trace.service_times = Some(trace::ServiceTimes {
        mean_ms,
        requests,
        timeouts,
    });
    trace
}

#[test]
fn a_mean_service_time_dominated_by_timeouts_is_said_and_left_out() {
    let flags = args(&["--trace", "router.log"]);
    // 1000 requests, 10 of them 30 s timeouts, the others 40 ms: a mean of 339.6 ms.
    let mean_ms = (10.0 * 30_000.0 + 990.0 * 40.0) / 1000.0;
    let (ms, origin, note) = service_time(&flags, &router_log_trace(mean_ms, 1000, 10), 300.0);
    assert!((ms - 40.0).abs() < 1e-9, "{ms}");
    assert!(origin.contains("timeouts left out"), "{origin}");
    let note = note.unwrap();
    assert!(
        note.contains("88 % of the service time") && note.contains("H12"),
        "{note}"
    );
    // A few timeouts that do not dominate are kept, and nothing is said.
    let mean_ms = (30_000.0 + 9_999.0 * 40.0) / 10_000.0;
    let (ms, _, note) = service_time(&flags, &router_log_trace(mean_ms, 10_000, 1), 1000.0);
    assert_eq!((ms, note), (mean_ms, None));
    // A service time over the max by itself is said too.
    let (_, _, note) = service_time(&flags, &router_log_trace(1500.0, 100, 0), 1000.0);
    assert!(note.unwrap().contains("no number of dynos"));
    // The flag wins over the log.
    let flags = args(&["--trace", "router.log", "--service-time-ms", "25"]);
    assert_eq!(
        service_time(&flags, &router_log_trace(900.0, 10, 5), 300.0).0,
        25.0
    );
}

#[test]
fn the_defaults_row_keeps_the_users_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_settings(&dir, "max_dynos = 15\nmin_dynos = 2\n");
    let ours = load_settings(Some(&path), &HashMap::new()).unwrap();
    let within = defaults_within(&ours);
    assert_eq!(
        (
            within.thresholds.min_dynos.highest(),
            within.thresholds.max_dynos.highest()
        ),
        (2, 15)
    );
    assert_eq!(within.thresholds.number_of_fails_to_scale_up_after, 3);
    assert_eq!(within.thresholds.increment, 1);
}

#[test]
fn a_router_signal_simulates_without_a_drain_password_or_port() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_settings(&dir, "signal = \"router\"\n");
    let settings = load_settings(Some(&path), &HashMap::new()).unwrap();
    assert!(settings.drain.signal.uses_router());
}

#[test]
fn a_bad_target_utilisation_is_bad_input_naming_the_flag() {
    for share in ["0", "1.5", "-0.2"] {
        let flags = args(&["--trace", "x", "--target-utilisation", share]);
        let error = check_flags(&flags).unwrap_err();
        assert!(error.0.contains("--target-utilisation"), "{error}");
    }
    let flags = args(&["--trace", "x", "--target-utilisation", "1"]);
    assert!(check_flags(&flags).is_ok());
    assert!(Flags::try_parse_from(["simulate", "--trace", "x", "--policy", "magic"]).is_err());
}
