//! The router: the app's one public port. By default ([`Routing::Pooled`]) every request waits
//! in one first-come-first-served queue until a dyno has a free slot, then goes to the least
//! busy dyno; with [`Routing::Random`] each goes at once to a booted dyno at random, which
//! queues what it cannot serve yet, as Heroku's router does. Either way over real HTTP, so
//! latency really rises when there are too few dynos and falls when more start.
//!
//! As Heroku's router does: with no dynos it answers 503 H14 ("No web processes running"), and
//! a request not answered within 30 s gets 503 H12 ("Request timeout"); it logs one router
//! line per request for the log drains ([`crate::logplex`]). It owns no dynos; it takes slots
//! from the [`DynoPool`] and gives them back.

use crate::dyno::{Dyno, DynoPool};
use crate::logplex::{Logplex, RouterLog};
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

/// How the router hands requests to dynos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    /// One queue for the app, to the least busy dyno with a free slot: the fastest answers a
    /// router could give.
    #[default]
    Pooled,
    /// A booted dyno at random, at once, whatever it holds: Heroku's router
    /// (devcenter.heroku.com/articles/http-routing), and what `autoscalebot simulate` models.
    Random,
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
    routing: Routing,
    pool: Arc<DynoPool>,
    logplex: Logplex,
}

/// The router's axum app, and its dispatcher task (which ends with `shutdown`).
pub fn app(
    pool: Arc<DynoPool>,
    routing: Routing,
    logplex: Logplex,
    shutdown: CancellationToken,
) -> axum::Router {
    let (queue, waiting) = mpsc::unbounded_channel();
    tokio::spawn(dispatch(pool.clone(), waiting, shutdown));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("the HTTP client initialises");
    axum::Router::new().fallback(route).with_state(RouterState {
        queue,
        client,
        routing,
        pool,
        logplex,
    })
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
                // A booting dyno tells nobody when it is up: look again.
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
        };
        // A refused send hands the slot back through `Slot::drop`.
        let _ = reply.send(answer);
    }
}

async fn route(State(router): State<RouterState>, request: Request) -> Response {
    let started = Instant::now();
    let at = chrono::Utc::now();
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |path| path.as_str().to_string());
    // When a dyno took the request, and which.
    let mut taken: Option<(Instant, String)> = None;
    let answer = tokio::time::timeout(ROUTER_TIMEOUT, async {
        let slot = match router.routing {
            Routing::Random => match router.pool.random_dyno() {
                Some(dyno) => Slot {
                    dyno,
                    pool: router.pool.clone(),
                },
                None => return Err(Refusal::NoDynos),
            },
            Routing::Pooled => {
                let (reply, slot) = oneshot::channel();
                if router.queue.send(reply).is_err() {
                    return Err(Refusal::ShuttingDown);
                }
                slot.await.map_err(|_| Refusal::ShuttingDown)??
            }
        };
        taken = Some((Instant::now(), slot.dyno.name.clone()));
        Ok(forward(&router.client, slot, request).await)
    })
    .await;
    let (response, error) = match answer {
        Ok(Ok(answered)) => answered,
        Ok(Err(Refusal::NoDynos)) => router_error("H14", "No web processes running"),
        Ok(Err(Refusal::ShuttingDown)) => router_error("H13", "Connection closed without response"),
        Err(_) => router_error("H12", "Request timeout"),
    };
    let status = response.status().as_u16();
    let elapsed_ms = |since: Instant| since.elapsed().as_millis() as u64;
    let service_ms = match (error, &taken) {
        (Some(("H14", _)), _) => None,
        (Some(("H12", _)), _) => Some(ROUTER_TIMEOUT.as_millis() as u64),
        (_, Some((at, _))) => Some(elapsed_ms(*at)),
        (_, None) => None,
    };
    tracing::debug!(%method, %path, status, service_ms, "Router.");
    router.logplex.log(RouterLog {
        at,
        method: method.to_string(),
        path,
        dyno: taken.as_ref().map(|(_, dyno)| dyno.clone()),
        connect_ms: taken
            .as_ref()
            .map(|(at, _)| (*at - started).as_millis() as u64),
        service_ms,
        status,
        bytes: response
            .headers()
            .get("content-length")
            .and_then(|value| value.to_str().ok()?.parse().ok())
            .unwrap_or(0),
        error,
    });
    response
}

/// Sends the request to the slot's dyno and returns its answer (and the router error, when the
/// dyno closed the connection); the slot is freed when the answer has been read.
async fn forward(
    client: &reqwest::Client,
    slot: Slot,
    request: Request,
) -> (Response, Option<(&'static str, &'static str)>) {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(body) => body,
        Err(_) => {
            let response = (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
            return (response.into_response(), None);
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
            (response, None)
        }
        Err(_) => router_error("H13", "Connection closed without response"),
    }
}

/// A router error's answer, with its code and description for the router line.
fn router_error(
    code: &'static str,
    description: &'static str,
) -> (Response, Option<(&'static str, &'static str)>) {
    tracing::debug!(code, description, "Router error.");
    let response = (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Application error: {code} {description}\n"),
    )
        .into_response();
    (response, Some((code, description)))
}
