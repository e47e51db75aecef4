//! One app's settings: the app's own section (its name, process type and log format), the
//! top-level keys that are tables, and [`read_app`], which takes every part's section out of
//! the app's table, checks each in the order their needs give, and assembles [`AppSettings`];
//! [`effective`] lists them back for `check`, part by part.
//!
//! Merging `[[apps]]` entries belongs to `apps`, loading the raw table to `load`. This module
//! must not check a part's keys itself: it hands each part what it needs from the others.

use super::downtime::RawDowntime;
use super::{
    activator, drain::RawDrain, heartbeat, heartbeat::RawHeartbeat, notify::RawNotify, queue,
    queue::RawQueue, shutdown_hook, thresholds, thresholds::RawThresholds, AppSettings,
    LoadContext, Purpose, DEFAULT_APP_LABEL,
};
use autoscalebot_backends::notify::{self, Notifiers};
use autoscalebot_backends::scaler;
use autoscalebot_backends::settings::{fields, named, rows, Check, Raw, Table};
use serde::{Deserialize, Serialize};

/// The app's own section as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    /// The name of the Heroku app; on other platforms, what logs and notifications call it.
    heroku_app_name: Raw,
    process_type: Raw,
    log_format: Raw,
}

/// The top-level keys whose values are tables owned by a part of their own.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    shutdown_hook: Raw,
    activator: Raw,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// logfmt on Heroku (`DYNO` is set), text elsewhere.
    Auto,
    Logfmt,
    Text,
    Json,
}

impl LogFormat {
    const ALL: [LogFormat; 4] = [
        LogFormat::Auto,
        LogFormat::Logfmt,
        LogFormat::Text,
        LogFormat::Json,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Logfmt => "logfmt",
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    /// The concrete format: `Auto` becomes logfmt when running on a dyno.
    pub fn resolve(self, on_dyno: bool) -> LogFormat {
        match self {
            LogFormat::Auto if on_dyno => LogFormat::Logfmt,
            LogFormat::Auto => LogFormat::Text,
            other => other,
        }
    }
}

/// Every key at the top level of an app: each part's section, each platform's keys and each
/// notifier's table, in the order `check` shows them.
pub(super) fn keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = fields::<RawApp>().to_vec();
    keys.extend(scaler::keys());
    keys.extend(RawHeartbeat::keys());
    keys.extend(RawThresholds::keys());
    keys.extend(RawNotify::keys());
    keys.extend(notify::table_names());
    keys.extend(RawDowntime::keys());
    keys.extend(RawDrain::keys());
    keys.extend(RawQueue::keys());
    keys.extend(fields::<RawTables>());
    keys
}

/// Every key of an app, a table's keys as `table.key`: the key list.
pub fn all_keys() -> Vec<String> {
    let tables = named::<RawTables>("");
    let mut all: Vec<String> = keys()
        .into_iter()
        .filter(|key| {
            *key != tables.shutdown_hook.key()
                && *key != tables.activator.key()
                && !notify::table_names().any(|name| name == *key)
        })
        .map(str::to_string)
        .collect();
    all.extend(notify::keys());
    for (table, keys) in [
        (tables.shutdown_hook.key(), shutdown_hook::keys()),
        (tables.activator.key(), activator::keys()),
    ] {
        all.extend(keys.iter().map(|key| format!("{table}.{key}")));
    }
    all
}

/// Reads one app's settings out of `table` for `context.purpose`, recording every problem in
/// `check`. Each part takes its own keys; what is left in `table` is unknown, for the caller to
/// tell. `None` when any value of this app is unusable.
pub(super) fn read_app(
    table: &mut Table,
    check: &mut Check,
    context: &LoadContext,
) -> Option<AppSettings> {
    let purpose = context.purpose;
    let mark = check.mark();
    let references = check.env_reference_count();
    let app: RawApp = check.section(table, "");
    let tables: RawTables = check.section(table, "");
    let raw_thresholds = RawThresholds::take(table, check);
    let raw_heartbeat = RawHeartbeat::take(table, check);
    let raw_notify = RawNotify::take(table, check);
    let raw_downtime = RawDowntime::take(table, check);
    let raw_drain = RawDrain::take(table, check);
    let raw_queue = RawQueue::take(table, check);

    let name = app.heroku_app_name.text(check);
    if let Some(name) = &name {
        if name.is_empty() || name.contains(['/', ' ', '?', '#']) {
            app.heroku_app_name
                .bad_text(check, name, "an app name: letters, digits and dashes");
        }
    }
    let process_type = app.process_type.text_or(check, "web");
    if process_type.is_empty() || process_type.contains(['/', ' ']) {
        app.process_type.bad_text(
            check,
            &process_type,
            "a process type from your Procfile, such as \"web\"",
        );
    }
    let log_format = read_log_format(&app.log_format, check);

    // What the others depend on, read once.
    let top_idle_after = raw_thresholds.idle_after.positive_duration(check);
    let time_zone = raw_thresholds.time_zone(check);
    let max_response_time_ms = raw_thresholds.max_response_time_ms(check);
    let interval = raw_heartbeat.interval(check);

    let activator = activator::read(&tables.activator, check, purpose, top_idle_after);
    // `activate` with a local command needs no platform and no heartbeat.
    let local_command = activator.as_ref().is_some_and(|a| a.command.is_some());
    let needs_platform = !(purpose == Purpose::Activator && local_command);
    let platform = scaler::read_platform(
        table,
        needs_platform,
        (&app.heroku_app_name, name.as_deref()),
        check,
    );
    let heartbeat = raw_heartbeat.check(
        check,
        interval,
        &heartbeat::Needs {
            purpose,
            app_name: name.as_deref(),
            on_heroku: matches!(platform, Some(scaler::Platform::Heroku(_))),
            app_name_missing: check.has_problem(app.heroku_app_name.key()),
            max_response_time_ms,
        },
    );
    let idle_in_force = top_idle_after.or(activator.as_ref().and_then(|a| a.idle_after));
    let thresholds = raw_thresholds.check(
        check,
        thresholds::Read {
            time_zone,
            idle_after: top_idle_after,
            max_response_time_ms,
        },
        &thresholds::Needs {
            purpose,
            most: platform
                .as_ref()
                .and_then(|platform| platform.settings().most()),
            // Only a target the platform starts is stopped through the thresholds.
            idle_in_force: idle_in_force.filter(|_| !local_command),
        },
    );
    let notify = raw_notify.check(check);
    let named_backends = notify
        .as_ref()
        .map(|rules| rules.backends.clone())
        .unwrap_or_default();
    let notifiers = Notifiers::read(table, &named_backends, check);
    let downtime = raw_downtime.check(check, context, time_zone);
    let drain = raw_drain.check(check, context, interval);
    let queue_policy = thresholds
        .as_ref()
        .is_some_and(|thresholds| thresholds.policy.kind == super::PolicyKind::Queue);
    let drain_on = drain
        .as_ref()
        .is_some_and(|drain| drain.log_drain_password.is_some());
    let queue = raw_queue.check(check, queue_policy, drain_on);
    let shutdown_hook = shutdown_hook::read(&tables.shutdown_hook, check);

    if check.failed_since(mark) {
        return None;
    }
    let secret_variables = check.take_env_references(references);
    Some(AppSettings {
        app_name: name.unwrap_or_else(|| DEFAULT_APP_LABEL.to_string()),
        process_type,
        entry: None,
        platform,
        heartbeat: heartbeat?,
        thresholds: thresholds?,
        notify: notify?,
        notifiers,
        downtime: downtime?,
        drain: drain?,
        queue: queue?,
        shutdown_hook,
        activator,
        log_format: log_format?,
        secret_variables: secret_variables.into_iter().collect(),
    })
}

fn read_log_format(raw: &Raw, check: &mut Check) -> Option<LogFormat> {
    let text = raw.text_or(check, LogFormat::Auto.as_str());
    let format = LogFormat::ALL
        .into_iter()
        .find(|format| format.as_str() == text);
    if format.is_none() {
        raw.bad_text(
            check,
            &text,
            "one of \"auto\", \"logfmt\", \"text\", \"json\"",
        );
    }
    format
}

/// The settings in force as `(key, value)` rows, part by part.
pub(super) fn effective(settings: &AppSettings) -> Vec<(&'static str, String)> {
    let variables = &settings.secret_variables;
    let shown = RawApp {
        heroku_app_name: Raw::quoted(&settings.app_name),
        process_type: Raw::quoted(&settings.process_type),
        log_format: Raw::quoted(settings.log_format.as_str()),
    };
    let mut all = rows("", &shown);
    if let Some(platform) = &settings.platform {
        all.extend(scaler::rows(platform, variables));
    }
    all.extend(settings.heartbeat.rows(settings.drain.signal));
    all.extend(settings.thresholds.rows());
    all.extend(settings.notify.rows());
    all.extend(settings.notifiers.rows(variables));
    all.extend(settings.downtime.rows(settings.thresholds.time_zone));
    all.extend(settings.drain.rows(variables));
    all.extend(queue::rows_of(settings.queue.as_ref(), variables));
    let tables = named::<RawTables>("");
    all.extend(shutdown_hook::rows_of(
        settings.shutdown_hook.as_ref(),
        tables.shutdown_hook.key(),
        variables,
    ));
    all.extend(activator::rows_of(
        settings.activator.as_ref(),
        tables.activator.key(),
    ));
    all
}
