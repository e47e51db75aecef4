//! What the loop shares with the HTTP server: the metrics, the recent beats and notifications
//! (for the status page), the router window the drain fills, and the loop's liveness stamp.
//!
//! One [`Telemetry`] per app, a small struct of `Arc`s cloned into both sides. Locks are std
//! mutexes held for a push or a copy, never across an await, so the loop never waits on the
//! server (nor the server on the loop). Nothing here decides or does I/O.

use crate::activator::meter::TrafficMeter;
use crate::bot::{Beat, Clock};
use crate::decision::Observation;
use crate::metrics::Metrics;
use crate::router_log::{IngestCounts, Request, RouterStats, RouterWindow};
use crate::settings::AppSettings;
use autoscalebot_backends::notify::{DeliveryCounts, Event};
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How far back the status page's chart reaches.
pub const CHART_SPAN: Duration = Duration::from_secs(6 * 3600);
/// At most this many beats are kept for the chart (6 h of 30 s beats is 720).
const MAX_BEATS: usize = 5000;
/// The status page lists this many recent notifications.
const MAX_NOTIFICATIONS: usize = 50;
/// The router window keeps at most this many requests (about 24 MB), whatever the traffic.
const MAX_WINDOW_REQUESTS: usize = 1_000_000;

/// One beat as the chart draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatPoint {
    pub at: DateTime<Utc>,
    /// The heartbeat time or the router p95 the decision used.
    pub response_time_ms: Option<u64>,
    pub observation: Observation,
    /// Dynos after this beat: the scaled-to quantity, else the quantity read.
    pub dynos: Option<u32>,
    /// `Some((from, to))` when this beat scaled.
    pub scale: Option<(u32, u32)>,
    pub summary: String,
}

#[derive(Debug, Default)]
struct History {
    beats: VecDeque<BeatPoint>,
    notifications: VecDeque<Event>,
}

/// A copy of what the status page shows, taken under the locks in one go.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: DateTime<Utc>,
    pub settings: Arc<AppSettings>,
    pub beats: Vec<BeatPoint>,
    /// Newest first.
    pub notifications: Vec<Event>,
    /// The router window, when the drain is on.
    pub router: Option<RouterStats>,
    pub last_router_request_at: Option<DateTime<Utc>>,
    pub since_last_beat: Duration,
    pub stall_limit: Duration,
}

#[derive(Clone)]
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    settings: Arc<AppSettings>,
    history: Arc<Mutex<History>>,
    router: Arc<Mutex<RouterWindow>>,
    last_beat: Arc<Mutex<Instant>>,
    /// Touched by drain batches with real requests: the worker's traffic for `idle_after`.
    traffic: Arc<TrafficMeter>,
    clock: Clock,
}

impl Telemetry {
    pub fn new(
        settings: &AppSettings,
        clock: Clock,
        notifications: Vec<(&'static str, Arc<DeliveryCounts>)>,
    ) -> Self {
        Telemetry {
            metrics: Arc::new(Metrics::new(notifications)),
            settings: Arc::new(settings.clone()),
            history: Arc::default(),
            router: Arc::new(Mutex::new(RouterWindow::new(
                settings.router_window,
                MAX_WINDOW_REQUESTS,
            ))),
            last_beat: Arc::new(Mutex::new(Instant::now())),
            traffic: TrafficMeter::new(),
            clock,
        }
    }

    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// How long the loop may go without finishing a beat before `/healthz` says it stalled:
    /// three intervals, plus the longest a beat may legitimately take (the heartbeat timeout
    /// and a read and a write of the formation).
    pub fn stall_limit(&self) -> Duration {
        let settings = &self.settings;
        settings.heartbeat_interval * 3
            + settings.heartbeat_timeout
            + settings.heroku_api_timeout * 2
    }

    /// The loop is alive: called when it starts and after every beat.
    pub fn stamp_alive(&self) {
        *self.last_beat.lock().unwrap() = Instant::now();
    }

    pub fn since_last_beat(&self) -> Duration {
        self.last_beat.lock().unwrap().elapsed()
    }

    pub fn is_alive(&self) -> bool {
        self.since_last_beat() <= self.stall_limit()
    }

    pub fn record_beat(&self, beat: &Beat) {
        let point = BeatPoint {
            at: beat.at,
            response_time_ms: beat.heartbeat.response_time_ms,
            observation: beat.heartbeat.observation,
            dynos: beat.scaled_to.or(beat.quantity),
            scale: beat.quantity.zip(beat.scaled_to),
            summary: beat.heartbeat.summary.clone(),
        };
        let cutoff = beat.at - chrono::Duration::from_std(CHART_SPAN).unwrap_or_default();
        let mut history = self.history.lock().unwrap();
        history.beats.push_back(point);
        while history.beats.len() > MAX_BEATS
            || history.beats.front().is_some_and(|beat| beat.at < cutoff)
        {
            history.beats.pop_front();
        }
    }

    pub fn record_notifications(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut history = self.history.lock().unwrap();
        for event in events {
            history.notifications.push_back(event.clone());
        }
        while history.notifications.len() > MAX_NOTIFICATIONS {
            history.notifications.pop_front();
        }
    }

    /// Adds a drain batch's requests to the window, stamped with their arrival time.
    pub fn ingest(&self, counts: &IngestCounts, requests: Vec<Request>) {
        self.metrics.drain_ingested(counts, &requests);
        // The worker's own heartbeats pass through the router too; they are not traffic.
        if counts.router_lines > counts.heartbeat_lines {
            self.traffic.touch();
        }
        let now = self.now();
        self.router.lock().unwrap().push(now, requests);
    }

    /// The router window now (and the metrics' gauges set from it).
    pub fn router_stats(&self) -> RouterStats {
        let now = self.now();
        let stats = self.router.lock().unwrap().stats(now);
        self.metrics.router_window(&stats);
        stats
    }

    /// The meter the drain touches on real requests (see [`Worker::from_settings`]).
    ///
    /// [`Worker::from_settings`]: crate::bot::Worker::from_settings
    pub fn traffic(&self) -> Arc<TrafficMeter> {
        self.traffic.clone()
    }

    /// When the router last logged a request. The seam for `idle_after` (issue 6): with the
    /// drain on, idleness is the time since this.
    pub fn last_router_request_at(&self) -> Option<DateTime<Utc>> {
        self.router.lock().unwrap().last_request_at()
    }

    pub fn snapshot(&self) -> Snapshot {
        let router = self
            .settings
            .log_drain_password
            .is_some()
            .then(|| self.router_stats());
        let (beats, notifications) = {
            let history = self.history.lock().unwrap();
            (
                history.beats.iter().cloned().collect(),
                history.notifications.iter().rev().cloned().collect(),
            )
        };
        Snapshot {
            now: self.now(),
            settings: self.settings.clone(),
            beats,
            notifications,
            router,
            last_router_request_at: self.last_router_request_at(),
            since_last_beat: self.since_last_beat(),
            stall_limit: self.stall_limit(),
        }
    }
}
