//! Settings: load a TOML file and `AUTOSCALE_*` environment variables (the `config` crate),
//! then check every value and build [`AppSettings`], the validated settings of one app.
//!
//! Loading happens in two stages, as ripgrep does it: a raw table of values, then typed,
//! cross-checked settings. Every problem is reported, not only the first, each naming the key,
//! the bad value and what was expected. Secrets are never shown. This module does no network
//! I/O and never reads the clock.

use crate::downtime::{self, BadEntry, Source, Window};
use crate::schedule::Schedule;
use autoscalebot_backends::activator::process::parse_signal;
use autoscalebot_backends::activator::Endpoint;
use autoscalebot_backends::notify::{
    email, webhook, DeliveryPolicy, EmailConfig, Template, WebhookConfig,
};
use autoscalebot_backends::scaler::Commands;
use autoscalebot_backends::Secret;
use chrono_tz::Tz;
use config::{Value, ValueKind};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Everything the worker runs. Today one app; the list is the seam for many.
#[derive(Debug, Clone)]
pub struct Settings {
    pub apps: Vec<AppSettings>,
}

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

/// Keys whose values are never shown: keys, passwords and tokens by name, the SMTP URL (it
/// holds the password), the hook URL (Slack keeps its token in the path) and hook headers.
fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.contains("key")
        || last.contains("password")
        || last.contains("token")
        || matches!(key, "email.smtp_url" | "webhook" | "webhook.url")
        || key.starts_with("webhook.headers")
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
    from_sources(file, env, settings_dir, purpose)
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
    let context = LoadContext {
        settings_dir,
        env_downtime: env.get(ENV_DOWNTIME).cloned(),
        env_port: env.get("PORT").cloned(),
        purpose,
    };
    let app = AppSettings::read_in(&mut reader, &context);
    reader.finish_unknown();
    match app {
        Some(app) if reader.problems.is_empty() => Ok(Settings { apps: vec![app] }),
        _ => Err(SettingsError {
            problems: reader.problems,
        }),
    }
}

/// Which setting each `AUTOSCALE_*` variable sets, so a problem can name the variable:
/// `AUTOSCALE_EMAIL__SMTP_URL` sets `email.smtp_url`.
fn env_origins(env: &HashMap<String, String>) -> HashMap<String, String> {
    let mut origins: HashMap<String, String> = env
        .keys()
        .filter_map(|name| {
            let key = name.strip_prefix("AUTOSCALE_")?;
            Some((key.to_lowercase().replace("__", "."), name.clone()))
        })
        .collect();
    if env.contains_key("HEROKU_API_KEY") && !origins.contains_key("heroku_api_key") {
        origins.insert("heroku_api_key".into(), "HEROKU_API_KEY".into());
    }
    origins
}

/// Merges the file and the environment into one raw table of values.
fn raw_table<S>(
    file: Option<S>,
    env: &HashMap<String, String>,
) -> Result<BTreeMap<String, Value>, SettingsError>
where
    S: config::Source + Send + Sync + 'static,
{
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(file);
    }
    let mut prefixed: config::Map<String, String> = env
        .iter()
        // AUTOSCALE_DOWNTIME adds windows to the file's list, so it is read on its own.
        .filter(|(name, _)| name.starts_with("AUTOSCALE_") && *name != ENV_DOWNTIME)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    // As the Heroku CLI does, HEROKU_API_KEY gives the key unless AUTOSCALE_ names one.
    if let Some(key) = env.get("HEROKU_API_KEY") {
        prefixed
            .entry("AUTOSCALE_HEROKU_API_KEY".to_string())
            .or_insert_with(|| key.clone());
    }
    builder = builder.add_source(
        config::Environment::with_prefix("AUTOSCALE")
            .prefix_separator("_")
            .separator("__")
            // Values stay text: the Reader parses each as its setting expects, so an API key
            // or a header value such as "00123" keeps its leading zeros, and lists are split
            // on commas by `Reader::string_list`.
            .try_parsing(false)
            .source(Some(prefixed)),
    );
    let built = builder.build().map_err(|error| {
        SettingsError::one(
            "--settings",
            None,
            format!("a valid TOML file ({})", scrub(&error.to_string())),
        )
    })?;
    let table = built
        .try_deserialize::<config::Map<String, Value>>()
        .map_err(|error| {
            SettingsError::one(
                "--settings",
                None,
                format!("a table of settings ({})", scrub(&error.to_string())),
            )
        })?;
    Ok(table.into_iter().collect())
}

/// Parser messages can quote a line of the file, which may hold a key: keep only the first
/// line of the message and cut anything after "=".
fn scrub(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    match first.find('=') {
        Some(at) => format!("{}…", &first[..at]),
        None => first.to_string(),
    }
}

/// Takes typed values out of a raw table, collecting a [`Problem`] for each bad one. What is
/// left at the end is unknown keys.
pub struct Reader {
    table: BTreeMap<String, Value>,
    prefix: String,
    known: Vec<String>,
    /// Setting → the environment variable that set it.
    pub origins: HashMap<String, String>,
    pub problems: Vec<Problem>,
}

impl Reader {
    pub fn new(table: BTreeMap<String, Value>, prefix: &str) -> Self {
        Reader {
            table,
            prefix: prefix.to_string(),
            known: Vec::new(),
            origins: HashMap::new(),
            problems: Vec::new(),
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Whether the key was given (without taking it).
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// A nested table as a reader of its own, whose problems are named `key.…`. `None` when
    /// absent, or when not a table (a problem is recorded). Hand it back with [`Reader::absorb`].
    pub fn table(&mut self, key: &str) -> Option<Reader> {
        let value = self.take(key)?;
        match value.kind.clone() {
            ValueKind::Table(entries) => {
                let mut child = Reader::new(entries.into_iter().collect(), &self.full_key(key));
                child.prefix.push('.');
                child.origins = self.origins.clone();
                Some(child)
            }
            _ => {
                self.bad(
                    key,
                    &value,
                    format!("a table: a [{key}] section, or {key}.name = value lines"),
                );
                None
            }
        }
    }

    /// Takes back a child from [`Reader::table`]: its unknown keys and all its problems.
    pub fn absorb(&mut self, mut child: Reader) {
        child.finish_unknown();
        self.problems.append(&mut child.problems);
    }

    /// Every entry left, taken: for tables whose keys are the user's (web hook headers).
    pub fn take_all(&mut self) -> Vec<(String, Value)> {
        let entries = std::mem::take(&mut self.table);
        self.known.extend(entries.keys().cloned());
        entries.into_iter().collect()
    }

    /// A string checked by `parse`; a problem with the reason when it fails. `None` when
    /// absent or bad.
    pub fn parsed<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.take(key)?;
        let text = match &value.kind {
            ValueKind::String(text) => text.clone(),
            _ => {
                self.bad(key, &value, "a string");
                return None;
            }
        };
        match parse(&text) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                self.bad(key, &value, why);
                None
            }
        }
    }

    /// Removes and returns a raw value.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.known.push(key.to_string());
        self.table.remove(key)
    }

    /// Records a problem with a present value.
    pub fn bad(&mut self, key: &str, value: &Value, expected: impl Into<String>) {
        let full = self.full_key(key);
        let shown = if is_secret_key(&full) {
            "\"***\"".to_string()
        } else {
            show(value)
        };
        let origin = self
            .origins
            .get(&full)
            .cloned()
            .or_else(|| value.origin().map(str::to_string));
        self.problems.push(Problem {
            key: full,
            value: Some(shown),
            origin,
            expected: expected.into(),
        });
    }

    /// Whether a problem was already recorded for this key.
    pub fn has_problem(&self, key: &str) -> bool {
        let full = self.full_key(key);
        self.problems.iter().any(|problem| problem.key == full)
    }

    /// Records a problem with a missing value.
    pub fn missing(&mut self, key: &str, expected: impl Into<String>) {
        let full = self.full_key(key);
        self.problems.push(Problem {
            key: full,
            value: None,
            origin: None,
            expected: expected.into(),
        });
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        let value = self.take(key)?;
        match &value.kind {
            ValueKind::String(text) => Some(text.clone()),
            ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_) => {
                Some(value.kind.to_string())
            }
            _ => {
                self.bad(key, &value, "a string");
                None
            }
        }
    }

    pub fn string_or(&mut self, key: &str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_string())
    }

    pub fn bool_or(&mut self, key: &str, default: bool) -> bool {
        let Some(value) = self.take(key) else {
            return default;
        };
        match &value.kind {
            ValueKind::Boolean(flag) => *flag,
            ValueKind::String(text) if matches!(text.as_str(), "true" | "1" | "yes" | "on") => true,
            ValueKind::String(text) if matches!(text.as_str(), "false" | "0" | "no" | "off") => {
                false
            }
            ValueKind::I64(1) | ValueKind::U64(1) => true,
            ValueKind::I64(0) | ValueKind::U64(0) => false,
            _ => {
                self.bad(key, &value, "true or false");
                default
            }
        }
    }

    /// A whole number from `min` up, or `None` (with a problem recorded) when it is not one.
    pub fn whole_value(
        &mut self,
        key: &str,
        value: &Value,
        min: i64,
        expected: &str,
    ) -> Option<u32> {
        let number = match &value.kind {
            ValueKind::I64(n) => Some(*n),
            ValueKind::U64(n) => i64::try_from(*n).ok(),
            ValueKind::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            ValueKind::String(text) => text.trim().parse::<i64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n >= min && n <= u32::MAX as i64 => Some(n as u32),
            _ => {
                self.bad(key, value, expected);
                None
            }
        }
    }

    pub fn whole_or(&mut self, key: &str, default: u32, min: i64, expected: &str) -> Option<u32> {
        match self.take(key) {
            None => Some(default),
            Some(value) => self.whole_value(key, &value, min, expected),
        }
    }

    /// A number that may have a fraction, above zero.
    pub fn positive_float_or(&mut self, key: &str, default: f64, expected: &str) -> Option<f64> {
        let Some(value) = self.take(key) else {
            return Some(default);
        };
        let number = match &value.kind {
            ValueKind::I64(n) => Some(*n as f64),
            ValueKind::U64(n) => Some(*n as f64),
            ValueKind::Float(f) => Some(*f),
            ValueKind::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n.is_finite() && n > 0.0 => Some(n),
            _ => {
                self.bad(key, &value, expected);
                None
            }
        }
    }

    /// A duration: `"90s"`, `"5m"`, `"1h"`, `"1h 30m"`, or a number of seconds.
    pub fn duration_or(&mut self, key: &str, default: Duration) -> Option<Duration> {
        let Some(value) = self.take(key) else {
            return Some(default);
        };
        let parsed = match &value.kind {
            ValueKind::String(text) => parse_duration(text),
            ValueKind::I64(n) if *n >= 0 => Some(Duration::from_secs(*n as u64)),
            ValueKind::U64(n) => Some(Duration::from_secs(*n)),
            ValueKind::Float(f) if f.is_finite() && *f >= 0.0 => Some(Duration::from_secs_f64(*f)),
            _ => None,
        };
        if parsed.is_none() {
            self.bad(
                key,
                &value,
                "a duration such as \"90s\", \"5m\" or \"1h\" (or a number of seconds)",
            );
        }
        parsed
    }

    /// An optional duration above zero: `None` when absent or bad (a problem is recorded).
    pub fn positive_duration(&mut self, key: &str) -> Option<Duration> {
        let value = self.table.get(key).cloned()?;
        let duration = self.duration_or(key, Duration::ZERO)?;
        if duration.is_zero() {
            self.bad(
                key,
                &value,
                "a duration above zero such as \"10m\" (leave it out to turn this off)",
            );
            return None;
        }
        Some(duration)
    }

    /// A whole number or a time-of-day table of whole numbers.
    pub fn schedule(&mut self, key: &str, value: Value) -> Option<Schedule> {
        let expected = "a whole number (0 or more) or a time-of-day table such as { \"0:00\" = 2, \"9:00\" = 5 }";
        match value.kind.clone() {
            ValueKind::Table(entries) => {
                let mut parsed = Vec::new();
                let mut ok = true;
                for (time, entry) in entries {
                    match self.whole_value(
                        &format!("{key}.\"{time}\""),
                        &entry,
                        0,
                        "a whole number (0 or more)",
                    ) {
                        Some(n) => parsed.push((time, n)),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                match Schedule::daily(parsed.iter().map(|(time, n)| (time.as_str(), *n))) {
                    Ok(schedule) => Some(schedule),
                    Err(why) => {
                        self.bad(key, &value, format!("a time-of-day table: {why}"));
                        None
                    }
                }
            }
            _ => self
                .whole_value(key, &value, 0, expected)
                .map(Schedule::Fixed),
        }
    }

    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        let value = self.take(key)?;
        let items = match value.kind.clone() {
            ValueKind::Array(items) => items,
            ValueKind::String(text) if text.trim().is_empty() => Vec::new(),
            // From the environment a list arrives as one string: "console,log".
            ValueKind::String(text) => text
                .split(',')
                .map(|item| Value::new(None, item.trim().to_string()))
                .collect(),
            _ => {
                self.bad(
                    key,
                    &value,
                    "a list of strings such as [\"console\", \"log\"]",
                );
                return None;
            }
        };
        let mut list = Vec::new();
        for item in items {
            match item.kind {
                ValueKind::String(text) => list.push(text.trim().to_string()),
                _ => {
                    self.bad(
                        key,
                        &value,
                        "a list of strings such as [\"console\", \"log\"]",
                    );
                    return None;
                }
            }
        }
        Some(list)
    }

    /// Reports every key nobody took, with the nearest known name when one is close.
    pub fn finish_unknown(&mut self) {
        let leftover = std::mem::take(&mut self.table);
        for (key, value) in leftover {
            let nearest = self
                .known
                .iter()
                .map(|known| (strsim::jaro_winkler(&key, known), known))
                .filter(|(score, _)| *score > 0.85)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, known)| known.clone());
            let expected = match nearest {
                Some(known) => format!("a known setting: did you mean {}{known}?", self.prefix),
                None => "a known setting (see settings.example.toml for the list)".to_string(),
            };
            self.bad(&key, &value, expected);
        }
    }
}

/// How a raw value is shown in a message: strings quoted, the rest as written.
fn show(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(text) => format!("{text:?}"),
        ValueKind::Table(table) => {
            let entries: Vec<String> = table
                .iter()
                .map(|(key, entry)| format!("{key:?} = {}", show(entry)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        ValueKind::Array(items) => {
            let items: Vec<String> = items.iter().map(show).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// `"90s"`, `"5m"`, `"1h"`, `"1h 30m"`, `"0"` (humantime), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    humantime::parse_duration(text).ok()
}

/// A duration as people write it in the settings: "90s", "1h 30m".
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_string();
    }
    humantime::format_duration(duration).to_string()
}

const DEFAULT_HEARTBEAT_URL: &str = "/autoscalebot/heartbeat/";
/// What logs and notifications call the app when no `heroku_app_name` is needed or given.
const DEFAULT_APP_LABEL: &str = "app";
/// The variable whose comma-separated intervals add to `downtime`.
pub const ENV_DOWNTIME: &str = "AUTOSCALE_DOWNTIME";
const DEFAULT_DOWNTIME_FILE: &str = "downtime.txt";
const DEFAULT_DOWNTIME_HEADER: &str = "X-Downtime";
const DEFAULT_HEROKU_API_URL: &str = "https://api.heroku.com";

impl AppSettings {
    /// Reads one app's settings for the worker, recording every problem in `reader`. `None`
    /// when any value of this app is unusable.
    pub fn read(reader: &mut Reader) -> Option<AppSettings> {
        AppSettings::read_in(reader, &LoadContext::default())
    }

    /// Reads one app's settings for `purpose` (see [`Purpose`]).
    pub fn read_for(reader: &mut Reader, purpose: Purpose) -> Option<AppSettings> {
        let context = LoadContext {
            purpose,
            ..LoadContext::default()
        };
        AppSettings::read_in(reader, &context)
    }

    /// [`AppSettings::read`], knowing where the settings file is and `AUTOSCALE_DOWNTIME`.
    pub fn read_in(reader: &mut Reader, context: &LoadContext) -> Option<AppSettings> {
        let purpose = context.purpose;
        let problems_before = reader.problems.len();

        let scaler_text = reader.string_or("scaler", "heroku");
        let scaler = match scaler_text.as_str() {
            "heroku" => Some(ScalerKind::Heroku),
            "command" => Some(ScalerKind::Command),
            _ => {
                let value = Value::new(None, scaler_text.clone());
                reader.bad(
                    "scaler",
                    &value,
                    "\"heroku\" (the Platform API) or \"command\" (your scale_command, start_command and stop_command)",
                );
                None
            }
        };
        let top_idle_after = reader.positive_duration("idle_after");
        let activator = read_activator(reader, purpose, top_idle_after);
        // `activate` with a local command needs no platform and no heartbeat.
        let needs_platform = !(purpose == Purpose::Activator
            && activator.as_ref().is_some_and(|a| a.command.is_some()));
        let needs_heroku = needs_platform && scaler == Some(ScalerKind::Heroku);

        let heroku_app_name = reader.string("heroku_app_name");
        match &heroku_app_name {
            None if needs_heroku => reader.missing(
                "heroku_app_name",
                "the name of your Heroku app, such as \"dancing-forest-1234\" (or AUTOSCALE_HEROKU_APP_NAME)",
            ),
            None => {}
            Some(name) if name.is_empty() || name.contains(['/', ' ', '?', '#']) => {
                let value = Value::new(None, name.clone());
                reader.bad("heroku_app_name", &value, "an app name: letters, digits and dashes");
            }
            Some(_) => {}
        }
        let heroku_api_key = reader.string("heroku_api_key").map(Secret::new);
        if needs_heroku && heroku_api_key.as_ref().is_none_or(Secret::is_empty) {
            reader.missing(
                "heroku_api_key",
                "your Heroku API key (`heroku auth:token`), in the file or in HEROKU_API_KEY",
            );
        }
        let heroku_api_url = read_url(reader, "heroku_api_url", Some(DEFAULT_HEROKU_API_URL));
        let heroku_api_timeout_ms = reader.whole_or(
            "heroku_api_timeout_in_ms",
            10_000,
            1,
            "a whole number of milliseconds above 0",
        );
        let process_type = reader.string_or("process_type", "web");
        if process_type.is_empty() || process_type.contains(['/', ' ']) {
            let value = Value::new(None, process_type.clone());
            reader.bad(
                "process_type",
                &value,
                "a process type from your Procfile, such as \"web\"",
            );
        }
        let default_app_url = heroku_app_name
            .as_deref()
            .map(|name| format!("https://{name}.herokuapp.com"));
        let heartbeat_url_text = reader.string_or("heartbeat_url", DEFAULT_HEARTBEAT_URL);
        let app_url = match read_url(reader, "app_url", default_app_url.as_deref()) {
            Some(url) => Some(url),
            None if reader
                .problems
                .iter()
                .any(|problem| problem.key.ends_with("app_url")) =>
            {
                None
            }
            // No app name to make one from: an absolute heartbeat_url gives the base.
            None => match Url::parse(&heartbeat_url_text) {
                Ok(url) => url.join("/").ok(),
                // The missing app name is the problem: app_url follows from it once given.
                Err(_) if needs_heroku && heroku_app_name.is_none() => None,
                Err(_) if purpose == Purpose::Activator => {
                    // `activate` never sends a heartbeat.
                    Url::parse("http://localhost/").ok()
                }
                Err(_) => {
                    reader.missing(
                        "app_url",
                        "your app's base URL such as \"https://app.example.com\", for the heartbeat (or an absolute heartbeat_url)",
                    );
                    None
                }
            },
        };
        let heartbeat_url =
            app_url
                .as_ref()
                .and_then(|base| match base.join(&heartbeat_url_text) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                    _ => {
                        let value = Value::new(None, heartbeat_url_text.clone());
                        reader.bad(
                    "heartbeat_url",
                    &value,
                    "an http(s) URL, or a path such as \"/autoscalebot/heartbeat/\" on app_url",
                );
                        None
                    }
                });
        let interval_seconds = reader.positive_float_or(
            "heartbeat_interval_in_seconds",
            30.0,
            "a number of seconds above 0, such as 30 or 0.5",
        );
        let max_response_time_ms = reader.whole_or(
            "max_response_time_in_ms",
            1000,
            1,
            "a whole number of milliseconds above 0",
        );
        let min_response_time_ms = reader.whole_or(
            "min_response_time_in_ms",
            200,
            0,
            "a whole number of milliseconds (0 or more)",
        );
        let default_timeout = max_response_time_ms.map_or(5000, |max| (max * 2).max(5000));
        let heartbeat_timeout_ms = reader.whole_or(
            "heartbeat_timeout_in_ms",
            default_timeout,
            1,
            "a whole number of milliseconds above 0",
        );
        let fails = reader.whole_or(
            "number_of_fails_to_scale_up_after",
            3,
            1,
            "a whole number of heartbeats, 1 or more",
        );
        let passes = reader.whole_or(
            "number_of_passes_to_scale_down_after",
            5,
            1,
            "a whole number of heartbeats, 1 or more",
        );
        let max_dynos = match reader.take("max_dynos") {
            None => Some(Schedule::Fixed(3)),
            Some(value) => reader.schedule("max_dynos", value),
        };
        let min_dynos = match reader.take("min_dynos") {
            None => Some(Schedule::Fixed(1)),
            Some(value) => reader.schedule("min_dynos", value),
        };
        let increment = reader.whole_or("increment", 1, 1, "a whole number of dynos, 1 or more");
        let notification_backends = reader
            .string_list("notification_backends")
            .unwrap_or_default();
        for name in &notification_backends {
            if !NOTIFICATION_BACKENDS.contains(&name.as_str()) {
                let value = Value::new(None, name.clone());
                reader.bad(
                    "notification_backends",
                    &value,
                    format!("one of {}", NOTIFICATION_BACKENDS.join(", ")),
                );
            }
        }
        let threshold = reader
            .take("notify_if_scale_diff_exceeds_threshold")
            .and_then(|value| reader.schedule("notify_if_scale_diff_exceeds_threshold", value));
        let period_minutes = match reader.take("notify_if_scale_diff_exceeds_period_in_minutes") {
            None => None,
            Some(value) => {
                let minutes = match &value.kind {
                    ValueKind::I64(n) if *n > 0 => Some(*n as f64),
                    ValueKind::U64(n) if *n > 0 => Some(*n as f64),
                    ValueKind::Float(f) if f.is_finite() && *f > 0.0 => Some(*f),
                    ValueKind::String(text) => text.trim().parse::<f64>().ok().filter(|m| *m > 0.0),
                    _ => None,
                };
                if minutes.is_none() {
                    reader.bad(
                        "notify_if_scale_diff_exceeds_period_in_minutes",
                        &value,
                        "a number of minutes above 0",
                    );
                }
                minutes.map(|m| Duration::from_secs_f64(m * 60.0))
            }
        };
        let notify_if_needs_exceed_max = reader.bool_or("notify_if_needs_exceed_max", true);
        let notify_if_needs_below_min = reader.bool_or("notify_if_needs_below_min", false);
        let notify_on_scale_fails = reader.bool_or("notify_on_scale_fails", false);
        let notify_on_every_scale = reader.bool_or("notify_on_every_scale", false);
        let notify_on_every_ping = reader.bool_or("notify_on_every_ping", false);
        let notify_repeat_after =
            reader.duration_or("notify_repeat_after", Duration::from_secs(3600));
        let time_zone_text = reader.string_or("time_zone", "UTC");
        let time_zone = match time_zone_text.parse::<Tz>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                let value = Value::new(None, time_zone_text.clone());
                reader.bad(
                    "time_zone",
                    &value,
                    "an IANA time zone name such as \"UTC\", \"Europe/London\" or \"America/Vancouver\"",
                );
                None
            }
        };
        let scale_up_cooldown = reader.duration_or("scale_up_cooldown", Duration::ZERO);
        let scale_down_cooldown = reader.duration_or("scale_down_cooldown", Duration::ZERO);
        let email = read_email(reader, &notification_backends);
        let webhook = read_webhook(reader, &notification_backends);
        let notify_on_downtime = reader.bool_or("notify_on_downtime", true);
        let downtime_disable = reader.bool_or("downtime_disable", false);
        let downtime_entries = reader.take("downtime");
        let (downtime, downtime_warnings) = match (downtime_disable, time_zone) {
            (false, Some(zone)) => read_downtime(reader, downtime_entries, context, zone),
            _ => (Vec::new(), Vec::new()),
        };
        let downtime_file = match reader.string("downtime_file") {
            Some(path) if path.trim().is_empty() => None,
            Some(path) => Some(beside_settings(context, &path)),
            None => Some(beside_settings(context, DEFAULT_DOWNTIME_FILE)),
        };
        let downtime_header_text = reader.string_or("downtime_header", DEFAULT_DOWNTIME_HEADER);
        let downtime_header = match downtime_header_text.trim() {
            "" => None,
            name if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                Some(name.to_string())
            }
            _ => {
                let value = Value::new(None, downtime_header_text.clone());
                reader.bad(
                    "downtime_header",
                    &value,
                    "an HTTP header name such as \"X-Downtime\", or \"\" for none",
                );
                None
            }
        };
        let downtime_dynos = reader.take("downtime_dynos").and_then(|value| {
            reader.whole_value(
                "downtime_dynos",
                &value,
                0,
                "a whole number of dynos (0 or more)",
            )
        });
        let signal_text = reader.string_or("signal", "heartbeat");
        let signal = match signal_text.as_str() {
            "heartbeat" => Some(Signal::Heartbeat),
            "router" => Some(Signal::Router),
            "both" => Some(Signal::Both),
            _ => {
                let value = Value::new(None, signal_text.clone());
                reader.bad(
                    "signal",
                    &value,
                    "one of \"heartbeat\", \"router\", \"both\"",
                );
                None
            }
        };
        let default_window = Duration::from_secs_f64(interval_seconds.unwrap_or(30.0));
        let router_window = reader.duration_or("router_window", default_window);
        if router_window == Some(Duration::ZERO) {
            let value = Value::new(None, "0s");
            reader.bad(
                "router_window",
                &value,
                "a duration above 0, such as \"30s\"",
            );
        }
        let http_port = match reader.take("http_port") {
            Some(value) => reader
                .whole_value("http_port", &value, 0, "a TCP port from 0 to 65535")
                .and_then(|port| {
                    let port = u16::try_from(port).ok();
                    if port.is_none() {
                        reader.bad("http_port", &value, "a TCP port from 0 to 65535");
                    }
                    port
                })
                .map(Some),
            // Heroku's convention: the web process listens on $PORT.
            None => match context.env_port.clone() {
                None => Some(None),
                Some(text) => match text.trim().parse::<u16>() {
                    Ok(port) => Some(Some(port)),
                    Err(_) => {
                        let value = Value::new(Some(&"PORT".to_string()), text);
                        reader.bad("http_port", &value, "a TCP port from 0 to 65535 in PORT");
                        None
                    }
                },
            },
        };
        let log_drain_password = reader
            .string("log_drain_password")
            .map(Secret::new)
            .filter(|password| !password.is_empty());
        let log_format_text = reader.string_or("log_format", "auto");
        let log_format = match log_format_text.as_str() {
            "auto" => Some(LogFormat::Auto),
            "logfmt" => Some(LogFormat::Logfmt),
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                let value = Value::new(None, log_format_text.clone());
                reader.bad(
                    "log_format",
                    &value,
                    "one of \"auto\", \"logfmt\", \"text\", \"json\"",
                );
                None
            }
        };
        if signal.is_some_and(|signal| signal.uses_router()) {
            if log_drain_password.is_none() {
                reader.missing(
                    "log_drain_password",
                    format!(
                        "a password for the log drain's basic auth, since signal = \"{signal_text}\""
                    ),
                );
            }
            if http_port == Some(None) {
                reader.missing(
                    "http_port",
                    format!("a port for the log drain (or PORT), since signal = \"{signal_text}\""),
                );
            }
        }

        let commands = Commands {
            scale_command: reader.string("scale_command"),
            start_command: reader.string("start_command"),
            stop_command: reader.string("stop_command"),
            quantity_command: reader.string("quantity_command"),
        };
        let command_timeout = reader.duration_or("command_timeout", Duration::from_secs(60));
        if command_timeout == Some(Duration::ZERO) {
            let value = Value::new(None, "0s");
            reader.bad(
                "command_timeout",
                &value,
                "a duration above zero such as \"60s\"",
            );
        }
        let max_age = reader.positive_duration("max_age");
        let shutdown_hook = read_shutdown_hook(reader);

        // Cross-field checks, only where both sides were readable.
        check_commands(
            reader,
            scaler,
            &commands,
            max_dynos.as_ref(),
            needs_platform,
        );
        let scaler_target = activator.as_ref().is_none_or(|a| a.command.is_none());
        let idle_in_force = top_idle_after.or(activator.as_ref().and_then(|a| a.idle_after));
        if let (Some(_), Some(min), true) = (idle_in_force, &min_dynos, scaler_target) {
            if !min
                .change_minutes()
                .into_iter()
                .chain(std::iter::once(0))
                .any(|minute| min.at_minute(minute) == 0)
            {
                let value = Value::new(None, min.to_string());
                reader.bad(
                    "min_dynos",
                    &value,
                    "0 at some time of day, since idle_after is set: idle_after scales to zero only while min_dynos in force is 0",
                );
            }
        }

        if let (Some(min), Some(max)) = (min_response_time_ms, max_response_time_ms) {
            if min > max {
                let value = Value::new(None, min as i64);
                reader.bad(
                    "min_response_time_in_ms",
                    &value,
                    format!("at most max_response_time_in_ms ({max})"),
                );
            }
        }
        if let (Some(min), Some(max)) = (&min_dynos, &max_dynos) {
            if let Some(minute) = first_minute_min_above_max(min, max) {
                let value = Value::new(None, min.to_string());
                reader.bad(
                    "min_dynos",
                    &value,
                    format!(
                        "at most max_dynos at every time of day, but at {}:{:02} min_dynos is {} and max_dynos is {}",
                        minute / 60,
                        minute % 60,
                        min.at_minute(minute),
                        max.at_minute(minute)
                    ),
                );
            }
        }
        match (&threshold, period_minutes) {
            (Some(_), None) => reader.missing(
                "notify_if_scale_diff_exceeds_period_in_minutes",
                "a number of minutes, since notify_if_scale_diff_exceeds_threshold is set",
            ),
            (None, Some(_)) => reader.missing(
                "notify_if_scale_diff_exceeds_threshold",
                "a number of dynos, since notify_if_scale_diff_exceeds_period_in_minutes is set",
            ),
            _ => {}
        }

        if reader.problems.len() > problems_before {
            return None;
        }
        Some(AppSettings {
            heroku_app_name: heroku_app_name.unwrap_or_else(|| DEFAULT_APP_LABEL.to_string()),
            heroku_api_key: heroku_api_key.unwrap_or_default(),
            heroku_api_url: heroku_api_url?,
            heroku_api_timeout: Duration::from_millis(heroku_api_timeout_ms? as u64),
            process_type,
            app_url: app_url?,
            heartbeat_url: heartbeat_url?,
            heartbeat_interval: Duration::from_secs_f64(interval_seconds?),
            heartbeat_timeout: Duration::from_millis(heartbeat_timeout_ms? as u64),
            max_response_time_ms: max_response_time_ms? as u64,
            min_response_time_ms: min_response_time_ms? as u64,
            number_of_fails_to_scale_up_after: fails?,
            number_of_passes_to_scale_down_after: passes?,
            max_dynos: max_dynos?,
            min_dynos: min_dynos?,
            increment: increment?,
            notification_backends,
            notify_if_scale_diff_exceeds_threshold: threshold,
            notify_if_scale_diff_exceeds_period: period_minutes,
            notify_if_needs_exceed_max,
            notify_if_needs_below_min,
            notify_on_scale_fails,
            notify_on_every_scale,
            notify_on_every_ping,
            notify_repeat_after: notify_repeat_after?,
            time_zone: time_zone?,
            scale_up_cooldown: scale_up_cooldown?,
            scale_down_cooldown: scale_down_cooldown?,
            scaler: scaler?,
            commands,
            command_timeout: command_timeout?,
            idle_after: top_idle_after,
            max_age,
            shutdown_hook,
            activator,
            email,
            webhook,
            downtime,
            downtime_warnings,
            downtime_file,
            downtime_header,
            downtime_dynos,
            downtime_disable,
            notify_on_downtime,
            signal: signal?,
            router_window: router_window?,
            http_port: http_port?,
            log_drain_password,
            log_format: log_format?,
        })
    }

    /// The settings in force as `(key, value)` lines for `autoscalebot check`; secrets as `***`.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let quoted = |text: &str| format!("{text:?}");
        let optional = |value: Option<String>| value.unwrap_or_else(|| "(not set)".to_string());
        let mut rows = vec![
            ("heroku_app_name", quoted(&self.heroku_app_name)),
            ("heroku_api_key", quoted(&self.heroku_api_key.to_string())),
            ("heroku_api_url", quoted(self.heroku_api_url.as_str())),
            (
                "heroku_api_timeout_in_ms",
                self.heroku_api_timeout.as_millis().to_string(),
            ),
            ("process_type", quoted(&self.process_type)),
            ("app_url", quoted(self.app_url.as_str())),
            ("heartbeat_url", quoted(self.heartbeat_url.as_str())),
            (
                "heartbeat_interval_in_seconds",
                self.heartbeat_interval.as_secs_f64().to_string(),
            ),
            (
                "heartbeat_timeout_in_ms",
                self.heartbeat_timeout.as_millis().to_string(),
            ),
            (
                "max_response_time_in_ms",
                self.max_response_time_ms.to_string(),
            ),
            (
                "min_response_time_in_ms",
                self.min_response_time_ms.to_string(),
            ),
            (
                "number_of_fails_to_scale_up_after",
                self.number_of_fails_to_scale_up_after.to_string(),
            ),
            (
                "number_of_passes_to_scale_down_after",
                self.number_of_passes_to_scale_down_after.to_string(),
            ),
            ("max_dynos", self.max_dynos.to_string()),
            ("min_dynos", self.min_dynos.to_string()),
            ("increment", self.increment.to_string()),
            (
                "notification_backends",
                format!(
                    "[{}]",
                    self.notification_backends
                        .iter()
                        .map(|name| quoted(name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "notify_if_scale_diff_exceeds_threshold",
                optional(
                    self.notify_if_scale_diff_exceeds_threshold
                        .as_ref()
                        .map(Schedule::to_string),
                ),
            ),
            (
                "notify_if_scale_diff_exceeds_period_in_minutes",
                optional(
                    self.notify_if_scale_diff_exceeds_period
                        .map(|p| (p.as_secs_f64() / 60.0).to_string()),
                ),
            ),
            (
                "notify_if_needs_exceed_max",
                self.notify_if_needs_exceed_max.to_string(),
            ),
            (
                "notify_if_needs_below_min",
                self.notify_if_needs_below_min.to_string(),
            ),
            (
                "notify_on_scale_fails",
                self.notify_on_scale_fails.to_string(),
            ),
            (
                "notify_on_every_scale",
                self.notify_on_every_scale.to_string(),
            ),
            (
                "notify_on_every_ping",
                self.notify_on_every_ping.to_string(),
            ),
            (
                "notify_repeat_after",
                quoted(&format_duration(self.notify_repeat_after)),
            ),
            ("time_zone", quoted(self.time_zone.name())),
            (
                "scale_up_cooldown",
                quoted(&format_duration(self.scale_up_cooldown)),
            ),
            (
                "scale_down_cooldown",
                quoted(&format_duration(self.scale_down_cooldown)),
            ),
            (
                "downtime",
                format!(
                    "[{}]",
                    self.downtime
                        .iter()
                        .filter(|window| matches!(window.source, Source::Settings { .. }))
                        .map(|window| quoted(&window.to_iso(self.time_zone)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "downtime_file",
                optional(
                    self.downtime_file
                        .as_ref()
                        .map(|path| quoted(&path.display().to_string())),
                ),
            ),
            (
                "downtime_header",
                optional(self.downtime_header.as_deref().map(quoted)),
            ),
            (
                "downtime_dynos",
                optional(self.downtime_dynos.map(|dynos| dynos.to_string())),
            ),
            ("downtime_disable", self.downtime_disable.to_string()),
            ("notify_on_downtime", self.notify_on_downtime.to_string()),
            ("signal", quoted(self.signal.as_str())),
            (
                "router_window",
                quoted(&format_duration(self.router_window)),
            ),
            (
                "http_port",
                optional(self.http_port.map(|port| port.to_string())),
            ),
            (
                "log_drain_password",
                optional(
                    self.log_drain_password
                        .as_ref()
                        .map(|password| quoted(&password.to_string())),
                ),
            ),
            ("log_format", quoted(self.log_format.as_str())),
        ];
        let email = self.email.as_ref();
        let list = |items: Vec<String>| {
            let items: Vec<String> = items.iter().map(|item| quoted(item)).collect();
            format!("[{}]", items.join(", "))
        };
        rows.extend([
            (
                "email.smtp_url",
                optional(email.map(|e| quoted(&email::redact_smtp_url(e.smtp_url.expose())))),
            ),
            (
                "email.from",
                optional(email.map(|e| quoted(&e.from.to_string()))),
            ),
            (
                "email.to",
                optional(email.map(|e| list(e.to.iter().map(|to| to.to_string()).collect()))),
            ),
            (
                "email.timeout",
                optional(email.map(|e| quoted(&format_duration(e.policy.timeout)))),
            ),
            (
                "email.give_up_after",
                optional(email.map(|e| quoted(&format_duration(e.policy.give_up_after)))),
            ),
        ]);
        let hook = self.webhook.as_ref();
        rows.extend([
            (
                "webhook.url",
                optional(hook.map(|h| quoted(&webhook::redact_url(&h.url)))),
            ),
            (
                "webhook.method",
                optional(hook.map(|h| quoted(h.method.as_str()))),
            ),
            (
                "webhook.headers",
                optional(hook.map(|h| {
                    let headers: Vec<String> = h
                        .headers
                        .iter()
                        .map(|(name, value)| {
                            format!("{} = {}", quoted(name.as_str()), quoted(&value.to_string()))
                        })
                        .collect();
                    format!("{{ {} }}", headers.join(", "))
                })),
            ),
            (
                "webhook.body",
                optional(hook.map(|h| match &h.body {
                    Some(body) => quoted(body.source()),
                    None => "(default: a JSON object with every field)".to_string(),
                })),
            ),
            (
                "webhook.timeout",
                optional(hook.map(|h| quoted(&format_duration(h.policy.timeout)))),
            ),
            (
                "webhook.give_up_after",
                optional(hook.map(|h| quoted(&format_duration(h.policy.give_up_after)))),
            ),
        ]);
        rows.extend([
            ("scaler", quoted(self.scaler.as_str())),
            (
                "scale_command",
                optional(self.commands.scale_command.as_deref().map(quoted)),
            ),
            (
                "start_command",
                optional(self.commands.start_command.as_deref().map(quoted)),
            ),
            (
                "stop_command",
                optional(self.commands.stop_command.as_deref().map(quoted)),
            ),
            (
                "quantity_command",
                optional(self.commands.quantity_command.as_deref().map(quoted)),
            ),
            (
                "command_timeout",
                quoted(&format_duration(self.command_timeout)),
            ),
            (
                "idle_after",
                optional(self.idle_after.map(|d| quoted(&format_duration(d)))),
            ),
            (
                "max_age",
                optional(self.max_age.map(|d| quoted(&format_duration(d)))),
            ),
        ]);
        let hook = self.shutdown_hook.as_ref();
        rows.extend([
            (
                "shutdown_hook.url",
                optional(hook.map(|h| quoted(h.url.as_str()))),
            ),
            (
                "shutdown_hook.method",
                optional(hook.map(|h| quoted(h.method.as_str()))),
            ),
            (
                "shutdown_hook.headers",
                optional(hook.map(|h| {
                    let names: Vec<String> = h
                        .headers
                        .iter()
                        .map(|(name, value)| {
                            format!("{} = {}", quoted(name), quoted(&value.to_string()))
                        })
                        .collect();
                    format!("{{ {} }}", names.join(", "))
                })),
            ),
            (
                "shutdown_hook.body",
                optional(hook.map(|h| quoted(&h.body))),
            ),
            (
                "shutdown_hook.timeout",
                optional(hook.map(|h| quoted(&format_duration(h.timeout)))),
            ),
        ]);
        let activator = self.activator.as_ref();
        rows.extend([
            (
                "activator.listen",
                optional(activator.map(|a| quoted(&a.listen.to_string()))),
            ),
            (
                "activator.target",
                optional(
                    activator
                        .and_then(|a| a.target.as_ref())
                        .map(|t| quoted(&t.to_string())),
                ),
            ),
            (
                "activator.wake_timeout",
                optional(activator.map(|a| quoted(&format_duration(a.wake_timeout)))),
            ),
            (
                "activator.idle_after",
                optional(
                    activator
                        .and_then(|a| a.idle_after)
                        .map(|d| quoted(&format_duration(d))),
                ),
            ),
            (
                "activator.command",
                optional(activator.and_then(|a| a.command.as_deref()).map(quoted)),
            ),
            (
                "activator.stop_signal",
                optional(activator.map(|a| quoted(&a.stop_signal_name))),
            ),
            (
                "activator.stop_timeout",
                optional(activator.map(|a| quoted(&format_duration(a.stop_timeout)))),
            ),
        ]);
        rows
    }
}

/// `[email]`: the SMTP server, the sender and the readers of the `email` backend.
fn read_email(reader: &mut Reader, backends: &[String]) -> Option<EmailConfig> {
    let named = backends.iter().any(|name| name == "email");
    let Some(mut table) = reader.table("email") else {
        if named && !reader.has_problem("email") {
            reader.missing(
                "email.smtp_url",
                "an [email] table with smtp_url, from and to, since notification_backends names \"email\"",
            );
        }
        return None;
    };
    let before = table.problems.len();
    if !table.has("smtp_url") {
        table.missing(
            "smtp_url",
            "an SMTP URL such as \"smtp://user:password@smtp.example.com:587?tls=required\" (or AUTOSCALE_EMAIL__SMTP_URL)",
        );
    }
    let smtp_url = table.parsed("smtp_url", |text| {
        email::check_smtp_url(text).map(|()| Secret::new(text.trim()))
    });
    if !table.has("from") {
        table.missing(
            "from",
            "the sender's address, such as \"autoscalebot <ops@example.com>\"",
        );
    }
    let from = table.parsed("from", email::parse_mailbox);
    let mut to = Vec::new();
    match table.string_list("to") {
        None if !table.has_problem("to") => table.missing(
            "to",
            "a list of addresses such as [\"ops@example.com\"] (the people to tell)",
        ),
        None => {}
        Some(list) if list.is_empty() => {
            let value = Value::new(None, Vec::<String>::new());
            table.bad(
                "to",
                &value,
                "at least one address, such as [\"ops@example.com\"]",
            );
        }
        Some(list) => {
            for address in list {
                match email::parse_mailbox(&address) {
                    Ok(mailbox) => to.push(mailbox),
                    Err(why) => {
                        let value = Value::new(None, address);
                        table.bad("to", &value, why);
                    }
                }
            }
        }
    }
    let policy = read_delivery(&mut table);
    let ok = table.problems.len() == before;
    reader.absorb(table);
    if !ok {
        return None;
    }
    Some(EmailConfig {
        smtp_url: smtp_url?,
        from: from?,
        to,
        policy: policy?,
    })
}

/// `[webhook]`: the request the `webhook` backend makes for each event.
fn read_webhook(reader: &mut Reader, backends: &[String]) -> Option<WebhookConfig> {
    let named = backends.iter().any(|name| name == "webhook");
    let Some(mut table) = reader.table("webhook") else {
        if named && !reader.has_problem("webhook") {
            reader.missing(
                "webhook.url",
                "a [webhook] table with at least url, since notification_backends names \"webhook\"",
            );
        }
        return None;
    };
    let before = table.problems.len();
    if !table.has("url") {
        table.missing(
            "url",
            "the URL to call, such as \"https://hooks.example.com/…\" (or AUTOSCALE_WEBHOOK__URL)",
        );
    }
    let url = table.parsed("url", webhook::parse_url);
    let method = if table.has("method") {
        table.parsed("method", webhook::parse_method)
    } else {
        Some(reqwest::Method::POST)
    };
    let mut headers: Vec<(reqwest::header::HeaderName, Secret)> = Vec::new();
    if let Some(mut header_table) = table.table("headers") {
        for (name, value) in header_table.take_all() {
            // Environment variable names cannot hold a dash: AUTOSCALE_WEBHOOK__HEADERS__X_API_KEY
            // means the header X-Api-Key.
            let from_env = header_table
                .origins
                .contains_key(&format!("webhook.headers.{name}"));
            let name = if from_env {
                name.replace('_', "-")
            } else {
                name
            };
            let text = match &value.kind {
                ValueKind::String(text) => text.clone(),
                ValueKind::I64(_)
                | ValueKind::U64(_)
                | ValueKind::Float(_)
                | ValueKind::Boolean(_) => value.kind.to_string(),
                _ => {
                    header_table.bad(&name, &value, "a header value (a string)");
                    continue;
                }
            };
            match webhook::parse_header(&name, &text) {
                Ok(header) => {
                    // Header names are case-insensitive: `Authorization` in the file and
                    // AUTOSCALE_WEBHOOK__HEADERS__AUTHORIZATION are one header, and the
                    // environment wins, as it does for every setting.
                    match headers.iter().position(|(known, _)| *known == header.0) {
                        Some(at) if from_env => headers[at] = header,
                        Some(_) => {}
                        None => headers.push(header),
                    }
                }
                Err(why) => header_table.bad(&name, &value, why),
            }
        }
        table.absorb(header_table);
    }
    let body = table.parsed("body", |text| {
        Template::parse(text).map_err(|error| format!("a body template: {error}"))
    });
    let policy = read_delivery(&mut table);
    let ok = table.problems.len() == before;
    reader.absorb(table);
    if !ok {
        return None;
    }
    Some(WebhookConfig {
        url: url?,
        method: method?,
        headers,
        body,
        policy: policy?,
    })
}

/// `timeout` and `give_up_after` of a backend's table.
fn read_delivery(table: &mut Reader) -> Option<DeliveryPolicy> {
    let defaults = DeliveryPolicy::default();
    let timeout = table.duration_or("timeout", defaults.timeout);
    if timeout == Some(Duration::ZERO) {
        let value = Value::new(None, "0s");
        table.bad("timeout", &value, "a duration above zero, such as \"10s\"");
        return None;
    }
    let give_up_after = table.duration_or("give_up_after", defaults.give_up_after);
    Some(DeliveryPolicy {
        timeout: timeout?,
        give_up_after: give_up_after?,
        ..defaults
    })
}

/// `downtime` from the settings (a bad entry is a bad setting: exit 2, as for any other) and
/// `AUTOSCALE_DOWNTIME` (a bad item is reported and ignored, as for the file and the header).
fn read_downtime(
    reader: &mut Reader,
    entries: Option<Value>,
    context: &LoadContext,
    zone: chrono_tz::Tz,
) -> (Vec<Window>, Vec<BadEntry>) {
    let expected = "a list of ISO 8601 intervals such as [\"2026-11-25T01:00/2026-11-25T04:00\", \"2026-11-26T01:00/PT3H\"]";
    let mut windows = Vec::new();
    let items = match entries.map(|value| (value.kind.clone(), value)) {
        None => Vec::new(),
        Some((ValueKind::Array(items), _)) => items,
        Some((ValueKind::String(_), value)) => vec![value],
        Some((_, value)) => {
            reader.bad("downtime", &value, expected);
            Vec::new()
        }
    };
    for (index, item) in items.into_iter().enumerate() {
        let ValueKind::String(text) = &item.kind else {
            reader.bad("downtime", &item, expected);
            continue;
        };
        match downtime::parse_interval(text, zone) {
            Ok((start, end)) => windows.push(Window {
                start,
                end,
                source: Source::Settings { index },
            }),
            Err(error) => reader.bad(
                "downtime",
                &item,
                format!("an ISO 8601 interval such as \"2026-11-25T01:00/2026-11-25T04:00\" or \"2026-11-25T01:00/PT3H\", but {error}"),
            ),
        }
    }
    let mut warnings = Vec::new();
    if let Some(text) = &context.env_downtime {
        let source = Source::Env {
            variable: ENV_DOWNTIME.to_string(),
        };
        let (env_windows, bad) = downtime::parse_list(text, zone, &source);
        windows.extend(env_windows);
        warnings = bad;
    }
    (windows, warnings)
}

/// A path as written in the settings, relative to the settings file's folder.
fn beside_settings(context: &LoadContext, path: &str) -> PathBuf {
    match &context.settings_dir {
        Some(dir) => dir.join(path),
        None => PathBuf::from(path),
    }
}

fn read_url(reader: &mut Reader, key: &str, default: Option<&str>) -> Option<Url> {
    let text = reader.string(key).or_else(|| default.map(str::to_string))?;
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
        _ => {
            let value = Value::new(None, text);
            reader.bad(
                key,
                &value,
                "an absolute http(s) URL such as \"https://example.com\"",
            );
            None
        }
    }
}

/// The `command` scaler needs something to run, and commands mean nothing to Heroku.
fn check_commands(
    reader: &mut Reader,
    scaler: Option<ScalerKind>,
    commands: &Commands,
    max_dynos: Option<&Schedule>,
    needs_platform: bool,
) {
    let named = [
        ("scale_command", &commands.scale_command),
        ("start_command", &commands.start_command),
        ("stop_command", &commands.stop_command),
        ("quantity_command", &commands.quantity_command),
    ];
    match scaler {
        Some(ScalerKind::Heroku) => {
            for (key, command) in named {
                if let Some(command) = command {
                    let value = Value::new(None, command.clone());
                    reader.bad(
                        key,
                        &value,
                        "no command while scaler = \"heroku\": set scaler = \"command\" to use your commands",
                    );
                }
            }
        }
        Some(ScalerKind::Command) => {
            for (key, command) in named {
                if command
                    .as_deref()
                    .is_some_and(|text| text.trim().is_empty())
                {
                    let value = Value::new(None, "");
                    reader.bad(key, &value, "a shell command, or leave the key out");
                }
            }
            let can_start = commands.scale_command.is_some() || commands.start_command.is_some();
            let can_stop = commands.scale_command.is_some() || commands.stop_command.is_some();
            if needs_platform && !(can_start && can_stop) {
                reader.missing(
                    "scale_command",
                    "a command run with the new quantity as its last argument (or both start_command and stop_command), since scaler = \"command\"",
                );
            }
            if commands.scale_command.is_none() {
                if let Some(max) = max_dynos {
                    let above_one = max
                        .change_minutes()
                        .into_iter()
                        .chain(std::iter::once(0))
                        .any(|minute| max.at_minute(minute) > 1);
                    if above_one {
                        let value = Value::new(None, max.to_string());
                        reader.bad(
                            "max_dynos",
                            &value,
                            "at most 1 without a scale_command: start_command and stop_command can only start or stop",
                        );
                    }
                }
            }
        }
        None => {}
    }
}

fn read_shutdown_hook(reader: &mut Reader) -> Option<ShutdownHookSettings> {
    let mut table = reader.table("shutdown_hook")?;
    let url = match table.string("url") {
        None => {
            table.missing(
                "url",
                "the URL to call right before a stop, such as \"https://example.com/shutdown\"",
            );
            None
        }
        Some(text) => match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            _ => {
                let value = Value::new(None, text);
                table.bad(
                    "url",
                    &value,
                    "an absolute http(s) URL such as \"https://example.com/shutdown\"",
                );
                None
            }
        },
    };
    let method_text = table.string_or("method", "GET").to_ascii_uppercase();
    let method = match reqwest::Method::from_bytes(method_text.as_bytes()) {
        Ok(method) => Some(method),
        Err(_) => {
            let value = Value::new(None, method_text.clone());
            table.bad(
                "method",
                &value,
                "an HTTP method such as \"GET\" or \"POST\"",
            );
            None
        }
    };
    let mut headers = Vec::new();
    if let Some(value) = table.take("headers") {
        match &value.kind {
            ValueKind::Table(entries) => {
                for (name, entry) in entries {
                    let text = match &entry.kind {
                        ValueKind::String(text) => Some(text.clone()),
                        _ => None,
                    };
                    let name_ok = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
                    let value_ok = text
                        .as_deref()
                        .is_some_and(|text| reqwest::header::HeaderValue::from_str(text).is_ok());
                    if name_ok && value_ok {
                        headers.push((name.clone(), Secret::new(text.unwrap_or_default())));
                    } else {
                        // Header values are secrets: never shown, even when wrong.
                        let shown = Value::new(None, "***");
                        table.bad(
                            &format!("headers.{name}"),
                            &shown,
                            "a header name and a string value, such as Authorization = \"Bearer …\"",
                        );
                    }
                }
            }
            _ => table.bad(
                "headers",
                &Value::new(None, "***"),
                "a table of header names and values, such as { Authorization = \"Bearer …\" }",
            ),
        }
    }
    let body = table.string_or("body", "");
    let timeout = table.duration_or("timeout", Duration::from_secs(10));
    if timeout == Some(Duration::ZERO) {
        table.bad(
            "timeout",
            &Value::new(None, "0s"),
            "a duration above zero such as \"10s\"",
        );
    }
    let ok = table.problems.is_empty();
    reader.absorb(table);
    if !ok {
        return None;
    }
    Some(ShutdownHookSettings {
        url: url?,
        method: method?,
        headers,
        body,
        timeout: timeout?,
    })
}

fn read_endpoint(reader: &mut Reader, key: &str) -> Option<Endpoint> {
    let text = reader.string(key)?;
    match Endpoint::parse(&text) {
        Ok(endpoint) => Some(endpoint),
        Err(expected) => {
            let value = Value::new(None, text);
            reader.bad(key, &value, expected);
            None
        }
    }
}

fn read_activator(
    reader: &mut Reader,
    purpose: Purpose,
    top_idle_after: Option<Duration>,
) -> Option<ActivatorSettings> {
    let Some(mut table) = reader.table("activator") else {
        if purpose == Purpose::Activator && !reader.problems.iter().any(|p| p.key == "activator") {
            reader.missing(
                "activator",
                "an [activator] table with listen and target (or command), for `autoscalebot activate`",
            );
        }
        return None;
    };
    let listen = read_endpoint(&mut table, "listen");
    if listen.is_none() && !table.problems.iter().any(|p| p.key.ends_with("listen")) {
        table.missing(
            "listen",
            "where to listen: host:port (such as 0.0.0.0:8080) or unix:/path/to.sock",
        );
    }
    let target = read_endpoint(&mut table, "target");
    let command = table.string("command");
    if command
        .as_deref()
        .is_some_and(|text| text.trim().is_empty())
    {
        table.bad(
            "command",
            &Value::new(None, ""),
            "a command line that starts your app, or leave the key out",
        );
    }
    if target.is_none()
        && command.is_none()
        && !table.problems.iter().any(|p| p.key.ends_with("target"))
    {
        table.missing(
            "target",
            "where the app listens: host:port or unix:/path (or a command, to hand it the listening socket)",
        );
    }
    if let (Some(listen), Some(target)) = (&listen, &target) {
        if listen == target {
            table.bad(
                "target",
                &Value::new(None, target.to_string()),
                "another address than listen, or it would forward to itself",
            );
        }
    }
    let wake_timeout = table.duration_or("wake_timeout", Duration::from_secs(30));
    if wake_timeout == Some(Duration::ZERO) {
        table.bad(
            "wake_timeout",
            &Value::new(None, "0s"),
            "a duration above zero such as \"30s\"",
        );
    }
    let idle_after = table.positive_duration("idle_after").or(top_idle_after);
    let signal_text = table.string_or("stop_signal", "SIGTERM");
    let stop_signal = parse_signal(&signal_text);
    if stop_signal.is_none() {
        table.bad(
            "stop_signal",
            &Value::new(None, signal_text),
            "a signal name or number such as \"SIGTERM\", \"SIGINT\" or 15",
        );
    }
    let stop_timeout = table.duration_or("stop_timeout", Duration::from_secs(10));
    let ok = table.problems.is_empty();
    reader.absorb(table);
    if !ok {
        return None;
    }
    let (stop_signal, stop_signal_name) = stop_signal?;
    Some(ActivatorSettings {
        listen: listen?,
        target,
        wake_timeout: wake_timeout?,
        idle_after,
        command,
        stop_signal,
        stop_signal_name,
        stop_timeout: stop_timeout?,
    })
}

/// The first minute of the day at which `min` is above `max`, if any. Both are step functions,
/// so checking midnight and every change point of either covers the whole day.
fn first_minute_min_above_max(min: &Schedule, max: &Schedule) -> Option<u16> {
    let mut minutes: Vec<u16> = std::iter::once(0)
        .chain(min.change_minutes())
        .chain(max.change_minutes())
        .collect();
    minutes.sort_unstable();
    minutes.dedup();
    minutes
        .into_iter()
        .find(|&minute| min.at_minute(minute) > max.at_minute(minute))
}

#[cfg(test)]
mod tests;
