//! A web hook receiver: a local HTTP server recording every request and answering with a
//! status, or never.

use super::http::{serve, Recorded};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How the hook server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookMode {
    Status(u16),
    /// Accepts the request and never answers.
    Hang,
}

struct HookState {
    mode: Mutex<HookMode>,
    requests: Mutex<Vec<Recorded>>,
}

/// A local HTTP server that records every request (method, path, headers, body) and answers
/// as the test says.
#[derive(Clone)]
pub struct HookServer {
    /// The base URL; hooks go to any path on it.
    pub url: String,
    state: Arc<HookState>,
}

impl HookServer {
    pub async fn start(mode: HookMode) -> Self {
        let state = Arc::new(HookState {
            mode: Mutex::new(mode),
            requests: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .fallback(
                |State(state): State<Arc<HookState>>,
                 method: Method,
                 uri: axum::http::Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let mode = *state.mode.lock().unwrap();
                    state.requests.lock().unwrap().push(Recorded {
                        method: method.to_string(),
                        path: uri.to_string(),
                        headers,
                        body: String::from_utf8_lossy(&body).to_string(),
                        status: match mode {
                            HookMode::Status(code) => code,
                            HookMode::Hang => 0,
                        },
                        at: Instant::now(),
                    });
                    match mode {
                        HookMode::Status(code) => {
                            (StatusCode::from_u16(code).unwrap(), "hook says hi").into_response()
                        }
                        HookMode::Hang => std::future::pending().await,
                    }
                },
            )
            .with_state(state.clone());
        let url = serve(router).await;
        HookServer { url, state }
    }

    pub fn set_mode(&self, mode: HookMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The bodies received, parsed as JSON (the default body is a JSON object).
    pub fn json_bodies(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter_map(|request| serde_json::from_str(&request.body).ok())
            .collect()
    }

    /// The `event` field of every JSON body received.
    pub fn events(&self) -> Vec<String> {
        self.json_bodies()
            .iter()
            .filter_map(|body| body["event"].as_str().map(str::to_string))
            .collect()
    }
}
