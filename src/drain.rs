//! The log drain's signal for one app: the window of router requests the HTTP server fills
//! from Heroku's log drain, and the traffic meter those requests touch.
//!
//! The worker's loop owns it and reads it each beat as one of its inputs, like the heartbeat;
//! the server holds a clone (through the app's telemetry) to fill it and to show it. It parses
//! nothing (that is [`crate::router_log`]'s) and decides nothing. Its lock is held for a push or
//! a read of the window, never across an await.

use crate::router_log::{IngestCounts, Request, RouterStats, RouterWindow};
use crate::traffic::TrafficMeter;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The window keeps at most this many requests (about 24 MB), whatever the traffic.
const MAX_WINDOW_REQUESTS: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct Drain {
    window: Arc<Mutex<RouterWindow>>,
    /// Touched by batches with real requests: the app's traffic for `idle_after`.
    traffic: Arc<TrafficMeter>,
}

impl Drain {
    /// An empty drain whose window reaches `window` back (`router_window`).
    pub fn new(window: Duration) -> Self {
        Drain {
            window: Arc::new(Mutex::new(RouterWindow::new(window, MAX_WINDOW_REQUESTS))),
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

    /// The meter the drain's real requests touch.
    pub fn traffic(&self) -> Arc<TrafficMeter> {
        self.traffic.clone()
    }
}
