//! Scalers read and set the size of one process type: the Heroku Platform API (`heroku.rs`),
//! which also drives the local sandbox platform since it speaks the same API, and the user's
//! own shell commands for any other platform (`command.rs`).
//!
//! A scaler sets absolute quantities only, so that repeating a call can never scale twice.
//! It decides nothing: the target comes from the decision engine.

pub mod command;
pub mod heroku;

pub use command::{CommandScaler, Commands};
pub use heroku::{HerokuFormation, HerokuScaler};

use async_trait::async_trait;
use std::time::Duration;

/// Why a platform call did not give us a quantity. Messages name the likely cause and the
/// setting to check, and never contain the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("the platform refused the API key (401 {id}): check heroku_api_key or HEROKU_API_KEY")]
    Unauthorized { id: String },
    #[error("the API key has no access to this app (403 {id}): check the key's account and heroku_app_name")]
    Forbidden { id: String },
    #[error("the platform knows no such app or process type (404 {id}): check heroku_app_name and process_type")]
    NotFound { id: String },
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
