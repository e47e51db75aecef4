//! The rest of the Platform API that Heroku's CLI calls on its way to the formation, shaped as
//! `../shared/heroku/platform-api-schema.json` describes each resource: the app (`GET
//! /apps/{app}`), the account (`GET /account`), the running dynos (`GET /apps/{app}/dynos`,
//! `…/dynos/{name or id}`), the log drains (list, add, info, remove), and the app's add-ons
//! and collaborators (none) and pipeline coupling (none: 404, as for an app outside a
//! pipeline).
//!
//! Behind the same gate as the formation (faults, version header, token, rate limit). The app
//! is a stand-in: one owner, one region and stack, no releases, and a `web_url` that is the
//! sandbox's own router, so whatever opens it reaches the app. Drains are kept and listed,
//! not fed: the sandbox sends no logs. Nothing here scales.

use crate::api::{parse_body, refuse_unknown_fields, ApiError, Platform};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// Made-up ids for the things every sandbox shares.
const REGION_ID: &str = "a3b4c5d6-0000-4000-8000-0000000000a1";
const STACK_ID: &str = "a3b4c5d6-0000-4000-8000-0000000000a2";
const GENERATION_ID: &str = "a3b4c5d6-0000-4000-8000-0000000000a3";
const RELEASE_ID: &str = "a3b4c5d6-0000-4000-8000-0000000000a4";
/// The account's address: `.invalid` so that nothing is ever sent to it.
const OWNER_EMAIL: &str = "owner@sandbox.invalid";
/// The drain URL schemes Heroku's logplex delivers to.
const DRAIN_SCHEMES: &[&str] = &["https", "http", "syslog", "syslog+tls"];

/// One log drain added with `POST /apps/{app}/log-drains`.
#[derive(Debug, Clone)]
pub struct LogDrain {
    pub id: String,
    pub url: String,
    /// `d.<uuid>`, as logplex sends it in `Logplex-Drain-Token`.
    pub token: String,
    pub created_at: String,
}

pub fn routes() -> axum::Router<Arc<Platform>> {
    axum::Router::new()
        .route("/account", get(account))
        .route("/apps/{app}", get(app))
        .route("/apps/{app}/dynos", get(dynos))
        .route("/apps/{app}/dynos/{dyno}", get(dyno))
        .route("/apps/{app}/log-drains", get(drains).post(add_drain))
        .route(
            "/apps/{app}/log-drains/{drain}",
            get(drain_info).delete(remove_drain),
        )
        .route("/apps/{app}/addons", get(nothing))
        .route("/apps/{app}/collaborators", get(nothing))
        .route("/apps/{app}/pipeline-couplings", get(pipeline_coupling))
}

fn app_json(platform: &Platform) -> Value {
    let stack = json!({ "id": STACK_ID, "name": "heroku-24" });
    json!({
        "acm": false,
        "archived_at": null,
        "buildpack_provided_description": null,
        "build_stack": stack,
        "created_at": platform.created_at,
        "generation": { "id": GENERATION_ID, "name": "cedar" },
        "git_url": format!("https://git.heroku.com/{}.git", platform.app),
        "id": platform.app_id,
        "internal_routing": null,
        "maintenance": false,
        "name": platform.app,
        "owner": { "email": OWNER_EMAIL, "id": platform.owner_id },
        "organization": null,
        "team": null,
        "region": { "id": REGION_ID, "name": "us" },
        "released_at": platform.created_at,
        "repo_size": null,
        "slug_size": null,
        "space": null,
        "stack": stack,
        "updated_at": platform.created_at,
        "web_url": platform.web_url,
    })
}

async fn app(
    State(platform): State<Arc<Platform>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    Ok(Json(app_json(&platform)).into_response())
}

async fn account(State(platform): State<Arc<Platform>>) -> Response {
    Json(json!({
        "allow_tracking": false,
        "beta": false,
        "created_at": platform.created_at,
        "email": OWNER_EMAIL,
        "federated": false,
        "id": platform.owner_id,
        "identity_provider": null,
        "last_login": null,
        "name": "Sandbox owner",
        "sms_number": null,
        "suspended_at": null,
        "delinquent_at": null,
        "two_factor_authentication": false,
        "updated_at": platform.created_at,
        "verified": true,
        "country_of_residence": null,
        "default_organization": null,
        "default_team": null,
    }))
    .into_response()
}

/// The dynos running now, oldest first, as `heroku ps` lists them.
fn dynos_json(platform: &Platform) -> Vec<Value> {
    let size = platform.size();
    platform
        .dynos
        .dynos()
        .iter()
        .map(|dyno| {
            let started = dyno.started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            json!({
                "attach_url": null,
                "command": platform.command,
                "created_at": started,
                "id": dyno.id,
                "name": dyno.name,
                "release": { "id": RELEASE_ID, "version": 1 },
                "app": { "name": platform.app, "id": platform.app_id },
                "size": size,
                "state": "up",
                "type": platform.process_type,
                "updated_at": started,
            })
        })
        .collect()
}

async fn dynos(
    State(platform): State<Arc<Platform>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    Ok(Json(dynos_json(&platform)).into_response())
}

async fn dyno(
    State(platform): State<Arc<Platform>>,
    Path((name, dyno)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    dynos_json(&platform)
        .into_iter()
        .find(|each| each["name"] == dyno.as_str() || each["id"] == dyno.as_str())
        .map(|found| Json(found).into_response())
        .ok_or_else(|| ApiError::not_found(format!("Couldn't find that dyno ({dyno}).")))
}

fn drain_json(platform: &Platform, drain: &LogDrain) -> Value {
    json!({
        "addon": null,
        "app": { "id": platform.app_id, "name": platform.app },
        "created_at": drain.created_at,
        "id": drain.id,
        "token": drain.token,
        "updated_at": drain.created_at,
        "url": drain.url,
    })
}

async fn drains(
    State(platform): State<Arc<Platform>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    let drains = platform.drains.lock().unwrap();
    let list: Vec<Value> = drains
        .iter()
        .map(|drain| drain_json(&platform, drain))
        .collect();
    Ok(Json(list).into_response())
}

/// `{"url": …}`: an https, http or syslog URL not already drained.
async fn add_drain(
    State(platform): State<Arc<Platform>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    let request = parse_body(&body)?;
    let Some(fields) = request.as_object() else {
        return Err(ApiError::invalid("Expected {\"url\": …}."));
    };
    refuse_unknown_fields(fields, &["url"])?;
    let url = fields
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("Url can't be blank."))?;
    let scheme_ok = reqwest::Url::parse(url)
        .is_ok_and(|parsed| DRAIN_SCHEMES.contains(&parsed.scheme()) && parsed.has_host());
    if !scheme_ok {
        return Err(ApiError::invalid(format!(
            "Url is invalid ({url}): expected an {} URL with a host.",
            DRAIN_SCHEMES.join(", ")
        )));
    }
    let mut drains = platform.drains.lock().unwrap();
    if drains.iter().any(|drain| drain.url == url) {
        return Err(ApiError::invalid("Url has already been taken."));
    }
    let drain = LogDrain {
        id: uuid::Uuid::new_v4().to_string(),
        url: url.to_string(),
        token: format!("d.{}", uuid::Uuid::new_v4()),
        created_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    };
    tracing::info!(url = %crate::logplex::redact(&drain.url), "Log drain added: the router's lines go to it.");
    let answer = drain_json(&platform, &drain);
    drains.push(drain);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// A drain by its id, URL or token (the schema's `query_identity`).
fn find_drain(drains: &[LogDrain], identity: &str) -> Result<usize, ApiError> {
    drains
        .iter()
        .position(|drain| drain.id == identity || drain.url == identity || drain.token == identity)
        .ok_or_else(|| ApiError::not_found(format!("Couldn't find that log drain ({identity}).")))
}

async fn drain_info(
    State(platform): State<Arc<Platform>>,
    Path((name, identity)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    let drains = platform.drains.lock().unwrap();
    let index = find_drain(&drains, &identity)?;
    Ok(Json(drain_json(&platform, &drains[index])).into_response())
}

async fn remove_drain(
    State(platform): State<Arc<Platform>>,
    Path((name, identity)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    let mut drains = platform.drains.lock().unwrap();
    let index = find_drain(&drains, &identity)?;
    let drain = drains.remove(index);
    tracing::info!(url = %drain.url, "Log drain removed.");
    Ok(Json(drain_json(&platform, &drain)).into_response())
}

/// The app's add-ons and collaborators: none.
async fn nothing(
    State(platform): State<Arc<Platform>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    Ok(Json(json!([])).into_response())
}

async fn pipeline_coupling(
    State(platform): State<Arc<Platform>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    platform.find_app(&name)?;
    Err(ApiError::not_found(
        "Couldn't find that pipeline coupling: the app is in no pipeline.",
    ))
}
