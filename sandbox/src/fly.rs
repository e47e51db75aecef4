//! Fly.io's Machines API, as `api-docs/fly-machines.json` describes it, in front of the same
//! app: List Machines (`GET /v1/apps/{app}/machines`), Get (`…/machines/{id}`), Start and Stop
//! (`POST …/{id}/start|stop`) and Wait (`GET …/{id}/wait?state=`). The app has
//! `max_quantity` Machines in the process group named after the process type; the started ones
//! are the dynos the pool runs, so a Start or Stop moves the same quantity Heroku's formation
//! API sets (and a formation change starts or stops Machines to match).
//!
//! Fly's limits are kept per action and per Machine (1 a second, bursts of 3); past them a call
//! is answered 429 with `Retry-After`. Errors are Fly's `{"error": "…"}`. Behind the shared gate
//! for faults and the Bearer token. Machines are never created or destroyed here.

use crate::api::{timestamp, Platform};
use crate::rate_limit::TokenPool;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fly's documented limit for Start, Stop and Wait: per action and Machine, 1 a second,
/// bursts of 3.
const ACTION_BURST: u32 = 3;
const ACTION_PER_SECOND: f64 = 1.0;
/// Wait blocks at most this long, as Fly's does.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Machine {
    id: String,
    name: String,
    state: &'static str,
    group: String,
    instance_id: String,
    created_at: String,
    updated_at: String,
}

/// The app's Machines and the limits on calling them.
pub struct Machines {
    list: Mutex<Vec<Machine>>,
    limits: Mutex<HashMap<(&'static str, String), TokenPool>>,
}

/// 14 hex digits, as Fly's Machine ids are.
fn machine_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..14].to_string()
}

impl Machines {
    /// `count` Machines of `group`, the first `started` of them started.
    pub fn new(group: &str, started: u32, count: u32) -> Self {
        let now = timestamp();
        let mut list: Vec<Machine> = (0..count.max(started))
            .map(|index| Machine {
                id: machine_id(),
                name: format!("{group}-{}", index + 1),
                state: "stopped",
                group: group.to_string(),
                instance_id: uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
                created_at: now.clone(),
                updated_at: now.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        for machine in list.iter_mut().take(started as usize) {
            machine.state = "started";
        }
        Machines {
            list: Mutex::new(list),
            limits: Mutex::new(HashMap::new()),
        }
    }

    /// Started Machines.
    fn started(list: &[Machine]) -> u32 {
        list.iter().filter(|m| m.state == "started").count() as u32
    }

    /// Starts or stops Machines until as many run as the formation says (it may have been set
    /// through Heroku's API).
    fn follow(&self, quantity: u32) {
        let mut list = self.list.lock().unwrap();
        let mut started = Self::started(&list);
        let now = timestamp();
        for machine in list.iter_mut() {
            if started < quantity && machine.state == "stopped" {
                machine.state = "started";
                machine.updated_at = now.clone();
                started += 1;
            }
        }
        for machine in list.iter_mut().rev() {
            if started > quantity && machine.state == "started" {
                machine.state = "stopped";
                machine.updated_at = now.clone();
                started -= 1;
            }
        }
    }

    /// Spends one call of `action` on `machine`; the wait before the next, when none is left.
    fn spend(&self, action: &'static str, machine: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut limits = self.limits.lock().unwrap();
        let pool = limits
            .entry((action, machine.to_string()))
            .or_insert_with(|| TokenPool::refilling(ACTION_BURST, ACTION_PER_SECOND, now));
        match pool.spend(now) {
            Some(_) => Ok(()),
            None => Err(pool.time_to_next_token(now)),
        }
    }
}

fn machine_json(platform: &Platform, machine: &Machine) -> Value {
    let image = format!("registry.fly.io/{}:deployment-sandbox", platform.app);
    json!({
        "id": machine.id,
        "name": machine.name,
        "state": machine.state,
        "region": "iad",
        "instance_id": machine.instance_id,
        "private_ip": "fdaa:0:1:a7b:1::2",
        "config": {
            "image": image,
            "metadata": {
                "fly_platform_version": "v2",
                "fly_process_group": machine.group,
                "fly_release_version": "1"
            },
            "guest": { "cpu_kind": "shared", "cpus": 1, "memory_mb": 256 },
            "restart": { "policy": "on-failure" }
        },
        "image_ref": {
            "registry": "registry.fly.io",
            "repository": platform.app,
            "tag": "deployment-sandbox",
            "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "labels": {}
        },
        "created_at": machine.created_at,
        "updated_at": machine.updated_at,
        "events": [],
        "checks": []
    })
}

/// Fly's error answer.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A refusal, answered as Fly's error (small, unlike a whole `Response`).
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn rate_limited(wait: Duration) -> Response {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from(seconds));
    response
}

pub fn routes() -> axum::Router<Arc<Platform>> {
    axum::Router::new()
        .route("/v1/apps/{app}/machines", get(list))
        .route("/v1/apps/{app}/machines/{id}", get(one))
        .route("/v1/apps/{app}/machines/{id}/start", post(start))
        .route("/v1/apps/{app}/machines/{id}/stop", post(stop))
        .route("/v1/apps/{app}/machines/{id}/wait", get(wait))
}

/// The app by name (Fly knows apps by name only), with its Machines following the formation.
fn find_app(platform: &Platform, app: &str) -> Result<(), Refusal> {
    if app != platform.app {
        return Err(Refusal(StatusCode::NOT_FOUND, "app not found"));
    }
    platform.fly.follow(platform.quantity());
    Ok(())
}

fn find_machine(platform: &Platform, id: &str) -> Result<Machine, Refusal> {
    let list = platform.fly.list.lock().unwrap();
    list.iter()
        .find(|machine| machine.id == id)
        .cloned()
        .ok_or(Refusal(StatusCode::NOT_FOUND, "machine not found"))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    include_deleted: Option<bool>,
    region: Option<String>,
}

async fn list(
    State(platform): State<Arc<Platform>>,
    Path(app): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(response) = find_app(&platform, &app) {
        return response.into_response();
    }
    // Nothing here is ever deleted, and every Machine is in one region.
    let _ = query.include_deleted;
    let list = platform.fly.list.lock().unwrap().clone();
    let machines: Vec<Value> = list
        .iter()
        .filter(|_| query.region.as_deref().is_none_or(|region| region == "iad"))
        .map(|machine| machine_json(&platform, machine))
        .collect();
    Json(Value::Array(machines)).into_response()
}

async fn one(
    State(platform): State<Arc<Platform>>,
    Path((app, id)): Path<(String, String)>,
) -> Response {
    if let Err(response) = find_app(&platform, &app) {
        return response.into_response();
    }
    match find_machine(&platform, &id) {
        Ok(machine) => Json(machine_json(&platform, &machine)).into_response(),
        Err(response) => response.into_response(),
    }
}

/// Moves one Machine to `state` and the formation with it; the state it had.
fn move_machine(platform: &Platform, id: &str, state: &'static str) -> &'static str {
    let quantity = {
        let mut list = platform.fly.list.lock().unwrap();
        let Some(machine) = list.iter_mut().find(|machine| machine.id == id) else {
            return "destroyed";
        };
        let previous = machine.state;
        if previous == state {
            return previous;
        }
        machine.state = state;
        machine.updated_at = timestamp();
        let quantity = Machines::started(&list);
        drop(list);
        (quantity, previous)
    };
    platform.apply(Some(quantity.0), None);
    quantity.1
}

async fn start(
    State(platform): State<Arc<Platform>>,
    Path((app, id)): Path<(String, String)>,
) -> Response {
    if let Err(response) = find_app(&platform, &app) {
        return response.into_response();
    }
    if let Err(response) = find_machine(&platform, &id) {
        return response.into_response();
    }
    if let Err(wait) = platform.fly.spend("start", &id) {
        return rate_limited(wait);
    }
    let previous = move_machine(&platform, &id, "started");
    Json(json!({ "previous_state": previous, "migrated": false, "new_host": "" })).into_response()
}

async fn stop(
    State(platform): State<Arc<Platform>>,
    Path((app, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(response) = find_app(&platform, &app) {
        return response.into_response();
    }
    if let Err(response) = find_machine(&platform, &id) {
        return response.into_response();
    }
    // The body is optional: {"signal": "SIGTERM", "timeout": …}.
    if !body.is_empty() {
        let valid = serde_json::from_slice::<Value>(&body).is_ok_and(|value| {
            value.as_object().is_some_and(|object| {
                object.keys().all(|key| key == "signal" || key == "timeout")
                    && object.get("signal").is_none_or(Value::is_string)
            })
        });
        if !valid {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid stop request: expected {\"signal\": …, \"timeout\": …}",
            );
        }
    }
    if let Err(wait) = platform.fly.spend("stop", &id) {
        return rate_limited(wait);
    }
    move_machine(&platform, &id, "stopped");
    Json(json!({ "ok": true })).into_response()
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    state: Option<String>,
    timeout: Option<String>,
    instance_id: Option<String>,
}

async fn wait(
    State(platform): State<Arc<Platform>>,
    Path((app, id)): Path<(String, String)>,
    Query(query): Query<WaitQuery>,
) -> Response {
    if let Err(response) = find_app(&platform, &app) {
        return response.into_response();
    }
    if let Err(response) = find_machine(&platform, &id) {
        return response.into_response();
    }
    let _ = query.instance_id;
    let wanted = match query.state.as_deref().unwrap_or("started") {
        "started" => "started",
        "stopped" => "stopped",
        "destroyed" => "destroyed",
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid state {other:?}: expected started, stopped or destroyed"),
            )
        }
    };
    let timeout = match query.timeout.as_deref().map(str::parse::<u64>) {
        None => WAIT_LIMIT,
        Some(Ok(seconds)) => Duration::from_secs(seconds).min(WAIT_LIMIT),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid timeout: expected whole seconds",
            )
        }
    };
    if let Err(wait) = platform.fly.spend("wait", &id) {
        return rate_limited(wait);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let state = find_machine(&platform, &id).map_or("destroyed", |machine| machine.state);
        if state == wanted {
            return Json(json!({ "ok": true })).into_response();
        }
        if Instant::now() >= deadline || platform.shutdown.is_cancelled() {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!("deadline_exceeded: machine is {state}, not {wanted}"),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_follow_the_formation() {
        let machines = Machines::new("web", 1, 4);
        assert_eq!(Machines::started(&machines.list.lock().unwrap()), 1);
        machines.follow(3);
        assert_eq!(Machines::started(&machines.list.lock().unwrap()), 3);
        machines.follow(0);
        assert_eq!(Machines::started(&machines.list.lock().unwrap()), 0);
        machines.follow(9);
        assert_eq!(Machines::started(&machines.list.lock().unwrap()), 4);
    }

    #[test]
    fn each_action_on_each_machine_has_its_own_limit() {
        let machines = Machines::new("web", 0, 2);
        for _ in 0..ACTION_BURST {
            assert!(machines.spend("start", "a").is_ok());
        }
        assert!(machines.spend("start", "a").is_err());
        assert!(machines.spend("stop", "a").is_ok());
        assert!(machines.spend("start", "b").is_ok());
    }
}
