//! The Heroku Platform API v3 formation endpoints: `GET` and `PATCH
//! /apps/{app}/formation/{type}`, as `../shared/heroku/platform-api-schema.json` describes them.
//!
//! One call per method, no retry here: the worker's next heartbeat is the retry, and it
//! always starts from a fresh read.

use super::{ScaleError, Scaler};
use crate::Secret;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;
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

pub struct HerokuScaler {
    client: reqwest::Client,
    formation_url: Url,
    app: String,
    process_type: String,
    api_key: Secret,
    timeout: Duration,
}

impl HerokuScaler {
    pub fn new(
        client: reqwest::Client,
        api_url: &Url,
        app: &str,
        process_type: &str,
        api_key: Secret,
        timeout: Duration,
    ) -> Self {
        let mut formation_url = api_url.clone();
        formation_url
            .path_segments_mut()
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .extend(["apps", app, "formation", process_type]);
        HerokuScaler {
            client,
            formation_url,
            app: app.to_string(),
            process_type: process_type.to_string(),
            api_key,
            timeout,
        }
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Formation, ScaleError> {
        let request = request
            .header(reqwest::header::ACCEPT, ACCEPT_V3)
            .header(reqwest::header::USER_AGENT, crate::USER_AGENT)
            .bearer_auth(self.api_key.expose())
            .timeout(self.timeout);
        let response = request.send().await.map_err(|error| {
            if error.is_timeout() {
                ScaleError::Timeout(self.timeout)
            } else {
                ScaleError::Transport(crate::probe::heartbeat::describe_error(&error))
            }
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|error| {
            if error.is_timeout() {
                ScaleError::Timeout(self.timeout)
            } else {
                ScaleError::Transport(crate::probe::heartbeat::describe_error(&error))
            }
        })?;
        if (200..300).contains(&status) {
            return serde_json::from_slice::<Formation>(&body)
                .map_err(|error| ScaleError::BadAnswer(format!("{error} in a {status} answer")));
        }
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
}

#[async_trait]
impl Scaler for HerokuScaler {
    fn describe(&self) -> String {
        format!(
            "heroku app {}, process type {}",
            self.app, self.process_type
        )
    }

    async fn current(&self) -> Result<u32, ScaleError> {
        let formation = self
            .call(self.client.get(self.formation_url.clone()))
            .await?;
        Ok(formation.quantity)
    }

    async fn set(&self, quantity: u32) -> Result<u32, ScaleError> {
        let formation = self
            .call(
                self.client
                    .patch(self.formation_url.clone())
                    .json(&serde_json::json!({ "quantity": quantity })),
            )
            .await?;
        Ok(formation.quantity)
    }
}
