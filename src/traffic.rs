//! Real traffic: counts connections and remembers when traffic was last seen, with atomics
//! only: the activator's forwarding path touches it on every connection and must never wait on
//! a lock.
//!
//! The activator's connections and the log drain's router requests write it; the worker's loop
//! and the activator read it into the engine's [`Traffic`] input. It decides nothing. Time is
//! tokio's, so paused-time tests move it too.

use crate::decision::Traffic;
use autoscalebot_backends::activator::forward::Meter;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct TrafficMeter {
    origin: Instant,
    open: AtomicU64,
    total: AtomicU64,
    /// Milliseconds from `origin` to the last traffic, plus one; 0 means never.
    last_ms_plus_one: AtomicU64,
}

impl Default for TrafficMeter {
    fn default() -> Self {
        TrafficMeter {
            origin: Instant::now(),
            open: AtomicU64::new(0),
            total: AtomicU64::new(0),
            last_ms_plus_one: AtomicU64::new(0),
        }
    }
}

impl TrafficMeter {
    pub fn new() -> Arc<TrafficMeter> {
        Arc::new(TrafficMeter::default())
    }

    /// Counts a connection open until the guard is dropped.
    pub fn opened(self: &Arc<Self>) -> ConnectionGuard {
        self.count_opened();
        ConnectionGuard {
            meter: self.clone(),
        }
    }

    fn count_opened(&self) {
        // SeqCst: paired with the activator's `up` flag, so a stop and a new connection never
        // both miss each other (see `activator::run`).
        self.open.fetch_add(1, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    fn count_closed(&self) {
        self.touch();
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    /// Records traffic now (a connection, or a request seen some other way).
    pub fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms_plus_one.fetch_max(ms + 1, Ordering::AcqRel);
    }

    pub fn open_connections(&self) -> u64 {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections counted since the start.
    pub fn total_connections(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// How long since the last traffic; `None` when there was none yet.
    pub fn since_last(&self) -> Option<Duration> {
        let stamp = self.last_ms_plus_one.load(Ordering::Acquire);
        let last = Duration::from_millis(stamp.checked_sub(1)?);
        Some(self.origin.elapsed().saturating_sub(last))
    }

    /// The engine's view of this meter at `now` (the wall-clock moment of this reading).
    pub fn snapshot(&self, now: DateTime<Utc>) -> Traffic {
        Traffic {
            last_at: self
                .since_last()
                .map(|since| now - chrono::Duration::from_std(since).unwrap_or_default()),
            open_connections: self.open_connections(),
        }
    }
}

/// One open connection; dropping it counts the connection closed (and is traffic too).
#[derive(Debug)]
pub struct ConnectionGuard {
    meter: Arc<TrafficMeter>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.meter.count_closed();
    }
}

/// The activator's forwarding lanes count their connections here.
impl Meter for TrafficMeter {
    fn connection_opened(&self) {
        self.count_opened();
    }

    fn connection_closed(&self) {
        self.count_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_open_connections_and_the_time_since_traffic() {
        let meter = TrafficMeter::new();
        assert_eq!(meter.since_last(), None);
        let first = meter.opened();
        let second = meter.opened();
        assert_eq!(meter.open_connections(), 2);
        drop(first);
        assert_eq!(meter.open_connections(), 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(second);
        assert_eq!(meter.open_connections(), 0);
        tokio::time::advance(Duration::from_secs(3)).await;
        let since = meter.since_last().unwrap();
        assert!(
            since >= Duration::from_secs(3) && since < Duration::from_secs(4),
            "{since:?}"
        );
        assert_eq!(meter.total_connections(), 2);
        let now = Utc::now();
        let traffic = meter.snapshot(now);
        assert_eq!(traffic.open_connections, 0);
        let ago = now - traffic.last_at.unwrap();
        assert!(ago >= chrono::Duration::seconds(3) && ago < chrono::Duration::seconds(4));
    }
}
