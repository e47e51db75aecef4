//! autoscalebot: keeps a web app fast at busy times and cheap at quiet ones.
//!
//! Layout:
//! - [`settings`]: load and validate the TOML file and `AUTOSCALE_*` variables.
//! - [`schedule`]: time-of-day tables for `min_dynos` and `max_dynos`.
//! - [`downtime`]: planned downtime windows: the ISO 8601 interval parser and the calendar.
//! - [`decision`]: the pure engine (settings, now, size, heartbeat) → plan.
//! - [`bot`]: the async loop that probes, decides, scales and notifies.
//! - [`activator`]: wakes a stopped target on demand, forwards, stops it when idle.
//! - [`demo`]: `autoscalebot demo`, the sandbox, a traffic surge and the worker in one process.
//! - [`router_log`]: Heroku log drain parsing (logplex frames, router lines, windows).
//! - [`telemetry`], [`metrics`]: what the loop shares with the HTTP server.
//! - [`server`]: the HTTP server: the log drain, `/metrics`, `/healthz`, the status page.
//! - [`simulate`]: replays a traffic trace through the same engine on a simulated clock.
//!
//! The edges to the outside world (HTTP probes, the Heroku API, notifiers) live in the
//! `autoscalebot-backends` crate; the local stand-in platform in `autoscalebot-sandbox`.

pub mod activator;
pub mod bot;
pub mod decision;
pub mod demo;
pub mod downtime;
pub mod metrics;
pub mod router_log;
pub mod schedule;
pub mod server;
pub mod settings;
pub mod simulate;
pub mod telemetry;

pub use bot::Worker;
pub use decision::{AppState, Observation, Plan};
pub use settings::{AppSettings, Settings, SettingsError};

use tokio_util::sync::CancellationToken;

/// Runs every app's worker, and the HTTP server when a port is set, until `shutdown` is
/// cancelled, then waits for them to finish. Fails only when the server's port cannot be bound.
pub async fn run(
    settings: Settings,
    dry_run: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = http_client();
    let mut tasks = tokio::task::JoinSet::new();
    let mut served = false;
    for app in settings.apps {
        let port = app.http_port;
        let worker = Worker::from_settings(app, client.clone(), dry_run, None);
        // One server per process: it shows the first app that names a port (today there is
        // one app).
        if let (Some(port), false) = (port, served) {
            served = true;
            let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
                .await
                .map_err(|error| {
                    anyhow::anyhow!("binding the HTTP server to port {port}: {error}")
                })?;
            let address = listener.local_addr()?;
            tracing::info!(%address, "HTTP server listening: POST /logs, GET /metrics, /healthz, /.");
            let telemetry = worker.telemetry();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                if let Err(error) = server::serve(listener, telemetry, shutdown).await {
                    tracing::error!(%error, "The HTTP server stopped.");
                }
            });
        }
        tasks.spawn(worker.run(shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The one HTTP client every backend shares, so connections are pooled.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(autoscalebot_backends::USER_AGENT)
        .build()
        .expect("the TLS backend initialises")
}
