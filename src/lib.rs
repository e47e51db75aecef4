//! autoscalebot: keeps a web app fast at busy times and cheap at quiet ones.
//!
//! Layout:
//! - [`settings`]: load and validate the TOML file and `AUTOSCALE_*` variables.
//! - [`schedule`]: time-of-day tables for `min_dynos` and `max_dynos`.
//! - [`downtime`]: planned downtime windows: the ISO 8601 interval parser and the calendar.
//! - [`decision`]: the pure engine: one step (state, config, inputs, now) → (state, output).
//! - [`notices`]: the words people read: the engine's notices as the notifiers' events.
//! - [`web_url`]: the worker's start: an app's `web_url` from the Platform API as its `app_url`.
//! - [`online_check`]: `check --online`: the key, app, formation, heartbeat, drain and budget.
//! - [`bot`]: the async loop: gather the inputs, take the engine's step, act, tell, record.
//! - [`clock`]: where `now` comes from (the system's, or tokio's in tests).
//! - [`traffic`], [`drain`]: real traffic, and the log drain's router window, as inputs.
//! - [`policy`]: decision policies beside the streaks (target tracking), pure.
//! - [`budget`]: the Platform API budget per key, the pace of formation reads, heartbeat spread.
//! - [`activator`]: wakes a stopped target on demand, forwards, stops it when idle.
//! - [`import_settings`]: an autoscalebot 2.1 settings module (Python) as this version's TOML.
//! - [`demo`]: `autoscalebot demo`, the sandbox, a traffic surge and the worker in one process.
//! - [`router_log`]: Heroku log drain parsing (logplex frames, router lines, windows);
//!   `router_log::l2met`: the app's own `sample#…` metrics and Heroku's runtime metrics in the same drain.
//! - [`telemetry`], [`metrics`]: what the loop shares with the HTTP server.
//! - [`server`]: the worker's HTTP server: each app's log drain, `/metrics`, `/healthz`, the
//!   status pages.
//! - [`simulate`]: replays a traffic trace through the same engine on a simulated clock.
//!
//! The edges to the outside world (HTTP probes, the Heroku API, notifiers) live in the
//! `autoscalebot-backends` crate; the local stand-in platform in `autoscalebot-sandbox`.

pub mod activator;
pub mod bot;
pub mod budget;
pub mod clock;
pub mod decision;
pub mod demo;
pub mod downtime;
pub mod drain;
pub mod erlang;
#[doc(hidden)]
pub mod generated_input;
pub mod import_settings;
pub mod metrics;
pub mod notices;
pub mod online_check;
pub mod policy;
pub mod router_log;
pub mod schedule;
pub mod server;
pub mod settings;
pub mod simulate;
pub mod telemetry;
#[doc(hidden)]
pub mod test_doubles;
pub mod traffic;
pub mod web_url;

#[cfg(test)]
mod module_graph;

pub use bot::Worker;
pub use decision::{Observation, Output, State};
pub use settings::{AppSettings, Settings, SettingsError};

use autoscalebot_backends::leader::{Leadership, PostgresLock};
use autoscalebot_backends::scaler::{HerokuFormation, HerokuScaler};
use bot::Pace;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Runs every app's worker, and the worker's one HTTP server when a port is set, until
/// `shutdown` is cancelled, then waits for them to finish. Fails only when the server's port
/// cannot be bound or the platform refuses to give an app's `web_url` (before any app starts).
///
/// The apps share one HTTP client, one API budget per key, one metrics registry, the server
/// (every app's metrics, pages and log drain) and, for the process types of one app, one
/// formation read. Apps whose `app_url` is their `web_url` read it first (a refusal ends the
/// run with a [`SettingsError`]). Their first heartbeats are spread over the interval. Each app
/// is its own task: a panic in one is logged and the others go on. With `leader_lock_url`,
/// every app acts only while this worker holds the lock; the lock is let go after every app
/// stopped.
pub async fn run(
    mut settings: Settings,
    dry_run: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = http_client();
    let port = settings.http_port();
    let listener = match port {
        Some(port) => Some(
            tokio::net::TcpListener::bind((settings.http_host, port))
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "binding the HTTP server to port {port} of {}: {error}",
                        settings.http_host
                    )
                })?,
        ),
        None => None,
    };
    let access = server::Access {
        password: settings.http_password.clone(),
        limits: server::Limits::default(),
    };
    let plans = budget::plan_by_key(&settings);
    let now = tokio::time::Instant::now();
    // Only Heroku keys have plans (a command scaler spends nothing), and a key with one
    // formation spends from no budget: it reads every heartbeat, as a single app always did.
    let budgets: HashMap<(String, String), Pace> = plans
        .iter()
        .filter(|(_, plan)| plan.budgeted)
        .map(|(key, plan)| {
            let pace = Pace {
                budget: Arc::new(Mutex::new(budget::ApiBudget::new(
                    plan.budget_per_hour,
                    now,
                ))),
                refresh_every_beats: plan.refresh_every_beats,
            };
            (key.clone(), pace)
        })
        .collect();
    // After binding, so that a web process has its port within the platform's boot timeout;
    // the reads spend from the keys' budgets, as every other call does.
    let web_url_budgets = budgets
        .iter()
        .map(|(key, pace)| (key.clone(), pace.budget.clone()))
        .collect();
    if !web_url::read_web_urls(&mut settings, &client, &web_url_budgets, &shutdown).await? {
        return Ok(());
    }
    let lock_released = CancellationToken::new();
    let (leadership, elector) = leadership(&settings, lock_released.clone());
    let formations = shared_formations(&settings, &client);
    let spread = settings.apps.len() > 1;
    tracing::info!(
        apps = settings.apps.len(),
        api_keys = plans.len(),
        "Starting the workers."
    );
    let registry = metrics::WorkerMetrics::new();
    // One inotify instance for every app's downtime file (the kernel allows few per user).
    let file_watch = autoscalebot_backends::file_watch::FileWatch::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut names = HashMap::new();
    let mut shown = Vec::new();
    // Taken from the end of a reversed list, which is let go of as it empties: each app's
    // settings move into its worker, and 10,000 of them are not held twice meanwhile.
    let mut apps = settings.apps;
    apps.reverse();
    while let Some(app) = apps.pop() {
        if apps.len() < apps.capacity() / 2 {
            apps.shrink_to_fit();
        }
        let label = format!("{}/{}", app.app_name, app.process_type);
        let key = budget::budget_key(&app);
        let heroku = app.heroku().is_some();
        let offset = if spread {
            budget::first_beat_offset(&app.app_name, &app.process_type, app.heartbeat.interval)
        } else {
            std::time::Duration::ZERO
        };
        let formation = formations.get(&(key.clone(), app.app_name.clone()));
        let connection = if spread {
            bot::HeartbeatConnection::Pooled
        } else {
            bot::HeartbeatConnection::Own
        };
        let mut worker =
            Worker::from_settings(app, client.clone(), dry_run, None, connection, &shutdown)
                .with_metrics(&registry)
                .with_leadership(leadership.clone())
                .with_file_watch(file_watch.clone())
                .with_first_beat_after(offset);
        if let Some(pace) = budgets.get(&key) {
            worker = worker.with_budget(pace.clone());
        }
        if let (Some(formation), true) = (formation, heroku) {
            let process_type = worker.settings.process_type.clone();
            let scaler =
                HerokuScaler::of(formation.clone(), &process_type).with_shutdown(shutdown.clone());
            worker = worker.with_scaler(Arc::new(scaler));
        }
        if listener.is_some() {
            shown.push(worker.telemetry());
        }
        let handle = tasks.spawn(worker.run(shutdown.clone()));
        names.insert(handle.id(), label);
    }
    // One server for the worker: every app's metrics, pages and drain.
    if let Some(listener) = listener {
        let address = listener.local_addr()?;
        tracing::info!(
            %address,
            apps = shown.len(),
            password = access.password.is_some(),
            "HTTP server listening: POST /logs/{{app}}, GET /metrics, /healthz, /."
        );
        let shutdown = shutdown.clone();
        let handle = tasks.spawn(async move {
            if let Err(error) = server::serve(listener, shown, access, shutdown).await {
                tracing::error!(%error, "The HTTP server stopped.");
            }
        });
        names.insert(handle.id(), "the HTTP server".to_string());
    }
    supervise(tasks, &names).await;
    lock_released.cancel();
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    Ok(())
}

/// Waits for every app's task; one that panicked is logged and the others go on.
pub async fn supervise(
    mut tasks: tokio::task::JoinSet<()>,
    names: &HashMap<tokio::task::Id, String>,
) {
    while let Some(joined) = tasks.join_next_with_id().await {
        if let Err(error) = joined {
            let app = names.get(&error.id()).map_or("?", String::as_str);
            if error.is_panic() {
                tracing::error!(
                    app,
                    "The app's worker panicked and stopped; the other apps go on."
                );
            }
        }
    }
}

/// The leader lock, when `leader_lock_url` is set; else this worker always leads.
fn leadership(
    settings: &Settings,
    released: CancellationToken,
) -> (Leadership, Option<tokio::task::JoinHandle<()>>) {
    let Some(url) = &settings.leader_lock_url else {
        return (Leadership::always(), None);
    };
    match PostgresLock::new(url).map(|lock| lock.with_key(settings.leader_lock_key)) {
        Ok(lock) => {
            let (leadership, task) = lock.start(released.cancelled_owned());
            (leadership, Some(task))
        }
        Err(error) => {
            // Checked when the settings were read; if it happens anyway, nobody leads.
            tracing::error!(%error, "The leader_lock_url cannot be used: this worker will not lead.");
            let (_never, state) = tokio::sync::watch::channel(false);
            let (confirm, _) = tokio::sync::mpsc::channel(1);
            (Leadership::from_parts(state, confirm), None)
        }
    }
}

/// One formation per app with several process types scaled, so one read serves them all.
fn shared_formations(
    settings: &Settings,
    client: &reqwest::Client,
) -> HashMap<((String, String), String), Arc<HerokuFormation>> {
    let mut counts: HashMap<((String, String), String), usize> = HashMap::new();
    let on_heroku = || {
        settings
            .apps
            .iter()
            .filter_map(|app| Some((app, app.heroku()?)))
    };
    for (app, _) in on_heroku() {
        *counts
            .entry((budget::budget_key(app), app.app_name.clone()))
            .or_default() += 1;
    }
    let mut shared = HashMap::new();
    for (app, heroku) in on_heroku() {
        let id = (budget::budget_key(app), app.app_name.clone());
        if counts[&id] > 1 && !shared.contains_key(&id) {
            let formation = HerokuFormation::new(
                client.clone(),
                &heroku.api_url,
                &heroku.app_name,
                heroku.api_key.clone(),
                heroku.api_timeout,
                true,
            );
            shared.insert(id, Arc::new(formation));
        }
    }
    shared
}

/// The one HTTP client every backend shares, so connections are pooled.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(autoscalebot_backends::USER_AGENT)
        .build()
        .expect("the TLS backend initialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_panic_in_one_apps_task_leaves_the_others_running() {
        let finished = Arc::new(AtomicU32::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        let mut names = HashMap::new();
        for index in 0..3u32 {
            let finished = finished.clone();
            let handle = tasks.spawn(async move {
                tokio::task::yield_now().await;
                if index == 1 {
                    panic!("a bug in one app's worker");
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
            names.insert(handle.id(), format!("app-{index}/web"));
        }
        supervise(tasks, &names).await;
        assert_eq!(finished.load(Ordering::SeqCst), 2);
    }
}
