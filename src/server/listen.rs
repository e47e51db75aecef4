//! The accept loop: HTTP/1.1 connections (what Heroku's router and Prometheus speak) served by
//! hyper with limits a hostile or broken client cannot talk past: a cap on open connections,
//! a deadline for the request head, a cap on its size. It knows nothing of the routes; each
//! refusal is counted in [`WorkerMetrics`]. Nothing here buffers without a bound.

use crate::metrics::WorkerMetrics;
use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The limits of the server (`serve`'s defaults are [`Limits::default`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; one more is accepted and closed at once, so the queue of
    /// the listening socket never fills with connections nobody will read.
    pub max_connections: usize,
    /// A request's head (line and headers) must arrive within this long of the connection
    /// opening or of the previous answer, else the connection is closed: an idle or
    /// one-byte-a-second client holds a connection this long at most.
    pub header_read_timeout: Duration,
    /// The most bytes of a request head; a longer one is answered 431.
    pub max_header_bytes: usize,
    /// Reading a body and answering must take no longer (else 408).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 2048,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// How long connections still open at shutdown get to finish their answer.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<WorkerMetrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(%error, "The HTTP server could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.http_refused("over_capacity");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut request| {
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192));
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    tokio::time::timeout(SHUTDOWN_GRACE, connection.as_mut())
                        .await
                        .unwrap_or(Ok(()))
                }
            };
            if let Err(error) = ended {
                if error.is_timeout() {
                    metrics.http_refused("header_timeout");
                } else if error.is_parse_too_large() {
                    metrics.http_refused("header_too_large");
                }
            }
            drop(slot);
        });
    }
    // Every slot back means every connection ended.
    let _ = tokio::time::timeout(
        SHUTDOWN_GRACE,
        slots.acquire_many(limits.max_connections as u32),
    )
    .await;
    Ok(())
}

/// The peer of a request served by [`serve`]; `None` in process (tests without a socket).
pub fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer)
}
