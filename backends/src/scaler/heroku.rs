//! The Heroku Platform API v3 formation endpoints, as `../shared/heroku/platform-api-schema.json`
//! describes them: Info (`GET /apps/{app}/formation/{type}`), List (`GET /apps/{app}/formation`),
//! Update (`PATCH /apps/{app}/formation/{type}`) and Batch Update (`PATCH /apps/{app}/formation`
//! with `{"updates": [...]}`).
//!
//! An app scaled for one process type uses Info and Update. An app with several entries (web
//! and worker) shares one [`HerokuFormation`]: one List call reads every process type, and a
//! Batch Update answers with all of them, so each entry's siblings learn the sizes for free.
//! GETs are conditional (`If-None-Match` with the last `ETag`; a `304` reuses the last body),
//! and every answer's `RateLimit-Remaining` is kept for the worker's budget. One call per
//! method, no retry here: the worker's next heartbeat is the retry.

use super::{Known, ScaleError, Scaler};
use crate::Secret;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// The Accept header Heroku requires; without it the API answers 406.
pub const ACCEPT_V3: &str = "application/vnd.heroku+json; version=3";

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
    /// The last `RateLimit-Remaining`; -1 before any.
    remaining: AtomicI64,
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

    /// A GET, conditional on the last ETag of the same URL.
    async fn get(&self, url: Url) -> Result<bytes::Bytes, ScaleError> {
        let etag = self
            .etags
            .lock()
            .expect("not poisoned")
            .get(&url)
            .map(|(etag, _)| etag.clone());
        let mut request = self.client.get(url.clone());
        if let Some(etag) = &etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let (status, headers, body) = self.send(request).await?;
        if status == 304 {
            if let Some((_, body)) = self.etags.lock().expect("not poisoned").get(&url) {
                return Ok(body.clone());
            }
            return Err(ScaleError::BadAnswer(
                "304 Not Modified to a request we had no answer for".into(),
            ));
        }
        let body = answer(status, body, &headers)?;
        if let Some(etag) = headers
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
        {
            self.etags
                .lock()
                .expect("not poisoned")
                .insert(url, (etag.to_string(), body.clone()));
        }
        Ok(body)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, bytes::Bytes), ScaleError> {
        let request = request
            .header(reqwest::header::ACCEPT, ACCEPT_V3)
            .header(reqwest::header::USER_AGENT, crate::USER_AGENT)
            .bearer_auth(self.api_key.expose())
            .timeout(self.timeout);
        let transport = |error: reqwest::Error| {
            if error.is_timeout() {
                ScaleError::Timeout(self.timeout)
            } else {
                ScaleError::Transport(crate::probe::heartbeat::describe_error(&error))
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(remaining) = headers
            .get("ratelimit-remaining")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<i64>().ok())
        {
            self.remaining.store(remaining.max(0), Ordering::Relaxed);
        }
        let body = response.bytes().await.map_err(transport)?;
        Ok((status, headers, body))
    }

    async fn read(&self, process_type: &str) -> Result<u32, ScaleError> {
        if self.batch {
            let body = self.get(self.list_url.clone()).await?;
            let formations = parse::<Vec<Formation>>(&body, 200)?;
            self.remember(&formations);
            return find(&formations, process_type);
        }
        let body = self.get(self.type_url(process_type)).await?;
        let formation = parse::<Formation>(&body, 200)?;
        self.remember(std::slice::from_ref(&formation));
        Ok(formation.quantity)
    }

    async fn write(&self, process_type: &str, quantity: u32) -> Result<u32, ScaleError> {
        if self.batch {
            let request = self
                .client
                .patch(self.list_url.clone())
                .json(&serde_json::json!({
                    "updates": [{ "type": process_type, "quantity": quantity }]
                }));
            let (status, headers, body) = self.send(request).await?;
            let body = answer(status, body, &headers)?;
            let formations = parse::<Vec<Formation>>(&body, status)?;
            self.remember(&formations);
            return find(&formations, process_type);
        }
        let request = self
            .client
            .patch(self.type_url(process_type))
            .json(&serde_json::json!({ "quantity": quantity }));
        let (status, headers, body) = self.send(request).await?;
        let body = answer(status, body, &headers)?;
        let formation = parse::<Formation>(&body, status)?;
        self.remember(std::slice::from_ref(&formation));
        Ok(formation.quantity)
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], status: u16) -> Result<T, ScaleError> {
    serde_json::from_slice::<T>(body)
        .map_err(|error| ScaleError::BadAnswer(format!("{error} in a {status} answer")))
}

fn find(formations: &[Formation], process_type: &str) -> Result<u32, ScaleError> {
    formations
        .iter()
        .find(|formation| formation.process_type == process_type)
        .map(|formation| formation.quantity)
        .ok_or_else(|| ScaleError::NotFound {
            id: format!("no process type {process_type} in the formation"),
        })
}

/// The body of a 2xx answer, or the error Heroku's answer means.
fn answer(
    status: u16,
    body: bytes::Bytes,
    headers: &reqwest::header::HeaderMap,
) -> Result<bytes::Bytes, ScaleError> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let (id, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(parsed) => (parsed.id, parsed.message),
        Err(_) => (
            "unknown".to_string(),
            String::from_utf8_lossy(&body).chars().take(200).collect(),
        ),
    };
    Err(match status {
        401 => ScaleError::Unauthorized { id },
        403 => ScaleError::Forbidden { id },
        404 => ScaleError::NotFound { id },
        429 => ScaleError::RateLimited { id, retry_after },
        _ => ScaleError::Status {
            status,
            id,
            message,
        },
    })
}

/// One process type of one app.
pub struct HerokuScaler {
    formation: std::sync::Arc<HerokuFormation>,
    process_type: String,
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
        HerokuScaler::of(std::sync::Arc::new(formation), process_type)
    }

    /// A scaler for one process type of an app whose formation others share.
    pub fn of(formation: std::sync::Arc<HerokuFormation>, process_type: &str) -> Self {
        HerokuScaler {
            formation,
            process_type: process_type.to_string(),
        }
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
        self.formation.read(&self.process_type).await
    }

    async fn set(&self, quantity: u32) -> Result<u32, ScaleError> {
        self.formation.write(&self.process_type, quantity).await
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
        u32::try_from(self.formation.remaining.swap(-1, Ordering::Relaxed)).ok()
    }
}
