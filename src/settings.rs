//! Settings: load a TOML file and `AUTOSCALE_*` environment variables (the `config` crate),
//! then check every value and build [`AppSettings`], the validated settings of one app.
//!
//! Two stages, as ripgrep does it. First, raw sections: serde structs with
//! `deny_unknown_fields`, each owned by the part it configures (the app, the heartbeat, the
//! thresholds, the notification rules, downtime, the drain, the job queue, the activator, the shutdown hook,
//! and, in the backends crate, each platform and each notifier); their fields are untyped
//! values that know their key, so the key list exists once and the "did you mean" hints and
//! `check`'s rows come from it. Second, each part types its fields and checks them against the
//! others, and every problem is reported, not only the first, each naming the key, the bad
//! value, where it came from and what was expected. Secrets are a type, never shown. This
//! module does no network I/O and never reads the clock.

use autoscalebot_backends::settings::{fields, rows, Check, Raw, SecretRaw, HIDDEN};
use autoscalebot_backends::Secret;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

mod activator;
mod app;
mod app_url;
mod apps;
mod downtime;
mod drain;
mod engine;
mod heartbeat;
mod legacy;
mod load;
mod notify;
mod policy;
mod queue;
mod shutdown_hook;
mod thresholds;

pub use activator::ActivatorSettings;
pub use app::{all_keys, LogFormat};
pub use app_url::AppUrlFrom;
pub use autoscalebot_backends::notify::Notifiers;
pub use autoscalebot_backends::scaler::{CommandPlatform, HerokuPlatform, Platform};
pub use autoscalebot_backends::settings::{format_duration, parse_duration, Problem};
pub use downtime::DowntimeSettings;
pub use drain::{Drain, Signal};
pub use heartbeat::Heartbeat;
pub use legacy::{setting_for_2_1_name, DJANGO_PREFIX, SETTINGS_2_1};
pub use notify::NotifyRules;
pub use policy::{PolicyKind, PolicySettings};
pub use queue::{QueueFrom, QueueSettings};
pub use shutdown_hook::ShutdownHookSettings;
pub use thresholds::Thresholds;

use apps::{read_apps, read_single_app, RawWorker};
use load::{env_origins, raw_table};

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
    /// Where the HTTP server listens: `http_host`, else every interface when the port came
    /// from `$PORT` (a platform's router must reach it), else this machine only.
    pub http_host: IpAddr,
    /// `http_password`: the credential the status pages and `/metrics` ask for (basic auth
    /// with any user name, or a bearer token); `None` serves them to anyone who reaches them.
    pub http_password: Option<Secret>,
    /// The variable `http_password` was taken from (`"env:NAME"`), for `check`.
    pub http_password_variable: Option<String>,
    /// `http_public`: the pages are meant for anyone, so a public bind needs no password.
    pub http_public: bool,
}

impl Settings {
    /// The port of the worker's one HTTP server: the one every app that names a port names
    /// (`http_port`, at the top level or in an entry, else `$PORT`; loading refuses two).
    pub fn http_port(&self) -> Option<u16> {
        self.apps.iter().find_map(|app| app.drain.http_port)
    }

    /// The settings of the worker as a whole, as `(key, value)` lines for `check`. The lock's
    /// URL is shown as the user, host and database it names: never its password.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        use autoscalebot_backends::leader::postgres::{describe, describe_ssl_mode, parse_url};
        let lock = self
            .leader_lock_url
            .as_ref()
            .map(|url| match parse_url(url) {
                Ok(config) => format!(
                    "\"***\" ({}, sslmode={})",
                    describe(&config),
                    describe_ssl_mode(&config)
                ),
                Err(_) => "\"***\"".to_string(),
            });
        let shown = RawWorker {
            leader_lock_url: lock.map_or_else(SecretRaw::default, |lock| {
                SecretRaw::shown(lock, self.leader_lock_url_variable.as_deref())
            }),
            leader_lock_key: Raw::shown(self.leader_lock_key.to_string()),
            heroku_api_calls_per_hour: Raw::shown(self.heroku_api_calls_per_hour.to_string()),
            http_host: Raw::quoted(&self.http_host.to_string()),
            http_password: match &self.http_password {
                Some(_) => {
                    SecretRaw::shown(HIDDEN.to_string(), self.http_password_variable.as_deref())
                }
                None => SecretRaw::default(),
            },
            http_public: Raw::shown(self.http_public.to_string()),
        };
        rows("", &shown)
    }
}

/// The settings that belong to the worker as a whole: only at the top level of the file,
/// never inside an `[[apps]]` entry.
pub static GLOBAL_KEYS: LazyLock<&'static [&'static str]> = LazyLock::new(fields::<RawWorker>);

/// What Heroku gives each account: 4,500 calls an hour (`../shared/heroku/README.md`).
pub const HEROKU_CALLS_PER_HOUR: u32 = 4500;

/// The validated settings of one app, a section per part. What the engine decides by is in
/// `thresholds`, `notify` and `downtime`, none of which holds a secret: the engine's own config
/// is built from those alone.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// `heroku_app_name`, or `"app"` when the platform needs none and none is given: what
    /// logs, notifications, drain paths and `check` call the app.
    pub app_name: String,
    pub process_type: String,
    /// The `[[apps]]` entry this app is (`apps[1] (my-app/web)`), so that a problem found
    /// after loading names it as loading would; `None` in a file without `[[apps]]`.
    pub entry: Option<String>,
    /// Where the size is set. `None` only for `activate` with a local command, which needs
    /// no platform.
    pub platform: Option<Platform>,
    pub heartbeat: Heartbeat,
    pub thresholds: Thresholds,
    pub notify: NotifyRules,
    /// The checked settings of each notification backend named or given a table.
    pub notifiers: Notifiers,
    pub downtime: DowntimeSettings,
    pub drain: Drain,
    /// Where a job worker's queue is read, with `policy = "queue"`.
    pub queue: Option<QueueSettings>,
    pub shutdown_hook: Option<ShutdownHookSettings>,
    pub activator: Option<ActivatorSettings>,
    pub log_format: LogFormat,
    /// Secret setting (`heroku_api_key`, `webhook.headers.Authorization`) → the environment
    /// variable its `"env:NAME"` value named, so `check` can say where a secret comes from.
    pub secret_variables: BTreeMap<String, String>,
}

impl AppSettings {
    /// The settings in force as `(key, value)` lines for `autoscalebot check`, each part's
    /// keys in its raw section's order; secrets as `***`. A platform or a notifier shows its
    /// keys when the app uses it.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        app::effective(self)
    }

    /// The platform's settings: every worker has one (see [`AppSettings::platform`]).
    pub fn platform(&self) -> &Platform {
        self.platform
            .as_ref()
            .expect("settings loaded for the worker have a platform")
    }

    /// A key of this app as problems name it: `heroku_app_name`, or
    /// `apps[1] (my-app/web).heroku_app_name` for an `[[apps]]` entry.
    pub fn key(&self, key: &str) -> String {
        match &self.entry {
            Some(entry) => format!("{entry}.{key}"),
            None => key.to_string(),
        }
    }

    /// The Heroku settings, when the app is on Heroku.
    pub fn heroku(&self) -> Option<&HerokuPlatform> {
        match &self.platform {
            Some(Platform::Heroku(heroku)) => Some(heroku),
            _ => None,
        }
    }
}

/// What the settings are loaded for: each command needs only its own settings. `run` needs a
/// platform and a heartbeat; `activate` needs its `[activator]` table, and a platform only to
/// start the target through (not with a local `command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    #[default]
    Worker,
    Activator,
}

/// What loading needs beyond the raw values and the settings file's folder (which the
/// [`Check`] knows): the `AUTOSCALE_DOWNTIME` list, which adds to the file's `downtime`
/// rather than replacing it as other variables do.
#[derive(Debug, Clone, Default)]
pub struct LoadContext {
    pub env_downtime: Option<String>,
    /// `$PORT`, Heroku's port for the web process: the default of `http_port`.
    pub env_port: Option<String>,
    /// What the settings are for: `activate` with a local command needs no platform.
    pub purpose: Purpose,
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
    let mut table = raw_table(file, env)?;
    let context = LoadContext {
        env_downtime: env.get(ENV_DOWNTIME).cloned(),
        env_port: env.get("PORT").cloned(),
        purpose,
    };
    let env = Arc::new(env.clone());
    let mut top = Check::new(env.clone(), env_origins(&env), "", settings_dir)
        .with_case_note(legacy::case_note);
    let globals = apps::read_globals(&mut table, &mut top);
    let apps = match apps::take_apps(&mut table, &top) {
        // Without [[apps]], the file describes one app, exactly as before.
        None => read_single_app(table, &mut top, &context),
        Some(entries) => read_apps(table, entries, &mut top, &context),
    };
    let host = match (&apps, &globals) {
        (Some(apps), Some(globals)) => {
            let host = http_host(apps, globals.http_host);
            if let Some(problem) = public_without_password(apps, globals, host) {
                top.push(problem);
            }
            host
        }
        _ => IpAddr::from([127, 0, 0, 1]),
    };
    let problems = top.into_problems();
    match (apps, globals) {
        (Some(apps), Some(globals)) if problems.is_empty() => Ok(Settings {
            apps,
            leader_lock_url: globals.leader_lock_url,
            leader_lock_url_variable: globals.leader_lock_url_variable,
            leader_lock_key: globals.leader_lock_key,
            heroku_api_calls_per_hour: globals.heroku_api_calls_per_hour,
            http_host: host,
            http_password: globals.http_password,
            http_password_variable: globals.http_password_variable,
            http_public: globals.http_public,
        }),
        _ => Err(SettingsError { problems }),
    }
}

/// `http_host`, else every interface for a port from `$PORT` (Heroku's router connects to the
/// dyno from outside it), else loopback: a port picked by hand is private until said otherwise.
fn http_host(apps: &[AppSettings], written: Option<IpAddr>) -> IpAddr {
    written.unwrap_or_else(|| {
        if apps.iter().any(|app| app.drain.http_port_from_env) {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([127, 0, 0, 1])
        }
    })
}

/// A server others can reach (not loopback) that would show every app's pages and metrics to
/// anyone: refused, unless `http_password` is set or `http_public = true` says it is meant.
fn public_without_password(
    apps: &[AppSettings],
    globals: &apps::Globals,
    host: IpAddr,
) -> Option<Problem> {
    let port = apps.iter().find_map(|app| app.drain.http_port)?;
    if host.is_loopback() || globals.http_password.is_some() || globals.http_public {
        return None;
    }
    let from = if apps.iter().any(|app| app.drain.http_port_from_env) {
        " (the port from PORT)"
    } else {
        ""
    };
    Some(Problem {
        key: "http_password".to_string(),
        value: None,
        origin: None,
        expected: format!(
            "a password for the status pages and /metrics, since the HTTP server listens on \
             {host}:{port}{from}, reachable from other machines: set it (on Heroku: heroku \
             config:set AUTOSCALE_HTTP_PASSWORD=$(openssl rand -hex 32)), or http_host = \"127.0.0.1\" to \
             listen on this machine only, or http_public = true to show them to anyone"
        ),
    })
}

/// What logs and notifications call the app when no `heroku_app_name` is needed or given.
const DEFAULT_APP_LABEL: &str = "app";
/// The variable whose comma-separated intervals add to `downtime`.
pub const ENV_DOWNTIME: &str = "AUTOSCALE_DOWNTIME";

#[cfg(test)]
mod generated;
#[cfg(test)]
mod tests;
