//! The router: the app's one public port. Every request waits in one first-come-first-served
//! queue until a dyno has a free slot, then goes to the least busy dyno over real HTTP, so
//! latency really rises when there are too few dynos and falls when more start.
//!
//! As Heroku's router does: with no dynos it answers 503 H14 ("No web processes running"), and
//! a request not answered within 30 s gets 503 H12 ("Request timeout"). It owns no dynos; it
//! takes slots from the [`DynoPool`] and gives them back.

use crate::dyno::{Dyno, DynoPool};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Heroku's router gives a request 30 s.
pub const ROUTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A slot on a dyno, given back to the pool when dropped.
struct Slot {
    dyno: Arc<Dyno>,
    pool: Arc<DynoPool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.release(&self.dyno);
    }
}

enum Refusal {
    NoDynos,
    ShuttingDown,
}

type Waiting = oneshot::Sender<Result<Slot, Refusal>>;

#[derive(Clone)]
struct RouterState {
    queue: mpsc::UnboundedSender<Waiting>,
    client: reqwest::Client,
}

/// The router's axum app, and its dispatcher task (which ends with `shutdown`).
pub fn app(pool: Arc<DynoPool>, shutdown: CancellationToken) -> axum::Router {
    let (queue, waiting) = mpsc::unbounded_channel();
    tokio::spawn(dispatch(pool, waiting, shutdown));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("the HTTP client initialises");
    axum::Router::new()
        .fallback(route)
        .with_state(RouterState { queue, client })
}

/// Hands free slots to waiting requests in arrival order.
async fn dispatch(
    pool: Arc<DynoPool>,
    mut waiting: mpsc::UnboundedReceiver<Waiting>,
    shutdown: CancellationToken,
) {
    while let Some(mut reply) = waiting.recv().await {
        let answer = loop {
            if shutdown.is_cancelled() {
                break Err(Refusal::ShuttingDown);
            }
            if pool.running() == 0 {
                break Err(Refusal::NoDynos);
            }
            if let Some(dyno) = pool.try_slot() {
                break Ok(Slot {
                    dyno,
                    pool: pool.clone(),
                });
            }
            tokio::select! {
                _ = pool.capacity_changed.notified() => {}
                // The client gave up (timeout or closed connection): serve the next one.
                _ = reply.closed() => break Err(Refusal::ShuttingDown),
                _ = shutdown.cancelled() => {}
            }
        };
        // A refused send hands the slot back through `Slot::drop`.
        let _ = reply.send(answer);
    }
}

async fn route(State(router): State<RouterState>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let answer = tokio::time::timeout(ROUTER_TIMEOUT, async {
        let (reply, slot) = oneshot::channel();
        if router.queue.send(reply).is_err() {
            return Err(Refusal::ShuttingDown);
        }
        let slot = slot.await.map_err(|_| Refusal::ShuttingDown)??;
        Ok(forward(&router.client, slot, request).await)
    })
    .await;
    let response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(Refusal::NoDynos)) => router_error("H14", "No web processes running"),
        Ok(Err(Refusal::ShuttingDown)) => router_error("H13", "Connection closed without response"),
        Err(_) => router_error("H12", "Request timeout"),
    };
    tracing::debug!(
        %method, %path,
        status = response.status().as_u16(),
        service_ms = started.elapsed().as_millis() as u64,
        "Router."
    );
    response
}

/// Sends the request to the slot's dyno and returns its answer; the slot is freed when the
/// answer has been read.
async fn forward(client: &reqwest::Client, slot: Slot, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(body) => body,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response()
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/");
    let url = format!("http://{}{}", slot.dyno.address, path);
    let mut outgoing = client.request(parts.method.clone(), url).body(body);
    for (name, value) in parts.headers.iter() {
        if name != "host" && name != "connection" && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = async {
        let response = outgoing.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    }
    .await;
    drop(slot);
    match answer {
        Ok((status, headers, bytes)) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in headers.iter() {
                if name != "connection" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(_) => router_error("H13", "Connection closed without response"),
    }
}

fn router_error(code: &str, description: &str) -> Response {
    tracing::debug!(code, description, "Router error.");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Application error: {code} {description}\n"),
    )
        .into_response()
}
