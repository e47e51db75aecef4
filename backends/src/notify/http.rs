//! What the backends that post over HTTP share (`webhook`, `slack`): one request sent and its
//! answer read into a delivery or a [`NotifyError`] that says whether trying again may help.
//! Messages name the request as the backend shows it and never hold the URL's secret parts.

use super::{Delivered, NotifyError};
use crate::probe::heartbeat::describe_error;
use reqwest::StatusCode;
use std::time::Duration;

/// The client of a backend: our User-Agent, and no redirect followed, so that what the
/// request carries never travels to a host the user did not name.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(crate::USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| format!("building the HTTP client: {error}"))
}

/// Sends `request` (named `target` in messages, such as `POST https://host/***`) within
/// `timeout`. A 2xx is delivered; a timeout, a broken connection, a 408, a 429 or a 5xx may
/// pass and is retriable; any other answer is not, and its first words are kept (the server
/// often says what is wrong). `scrub` takes secrets out of what comes back; `advice` adds
/// what to do about a status, when there is something to say.
pub async fn send(
    request: reqwest::RequestBuilder,
    target: &str,
    timeout: Duration,
    scrub: impl Fn(&str) -> String,
    advice: impl Fn(StatusCode) -> Option<&'static str>,
) -> Result<Delivered, NotifyError> {
    let response = request.timeout(timeout).send().await.map_err(|error| {
        let error = error.without_url();
        NotifyError::transient(if error.is_timeout() {
            format!("{target}: no answer within {timeout:?}")
        } else {
            format!("{target}: {}", scrub(&describe_error(&error)))
        })
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(Delivered::ALL);
    }
    let text = response.text().await.unwrap_or_default();
    let excerpt: String = text.trim().chars().take(200).collect();
    let mut message = format!("{target} answered {status}");
    if !excerpt.is_empty() {
        message.push_str(&format!(": {}", scrub(&excerpt)));
    }
    if let Some(advice) = advice(status) {
        message.push_str(&format!(" ({advice})"));
    }
    let retriable = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    Err(NotifyError { message, retriable })
}
