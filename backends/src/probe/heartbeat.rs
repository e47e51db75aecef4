//! The heartbeat: a GET of the app's heartbeat URL, timed from before the request to the last
//! byte of the body, bounded by a timeout. It also keeps the dynos warm, as seed 001 notes.

use super::{Probe, ProbeOutcome};
use async_trait::async_trait;
use reqwest::header::HeaderName;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

pub struct Heartbeat {
    client: reqwest::Client,
    url: Url,
    timeout: Duration,
    /// The response header whose value is handed back with each answer, if any.
    downtime_header: Option<HeaderName>,
}

impl Heartbeat {
    /// `client` is shared with the other backends so connections are pooled.
    pub fn new(client: reqwest::Client, url: Url, timeout: Duration) -> Self {
        Heartbeat {
            client,
            url,
            timeout,
            downtime_header: None,
        }
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

#[async_trait]
impl Probe for Heartbeat {
    async fn probe(&self) -> ProbeOutcome {
        let started = Instant::now();
        let request = async {
            let response = self
                .client
                .get(self.url.clone())
                .header(reqwest::header::CACHE_CONTROL, "no-cache")
                .send()
                .await?;
            let status = response.status().as_u16();
            let announced = self
                .downtime_header
                .as_ref()
                .and_then(|name| header_value(response.headers(), name));
            // Read the whole body: a response is only as fast as its last byte.
            response.bytes().await?;
            Ok::<(u16, Option<String>), reqwest::Error>((status, announced))
        };
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok((status, downtime_header))) => ProbeOutcome::Response {
                status,
                elapsed: started.elapsed(),
                downtime_header,
            },
            Ok(Err(error)) if error.is_timeout() => ProbeOutcome::Timeout {
                elapsed: started.elapsed(),
            },
            Ok(Err(error)) => ProbeOutcome::ConnectError {
                message: describe_error(&error),
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
            .route("/none", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{address}")
    }

    async fn announced(base: &str, path: &str, header: Option<&str>) -> Option<String> {
        let url = Url::parse(&format!("{base}{path}")).unwrap();
        let probe = Heartbeat::new(reqwest::Client::new(), url, Duration::from_secs(10))
            .with_downtime_header(
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

    #[tokio::test]
    async fn the_downtime_header_is_handed_back_when_asked_for() {
        let base = serve().await;
        assert_eq!(
            announced(&base, "/one", Some("X-Downtime"))
                .await
                .as_deref(),
            Some("2026-11-25T01:00/PT3H"),
            "header names are case-insensitive"
        );
        assert_eq!(
            announced(&base, "/two", Some("x-downtime"))
                .await
                .as_deref(),
            Some("2026-11-25T01:00/PT3H, 2026-11-26T01:00/PT1H")
        );
        assert_eq!(announced(&base, "/none", Some("x-downtime")).await, None);
        assert_eq!(announced(&base, "/one", None).await, None, "not asked for");
        assert_eq!(announced(&base, "/one", Some("x-other")).await, None);
    }
}
