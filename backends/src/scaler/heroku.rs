//! The Heroku Platform API v3 formation endpoints, as `../shared/heroku/platform-api-schema.json`
//! describes them: Info (`GET /apps/{app}/formation/{type}`), List (`GET /apps/{app}/formation`),
//! Update (`PATCH /apps/{app}/formation/{type}`) and Batch Update (`PATCH /apps/{app}/formation`
//! with `{"updates": [...]}`).
//!
//! An app scaled for one process type uses Info and Update. An app with several entries (web
//! and worker) shares one [`HerokuFormation`]: one List call reads every process type, and a
//! Batch Update answers with all of them, so each entry's siblings learn the sizes for free.
//! GETs are conditional (`If-None-Match` with the last `ETag`; a `304` reuses the last body),
//! and every answer's `RateLimit-Remaining` is kept for the worker's budget.
//!
//! The client rides out a bad day: a [`RetryPolicy`] retries rate limits (429), server errors
//! (5xx), timeouts, dropped connections and unreadable answers with capped exponential backoff
//! and jitter, waits at least as long as a `Retry-After` says when one is sent (Heroku documents
//! none for v3, so backoff alone must be enough), spaces its calls when `RateLimit-Remaining`
//! runs low, and never retries another 4xx: a wrong key, app or process type stays wrong.
//! A whole read or write, retries included, stays within the policy's time budget, so a
//! heartbeat can never stall for long. Once shutdown begins (the token given by
//! [`HerokuScaler::with_shutdown`]) no new try and no wait starts, so the worker exits well
//! within the platform's SIGKILL deadline; a try already sent finishes.

use super::rest::{Failure, Hints};
use super::{
    Known, Platform, PlatformContext, PlatformEntry, PlatformSettings, ScaleError, Scaler,
};
use crate::retry::Backoff;
use crate::settings::{fields, named, variable_for, Check, Raw, SecretRaw, Table, HIDDEN};
use crate::Secret;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

const NAME: &str = "heroku";

/// The registry's entry.
pub const ENTRY: PlatformEntry = PlatformEntry {
    name: NAME,
    about: "(the Platform API)",
    keys: fields::<RawHeroku>,
    read,
};

/// What to check when the platform refuses: the settings' names, said here, beside them.
const UNAUTHORIZED: &str = "check heroku_api_key or HEROKU_API_KEY";
const FORBIDDEN: &str = "check the key's account and heroku_app_name";
const NOT_FOUND: &str = "check heroku_app_name and process_type";
const HINTS: Hints = Hints {
    unauthorized: UNAUTHORIZED,
    forbidden: FORBIDDEN,
    not_found: NOT_FOUND,
};

const DEFAULT_API_URL: &str = "https://api.heroku.com";

/// The Heroku keys as written (`heroku_app_name` is the app's name whatever the platform, so
/// it belongs to the app's identity).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawHeroku {
    heroku_api_key: SecretRaw,
    heroku_api_url: Raw,
    heroku_api_timeout_in_ms: Raw,
}

/// The checked settings of an app on Heroku: what its scaler needs.
#[derive(Debug, Clone)]
pub struct HerokuPlatform {
    pub app_name: String,
    pub api_key: Secret,
    pub api_url: Url,
    pub api_timeout: Duration,
}

fn read(table: &mut Table, context: &PlatformContext, check: &mut Check) -> Option<Platform> {
    let raw: RawHeroku = check.section(table, "");
    let required = context.requires(NAME);
    if required && context.app_name_value.is_none() {
        let variable = context.app_name.variable();
        context.app_name.missing(
            check,
            format!("the name of your Heroku app, such as \"dancing-forest-1234\" (or {variable})"),
        );
    }
    let api_key = super::rest::read_key(
        &raw.heroku_api_key,
        required,
        check,
        "your Heroku API key (`heroku auth:token`), in the file or in HEROKU_API_KEY",
    );
    let api_url = super::rest::read_api_url(&raw.heroku_api_url, check, DEFAULT_API_URL);
    let api_timeout = super::rest::read_timeout(&raw.heroku_api_timeout_in_ms, check);
    if !required {
        return None;
    }
    Some(Platform::Heroku(HerokuPlatform {
        app_name: context.app_name_value?.to_string(),
        api_key: api_key?,
        api_url: api_url?,
        api_timeout: api_timeout?,
    }))
}

impl PlatformSettings for HerokuPlatform {
    fn name(&self) -> &'static str {
        NAME
    }

    fn build(
        &self,
        process_type: &str,
        client: reqwest::Client,
        shutdown: &CancellationToken,
    ) -> Arc<dyn Scaler> {
        Arc::new(
            HerokuScaler::new(
                client,
                &self.api_url,
                &self.app_name,
                process_type,
                self.api_key.clone(),
                self.api_timeout,
            )
            .with_shutdown(shutdown.clone()),
        )
    }

    fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        let keys = named::<RawHeroku>("");
        let shown = RawHeroku {
            heroku_api_key: SecretRaw::shown(
                HIDDEN.to_string(),
                variable_for(variables, keys.heroku_api_key.key()),
            ),
            heroku_api_url: Raw::quoted(self.api_url.as_str()),
            heroku_api_timeout_in_ms: Raw::shown(self.api_timeout.as_millis().to_string()),
        };
        crate::settings::rows("", &shown)
    }

    fn call_timeout(&self) -> Duration {
        self.api_timeout
    }
}

/// The Accept header Heroku requires; without it the API answers 406.
pub const ACCEPT_V3: &str = "application/vnd.heroku+json; version=3";

/// Below this many `RateLimit-Remaining` tokens the client spaces its calls by
/// [`TOKEN_REFILL_INTERVAL`], so it never spends faster than Heroku refills the pool.
pub const LOW_RATE_LIMIT_REMAINING: u64 = 100;
/// Heroku refills about 75 tokens a minute: one every 0.8 s.
pub const TOKEN_REFILL_INTERVAL: Duration = Duration::from_millis(800);

/// The fields of Heroku's formation object that we use (the schema has more).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Formation {
    pub quantity: u32,
    #[serde(rename = "type")]
    pub process_type: String,
}

/// Heroku's error body: `{"id": "unauthorized", "message": "…"}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    id: String,
    #[serde(default)]
    message: String,
}

/// Which failed calls are tried again, how long to wait between tries, and how long one whole
/// read or write may take. (Hand-written: the rule is a few lines, and the retry crates do not
/// know Heroku's Retry-After and rate-limit headers.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the first failed try; it doubles after each further one.
    pub first_backoff: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// The time one whole read or write may take, waits and tries included.
    pub budget: Duration,
}

impl RetryPolicy {
    /// The policy for calls of at most `timeout` each: up to 5 tries, waits from about 250 ms
    /// doubling up to 8 s, all within three timeouts (at least 3 s).
    pub fn for_timeout(timeout: Duration) -> Self {
        RetryPolicy {
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_attempts: 5,
            budget: (timeout * 3).max(Duration::from_secs(3)),
        }
    }

    /// The wait before the next try, after `attempt` tries (1 or more) ended with `error`,
    /// `elapsed` after the first began; `None` means give up. `jitter` is uniform in [0, 1):
    /// half of each backoff is fixed and half random ("equal jitter"), so many workers spread
    /// out but none comes back sooner than half the backoff. A `Retry-After` is a floor.
    pub fn next_delay(
        &self,
        error: &ScaleError,
        retry_after: Option<Duration>,
        attempt: u32,
        elapsed: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        if !error.is_retriable() || attempt >= self.max_attempts {
            return None;
        }
        let mut delay = Backoff::doubling(self.first_backoff, self.max_backoff)
            .with_equal_jitter()
            .delay_with(attempt, jitter);
        if let Some(after) = retry_after {
            delay = delay.max(after);
        }
        (elapsed + delay < self.budget).then_some(delay)
    }
}

/// What the last answers said about when the next call may go out.
#[derive(Debug, Default)]
struct Gate {
    /// A `Retry-After` said: not before this.
    not_before: Option<Instant>,
    /// The last `RateLimit-Remaining` seen.
    remaining: Option<u64>,
    last_call: Option<Instant>,
}

impl Gate {
    /// The earliest moment the next call should go out.
    fn ready_at(&self) -> Option<Instant> {
        let paced = match (self.remaining, self.last_call) {
            (Some(remaining), Some(last)) if remaining < LOW_RATE_LIMIT_REMAINING => {
                Some(last + TOKEN_REFILL_INTERVAL)
            }
            _ => None,
        };
        paced.max(self.not_before)
    }
}

/// The formation of one Heroku app, shared by the scalers of its process types.
pub struct HerokuFormation {
    client: reqwest::Client,
    /// `…/apps/{app}/formation`.
    list_url: Url,
    app: String,
    api_key: Secret,
    timeout: Duration,
    /// Read and write through the List and Batch Update endpoints (several process types).
    batch: bool,
    /// URL → (ETag, body) of the last 200 answer to a GET, for conditional requests.
    etags: Mutex<HashMap<Url, (String, bytes::Bytes)>>,
    /// Process type → the last quantity the platform told.
    known: Mutex<HashMap<String, Known>>,
    /// The last `RateLimit-Remaining`, for the worker's budget; -1 when taken or none yet.
    remaining: AtomicI64,
    gate: Mutex<Gate>,
}

impl HerokuFormation {
    /// `batch`: several process types of this app are scaled, so read and write them together.
    pub fn new(
        client: reqwest::Client,
        api_url: &Url,
        app: &str,
        api_key: Secret,
        timeout: Duration,
        batch: bool,
    ) -> Self {
        let mut list_url = api_url.clone();
        list_url
            .path_segments_mut()
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .extend(["apps", app, "formation"]);
        HerokuFormation {
            client,
            list_url,
            app: app.to_string(),
            api_key,
            timeout,
            batch,
            etags: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            remaining: AtomicI64::new(-1),
            gate: Mutex::new(Gate::default()),
        }
    }

    fn type_url(&self, process_type: &str) -> Url {
        let mut url = self.list_url.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .push(process_type);
        url
    }

    fn remember(&self, formations: &[Formation]) {
        let at = Instant::now();
        let mut known = self.known.lock().expect("not poisoned");
        for formation in formations {
            known.insert(
                formation.process_type.clone(),
                Known {
                    quantity: formation.quantity,
                    at,
                },
            );
        }
    }

    /// One whole GET (`body` = `None`, conditional on the last ETag of `url`) or PATCH, with
    /// retries by the policy until `shutdown`; the answer's body.
    async fn call(
        &self,
        retry: RetryPolicy,
        shutdown: &CancellationToken,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Result<bytes::Bytes, ScaleError> {
        self.retrying(retry, shutdown, |timeout| self.attempt(url, body, timeout))
            .await
    }

    /// Makes tries with `attempt` (given the time the try may take) by the policy, paced by
    /// the gate; see [`super::rest::retrying`].
    async fn retrying<F, Fut>(
        &self,
        retry: RetryPolicy,
        shutdown: &CancellationToken,
        attempt: F,
    ) -> Result<bytes::Bytes, ScaleError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<bytes::Bytes, Failure>>,
    {
        super::rest::retrying(
            retry,
            shutdown,
            &self.app,
            self.timeout,
            |started| self.gate_wait(retry, started),
            |failure| {
                if let Some(after) = failure.retry_after {
                    self.gate.lock().unwrap().not_before = Some(Instant::now() + after);
                }
            },
            attempt,
        )
        .await
    }

    /// When the next try may go out: not before a `Retry-After` has passed and, when tokens
    /// run low, one token interval after the last call. `None`: now. Fails at once when the
    /// wait would overrun the budget.
    fn gate_wait(
        &self,
        retry: RetryPolicy,
        started: Instant,
    ) -> Result<Option<Instant>, ScaleError> {
        let ready_at = self.gate.lock().unwrap().ready_at();
        let ready_at = super::rest::ready_at(ready_at, started, retry.budget)?;
        if let Some(at) = ready_at {
            let wait_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64;
            tracing::debug!(app = %self.app, wait_ms, "Pacing Platform API calls.");
        }
        Ok(ready_at)
    }

    /// One HTTP request and its answer's body (a 304's is the last 200's).
    async fn attempt(
        &self,
        url: &Url,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<bytes::Bytes, Failure> {
        let body_sent = body;
        let etag = match body {
            None => self
                .etags
                .lock()
                .expect("not poisoned")
                .get(url)
                .map(|(etag, _)| etag.clone()),
            Some(_) => None,
        };
        let mut request = match body {
            None => self.client.get(url.clone()),
            Some(body) => self.client.patch(url.clone()).json(body),
        };
        if let Some(etag) = &etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let request = request
            .header(reqwest::header::ACCEPT, ACCEPT_V3)
            .header(reqwest::header::USER_AGENT, crate::USER_AGENT)
            .bearer_auth(self.api_key.expose())
            .timeout(timeout);
        self.gate.lock().unwrap().last_call = Some(Instant::now());
        let broken = |error: reqwest::Error| Failure::unanswered(&error, timeout);
        let response = request.send().await.map_err(broken)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // Retry-After in seconds; Heroku documents none, and we don't parse the HTTP-date form.
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let remaining = headers
            .get("ratelimit-remaining")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        if let Some(remaining) = remaining {
            self.gate.lock().unwrap().remaining = Some(remaining);
            self.remaining
                .store(remaining.min(i64::MAX as u64) as i64, Ordering::Relaxed);
        }
        let body = response.bytes().await.map_err(broken)?;
        if status == 304 && body.is_empty() {
            if let Some((_, body)) = self.etags.lock().expect("not poisoned").get(url) {
                return Ok(body.clone());
            }
        }
        if (200..300).contains(&status) {
            let etag = headers
                .get(reqwest::header::ETAG)
                .and_then(|value| value.to_str().ok());
            if let (None, Some(etag)) = (body_sent, etag) {
                // A copy: the answer's `Bytes` is a view into the connection's read buffer
                // (8 KiB and more), which a kept view would hold for every app.
                let kept = bytes::Bytes::copy_from_slice(&body);
                self.etags
                    .lock()
                    .expect("not poisoned")
                    .insert(url.clone(), (etag.to_string(), kept));
            }
            return Ok(body);
        }
        let error = match status {
            304 => {
                ScaleError::BadAnswer("304 Not Modified to a request we had no answer for".into())
            }
            _ => error_answer(status, &body, retry_after),
        };
        Err(Failure { error, retry_after })
    }

    async fn read(
        &self,
        retry: RetryPolicy,
        shutdown: &CancellationToken,
        process_type: &str,
    ) -> Result<u32, ScaleError> {
        if self.batch {
            let body = self.call(retry, shutdown, &self.list_url, None).await?;
            let formations = parse::<Vec<Formation>>(&body)?;
            self.remember(&formations);
            return find(&formations, process_type);
        }
        let body = self
            .call(retry, shutdown, &self.type_url(process_type), None)
            .await?;
        let formation = parse::<Formation>(&body)?;
        self.remember(std::slice::from_ref(&formation));
        Ok(formation.quantity)
    }

    async fn write(
        &self,
        retry: RetryPolicy,
        shutdown: &CancellationToken,
        process_type: &str,
        quantity: u32,
    ) -> Result<u32, ScaleError> {
        if self.batch {
            let body = serde_json::json!({
                "updates": [{ "type": process_type, "quantity": quantity }]
            });
            let answer = self
                .call(retry, shutdown, &self.list_url, Some(&body))
                .await?;
            let formations = parse::<Vec<Formation>>(&answer)?;
            self.remember(&formations);
            return find(&formations, process_type);
        }
        let body = serde_json::json!({ "quantity": quantity });
        let answer = self
            .call(retry, shutdown, &self.type_url(process_type), Some(&body))
            .await?;
        let formation = parse::<Formation>(&answer)?;
        self.remember(std::slice::from_ref(&formation));
        Ok(formation.quantity)
    }
}

/// The error a non-2xx answer means, from its status and Heroku's `{"id", "message"}` body.
pub(crate) fn error_answer(status: u16, body: &[u8], retry_after: Option<Duration>) -> ScaleError {
    let (id, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => (parsed.id, parsed.message),
        Err(_) => (
            "unknown".to_string(),
            String::from_utf8_lossy(body).chars().take(200).collect(),
        ),
    };
    Failure::refused(status, id, message, retry_after, HINTS).error
}

pub(crate) use super::rest::parse;

fn find(formations: &[Formation], process_type: &str) -> Result<u32, ScaleError> {
    formations
        .iter()
        .find(|formation| formation.process_type == process_type)
        .map(|formation| formation.quantity)
        .ok_or_else(|| ScaleError::NotFound {
            id: format!("no process type {process_type} in the formation"),
            hint: NOT_FOUND,
        })
}

/// One process type of one app.
pub struct HerokuScaler {
    formation: Arc<HerokuFormation>,
    process_type: String,
    retry: RetryPolicy,
    /// Once cancelled, calls make no further tries (see [`HerokuFormation::retrying`]).
    shutdown: CancellationToken,
}

impl HerokuScaler {
    /// A scaler for the only scaled process type of its app.
    pub fn new(
        client: reqwest::Client,
        api_url: &Url,
        app: &str,
        process_type: &str,
        api_key: Secret,
        timeout: Duration,
    ) -> Self {
        let formation = HerokuFormation::new(client, api_url, app, api_key, timeout, false);
        HerokuScaler::of(Arc::new(formation), process_type)
    }

    /// A scaler for one process type of an app whose formation others share.
    pub fn of(formation: Arc<HerokuFormation>, process_type: &str) -> Self {
        let retry = RetryPolicy::for_timeout(formation.timeout);
        HerokuScaler {
            formation,
            process_type: process_type.to_string(),
            retry,
            shutdown: CancellationToken::new(),
        }
    }

    /// Stops retrying once `shutdown` is cancelled; without it, calls retry by the policy
    /// whatever happens.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Replaces the default [`RetryPolicy::for_timeout`].
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }
}

#[async_trait]
impl Scaler for HerokuScaler {
    fn describe(&self) -> String {
        format!(
            "heroku app {}, process type {}",
            self.formation.app, self.process_type
        )
    }

    async fn current(&self) -> Result<u32, ScaleError> {
        self.formation
            .read(self.retry, &self.shutdown, &self.process_type)
            .await
    }

    /// A retry of this write sends the same PATCH again. That is safe because the body is an
    /// absolute quantity, which the worker computed from a fresh read in this heartbeat: PATCH
    /// `{"quantity": N}` twice leaves N dynos, exactly as once does (idempotent), whereas a
    /// relative change ("one more") retried after a lost answer could scale twice.
    async fn set(&self, quantity: u32) -> Result<u32, ScaleError> {
        self.formation
            .write(self.retry, &self.shutdown, &self.process_type, quantity)
            .await
    }

    fn recent(&self) -> Option<Known> {
        self.formation
            .known
            .lock()
            .expect("not poisoned")
            .get(&self.process_type)
            .copied()
    }

    fn rate_limit_remaining(&self) -> Option<u32> {
        // Taken once, so an old answer's count is never applied again.
        let remaining = self.formation.remaining.swap(-1, Ordering::Relaxed);
        u32::try_from(remaining.min(i64::from(u32::MAX))).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::for_timeout(Duration::from_secs(10))
    }

    fn rate_limited() -> ScaleError {
        ScaleError::RateLimited {
            id: "rate_limit".into(),
            retry_after: None,
        }
    }

    #[test]
    fn refusals_other_than_429_are_never_retried() {
        let refusals = [
            ScaleError::Unauthorized {
                id: "unauthorized".into(),
                hint: UNAUTHORIZED,
            },
            ScaleError::Forbidden {
                id: "forbidden".into(),
                hint: FORBIDDEN,
            },
            ScaleError::NotFound {
                id: "not_found".into(),
                hint: NOT_FOUND,
            },
            ScaleError::Status {
                status: 422,
                id: "invalid_params".into(),
                message: String::new(),
            },
        ];
        for error in refusals {
            assert_eq!(
                policy().next_delay(&error, None, 1, Duration::ZERO, 0.5),
                None,
                "{error}"
            );
        }
    }

    #[test]
    fn faults_back_off_exponentially_with_jitter_up_to_the_cap() {
        let retriable = [
            rate_limited(),
            ScaleError::Status {
                status: 503,
                id: "service_unavailable".into(),
                message: String::new(),
            },
            ScaleError::Timeout(Duration::from_secs(10)),
            ScaleError::Transport("connection reset".into()),
        ];
        let policy = RetryPolicy {
            max_attempts: 20,
            budget: Duration::from_secs(3600),
            ..policy()
        };
        for error in retriable {
            let delay = |attempt, jitter| {
                policy
                    .next_delay(&error, None, attempt, Duration::ZERO, jitter)
                    .unwrap()
            };
            assert_eq!(delay(1, 0.0), Duration::from_millis(125), "{error}");
            assert_eq!(delay(1, 0.999_999).as_millis(), 249);
            assert_eq!(delay(2, 0.0), Duration::from_millis(250));
            assert_eq!(delay(3, 0.0), Duration::from_millis(500));
            assert_eq!(delay(10, 0.0), Duration::from_secs(4), "capped at 8 s");
            assert!(delay(10, 0.99) < Duration::from_secs(8));
        }
    }

    #[test]
    fn a_retry_after_is_a_floor() {
        let delay = policy().next_delay(
            &rate_limited(),
            Some(Duration::from_secs(2)),
            1,
            Duration::ZERO,
            0.5,
        );
        assert_eq!(delay, Some(Duration::from_secs(2)));
    }

    #[test]
    fn the_budget_and_the_attempt_count_end_the_retries() {
        let policy = policy();
        assert_eq!(policy.budget, Duration::from_secs(30));
        assert_eq!(
            policy.next_delay(&rate_limited(), None, 1, Duration::from_millis(29_900), 0.0),
            None,
            "the wait would overrun the budget"
        );
        assert_eq!(
            policy.next_delay(
                &rate_limited(),
                Some(Duration::from_secs(60)),
                1,
                Duration::ZERO,
                0.0
            ),
            None,
            "a Retry-After beyond the budget ends this call"
        );
        assert_eq!(
            policy.next_delay(&rate_limited(), None, 5, Duration::ZERO, 0.0),
            None,
            "five tries in all"
        );
        assert!(policy
            .next_delay(&rate_limited(), None, 4, Duration::ZERO, 0.0)
            .is_some());
    }

    #[test]
    fn low_remaining_tokens_space_the_calls_by_the_refill_interval() {
        let now = Instant::now();
        let mut gate = Gate {
            remaining: Some(LOW_RATE_LIMIT_REMAINING),
            last_call: Some(now),
            ..Gate::default()
        };
        assert_eq!(gate.ready_at(), None, "plenty of tokens: no pacing");
        gate.remaining = Some(LOW_RATE_LIMIT_REMAINING - 1);
        assert_eq!(gate.ready_at(), Some(now + TOKEN_REFILL_INTERVAL));
        gate.not_before = Some(now + Duration::from_secs(5));
        assert_eq!(gate.ready_at(), Some(now + Duration::from_secs(5)));
    }

    // ---- the retry loop and shutdown, on tokio's paused clock ----

    /// A formation whose tries the tests make themselves: nothing is sent to this URL.
    fn formation() -> HerokuFormation {
        HerokuFormation::new(
            reqwest::Client::new(),
            &Url::parse("http://127.0.0.1:9/").unwrap(),
            "my-app",
            Secret::new("test-key"),
            Duration::from_secs(10),
            false,
        )
    }

    /// Waits of 5 to 10 s between tries, well inside the budget.
    fn slow_policy() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
            max_attempts: 5,
            budget: Duration::from_secs(3600),
        }
    }

    fn unavailable() -> Failure {
        Failure {
            error: ScaleError::Status {
                status: 503,
                id: "service_unavailable".into(),
                message: String::new(),
            },
            retry_after: None,
        }
    }

    async fn cancel_after(shutdown: &CancellationToken, after: Duration) {
        tokio::time::sleep(after).await;
        shutdown.cancel();
    }

    fn shutting_down_after(result: &Result<bytes::Bytes, ScaleError>) -> Option<&'static str> {
        match result {
            Err(ScaleError::ShuttingDown { last }) => {
                Some(last.as_ref().map_or("no try", |error| error.kind()))
            }
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait_between_tries_at_once_and_no_try_follows() {
        let formation = formation();
        let shutdown = CancellationToken::new();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let started = Instant::now();
        let (result, ()) = tokio::join!(
            formation.retrying(slow_policy(), &shutdown, |_| {
                tries.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Err(unavailable()))
            }),
            cancel_after(&shutdown, Duration::from_secs(1)),
        );
        assert_eq!(tries.load(Ordering::SeqCst), 1);
        assert_eq!(shutting_down_after(&result), Some("status"), "{result:?}");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "no wait after shutdown"
        );
        let message = result.unwrap_err().to_string();
        assert!(
            message
                .starts_with("not retried: shutting down (the last try: the platform answered 503"),
            "{message}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_try_sent_before_shutdown_finishes_and_its_answer_counts() {
        let formation = formation();
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let (result, ()) = tokio::join!(
            formation.retrying(slow_policy(), &shutdown, |_| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(bytes::Bytes::from_static(b"{}"))
            }),
            cancel_after(&shutdown, Duration::from_secs(1)),
        );
        assert_eq!(result, Ok(bytes::Bytes::from_static(b"{}")));
        assert_eq!(started.elapsed(), Duration::from_secs(3), "not cut off");
    }

    #[tokio::test(start_paused = true)]
    async fn a_try_that_fails_after_shutdown_began_is_not_retried() {
        let formation = formation();
        let shutdown = CancellationToken::new();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let started = Instant::now();
        let (result, ()) = tokio::join!(
            formation.retrying(slow_policy(), &shutdown, |_| {
                tries.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Err(unavailable())
                }
            }),
            cancel_after(&shutdown, Duration::from_secs(1)),
        );
        assert_eq!(tries.load(Ordering::SeqCst), 1);
        assert_eq!(shutting_down_after(&result), Some("status"), "{result:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_retry_after_wait_before_any_try() {
        let formation = formation();
        formation.gate.lock().unwrap().not_before = Some(Instant::now() + Duration::from_secs(30));
        let shutdown = CancellationToken::new();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let started = Instant::now();
        let (result, ()) = tokio::join!(
            formation.retrying(slow_policy(), &shutdown, |_| {
                tries.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Ok(bytes::Bytes::new()))
            }),
            cancel_after(&shutdown, Duration::from_secs(1)),
        );
        assert_eq!(tries.load(Ordering::SeqCst), 0);
        assert_eq!(shutting_down_after(&result), Some("no try"), "{result:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn without_shutdown_the_same_call_makes_every_try_the_policy_allows() {
        let formation = formation();
        let shutdown = CancellationToken::new();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let started = Instant::now();
        let result = formation
            .retrying(slow_policy(), &shutdown, |_| {
                tries.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Err(unavailable()))
            })
            .await;
        assert_eq!(tries.load(Ordering::SeqCst), 5);
        assert_eq!(result.unwrap_err().kind(), "status");
        assert!(
            started.elapsed() >= Duration::from_secs(20),
            "four waits of 5 s or more"
        );
    }
}
