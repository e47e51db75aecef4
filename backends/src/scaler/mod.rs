//! Scalers read and set the size of one process type on a platform: the Heroku Platform API
//! (`heroku.rs`), which also drives the local sandbox platform since it speaks the same API,
//! Fly.io Machines (`fly.rs`) and Render services (`render.rs`), both through the JSON client
//! in `rest.rs`, and the user's own shell commands for any other platform (`command.rs`). Each platform's
//! file holds its settings (their section, checks and secrets), its name and how its scaler is
//! built; [`PLATFORMS`] is the registry and [`Platform`] the checked settings of the one chosen.
//!
//! A scaler sets absolute quantities only, so that repeating a call can never scale twice.
//! It decides nothing: the target comes from the decision engine.

pub mod command;
pub mod fly;
pub mod heroku;
pub mod platform_api;
pub mod render;
pub mod rest;

pub use command::{CommandPlatform, CommandScaler, Commands};
pub use fly::{FlyPlatform, FlyScaler};
pub use heroku::{HerokuFormation, HerokuPlatform, HerokuScaler};
pub use platform_api::PlatformApi;
pub use render::{RenderPlatform, RenderScaler};

use crate::settings::{fields, Check, Raw, Table};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The registry: every platform this build can scale on, by its `scaler` name.
pub const PLATFORMS: &[PlatformEntry] = &[heroku::ENTRY, command::ENTRY, fly::ENTRY, render::ENTRY];

/// One platform of the registry.
pub struct PlatformEntry {
    /// Its `scaler` value.
    pub name: &'static str,
    /// What choosing it means, for the hint: "(the Platform API)".
    pub about: &'static str,
    /// Its keys, at the top level of an app's settings.
    pub keys: fn() -> &'static [&'static str],
    /// Checks its keys, taken out of an app's `table`, and builds its settings when chosen.
    pub read: fn(&mut Table, &PlatformContext, &mut Check) -> Option<Platform>,
}

/// What a platform's check needs from the rest of the app's settings.
pub struct PlatformContext<'a> {
    /// The platform `scaler` names, when it names one of the registry.
    pub chosen: Option<&'static str>,
    /// Whether the command run needs a platform: `activate` with a local command does not.
    pub needed: bool,
    /// `heroku_app_name`: the app's name, read with the app's identity.
    pub app_name: &'a Raw,
    pub app_name_value: Option<&'a str>,
}

impl PlatformContext<'_> {
    /// Whether `name` is the chosen platform, and must have what it needs.
    pub fn requires(&self, name: &str) -> bool {
        self.needed && self.chosen == Some(name)
    }
}

/// The checked settings of the platform an app is scaled on. Adding a platform adds a variant
/// here, an arm to [`Platform::settings`] and a line to [`PLATFORMS`].
#[derive(Debug, Clone)]
pub enum Platform {
    Heroku(HerokuPlatform),
    Command(CommandPlatform),
    Fly(FlyPlatform),
    Render(RenderPlatform),
}

/// What every platform's settings can do.
pub trait PlatformSettings {
    /// Its `scaler` value.
    fn name(&self) -> &'static str;
    /// A scaler for `process_type`. Once `shutdown` is cancelled it makes no further tries.
    fn build(
        &self,
        process_type: &str,
        client: reqwest::Client,
        shutdown: &CancellationToken,
    ) -> Arc<dyn Scaler>;
    /// `check`'s rows of its keys, secrets hidden; `variables` says which secrets came from
    /// an `"env:NAME"` (setting → NAME).
    fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)>;
    /// The most it can run, and why, when it cannot run any number.
    fn most(&self) -> Option<(u32, &'static str)> {
        None
    }
    /// The longest one call may take, retries aside.
    fn call_timeout(&self) -> Duration;
}

impl Platform {
    pub fn settings(&self) -> &dyn PlatformSettings {
        match self {
            Platform::Heroku(settings) => settings,
            Platform::Command(settings) => settings,
            Platform::Fly(settings) => settings,
            Platform::Render(settings) => settings,
        }
    }
}

/// The `scaler` key: which platform of the registry.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawChoice {
    scaler: Raw,
}

/// Every platform key, at the top level of an app's settings: `scaler` and each platform's.
pub fn keys() -> Vec<&'static str> {
    fields::<RawChoice>()
        .iter()
        .copied()
        .chain(
            PLATFORMS
                .iter()
                .flat_map(|entry| (entry.keys)().iter().copied()),
        )
        .collect()
}

/// Checks `scaler` and every platform's keys, taken out of an app's `table`, and returns the
/// chosen platform's settings. `None` when it is not `needed` or something is wrong (the
/// problems are in the check). The other platforms' keys are checked too: a wrong value is
/// wrong whichever platform is chosen.
pub fn read_platform(
    table: &mut Table,
    needed: bool,
    app_name: (&Raw, Option<&str>),
    check: &mut Check,
) -> Option<Platform> {
    let raw: RawChoice = check.section(table, "");
    let name = raw.scaler.text_or(check, PLATFORMS[0].name);
    let chosen = PLATFORMS.iter().find(|entry| entry.name == name);
    if chosen.is_none() {
        let choices: Vec<String> = PLATFORMS
            .iter()
            .map(|entry| format!("{:?} {}", entry.name, entry.about))
            .collect();
        raw.scaler.bad_text(check, &name, choices.join(" or "));
    }
    let context = PlatformContext {
        chosen: chosen.map(|entry| entry.name),
        needed,
        app_name: app_name.0,
        app_name_value: app_name.1,
    };
    let mut platform = None;
    for entry in PLATFORMS {
        let read = (entry.read)(table, &context, check);
        if context.requires(entry.name) {
            platform = read;
        }
    }
    platform
}

/// `check`'s rows of the platform in force: `scaler`, then the platform's own keys.
pub fn rows(
    platform: &Platform,
    variables: &BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    let settings = platform.settings();
    let choice = RawChoice {
        scaler: Raw::quoted(settings.name()),
    };
    let mut rows = crate::settings::rows("", &choice);
    rows.extend(settings.rows(variables));
    rows
}

/// Why a platform call did not give us a quantity. Messages name the likely cause and, through
/// the platform's `hint`, the settings to check; they never contain the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("the platform refused the API key (401 {id}){}", hinted(hint))]
    Unauthorized { id: String, hint: &'static str },
    #[error("the API key has no access to this app (403 {id}){}", hinted(hint))]
    Forbidden { id: String, hint: &'static str },
    #[error(
        "the platform knows no such app or process type (404 {id}){}",
        hinted(hint)
    )]
    NotFound { id: String, hint: &'static str },
    #[error("the platform's rate limit is spent (429 {id})")]
    RateLimited {
        id: String,
        retry_after: Option<Duration>,
    },
    #[error("the platform answered {status} {id}: {message}")]
    Status {
        status: u16,
        id: String,
        message: String,
    },
    #[error("no answer from the platform within {0:?}")]
    Timeout(Duration),
    #[error("could not reach the platform: {0}")]
    Transport(String),
    #[error("the platform's answer could not be read: {0}")]
    BadAnswer(String),
    /// A `command` scaler's hook failed, timed out or printed nonsense.
    #[error("{0}")]
    Hook(String),
    /// Shutdown began while the call waited to try (again), so no further try was made and
    /// the worker can exit before the platform's SIGKILL. `last`: the error of the try before.
    #[error("not retried: shutting down{}", last_try(last.as_deref()))]
    ShuttingDown { last: Option<Box<ScaleError>> },
}

/// ": check heroku_api_key…", from the platform that knows its settings' names.
fn hinted(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(": {hint}")
    }
}

fn last_try(last: Option<&ScaleError>) -> String {
    last.map(|error| format!(" (the last try: {error})"))
        .unwrap_or_default()
}

impl ScaleError {
    /// Worth trying again soon: rate limits, server errors, timeouts, broken connections.
    /// Every other 4xx means a setting is wrong, and repeating the call will not fix it.
    pub fn is_retriable(&self) -> bool {
        match self {
            ScaleError::RateLimited { .. }
            | ScaleError::Timeout(_)
            | ScaleError::Transport(_)
            | ScaleError::BadAnswer(_)
            | ScaleError::Hook(_) => true,
            // The fault behind it was passing: the next worker tries again.
            ScaleError::ShuttingDown { .. } => true,
            ScaleError::Status { status, .. } => *status >= 500,
            ScaleError::Unauthorized { .. }
            | ScaleError::Forbidden { .. }
            | ScaleError::NotFound { .. } => false,
        }
    }

    /// A short machine name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ScaleError::Unauthorized { .. } => "unauthorized",
            ScaleError::Forbidden { .. } => "forbidden",
            ScaleError::NotFound { .. } => "not_found",
            ScaleError::RateLimited { .. } => "rate_limit",
            ScaleError::Status { .. } => "status",
            ScaleError::Timeout(_) => "timeout",
            ScaleError::Transport(_) => "transport",
            ScaleError::BadAnswer(_) => "bad_answer",
            ScaleError::Hook(_) => "hook",
            ScaleError::ShuttingDown { .. } => "shutting_down",
        }
    }
}

/// A quantity the platform told us, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub quantity: u32,
    pub at: tokio::time::Instant,
}

/// Reads and sets the quantity of one process type.
#[async_trait]
pub trait Scaler: Send + Sync {
    /// What is being scaled, for logs: "heroku app my-app, process type web".
    fn describe(&self) -> String;
    /// The quantity running now, read fresh from the platform.
    async fn current(&self) -> Result<u32, ScaleError>;
    /// Sets the absolute quantity and returns the quantity the platform reports afterwards.
    async fn set(&self, quantity: u32) -> Result<u32, ScaleError>;
    /// The last quantity the platform told (a read or a write, this scaler's or a sibling's
    /// for the same app), so the worker can decide without a call when nothing may change.
    /// `None`: always read.
    fn recent(&self) -> Option<Known> {
        None
    }
    /// The platform's count of calls left for the account, from the last answer if it sent
    /// one; each count is handed out once.
    fn rate_limit_remaining(&self) -> Option<u32> {
        None
    }
}
