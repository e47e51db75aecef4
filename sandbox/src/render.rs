//! Render's public API, as `api-docs/render.json` describes it, in front of the same app seen
//! as a Render web service: Retrieve service (`GET /v1/services/{serviceId}`, its
//! `serviceDetails.numInstances` the formation's quantity) and Scale instance count (`POST
//! /v1/services/{serviceId}/scale` with `{"numInstances": n}`, answered 202 with no body).
//!
//! Render's limits are kept per user in one-minute windows (400 GETs, 30 other calls); every
//! answer carries `Ratelimit-Limit`, `Ratelimit-Remaining` and `Ratelimit-Reset` (Unix seconds),
//! and a call past the limit is answered 429. A count is 1 to the sandbox's most (Render
//! documents 1 to 100); anything else is a 400. Errors are Render's `{"id", "message"}`.
//! Behind the shared gate for faults and the Bearer token.

use crate::api::{timestamp, Platform};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Render's documented limits per minute.
pub const GET_LIMIT: u32 = 400;
pub const WRITE_LIMIT: u32 = 30;
const WINDOW: Duration = Duration::from_secs(60);

/// A fixed one-minute window of calls.
#[derive(Debug)]
struct Window {
    limit: u32,
    used: u32,
    /// Unix seconds the window ends.
    ends_s: u64,
}

impl Window {
    fn new(limit: u32) -> Self {
        Window {
            limit,
            used: 0,
            ends_s: 0,
        }
    }

    /// Counts one call at `now_s`; whether it was within the limit.
    fn spend(&mut self, now_s: u64) -> bool {
        if now_s >= self.ends_s {
            self.used = 0;
            self.ends_s = now_s + WINDOW.as_secs();
        }
        if self.used >= self.limit {
            return false;
        }
        self.used += 1;
        true
    }

    fn remaining(&self) -> u32 {
        self.limit - self.used
    }
}

/// The app as a Render service.
pub struct Service {
    pub id: String,
    pub owner_id: String,
    created_at: String,
    reads: Mutex<Window>,
    writes: Mutex<Window>,
}

impl Service {
    pub fn new() -> Self {
        let alphanumeric =
            |length: usize| uuid::Uuid::new_v4().simple().to_string()[..length].to_string();
        Service {
            id: format!("srv-{}", alphanumeric(20)),
            owner_id: format!("tea-{}", alphanumeric(20)),
            created_at: timestamp(),
            reads: Mutex::new(Window::new(GET_LIMIT)),
            writes: Mutex::new(Window::new(WRITE_LIMIT)),
        }
    }

    /// Counts a call of `method`: its headers, and whether it may go on.
    fn spend(&self, method: &Method) -> (bool, [(&'static str, u64); 3]) {
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let mut window = if method == Method::GET {
            self.reads.lock().unwrap()
        } else {
            self.writes.lock().unwrap()
        };
        let allowed = window.spend(now_s);
        let headers = [
            ("ratelimit-limit", u64::from(window.limit)),
            ("ratelimit-remaining", u64::from(window.remaining())),
            ("ratelimit-reset", window.ends_s),
        ];
        (allowed, headers)
    }
}

impl Default for Service {
    fn default() -> Self {
        Service::new()
    }
}

fn error(status: StatusCode, id: &str, message: &str) -> Response {
    (status, Json(json!({ "id": id, "message": message }))).into_response()
}

pub fn routes() -> axum::Router<Arc<Platform>> {
    axum::Router::new()
        .route("/v1/services/{service}", get(retrieve))
        .route("/v1/services/{service}/scale", post(scale))
}

fn service_json(platform: &Platform) -> Value {
    let service = &platform.render;
    let port = reqwest::Url::parse(&platform.web_url)
        .ok()
        .and_then(|url| url.port())
        .unwrap_or(10000);
    json!({
        "id": service.id,
        "name": platform.app,
        "ownerId": service.owner_id,
        "type": "web_service",
        "createdAt": service.created_at,
        "updatedAt": service.created_at,
        "dashboardUrl": format!("https://dashboard.render.com/web/{}", service.id),
        "suspended": "not_suspended",
        "suspenders": [],
        "autoDeploy": "yes",
        "notifyOnFail": "default",
        "slug": platform.app,
        "rootDir": "",
        "branch": "main",
        "repo": "https://github.com/render-examples/flask-hello-world",
        "serviceDetails": {
            "env": "python",
            "runtime": "python",
            "envSpecificDetails": {
                "buildCommand": "pip install -r requirements.txt",
                "startCommand": platform.command
            },
            "plan": "standard",
            "region": "oregon",
            "numInstances": platform.quantity(),
            "buildPlan": "starter",
            "healthCheckPath": "",
            "openPorts": [{ "port": port, "protocol": "TCP" }],
            "url": platform.web_url.trim_end_matches('/'),
            "previews": { "generation": "off" },
            "pullRequestPreviewsEnabled": "no",
            "maxShutdownDelaySeconds": 30
        }
    })
}

/// Counts the call and adds Render's rate-limit headers to what `answer` gives.
fn limited(platform: &Platform, method: Method, answer: impl FnOnce() -> Response) -> Response {
    let (allowed, headers) = platform.render.spend(&method);
    let mut response = if allowed {
        answer()
    } else {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit",
            "Rate limit has been surpassed.",
        )
    };
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from(value));
    }
    response
}

/// The service by id; `Err` when it is not ours (answered as Render's 404).
fn find_service(platform: &Platform, id: &str) -> Result<(), NotFound> {
    if id == platform.render.id {
        Ok(())
    } else {
        Err(NotFound)
    }
}

struct NotFound;

impl IntoResponse for NotFound {
    fn into_response(self) -> Response {
        error(StatusCode::NOT_FOUND, "not_found", "Not Found")
    }
}

async fn retrieve(State(platform): State<Arc<Platform>>, Path(service): Path<String>) -> Response {
    limited(&platform, Method::GET, || {
        if let Err(response) = find_service(&platform, &service) {
            return response.into_response();
        }
        Json(service_json(&platform)).into_response()
    })
}

async fn scale(
    State(platform): State<Arc<Platform>>,
    Path(service): Path<String>,
    body: Bytes,
) -> Response {
    limited(&platform, Method::POST, || {
        if let Err(response) = find_service(&platform, &service) {
            return response.into_response();
        }
        let most = platform.max_quantity;
        let count = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|value| value.get("numInstances").and_then(Value::as_u64));
        match count {
            Some(count) if (1..=u64::from(most)).contains(&count) => {
                platform.apply(Some(count as u32), None);
                StatusCode::ACCEPTED.into_response()
            }
            _ => error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("Expected {{\"numInstances\": n}} with n from 1 to {most}."),
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_up_to_its_limit_and_resets() {
        let mut window = Window::new(2);
        assert!(window.spend(100));
        assert!(window.spend(101));
        assert!(!window.spend(159));
        assert_eq!(window.remaining(), 0);
        assert!(window.spend(160));
        assert_eq!(window.remaining(), 1);
        assert_eq!(window.ends_s, 220);
    }
}
