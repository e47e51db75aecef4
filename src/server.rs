//! The HTTP server (axum) on `http_port` or `$PORT`: `POST /logs` (a Heroku HTTPS log drain),
//! `GET /metrics` (Prometheus text), `GET /healthz` and `GET /` (the status page).
//!
//! It is an edge, yet it lives in the brain crate rather than in `backends/`: every route
//! reads or fills the brain's own state ([`Telemetry`], [`AppSettings::effective`], the
//! engine's observations), so in `backends/` it would need those types moved or mirrored.
//! It stays a thin shell: parsing is in `router_log.rs`, counting in `metrics.rs`, the page
//! in `server/status_page.rs`. Handlers never hold a lock across an await and never wait on
//! the loop; bad input is answered (401, 413, 415) and counted, never fatal.

mod status_page;

pub use status_page::render as render_status_page;

use crate::router_log::parse_batch;
use crate::telemetry::Telemetry;
use autoscalebot_backends::Secret;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A drain body larger than this is refused with 413. Logplex batches are far smaller; the cap
/// only stops a misdirected or hostile upload from using the worker's memory.
pub const MAX_DRAIN_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How many recent `Logplex-Frame-Id`s are remembered to drop retried batches.
const REMEMBERED_FRAME_IDS: usize = 4096;

#[derive(Clone)]
struct ServerState {
    telemetry: Telemetry,
    drain_password: Option<Secret>,
    seen_frames: Arc<Mutex<RecentIds>>,
}

/// The last N frame ids, in arrival order, with a set for lookups.
#[derive(Default)]
struct RecentIds {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl RecentIds {
    /// `false` when `id` was already seen.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        while self.order.len() > REMEMBERED_FRAME_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// The routes, for [`serve`] and for in-process tests.
pub fn router(telemetry: Telemetry) -> Router {
    let state = ServerState {
        drain_password: telemetry.settings().log_drain_password.clone(),
        telemetry,
        seen_frames: Arc::default(),
    };
    Router::new()
        .route(
            "/logs",
            post(drain).layer(DefaultBodyLimit::max(MAX_DRAIN_BODY_BYTES)),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/", get(status_page))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    telemetry: Telemetry,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(telemetry))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// Checks `Authorization: Basic …` against the drain password. The user name is not checked:
/// Heroku sends whatever the drain URL holds, and only the password is a secret.
fn authorised(headers: &HeaderMap, password: &Secret) -> bool {
    use base64::Engine;
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&byte| byte == b':') else {
        return false;
    };
    constant_time_eq::constant_time_eq(&decoded[colon + 1..], password.expose().as_bytes())
}

async fn drain(State(state): State<ServerState>, headers: HeaderMap, body: Bytes) -> Response {
    let metrics = &state.telemetry.metrics;
    let Some(password) = &state.drain_password else {
        return text(
            StatusCode::NOT_FOUND,
            "The log drain is off: set log_drain_password to turn it on.\n",
        );
    };
    if !authorised(&headers, password) {
        metrics.drain_batch("unauthorized");
        tracing::warn!("Log drain request refused: wrong or missing basic-auth password.");
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            "The drain URL needs the password of log_drain_password (https://user:PASSWORD@host/logs).\n",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"autoscalebot log drain\""),
        );
        return response;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/logplex-1");
    if !content_type.starts_with("application/logplex-1") {
        metrics.drain_batch("wrong_content_type");
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expected Content-Type: application/logplex-1, got {content_type:?}.\n"),
        );
    }
    let frame_id = headers
        .get("logplex-frame-id")
        .and_then(|value| value.to_str().ok());
    if let Some(id) = frame_id {
        if !state.seen_frames.lock().unwrap().insert(id) {
            metrics.drain_batch("duplicate");
            tracing::debug!(frame_id = id, "Duplicate log drain batch ignored.");
            return StatusCode::NO_CONTENT.into_response();
        }
    }
    let mut requests = Vec::new();
    let mut problems = Vec::new();
    let counts = parse_batch(
        &body,
        Some(state.telemetry.settings().heartbeat_url.path()),
        &mut requests,
        &mut problems,
    );
    let declared = headers
        .get("logplex-msg-count")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|declared| declared != counts.frames) {
        tracing::debug!(
            declared,
            found = counts.frames,
            "Logplex-Msg-Count differs from the frames found."
        );
    }
    if counts.malformed_frames > 0 || counts.bad_router_lines > 0 {
        tracing::warn!(
            frame_id = frame_id.unwrap_or("-"),
            malformed_frames = counts.malformed_frames,
            bad_router_lines = counts.bad_router_lines,
            used = counts.router_lines,
            first_problems = %problems.join("; "),
            "Skipped bad input in a log drain batch; used the rest."
        );
    }
    metrics.drain_batch("accepted");
    state.telemetry.ingest(&counts, requests);
    StatusCode::NO_CONTENT.into_response()
}

async fn metrics(State(state): State<ServerState>) -> Response {
    let body = state.telemetry.metrics.encode();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

async fn healthz(State(state): State<ServerState>) -> Response {
    let since = state.telemetry.since_last_beat();
    let limit = state.telemetry.stall_limit();
    if since <= limit {
        text(
            StatusCode::OK,
            format!("ok: last beat {:.1} s ago\n", since.as_secs_f64()),
        )
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stalled: no beat for {:.1} s (limit {:.1} s)\n",
                since.as_secs_f64(),
                limit.as_secs_f64()
            ),
        )
    }
}

async fn status_page(State(state): State<ServerState>) -> Html<String> {
    Html(status_page::render(&state.telemetry.snapshot()))
}

#[cfg(test)]
mod tests;
