//! Fly.io Machines, through the Machines API as `sandbox/api-docs/fly-machines.json` describes
//! it: the quantity is the number of started Machines of an app, or of one process group
//! (`config.metadata.fly_process_group`); List (`GET /v1/apps/{app}/machines`) reads it, Start
//! and Stop (`POST /v1/apps/{app}/machines/{id}/start|stop`) change it one Machine at a time,
//! and Wait (`GET …/{id}/wait?state=`) lets each change settle before the count is read again.
//!
//! Fly has no "quantity" to set: a Machine must exist before it can run, and creating one
//! needs a whole Machine config. This scaler starts and stops the Machines the app already
//! has and never creates or destroys one (as Fly's own autostart/autostop does): asked for
//! more than exist, it starts them all, says so in a warning naming `fly scale count`, and
//! reports the number running. Cloning a Machine's config was left out on purpose: a clone
//! is billed storage and an image pinned to the clone's moment, which a scaler must not leave
//! behind after a burst.
//!
//! Calls go through [`RestClient`], retried as the Heroku client's are. Fly limits each
//! action per Machine (about 1 a second, bursts of 3; Get 5 a second) and answers 429 past
//! that; one scale touches each Machine once, so only a retry meets the limit.

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

const NAME: &str = "fly";

/// The registry's entry.
pub const ENTRY: PlatformEntry = PlatformEntry {
    name: NAME,
    about: "(Fly.io Machines)",
    keys: fields::<RawFly>,
    read,
};

const HINTS: Hints = Hints {
    unauthorized: "check fly_api_token (`fly tokens create deploy`)",
    forbidden: "check that fly_api_token may manage fly_app_name",
    not_found: "check fly_app_name",
};

const DEFAULT_API_URL: &str = "https://api.machines.dev";
/// The metadata key Fly puts each Machine's process group under.
pub const PROCESS_GROUP_KEY: &str = "fly_process_group";

/// The Fly keys as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawFly {
    fly_app_name: Raw,
    fly_api_token: SecretRaw,
    fly_process_group: Raw,
    fly_api_url: Raw,
    fly_api_timeout_in_ms: Raw,
}

/// The checked settings of an app on Fly.io.
#[derive(Debug, Clone)]
pub struct FlyPlatform {
    pub app_name: String,
    pub api_token: Secret,
    /// Only Machines of this process group count; `None`: every Machine of the app.
    pub process_group: Option<String>,
    pub api_url: Url,
    pub api_timeout: Duration,
}

fn read(table: &mut Table, context: &PlatformContext, check: &mut Check) -> Option<Platform> {
    let raw: RawFly = check.section(table, "");
    let required = context.requires(NAME);
    let app_name = raw
        .fly_app_name
        .text(check)
        .or_else(|| context.app_name_value.map(str::to_string));
    if required && app_name.is_none() && !check.has_problem(raw.fly_app_name.key()) {
        raw.fly_app_name.missing(
            check,
            "the name of your Fly.io app, as `fly apps list` shows it",
        );
    }
    let api_token = read_key(
        &raw.fly_api_token,
        required,
        check,
        "a Fly.io API token (`fly tokens create deploy`), such as \"env:FLY_API_TOKEN\"",
    );
    let process_group = raw.fly_process_group.text(check);
    let api_url = read_api_url(&raw.fly_api_url, check, DEFAULT_API_URL);
    let api_timeout = read_timeout(&raw.fly_api_timeout_in_ms, check);
    if !required {
        return None;
    }
    Some(Platform::Fly(FlyPlatform {
        app_name: app_name?,
        api_token: api_token?,
        process_group,
        api_url: api_url?,
        api_timeout: api_timeout?,
    }))
}

impl PlatformSettings for FlyPlatform {
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
            FlyScaler::new(
                client,
                &self.api_url,
                &self.app_name,
                self.process_group.as_deref(),
                self.api_token.clone(),
                self.api_timeout,
            )
            .with_shutdown(shutdown.clone()),
        )
    }

    fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        let keys = named::<RawFly>("");
        let shown = RawFly {
            fly_app_name: Raw::quoted(&self.app_name),
            fly_api_token: SecretRaw::shown(
                HIDDEN.to_string(),
                variable_for(variables, keys.fly_api_token.key()),
            ),
            fly_process_group: Raw::optional(self.process_group.as_deref(), Raw::quoted),
            fly_api_url: Raw::quoted(self.api_url.as_str()),
            fly_api_timeout_in_ms: Raw::shown(self.api_timeout.as_millis().to_string()),
        };
        crate::settings::rows("", &shown)
    }

    fn call_timeout(&self) -> Duration {
        self.api_timeout
    }
}

/// Fly's error body: `{"error": "…"}`.
fn fly_error(body: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let short: String = parsed.error.chars().take(200).collect();
    Some((short.clone(), short))
}

const DIALECT: Dialect = Dialect {
    error: fly_error,
    remaining_header: None,
    reset_header: None,
    hints: HINTS,
};

/// The fields of a Machine that we use (the document has many more).
#[derive(Debug, Clone, Deserialize)]
pub struct Machine {
    pub id: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub config: Option<MachineConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MachineConfig {
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl Machine {
    fn group(&self) -> Option<&str> {
        self.config
            .as_ref()?
            .metadata
            .as_ref()?
            .get(PROCESS_GROUP_KEY)
            .map(String::as_str)
    }

    /// Running, or on its way: it counts toward the quantity.
    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "started" | "starting")
    }

    /// Stopped in a way Start undoes.
    fn is_startable(&self) -> bool {
        matches!(self.state.as_str(), "stopped" | "suspended" | "created")
    }
}

/// The started Machines of one app (or one process group of it).
pub struct FlyScaler {
    api: RestClient,
    app: String,
    process_group: Option<String>,
    /// How long one Wait may block on Fly's side, whole seconds.
    wait_s: u64,
    known: Mutex<Option<Known>>,
}

impl FlyScaler {
    pub fn new(
        client: reqwest::Client,
        api_url: &Url,
        app: &str,
        process_group: Option<&str>,
        api_token: Secret,
        timeout: Duration,
    ) -> Self {
        let label = match process_group {
            Some(group) => format!("fly app {app}, process group {group}"),
            None => format!("fly app {app}"),
        };
        FlyScaler {
            api: RestClient::new(client, api_url, api_token, timeout, DIALECT, label),
            app: app.to_string(),
            process_group: process_group.map(str::to_string),
            wait_s: (timeout / 2).as_secs().max(1),
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

    /// The app's Machines of our group, in a stable order (by id).
    async fn machines(&self) -> Result<Vec<Machine>, ScaleError> {
        let url = self.api.url(&["v1", "apps", &self.app, "machines"], &[]);
        let body = self.api.call(Method::GET, &url, None).await?;
        let mut machines: Vec<Machine> = parse::<Vec<Machine>>(&body)?
            .into_iter()
            .filter(|machine| match &self.process_group {
                Some(group) => machine.group() == Some(group.as_str()),
                None => true,
            })
            .collect();
        machines.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(machines)
    }

    fn counted(&self, machines: &[Machine]) -> u32 {
        let running = machines.iter().filter(|m| m.is_running()).count() as u32;
        *self.known.lock().unwrap() = Some(Known {
            quantity: running,
            at: tokio::time::Instant::now(),
        });
        running
    }

    /// Starts or stops one Machine, then waits for it to get there. A Wait that fails is
    /// logged, not returned: the change was accepted, and the count read next says how far
    /// it got.
    async fn change(&self, machine: &str, start: bool) -> Result<(), ScaleError> {
        let (action, state) = if start {
            ("start", "started")
        } else {
            ("stop", "stopped")
        };
        let url = self
            .api
            .url(&["v1", "apps", &self.app, "machines", machine, action], &[]);
        self.api.call(Method::POST, &url, None).await?;
        let wait_s = self.wait_s.to_string();
        let url = self.api.url(
            &["v1", "apps", &self.app, "machines", machine, "wait"],
            &[("state", state), ("timeout", &wait_s)],
        );
        if let Err(error) = self.api.call(Method::GET, &url, None).await {
            tracing::warn!(target = %self.api.label(), machine, %error, "A Machine did not reach its state in time.");
        }
        Ok(())
    }
}

#[async_trait]
impl Scaler for FlyScaler {
    fn describe(&self) -> String {
        self.api.label().to_string()
    }

    async fn current(&self) -> Result<u32, ScaleError> {
        let machines = self.machines().await?;
        Ok(self.counted(&machines))
    }

    /// Starts the first stopped Machines (by id) or stops the last running ones until
    /// `quantity` run, or every Machine does. Each Start or Stop is absolute for its Machine,
    /// so a retried call can never change more than asked.
    async fn set(&self, quantity: u32) -> Result<u32, ScaleError> {
        let machines = self.machines().await?;
        let running = self.counted(&machines);
        if quantity > running {
            let startable: Vec<&Machine> = machines.iter().filter(|m| m.is_startable()).collect();
            let wanted = (quantity - running) as usize;
            if startable.len() < wanted {
                tracing::warn!(
                    target = %self.api.label(),
                    wanted = quantity,
                    possible = running as usize + startable.len(),
                    "Fly.io runs only the Machines an app has: create more with `fly scale count` to go higher."
                );
            }
            for machine in startable.into_iter().take(wanted) {
                self.change(&machine.id, true).await?;
            }
        } else if quantity < running {
            let excess = (running - quantity) as usize;
            let running: Vec<&Machine> = machines.iter().filter(|m| m.is_running()).collect();
            for machine in running.into_iter().rev().take(excess) {
                self.change(&machine.id, false).await?;
            }
        } else {
            return Ok(running);
        }
        let machines = self.machines().await?;
        Ok(self.counted(&machines))
    }

    fn recent(&self) -> Option<Known> {
        *self.known.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(json: serde_json::Value) -> Machine {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_machine_counts_when_started_or_starting() {
        let started = machine(serde_json::json!({ "id": "a", "state": "started" }));
        let stopped = machine(serde_json::json!({ "id": "b", "state": "stopped" }));
        let destroyed = machine(serde_json::json!({ "id": "c", "state": "destroyed" }));
        assert!(started.is_running() && !started.is_startable());
        assert!(!stopped.is_running() && stopped.is_startable());
        assert!(!destroyed.is_running() && !destroyed.is_startable());
    }

    #[test]
    fn the_process_group_is_read_from_the_metadata() {
        let worker = machine(serde_json::json!({
            "id": "a", "state": "started",
            "config": { "metadata": { "fly_process_group": "worker" } }
        }));
        assert_eq!(worker.group(), Some("worker"));
        assert_eq!(machine(serde_json::json!({ "id": "b" })).group(), None);
    }

    #[test]
    fn fly_errors_are_read_and_others_left_alone() {
        assert_eq!(
            fly_error(br#"{"error": "Authenticate: token validation error"}"#)
                .unwrap()
                .0,
            "Authenticate: token validation error"
        );
        assert!(fly_error(b"<html>").is_none());
    }
}
