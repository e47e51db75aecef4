//! The sandbox's own endpoints under `/__sandbox/` on the API port, for tests and curious
//! users: inject and clear faults, set the rate-limit pool, read the state and the recorded
//! calls. No token needed (the sandbox listens on loopback only); calls here are neither
//! gated, recorded nor charged. Nothing here exists on the real platform.

use crate::api::{heroku_error, Platform};
use crate::faults::FaultSpec;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

pub fn routes(platform: Arc<Platform>) -> axum::Router {
    axum::Router::new()
        .route("/__sandbox/state", get(state))
        .route("/__sandbox/calls", get(calls))
        .route(
            "/__sandbox/faults",
            get(faults).post(add_fault).delete(clear_faults),
        )
        .route("/__sandbox/rate-limit", put(set_rate_limit))
        .with_state(platform)
}

async fn state(State(platform): State<Arc<Platform>>) -> Response {
    let dynos: Vec<_> = platform
        .dynos
        .dynos()
        .iter()
        .map(|dyno| {
            json!({
                "name": dyno.name,
                "address": dyno.address.to_string(),
                "outstanding": dyno.outstanding(),
                "served": dyno.served(),
            })
        })
        .collect();
    Json(json!({
        "app": platform.app,
        "process_type": platform.process_type,
        "render_service_id": platform.render.id,
        "quantity": platform.quantity(),
        "running": dynos.len(),
        "dynos": dynos,
        "rate_limit_remaining": platform.rate_limit_remaining(),
        "api_calls": platform.calls().len(),
    }))
    .into_response()
}

async fn calls(State(platform): State<Arc<Platform>>) -> Response {
    Json(platform.calls()).into_response()
}

async fn faults(State(platform): State<Arc<Platform>>) -> Response {
    let faults = platform.faults.lock().unwrap();
    let list: Vec<_> = faults
        .list()
        .iter()
        .map(|fault| json!({ "id": fault.id, "remaining": fault.remaining, "spec": fault.spec }))
        .collect();
    Json(list).into_response()
}

async fn add_fault(State(platform): State<Arc<Platform>>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(error) => {
            return heroku_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                &format!("Not a fault: {error}"),
            )
        }
    };
    match platform.faults.lock().unwrap().add(&spec) {
        Ok(id) => {
            tracing::info!(id, fault = %spec.fault, status = ?spec.status, count = ?spec.count, share = ?spec.share, "Fault injected.");
            (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
        }
        Err(message) => heroku_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", &message),
    }
}

async fn clear_faults(State(platform): State<Arc<Platform>>) -> Response {
    platform.faults.lock().unwrap().clear();
    tracing::info!("Faults cleared.");
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimit {
    remaining: u32,
}

async fn set_rate_limit(
    State(platform): State<Arc<Platform>>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<RateLimit>(&body) {
        Ok(limit) => {
            platform
                .tokens
                .lock()
                .unwrap()
                .set_remaining(limit.remaining, Instant::now());
            Json(json!({ "remaining": platform.rate_limit_remaining() })).into_response()
        }
        Err(error) => heroku_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            &format!("Expected {{\"remaining\": N}}: {error}"),
        ),
    }
}
