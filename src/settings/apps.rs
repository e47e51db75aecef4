//! The settings of the worker as a whole: the global keys (`leader_lock_url`,
//! `leader_lock_key`, `heroku_api_calls_per_hour`) and `[[apps]]`, where each entry is one app
//! with the top-level values as its defaults, and problems are named after the entry.
//!
//! Reading one app is `app`'s job: this module only merges tables and names problems; it
//! must not check any per-app value itself.

use super::reader::show;
use super::{AppSettings, LoadContext, Problem, Reader, DEFAULT_CALLS_PER_HOUR, GLOBAL_KEYS};
use autoscalebot_backends::leader::postgres::DEFAULT_LOCK_KEY;
use autoscalebot_backends::Secret;
use config::{Value, ValueKind};
use std::collections::HashMap;

/// The settings of the worker as a whole.
pub(super) struct Globals {
    pub leader_lock_url: Option<Secret>,
    /// The variable `leader_lock_url` came from: `"env:NAME"`'s NAME, or `DATABASE_URL`.
    pub leader_lock_url_variable: Option<String>,
    pub leader_lock_key: Option<i64>,
    pub heroku_api_calls_per_hour: Option<u32>,
}

/// The settings of the worker as a whole: `leader_lock_url` (`"env"` takes `DATABASE_URL`,
/// `"env:NAME"` the variable NAME, as for every secret), `leader_lock_key` and
/// `heroku_api_calls_per_hour`.
pub(super) fn read_globals(reader: &mut Reader, env: &HashMap<String, String>) -> Globals {
    let mut leader_lock_url_variable = None;
    let leader_lock_url = match reader.string("leader_lock_url") {
        None => None,
        Some(text) if text.trim().is_empty() => None,
        Some(text) if text.trim() == "env" => match env.get("DATABASE_URL") {
            Some(url) if !url.trim().is_empty() => {
                leader_lock_url_variable = Some("DATABASE_URL".to_string());
                Some(Secret::new(url.trim()))
            }
            _ => {
                let value = Value::new(None, "env");
                reader.bad(
                    "leader_lock_url",
                    &value,
                    "DATABASE_URL to be set, since leader_lock_url = \"env\" takes the PostgreSQL URL from it",
                );
                None
            }
        },
        Some(text) => Some(Secret::new(text.trim())),
    };
    if let Some(at) = reader
        .env_references
        .iter()
        .position(|(key, _)| key == "leader_lock_url")
    {
        leader_lock_url_variable = Some(reader.env_references.remove(at).1);
    }
    if let Some(url) = &leader_lock_url {
        if let Err(expected) = autoscalebot_backends::leader::postgres::parse_url(url) {
            // The URL may hold a password: never shown.
            let value = Value::new(None, "***");
            reader.bad("leader_lock_url", &value, expected);
        }
    }
    let lock_key = reader.integer_or(
        "leader_lock_key",
        DEFAULT_LOCK_KEY,
        "a whole number from -9223372036854775808 to 9223372036854775807 (PostgreSQL's bigint), \
         the same in every copy of one fleet, such as 107157092528995 (the default)",
    );
    let calls = reader.whole_or(
        "heroku_api_calls_per_hour",
        DEFAULT_CALLS_PER_HOUR,
        1,
        "a whole number of calls an hour above 0 (Heroku allows 4500 per account)",
    );
    Globals {
        leader_lock_url,
        leader_lock_url_variable,
        leader_lock_key: lock_key,
        heroku_api_calls_per_hour: calls,
    }
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

/// `[[apps]]`: each entry is one app, with the top-level values as defaults under it. Every
/// problem names the entry (`apps[1] (my-app/web).max_dynos`); a problem that every entry has
/// with the same top-level value is told once, under the top-level key.
pub(super) fn read_apps(
    top: &mut Reader,
    entries: Value,
    context: &LoadContext,
) -> Option<Vec<AppSettings>> {
    let expected = "a list of [[apps]] tables, each with at least heroku_app_name";
    let items = match entries.kind.clone() {
        ValueKind::Array(items) if !items.is_empty() => items,
        _ => {
            top.bad("apps", &entries, expected);
            return None;
        }
    };
    let defaults = std::mem::take(&mut top.table);
    let mut known: Vec<String> = top.known.clone();
    let mut known_set: std::collections::HashSet<String> = known.iter().cloned().collect();
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
            top.bad(&format!("apps[{index}]"), &item, expected);
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
        let mut reader = Reader::new(defaults.clone(), &format!("{label}."));
        reader.entry_prefix = reader.prefix.clone();
        reader.env = top.env.clone();
        for key in defaults.keys() {
            if entry.contains_key(key) {
                continue;
            }
            if let Some(variable) = top.origins.get(key) {
                reader
                    .origins
                    .insert(format!("{label}.{key}"), variable.clone());
            }
        }
        for (key, value) in &entry {
            if GLOBAL_KEYS.contains(&key.as_str()) || key == "apps" {
                reader.bad(
                    key,
                    value,
                    "no such setting inside [[apps]]: it applies to the whole worker, so set it at the top level",
                );
                continue;
            }
            reader.table.insert(key.clone(), value.clone());
        }
        let app = AppSettings::read_in(&mut reader, context);
        // Unknown keys of this entry are its own; unknown top-level keys are told once below.
        reader
            .table
            .retain(|key, _| entry.contains_key(key) || !defaults.contains_key(key));
        reader.finish_unknown();
        // Every entry knows the same keys: each is kept once, not once per entry (10,000
        // entries would make a list of 600,000 names).
        for key in &reader.known {
            if known_set.insert(key.clone()) {
                known.push(key.clone());
            }
        }
        for problem in reader.problems {
            let bare = problem
                .key
                .strip_prefix(&reader.prefix)
                .unwrap_or(&problem.key)
                .to_string();
            let first = bare.split(['.', '"']).next().unwrap_or(&bare);
            let is_default = defaults.contains_key(first) && !entry.contains_key(first);
            if !is_default {
                top.problems.push(problem);
                continue;
            }
            let bare_problem = Problem {
                key: bare,
                ..problem.clone()
            };
            from_defaults.push((bare_problem, problem));
        }
        let Some(app) = app else {
            all_ok = false;
            continue;
        };
        let identity = (
            app.heroku_app_name.to_lowercase(),
            app.process_type.to_lowercase(),
        );
        match seen.get(&identity) {
            Some(first) => {
                let value = Value::new(None, app.process_type.clone());
                top.problems.push(Problem {
                    key: format!("{label}.process_type"),
                    value: Some(show(&value)),
                    origin: None,
                    expected: format!(
                        "one entry per app and process type: {first} already scales {}/{} (two entries would fight over one formation)",
                        app.heroku_app_name, app.process_type
                    ),
                });
                all_ok = false;
            }
            None => {
                seen.insert(identity, label.clone());
            }
        }
        if let Some(port) = app.http_port {
            match &first_port {
                Some((first, first_port)) if *first_port != port => {
                    top.problems
                        .push(port_conflict(&label, port, first, *first_port));
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
                top.problems.push(bare.clone());
            }
        } else {
            top.problems.push(named.clone());
        }
    }
    // Top-level keys that no app took are unknown.
    let mut leftover = defaults;
    leftover.retain(|key, _| !known_set.contains(key));
    top.table = leftover;
    top.known = known;
    top.finish_unknown();
    (all_ok && !apps.is_empty()).then_some(apps)
}
