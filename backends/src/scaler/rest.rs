//! The JSON-over-HTTP client the Fly.io and Render scalers share: one call is a method, a path
//! under the API's base URL, a Bearer token and an optional JSON body, retried as the Heroku
//! client retries ([`RetryPolicy`]: 429, 5xx, timeouts, broken connections; never another 4xx),
//! waiting at least as long as a `Retry-After` (or a rate-limit reset) says, and stopping
//! between tries once shutdown begins.
//!
//! It knows nothing of either platform: each tells it how to read its error bodies and its
//! rate-limit headers and what to hint at when a call is refused. The token is sent only in
//! the `Authorization` header; no error or log line carries it.

use super::heroku::RetryPolicy;
use super::ScaleError;
use crate::settings::{Check, Raw, SecretRaw};
use crate::Secret;
use reqwest::Method;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

/// What the settings' names say when a platform refuses: "check fly_api_token".
#[derive(Debug, Clone, Copy)]
pub struct Hints {
    pub unauthorized: &'static str,
    pub forbidden: &'static str,
    pub not_found: &'static str,
}

/// How one platform words its answers.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// (id, message) of an error body; `None` when it is not the platform's shape.
    pub error: fn(&[u8]) -> Option<(String, String)>,
    /// The header counting the calls left, if the platform sends one.
    pub remaining_header: Option<&'static str>,
    /// The header giving the Unix time (seconds) the rate-limit window resets, if any: a 429
    /// without `Retry-After` waits until then.
    pub reset_header: Option<&'static str>,
    pub hints: Hints,
}

/// One failed try: the error, and how long the answer asked us to wait.
pub struct Failure {
    pub error: ScaleError,
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A try that got no answer: timed out after `timeout`, or the connection broke.
    pub fn unanswered(error: &reqwest::Error, timeout: Duration) -> Failure {
        Failure {
            error: if error.is_timeout() {
                ScaleError::Timeout(timeout)
            } else {
                ScaleError::Transport(crate::probe::heartbeat::describe_error(error))
            },
            retry_after: None,
        }
    }

    /// A refusal with `status` (not 2xx), named by the platform's `id` and `message`, with
    /// the setting to check from `hints`.
    pub fn refused(
        status: u16,
        id: String,
        message: String,
        retry_after: Option<Duration>,
        hints: Hints,
    ) -> Failure {
        let error = match status {
            401 => ScaleError::Unauthorized {
                id,
                hint: hints.unauthorized,
            },
            403 => ScaleError::Forbidden {
                id,
                hint: hints.forbidden,
            },
            404 => ScaleError::NotFound {
                id,
                hint: hints.not_found,
            },
            429 => ScaleError::RateLimited { id, retry_after },
            _ => ScaleError::Status {
                status,
                id,
                message,
            },
        };
        Failure { error, retry_after }
    }
}

/// Makes tries with `attempt` (given the time the try may take) by `retry`, for the platform
/// client named `label` in logs. `ready_at` says, given when the call began, when the next try
/// may go out (`None`: now), or fails the call when that is past the budget; `failed` hears of
/// every failed try first. Once `shutdown` has begun no wait and no new try starts: a wait ends
/// at once and the call fails with [`ScaleError::ShuttingDown`]. A try already sent is never cut
/// off (it is bounded by its timeout), so a write is sent whole or not at all.
pub async fn retrying<F, Fut>(
    retry: RetryPolicy,
    shutdown: &CancellationToken,
    label: &str,
    call_timeout: Duration,
    mut ready_at: impl FnMut(Instant) -> Result<Option<Instant>, ScaleError>,
    mut failed: impl FnMut(&Failure),
    mut attempt: F,
) -> Result<bytes::Bytes, ScaleError>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = Result<bytes::Bytes, Failure>>,
{
    let not_retried = |tries: u32, last: Option<ScaleError>| {
        let error = ScaleError::ShuttingDown {
            last: last.map(Box::new),
        };
        tracing::warn!(app = %label, tries, %error, "Platform call not retried: shutting down.");
        error
    };
    let started = Instant::now();
    let mut tries = 0;
    let mut last: Option<ScaleError> = None;
    loop {
        // A later try is only reached through the wait below, which ends the call once
        // shutdown has begun; nothing awaits between that wait and here.
        tries += 1;
        if let Some(ready_at) = ready_at(started)? {
            if !wait_unless_shutdown(ready_at, shutdown).await {
                return Err(not_retried(tries - 1, last));
            }
        }
        let left = retry.budget.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(ScaleError::Timeout(retry.budget));
        }
        let failure = match attempt(call_timeout.min(left)).await {
            Ok(body) => return Ok(body),
            Err(failure) => failure,
        };
        failed(&failure);
        let delay = retry.next_delay(
            &failure.error,
            failure.retry_after,
            tries,
            started.elapsed(),
            fastrand::f64(),
        );
        let Some(delay) = delay else {
            return Err(failure.error);
        };
        if shutdown.is_cancelled() {
            return Err(not_retried(tries, Some(failure.error)));
        }
        tracing::info!(
            app = %label,
            kind = failure.error.kind(),
            error = %failure.error,
            attempt = tries,
            delay_ms = delay.as_millis() as u64,
            "Platform call failed; trying again after a pause."
        );
        last = Some(failure.error);
        if !wait_unless_shutdown(Instant::now() + delay, shutdown).await {
            return Err(not_retried(tries, last));
        }
    }
}

/// When a call that began at `started` may make its next try, given a `Retry-After` said "not
/// before `not_before`": `None` for now; a rate-limit error when that is past the budget.
pub fn ready_at(
    not_before: Option<Instant>,
    started: Instant,
    budget: Duration,
) -> Result<Option<Instant>, ScaleError> {
    let now = Instant::now();
    let Some(ready_at) = not_before.filter(|at| *at > now) else {
        return Ok(None);
    };
    if ready_at.duration_since(started) >= budget {
        return Err(ScaleError::RateLimited {
            id: "rate_limit".into(),
            retry_after: Some(ready_at - now),
        });
    }
    Ok(Some(ready_at))
}

/// Sleeps until `until`; `false`, at once, when shutdown has begun or begins first.
async fn wait_unless_shutdown(until: Instant, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep_until(until) => true,
    }
}

/// A platform's API at `base`, called with `token`.
pub struct RestClient {
    client: reqwest::Client,
    base: Url,
    token: Secret,
    /// The longest one try may take.
    timeout: Duration,
    retry: RetryPolicy,
    shutdown: CancellationToken,
    dialect: Dialect,
    /// What is called, for logs: "fly app my-app".
    label: String,
    /// A `Retry-After` said: not before this.
    not_before: Mutex<Option<Instant>>,
    /// The last count of calls left; -1 when taken or none yet.
    remaining: AtomicI64,
}

impl RestClient {
    pub fn new(
        client: reqwest::Client,
        base: &Url,
        token: Secret,
        timeout: Duration,
        dialect: Dialect,
        label: String,
    ) -> Self {
        RestClient {
            client,
            base: base.clone(),
            token,
            timeout,
            retry: RetryPolicy::for_timeout(timeout),
            shutdown: CancellationToken::new(),
            dialect,
            label,
            not_before: Mutex::new(None),
            remaining: AtomicI64::new(-1),
        }
    }

    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn hints(&self) -> Hints {
        self.dialect.hints
    }

    /// The platform's last count of calls left, handed out once.
    pub fn take_remaining(&self) -> Option<u32> {
        let remaining = self.remaining.swap(-1, Ordering::Relaxed);
        u32::try_from(remaining.min(i64::from(u32::MAX))).ok()
    }

    /// `base` + `segments` (each escaped) + `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One whole call, retries included; the 2xx answer's body.
    pub async fn call(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Result<bytes::Bytes, ScaleError> {
        retrying(
            self.retry,
            &self.shutdown,
            &self.label,
            self.timeout,
            |started| ready_at(*self.not_before.lock().unwrap(), started, self.retry.budget),
            |failure| {
                if let Some(after) = failure.retry_after {
                    *self.not_before.lock().unwrap() = Some(Instant::now() + after);
                }
            },
            |timeout| self.attempt(method.clone(), url, body, timeout),
        )
        .await
    }

    async fn attempt(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<bytes::Bytes, Failure> {
        let mut request = self
            .client
            .request(method, url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::USER_AGENT, crate::USER_AGENT)
            .bearer_auth(self.token.expose())
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let broken = |error: reqwest::Error| Failure::unanswered(&error, timeout);
        let response = request.send().await.map_err(broken)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
        };
        if let Some(remaining) = self.dialect.remaining_header.and_then(number) {
            self.remaining
                .store(remaining.min(i64::MAX as u64) as i64, Ordering::Relaxed);
        }
        let body = response.bytes().await.map_err(broken)?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        // Seconds only; the HTTP-date form is not parsed.
        let retry_after = number("retry-after").map(Duration::from_secs).or_else(|| {
            let reset = self.dialect.reset_header.and_then(number)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs();
            (status == 429).then(|| Duration::from_secs(reset.saturating_sub(now)))
        });
        let (id, message) = (self.dialect.error)(&body).unwrap_or_else(|| {
            (
                "unknown".to_string(),
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            )
        });
        Err(Failure::refused(
            status,
            id,
            message,
            retry_after,
            self.dialect.hints,
        ))
    }
}

/// A 2xx answer's body as `T`.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ScaleError> {
    serde_json::from_slice::<T>(body)
        .map_err(|error| ScaleError::BadAnswer(format!("{error} in a 2xx answer")))
}

/// A platform's `…_api_url` setting: an absolute http(s) URL, `default` when not set.
pub fn read_api_url(raw: &Raw, check: &mut Check, default: &str) -> Option<Url> {
    let text = raw.text_or(check, default);
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
        _ => {
            raw.bad_text(
                check,
                &text,
                "an absolute http(s) URL such as \"https://example.com\"",
            );
            None
        }
    }
}

/// The longest one call may take, unless `…_api_timeout_in_ms` says otherwise.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// A platform's `…_api_timeout_in_ms` setting.
pub fn read_timeout(raw: &Raw, check: &mut Check) -> Option<Duration> {
    let timeout_ms = raw.whole_or(
        check,
        DEFAULT_TIMEOUT_MS,
        1,
        "a whole number of milliseconds above 0",
    )?;
    Some(Duration::from_millis(u64::from(timeout_ms)))
}

/// A platform's API key or token; when `required`, a missing or empty one is a problem saying
/// what was `expected`.
pub fn read_key(
    raw: &SecretRaw,
    required: bool,
    check: &mut Check,
    expected: &str,
) -> Option<Secret> {
    let key = raw.secret(check);
    if required && key.as_ref().is_none_or(Secret::is_empty) && !check.has_problem(raw.key()) {
        raw.missing(check, expected);
    }
    key
}
