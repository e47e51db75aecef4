//! The heartbeat: a GET of the app's heartbeat URL, timed from before the request to the last
//! byte of the body, bounded by a timeout. It also keeps the dynos warm, as seed 001 notes.

use super::{Probe, ProbeOutcome};
use async_trait::async_trait;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

pub struct Heartbeat {
    client: reqwest::Client,
    url: Url,
    timeout: Duration,
}

impl Heartbeat {
    /// `client` is shared with the other backends so connections are pooled.
    pub fn new(client: reqwest::Client, url: Url, timeout: Duration) -> Self {
        Heartbeat {
            client,
            url,
            timeout,
        }
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
            // Read the whole body: a response is only as fast as its last byte.
            response.bytes().await?;
            Ok::<u16, reqwest::Error>(status)
        };
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(status)) => ProbeOutcome::Response {
                status,
                elapsed: started.elapsed(),
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
