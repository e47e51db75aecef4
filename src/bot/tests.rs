//! The loop under paused time: a scripted probe and an in-memory platform, so each test runs
//! minutes of heartbeats in milliseconds and can check what the loop did at each step.

use super::*;
use crate::settings::from_toml_str;
use async_trait::async_trait;
use autoscalebot_backends::notify::EventKind;
use chrono::TimeZone;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Answers with the scripted outcomes in turn, then repeats the last one.
struct ScriptedProbe {
    outcomes: Mutex<VecDeque<ProbeOutcome>>,
    calls: Mutex<u32>,
}

impl ScriptedProbe {
    fn new(latencies_ms: &[u64]) -> Arc<Self> {
        Arc::new(ScriptedProbe {
            outcomes: Mutex::new(
                latencies_ms
                    .iter()
                    .map(|ms| ProbeOutcome::Response {
                        status: 200,
                        elapsed: Duration::from_millis(*ms),
                    })
                    .collect(),
            ),
            calls: Mutex::new(0),
        })
    }
}

#[async_trait]
impl Probe for ScriptedProbe {
    async fn probe(&self) -> ProbeOutcome {
        *self.calls.lock().unwrap() += 1;
        let mut outcomes = self.outcomes.lock().unwrap();
        if outcomes.len() > 1 {
            outcomes.pop_front().unwrap()
        } else {
            outcomes.front().cloned().unwrap()
        }
    }
}

/// A platform that keeps one quantity, can be told to fail, and records every write.
#[derive(Default)]
struct MemoryScaler {
    quantity: Mutex<u32>,
    writes: Mutex<Vec<u32>>,
    reads: Mutex<u32>,
    failing: Mutex<Option<ScaleError>>,
    /// A write takes this long, to test that shutdown waits for it.
    write_delay: Duration,
}

#[async_trait]
impl Scaler for MemoryScaler {
    fn describe(&self) -> String {
        "memory".into()
    }
    async fn current(&self) -> Result<u32, ScaleError> {
        *self.reads.lock().unwrap() += 1;
        if let Some(error) = self.failing.lock().unwrap().clone() {
            return Err(error);
        }
        Ok(*self.quantity.lock().unwrap())
    }
    async fn set(&self, quantity: u32) -> Result<u32, ScaleError> {
        tokio::time::sleep(self.write_delay).await;
        if let Some(error) = self.failing.lock().unwrap().clone() {
            return Err(error);
        }
        *self.quantity.lock().unwrap() = quantity;
        self.writes.lock().unwrap().push(quantity);
        Ok(quantity)
    }
}

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
async fn manual_scaling_is_respected_because_each_beat_reads_the_platform() {
    let probe = ScriptedProbe::new(&[500]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(2),
        ..Default::default()
    });
    let notifier = TestNotifier::new();
    let mut worker = worker(settings("max_dynos = 4"), probe, scaler.clone(), &notifier);
    worker.beat().await;
    *scaler.quantity.lock().unwrap() = 7; // a person scaled by hand, past the max
    let beat = worker.beat().await;
    assert_eq!(beat.quantity, Some(7));
    assert_eq!(beat.scaled_to, Some(4));
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

#[tokio::test(start_paused = true)]
async fn a_refused_key_pauses_platform_calls_for_longer_each_time_while_heartbeats_go_on() {
    let probe = ScriptedProbe::new(&[2000]);
    let scaler = Arc::new(MemoryScaler {
        quantity: Mutex::new(1),
        failing: Mutex::new(Some(ScaleError::Unauthorized {
            id: "unauthorized".into(),
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
