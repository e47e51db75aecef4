//! The settings of the worker as a whole (`leader_lock_url`, `leader_lock_key`,
//! `heroku_api_calls_per_hour`) and `[[apps]]`, where each entry is one app with the top-level
//! values as its defaults, and problems are named after the entry.
//!
//! Reading one app is `app`'s job: this module only merges tables and names problems; it
//! must not check any per-app value itself.

use super::app::{self, read_app};
use super::{AppSettings, LoadContext, Problem, GLOBAL_KEYS};
use autoscalebot_backends::leader::postgres::DEFAULT_LOCK_KEY;
use autoscalebot_backends::settings::{fields, Check, Raw, SecretRaw, Table};
use autoscalebot_backends::Secret;
use config::ValueKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// The worker's default share of Heroku's 4,500 calls an hour, leaving a fifth for deploys,
/// the CLI and the dashboard.
const DEFAULT_CALLS_PER_HOUR: u32 = 3600;

/// The worker's own section as written: only at the top level.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorker {
    pub leader_lock_url: SecretRaw,
    pub leader_lock_key: Raw,
    pub heroku_api_calls_per_hour: Raw,
    pub http_host: Raw,
    pub http_password: SecretRaw,
    pub http_public: Raw,
}

/// `[[apps]]`, at the top level only.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawApps {
    apps: Raw,
}

/// The checked settings of the worker as a whole.
pub(super) struct Globals {
    pub leader_lock_url: Option<Secret>,
    /// The variable `leader_lock_url` came from: `"env:NAME"`'s NAME, or `DATABASE_URL`.
    pub leader_lock_url_variable: Option<String>,
    pub leader_lock_key: i64,
    pub heroku_api_calls_per_hour: u32,
    /// `http_host` as written; `None`: the default, which depends on where the port came from.
    pub http_host: Option<IpAddr>,
    pub http_password: Option<Secret>,
    pub http_password_variable: Option<String>,
    pub http_public: bool,
}

/// The settings of the worker as a whole: `leader_lock_url` (`"env"` takes `DATABASE_URL`,
/// `"env:NAME"` the variable NAME, as for every secret), `leader_lock_key` and
/// `heroku_api_calls_per_hour`.
pub(super) fn read_globals(table: &mut Table, check: &mut Check) -> Option<Globals> {
    let raw: RawWorker = check.section(table, "");
    let references = check.env_reference_count();
    let mut variable = None;
    let lock = raw.leader_lock_url.secret(check);
    let lock = match lock.as_ref().map(|lock| lock.expose().trim()) {
        None | Some("") => None,
        Some("env") => match check.env().get("DATABASE_URL") {
            Some(url) if !url.trim().is_empty() => {
                variable = Some("DATABASE_URL".to_string());
                Some(Secret::new(url.trim()))
            }
            _ => {
                check.problem(
                    raw.leader_lock_url.key(),
                    Some("\"env\"".to_string()),
                    None,
                    "DATABASE_URL to be set, since leader_lock_url = \"env\" takes the PostgreSQL URL from it",
                );
                None
            }
        },
        Some(text) => Some(Secret::new(text)),
    };
    if let Some((_, name)) = check.take_env_references(references).into_iter().next() {
        variable = Some(name);
    }
    if let Some(url) = &lock {
        if let Err(expected) = autoscalebot_backends::leader::postgres::parse_url(url) {
            raw.leader_lock_url.bad(check, expected);
        }
    }
    let lock_key = raw.leader_lock_key.integer_or(
        check,
        DEFAULT_LOCK_KEY,
        "a whole number from -9223372036854775808 to 9223372036854775807 (PostgreSQL's bigint), \
         the same in every copy of one fleet, such as 107157092528995 (the default)",
    );
    let calls = raw.heroku_api_calls_per_hour.whole_or(
        check,
        DEFAULT_CALLS_PER_HOUR,
        1,
        "a whole number of calls an hour above 0 (Heroku allows 4500 per account)",
    );
    let host = raw.http_host.parsed(check, |text| {
        text.trim().parse::<IpAddr>().map_err(|_| {
            "an IP address to listen on, such as \"127.0.0.1\" (this machine only) or \"0.0.0.0\" (every interface)".to_string()
        })
    });
    let references = check.env_reference_count();
    let password = raw
        .http_password
        .secret(check)
        .filter(|password| !password.is_empty());
    let password_variable = check
        .take_env_references(references)
        .into_iter()
        .next()
        .map(|(_, name)| name);
    let public = raw.http_public.flag_or(check, false);
    Some(Globals {
        http_host: host,
        http_password: password,
        http_password_variable: password_variable,
        http_public: public,
        leader_lock_url: lock,
        leader_lock_url_variable: variable,
        leader_lock_key: lock_key?,
        heroku_api_calls_per_hour: calls?,
    })
}

/// `[[apps]]`, taken out of the top-level table: `None` when the file describes one app.
pub(super) fn take_apps(table: &mut Table, check: &Check) -> Option<Raw> {
    let raw: RawApps = check.section(table, "");
    raw.apps.is_set().then_some(raw.apps)
}

/// The keys known at the top level of the file: an app's and the worker's.
fn top_keys() -> Vec<&'static str> {
    let mut keys = app::keys();
    keys.extend(GLOBAL_KEYS.iter());
    keys.extend(fields::<RawApps>());
    keys
}

/// A file without `[[apps]]`: one app, and every key left over is unknown.
pub(super) fn read_single_app(
    mut table: Table,
    check: &mut Check,
    context: &LoadContext,
) -> Option<Vec<AppSettings>> {
    let app = read_app(&mut table, check, context);
    let known = top_keys();
    check.unknown(table, known.iter().copied(), "");
    app.map(|app| vec![app])
}

/// An entry whose server port differs from an earlier entry's: the worker runs one HTTP server
/// for every app, so the ports must agree (a port of its own is not silently ignored).
fn port_conflict(label: &str, port: u16, first: &str, first_port: u16) -> Problem {
    Problem {
        key: format!("{label}.http_port"),
        value: Some(port.to_string()),
        origin: None,
        expected: format!(
            "{first_port}, the port {first} names: the worker runs one HTTP server for every app, \
             so set http_port once at the top level (or leave it to $PORT)"
        ),
    }
}

/// `[[apps]]`: each entry is one app, with the top-level values (`defaults`) under it. Every
/// problem names the entry (`apps[1] (my-app/web).max_dynos`); a problem that every entry has
/// with the same top-level value is told once, under the top-level key.
pub(super) fn read_apps(
    defaults: Table,
    entries: Raw,
    top: &mut Check,
    context: &LoadContext,
) -> Option<Vec<AppSettings>> {
    let expected = "a list of [[apps]] tables, each with at least heroku_app_name";
    let items = match entries.value().map(|value| &value.kind) {
        Some(ValueKind::Array(items)) if !items.is_empty() => items.clone(),
        _ => {
            entries.bad(top, expected);
            return None;
        }
    };
    let app_keys = app::keys();
    let mut apps = Vec::with_capacity(items.len());
    let mut all_ok = true;
    // Problems whose value came from the top level, as (the problem under the bare key, the
    // same problem naming the entry).
    let mut from_defaults: Vec<(Problem, Problem)> = Vec::new();
    let mut entries_read = 0;
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    // The first entry naming a server port, and that port: the worker has one server.
    let mut first_port: Option<(String, u16)> = None;
    for (index, item) in items.into_iter().enumerate() {
        let ValueKind::Table(entry) = item.kind.clone() else {
            Raw::new(format!("apps[{index}]"), Some(item)).bad(top, expected);
            all_ok = false;
            continue;
        };
        entries_read += 1;
        let text_of = |key: &str| {
            entry
                .get(key)
                .or_else(|| defaults.get(key))
                .and_then(|value| value.clone().into_string().ok())
        };
        let name = text_of("heroku_app_name");
        let process_type = text_of("process_type").unwrap_or_else(|| "web".to_string());
        let label = match &name {
            Some(name) => format!("apps[{index}] ({name}/{process_type})"),
            None => format!("apps[{index}]"),
        };
        let prefix = format!("{label}.");
        // A variable sets a top-level value: it names the value's origin in the entries
        // that inherit it, not in those that give their own.
        let origins = top
            .origins()
            .iter()
            .filter(|(setting, _)| {
                let first = setting.split('.').next().unwrap_or(setting);
                !entry.contains_key(first)
            })
            .map(|(setting, variable)| (setting.clone(), variable.clone()))
            .collect();
        let mut check = top.entry(&prefix, origins);
        let mut table = defaults.clone();
        for (key, value) in &entry {
            if GLOBAL_KEYS.contains(&key.as_str()) || fields::<RawApps>().contains(&key.as_str()) {
                Raw::new(key.clone(), Some(value.clone())).bad(
                    &mut check,
                    "no such setting inside [[apps]]: it applies to the whole worker, so set it at the top level",
                );
                continue;
            }
            table.insert(key.clone(), value.clone());
        }
        let app = read_app(&mut table, &mut check, context);
        // Unknown keys of this entry are its own; unknown top-level keys are told once below.
        table.retain(|key, _| entry.contains_key(key));
        check.unknown(table, app_keys.iter().copied(), "");
        for problem in check.into_problems() {
            let bare = problem
                .key
                .strip_prefix(&prefix)
                .unwrap_or(&problem.key)
                .to_string();
            let first = bare.split(['.', '"']).next().unwrap_or(&bare);
            let is_default = defaults.contains_key(first) && !entry.contains_key(first);
            if !is_default {
                top.push(problem);
                continue;
            }
            let bare_problem = Problem {
                key: bare,
                ..problem.clone()
            };
            from_defaults.push((bare_problem, problem));
        }
        let Some(mut app) = app else {
            all_ok = false;
            continue;
        };
        app.entry = Some(label.clone());
        let identity = (app.app_name.to_lowercase(), app.process_type.to_lowercase());
        match seen.get(&identity) {
            Some(first) => {
                top.push(Problem {
                    key: format!("{label}.process_type"),
                    value: Some(format!("{:?}", app.process_type)),
                    origin: None,
                    expected: format!(
                        "one entry per app and process type: {first} already scales {}/{} (two entries would fight over one formation)",
                        app.app_name, app.process_type
                    ),
                });
                all_ok = false;
            }
            None => {
                seen.insert(identity, label.clone());
            }
        }
        if let Some(port) = app.drain.http_port {
            match &first_port {
                Some((first, first_port)) if *first_port != port => {
                    top.push(port_conflict(&label, port, first, *first_port));
                    all_ok = false;
                }
                Some(_) => {}
                None => first_port = Some((label.clone(), port)),
            }
        }
        apps.push(app);
    }
    // A bad top-level value that every entry inherits is told once, under its own key.
    let mut told: Vec<Problem> = Vec::new();
    for (bare, named) in &from_defaults {
        let count = from_defaults
            .iter()
            .filter(|(other, _)| other == bare)
            .count();
        if count >= entries_read {
            if !told.contains(bare) {
                told.push(bare.clone());
                top.push(bare.clone());
            }
        } else {
            top.push(named.clone());
        }
    }
    // Top-level keys that no app takes are unknown.
    let mut leftover = defaults;
    leftover.retain(|key, _| !app_keys.contains(&key.as_str()));
    let known = top_keys();
    top.unknown(leftover, known.iter().copied(), "");
    (all_ok && !apps.is_empty()).then_some(apps)
}
