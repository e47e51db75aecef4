//! The benchmark's far end (`bench/many_apps.sh`): on one port, the heartbeats of N apps
//! (`GET /hb/{n}`) and a Heroku-shaped formation API (`GET`/`PATCH /apps/{app}/formation/{type}`
//! with ETags and 304s), counting what the worker does. `GET /stats` answers the counts as JSON.
//!
//! Usage: `bench_target PORT APPS INTERVAL_S SLOW_EVERY` (every SLOW_EVERY-th app answers in
//! 1.5 s, so that some apps scale).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Target {
    started: Instant,
    interval_ms: u64,
    slow_every: u64,
    /// Per app: the last heartbeat, in ms since start (0: none yet), plus one.
    last_hit_ms: Vec<AtomicU64>,
    hits: AtomicU64,
    /// Heartbeats that should have come and did not: gaps longer than 1.5 intervals.
    missed: AtomicU64,
    /// The longest gap between two heartbeats of one app.
    max_gap_ms: AtomicU64,
    quantities: Vec<AtomicU32>,
    versions: Vec<AtomicU64>,
    /// (ms since start, api key) of every API call.
    calls: Mutex<Vec<(u64, String, u16)>>,
}

impl Target {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |index: usize, default: u64| {
        args.get(index)
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let port = number(1, 8900) as u16;
    let apps = number(2, 10_000) as usize;
    let interval_ms = number(3, 30) * 1000;
    let slow_every = number(4, 100);
    let target = Arc::new(Target {
        started: Instant::now(),
        interval_ms,
        slow_every,
        last_hit_ms: (0..apps).map(|_| AtomicU64::new(0)).collect(),
        hits: AtomicU64::new(0),
        missed: AtomicU64::new(0),
        max_gap_ms: AtomicU64::new(0),
        quantities: (0..apps).map(|_| AtomicU32::new(1)).collect(),
        versions: (0..apps).map(|_| AtomicU64::new(0)).collect(),
        calls: Mutex::new(Vec::new()),
    });
    let router = Router::new()
        .route("/hb/{n}", get(heartbeat))
        .route(
            "/apps/{app}/formation/{process_type}",
            get(formation).patch(formation),
        )
        .route("/stats", get(stats))
        .with_state(target);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, router).await.unwrap();
}

async fn heartbeat(State(target): State<Arc<Target>>, Path(n): Path<usize>) -> impl IntoResponse {
    let Some(last) = target.last_hit_ms.get(n) else {
        return (StatusCode::NOT_FOUND, "no such app");
    };
    let now = target.now_ms() + 1;
    let before = last.swap(now, Ordering::Relaxed);
    target.hits.fetch_add(1, Ordering::Relaxed);
    if before > 0 {
        let gap = now - before;
        target.max_gap_ms.fetch_max(gap, Ordering::Relaxed);
        if gap * 2 > target.interval_ms * 3 {
            // Each whole interval beyond the first is a beat that did not come.
            let missed = (gap + target.interval_ms / 2) / target.interval_ms - 1;
            target.missed.fetch_add(missed.max(1), Ordering::Relaxed);
        }
    }
    if target.slow_every > 0 && n as u64 % target.slow_every == 0 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    (StatusCode::OK, "ok")
}

async fn formation(
    State(target): State<Arc<Target>>,
    method: Method,
    Path((app, process_type)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let key = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_string();
    let index = app
        .strip_prefix("app-")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < target.quantities.len());
    let Some(index) = index else {
        return (StatusCode::NOT_FOUND, "no such app").into_response();
    };
    if method == Method::PATCH {
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if let Some(quantity) = parsed["quantity"].as_u64() {
            target.quantities[index].store(quantity as u32, Ordering::Relaxed);
            target.versions[index].fetch_add(1, Ordering::Relaxed);
        }
    }
    let etag = format!(
        "\"{index}-{}\"",
        target.versions[index].load(Ordering::Relaxed)
    );
    let status = if method == Method::GET
        && headers
            .get("if-none-match")
            .and_then(|value| value.to_str().ok())
            == Some(etag.as_str())
    {
        304
    } else {
        200
    };
    target
        .calls
        .lock()
        .unwrap()
        .push((target.now_ms(), format!("{key} {method}"), status));
    if status == 304 {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    let quantity = target.quantities[index].load(Ordering::Relaxed);
    (
        [("etag", etag)],
        Json(serde_json::json!({ "quantity": quantity, "type": process_type })),
    )
        .into_response()
}

/// Counts since the start, and the API calls of the last `window_s` seconds (default 60).
async fn stats(
    State(target): State<Arc<Target>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, u64>>,
) -> Json<serde_json::Value> {
    let window_ms = query.get("window_s").copied().unwrap_or(60) * 1000;
    let now = target.now_ms();
    let calls = target.calls.lock().unwrap();
    let recent: Vec<&(u64, String, u16)> = calls
        .iter()
        .filter(|(at, _, _)| *at + window_ms >= now)
        .collect();
    let mut by_key: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for (_, key, _) in &recent {
        *by_key
            .entry(key.split(' ').next().unwrap_or_default())
            .or_default() += 1;
    }
    let never_beat = target
        .last_hit_ms
        .iter()
        .filter(|last| last.load(Ordering::Relaxed) == 0)
        .count();
    Json(serde_json::json!({
        "seconds": now as f64 / 1000.0,
        "heartbeats": target.hits.load(Ordering::Relaxed),
        "apps_never_beat": never_beat,
        "beats_missed": target.missed.load(Ordering::Relaxed),
        "max_gap_ms": target.max_gap_ms.load(Ordering::Relaxed),
        "api_calls": calls.len(),
        "api_patches": calls.iter().filter(|(_, what, _)| what.ends_with("PATCH")).count(),
        "api_304": calls.iter().filter(|(_, _, status)| *status == 304).count(),
        "window_s": window_ms / 1000,
        "window_api_calls": recent.len(),
        "window_api_calls_max_per_key": by_key.values().max().copied().unwrap_or(0),
        "window_keys": by_key.len(),
    }))
}
