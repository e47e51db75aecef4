//! Read-only Platform API v3 calls beside the formation's, as
//! `../shared/heroku/platform-api-schema.json` describes them: Account Info (`GET /account`),
//! App Info (`GET /apps/{app}`, whose `web_url` is the app's address), Formation List
//! (`GET /apps/{app}/formation`), Log Drain List (`GET /apps/{app}/log-drains`) and Rate Limit
//! Info (`GET /account/rate-limits`). `check --online` asks them once each, and the worker
//! reads an app's `web_url` at start.
//!
//! One try per call, bounded by the timeout: whether to try again is the caller's rule. Errors
//! are [`ScaleError`]s, worded as the formation's are, and never hold the key. A drain's URL
//! carries its password, so it is handed over as a [`Secret`].

use super::heroku::{error_answer, parse, Formation, HerokuPlatform, ACCEPT_V3};
use super::ScaleError;
use crate::Secret;
use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// The account that owns the API key.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub email: String,
    pub id: String,
}

/// The fields of an app that we use.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct App {
    pub name: String,
    /// Where the app answers: `https://NAME-<random>.herokuapp.com/` for an app made since
    /// mid-2023. `None` when the platform gave none.
    #[serde(default)]
    pub web_url: Option<String>,
}

/// One log drain of an app; its URL may hold a password.
#[derive(Debug, Clone)]
pub struct LogDrain {
    pub url: Secret,
}

#[derive(Deserialize)]
struct RawDrain {
    url: String,
}

#[derive(Deserialize)]
struct RateLimit {
    remaining: u64,
}

/// A read-only client of the Platform API for one key.
#[derive(Clone)]
pub struct PlatformApi {
    client: reqwest::Client,
    api_url: Url,
    api_key: Secret,
    timeout: Duration,
}

impl PlatformApi {
    /// `client` is shared with the other backends so connections are pooled.
    pub fn new(client: reqwest::Client, api_url: &Url, api_key: Secret, timeout: Duration) -> Self {
        PlatformApi {
            client,
            api_url: api_url.clone(),
            api_key,
            timeout,
        }
    }

    /// A client of the API an app on Heroku is scaled through, with its key and timeout.
    pub fn for_platform(client: reqwest::Client, heroku: &HerokuPlatform) -> Self {
        Self::new(
            client,
            &heroku.api_url,
            heroku.api_key.clone(),
            heroku.api_timeout,
        )
    }

    pub async fn account(&self) -> Result<Account, ScaleError> {
        parse(&self.get(&["account"]).await?)
    }

    pub async fn app(&self, app: &str) -> Result<App, ScaleError> {
        parse(&self.get(&["apps", app]).await?)
    }

    /// Every process type of the app and its quantity.
    pub async fn formations(&self, app: &str) -> Result<Vec<Formation>, ScaleError> {
        parse(&self.get(&["apps", app, "formation"]).await?)
    }

    pub async fn log_drains(&self, app: &str) -> Result<Vec<LogDrain>, ScaleError> {
        let drains: Vec<RawDrain> = parse(&self.get(&["apps", app, "log-drains"]).await?)?;
        Ok(drains
            .into_iter()
            .map(|drain| LogDrain {
                url: Secret::new(drain.url),
            })
            .collect())
    }

    /// The calls the account has left now (Heroku refills them at about 75 a minute).
    pub async fn rate_limit_remaining(&self) -> Result<u64, ScaleError> {
        let limit: RateLimit = parse(&self.get(&["account", "rate-limits"]).await?)?;
        Ok(limit.remaining)
    }

    /// One GET of `segments` under the API's URL; the body of a 2xx answer.
    async fn get(&self, segments: &[&str]) -> Result<bytes::Bytes, ScaleError> {
        let mut url = self.api_url.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .extend(segments);
        let broken = |error: reqwest::Error| {
            if error.is_timeout() {
                ScaleError::Timeout(self.timeout)
            } else {
                ScaleError::Transport(crate::probe::heartbeat::describe_error(&error))
            }
        };
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT_V3)
            .header(reqwest::header::USER_AGENT, crate::USER_AGENT)
            .bearer_auth(self.api_key.expose())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(broken)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(broken)?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(error_answer(status, &body, None))
        }
    }
}
