//! Render, through its public API as `sandbox/api-docs/render.json` describes it: the quantity
//! is a service's instance count, read from Retrieve service (`GET /v1/services/{serviceId}`,
//! `serviceDetails.numInstances`) and set by Scale instance count (`POST
//! /v1/services/{serviceId}/scale` with `{"numInstances": n}`, answered 202).
//!
//! Render ignores the count while the service's own autoscaling is on, so a service with
//! `serviceDetails.autoscaling.enabled` is refused with a message saying so; a suspended
//! service runs nothing and is read as 0. Render runs 1 to 100 instances of a service, so 0 is
//! refused before any call (suspending a service is not scaling it).
//! Calls go through [`RestClient`], retried as the Heroku client's are; Render counts calls
//! per user (400 GETs and 30 other calls a minute), says how many are left in
//! `Ratelimit-Remaining` and when the window resets in `Ratelimit-Reset`, which a 429 waits for.

use super::rest::{parse, read_api_url, read_key, read_timeout, Dialect, Hints, RestClient};
use super::{
    Known, Platform, PlatformContext, PlatformEntry, PlatformSettings, ScaleError, Scaler,
};
use crate::settings::{fields, named, variable_for, Check, Raw, SecretRaw, Table, HIDDEN};
use crate::Secret;
use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use url::Url;

const NAME: &str = "render";

/// The registry's entry.
pub const ENTRY: PlatformEntry = PlatformEntry {
    name: NAME,
    about: "(the Render API)",
    keys: fields::<RawRender>,
    read,
};

const HINTS: Hints = Hints {
    unauthorized: "check render_api_key",
    forbidden: "check that render_api_key's workspace owns render_service_id",
    not_found: "check render_service_id (srv-…)",
};

const DEFAULT_API_URL: &str = "https://api.render.com";
/// Render's cap on a service's instances.
pub const MOST_INSTANCES: u32 = 100;

/// The Render keys as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRender {
    render_service_id: Raw,
    render_api_key: SecretRaw,
    render_api_url: Raw,
    render_api_timeout_in_ms: Raw,
}

/// The checked settings of a service on Render.
#[derive(Debug, Clone)]
pub struct RenderPlatform {
    pub service_id: String,
    pub api_key: Secret,
    pub api_url: Url,
    pub api_timeout: Duration,
}

fn read(table: &mut Table, context: &PlatformContext, check: &mut Check) -> Option<Platform> {
    let raw: RawRender = check.section(table, "");
    let required = context.requires(NAME);
    let service_id = raw.render_service_id.text(check);
    if required && service_id.is_none() && !check.has_problem(raw.render_service_id.key()) {
        raw.render_service_id.missing(
            check,
            "the ID of your Render service, such as \"srv-cf0f1a2b3c4d5e6f\" (the dashboard's URL has it)",
        );
    }
    let api_key = read_key(
        &raw.render_api_key,
        required,
        check,
        "a Render API key (Account Settings → API Keys), such as \"env:RENDER_API_KEY\"",
    );
    let api_url = read_api_url(&raw.render_api_url, check, DEFAULT_API_URL);
    let api_timeout = read_timeout(&raw.render_api_timeout_in_ms, check);
    if !required {
        return None;
    }
    Some(Platform::Render(RenderPlatform {
        service_id: service_id?,
        api_key: api_key?,
        api_url: api_url?,
        api_timeout: api_timeout?,
    }))
}

impl PlatformSettings for RenderPlatform {
    fn name(&self) -> &'static str {
        NAME
    }

    fn build(
        &self,
        _process_type: &str,
        client: reqwest::Client,
        shutdown: &CancellationToken,
    ) -> Arc<dyn Scaler> {
        Arc::new(
            RenderScaler::new(
                client,
                &self.api_url,
                &self.service_id,
                self.api_key.clone(),
                self.api_timeout,
            )
            .with_shutdown(shutdown.clone()),
        )
    }

    fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        let keys = named::<RawRender>("");
        let shown = RawRender {
            render_service_id: Raw::quoted(&self.service_id),
            render_api_key: SecretRaw::shown(
                HIDDEN.to_string(),
                variable_for(variables, keys.render_api_key.key()),
            ),
            render_api_url: Raw::quoted(self.api_url.as_str()),
            render_api_timeout_in_ms: Raw::shown(self.api_timeout.as_millis().to_string()),
        };
        crate::settings::rows("", &shown)
    }

    fn most(&self) -> Option<(u32, &'static str)> {
        Some((
            MOST_INSTANCES,
            "Render runs at most 100 instances of a service",
        ))
    }

    fn call_timeout(&self) -> Duration {
        self.api_timeout
    }
}

/// Render's error body: `{"id": "…", "message": "…"}`, both optional.
fn render_error(body: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    if parsed.id.is_none() && parsed.message.is_none() {
        return None;
    }
    let message: String = parsed
        .message
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let id = parsed.id.unwrap_or_else(|| message.clone());
    Some((id, message))
}

const DIALECT: Dialect = Dialect {
    error: render_error,
    remaining_header: Some("ratelimit-remaining"),
    reset_header: Some("ratelimit-reset"),
    hints: HINTS,
};

/// The fields of Render's service object that we use.
#[derive(Debug, Deserialize)]
struct Service {
    #[serde(default)]
    suspended: Option<String>,
    #[serde(rename = "serviceDetails")]
    details: Details,
}

#[derive(Debug, Deserialize)]
struct Details {
    #[serde(rename = "numInstances")]
    num_instances: Option<u32>,
    #[serde(default)]
    autoscaling: Option<Autoscaling>,
}

#[derive(Debug, Deserialize)]
struct Autoscaling {
    enabled: bool,
}

impl Service {
    fn instances(&self) -> Result<u32, ScaleError> {
        if self.suspended.as_deref() == Some("suspended") {
            return Ok(0);
        }
        self.details.num_instances.ok_or_else(|| {
            ScaleError::BadAnswer(
                "the service has no serviceDetails.numInstances: a static site or cron job cannot be scaled".into(),
            )
        })
    }

    fn autoscaled(&self) -> bool {
        self.details
            .autoscaling
            .as_ref()
            .is_some_and(|autoscaling| autoscaling.enabled)
    }
}

/// The instance count of one Render service.
pub struct RenderScaler {
    api: RestClient,
    service_id: String,
    known: Mutex<Option<Known>>,
}

impl RenderScaler {
    pub fn new(
        client: reqwest::Client,
        api_url: &Url,
        service_id: &str,
        api_key: Secret,
        timeout: Duration,
    ) -> Self {
        let label = format!("render service {service_id}");
        RenderScaler {
            api: RestClient::new(client, api_url, api_key, timeout, DIALECT, label),
            service_id: service_id.to_string(),
            known: Mutex::new(None),
        }
    }

    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.api = self.api.with_shutdown(shutdown);
        self
    }

    pub fn with_retry_policy(mut self, retry: super::heroku::RetryPolicy) -> Self {
        self.api = self.api.with_retry_policy(retry);
        self
    }

    async fn service(&self) -> Result<Service, ScaleError> {
        let url = self.api.url(&["v1", "services", &self.service_id], &[]);
        let body = self.api.call(Method::GET, &url, None).await?;
        parse::<Service>(&body)
    }

    fn remember(&self, quantity: u32) -> u32 {
        *self.known.lock().unwrap() = Some(Known {
            quantity,
            at: tokio::time::Instant::now(),
        });
        quantity
    }
}

#[async_trait]
impl Scaler for RenderScaler {
    fn describe(&self) -> String {
        self.api.label().to_string()
    }

    async fn current(&self) -> Result<u32, ScaleError> {
        let instances = self.service().await?.instances()?;
        Ok(self.remember(instances))
    }

    /// Render's scale takes an absolute count, so a retried call cannot scale twice.
    async fn set(&self, quantity: u32) -> Result<u32, ScaleError> {
        if quantity == 0 {
            // Render's manual count is 1 to 100; only suspending a service stops it all.
            return Err(ScaleError::Status {
                status: 400,
                id: "below_one".into(),
                message: "Render runs 1 to 100 instances of a service, never 0: set min_dynos to 1 or more".into(),
            });
        }
        let service = self.service().await?;
        if service.autoscaled() {
            return Err(ScaleError::Status {
                status: 409,
                id: "autoscaling_enabled".into(),
                message: "Render ignores the instance count while the service's own autoscaling is on: turn it off in the dashboard".into(),
            });
        }
        if service.suspended.as_deref() == Some("suspended") {
            return Err(ScaleError::Status {
                status: 409,
                id: "suspended".into(),
                message: "the service is suspended: resume it in the dashboard".into(),
            });
        }
        let url = self
            .api
            .url(&["v1", "services", &self.service_id, "scale"], &[]);
        let body = serde_json::json!({ "numInstances": quantity });
        self.api.call(Method::POST, &url, Some(&body)).await?;
        let instances = self.service().await?.instances()?;
        Ok(self.remember(instances))
    }

    fn recent(&self) -> Option<Known> {
        *self.known.lock().unwrap()
    }

    fn rate_limit_remaining(&self) -> Option<u32> {
        self.api.take_remaining()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_count_is_read_from_the_service_details() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "suspended": "not_suspended",
            "serviceDetails": { "numInstances": 3 }
        }))
        .unwrap();
        assert_eq!(service.instances(), Ok(3));
        assert!(!service.autoscaled());
        let suspended: Service = serde_json::from_value(serde_json::json!({
            "suspended": "suspended",
            "serviceDetails": { "numInstances": 3, "autoscaling": { "enabled": true } }
        }))
        .unwrap();
        assert_eq!(suspended.instances(), Ok(0));
        assert!(suspended.autoscaled());
        let site: Service =
            serde_json::from_value(serde_json::json!({ "serviceDetails": {} })).unwrap();
        assert!(matches!(site.instances(), Err(ScaleError::BadAnswer(_))));
    }

    #[test]
    fn render_errors_are_read() {
        assert_eq!(
            render_error(br#"{"id": "unauthorized", "message": "Nope."}"#),
            Some(("unauthorized".into(), "Nope.".into()))
        );
        assert_eq!(render_error(b"{}"), None);
        assert_eq!(render_error(b"oops"), None);
    }
}
