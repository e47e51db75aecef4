//! A Heroku-shaped formation API on loopback: Info, List, Update and Batch Update as Heroku
//! documents them, for any number of apps and keys, recording every request and failing on
//! demand.

use super::http::{serve, Recorded};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
struct FormationState {
    /// The first formation, for the one-app helpers.
    first: (String, String),
    /// (app, process type) → quantity.
    quantities: Mutex<std::collections::BTreeMap<(String, String), u32>>,
    /// app → the API keys accepted for it.
    keys: Mutex<std::collections::HashMap<String, Vec<String>>>,
    /// app → a version that changes with every write, for the ETag.
    versions: Mutex<std::collections::HashMap<String, u64>>,
    requests: Mutex<Vec<Recorded>>,
}

/// A local HTTP server that answers the formation endpoints (Info, List, Update, Batch
/// Update) as Heroku documents them, with ETags and conditional GETs, for any number of apps,
/// and records every request.
#[derive(Clone)]
pub struct FormationApi {
    pub url: String,
    state: Arc<FormationState>,
}

impl FormationApi {
    pub async fn start(app: &str, process_type: &str, api_key: &str, quantity: u32) -> Self {
        let state = Arc::new(FormationState {
            first: (app.into(), process_type.into()),
            ..Default::default()
        });
        let router = Router::new()
            .route(
                "/apps/{app}/formation/{process_type}",
                get(formation).patch(formation),
            )
            .route("/apps/{app}/formation", get(formations).patch(formations))
            .with_state(state.clone());
        let url = serve(router).await;
        let api = FormationApi { url, state };
        api.add(app, process_type, api_key, quantity);
        api
    }

    /// Adds a formation, and `api_key` to the keys accepted for its app.
    pub fn add(&self, app: &str, process_type: &str, api_key: &str, quantity: u32) {
        self.state
            .quantities
            .lock()
            .unwrap()
            .insert((app.into(), process_type.into()), quantity);
        let mut keys = self.state.keys.lock().unwrap();
        let accepted = keys.entry(app.into()).or_default();
        if !accepted.iter().any(|key| key == api_key) {
            accepted.push(api_key.into());
        }
    }

    /// Sets the first formation's quantity as a person would (the dashboard, the CLI): a new
    /// version, so its ETag changes.
    pub fn scale_by_hand(&self, quantity: u32) {
        let (app, process_type) = self.state.first.clone();
        self.state
            .quantities
            .lock()
            .unwrap()
            .insert((app.clone(), process_type), quantity);
        *self.state.versions.lock().unwrap().entry(app).or_default() += 1;
    }

    /// The first formation's quantity.
    pub fn quantity(&self) -> u32 {
        let (app, process_type) = self.state.first.clone();
        self.quantity_of(&app, &process_type)
    }

    pub fn quantity_of(&self, app: &str, process_type: &str) -> u32 {
        self.state.quantities.lock().unwrap()[&(app.to_string(), process_type.to_string())]
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The quantities sent for the first formation, in order.
    pub fn patches(&self) -> Vec<u32> {
        let (app, process_type) = self.state.first.clone();
        self.patches_of(&app, &process_type)
    }

    /// The quantities sent for one formation (Update or Batch Update), in order.
    pub fn patches_of(&self, app: &str, process_type: &str) -> Vec<u32> {
        self.writes_of(app, process_type)
            .into_iter()
            .map(|(quantity, _)| quantity)
            .collect()
    }

    /// The quantities sent for one formation with the request that sent each, in order.
    pub fn writes_of(&self, app: &str, process_type: &str) -> Vec<(u32, Recorded)> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == "PATCH")
            .filter(|request| {
                request.path == format!("/apps/{app}/formation/{process_type}")
                    || request.path == format!("/apps/{app}/formation")
            })
            .flat_map(|request| {
                request
                    .quantities(process_type)
                    .into_iter()
                    .filter(|(kind, _)| kind == process_type)
                    .map(move |(_, quantity)| (quantity, request.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn heroku_error(status: u16, id: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(serde_json::json!({ "id": id, "message": message })),
    )
        .into_response()
}

fn formation_json(app: &str, process_type: &str, quantity: u32) -> serde_json::Value {
    serde_json::json!({
        "app": { "id": "01234567-89ab-cdef-0123-456789abcdef", "name": app },
        "command": "bin/web",
        "created_at": "2026-01-01T00:00:00Z",
        "dyno_size": { "id": "01234567-89ab-cdef-0123-456789abcde0", "name": "standard-1X" },
        "id": "01234567-89ab-cdef-0123-456789abcde1",
        "quantity": quantity,
        "size": "standard-1X",
        "type": process_type,
        "updated_at": "2026-01-01T00:00:00Z"
    })
}

async fn formation(
    State(state): State<Arc<FormationState>>,
    method: Method,
    Path((app, process_type)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state, method, app, Some(process_type), headers, body)
}

async fn formations(
    State(state): State<Arc<FormationState>>,
    method: Method,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state, method, app, None, headers, body)
}

/// Answers one call and records it with its status.
fn answer(
    state: Arc<FormationState>,
    method: Method,
    app: String,
    process_type: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let body = String::from_utf8_lossy(&body).to_string();
    let path = match &process_type {
        Some(process_type) => format!("/apps/{app}/formation/{process_type}"),
        None => format!("/apps/{app}/formation"),
    };
    let response = respond(
        &state,
        &method,
        &app,
        process_type.as_deref(),
        &headers,
        &body,
    );
    state.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path,
        headers,
        body,
        status: response.status().as_u16(),
        at,
    });
    response
}

fn respond(
    state: &FormationState,
    method: &Method,
    app: &str,
    process_type: Option<&str>,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    if headers.get("accept").and_then(|v| v.to_str().ok())
        != Some("application/vnd.heroku+json; version=3")
    {
        return heroku_error(406, "not_acceptable", "Accept header must name version=3.");
    }
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let accepted = state
        .keys
        .lock()
        .unwrap()
        .get(app)
        .is_some_and(|keys| keys.iter().any(|known| known == key));
    // An unknown app with a key known for another app is a 404, as on Heroku.
    let known_key = state
        .keys
        .lock()
        .unwrap()
        .values()
        .any(|keys| keys.iter().any(|known| known == key));
    if !accepted && !known_key {
        return heroku_error(401, "unauthorized", "Invalid credentials provided.");
    }
    let mut quantities = state.quantities.lock().unwrap();
    let types: Vec<String> = quantities
        .keys()
        .filter(|(name, _)| name == app)
        .map(|(_, kind)| kind.clone())
        .collect();
    if !accepted
        || types.is_empty()
        || process_type.is_some_and(|kind| !types.iter().any(|t| t == kind))
    {
        return heroku_error(404, "not_found", "Couldn't find that formation.");
    }
    if *method == Method::PATCH {
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let updates: Vec<(String, Option<u64>)> = match process_type {
            Some(kind) => vec![(kind.to_string(), parsed["quantity"].as_u64())],
            None => parsed["updates"]
                .as_array()
                .map(|updates| {
                    updates
                        .iter()
                        .map(|update| {
                            (
                                update["type"].as_str().unwrap_or_default().to_string(),
                                update["quantity"].as_u64(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        if updates.is_empty()
            || updates
                .iter()
                .any(|(kind, quantity)| quantity.is_none() || !types.contains(kind))
        {
            return heroku_error(422, "invalid_params", "quantity must be an integer.");
        }
        for (kind, quantity) in updates {
            quantities.insert((app.to_string(), kind), quantity.unwrap() as u32);
        }
        *state
            .versions
            .lock()
            .unwrap()
            .entry(app.to_string())
            .or_default() += 1;
    }
    let version = state
        .versions
        .lock()
        .unwrap()
        .get(app)
        .copied()
        .unwrap_or(0);
    let etag = format!("\"{app}-{}-{version}\"", process_type.unwrap_or("all"));
    if *method == Method::GET
        && headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    let json = match process_type {
        Some(kind) => formation_json(app, kind, quantities[&(app.to_string(), kind.to_string())]),
        None => serde_json::Value::Array(
            types
                .iter()
                .map(|kind| formation_json(app, kind, quantities[&(app.to_string(), kind.clone())]))
                .collect(),
        ),
    };
    ([("etag", etag)], Json(json)).into_response()
}
