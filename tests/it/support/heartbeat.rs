//! The app's heartbeat: a local server answering after a latency, with a status and a header
//! the test sets as it goes.

use super::http::serve;
use super::wait::wait_until;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A response header the heartbeat sends: `(name, value)`.
type SentHeader = Arc<Mutex<Option<(String, String)>>>;

/// What the heartbeat handler shares with the test: latency, status, hits, header.
type HeartbeatState = (Arc<AtomicU64>, Arc<AtomicU16>, Arc<AtomicU64>, SentHeader);

/// An app whose heartbeat answers after a latency the test sets, with a status and a response
/// header the test can set too.
#[derive(Clone)]
pub struct HeartbeatServer {
    pub url: String,
    latency_ms: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicU64>,
    header: SentHeader,
}

impl HeartbeatServer {
    pub async fn start(latency_ms: u64) -> Self {
        let latency = Arc::new(AtomicU64::new(latency_ms));
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicU64::new(0));
        let header: SentHeader = Arc::new(Mutex::new(None));
        let state = (
            latency.clone(),
            status.clone(),
            hits.clone(),
            header.clone(),
        );
        let router = Router::new()
            .fallback(
                |State((latency, status, hits, header)): State<HeartbeatState>| async move {
                    tokio::time::sleep(Duration::from_millis(latency.load(Ordering::SeqCst))).await;
                    hits.fetch_add(1, Ordering::SeqCst);
                    let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                    let mut headers = HeaderMap::new();
                    if let Some((name, value)) = header.lock().unwrap().clone() {
                        headers.insert(
                            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                            value.parse().unwrap(),
                        );
                    }
                    (code, headers, "ok")
                },
            )
            .with_state(state);
        let base = serve(router).await;
        HeartbeatServer {
            url: format!("{base}/autoscalebot/heartbeat/"),
            latency_ms: latency,
            status,
            hits,
            header,
        }
    }

    /// Sends `name: value` with every answer from now on.
    pub fn set_header(&self, name: &str, value: &str) {
        *self.header.lock().unwrap() = Some((name.to_string(), value.to_string()));
    }

    /// Stops sending the header.
    pub fn clear_header(&self) {
        *self.header.lock().unwrap() = None;
    }

    pub fn set_latency_ms(&self, latency_ms: u64) {
        self.latency_ms.store(latency_ms, Ordering::SeqCst);
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits until `count` more heartbeats than so far have been served.
    pub async fn wait_for_more(&self, count: u64) {
        let hits = self.hits();
        wait_until(&format!("{count} more heartbeats"), || {
            self.hits() >= hits + count
        })
        .await;
    }
}
