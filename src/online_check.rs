//! `autoscalebot check --online`: once the settings are valid, asks the platform and the app
//! whether they agree with them: the API key (whose account it is), the app (and its
//! `web_url`), the process type in the formation, the heartbeat (its status and time against
//! the min and the max), the log drain when `signal` reads one, and the account's API budget.
//!
//! Each check is one [`Line`]: ok, a warning or a failure, with what to do. A check that needs
//! an earlier one to pass is skipped when it failed. Nothing here changes anything on the
//! platform (GETs only) or prints a secret: keys never, a drain's URL without its password.

use crate::budget;
use crate::decision::{classify, HeartbeatReading, Observation};
use crate::settings::{AppSettings, AppUrlFrom, Settings};
use autoscalebot_backends::probe::{Heartbeat as HeartbeatProbe, Probe};
use autoscalebot_backends::scaler::platform_api::Account;
use autoscalebot_backends::scaler::{PlatformApi, ScaleError};
use autoscalebot_backends::shown_url;
use std::collections::HashMap;
use std::fmt;
use url::Url;

/// Heartbeats sent per app: the first may pay for a new connection, so the median counts.
const HEARTBEATS: usize = 3;
/// Below this many calls left, the account's budget is worth a warning.
const LOW_REMAINING: u64 = 450;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Wrong: the worker would not do its job. `check --online` exits 1.
    Fail,
    /// Not checked: not needed by these settings, or an earlier check failed.
    Skip,
}

/// One check's outcome: what was checked, and what was found or what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub status: Status,
    pub what: &'static str,
    pub detail: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        write!(f, "{status:<4}  {}: {}", self.what, self.detail)
    }
}

fn line(status: Status, what: &'static str, detail: impl Into<String>) -> Line {
    Line {
        status,
        what,
        detail: detail.into(),
    }
}

/// The checks of one app (one `[[apps]]` entry).
#[derive(Debug, Clone)]
pub struct Section {
    /// "my-app (web)".
    pub app: String,
    pub lines: Vec<Line>,
}

/// Runs every check of every app. The key's account and budget are asked once per key.
pub async fn check(settings: &Settings, client: &reqwest::Client) -> Vec<Section> {
    let plans = budget::plan_by_key(settings);
    let mut accounts: HashMap<(String, String), Result<Account, ScaleError>> = HashMap::new();
    let mut remaining: HashMap<(String, String), Result<u64, ScaleError>> = HashMap::new();
    let mut sections = Vec::new();
    for app in &settings.apps {
        let mut lines = Vec::new();
        let mut app = app.clone();
        if let Some(heroku) = app.heroku() {
            let key = budget::budget_key(&app);
            let api = PlatformApi::for_platform(client.clone(), heroku);
            if !accounts.contains_key(&key) {
                accounts.insert(key.clone(), api.account().await);
            }
            let key_works = match &accounts[&key] {
                Ok(account) => {
                    lines.push(line(
                        Status::Ok,
                        "API key",
                        format!("belongs to {}", account.email),
                    ));
                    true
                }
                Err(error) => {
                    lines.push(key_failed(error));
                    false
                }
            };
            if key_works {
                platform_checks(&api, &mut app, settings.apps.len(), &mut lines).await;
                if !remaining.contains_key(&key) {
                    remaining.insert(key.clone(), api.rate_limit_remaining().await);
                }
                let spend = plans.get(&key).map_or(0.0, |plan| plan.at_most_per_hour);
                lines.push(budget_line(&remaining[&key], spend));
            } else {
                let skipped = "needs an API key the platform accepts";
                for what in ["app", "process type", "log drain", "API budget"] {
                    lines.push(line(Status::Skip, what, skipped));
                }
            }
        } else {
            let scaler = app
                .platform
                .as_ref()
                .map_or("none", |p| p.settings().name());
            lines.push(line(
                Status::Skip,
                "API key, app, process type, log drain, API budget",
                format!("scaler = {scaler:?}: the worker makes no Platform API call"),
            ));
        }
        lines.push(heartbeat_line(&app, client).await);
        sections.push(Section {
            app: format!("{} ({})", app.app_name, app.process_type),
            lines,
        });
    }
    sections
}

/// The app, its process type and its drain, once the key works. Takes the app's `web_url`
/// as `app_url` when the worker would.
async fn platform_checks(
    api: &PlatformApi,
    app: &mut AppSettings,
    apps_in_worker: usize,
    lines: &mut Vec<Line>,
) {
    let name = app.app_name.clone();
    match api.app(&name).await {
        Ok(found) => {
            let web_url = found.web_url.unwrap_or_default();
            let detail = match &app.heartbeat.app_url_from {
                AppUrlFrom::PlatformWebUrl { .. } => match app.use_web_url(&web_url) {
                    Ok(()) => Ok(format!(
                        "{name} is there; its web_url {web_url} is used as app_url (app_url is not set)"
                    )),
                    Err(why) => Err(format!("{why}: set app_url to the app's address")),
                },
                _ => Ok(format!("{name} is there (its web_url: {web_url})")),
            };
            lines.push(match detail {
                Ok(detail) => line(Status::Ok, "app", detail),
                Err(detail) => line(Status::Fail, "app", detail),
            });
        }
        Err(error) => {
            lines.push(app_failed(&name, &error));
            for what in ["process type", "log drain"] {
                lines.push(line(Status::Skip, what, "needs an app the platform knows"));
            }
            return;
        }
    }
    lines.push(match api.formations(&name).await {
        Ok(formations) => {
            match formations
                .iter()
                .find(|formation| formation.process_type == app.process_type)
            {
                Some(formation) => line(
                    Status::Ok,
                    "process type",
                    format!(
                        "{} is in the formation, at {} dyno{} now",
                        app.process_type,
                        formation.quantity,
                        if formation.quantity == 1 { "" } else { "s" }
                    ),
                ),
                None => {
                    let types: Vec<&str> = formations
                        .iter()
                        .map(|formation| formation.process_type.as_str())
                        .collect();
                    line(
                        Status::Fail,
                        "process type",
                        format!(
                            "the formation of {name} has no {:?} (it has: {}): set process_type to the Procfile's name of the process to scale",
                            app.process_type,
                            if types.is_empty() { "none".to_string() } else { types.join(", ") }
                        ),
                    )
                }
            }
        }
        Err(error) => line(
            Status::Fail,
            "process type",
            format!("the formation could not be read: {error}"),
        ),
    });
    lines.push(drain_line(api, app, apps_in_worker).await);
}

fn key_failed(error: &ScaleError) -> Line {
    let detail = match error {
        ScaleError::Unauthorized { id, .. } => format!(
            "the platform refused it (401 {id}): set HEROKU_API_KEY (or heroku_api_key = \"env:NAME\") to a key the platform accepts; `heroku authorizations:create` makes one that lasts"
        ),
        _ if error.is_retriable() => format!(
            "the platform did not answer well ({error}): check heroku_api_url, then try again"
        ),
        _ => format!("{error}: check heroku_api_key and heroku_api_url"),
    };
    line(Status::Fail, "API key", detail)
}

fn app_failed(name: &str, error: &ScaleError) -> Line {
    let what_to_do = match error {
        ScaleError::NotFound { .. } => format!(
            "the platform knows no app {name:?}: set heroku_app_name to a name `heroku apps` lists"
        ),
        ScaleError::Forbidden { .. } => format!(
            "the key's account may not see {name:?}: use a key of the app's owner or of a collaborator"
        ),
        _ => format!("{name:?} could not be read: {error}"),
    };
    line(Status::Fail, "app", what_to_do)
}

/// The account's calls left now, against what these settings may spend.
fn budget_line(remaining: &Result<u64, ScaleError>, spend_per_hour: f64) -> Line {
    let spend = format!(
        "these settings spend at most {spend_per_hour:.0} an hour on this key (heroku_api_calls_per_hour caps it)"
    );
    match remaining {
        Ok(0) => line(
            Status::Fail,
            "API budget",
            format!("the account has no calls left now, so scaling would wait; {spend}. Find what else spends the account's calls (deploys, scripts, dashboards, other workers), or wait: Heroku gives back about 75 a minute"),
        ),
        Ok(left) if *left < LOW_REMAINING => line(
            Status::Warn,
            "API budget",
            format!("{left} calls left of Heroku's 4500 an hour for this account; {spend}. Something else spends the account's calls"),
        ),
        Ok(left) => line(
            Status::Ok,
            "API budget",
            format!("{left} calls left of Heroku's 4500 an hour for this account; {spend}"),
        ),
        Err(error) => line(
            Status::Warn,
            "API budget",
            format!("the rate limit could not be read ({error}); {spend}"),
        ),
    }
}

/// With `signal` reading the router: a drain of the app that sends its logs to this worker,
/// with `log_drain_password`. The port and the password are checked by the settings already.
async fn drain_line(api: &PlatformApi, app: &AppSettings, apps_in_worker: usize) -> Line {
    let drain = &app.drain;
    if !drain.signal.uses_router() {
        return line(
            Status::Skip,
            "log drain",
            format!("signal = {:?} reads no log drain", drain.signal.as_str()),
        );
    }
    let Some(password) = &drain.log_drain_password else {
        return line(Status::Fail, "log drain", "log_drain_password is not set");
    };
    let port = drain
        .http_port
        .map_or("(none)".to_string(), |port| port.to_string());
    let name = &app.app_name;
    let own_path = format!("/logs/{name}");
    let add = format!(
        "add one: heroku drains:add \"https://drain:$PASSWORD@<the worker's host>{own_path}\" -a {name}, with log_drain_password's value as $PASSWORD"
    );
    let drains = match api.log_drains(name).await {
        Ok(drains) => drains,
        Err(error) => {
            return line(
                Status::Warn,
                "log drain",
                format!("http_port {port} and log_drain_password are set, but the app's drains could not be listed ({error}): check them with `heroku drains -a {name}`"),
            )
        }
    };
    let to_worker: Vec<Url> = drains
        .iter()
        .filter_map(|drain| Url::parse(drain.url.expose()).ok())
        .filter(|url| {
            let path = url.path().trim_end_matches('/');
            path == own_path || (apps_in_worker == 1 && path == "/logs")
        })
        .collect();
    if to_worker.is_empty() {
        return line(
            Status::Fail,
            "log drain",
            format!(
                "none of the app's {} drain{} sends its logs to a worker's {own_path}; {add}",
                drains.len(),
                if drains.len() == 1 { "" } else { "s" }
            ),
        );
    }
    let matching = to_worker.iter().find(|url| {
        url.password()
            .and_then(|text| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .ok()
            })
            .is_some_and(|text| text == password.expose())
    });
    match matching {
        Some(url) => line(
            Status::Ok,
            "log drain",
            format!(
                "{} gets the app's logs with log_drain_password; the worker listens on http_port {port}",
                shown_url(url)
            ),
        ),
        // The platform may list a drain without its password: nothing to compare then.
        None if to_worker.iter().all(|url| url.password().is_none()) => line(
            Status::Warn,
            "log drain",
            format!(
                "{} points at the worker, but the platform does not show its password: check that it is log_drain_password (the worker refuses logs with another)",
                shown_url(&to_worker[0])
            ),
        ),
        None => line(
            Status::Fail,
            "log drain",
            format!(
                "{} points at the worker, but its password is not log_drain_password, so the worker refuses its logs; remove it and {add}",
                shown_url(
                    to_worker
                        .iter()
                        .find(|url| url.password().is_some())
                        .unwrap_or(&to_worker[0])
                )
            ),
        ),
    }
}

/// A few heartbeats, as the worker would send them, read as the engine would.
async fn heartbeat_line(app: &AppSettings, client: &reqwest::Client) -> Line {
    let signal = app.drain.signal;
    if !signal.uses_heartbeat() {
        return line(
            Status::Skip,
            "heartbeat",
            format!("signal = {:?} sends no heartbeat", signal.as_str()),
        );
    }
    if matches!(
        app.heartbeat.app_url_from,
        AppUrlFrom::PlatformWebUrl { .. }
    ) {
        return line(
            Status::Skip,
            "heartbeat",
            "app_url is not set and the app's web_url could not be read: set app_url",
        );
    }
    let url = &app.heartbeat.url;
    let probe = HeartbeatProbe::new(client.clone(), url.clone(), app.heartbeat.timeout);
    let mut readings = Vec::new();
    for _ in 0..HEARTBEATS {
        let reading = HeartbeatReading::from(&probe.probe().await);
        let answered = matches!(reading, HeartbeatReading::Answered { .. });
        readings.push(reading);
        if !answered {
            break;
        }
    }
    heartbeat_verdict(app, url, &readings)
}

/// What the heartbeats say, for `heartbeat_url` `url`: the last reading's status, and the
/// median time when every one was answered.
fn heartbeat_verdict(app: &AppSettings, url: &Url, readings: &[HeartbeatReading]) -> Line {
    let thresholds = &app.thresholds;
    let (max, min) = (
        thresholds.max_response_time_ms,
        thresholds.min_response_time_ms,
    );
    let last = readings.last().expect("at least one heartbeat");
    let heartbeat = classify(last, max, min);
    let fix_url = "check heartbeat_url (the exact path, its trailing slash included) and app_url, and that the app serves the endpoint (docs/heartbeat-endpoint.md)";
    match (last, heartbeat.observation) {
        (HeartbeatReading::Answered { status, .. }, Observation::Misconfigured { .. }) => line(
            Status::Fail,
            "heartbeat",
            format!("{url} answered {status}: the worker never scales on a 4xx and tells you once; {fix_url}"),
        ),
        (HeartbeatReading::Answered { status, .. }, _) if *status >= 500 => line(
            Status::Fail,
            "heartbeat",
            format!("{url} answered {status}: the app fails on the heartbeat, and the worker counts every such answer as a fail and adds dynos; see the app's log"),
        ),
        (HeartbeatReading::TimedOut { after }, _) => line(
            Status::Fail,
            "heartbeat",
            format!("{url} gave no answer within heartbeat_timeout_in_ms ({} ms): the worker counts that as a fail and adds dynos; check that the app runs and the endpoint is light", after.as_millis()),
        ),
        (HeartbeatReading::Unreachable { error, .. }, _) => line(
            Status::Fail,
            "heartbeat",
            format!("{url} could not be reached ({error}): check app_url and heartbeat_url, and that the app runs"),
        ),
        (HeartbeatReading::Answered { status, .. }, _) => {
            let mut times: Vec<u64> = readings
                .iter()
                .filter_map(|reading| match reading {
                    HeartbeatReading::Answered { elapsed, .. } => Some(elapsed.as_millis() as u64),
                    _ => None,
                })
                .collect();
            let shown = times
                .iter()
                .map(|ms| format!("{ms}"))
                .collect::<Vec<_>>()
                .join(", ");
            times.sort_unstable();
            let median = times[times.len() / 2];
            let answered = format!("{url} answered {status} in {shown} ms");
            if median > max {
                line(
                    Status::Warn,
                    "heartbeat",
                    format!("{answered}: slower than max_response_time_in_ms ({max} ms), so the worker would add dynos now; if the app is not busy, make the endpoint lighter or raise max_response_time_in_ms"),
                )
            } else if median < min {
                line(
                    Status::Ok,
                    "heartbeat",
                    format!("{answered}: faster than min_response_time_in_ms ({min} ms), a pass towards fewer dynos"),
                )
            } else {
                line(
                    Status::Ok,
                    "heartbeat",
                    format!("{answered}: between min_response_time_in_ms ({min} ms) and max_response_time_in_ms ({max} ms)"),
                )
            }
        }
    }
}
