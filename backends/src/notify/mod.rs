//! Notifiers tell people what the worker did: `console` (a line on stdout), `log` (a tracing
//! event), `test` (kept in memory for the project's tests). One file per backend.
//!
//! Which events exist and when they fire is decided by the engine; this module only carries an
//! [`Event`] to each backend. [`Dispatcher`] gives every backend its own bounded queue and task,
//! so a slow or failing backend never holds up the heartbeat loop or the other backends.

pub mod console;
pub mod log;
pub mod test;

pub use console::ConsoleNotifier;
pub use log::LogNotifier;
pub use test::TestNotifier;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What happened. The names are stable: they appear in web hooks and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `notify_on_every_ping`.
    Ping,
    /// `notify_on_every_scale`.
    Scaled,
    /// `notify_on_scale_fails`: a read or a write of the formation failed.
    ScaleFailed,
    /// The platform answers again after `ScaleFailed`.
    ScaleRecovered,
    /// `notify_if_needs_exceed_max`: at the max and still too slow.
    NeedsAboveMax,
    NeedsAboveMaxEnded,
    /// `notify_if_needs_below_min`: at the min and still fast enough to remove dynos.
    NeedsBelowMin,
    NeedsBelowMinEnded,
    /// `notify_if_scale_diff_exceeds_threshold` within `…_period_in_minutes`.
    ScaleDiffExceeded,
    ScaleDiffEnded,
    /// `notify_on_downtime`: a planned downtime window started; told once per window.
    DowntimeStarted,
    /// The planned downtime window ended; the streaks start afresh.
    DowntimeEnded,
    /// Sent by hand to check that a backend delivers.
    Test,
}

impl EventKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Ping => "ping",
            EventKind::Scaled => "scaled",
            EventKind::ScaleFailed => "scale_failed",
            EventKind::ScaleRecovered => "scale_recovered",
            EventKind::NeedsAboveMax => "needs_above_max",
            EventKind::NeedsAboveMaxEnded => "needs_above_max_ended",
            EventKind::NeedsBelowMin => "needs_below_min",
            EventKind::NeedsBelowMinEnded => "needs_below_min_ended",
            EventKind::ScaleDiffExceeded => "scale_diff_exceeded",
            EventKind::ScaleDiffEnded => "scale_diff_ended",
            EventKind::DowntimeStarted => "downtime_started",
            EventKind::DowntimeEnded => "downtime_ended",
            EventKind::Test => "test",
        }
    }
}

/// One notification, with the numbers behind it so a backend can show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub app: String,
    pub kind: EventKind,
    /// A sentence for people: "Scaled to (3) dynos."
    pub message: String,
    /// Why, in a few words: "3 consecutive heartbeats slower than 1000 ms".
    pub reason: String,
    pub from_quantity: Option<u32>,
    pub to_quantity: Option<u32>,
    pub min_dynos: Option<u32>,
    pub max_dynos: Option<u32>,
    pub response_time_ms: Option<u64>,
}

impl Event {
    pub fn new(at: DateTime<Utc>, app: &str, kind: EventKind, message: impl Into<String>) -> Self {
        Event {
            at,
            app: app.to_string(),
            kind,
            message: message.into(),
            reason: String::new(),
            from_quantity: None,
            to_quantity: None,
            min_dynos: None,
            max_dynos: None,
            response_time_ms: None,
        }
    }

    /// One readable line: "2026-11-24T09:00:00Z my-app scaled: Scaled to (3) dynos. (reason)".
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} {} {}: {}",
            self.at.format("%Y-%m-%dT%H:%M:%SZ"),
            self.app,
            self.kind.as_str(),
            self.message
        );
        if !self.reason.is_empty() {
            line.push_str(&format!(" ({})", self.reason));
        }
        line
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotifyError(pub String);

/// A notification backend.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// The name used in `notification_backends`.
    fn name(&self) -> &'static str;
    async fn send(&self, event: &Event) -> Result<(), NotifyError>;
}

/// How many events each backend may have waiting before new ones are dropped (and counted).
const QUEUE_CAPACITY: usize = 256;
/// How long one delivery may take before it is abandoned.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts per backend, readable while the worker runs.
#[derive(Debug, Default)]
pub struct DeliveryCounts {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

struct Lane {
    name: &'static str,
    queue: mpsc::Sender<Event>,
    counts: Arc<DeliveryCounts>,
}

/// Hands each event to every backend's own queue without waiting for delivery.
pub struct Dispatcher {
    lanes: Vec<Lane>,
    tasks: Vec<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts one delivery task per backend. Needs a tokio runtime.
    pub fn start(notifiers: Vec<Arc<dyn Notifier>>) -> Self {
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for notifier in notifiers {
            let (queue, mut receiver) = mpsc::channel::<Event>(QUEUE_CAPACITY);
            let counts = Arc::new(DeliveryCounts::default());
            let task_counts = counts.clone();
            let name = notifier.name();
            tasks.push(tokio::spawn(async move {
                while let Some(event) = receiver.recv().await {
                    match tokio::time::timeout(SEND_TIMEOUT, notifier.send(&event)).await {
                        Ok(Ok(())) => {
                            task_counts.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(error)) => {
                            task_counts.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(backend = name, %error, event = event.kind.as_str(), "Notification failed.");
                        }
                        Err(_) => {
                            task_counts.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(backend = name, timeout = ?SEND_TIMEOUT, event = event.kind.as_str(), "Notification timed out.");
                        }
                    }
                }
            }));
            lanes.push(Lane {
                name,
                queue,
                counts,
            });
        }
        Dispatcher { lanes, tasks }
    }

    /// Queues the event for every backend; never waits.
    pub fn dispatch(&self, event: &Event) {
        for lane in &self.lanes {
            if lane.queue.try_send(event.clone()).is_err() {
                lane.counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    backend = lane.name,
                    event = event.kind.as_str(),
                    "Notification dropped: the backend's queue is full."
                );
            }
        }
    }

    pub fn counts(&self) -> Vec<(&'static str, Arc<DeliveryCounts>)> {
        self.lanes
            .iter()
            .map(|lane| (lane.name, lane.counts.clone()))
            .collect()
    }

    /// Stops taking events and waits up to `deadline` for the queued ones to be delivered.
    pub async fn drain(self, deadline: Duration) {
        drop(self.lanes);
        let all = futures_join_all(self.tasks);
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!(
                ?deadline,
                "Some notifications were still queued at shutdown."
            );
        }
    }
}

async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}
