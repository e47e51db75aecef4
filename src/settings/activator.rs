//! The `[activator]` table: where `autoscalebot activate` listens, where it forwards, how it
//! starts and stops the target. What it needs from the rest of the app (the top-level
//! `idle_after`, what the settings are for) comes in as arguments; it must not read keys
//! outside its table.

use super::Purpose;
use autoscalebot_backends::activator::process::parse_signal;
use autoscalebot_backends::activator::Endpoint;
use autoscalebot_backends::settings::{fields, rows, Check, Raw};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The table as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawActivator {
    listen: Raw,
    target: Raw,
    wake_timeout: Raw,
    idle_after: Raw,
    command: Raw,
    stop_signal: Raw,
    stop_timeout: Raw,
}

/// The checked table: listen, wake the target on demand, forward, stop it when idle.
#[derive(Debug, Clone)]
pub struct ActivatorSettings {
    pub listen: Endpoint,
    /// Where to forward to. `None` with a local `command`: the command is handed the
    /// listening socket as fd 3 and accepts on it itself.
    pub target: Option<Endpoint>,
    pub wake_timeout: Duration,
    /// From `activator.idle_after`, else the top-level `idle_after`; `None`: never stop.
    pub idle_after: Option<Duration>,
    pub command: Option<String>,
    pub stop_signal: i32,
    pub stop_signal_name: String,
    pub stop_timeout: Duration,
}

pub(super) fn keys() -> &'static [&'static str] {
    fields::<RawActivator>()
}

/// Checks the table (the setting `activator`; absent when not given).
pub(super) fn read(
    table: &Raw,
    check: &mut Check,
    purpose: Purpose,
    top_idle_after: Option<Duration>,
) -> Option<ActivatorSettings> {
    let Some(raw) = table.section::<RawActivator>(check) else {
        if purpose == Purpose::Activator && !table.is_set() {
            table.missing(
                check,
                "an [activator] table with listen and target (or command), for `autoscalebot activate`",
            );
        }
        return None;
    };
    let mark = check.mark();
    let listen = read_endpoint(&raw.listen, check);
    if !raw.listen.is_set() {
        raw.listen.missing(
            check,
            "where to listen: host:port (such as 0.0.0.0:8080) or unix:/path/to.sock",
        );
    }
    let target = read_endpoint(&raw.target, check);
    let command = raw.command.text(check);
    if command
        .as_deref()
        .is_some_and(|text| text.trim().is_empty())
    {
        raw.command.bad_text(
            check,
            "",
            "a command line that starts your app, or leave the key out",
        );
    }
    if !raw.target.is_set() && command.is_none() {
        raw.target.missing(
            check,
            "where the app listens: host:port or unix:/path (or a command, to hand it the listening socket)",
        );
    }
    if let (Some(listen), Some(target)) = (&listen, &target) {
        if listen == target {
            raw.target.bad_text(
                check,
                &target.to_string(),
                "another address than listen, or it would forward to itself",
            );
        }
    }
    let wake_timeout = raw.wake_timeout.timeout_or(
        check,
        Duration::from_secs(30),
        "a duration above zero such as \"30s\"",
    );
    let idle_after = raw.idle_after.positive_duration(check).or(top_idle_after);
    let signal_text = raw.stop_signal.text_or(check, "SIGTERM");
    let stop_signal = parse_signal(&signal_text);
    if stop_signal.is_none() {
        raw.stop_signal.bad_text(
            check,
            &signal_text,
            "a signal name or number such as \"SIGTERM\", \"SIGINT\" or 15",
        );
    }
    let stop_timeout = raw.stop_timeout.duration_or(check, Duration::from_secs(10));
    if check.failed_since(mark) {
        return None;
    }
    let (stop_signal, stop_signal_name) = stop_signal?;
    Some(ActivatorSettings {
        listen: listen?,
        target,
        wake_timeout: wake_timeout?,
        idle_after,
        command,
        stop_signal,
        stop_signal_name,
        stop_timeout: stop_timeout?,
    })
}

fn read_endpoint(raw: &Raw, check: &mut Check) -> Option<Endpoint> {
    let text = raw.text(check)?;
    match Endpoint::parse(&text) {
        Ok(endpoint) => Some(endpoint),
        Err(expected) => {
            raw.bad_text(check, &text, expected);
            None
        }
    }
}

/// `check`'s rows: the table in force, or every key `(not set)` without one.
pub(super) fn rows_of(
    activator: Option<&ActivatorSettings>,
    key: &str,
) -> Vec<(&'static str, String)> {
    let prefix = format!("{key}.");
    let Some(activator) = activator else {
        return rows(&prefix, &RawActivator::default());
    };
    let shown = RawActivator {
        listen: Raw::quoted(&activator.listen.to_string()),
        target: Raw::optional(activator.target.as_ref(), |target| {
            Raw::quoted(&target.to_string())
        }),
        wake_timeout: Raw::duration(activator.wake_timeout),
        idle_after: Raw::optional(activator.idle_after, Raw::duration),
        command: Raw::optional(activator.command.as_deref(), Raw::quoted),
        stop_signal: Raw::quoted(&activator.stop_signal_name),
        stop_timeout: Raw::duration(activator.stop_timeout),
    };
    rows(&prefix, &shown)
}
