//! The worker's start, for apps on Heroku with neither `app_url` nor an absolute
//! `heartbeat_url`: each app's `web_url` is read from the Platform API (`GET /apps/{app}`)
//! once, and becomes its `app_url`. The process types of one app share one read.
//!
//! A refusal (401, 403, 404: the key or the app name is wrong) stops the worker before it
//! starts, as a bad setting does; a passing failure (429, 5xx, a timeout) is logged and tried
//! again with a growing pause until it works or shutdown begins. Each read spends a call from
//! its key's budget, waiting for one when it is empty, so that thousands of `[[apps]]` never
//! meet Heroku's 429. It must not read anything else, nor decide anything about scaling.

use crate::budget::{ApiBudget, Call};
use crate::settings::{Problem, Settings, SettingsError};
use autoscalebot_backends::retry::Backoff;
use autoscalebot_backends::scaler::{PlatformApi, ScaleError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The pause after a failed read: from 1 s, doubling, up to a minute.
const RETRY: Backoff =
    Backoff::doubling(Duration::from_secs(1), Duration::from_secs(60)).with_equal_jitter();
/// At most this many reads at once, so that a worker of many apps does not burst.
const AT_ONCE: usize = 4;

/// The budget of each API key that spends from one, by [`crate::budget::budget_key`].
pub type Budgets = HashMap<(String, String), Arc<Mutex<ApiBudget>>>;

/// Reads the `web_url` of every app that needs it and takes it as the app's `app_url`.
/// `Ok(false)` when shutdown began before every read was done.
pub async fn read_web_urls(
    settings: &mut Settings,
    client: &reqwest::Client,
    budgets: &Budgets,
    shutdown: &CancellationToken,
) -> Result<bool, SettingsError> {
    // One read per (API URL, key, app): the process types of an app share it.
    let mut reads: HashMap<(String, String, String), Vec<usize>> = HashMap::new();
    for (index, app) in settings.apps.iter().enumerate() {
        if let (true, Some(heroku)) = (app.needs_web_url(), app.heroku()) {
            let id = (
                heroku.api_url.to_string(),
                heroku.api_key.expose().to_string(),
                heroku.app_name.clone(),
            );
            reads.entry(id).or_default().push(index);
        }
    }
    if reads.is_empty() {
        return Ok(true);
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for indexes in reads.into_values() {
        let first = &settings.apps[indexes[0]];
        let heroku = first
            .heroku()
            .expect("only apps on Heroku read their web_url");
        let api = PlatformApi::for_platform(client.clone(), heroku);
        let target = Target {
            name: heroku.app_name.clone(),
            key_of: KeyOf::of(first),
            budget: budgets.get(&crate::budget::budget_key(first)).cloned(),
        };
        let gate = gate.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _turn = gate.acquire_owned().await;
            let read = read_one(&api, &target, &shutdown).await;
            (indexes, target.name, read)
        });
    }
    let mut problems = Vec::new();
    let mut complete = true;
    while let Some(joined) = tasks.join_next().await {
        let (indexes, name, read) = joined.expect("a web_url read does not panic");
        match read {
            Ok(Some(web_url)) => {
                for index in indexes {
                    let app = &mut settings.apps[index];
                    if let Err(why) = app.use_web_url(&web_url) {
                        problems.push(no_web_url(&KeyOf::of(app), &name, why));
                        break;
                    }
                }
                tracing::info!(app = %name, web_url = %web_url, "app_url is the app's web_url, read from the Platform API.");
            }
            Ok(None) => complete = false,
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.value.cmp(&b.value));
        return Err(SettingsError { problems });
    }
    Ok(complete)
}

/// One read: the app, how its problems name its keys, and the budget it spends from.
struct Target {
    name: String,
    key_of: KeyOf,
    budget: Option<Arc<Mutex<ApiBudget>>>,
}

/// The keys a refusal names, as loading names them (`apps[1] (my-app/web).heroku_api_key`
/// under `[[apps]]`).
struct KeyOf {
    api_key: String,
    app_name: String,
    app_url: String,
}

impl KeyOf {
    fn of(app: &crate::settings::AppSettings) -> Self {
        KeyOf {
            api_key: app.key("heroku_api_key"),
            app_name: app.key("heroku_app_name"),
            app_url: app.key("app_url"),
        }
    }
}

/// The app's `web_url`, trying again after passing failures; `Ok(None)` when shutdown came
/// first.
async fn read_one(
    api: &PlatformApi,
    target: &Target,
    shutdown: &CancellationToken,
) -> Result<Option<String>, Problem> {
    let name = target.name.as_str();
    let mut failures = 0;
    loop {
        if let Some(budget) = &target.budget {
            loop {
                let wait = {
                    let mut budget = budget.lock().expect("the budget lock is never poisoned");
                    let now = tokio::time::Instant::now();
                    if budget.try_take(now, Call::Decision) {
                        break;
                    }
                    budget.next_call_in(now)
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        let error = match api.app(name).await {
            Ok(app) => {
                return match app.web_url.filter(|url| !url.trim().is_empty()) {
                    Some(url) => Ok(Some(url)),
                    None => Err(no_web_url(
                        &target.key_of,
                        name,
                        "the Platform API gave the app no web_url".into(),
                    )),
                };
            }
            Err(error) => error,
        };
        if !error.is_retriable() {
            return Err(refused(&target.key_of, name, &error));
        }
        if let (ScaleError::RateLimited { .. }, Some(budget)) = (&error, &target.budget) {
            budget
                .lock()
                .expect("the budget lock is never poisoned")
                .rate_limited(tokio::time::Instant::now());
        }
        failures += 1;
        let pause = RETRY.delay(failures);
        tracing::warn!(app = %name, %error, retry_in = ?pause, "Could not read the app's web_url (for app_url) from the Platform API; trying again.");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

const ORIGIN: &str = "the Platform API, reading the app's web_url since app_url is not set";

/// A 401, 403 or 404 for `GET /apps/{app}`: the key or the name is wrong.
fn refused(key_of: &KeyOf, name: &str, error: &ScaleError) -> Problem {
    let (key, value) = match error {
        ScaleError::Unauthorized { .. } => (&key_of.api_key, "\"***\"".to_string()),
        _ => (&key_of.app_name, format!("{name:?}")),
    };
    Problem {
        key: key.clone(),
        value: Some(value),
        origin: Some(ORIGIN.to_string()),
        expected: format!(
            "a key and an app name the platform accepts, but {error}; or set app_url to the app's address"
        ),
    }
}

fn no_web_url(key_of: &KeyOf, name: &str, why: String) -> Problem {
    Problem {
        key: key_of.app_url.clone(),
        value: None,
        origin: Some(ORIGIN.to_string()),
        expected: format!(
            "the app's address, such as \"https://{name}-1a2b3c4d5e6f.herokuapp.com\", since {why}"
        ),
    }
}
