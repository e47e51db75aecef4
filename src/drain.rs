//! The log drain's signal for one app: the window of router requests the HTTP server fills
//! from Heroku's log drain, the traffic meter those requests touch, and the newest l2met
//! sample of each process type and name ([`Samples`]).
//!
//! The worker's loop owns it and reads it each beat as one of its inputs, like the heartbeat;
//! the server holds a clone (through the app's telemetry) to fill it and to show it. It parses
//! nothing (that is [`crate::router_log`]'s) and decides nothing. Its lock is held for a push or
//! a read of the window, never across an await.

use crate::router_log::l2met::Sample;
use crate::router_log::{IngestCounts, Request, RouterStats, RouterWindow};
use crate::traffic::TrafficMeter;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The window keeps at most this many requests (about 24 MB), whatever the traffic.
const MAX_WINDOW_REQUESTS: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct Drain {
    window: Arc<Mutex<RouterWindow>>,
    /// The newest l2met sample of each process type and name.
    samples: Samples,
    /// Touched by batches with real requests: the app's traffic for `idle_after`.
    traffic: Arc<TrafficMeter>,
}

impl Drain {
    /// An empty drain whose window reaches `window` back (`router_window`).
    pub fn new(window: Duration) -> Self {
        Drain {
            window: Arc::new(Mutex::new(RouterWindow::new(window, MAX_WINDOW_REQUESTS))),
            samples: Samples::default(),
            traffic: TrafficMeter::new(),
        }
    }

    /// Adds a batch's requests, stamped with their arrival time `now`.
    pub fn ingest(&self, now: DateTime<Utc>, counts: &IngestCounts, requests: Vec<Request>) {
        // The worker's own heartbeats pass through the router too, and a maintenance page is
        // the platform's answer: neither is someone using the app.
        if counts.traffic_lines > 0 {
            self.traffic.touch();
        }
        self.window.lock().unwrap().push(now, requests);
    }

    /// The window at `now`.
    pub fn stats(&self, now: DateTime<Utc>) -> RouterStats {
        self.window.lock().unwrap().stats(now)
    }

    /// When the router last logged a request.
    pub fn last_request_at(&self) -> Option<DateTime<Utc>> {
        self.window.lock().unwrap().last_request_at()
    }

    /// The l2met samples the drain has seen.
    pub fn samples(&self) -> &Samples {
        &self.samples
    }

    /// The meter the drain's real requests touch.
    pub fn traffic(&self) -> Arc<TrafficMeter> {
        self.traffic.clone()
    }
}

/// The newest value of each l2met metric, per process type, with when it arrived. Bounded: a
/// drain naming ever new metrics keeps at most [`MAX_SAMPLE_NAMES`] of them.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    newest: Arc<Mutex<Newest>>,
}

/// (process type, metric name) → (value, when it arrived).
type Newest = HashMap<(String, String), (f64, DateTime<Utc>)>;

/// Distinct (process type, metric) pairs kept: far more than an app logs, few enough to hold.
pub const MAX_SAMPLE_NAMES: usize = 10_000;

impl Samples {
    /// Keeps each sample as the newest of its process type and name, arrived at `now`.
    pub fn record(&self, now: DateTime<Utc>, samples: &[Sample]) {
        let mut newest = self.newest.lock().unwrap();
        for sample in samples {
            let key = (sample.process_type.clone(), sample.name.clone());
            if newest.len() < MAX_SAMPLE_NAMES || newest.contains_key(&key) {
                newest.insert(key, (sample.value, now));
            }
        }
    }

    /// The newest value of `name` from any process type, and when it arrived.
    pub fn newest(&self, name: &str) -> Option<(f64, DateTime<Utc>)> {
        let newest = self.newest.lock().unwrap();
        newest
            .iter()
            .filter(|((_, metric), _)| metric == name)
            .map(|(_, value)| *value)
            .max_by_key(|(_, at)| *at)
    }

    /// The newest value of `name` logged by `process_type`'s dynos.
    pub fn of(&self, process_type: &str, name: &str) -> Option<(f64, DateTime<Utc>)> {
        let newest = self.newest.lock().unwrap();
        newest
            .get(&(process_type.to_string(), name.to_string()))
            .copied()
    }
}

/// The job queue as the app reports it through the drain: the newest l2met sample of `depth`
/// (jobs waiting) and of `latency` (seconds the oldest job waited), from any process type. A
/// sample older than [`SAMPLE_STALE_AFTER`], or none yet, is a failed reading: the size holds.
pub struct DrainQueue {
    samples: Samples,
    depth: Option<String>,
    latency: Option<String>,
}

/// An app logs its l2met samples every few seconds to a minute: two minutes without one says
/// the app (or the drain) stopped telling, not that the queue is empty.
pub const SAMPLE_STALE_AFTER: Duration = Duration::from_secs(120);

impl DrainQueue {
    pub fn new(samples: Samples, depth: Option<String>, latency: Option<String>) -> Self {
        DrainQueue {
            samples,
            depth,
            latency,
        }
    }

    fn fresh(&self, name: &str, now: DateTime<Utc>) -> Result<f64, String> {
        let (value, at) = self.samples.newest(name).ok_or_else(|| {
            format!("no l2met sample of {name} has come through the log drain yet")
        })?;
        let age = (now - at).to_std().unwrap_or(Duration::ZERO);
        if age > SAMPLE_STALE_AFTER {
            return Err(format!(
                "the newest l2met sample of {name} is {} s old",
                age.as_secs()
            ));
        }
        Ok(value)
    }
}

#[async_trait::async_trait]
impl autoscalebot_backends::queue::QueueSource for DrainQueue {
    async fn read(
        &self,
        now: DateTime<Utc>,
    ) -> Result<autoscalebot_backends::queue::QueueReading, String> {
        let jobs = match &self.depth {
            Some(name) => Some(self.fresh(name, now)?.max(0.0).round() as u64),
            None => None,
        };
        let oldest_age = match &self.latency {
            Some(name) => Some(
                Duration::try_from_secs_f64(self.fresh(name, now)?.max(0.0))
                    .unwrap_or(Duration::MAX),
            ),
            None => None,
        };
        Ok(autoscalebot_backends::queue::QueueReading { jobs, oldest_age })
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = [&self.depth, &self.latency]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        format!("the log drain's l2met samples ({})", names.join(", "))
    }
}
