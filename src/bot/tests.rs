//! The loop under paused time: a scripted probe and an in-memory platform, so each test runs
//! minutes of heartbeats in milliseconds and can check what the loop did at each step.

use super::*;
use crate::settings::from_toml_str;
use crate::test_doubles::{MemoryScaler, ScriptedProbe};
use crate::traffic::TrafficMeter;
use async_trait::async_trait;
use autoscalebot_backends::notify::EventKind;
use autoscalebot_backends::scaler::ScaleError;
use chrono::TimeZone;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

fn settings(extra: &str) -> AppSettings {
    let text = format!(
        "heroku_app_name = \"loop-app\"\nheroku_api_key = \"k\"\nheartbeat_interval_in_seconds = 30\n\
         max_response_time_in_ms = 1000\nmin_response_time_in_ms = 200\n{extra}"
    );
    from_toml_str(&text, &HashMap::new())
        .unwrap()
        .apps
        .remove(0)
}

fn worker(
    settings: AppSettings,
    probe: Arc<ScriptedProbe>,
    scaler: Arc<MemoryScaler>,
    notifier: &TestNotifier,
) -> Worker {
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    Worker::new(
        settings,
        probe,
        scaler,
        vec![Arc::new(notifier.clone())],
        tokio_clock(start),
        false,
    )
}

#[tokio::test(start_paused = true)]
async fn the_loop_scales_up_after_three_slow_heartbeats_at_the_interval() {
    let probe = ScriptedProbe::new(&[2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let worker = worker(
        settings("notify_on_every_scale = true"),
        probe.clone(),
        scaler.clone(),
        &notifier,
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    // Heartbeats at 0 s, 30 s and 60 s: the third is the streak.
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(scaler.writes.lock().unwrap().is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(*scaler.writes.lock().unwrap(), vec![2]);
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!(*scaler.writes.lock().unwrap(), vec![2, 3]);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        *scaler.writes.lock().unwrap(),
        vec![2, 3],
        "never past max_dynos"
    );
    shutdown.cancel();
    task.await.unwrap();
    let kinds: Vec<EventKind> = notifier.events().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Scaled,
            EventKind::Scaled,
            EventKind::NeedsAboveMax
        ]
    );
    assert_eq!(*probe.calls.lock().unwrap(), 1 + (59 + 2 + 90 + 600) / 30);
}

#[tokio::test(start_paused = true)]
async fn a_manual_scale_is_noticed_within_ten_heartbeats_from_one_request_a_beat() {
    let probe = ScriptedProbe::new(&[500]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(2),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(
        settings("max_dynos = 4"),
        probe.clone(),
        scaler.clone(),
        &notifier,
    );
    assert_eq!(worker.beat().await.quantity, Some(2));
    assert_eq!(*scaler.reads.lock().unwrap(), 1, "the first beat reads");
    *scaler.quantity.lock().unwrap() = 7; // a person scaled by hand, past the max
    for beat in 1..crate::budget::REFRESH_EVERY_BEATS {
        tokio::time::advance(Duration::from_secs(30)).await;
        let seen = worker.beat().await;
        assert_eq!(seen.quantity, Some(2), "beat {beat}: the size known");
        assert_eq!(seen.scaled_to, None);
    }
    assert_eq!(
        *scaler.reads.lock().unwrap(),
        1,
        "in band at a recent size: the heartbeat is the only request"
    );
    assert_eq!(*probe.calls.lock().unwrap(), 10);
    // Ten heartbeats (5 minutes at 30 s) after the last read, the size is read again.
    tokio::time::advance(Duration::from_secs(30)).await;
    let beat = worker.beat().await;
    assert_eq!(beat.quantity, Some(7));
    assert_eq!(beat.scaled_to, Some(4), "back within the max");
    assert_eq!(*scaler.reads.lock().unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn manual_scaling_is_respected_because_every_write_reads_the_platform_first() {
    // In band, then slow: the third slow beat wants a scale, at the size known.
    let probe = ScriptedProbe::new(&[500, 2000, 2000, 2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(2),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(settings("max_dynos = 4"), probe, scaler.clone(), &notifier);
    worker.beat().await;
    *scaler.quantity.lock().unwrap() = 3; // a person scaled by hand
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(worker.beat().await.quantity, Some(2), "not read yet");
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    let beat = worker.beat().await;
    assert_eq!(beat.quantity, Some(3), "read fresh before the write");
    assert_eq!(beat.scaled_to, Some(4), "one more than the size read");
    assert_eq!(*scaler.reads.lock().unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_notice_that_states_the_size_and_a_moved_bound_read_it_first() {
    // Slow at the max: "needs above max" states the size, so it is read before it is told.
    // Then in band, so that only the bound's move can ask for a read.
    let probe = ScriptedProbe::new(&[500, 2000, 2000, 2000, 500]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(3),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(
        settings("max_dynos = { \"0:00\" = 3, \"12:03\" = 4 }"),
        probe,
        scaler.clone(),
        &notifier,
    );
    worker.beat().await; // 12:00:00, in band: read
    tokio::time::advance(Duration::from_secs(30)).await;
    worker.beat().await;
    tokio::time::advance(Duration::from_secs(30)).await;
    worker.beat().await;
    assert_eq!(
        *scaler.reads.lock().unwrap(),
        1,
        "two fails: nothing rests on the size"
    );
    *scaler.quantity.lock().unwrap() = 2; // a person scaled down by hand
    tokio::time::advance(Duration::from_secs(30)).await;
    let beat = worker.beat().await; // 12:01:30, the third fail
    assert_eq!(
        *scaler.reads.lock().unwrap(),
        2,
        "read before a decision at the max"
    );
    assert_eq!(beat.quantity, Some(2));
    assert_eq!(beat.scaled_to, Some(3), "below the max after all: scaled");
    // At 12:03 the max moves to 4: the size is read when the bounds move.
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(30)).await;
        worker.beat().await;
    }
    assert_eq!(
        *scaler.reads.lock().unwrap(),
        3,
        "the 12:03 beat read; 12:02 and 12:02:30 did not"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_platform_is_told_and_the_loop_goes_on() {
    let probe = ScriptedProbe::new(&[2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        failing: Mutex::new(Some(ScaleError::Status {
            status: 503,
            id: "unavailable".into(),
            message: "down".into(),
        })),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let worker = worker(
        settings("notify_on_scale_fails = true"),
        probe.clone(),
        scaler.clone(),
        &notifier,
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(95)).await;
    assert_eq!(
        *probe.calls.lock().unwrap(),
        4,
        "heartbeats go on while the API fails"
    );
    *scaler.failing.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        *scaler.writes.lock().unwrap(),
        vec![2],
        "the fail streak survived the outage"
    );
    shutdown.cancel();
    task.await.unwrap();
    let kinds: Vec<EventKind> = notifier.events().iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::ScaleFailed, EventKind::ScaleRecovered],
        "an outage of four heartbeats is told once, and its end once"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_loop_but_never_in_the_middle_of_a_scale() {
    let probe = ScriptedProbe::new(&[2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        write_delay: Duration::from_secs(5),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let worker = worker(
        settings("number_of_fails_to_scale_up_after = 1"),
        probe,
        scaler.clone(),
        &notifier,
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await; // the write is in flight
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the loop ends after shutdown")
        .unwrap();
    assert_eq!(
        *scaler.writes.lock().unwrap(),
        vec![2],
        "the write in flight finished"
    );
}

#[tokio::test(start_paused = true)]
async fn dry_run_decides_and_tells_but_never_writes() {
    let probe = ScriptedProbe::new(&[2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let mut worker = Worker::new(
        settings("notify_on_every_scale = true"),
        probe,
        scaler.clone(),
        vec![Arc::new(notifier.clone())],
        tokio_clock(start),
        true,
    );
    for _ in 0..3 {
        worker.beat().await;
    }
    worker.dispatcher.drain(Duration::from_secs(1)).await;
    assert!(scaler.writes.lock().unwrap().is_empty());
    assert_eq!(
        notifier.events()[0].message,
        "Would scale to (2) dynos (dry run)."
    );
}

// ---- planned downtime ----

fn kinds(notifier: &TestNotifier) -> Vec<EventKind> {
    notifier.events().iter().map(|event| event.kind).collect()
}

#[tokio::test(start_paused = true)]
async fn a_downtime_file_written_while_running_holds_scale_up_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("downtime.txt");
    let probe = ScriptedProbe::new(&[2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let worker = worker(
        settings(&format!(
            "notify_on_every_scale = true\ndowntime_file = \"{}\"",
            path.display()
        )),
        probe,
        scaler.clone(),
        &notifier,
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    // Fails at 12:00:00 and 12:00:30, then the file declares 12:01 to 12:11.
    tokio::time::sleep(Duration::from_secs(31)).await;
    std::fs::write(&path, "garbage\n2026-03-10T12:01/PT10M\n").unwrap();
    tokio::time::sleep(Duration::from_secs(629)).await; // 12:10:59
    assert!(
        scaler.writes.lock().unwrap().is_empty(),
        "no scale up during the window"
    );
    assert_eq!(kinds(&notifier), vec![EventKind::DowntimeStarted]);
    // Fresh fails at 12:11:00, 12:11:30 and 12:12:00.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(scaler.writes.lock().unwrap().is_empty(), "two fresh fails");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(*scaler.writes.lock().unwrap(), vec![2]);
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        kinds(&notifier),
        vec![
            EventKind::DowntimeStarted,
            EventKind::DowntimeEnded,
            EventKind::Scaled
        ]
    );
    let started = &notifier.events()[0];
    assert!(
        started.reason.ends_with("downtime.txt line 2"),
        "{}",
        started.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_header_announced_window_holds_while_the_app_stops_answering() {
    let slow = |header: Option<&str>| ProbeOutcome::Response {
        status: 200,
        elapsed: Duration::from_millis(2000),
        downtime_header: header.map(str::to_string),
    };
    let probe = ScriptedProbe::with_outcomes(vec![
        slow(Some("2026-03-10T12:00/PT5M")),
        ProbeOutcome::Response {
            status: 503,
            elapsed: Duration::from_millis(5),
            downtime_header: None,
        },
        ProbeOutcome::ConnectError {
            message: "connection refused".into(),
            refused: true,
        },
        slow(None),
    ]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(
        settings("downtime_file = \"\"\ndowntime_dynos = 2"),
        probe,
        scaler.clone(),
        &notifier,
    );
    for _ in 0..10 {
        worker.beat().await;
        tokio::time::advance(Duration::from_secs(30)).await;
    }
    assert_eq!(
        *scaler.writes.lock().unwrap(),
        vec![2],
        "held at downtime_dynos, no scale up"
    );
    for _ in 0..3 {
        worker.beat().await; // 12:05 ends the window: back to 1, then fresh fails
        tokio::time::advance(Duration::from_secs(30)).await;
    }
    assert_eq!(*scaler.writes.lock().unwrap(), vec![2, 1]);
    worker.beat().await;
    assert_eq!(*scaler.writes.lock().unwrap(), vec![2, 1, 2]);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        kinds(&notifier),
        vec![EventKind::DowntimeStarted, EventKind::DowntimeEnded]
    );
}

#[tokio::test(start_paused = true)]
async fn downtime_disable_ignores_the_file_and_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("downtime.txt");
    std::fs::write(&path, "2026-03-10T11:00/PT5H\n").unwrap();
    let probe = ScriptedProbe::with_outcomes(vec![ProbeOutcome::Response {
        status: 200,
        elapsed: Duration::from_millis(2000),
        downtime_header: Some("2026-03-10T11:00/PT5H".into()),
    }]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(
        settings(&format!(
            "downtime_disable = true\ndowntime_file = \"{}\"\ndowntime = [\"2026-03-10T11:00/PT5H\"]",
            path.display()
        )),
        probe,
        scaler.clone(),
        &notifier,
    );
    for _ in 0..3 {
        worker.beat().await;
    }
    assert_eq!(*scaler.writes.lock().unwrap(), vec![2]);
    assert!(worker.state.downtime().is_none());
}

#[test]
fn the_downtime_file_reader_tells_absent_from_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("downtime.txt");
    assert_eq!(read_downtime_file(&path), Ok(None));
    std::fs::write(&path, "2026-03-10T11:00/PT5H\n").unwrap();
    assert_eq!(
        read_downtime_file(&path),
        Ok(Some("2026-03-10T11:00/PT5H\n".to_string()))
    );
    std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
    assert_eq!(read_downtime_file(&path), Err("not UTF-8 text".to_string()));
    std::fs::write(&path, "#".repeat(70_000)).unwrap();
    assert!(read_downtime_file(&path)
        .unwrap_err()
        .contains("larger than 64 KiB"));
    assert!(
        read_downtime_file(dir.path()).is_err(),
        "a folder is not a file"
    );
}

/// A heartbeat that never answers: a loop stuck where no timeout rescues it.
struct HangingProbe;

#[async_trait]
impl Probe for HangingProbe {
    async fn probe(&self) -> ProbeOutcome {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn healthz_turns_503_when_the_loop_stalls_and_the_server_still_answers() {
    use tower::ServiceExt;
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let worker = Worker::new(
        settings("http_port = 0"),
        Arc::new(HangingProbe),
        scaler,
        Vec::new(),
        tokio_clock(start),
        false,
    );
    let app = crate::server::router(vec![worker.telemetry()]);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    let health = || async {
        let request = axum::http::Request::get("/healthz")
            .body(axum::body::Body::empty())
            .unwrap();
        app.clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(health().await, 200);
    // The limit is 3 × 30 s + 5 s + 2 × 10 s = 115 s since the loop started.
    tokio::time::sleep(Duration::from_secs(56)).await;
    assert_eq!(health().await, 503);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_router_signal_decides_from_the_drain_window_without_probing() {
    use crate::router_log::{IngestCounts, Request};
    let probe = ScriptedProbe::new(&[10]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let settings = settings(
        "signal = \"router\"\nhttp_port = 0\nlog_drain_password = \"p\"\nrouter_window = \"30s\"",
    );
    let mut worker = worker(settings, probe.clone(), scaler.clone(), &notifier);
    let telemetry = worker.telemetry();
    let slow = Request {
        connect_ms: Some(5),
        service_ms: Some(1500),
        status: 200,
        code: None,
    };
    for _ in 0..3 {
        telemetry.ingest(&IngestCounts::default(), vec![slow; 50]);
        let beat = worker.beat().await;
        assert_eq!(beat.router.as_ref().unwrap().requests, 50);
        tokio::time::advance(Duration::from_secs(31)).await;
    }
    assert_eq!(*scaler.writes.lock().unwrap(), vec![2]);
    assert_eq!(*probe.calls.lock().unwrap(), 0);
    assert!(telemetry.last_router_request_at().is_some());
}

#[tokio::test(start_paused = true)]
async fn with_both_signals_slow_router_lines_scale_up_despite_fast_heartbeats() {
    use crate::router_log::{IngestCounts, Request};
    let probe = ScriptedProbe::new(&[10]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let settings = settings("signal = \"both\"\nhttp_port = 0\nlog_drain_password = \"p\"");
    let mut worker = worker(settings, probe.clone(), scaler.clone(), &notifier);
    let telemetry = worker.telemetry();
    let slow = Request {
        connect_ms: Some(900),
        service_ms: Some(900),
        status: 200,
        code: None,
    };
    for round in 0..3 {
        telemetry.ingest(&IngestCounts::default(), vec![slow; 20]);
        let beat = worker.beat().await;
        assert_eq!(
            beat.heartbeat.observation,
            Observation::Fail,
            "round {round}"
        );
        assert!(crate::notices::summary(&beat.heartbeat).starts_with("10 ms; router p95 1800 ms"));
    }
    assert_eq!(*scaler.writes.lock().unwrap(), vec![2]);
    assert_eq!(
        *probe.calls.lock().unwrap(),
        3,
        "the heartbeat was sent too"
    );
}

// ---- Scale to zero in the loop ----

#[tokio::test(start_paused = true)]
async fn a_stopped_app_gets_no_heartbeat_only_reads() {
    let probe = ScriptedProbe::new(&[100]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(0),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(
        settings("min_dynos = 0"),
        probe.clone(),
        scaler.clone(),
        &notifier,
    );
    // The first beat probes (nothing is known yet) and learns the app is stopped.
    let beat = worker.beat().await;
    assert_eq!(beat.quantity, Some(0));
    assert_eq!(
        beat.scaled_to, None,
        "a heartbeat against a stopped app never wakes it"
    );
    let probes = *probe.calls.lock().unwrap();
    for _ in 0..5 {
        let beat = worker.beat().await;
        assert!(beat.stopped);
        assert_eq!(beat.quantity, Some(0));
    }
    assert_eq!(
        *probe.calls.lock().unwrap(),
        probes,
        "no heartbeat to a stopped app"
    );
    // Someone (the activator) starts it: the next beat probes again.
    *scaler.quantity.lock().unwrap() = 1;
    let beat = worker.beat().await;
    assert!(!beat.stopped);
    assert_eq!(*probe.calls.lock().unwrap(), probes + 1);
}

#[tokio::test(start_paused = true)]
async fn idle_after_with_a_traffic_meter_stops_the_app_and_calls_no_more_heartbeats() {
    let probe = ScriptedProbe::new(&[500]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let meter = TrafficMeter::new();
    let worker = worker(
        settings("min_dynos = 0\nidle_after = \"5m\""),
        probe.clone(),
        scaler.clone(),
        &notifier,
    )
    .with_traffic(meter.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    // Traffic every minute for ten minutes keeps it up.
    for _ in 0..10 {
        let connection = meter.opened();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(connection);
    }
    assert!(scaler.writes.lock().unwrap().is_empty());
    // Then silence: stopped within five minutes and a beat.
    tokio::time::sleep(Duration::from_secs(5 * 60 + 31)).await;
    assert_eq!(*scaler.writes.lock().unwrap(), vec![0]);
    let probes = *probe.calls.lock().unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        *probe.calls.lock().unwrap(),
        probes,
        "no heartbeat once stopped"
    );
    assert_eq!(
        *scaler.writes.lock().unwrap(),
        vec![0],
        "and it stays stopped"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn max_age_stops_the_app_and_a_minimum_above_zero_starts_it_again() {
    let probe = ScriptedProbe::new(&[500]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(2),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(
        settings("max_age = \"1m\""),
        probe,
        scaler.clone(),
        &notifier,
    );
    worker.beat().await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let beat = worker.beat().await;
    assert_eq!(beat.scaled_to, Some(0));
    let beat = worker.beat().await;
    assert!(beat.stopped);
    assert_eq!(
        beat.scaled_to,
        Some(1),
        "min_dynos 1 brings it back: a restart"
    );
    assert_eq!(*scaler.writes.lock().unwrap(), vec![0, 1]);
}

// ---- the API budget and the leader lock ----

/// A budget with no room to spare: routine reads only at the planned pace.
fn tight_pace(refresh_every_beats: Option<u32>) -> Pace {
    let mut budget = crate::budget::ApiBudget::new(1000, tokio::time::Instant::now());
    // Spend down to half, below the share at which every heartbeat may read.
    let now = tokio::time::Instant::now();
    for _ in 0..500 {
        assert!(budget.try_take(now, crate::budget::Call::Decision));
    }
    Pace {
        budget: Arc::new(Mutex::new(budget)),
        refresh_every_beats,
    }
}

#[tokio::test(start_paused = true)]
async fn with_a_tight_budget_the_size_is_read_at_the_pace_and_just_before_a_scale() {
    // In band for fourteen heartbeats, then slow.
    let mut latencies = vec![500; 14];
    latencies.push(2000);
    let probe = ScriptedProbe::new(&latencies);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(2),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(settings("max_dynos = 4"), probe, scaler.clone(), &notifier)
        .with_budget(tight_pace(Some(12)));
    let mut read_at = Vec::new();
    for beat in 0..14 {
        let before = *scaler.reads.lock().unwrap();
        let result = worker.beat().await;
        assert_eq!(result.quantity, Some(2), "the size is known on every beat");
        if *scaler.reads.lock().unwrap() > before {
            read_at.push(beat);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
    }
    // The first beat must read; then the budget's pace (every 12th heartbeat) holds back the
    // re-read due after 10.
    assert_eq!(read_at, vec![0, 12]);
    // Three slow heartbeats: the third wants a scale, so it reads first, then writes.
    let reads = *scaler.reads.lock().unwrap();
    worker.beat().await;
    tokio::time::advance(Duration::from_secs(30)).await;
    worker.beat().await;
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        *scaler.reads.lock().unwrap(),
        reads,
        "no routine read: the size read at the 12th beat is recent"
    );
    *scaler.quantity.lock().unwrap() = 3; // someone scaled by hand meanwhile
    let beat = worker.beat().await;
    assert_eq!(beat.quantity, Some(3), "read fresh before the scale");
    assert_eq!(beat.scaled_to, Some(4));
    assert_eq!(*scaler.writes.lock().unwrap(), vec![4]);
}

#[tokio::test(start_paused = true)]
async fn a_standby_counts_heartbeats_but_neither_reads_nor_scales_nor_tells_until_it_leads() {
    let probe = ScriptedProbe::new(&[2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let (lead, state) = tokio::sync::watch::channel(false);
    let (confirm, mut asked) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<bool>>(4);
    tokio::spawn(async move {
        while let Some(reply) = asked.recv().await {
            let _ = reply.send(true);
        }
    });
    let leadership = autoscalebot_backends::leader::Leadership::from_parts(state, confirm);
    let mut worker = worker(
        settings(
            "notify_on_every_scale = true
notify_on_every_ping = true",
        ),
        probe,
        scaler.clone(),
        &notifier,
    )
    .with_leadership(leadership);
    for _ in 0..5 {
        worker.beat().await;
    }
    assert_eq!(*scaler.reads.lock().unwrap(), 0);
    assert!(scaler.writes.lock().unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(notifier.events().is_empty(), "a standby told");
    assert_eq!(
        worker.state.streaks().unwrap().consecutive_fails,
        5,
        "heartbeats counted"
    );
    lead.send_replace(true);
    let beat = worker.beat().await;
    assert_eq!(
        beat.scaled_to,
        Some(2),
        "scales on its first beat as leader"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(notifier
        .events()
        .iter()
        .any(|event| event.kind == EventKind::Scaled));
}

#[tokio::test(start_paused = true)]
async fn a_refused_key_pauses_platform_calls_for_longer_each_time_while_heartbeats_go_on() {
    let probe = ScriptedProbe::new(&[2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        failing: Mutex::new(Some(ScaleError::Unauthorized {
            id: "unauthorized".into(),
            hint: "check heroku_api_key or HEROKU_API_KEY",
        })),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let worker = worker(
        settings("notify_on_scale_fails = true"),
        probe.clone(),
        scaler.clone(),
        &notifier,
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    // Heartbeats every 30 s; after each refusal the pause doubles from 30 s: reads at 0, 30,
    // 90, 210 and 450 s.
    tokio::time::sleep(Duration::from_secs(600) + Duration::from_millis(1)).await;
    assert_eq!(*probe.calls.lock().unwrap(), 21, "heartbeats go on");
    assert_eq!(*scaler.reads.lock().unwrap(), 5, "platform calls back off");
    *scaler.failing.lock().unwrap() = None;
    // The pause after the fifth refusal is 480 s: the next read is at 930 s.
    tokio::time::sleep(Duration::from_secs(329)).await;
    assert_eq!(*scaler.reads.lock().unwrap(), 5);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(*scaler.reads.lock().unwrap(), 6);
    assert_eq!(
        *scaler.writes.lock().unwrap(),
        vec![2],
        "the fails during the pause counted"
    );
    shutdown.cancel();
    task.await.unwrap();
    let kinds: Vec<EventKind> = notifier.events().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::ScaleFailed, EventKind::ScaleRecovered]
    );
    let failed = &notifier.events()[0];
    assert!(
        failed.reason.contains("refused the API key") && failed.reason.contains("401"),
        "the notification names the cause: {}",
        failed.reason
    );
}

#[test]
fn the_refusal_pause_doubles_from_the_interval_up_to_ten_minutes() {
    let pause = |interval_ms, count| refusal_pause(Duration::from_millis(interval_ms), count);
    assert_eq!(pause(30_000, 1), Duration::from_secs(30));
    assert_eq!(pause(30_000, 2), Duration::from_secs(60));
    assert_eq!(pause(30_000, 5), Duration::from_secs(480));
    assert_eq!(pause(30_000, 6), Duration::from_secs(600));
    assert_eq!(pause(30_000, 60), Duration::from_secs(600));
    assert_eq!(pause(200, 1), Duration::from_secs(1), "at least a second");
    assert_eq!(pause(200, 3), Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_app_whose_read_is_refused_is_told_as_a_refusal_and_stays_alive() {
    let probe = ScriptedProbe::new(&[100]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(0),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(
        settings("min_dynos = 0"),
        probe.clone(),
        scaler.clone(),
        &notifier,
    );
    let telemetry = worker.telemetry();
    assert_eq!(worker.beat().await.quantity, Some(0));
    *scaler.failing.lock().unwrap() = Some(ScaleError::Unauthorized {
        id: "unauthorized".into(),
        hint: "check heroku_api_key or HEROKU_API_KEY",
    });
    // Longer than /healthz's stall limit (115 s): only this beat can stamp the loop alive.
    tokio::time::advance(Duration::from_secs(200)).await;
    let beat = worker.beat().await;
    assert!(beat.stopped);
    assert!(
        beat.error
            .as_deref()
            .is_some_and(|error| error.contains("401")),
        "{:?}",
        beat.error
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        kinds(&notifier),
        vec![EventKind::ScaleFailed],
        "a refusal is told without notify_on_scale_fails"
    );
    assert!(telemetry.is_alive(), "every beat stamps the loop alive");
}
