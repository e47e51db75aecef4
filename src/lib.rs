//! autoscalebot: keeps a web app fast at busy times and cheap at quiet ones.
//!
//! Layout:
//! - [`settings`]: load and validate the TOML file and `AUTOSCALE_*` variables.
//! - [`schedule`]: time-of-day tables for `min_dynos` and `max_dynos`.
//! - [`decision`]: the pure engine (settings, now, size, heartbeat) → plan.
//! - [`bot`]: the async loop that probes, decides, scales and notifies.
//! - [`demo`]: `autoscalebot demo`, the sandbox, a traffic surge and the worker in one process.
//!
//! The edges to the outside world (HTTP probes, the Heroku API, notifiers) live in the
//! `autoscalebot-backends` crate; the local stand-in platform in `autoscalebot-sandbox`.

pub mod bot;
pub mod decision;
pub mod demo;
pub mod schedule;
pub mod settings;

pub use bot::Worker;
pub use decision::{AppState, Observation, Plan};
pub use settings::{AppSettings, Settings, SettingsError};

use tokio_util::sync::CancellationToken;

/// Runs every app's worker until `shutdown` is cancelled, then waits for them to finish.
pub async fn run(settings: Settings, dry_run: bool, shutdown: CancellationToken) {
    let client = http_client();
    let mut tasks = tokio::task::JoinSet::new();
    for app in settings.apps {
        let worker = Worker::from_settings(app, client.clone(), dry_run, None);
        tasks.spawn(worker.run(shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

/// The one HTTP client every backend shares, so connections are pooled.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(autoscalebot_backends::USER_AGENT)
        .build()
        .expect("the TLS backend initialises")
}
