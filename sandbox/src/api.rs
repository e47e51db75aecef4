//! The Platform API v3 formation endpoints, as `../shared/heroku/platform-api-schema.json`
//! (`/definitions/formation`) describes them: Info (`GET /apps/{app}/formation/{type}`), List
//! (`GET /apps/{app}/formation`), Update (`PATCH /apps/{app}/formation/{type}`) and Batch
//! Update (`PATCH /apps/{app}/formation`), plus `GET /account/rate-limits`. The other
//! resources Heroku's CLI reads on its way (the app, the account, dynos, log drains) are in
//! `resources.rs`, behind the same gate.
//!
//! An update takes what Heroku takes, which is more than the schema says: the quantity as a
//! number or a string (`"2"`, and `"+1"`/`"-1"` relative to the current quantity, as `heroku
//! ps:scale web+1` sends), the size as `dyno_size` (`{"name": …}` or `{"id": …}`) or the
//! deprecated `size` (a name, any case, as `heroku ps:type` sends); an unknown field, size or
//! quantity is refused with 422 `invalid_params` and changes nothing.
//!
//! Every call passes one gate, in Heroku's order: an injected fault (if one hits), the `Accept`
//! version header (406 `not_acceptable`), the Bearer token (401 `unauthorized`), the token
//! pool (429 `rate_limit`). Every answer carries `Request-Id`, and `RateLimit-Remaining` once
//! the caller is known. Every call is recorded (never the token) for tests and the admin API.
//! This module owns the formation's quantity; starting and stopping dynos is `dyno.rs`'s job.

use crate::faults::{Action, Faults};
use crate::rate_limit::TokenPool;
use crate::DynoPool;
use autoscalebot_backends::Secret;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// The media type and version Heroku requires in `Accept`.
pub const ACCEPT_V3: &str = "application/vnd.heroku+json; version=3";
/// The calls kept for `GET /__sandbox/calls`.
const CALLS_KEPT: usize = 5000;
/// What `PATCH /apps/{app}/formation/{type}` takes, and each item of a batch update.
const UPDATE_FIELDS: &[&str] = &["quantity", "dyno_size", "size"];
const BATCH_UPDATE_FIELDS: &[&str] = &["type", "quantity", "dyno_size", "size"];
/// A hanging call gives up after this long, if the sandbox is still running.
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// Dyno sizes the sandbox knows: Heroku's names, made-up ids, and the most dynos of each size
/// one process type may run (Eco and Basic: one).
const DYNO_SIZES: &[(&str, &str, Option<u32>)] = &[
    ("Eco", "a3b4c5d6-0000-4000-8000-000000000001", Some(1)),
    ("Basic", "a3b4c5d6-0000-4000-8000-000000000002", Some(1)),
    ("Standard-1X", "a3b4c5d6-0000-4000-8000-000000000003", None),
    ("Standard-2X", "a3b4c5d6-0000-4000-8000-000000000004", None),
    (
        "Performance-M",
        "a3b4c5d6-0000-4000-8000-000000000005",
        None,
    ),
    (
        "Performance-L",
        "a3b4c5d6-0000-4000-8000-000000000006",
        None,
    ),
];

/// One call the API received and what it answered. The token is never kept: only whether it
/// was the right one.
#[derive(Debug, Clone, Serialize)]
pub struct ApiCall {
    pub request_id: String,
    /// Milliseconds since the sandbox started.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    /// The `Authorization` header was `Bearer <the sandbox's key>`.
    pub authorized: bool,
    pub request_body: String,
    /// `None` when a fault dropped or hung the call.
    pub status: Option<u16>,
    pub response_body: String,
    pub rate_limit_remaining: Option<u32>,
    pub retry_after: Option<String>,
    /// The injected fault that hit this call: "status 503", "slow 2000 ms", "hang", "drop".
    pub fault: Option<String>,
}

struct FormationRecord {
    quantity: u32,
    size: &'static str,
    updated_at: String,
}

/// The platform's state behind the API.
pub struct Platform {
    pub app: String,
    pub app_id: String,
    pub process_type: String,
    pub formation_id: String,
    pub(crate) created_at: String,
    pub(crate) command: String,
    /// The app's own router, `http://127.0.0.1:PORT/`: where `web_url` sends a browser.
    pub(crate) web_url: String,
    /// The one account the sandbox knows: the key's owner and the app's.
    pub(crate) owner_id: String,
    pub(crate) drains: Mutex<Vec<crate::resources::LogDrain>>,
    api_key: Secret,
    pub(crate) max_quantity: u32,
    started: Instant,
    formation: Mutex<FormationRecord>,
    quantity_tx: watch::Sender<u32>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) tokens: Mutex<TokenPool>,
    calls: Mutex<VecDeque<ApiCall>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) dynos: Arc<DynoPool>,
    /// The app's Machines, as Fly's Machines API shows them.
    pub(crate) fly: crate::fly::Machines,
    /// The app as a Render service.
    pub(crate) render: crate::render::Service,
}

/// What [`Platform::new`] needs.
pub struct PlatformConfig {
    pub app: String,
    pub process_type: String,
    /// The app's router URL, shown as the app's `web_url`.
    pub web_url: String,
    pub api_key: Secret,
    pub quantity: u32,
    pub max_quantity: u32,
    pub rate_limit_tokens: u32,
}

impl Platform {
    pub fn new(
        config: PlatformConfig,
        dynos: Arc<DynoPool>,
        shutdown: CancellationToken,
    ) -> (Arc<Platform>, watch::Receiver<u32>) {
        let now = timestamp();
        let (quantity_tx, quantity_rx) = watch::channel(config.quantity);
        let fly =
            crate::fly::Machines::new(&config.process_type, config.quantity, config.max_quantity);
        let platform = Platform {
            app_id: uuid::Uuid::new_v4().to_string(),
            formation_id: uuid::Uuid::new_v4().to_string(),
            command: format!("bin/{}", config.process_type),
            web_url: format!("{}/", config.web_url.trim_end_matches('/')),
            owner_id: uuid::Uuid::new_v4().to_string(),
            drains: Mutex::new(Vec::new()),
            app: config.app,
            process_type: config.process_type,
            created_at: now.clone(),
            api_key: config.api_key,
            max_quantity: config.max_quantity,
            started: Instant::now(),
            formation: Mutex::new(FormationRecord {
                quantity: config.quantity,
                size: "Standard-1X",
                updated_at: now,
            }),
            quantity_tx,
            faults: Mutex::new(Faults::default()),
            tokens: Mutex::new(TokenPool::new(config.rate_limit_tokens, Instant::now())),
            calls: Mutex::new(VecDeque::new()),
            shutdown,
            dynos,
            fly,
            render: crate::render::Service::new(),
        };
        (Arc::new(platform), quantity_rx)
    }

    pub fn quantity(&self) -> u32 {
        self.formation.lock().unwrap().quantity
    }

    pub fn calls(&self) -> Vec<ApiCall> {
        self.calls.lock().unwrap().iter().cloned().collect()
    }

    pub fn rate_limit_remaining(&self) -> u32 {
        self.tokens.lock().unwrap().remaining(Instant::now())
    }

    /// The formation's dyno size now.
    pub(crate) fn size(&self) -> &'static str {
        self.formation.lock().unwrap().size
    }

    fn record(&self, call: ApiCall) {
        let mut calls = self.calls.lock().unwrap();
        if calls.len() == CALLS_KEPT {
            calls.pop_front();
        }
        calls.push_back(call);
    }

    /// Heroku's formation object.
    fn formation_json(&self) -> Value {
        let record = self.formation.lock().unwrap();
        let size_id = size_by_name(record.size).map_or("", |size| size.1);
        json!({
            "app": { "id": self.app_id, "name": self.app },
            "command": self.command,
            "created_at": self.created_at,
            "dyno_size": { "id": size_id, "name": record.size },
            "id": self.formation_id,
            "quantity": record.quantity,
            "size": record.size,
            "type": self.process_type,
            "updated_at": record.updated_at,
        })
    }

    pub(crate) fn find_app(&self, app: &str) -> Result<(), ApiError> {
        if app == self.app || app == self.app_id {
            Ok(())
        } else {
            Err(ApiError::not_found("Couldn't find that app."))
        }
    }

    fn find_formation(&self, identity: &str) -> Result<(), ApiError> {
        if identity == self.process_type || identity == self.formation_id {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "Couldn't find that process type ({identity})."
            )))
        }
    }

    /// Checks one update against the formation as it is now and returns what to set:
    /// `fields` are the ones this kind of update may carry.
    fn check_update(
        &self,
        update: &Value,
        fields: &[&str],
    ) -> Result<(Option<u32>, Option<&'static str>), ApiError> {
        let Some(update) = update.as_object() else {
            return Err(ApiError::invalid("The update must be a JSON object."));
        };
        refuse_unknown_fields(update, fields)?;
        let size = match (update.get("dyno_size"), update.get("size")) {
            (Some(wanted), _) => Some(dyno_size(wanted)?),
            (None, Some(name)) => Some(size_named(name)?),
            (None, None) => None,
        };
        let current = self.quantity();
        let quantity = match update.get("quantity") {
            None => None,
            Some(value) => Some(parse_quantity(value, current).map_err(|message| {
                ApiError::invalid(format!("{message} ({})", self.process_type))
            })?),
        };
        let size_after = size.unwrap_or(self.size());
        let quantity_after = quantity.unwrap_or(current);
        let size_limit = size_by_name(size_after).and_then(|size| size.2);
        let limit = size_limit
            .unwrap_or(self.max_quantity)
            .min(self.max_quantity);
        if quantity_after > limit {
            return Err(ApiError::invalid(format!(
                "Cannot update to more than {limit} {size_after} size dynos per process type."
            )));
        }
        Ok((quantity, size))
    }

    pub(crate) fn apply(&self, quantity: Option<u32>, size: Option<&'static str>) {
        let mut record = self.formation.lock().unwrap();
        if let Some(size) = size {
            record.size = size;
        }
        if let Some(quantity) = quantity {
            if quantity != record.quantity {
                tracing::info!(from = record.quantity, to = quantity, process_type = %self.process_type, "Formation changed.");
            }
            record.quantity = quantity;
            self.quantity_tx.send_replace(quantity);
        }
        record.updated_at = timestamp();
    }
}

fn size_by_name(name: &str) -> Option<&'static (&'static str, &'static str, Option<u32>)> {
    DYNO_SIZES.iter().find(|size| size.0 == name)
}

/// A size by name, in any case, as `heroku ps:type standard-2x` sends it.
fn size_named(name: &Value) -> Result<&'static str, ApiError> {
    let found = name.as_str().and_then(|name| {
        DYNO_SIZES
            .iter()
            .find(|size| size.0.eq_ignore_ascii_case(name.trim()))
    });
    found.map(|size| size.0).ok_or_else(|| {
        let names: Vec<&str> = DYNO_SIZES.iter().map(|size| size.0).collect();
        ApiError::invalid(format!(
            "No such dyno size ({name}): expected one of {}.",
            names.join(", ")
        ))
    })
}

/// `dyno_size`: `{"name": …}` or `{"id": …}`.
fn dyno_size(wanted: &Value) -> Result<&'static str, ApiError> {
    if let Some(name) = wanted.get("name") {
        return size_named(name);
    }
    let id = wanted.get("id").and_then(Value::as_str);
    DYNO_SIZES
        .iter()
        .find(|size| id == Some(size.1))
        .map(|size| size.0)
        .ok_or_else(|| ApiError::invalid(format!("Couldn't find that dyno size ({wanted}).")))
}

/// Refuses a field the update does not take, naming it and the ones it does.
pub(crate) fn refuse_unknown_fields(
    object: &serde_json::Map<String, Value>,
    fields: &[&str],
) -> Result<(), ApiError> {
    match object.keys().find(|key| !fields.contains(&key.as_str())) {
        Some(unknown) => Err(ApiError::invalid(format!(
            "Unknown field \"{unknown}\": expected {}.",
            fields.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A quantity as Heroku takes it: a whole number, or a string holding one (`"2"`), or a
/// string with a sign (`"+1"`, `"-2"`) that adds to or removes from `current`. The result
/// is never below 0: a removal past 0 is refused, not clamped, so nobody stops every dyno
/// by a typo.
pub fn parse_quantity(value: &Value, current: u32) -> Result<u32, String> {
    let invalid = || {
        format!(
            "Invalid quantity {value}: expected a whole number of dynos, 0 or more, \
             or \"+N\"/\"-N\" to add or remove dynos"
        )
    };
    if let Some(number) = value.as_u64() {
        return u32::try_from(number).map_err(|_| invalid());
    }
    let text = value.as_str().ok_or_else(invalid)?.trim();
    let (sign, digits) = match text.chars().next() {
        Some(sign @ ('+' | '-')) => (Some(sign), &text[1..]),
        _ => (None, text),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    let number: u32 = digits.parse().map_err(|_| invalid())?;
    match sign {
        None => Ok(number),
        Some('+') => current.checked_add(number).ok_or_else(invalid),
        _ => current.checked_sub(number).ok_or_else(|| {
            format!("Cannot remove {number} dynos from {current}: a quantity is 0 or more")
        }),
    }
}

pub(crate) fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Heroku's error answer: `{"id": "…", "message": "…"}`.
pub fn heroku_error(status: StatusCode, id: &str, message: &str) -> Response {
    (status, Json(json!({ "id": id, "message": message }))).into_response()
}

/// Whose API a call is for, from its path: each platform shapes its errors its own way and has
/// its own gate. Fly's Machines API lives under `/v1/apps`, Render's under `/v1/services`, and
/// Heroku's everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Heroku,
    Fly,
    Render,
}

impl Dialect {
    pub fn of(path: &str) -> Dialect {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/v1/apps") {
            Dialect::Fly
        } else if under("/v1/services") {
            Dialect::Render
        } else {
            Dialect::Heroku
        }
    }

    /// The platform's error answer: Heroku's and Render's `{"id", "message"}`, Fly's
    /// `{"error"}` (its `ErrorResponse`).
    pub fn error(self, status: StatusCode, id: &str, message: &str) -> Response {
        match self {
            Dialect::Heroku => heroku_error(status, id, message),
            Dialect::Fly => (status, Json(json!({ "error": message }))).into_response(),
            Dialect::Render => {
                (status, Json(json!({ "id": id, "message": message }))).into_response()
            }
        }
    }

    fn unauthorized(self) -> &'static str {
        match self {
            Dialect::Heroku => "Invalid credentials provided.",
            Dialect::Fly => "Authenticate: token validation error",
            Dialect::Render => "Authorization information is missing or invalid.",
        }
    }
}

/// An error the endpoints answer, as Heroku shapes it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    id: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            id: "not_found",
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            id: "invalid_params",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        heroku_error(self.status, self.id, &self.message)
    }
}

/// Each platform's messages for the errors a fault can inject.
fn fault_message(dialect: Dialect, status: u16) -> &'static str {
    match status {
        401 => dialect.unauthorized(),
        429 if dialect == Dialect::Fly => "rate limit exceeded",
        429 if dialect == Dialect::Render => "Rate limit has been surpassed.",
        403 => "You do not have access to the app.",
        404 => "Couldn't find that app.",
        429 => "Your account reached the API rate limit\nPlease wait a few minutes before making new requests",
        503 => "The API is temporarily unavailable. Please try again shortly.",
        500..=599 => "Internal server error.",
        _ => "Injected failure.",
    }
}

/// The formation API's axum app, gate included, with the admin endpoints beside it.
pub fn app(platform: Arc<Platform>) -> axum::Router {
    let formation = axum::Router::new()
        .route("/apps/{app}/formation", get(list).patch(batch_update))
        .route("/apps/{app}/formation/{formation}", get(info).patch(update))
        .route("/account/rate-limits", get(rate_limits))
        .merge(crate::resources::routes())
        .merge(crate::fly::routes())
        .merge(crate::render::routes())
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(no_such_endpoint)
        .layer(axum::middleware::from_fn_with_state(platform.clone(), gate))
        .with_state(platform.clone());
    crate::admin::routes(platform).merge(formation)
}

async fn no_such_endpoint(uri: axum::http::Uri) -> Response {
    let dialect = Dialect::of(uri.path());
    if dialect != Dialect::Heroku {
        return dialect.error(StatusCode::NOT_FOUND, "not_found", "Not found.");
    }
    heroku_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "The requested API endpoint was not found. Are you using the right HTTP verb (i.e. `GET` vs. `POST`), and did you specify your intended version with the `Accept` header?",
    )
}

async fn list(
    State(platform): State<Arc<Platform>>,
    Path(app): Path<String>,
) -> Result<Response, ApiError> {
    platform.find_app(&app)?;
    Ok(Json(json!([platform.formation_json()])).into_response())
}

async fn info(
    State(platform): State<Arc<Platform>>,
    Path((app, formation)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    platform.find_app(&app)?;
    platform.find_formation(&formation)?;
    Ok(Json(platform.formation_json()).into_response())
}

pub(crate) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError {
        status: StatusCode::BAD_REQUEST,
        id: "bad_request",
        message: "Invalid JSON in the request body.".into(),
    })
}

async fn update(
    State(platform): State<Arc<Platform>>,
    Path((app, formation)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    platform.find_app(&app)?;
    platform.find_formation(&formation)?;
    let (quantity, size) = platform.check_update(&parse_body(&body)?, UPDATE_FIELDS)?;
    platform.apply(quantity, size);
    Ok(Json(platform.formation_json()).into_response())
}

async fn batch_update(
    State(platform): State<Arc<Platform>>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    platform.find_app(&app)?;
    let request = parse_body(&body)?;
    if let Some(request) = request.as_object() {
        refuse_unknown_fields(request, &["updates"])?;
    }
    let updates = request
        .get("updates")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::invalid("Expected {\"updates\": [{\"type\": …, \"quantity\": …}]}.")
        })?;
    // Check every update before applying any, so a bad batch changes nothing.
    let mut checked = Vec::new();
    for update in updates {
        let identity = update
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("Each update needs a \"type\"."))?;
        platform.find_formation(identity)?;
        checked.push(platform.check_update(update, BATCH_UPDATE_FIELDS)?);
    }
    for (quantity, size) in &checked {
        platform.apply(*quantity, *size);
    }
    let formations: Vec<Value> = if checked.is_empty() {
        Vec::new()
    } else {
        vec![platform.formation_json()]
    };
    Ok(Json(Value::Array(formations)).into_response())
}

async fn rate_limits(State(platform): State<Arc<Platform>>) -> Response {
    Json(json!({ "remaining": platform.rate_limit_remaining() })).into_response()
}

/// Put into each request by the serve loop: tells the connection to close without an answer.
#[derive(Clone)]
pub struct DropConnection(pub Arc<Notify>);

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// The gate in front of every formation call; see the module doc.
async fn gate(State(platform): State<Arc<Platform>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let request_id = uuid::Uuid::new_v4().to_string();
    let expected_auth = format!("Bearer {}", platform.api_key.expose());
    let authorized = parts
        .headers
        .get("authorization")
        .is_some_and(|value| value.as_bytes() == expected_auth.as_bytes());
    let mut call = ApiCall {
        request_id: request_id.clone(),
        at_ms: platform.started.elapsed().as_millis() as u64,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        accept: header(&parts.headers, "accept"),
        content_type: header(&parts.headers, "content-type"),
        user_agent: header(&parts.headers, "user-agent"),
        authorized,
        request_body: String::from_utf8_lossy(&body).into_owned(),
        status: None,
        response_body: String::new(),
        rate_limit_remaining: None,
        retry_after: None,
        fault: None,
    };

    let fault = platform
        .faults
        .lock()
        .unwrap()
        .hit(parts.method.as_str(), fastrand::f64());
    let mut response = match fault {
        Some(Action::Status {
            status,
            id,
            retry_after,
        }) => {
            call.fault = Some(format!("status {status}"));
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let dialect = Dialect::of(&call.path);
            let mut response = dialect.error(code, &id, fault_message(dialect, status));
            if let Some(after) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(after.as_secs()));
            }
            response
        }
        Some(Action::Hang) => {
            call.fault = Some("hang".into());
            tracing::info!(method = %call.method, path = %call.path, "Injected fault: hanging this call.");
            platform.record(call.clone());
            tokio::select! {
                _ = platform.shutdown.cancelled() => {}
                _ = tokio::time::sleep(HANG_LIMIT) => {}
            }
            drop_connection(&parts.extensions).await
        }
        Some(Action::Drop) => {
            call.fault = Some("drop".into());
            tracing::info!(method = %call.method, path = %call.path, "Injected fault: dropping the connection.");
            platform.record(call.clone());
            drop_connection(&parts.extensions).await
        }
        Some(Action::Slow(delay)) => {
            call.fault = Some(format!("slow {} ms", delay.as_millis()));
            tokio::select! {
                _ = platform.shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
            answer(
                &platform,
                &mut call,
                Request::from_parts(parts, Body::from(body)),
                next,
            )
            .await
        }
        None => {
            answer(
                &platform,
                &mut call,
                Request::from_parts(parts, Body::from(body)),
                next,
            )
            .await
        }
    };

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", value);
    }
    if let Some(remaining) = call.rate_limit_remaining {
        response
            .headers_mut()
            .insert("ratelimit-remaining", HeaderValue::from(remaining));
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    call.status = Some(parts.status.as_u16());
    call.response_body = String::from_utf8_lossy(&bytes).into_owned();
    call.retry_after = header(&parts.headers, "retry-after");
    let level_is_info = call.method != "GET" || parts.status.as_u16() >= 400;
    if level_is_info {
        tracing::info!(method = %call.method, path = %call.path, status = parts.status.as_u16(), remaining = ?call.rate_limit_remaining, request_id = %call.request_id, fault = ?call.fault, "API call.");
    } else {
        tracing::debug!(method = %call.method, path = %call.path, status = parts.status.as_u16(), remaining = ?call.rate_limit_remaining, request_id = %call.request_id, "API call.");
    }
    platform.record(call);
    Response::from_parts(parts, Body::from(bytes))
}

/// Closes the connection without an answer, through the serve loop; never returns.
async fn drop_connection(extensions: &axum::http::Extensions) -> Response {
    if let Some(DropConnection(kill)) = extensions.get::<DropConnection>() {
        kill.notify_one();
    }
    std::future::pending::<Response>().await
}

/// Version header, token, token pool, then the endpoint.
async fn answer(platform: &Platform, call: &mut ApiCall, request: Request, next: Next) -> Response {
    let dialect = Dialect::of(&call.path);
    if dialect != Dialect::Heroku {
        // Fly and Render want no version header, and count calls in their own endpoints.
        if !call.authorized {
            return dialect.error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                dialect.unauthorized(),
            );
        }
        return next.run(request).await;
    }
    let accepted = call.accept.as_deref().is_some_and(|accept| {
        accept.contains("application/vnd.heroku+json") && accept.contains("version=3")
    });
    if !accepted {
        return heroku_error(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "Please specify a version along with Heroku's API MIME type. For example, `Accept: application/vnd.heroku+json; version=3`.",
        );
    }
    if !call.authorized {
        return heroku_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid credentials provided.",
        );
    }
    let free = request.method() == Method::GET && request.uri().path() == "/account/rate-limits";
    let spent = {
        let now = Instant::now();
        let mut tokens = platform.tokens.lock().unwrap();
        if free {
            Some(tokens.remaining(now))
        } else {
            tokens.spend(now)
        }
    };
    match spent {
        Some(remaining) => call.rate_limit_remaining = Some(remaining),
        None => {
            call.rate_limit_remaining = Some(0);
            return heroku_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit",
                fault_message(Dialect::Heroku, 429),
            );
        }
    }
    next.run(request).await
}

/// Serves `app` on `listener` until `shutdown`, one task per connection, so that a fault can
/// close a connection without an answer (axum::serve has no handle for that).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "Could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let kill = Arc::new(Notify::new());
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(DropConnection(kill.clone()))),
        );
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = kill.notified() => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_taken_as_heroku_takes_them() {
        assert_eq!(parse_quantity(&json!(3), 1), Ok(3));
        assert_eq!(parse_quantity(&json!("3"), 1), Ok(3));
        assert_eq!(parse_quantity(&json!("0"), 1), Ok(0));
        assert_eq!(parse_quantity(&json!("+1"), 2), Ok(3));
        assert_eq!(parse_quantity(&json!("-1"), 2), Ok(1));
        assert_eq!(parse_quantity(&json!("-2"), 2), Ok(0));
        assert!(parse_quantity(&json!("-3"), 2)
            .unwrap_err()
            .contains("Cannot remove 3 dynos from 2"));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("1.5"),
            json!("two"),
            json!(""),
            json!("+"),
            json!("++1"),
            json!("1e3"),
            json!(null),
            json!(true),
            json!("99999999999"),
        ] {
            let error = parse_quantity(&bad, 2).unwrap_err();
            assert!(error.starts_with("Invalid quantity"), "{bad}: {error}");
        }
    }

    #[test]
    fn sizes_are_found_by_name_in_any_case_or_by_id() {
        assert_eq!(size_named(&json!("standard-2x")).unwrap(), "Standard-2X");
        assert_eq!(size_named(&json!("Eco")).unwrap(), "Eco");
        assert_eq!(
            dyno_size(&json!({ "id": "a3b4c5d6-0000-4000-8000-000000000005" })).unwrap(),
            "Performance-M"
        );
        assert!(size_named(&json!("Huge-9X")).is_err());
        assert!(dyno_size(&json!({ "id": "nope" })).is_err());
    }

    #[test]
    fn an_unknown_field_is_named_in_the_refusal() {
        let update = json!({ "quantity": 1, "dynos": 2 });
        let error = refuse_unknown_fields(update.as_object().unwrap(), UPDATE_FIELDS).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.message.contains("\"dynos\""), "{}", error.message);
    }
}
