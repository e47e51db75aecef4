//! The simulator and the worker make the same decisions from the same heartbeats: the worker's
//! real loop (`Worker::run`, paused tokio time, a scripted probe, an in-memory platform) and the
//! simulator's replay, on one script of heartbeat outcomes with schedules, a time zone,
//! cool-offs, an increment above one and a planned downtime window that holds a size.

use autoscalebot::bot::{tokio_clock, Worker};
use autoscalebot::simulate::queue::{DynoModel, Moment, ROUTER_TIMEOUT};
use autoscalebot::simulate::replay::{calendar_for, Bench, Needs};
use autoscalebot::simulate::trace::{Point, Trace};
use autoscalebot::test_doubles::{MemoryScaler, ScriptedProbe};
use autoscalebot_backends::probe::ProbeOutcome;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SETTINGS: &str = r#"
heartbeat_interval_in_seconds = 30
max_response_time_in_ms = 1000
min_response_time_in_ms = 200
number_of_fails_to_scale_up_after = 2
number_of_passes_to_scale_down_after = 3
increment = 2
time_zone = "America/Vancouver"
max_dynos = { "0:00" = 2, "8:00" = 7, "8:40" = 3 }
min_dynos = { "0:00" = 1, "8:20" = 2 }
scale_up_cooldown = "1m"
scale_down_cooldown = "3m"
downtime = ["2024-03-01T08:50/PT8M"]
downtime_dynos = 4
"#;

/// 90 minutes of 30 s heartbeats.
const BEATS: usize = 180;

/// A fixed, varied script: runs of fast, in-band, slow, timed-out and 503 heartbeats, long
/// enough for streaks to form and break (a small LCG, so nothing here is hand-tuned).
fn script() -> Vec<ProbeOutcome> {
    let mut state: u64 = 20_240_101;
    let mut outcomes = Vec::new();
    while outcomes.len() < BEATS {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let kind = (state >> 33) % 5;
        let run = 1 + (state >> 40) % 6;
        for _ in 0..run {
            outcomes.push(match kind {
                0 | 1 => response(200, 40),
                2 => response(200, 600),
                3 => response(200, 1800),
                _ if (state >> 50) % 2 == 0 => ProbeOutcome::Timeout {
                    elapsed: Duration::from_secs(5),
                },
                _ => response(503, 90),
            });
        }
    }
    outcomes.truncate(BEATS);
    outcomes
}

fn response(status: u16, ms: u64) -> ProbeOutcome {
    ProbeOutcome::Response {
        status,
        elapsed: Duration::from_millis(ms),
        downtime_header: None,
    }
}

/// 07:50 in Vancouver: the schedules change at 08:00, 08:20 and 08:40 during the run, and the
/// downtime window holds 4 dynos from 08:50 to 08:58.
fn start() -> DateTime<Utc> {
    chrono_tz::America::Vancouver
        .with_ymd_and_hms(2024, 3, 1, 7, 50, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn settings() -> autoscalebot::AppSettings {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, SETTINGS).unwrap();
    autoscalebot::simulate::load_settings(Some(&path), &HashMap::new()).unwrap()
}

async fn worker_decisions(initial: u32) -> Vec<(DateTime<Utc>, u32, u32)> {
    let clock = tokio_clock(start());
    let done = CancellationToken::new();
    let probe = ScriptedProbe::until_done(script(), done.clone());
    // Every write with the worker's clock.
    let writes = Arc::new(Mutex::new(Vec::new()));
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(initial),
        on_write: Some(Box::new({
            let (writes, clock) = (writes.clone(), clock.clone());
            move |from, to| writes.lock().unwrap().push((clock(), from, to))
        })),
        ..Default::default()
    });
    let worker = Worker::new(settings(), probe, scaler, Vec::new(), clock, false);
    worker.run(done).await;
    let writes = writes.lock().unwrap().clone();
    writes
}

fn simulator_decisions(initial: u32) -> Vec<(DateTime<Utc>, u32, u32)> {
    let settings = settings();
    let start_ms = start().timestamp_millis();
    // The rate plays no part: the script says what each heartbeat saw.
    let points = (0..BEATS as i64 / 2)
        .map(|minute| Point {
            at_ms: start_ms + minute * 60_000,
            requests_per_second: 1.0,
        })
        .collect();
    let trace = Trace::from_points("script", points).unwrap();
    let model = DynoModel {
        dyno_concurrency: 1,
        service_time_ms: 10.0,
        timeout: Some(ROUTER_TIMEOUT),
    };
    let needs = Needs::compute(&trace, &model, 1000.0);
    let bench = Bench {
        trace: &trace,
        model,
        boot_time: Duration::from_secs(30),
        max_response_time_ms: 1000.0,
        needs: &needs,
    };
    let script = script();
    let mut beat = 0;
    let mut probe = |_: i64, _: &Moment| {
        let outcome = script[beat].clone();
        beat += 1;
        outcome
    };
    let run = bench.run_engine(
        &settings,
        &calendar_for(&settings),
        initial,
        false,
        &mut probe,
        &mut || {},
    );
    assert_eq!(beat, BEATS, "the simulator used every scripted heartbeat");
    run.decisions.iter().map(|d| (d.at, d.from, d.to)).collect()
}

#[tokio::test(start_paused = true)]
async fn the_simulator_decides_as_the_worker_does() {
    for initial in [1, 5] {
        let worker = worker_decisions(initial).await;
        let simulator = simulator_decisions(initial);
        assert_eq!(simulator, worker, "starting at {initial} dynos");
        // The script must exercise the engine: scale-ups, scale-downs and schedule moves.
        assert!(worker.len() >= 6, "{worker:?}");
        assert!(worker.iter().any(|(_, from, to)| to > from));
        assert!(worker.iter().any(|(_, from, to)| to < from));
        let window_start = start() + chrono::Duration::minutes(60);
        assert!(
            worker
                .iter()
                .any(|(at, _, to)| *at == window_start && *to == 4),
            "the downtime window holds 4 dynos: {worker:?}"
        );
    }
}
