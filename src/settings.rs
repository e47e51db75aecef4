//! Settings: load a TOML file and `AUTOSCALE_*` environment variables (the `config` crate),
//! then check every value and build [`AppSettings`], the validated settings of one app.
//!
//! Loading happens in two stages, as ripgrep does it: a raw table of values, then typed,
//! cross-checked settings. Every problem is reported, not only the first, each naming the key,
//! the bad value and what was expected. Secrets are never shown. This module does no network
//! I/O and never reads the clock.

use crate::downtime::{BadEntry, Window};
use crate::schedule::Schedule;
use autoscalebot_backends::activator::Endpoint;
use autoscalebot_backends::leader::postgres::DEFAULT_LOCK_KEY;
use autoscalebot_backends::notify::{EmailConfig, WebhookConfig};
use autoscalebot_backends::scaler::Commands;
use autoscalebot_backends::Secret;
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

mod app;
mod apps;
mod engine;
mod policy;
mod reader;
mod tables;

use apps::{read_apps, read_globals};
pub use policy::{PolicyKind, PolicySettings};
use reader::{env_origins, raw_table};
pub use reader::{format_duration, parse_duration, Reader};

/// Everything the worker runs: the apps (one without `[[apps]]`, each `[[apps]]` entry
/// otherwise) and the settings of the worker as a whole.
#[derive(Debug, Clone)]
pub struct Settings {
    pub apps: Vec<AppSettings>,
    /// `leader_lock_url`: only the worker holding this PostgreSQL advisory lock acts.
    pub leader_lock_url: Option<Secret>,
    /// `leader_lock_key`: the advisory lock's key, so that two fleets in one database each
    /// have a leader.
    pub leader_lock_key: i64,
    /// The environment variable `leader_lock_url` was taken from (`"env:NAME"`, or
    /// `DATABASE_URL` for `"env"`), for `check`.
    pub leader_lock_url_variable: Option<String>,
    /// `heroku_api_calls_per_hour`: the most Platform API calls an hour the worker spends
    /// per API key.
    pub heroku_api_calls_per_hour: u32,
}

impl Settings {
    /// The port of the worker's one HTTP server: the one every app that names a port names
    /// (`http_port`, at the top level or in an entry, else `$PORT`; loading refuses two).
    pub fn http_port(&self) -> Option<u16> {
        self.apps.iter().find_map(|app| app.http_port)
    }

    /// The settings of the worker as a whole, as `(key, value)` lines for `check`. The lock's
    /// URL is shown as the user, host and database it names: never its password.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let lock = match &self.leader_lock_url {
            None => "(not set)".to_string(),
            Some(url) => match autoscalebot_backends::leader::postgres::parse_url(url) {
                Ok(config) => format!(
                    "\"***\" ({}, sslmode={})",
                    autoscalebot_backends::leader::postgres::describe(&config),
                    autoscalebot_backends::leader::postgres::describe_ssl_mode(&config)
                ),
                Err(_) => "\"***\"".to_string(),
            },
        };
        let lock = match &self.leader_lock_url_variable {
            Some(variable) => format!("{lock} (from env:{variable})"),
            None => lock,
        };
        vec![
            ("leader_lock_url", lock),
            ("leader_lock_key", self.leader_lock_key.to_string()),
            (
                "heroku_api_calls_per_hour",
                self.heroku_api_calls_per_hour.to_string(),
            ),
        ]
    }
}

/// The settings that belong to the worker as a whole: only at the top level of the file,
/// never inside an `[[apps]]` entry.
pub const GLOBAL_KEYS: &[&str] = &[
    "leader_lock_url",
    "leader_lock_key",
    "heroku_api_calls_per_hour",
];

/// What Heroku gives each account: 4,500 calls an hour (`../shared/heroku/README.md`).
pub const HEROKU_CALLS_PER_HOUR: u32 = 4500;
/// The worker's default share of it, leaving a fifth for deploys, the CLI and the dashboard.
const DEFAULT_CALLS_PER_HOUR: u32 = 3600;

/// The validated settings of one app. Names follow seed 001 in snake_case.
#[derive(Debug, Clone)]
pub struct AppSettings {
    pub heroku_app_name: String,
    pub heroku_api_key: Secret,
    pub heroku_api_url: Url,
    pub heroku_api_timeout: Duration,
    pub process_type: String,
    pub app_url: Url,
    /// Absolute: a relative `heartbeat_url` is resolved against `app_url`.
    pub heartbeat_url: Url,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub max_response_time_ms: u64,
    pub min_response_time_ms: u64,
    pub number_of_fails_to_scale_up_after: u32,
    pub number_of_passes_to_scale_down_after: u32,
    pub max_dynos: Schedule,
    pub min_dynos: Schedule,
    pub increment: u32,
    /// `policy` and the target policy's knobs (`settings/policy.rs`).
    pub policy: PolicySettings,
    pub notification_backends: Vec<String>,
    pub notify_if_scale_diff_exceeds_threshold: Option<Schedule>,
    pub notify_if_scale_diff_exceeds_period: Option<Duration>,
    pub notify_if_needs_exceed_max: bool,
    pub notify_if_needs_below_min: bool,
    pub notify_on_scale_fails: bool,
    pub notify_on_every_scale: bool,
    pub notify_on_every_ping: bool,
    pub notify_repeat_after: Duration,
    pub time_zone: Tz,
    pub scale_up_cooldown: Duration,
    pub scale_down_cooldown: Duration,
    /// Which platform the size is set on.
    pub scaler: ScalerKind,
    /// The `command` scaler's hooks (all `None` with `scaler = "heroku"`).
    pub commands: Commands,
    pub command_timeout: Duration,
    /// Scale to zero after this long with no traffic (only while `min_dynos` in force is 0).
    pub idle_after: Option<Duration>,
    /// Stop after running this long, whatever the traffic.
    pub max_age: Option<Duration>,
    pub shutdown_hook: Option<ShutdownHookSettings>,
    pub activator: Option<ActivatorSettings>,
    /// The `[email]` table, when given: what the `email` backend needs.
    pub email: Option<EmailConfig>,
    /// The `[webhook]` table, when given: what the `webhook` backend needs.
    pub webhook: Option<WebhookConfig>,
    /// Planned downtime windows from `downtime` in the settings and `AUTOSCALE_DOWNTIME`.
    /// Empty when `downtime_disable` is on.
    pub downtime: Vec<Window>,
    /// Bad entries of `AUTOSCALE_DOWNTIME`: reported and ignored, never fatal.
    pub downtime_warnings: Vec<BadEntry>,
    /// The file of downtime windows, re-read on every heartbeat; `None` when set to "".
    pub downtime_file: Option<PathBuf>,
    /// The heartbeat response header that announces downtime; `None` when set to "".
    pub downtime_header: Option<String>,
    /// During a window, hold the formation at this size.
    pub downtime_dynos: Option<u32>,
    /// `AUTOSCALE_DOWNTIME_DISABLE=1`: ignore every downtime source.
    pub downtime_disable: bool,
    pub notify_on_downtime: bool,
    /// What the decision counts: heartbeats, router windows from the log drain, or both.
    pub signal: Signal,
    /// The span of router requests one decision looks at.
    pub router_window: Duration,
    /// The port of the HTTP server (drain, metrics, health, status page): `http_port`, else
    /// `$PORT`; `None` runs no server. 0 picks a free port (it is logged).
    pub http_port: Option<u16>,
    /// The basic-auth password a log drain must send; `POST /logs` is off without it.
    pub log_drain_password: Option<Secret>,
    pub log_format: LogFormat,
    /// Secret setting (`heroku_api_key`, `webhook.headers.Authorization`) → the environment
    /// variable its `"env:NAME"` value named, so `check` can say where a secret comes from.
    pub secret_variables: BTreeMap<String, String>,
}

/// Where the size is set: the Heroku Platform API or the user's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalerKind {
    Heroku,
    Command,
}

impl ScalerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ScalerKind::Heroku => "heroku",
            ScalerKind::Command => "command",
        }
    }
}

/// Which measurements count as fails and passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The heartbeat alone (2.1's behaviour).
    Heartbeat,
    /// The p95 of each router window from the log drain; no heartbeat is sent.
    Router,
    /// Both: a fail from either is a fail.
    Both,
}

impl Signal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Signal::Heartbeat => "heartbeat",
            Signal::Router => "router",
            Signal::Both => "both",
        }
    }

    pub fn uses_heartbeat(&self) -> bool {
        matches!(self, Signal::Heartbeat | Signal::Both)
    }

    pub fn uses_router(&self) -> bool {
        matches!(self, Signal::Router | Signal::Both)
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// logfmt on Heroku (`DYNO` is set), text elsewhere.
    Auto,
    Logfmt,
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Logfmt => "logfmt",
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    /// The concrete format: `Auto` becomes logfmt when running on a dyno.
    pub fn resolve(self, on_dyno: bool) -> LogFormat {
        match self {
            LogFormat::Auto if on_dyno => LogFormat::Logfmt,
            LogFormat::Auto => LogFormat::Text,
            other => other,
        }
    }
}

/// The `[shutdown_hook]` table: the request made right before every stop (seed 000).
#[derive(Debug, Clone)]
pub struct ShutdownHookSettings {
    pub url: Url,
    pub method: reqwest::Method,
    /// Values are secrets: they often carry an `Authorization`.
    pub headers: Vec<(String, Secret)>,
    pub body: String,
    pub timeout: Duration,
}

/// The `[activator]` table: listen, wake the target on demand, forward, stop it when idle.
#[derive(Debug, Clone)]
pub struct ActivatorSettings {
    pub listen: Endpoint,
    /// Where to forward to. `None` with a local `command`: the command is handed the
    /// listening socket as fd 3 and accepts on it itself.
    pub target: Option<Endpoint>,
    pub wake_timeout: Duration,
    /// From `activator.idle_after`, else the top-level `idle_after`; `None`: never stop.
    pub idle_after: Option<Duration>,
    pub command: Option<String>,
    pub stop_signal: i32,
    pub stop_signal_name: String,
    pub stop_timeout: Duration,
}

/// What the settings are loaded for: what `run` needs (a platform, a heartbeat) differs from
/// what `activate` with a local `command` needs (neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    #[default]
    Worker,
    Activator,
}

/// What loading needs beyond the raw values: where the settings file is (a relative
/// `downtime_file` is beside it) and the `AUTOSCALE_DOWNTIME` list, which adds to the file's
/// `downtime` rather than replacing it as other variables do.
#[derive(Debug, Clone, Default)]
pub struct LoadContext {
    pub settings_dir: Option<PathBuf>,
    pub env_downtime: Option<String>,
    /// `$PORT`, Heroku's port for the web process: the default of `http_port`.
    pub env_port: Option<String>,
    /// What the settings are for: `activate` with a local command needs no platform.
    pub purpose: Purpose,
}

/// The notification backends this build knows.
pub const NOTIFICATION_BACKENDS: &[&str] = &["console", "email", "log", "test", "webhook"];

/// One thing wrong with the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    /// The bad value as the user wrote it (`***` for secrets); `None` when it is missing.
    pub value: Option<String>,
    /// Where the value came from, when known: a file name or "the environment".
    pub origin: Option<String>,
    pub expected: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} = {value}", self.key)?,
            None => write!(f, "{} is not set", self.key)?,
        }
        if let Some(origin) = &self.origin {
            write!(f, " (from {origin})")?;
        }
        write!(f, ": expected {}", self.expected)
    }
}

/// Every problem found while loading the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{count} problem{} in the settings",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

impl SettingsError {
    fn one(key: &str, value: Option<String>, expected: impl Into<String>) -> Self {
        SettingsError {
            problems: vec![Problem {
                key: key.to_string(),
                value,
                origin: None,
                expected: expected.into(),
            }],
        }
    }
}

/// Loads settings from an optional TOML file and the given environment (pass
/// `std::env::vars().collect()` in production; tests pass their own map).
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Settings, SettingsError> {
    load_for(path, env, Purpose::Worker)
}

/// Loads settings for `purpose`; see [`Purpose`].
pub fn load_for(
    path: Option<&Path>,
    env: &HashMap<String, String>,
    purpose: Purpose,
) -> Result<Settings, SettingsError> {
    if let Some(path) = path {
        if !path.is_file() {
            return Err(SettingsError::one(
                "--settings",
                Some(format!("{:?}", path.display().to_string())),
                "a readable TOML settings file (copy settings.example.toml to start)",
            ));
        }
    }
    let file = path.map(|path| config::File::from(path).format(config::FileFormat::Toml));
    let settings_dir = path.map(|path| path.parent().unwrap_or(Path::new("")).to_path_buf());
    from_sources(file, env, settings_dir, purpose).map_err(|mut error| {
        // A file that is there but not valid TOML: name the file, rather than "is not set".
        if let Some(path) = path {
            for problem in &mut error.problems {
                if problem.key == "--settings" && problem.value.is_none() {
                    problem.value = Some(format!("{:?}", path.display().to_string()));
                }
            }
        }
        error
    })
}

/// Loads settings from TOML text and the given environment (for tests and the demo).
pub fn from_toml_str(text: &str, env: &HashMap<String, String>) -> Result<Settings, SettingsError> {
    from_toml_str_for(text, env, Purpose::Worker)
}

/// Loads settings for `purpose` from TOML text and the given environment.
pub fn from_toml_str_for(
    text: &str,
    env: &HashMap<String, String>,
    purpose: Purpose,
) -> Result<Settings, SettingsError> {
    from_sources(
        Some(config::File::from_str(text, config::FileFormat::Toml)),
        env,
        None,
        purpose,
    )
}

fn from_sources<S>(
    file: Option<S>,
    env: &HashMap<String, String>,
    settings_dir: Option<PathBuf>,
    purpose: Purpose,
) -> Result<Settings, SettingsError>
where
    S: config::Source + Send + Sync + 'static,
{
    let table = raw_table(file, env)?;
    let mut reader = Reader::new(table, "");
    reader.origins = env_origins(env);
    reader.env = std::sync::Arc::new(env.clone());
    let context = LoadContext {
        settings_dir,
        env_downtime: env.get(ENV_DOWNTIME).cloned(),
        env_port: env.get("PORT").cloned(),
        purpose,
    };
    let globals = read_globals(&mut reader, env);
    let apps = match reader.take("apps") {
        // Without [[apps]], the file describes one app, exactly as before.
        None => {
            let app = AppSettings::read_in(&mut reader, &context);
            reader.finish_unknown();
            app.map(|app| vec![app])
        }
        Some(entries) => read_apps(&mut reader, entries, &context),
    };
    match apps {
        Some(apps) if reader.problems.is_empty() => Ok(Settings {
            apps,
            leader_lock_url: globals.leader_lock_url,
            leader_lock_url_variable: globals.leader_lock_url_variable,
            leader_lock_key: globals.leader_lock_key.unwrap_or(DEFAULT_LOCK_KEY),
            heroku_api_calls_per_hour: globals
                .heroku_api_calls_per_hour
                .unwrap_or(DEFAULT_CALLS_PER_HOUR),
        }),
        _ => Err(SettingsError {
            problems: reader.problems,
        }),
    }
}

const DEFAULT_HEARTBEAT_URL: &str = "/autoscalebot/heartbeat/";
/// What logs and notifications call the app when no `heroku_app_name` is needed or given.
const DEFAULT_APP_LABEL: &str = "app";
/// The variable whose comma-separated intervals add to `downtime`.
pub const ENV_DOWNTIME: &str = "AUTOSCALE_DOWNTIME";
const DEFAULT_DOWNTIME_FILE: &str = "downtime.txt";
const DEFAULT_DOWNTIME_HEADER: &str = "X-Downtime";
const DEFAULT_HEROKU_API_URL: &str = "https://api.heroku.com";

#[cfg(test)]
mod tests;
