//! The heartbeat: a GET of the app's heartbeat URL, timed from before the request to the last
//! byte of the body, bounded by a timeout. It also keeps the dynos warm, as seed 001 notes.
//!
//! With [`Heartbeat::with_own_connection`] it goes out on a kept connection of its own
//! ([`super::kept`]), the cheapest request there is; else through the shared client's pool. A redirect is followed through reqwest from where it points (and logged once: a
//! heartbeat_url that points there directly saves a request every beat); with a proxy in the
//! environment, or a URL the kept connection cannot serve, every heartbeat goes through
//! reqwest, which honours both.

use super::kept::{Failure, KeptConnection};
use super::{Probe, ProbeOutcome};
use async_trait::async_trait;
use reqwest::header::HeaderName;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

pub struct Heartbeat {
    client: reqwest::Client,
    url: Url,
    timeout: Duration,
    /// The response header whose value is handed back with each answer, if any.
    downtime_header: Option<HeaderName>,
    /// `None`: every heartbeat goes through `client`. Boxed: a worker of many apps has none,
    /// and should not hold room for one per app.
    kept: Option<Box<KeptConnection>>,
    /// A redirect was logged already.
    redirect_told: AtomicBool,
}

/// The environment names a proxy, which reqwest honours and the kept connection does not.
fn proxy_in_environment() -> bool {
    ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]
        .iter()
        .any(|name| {
            std::env::var_os(name).is_some() || std::env::var_os(name.to_lowercase()).is_some()
        })
}

impl Heartbeat {
    /// Heartbeats through `client`, shared with the other backends so connections are pooled.
    pub fn new(client: reqwest::Client, url: Url, timeout: Duration) -> Self {
        Heartbeat {
            client,
            url,
            timeout,
            downtime_header: None,
            kept: None,
            redirect_told: AtomicBool::new(false),
        }
    }

    /// Heartbeats on a connection of their own, kept between beats (see the module's docs);
    /// the client still serves a redirect's target, and every heartbeat when a proxy is set.
    pub fn with_own_connection(mut self) -> Self {
        self.kept = (!proxy_in_environment())
            .then(|| {
                KeptConnection::new(
                    &self.url,
                    &[
                        (reqwest::header::USER_AGENT, crate::USER_AGENT),
                        (reqwest::header::CACHE_CONTROL, "no-cache"),
                        (reqwest::header::ACCEPT, "*/*"),
                    ],
                )
            })
            .flatten()
            .map(Box::new);
        self
    }

    /// Also hands back the value of this response header (the app's downtime announcement).
    pub fn with_downtime_header(mut self, name: Option<HeaderName>) -> Self {
        self.downtime_header = name;
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// Why a heartbeat got no answer, from either client.
enum Missed {
    Kept(Failure),
    Reqwest(reqwest::Error),
}

impl Heartbeat {
    /// The whole GET: on the kept connection, then through reqwest from a redirect's target.
    async fn request(&self) -> Result<(u16, Option<String>), Missed> {
        let Some(kept) = &self.kept else {
            return self.through_reqwest(self.url.clone()).await;
        };
        let answer = kept.get().await.map_err(Missed::Kept)?;
        let location = matches!(answer.status, 301 | 302 | 303 | 307 | 308)
            .then(|| answer.headers.get(reqwest::header::LOCATION))
            .flatten()
            .and_then(|value| value.to_str().ok())
            .and_then(|location| self.url.join(location).ok());
        if let Some(location) = location {
            if !self.redirect_told.swap(true, Ordering::Relaxed) {
                // The target only: the URL may carry credentials.
                tracing::info!(
                    status = answer.status,
                    to = %location.origin().ascii_serialization(),
                    "The heartbeat URL redirects; it is followed on every heartbeat (a heartbeat_url pointing where it leads saves a request each time)."
                );
            }
            return self.through_reqwest(location).await;
        }
        let announced = self
            .downtime_header
            .as_ref()
            .and_then(|name| header_value(&answer.headers, name));
        Ok((answer.status, announced))
    }

    async fn through_reqwest(&self, url: Url) -> Result<(u16, Option<String>), Missed> {
        let response = self
            .client
            .get(url)
            .header(reqwest::header::CACHE_CONTROL, "no-cache")
            .send()
            .await
            .map_err(Missed::Reqwest)?;
        let status = response.status().as_u16();
        let announced = self
            .downtime_header
            .as_ref()
            .and_then(|name| header_value(response.headers(), name));
        // Read the whole body: a response is only as fast as its last byte.
        response.bytes().await.map_err(Missed::Reqwest)?;
        Ok((status, announced))
    }
}

#[async_trait]
impl Probe for Heartbeat {
    async fn probe(&self) -> ProbeOutcome {
        let started = Instant::now();
        match tokio::time::timeout(self.timeout, self.request()).await {
            Ok(Ok((status, downtime_header))) => ProbeOutcome::Response {
                status,
                elapsed: started.elapsed(),
                downtime_header,
            },
            Ok(Err(Missed::Reqwest(error))) if error.is_timeout() => ProbeOutcome::Timeout {
                elapsed: started.elapsed(),
            },
            Ok(Err(Missed::Reqwest(error))) => ProbeOutcome::ConnectError {
                message: describe_error(&error),
                refused: is_refused(&error),
            },
            Ok(Err(Missed::Kept(failure))) => ProbeOutcome::ConnectError {
                message: failure.to_string(),
                refused: matches!(failure, Failure::Refused(_)),
            },
            Err(_) => ProbeOutcome::Timeout {
                elapsed: started.elapsed(),
            },
        }
    }
}

/// Every value of the header, joined with commas as HTTP allows; bytes that are not text are
/// kept as replacement characters so that the worker can report them.
fn header_value(headers: &reqwest::header::HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Whether the connection was refused: nothing listens at the URL's host and port.
pub fn is_refused(error: &reqwest::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = current {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        current = cause.source();
    }
    false
}

/// The error and its causes on one line, without the URL (which may carry credentials).
pub fn describe_error(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = String::new();
    let mut current: Option<&dyn Error> = error.source();
    let head = if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else if error.is_request() {
        "the request failed"
    } else {
        "HTTP error"
    };
    text.push_str(head);
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use axum::routing::get;

    /// A real server on loopback: `/one` sends one X-Downtime, `/two` two, `/none` none.
    async fn serve() -> String {
        let router = axum::Router::new()
            .route(
                "/one",
                get(|| async { ([("x-downtime", "2026-11-25T01:00/PT3H")], "ok") }),
            )
            .route(
                "/two",
                get(|| async {
                    let mut headers = HeaderMap::new();
                    headers.append("x-downtime", "2026-11-25T01:00/PT3H".parse().unwrap());
                    headers.append("x-downtime", "2026-11-26T01:00/PT1H".parse().unwrap());
                    (headers, "ok")
                }),
            )
            .route("/none", get(|| async { "ok" }))
            .route(
                "/moved",
                get(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [("location", "/one")],
                        "see /one",
                    )
                }),
            )
            .route(
                "/closing",
                get(|| async { ([("connection", "close")], "ok, and goodbye") }),
            )
            .route(
                "/missing",
                get(|| async { (axum::http::StatusCode::NOT_FOUND, "no such page") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{address}")
    }

    /// The downtime header the probe hands back, on its own connection (`own`) or pooled.
    async fn announced(base: &str, path: &str, header: Option<&str>, own: bool) -> Option<String> {
        let url = Url::parse(&format!("{base}{path}")).unwrap();
        let mut probe = Heartbeat::new(reqwest::Client::new(), url, Duration::from_secs(10));
        if own {
            probe = probe.with_own_connection();
        }
        let probe = probe.with_downtime_header(
            header.map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap()),
        );
        match probe.probe().await {
            ProbeOutcome::Response {
                status: 200,
                downtime_header,
                ..
            } => downtime_header,
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    fn probe_of(base: &str, path: &str) -> Heartbeat {
        let url = Url::parse(&format!("{base}{path}")).unwrap();
        Heartbeat::new(reqwest::Client::new(), url, Duration::from_secs(10))
            .with_own_connection()
            .with_downtime_header(Some(HeaderName::from_static("x-downtime")))
    }

    fn status(outcome: &ProbeOutcome) -> Option<u16> {
        match outcome {
            ProbeOutcome::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    #[tokio::test]
    async fn beat_after_beat_on_a_kept_connection_a_closed_one_replaced() {
        let base = serve().await;
        let kept = probe_of(&base, "/one");
        assert!(
            kept.kept.is_some(),
            "a plain http URL gets its own connection"
        );
        for _ in 0..3 {
            assert_eq!(status(&kept.probe().await), Some(200));
        }
        assert!(
            kept.kept.as_ref().unwrap().is_open(),
            "kept for the next beat"
        );
        let closing = probe_of(&base, "/closing");
        for _ in 0..3 {
            assert_eq!(
                status(&closing.probe().await),
                Some(200),
                "a new one each time"
            );
        }
        let missing = probe_of(&base, "/missing");
        assert_eq!(status(&missing.probe().await), Some(404));
    }

    #[tokio::test]
    async fn a_redirect_is_followed_to_its_answer() {
        let base = serve().await;
        let probe = probe_of(&base, "/moved");
        for _ in 0..2 {
            match probe.probe().await {
                ProbeOutcome::Response {
                    status,
                    downtime_header,
                    ..
                } => {
                    assert_eq!(status, 200, "where /moved leads");
                    assert_eq!(downtime_header.as_deref(), Some("2026-11-25T01:00/PT3H"));
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_server_that_went_away_is_a_connect_error_without_the_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://user:secret-pass@{address}/hb")).unwrap();
        let through_pool = Heartbeat::new(reqwest::Client::new(), url, Duration::from_secs(10));
        let own = probe_of(&format!("http://user:secret-pass@{address}"), "/hb");
        for probe in [through_pool, own] {
            match probe.probe().await {
                ProbeOutcome::ConnectError { message, refused } => {
                    assert!(refused, "nothing listens there: {message}");
                    assert!(message.starts_with("connection failed: "), "{message}");
                    assert!(!message.contains("secret-pass"), "{message}");
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_downtime_header_is_handed_back_when_asked_for() {
        let base = serve().await;
        for own in [false, true] {
            assert_eq!(
                announced(&base, "/one", Some("X-Downtime"), own)
                    .await
                    .as_deref(),
                Some("2026-11-25T01:00/PT3H"),
                "header names are case-insensitive"
            );
            assert_eq!(
                announced(&base, "/two", Some("x-downtime"), own)
                    .await
                    .as_deref(),
                Some("2026-11-25T01:00/PT3H, 2026-11-26T01:00/PT1H")
            );
            assert_eq!(
                announced(&base, "/none", Some("x-downtime"), own).await,
                None
            );
            assert_eq!(
                announced(&base, "/one", None, own).await,
                None,
                "not asked for"
            );
            assert_eq!(announced(&base, "/one", Some("x-other"), own).await, None);
        }
    }
}
