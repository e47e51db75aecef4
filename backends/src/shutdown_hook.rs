//! The shutdown hook of seed 000: one HTTP request (url, method, headers, body) made right
//! before the target is stopped, so that something else can know or tidy up.
//!
//! A failure is returned for the caller to log; it never stops the stop. Header values are
//! secrets (they often carry an `Authorization`): they travel as [`Secret`] and no message here
//! shows them, nor the URL's query or credentials.

use crate::Secret;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct ShutdownHook {
    client: reqwest::Client,
    url: Url,
    method: reqwest::Method,
    headers: Vec<(String, Secret)>,
    body: String,
    timeout: Duration,
}

impl ShutdownHook {
    pub fn new(
        client: reqwest::Client,
        url: Url,
        method: reqwest::Method,
        headers: Vec<(String, Secret)>,
        body: String,
        timeout: Duration,
    ) -> Self {
        ShutdownHook {
            client,
            url,
            method,
            headers,
            body,
            timeout,
        }
    }

    /// The URL without credentials, query or fragment, for logs.
    pub fn shown_url(&self) -> String {
        crate::shown_url(&self.url)
    }

    /// Makes the request; `Ok(status)` for a 2xx answer, else a message fit for a log.
    pub async fn call(&self) -> Result<u16, String> {
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .header(reqwest::header::USER_AGENT, crate::USER_AGENT)
            .timeout(self.timeout);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.expose());
        }
        if !self.body.is_empty() {
            request = request.body(self.body.clone());
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
            Ok(response) => Err(format!("the shutdown hook answered {}", response.status())),
            Err(error) if error.is_timeout() => Err(format!(
                "the shutdown hook did not answer within {:?}",
                self.timeout
            )),
            Err(error) => Err(crate::probe::heartbeat::describe_error(&error)),
        }
    }

    /// Calls the hook and logs the outcome. Never fails: the stop goes on either way.
    pub async fn call_and_log(&self, reason: &str) {
        let url = self.shown_url();
        match self.call().await {
            Ok(status) => {
                tracing::info!(%url, status, reason, "Shutdown hook called.")
            }
            Err(error) => {
                tracing::warn!(%url, %error, reason, "Shutdown hook failed; stopping anyway.")
            }
        }
    }
}
