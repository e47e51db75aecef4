//! The worker's one HTTP server (axum) on `http_port` or `$PORT`, for every app it scales:
//! `POST /logs/{app}` (that app's Heroku HTTPS log drain; `POST /logs` with one app),
//! `GET /metrics` (OpenMetrics, or Prometheus' classic text when asked for; every app's series), `GET /healthz`, `GET /` (the status
//! page of the only app, else an index of all) and `GET /apps/{app}/{process_type}`.
//!
//! It is an edge, yet it lives in the brain crate rather than in `backends/`: every route
//! reads or fills the brain's own state ([`Telemetry`], [`AppSettings::effective`], the
//! engine's observations), so in `backends/` it would need those types moved or mirrored.
//! It stays a thin shell: parsing is in `router_log.rs`, counting in `metrics.rs`, the pages
//! in `server/status_page.rs`. Handlers never hold a lock across an await and never wait on
//! the loop; bad input is answered (401, 404, 408, 413, 415, 429) and counted, never fatal.
//!
//! With `http_password`, the status pages and `/metrics` ask for it (`server/guard.rs`);
//! `/healthz` stays open and then says only ok or stalled. The connection limits are in
//! `server/listen.rs`.
//!
//! [`AppSettings::effective`]: crate::settings::AppSettings::effective

mod guard;
mod listen;
mod status_page;

pub use listen::Limits;
pub use status_page::render as render_status_page;

use crate::metrics::WorkerMetrics;
use crate::router_log::l2met::Sample;
use crate::router_log::{parse_batch_with_samples, IngestCounts, Request};
use crate::telemetry::Telemetry;
use autoscalebot_backends::Secret;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A drain body larger than this is refused with 413. Logplex batches are far smaller; the cap
/// only stops a misdirected or hostile upload from using the worker's memory.
pub const MAX_DRAIN_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How many recent `Logplex-Frame-Id`s are remembered to drop retried batches.
const REMEMBERED_FRAME_IDS: usize = 4096;

/// Every app the server shows, indexed for its routes; built once at start.
struct Apps {
    /// In the order of the settings.
    entries: Vec<Telemetry>,
    /// `(app, process_type)`, lowercased → the entry, for `/apps/{app}/{process_type}`.
    pages: HashMap<(String, String), usize>,
    /// `heroku_app_name`, lowercased → that app's drain.
    drains: HashMap<String, Drain>,
    metrics: Arc<WorkerMetrics>,
    /// `http_password`: asked by the status pages and `/metrics`.
    password: Option<Secret>,
    /// Wrong passwords by source, for the pages and every drain.
    failures: guard::Failures,
    /// Reading a request's body and answering it take no longer.
    request_timeout: Duration,
}

/// Who may read the status pages and `/metrics`, and how long a request may take.
#[derive(Clone, Default)]
pub struct Access {
    /// `http_password`; `None`: anyone who reaches the server.
    pub password: Option<Secret>,
    pub limits: Limits,
}

/// One Heroku app's log drain: its entries (process types) and the frame ids it has seen.
#[derive(Default)]
struct Drain {
    entries: Vec<usize>,
    seen_frames: Mutex<RecentIds>,
}

type ServerState = Arc<Apps>;

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

/// The routes over every app of the worker (`apps` share one [`WorkerMetrics`]), open to
/// anyone: for in-process tests.
pub fn router(apps: Vec<Telemetry>) -> Router {
    router_with(apps, &Access::default())
}

/// The routes over every app of the worker (`apps` share one [`WorkerMetrics`]), for
/// [`serve`] and for in-process tests.
pub fn router_with(apps: Vec<Telemetry>, access: &Access) -> Router {
    assert!(!apps.is_empty(), "the server shows at least one app");
    let registry = apps[0].metrics.worker().clone();
    let mut pages = HashMap::new();
    let mut drains: HashMap<String, Drain> = HashMap::new();
    for (index, telemetry) in apps.iter().enumerate() {
        let settings = telemetry.settings();
        let name = settings.app_name.to_lowercase();
        pages.insert((name.clone(), settings.process_type.to_lowercase()), index);
        drains.entry(name).or_default().entries.push(index);
    }
    let state = Arc::new(Apps {
        entries: apps,
        pages,
        drains,
        metrics: registry,
        password: access.password.clone(),
        failures: guard::Failures::default(),
        request_timeout: access.limits.request_timeout,
    });
    let drain_limit = || DefaultBodyLimit::max(MAX_DRAIN_BODY_BYTES);
    // The pages and metrics read no body: none is buffered for them.
    let no_body = || DefaultBodyLimit::max(0);
    let private = Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(index))
        .route("/apps/{app}/{process_type}", get(app_page))
        .layer(no_body())
        .route_layer(from_fn_with_state(state.clone(), require_credential));
    Router::new()
        .route("/logs", post(drain_only_app).layer(drain_limit()))
        .route("/logs/{app}", post(drain_of_app).layer(drain_limit()))
        .route("/healthz", get(healthz).layer(no_body()))
        .merge(private)
        .layer(from_fn_with_state(state.clone(), answer_in_time))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled, with the limits of [`Access::limits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    apps: Vec<Telemetry>,
    access: Access,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let metrics = apps[0].metrics.worker().clone();
    let router = router_with(apps, &access);
    listen::serve(listener, router, access.limits, metrics, shutdown).await
}

/// Outermost: the answer must come within the request timeout (else 408 and the connection
/// closed, since the rest of the body is never read), every refusal is counted, and every
/// answer carries the security headers. The pages run no script: the policy allows none, and
/// inline styles only (the pages' one style sheet and the chart's colours are inline).
async fn answer_in_time(
    State(apps): State<ServerState>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let mut response = match tokio::time::timeout(apps.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = text(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request did not arrive within {} s.\n",
                    apps.request_timeout.as_secs_f64()
                ),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    };
    let reason = match response.status() {
        StatusCode::UNAUTHORIZED => Some("unauthorized"),
        StatusCode::REQUEST_TIMEOUT => Some("timeout"),
        StatusCode::PAYLOAD_TOO_LARGE => Some("too_large"),
        StatusCode::TOO_MANY_REQUESTS => Some("rate_limited"),
        _ => None,
    };
    if let Some(reason) = reason {
        apps.metrics.http_refused(reason);
    }
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

/// The status pages and `/metrics`: with `http_password`, only for a request that carries
/// it (basic auth with any user name, or a bearer token); a source that sent too many wrong
/// ones is answered 429 without a look at what it sent this time.
async fn require_credential(
    State(apps): State<ServerState>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let Some(password) = &apps.password else {
        return next.run(request).await;
    };
    let source = guard::source(listen::peer(request.extensions()), request.headers());
    let now = Instant::now();
    if let Some(wait) = apps.failures.refused(source, now) {
        return too_many_failures(wait);
    }
    if guard::authorised(request.headers(), password, true) {
        return next.run(request).await;
    }
    apps.failures.failed(source, now);
    tracing::debug!(
        source = ?source,
        path = %quoted(request.uri().path()),
        "HTTP request refused: wrong or missing credential."
    );
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "This page needs the password of http_password: basic auth with any user name, \
         or Authorization: Bearer PASSWORD.\n",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"autoscalebot\", charset=\"UTF-8\""),
    );
    response
}

/// 429 to a source that spent its wrong passwords, with when to come back.
fn too_many_failures(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = text(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many wrong passwords from this address: try again in {seconds} s.\n"),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits"),
    );
    response
}

/// The path of an app's page: `/apps/{app}/{process_type}`, each part percent-encoded.
pub fn app_page_path(app: &str, process_type: &str) -> String {
    let mut url = url::Url::parse("http://host/").expect("a valid base");
    url.path_segments_mut()
        .expect("an http URL has a path")
        .extend(["apps", app, process_type]);
    url.path().to_string()
}

/// A name from a request, safe to quote in an answer or a log line: at most 100 characters.
fn quoted(name: &str) -> String {
    format!("{:?}", name.chars().take(100).collect::<String>())
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// `POST /logs`: the drain of the worker's only app; with several, each has its own URL.
async fn drain_only_app(
    State(apps): State<ServerState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return refused_body(&apps, rejection),
    };
    if apps.drains.len() != 1 {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "This worker scales {} apps: give each app's drain its own URL, \
                 https://user:PASSWORD@host/logs/<heroku_app_name>.\n",
                apps.drains.len()
            ),
        );
    }
    let name = apps.drains.keys().next().expect("one app").clone();
    let source = guard::source(listen::peer(&extensions), &headers);
    drain(&apps, &name, "/logs", source, &headers, &body)
}

/// `POST /logs/{app}`: that app's drain.
async fn drain_of_app(
    State(apps): State<ServerState>,
    Path(name): Path<String>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return refused_body(&apps, rejection),
    };
    if !apps.drains.contains_key(&name.to_lowercase()) {
        apps.metrics.drain_batch_refused("unknown_app");
        let name = quoted(&name);
        tracing::warn!(app = %name, "Log drain batch refused: no such app in this worker.");
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "No app named {name} in this worker: post each app's drain to \
                 /logs/<heroku_app_name> of one of its apps.\n"
            ),
        );
    }
    let path = format!("/logs/{name}");
    let source = guard::source(listen::peer(&extensions), &headers);
    drain(&apps, &name.to_lowercase(), &path, source, &headers, &body)
}

/// The answer to a drain body that could not be read: one over [`MAX_DRAIN_BODY_BYTES`] is
/// answered 413, logged and counted as `too_large` (for the worker: the app it was meant for
/// is not trusted before the password is checked).
fn refused_body(apps: &Apps, rejection: BytesRejection) -> Response {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        apps.metrics.drain_batch_refused("too_large");
        tracing::warn!(
            limit_bytes = MAX_DRAIN_BODY_BYTES,
            "Log drain batch refused: the body is over the limit."
        );
    }
    text(status, format!("{}\n", rejection.body_text()))
}

/// One batch for the app `name` (known): checked against the password of each of its entries
/// with the drain on, and given to every entry whose password it carries. A `source` that
/// sent too many wrong passwords is answered 429 unread; a good password never spends its
/// budget, so a flood from elsewhere never holds back the real drain.
fn drain(
    apps: &Apps,
    name: &str,
    path: &str,
    source: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let app = &apps.drains[name];
    let on: Vec<&Telemetry> = app
        .entries
        .iter()
        .map(|&index| &apps.entries[index])
        .filter(|telemetry| telemetry.settings().drain.log_drain_password.is_some())
        .collect();
    if on.is_empty() {
        return text(
            StatusCode::NOT_FOUND,
            "The log drain is off: set log_drain_password to turn it on.\n",
        );
    }
    let count = |entries: &[&Telemetry], result: &'static str| {
        for telemetry in entries {
            telemetry.metrics.drain_batch(result);
        }
    };
    let now = Instant::now();
    if let Some(wait) = apps.failures.refused(source, now) {
        count(&on, "rate_limited");
        return too_many_failures(wait);
    }
    let takers: Vec<&Telemetry> = on
        .iter()
        .copied()
        .filter(|telemetry| {
            let password = telemetry.settings().drain.log_drain_password.as_ref();
            password.is_some_and(|password| guard::authorised(headers, password, false))
        })
        .collect();
    if takers.is_empty() {
        apps.failures.failed(source, now);
        count(&on, "unauthorized");
        tracing::warn!(
            app = name,
            "Log drain request refused: wrong or missing basic-auth password."
        );
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            format!(
                "The drain URL needs the password of log_drain_password (https://user:PASSWORD@host{path}).\n"
            ),
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
        count(&takers, "wrong_content_type");
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expected Content-Type: application/logplex-1, got {content_type:?}.\n"),
        );
    }
    let frame_id = headers
        .get("logplex-frame-id")
        .and_then(|value| value.to_str().ok());
    if let Some(id) = frame_id {
        if !app.seen_frames.lock().unwrap().insert(id) {
            count(&takers, "duplicate");
            tracing::debug!(
                app = name,
                frame_id = id,
                "Duplicate log drain batch ignored."
            );
            return StatusCode::NO_CONTENT.into_response();
        }
    }
    // Each entry counts its own heartbeat lines, so parse once per heartbeat path.
    // The l2met samples are the same for every entry: collected by the first parse only.
    let mut parsed: Vec<(&str, IngestCounts, Vec<Request>)> = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    for telemetry in &takers {
        let heartbeat_path = telemetry.settings().heartbeat.url.path();
        if parsed.iter().any(|(path, _, _)| *path == heartbeat_path) {
            continue;
        }
        let mut requests = Vec::new();
        let mut problems = Vec::new();
        let collect = parsed.is_empty().then_some(&mut samples);
        let counts = parse_batch_with_samples(
            body,
            Some(heartbeat_path),
            &mut requests,
            collect,
            &mut problems,
        );
        if parsed.is_empty() {
            report_problems(name, headers, frame_id, &counts, &problems);
        }
        parsed.push((heartbeat_path, counts, requests));
    }
    for telemetry in takers {
        let heartbeat_path = telemetry.settings().heartbeat.url.path();
        let (_, counts, requests) = parsed
            .iter()
            .find(|(path, _, _)| *path == heartbeat_path)
            .expect("parsed above");
        telemetry.metrics.drain_batch("accepted");
        telemetry.ingest(counts, requests.clone());
        telemetry.ingest_samples(&samples);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Logs what a batch held that could not be used (and a message count that differs).
fn report_problems(
    app: &str,
    headers: &HeaderMap,
    frame_id: Option<&str>,
    counts: &IngestCounts,
    problems: &[String],
) {
    let declared = headers
        .get("logplex-msg-count")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|declared| declared != counts.frames) {
        tracing::debug!(
            app,
            declared,
            found = counts.frames,
            "Logplex-Msg-Count differs from the frames found."
        );
    }
    if counts.malformed_frames > 0 || counts.bad_router_lines > 0 || counts.bad_l2met_lines > 0 {
        tracing::warn!(
            app,
            frame_id = frame_id.unwrap_or("-"),
            malformed_frames = counts.malformed_frames,
            bad_router_lines = counts.bad_router_lines,
            bad_l2met_lines = counts.bad_l2met_lines,
            used = counts.router_lines,
            first_problems = %problems.join("; "),
            "Skipped bad input in a log drain batch; used the rest."
        );
    }
}

/// OpenMetrics, or the classic text format for a client whose `Accept` prefers it.
async fn metrics(State(apps): State<ServerState>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = crate::metrics::negotiate(accept);
    let body = apps.metrics.encode_as(format);
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        body,
    )
        .into_response()
}

/// The most stalled apps `/healthz` names; the rest are counted.
const MAX_STALLED_NAMED: usize = 20;

/// Open to anyone; with `http_password`, a request without it hears only ok or stalled (the
/// app names and timings are for those who may read the pages).
async fn healthz(State(apps): State<ServerState>, headers: HeaderMap) -> Response {
    let (status, message) = health(&apps);
    let told_all = apps
        .password
        .as_ref()
        .is_none_or(|password| guard::authorised(&headers, password, true));
    if told_all {
        return text(status, message);
    }
    let word = if status == StatusCode::OK {
        "ok\n"
    } else {
        "stalled\n"
    };
    text(status, word)
}

fn health(apps: &Apps) -> (StatusCode, String) {
    if let [telemetry] = apps.entries.as_slice() {
        let since = telemetry.since_last_beat();
        let limit = telemetry.stall_limit();
        return if since <= limit {
            (
                StatusCode::OK,
                format!("ok: last beat {:.1} s ago\n", since.as_secs_f64()),
            )
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "stalled: no beat for {:.1} s (limit {:.1} s)\n",
                    since.as_secs_f64(),
                    limit.as_secs_f64()
                ),
            )
        };
    }
    let mut stalled = Vec::new();
    for telemetry in &apps.entries {
        let since = telemetry.since_last_beat();
        let limit = telemetry.stall_limit();
        if since > limit {
            let settings = telemetry.settings();
            let name = format!("{}/{}", settings.app_name, settings.process_type);
            stalled.push((name, since, limit));
        }
    }
    let (healthy, message) = health_of_many(apps.entries.len(), &stalled);
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, message)
}

/// `/healthz` of a worker with several apps: ok while every loop beat within its limit, else
/// the stalled apps as `(app/type, since the last beat, limit)`, the first few named.
fn health_of_many(total: usize, stalled: &[(String, Duration, Duration)]) -> (bool, String) {
    if stalled.is_empty() {
        return (
            true,
            format!("ok: {total} apps, every loop beat within its limit\n"),
        );
    }
    let named: Vec<String> = stalled
        .iter()
        .take(MAX_STALLED_NAMED)
        .map(|(name, since, limit)| {
            format!(
                "{name} (no beat for {:.1} s, limit {:.1} s)",
                since.as_secs_f64(),
                limit.as_secs_f64()
            )
        })
        .collect();
    let more = stalled.len().saturating_sub(MAX_STALLED_NAMED);
    let tail = if more > 0 {
        format!(", and {more} more")
    } else {
        String::new()
    };
    (
        false,
        format!(
            "stalled: {} of {total} apps: {}{tail}\n",
            stalled.len(),
            named.join(", ")
        ),
    )
}

/// `GET /`: the status page of the only app, or the index of all of them.
async fn index(State(apps): State<ServerState>) -> Html<String> {
    if let [telemetry] = apps.entries.as_slice() {
        return Html(status_page::render(&telemetry.snapshot(), false));
    }
    let now = apps.entries[0].now();
    let rows: Vec<_> = apps.entries.iter().map(Telemetry::summary).collect();
    Html(status_page::render_index(&rows, now))
}

/// `GET /apps/{app}/{process_type}`: one app's status page.
async fn app_page(
    State(apps): State<ServerState>,
    Path((name, process_type)): Path<(String, String)>,
) -> Response {
    let key = (name.to_lowercase(), process_type.to_lowercase());
    match apps.pages.get(&key) {
        Some(&index) => {
            let several = apps.entries.len() > 1;
            Html(status_page::render(
                &apps.entries[index].snapshot(),
                several,
            ))
            .into_response()
        }
        None => text(
            StatusCode::NOT_FOUND,
            format!(
                "No app {}/{} in this worker: see / for the apps it scales.\n",
                quoted(&name),
                quoted(&process_type)
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
