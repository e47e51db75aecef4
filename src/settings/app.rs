//! One app's settings: [`AppSettings::read_in`] reads every key of an app from a [`Reader`],
//! checks the values against each other, and [`AppSettings::effective`] lists them back.
//!
//! The sub-tables (`[email]`, `[webhook]`, `[shutdown_hook]`, `[activator]`) are read by
//! `tables`; merging `[[apps]]` entries belongs to `apps`. This module must not build the raw
//! table or read the environment itself: it sees values only through a `Reader` and the
//! `LoadContext` (settings folder, `AUTOSCALE_DOWNTIME`, `PORT`).

use super::policy::read_policy;
use super::tables::{read_activator, read_email, read_shutdown_hook, read_webhook};
use super::{
    format_duration, AppSettings, LoadContext, LogFormat, Purpose, Reader, ScalerKind, Signal,
    DEFAULT_APP_LABEL, DEFAULT_DOWNTIME_FILE, DEFAULT_DOWNTIME_HEADER, DEFAULT_HEARTBEAT_URL,
    DEFAULT_HEROKU_API_URL, ENV_DOWNTIME, NOTIFICATION_BACKENDS,
};
use crate::downtime::{self, BadEntry, Source, Window};
use crate::schedule::Schedule;
use autoscalebot_backends::notify::{email, webhook};
use autoscalebot_backends::scaler::Commands;
use autoscalebot_backends::Secret;
use chrono_tz::Tz;
use config::{Value, ValueKind};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

impl AppSettings {
    /// Reads one app's settings for the worker, recording every problem in `reader`. `None`
    /// when any value of this app is unusable.
    pub fn read(reader: &mut Reader) -> Option<AppSettings> {
        AppSettings::read_in(reader, &LoadContext::default())
    }

    /// Reads one app's settings for `purpose` (see [`Purpose`]).
    pub fn read_for(reader: &mut Reader, purpose: Purpose) -> Option<AppSettings> {
        let context = LoadContext {
            purpose,
            ..LoadContext::default()
        };
        AppSettings::read_in(reader, &context)
    }

    /// [`AppSettings::read`], knowing where the settings file is and `AUTOSCALE_DOWNTIME`.
    pub fn read_in(reader: &mut Reader, context: &LoadContext) -> Option<AppSettings> {
        let purpose = context.purpose;
        let problems_before = reader.problems.len();
        let references_before = reader.env_references.len();

        let scaler_text = reader.string_or("scaler", "heroku");
        let scaler = match scaler_text.as_str() {
            "heroku" => Some(ScalerKind::Heroku),
            "command" => Some(ScalerKind::Command),
            _ => {
                let value = Value::new(None, scaler_text.clone());
                reader.bad(
                    "scaler",
                    &value,
                    "\"heroku\" (the Platform API) or \"command\" (your scale_command, start_command and stop_command)",
                );
                None
            }
        };
        let top_idle_after = reader.positive_duration("idle_after");
        let activator = read_activator(reader, purpose, top_idle_after);
        // `activate` with a local command needs no platform and no heartbeat.
        let needs_platform = !(purpose == Purpose::Activator
            && activator.as_ref().is_some_and(|a| a.command.is_some()));
        let needs_heroku = needs_platform && scaler == Some(ScalerKind::Heroku);

        let heroku_app_name = reader.string("heroku_app_name");
        match &heroku_app_name {
            None if needs_heroku => reader.missing(
                "heroku_app_name",
                "the name of your Heroku app, such as \"dancing-forest-1234\" (or AUTOSCALE_HEROKU_APP_NAME)",
            ),
            None => {}
            Some(name) if name.is_empty() || name.contains(['/', ' ', '?', '#']) => {
                let value = Value::new(None, name.clone());
                reader.bad("heroku_app_name", &value, "an app name: letters, digits and dashes");
            }
            Some(_) => {}
        }
        let heroku_api_key = reader.string("heroku_api_key").map(Secret::new);
        if needs_heroku
            && heroku_api_key.as_ref().is_none_or(Secret::is_empty)
            && !reader.has_problem("heroku_api_key")
        {
            reader.missing(
                "heroku_api_key",
                "your Heroku API key (`heroku auth:token`), in the file or in HEROKU_API_KEY",
            );
        }
        let heroku_api_url = read_url(reader, "heroku_api_url", Some(DEFAULT_HEROKU_API_URL));
        let heroku_api_timeout_ms = reader.whole_or(
            "heroku_api_timeout_in_ms",
            10_000,
            1,
            "a whole number of milliseconds above 0",
        );
        let process_type = reader.string_or("process_type", "web");
        if process_type.is_empty() || process_type.contains(['/', ' ']) {
            let value = Value::new(None, process_type.clone());
            reader.bad(
                "process_type",
                &value,
                "a process type from your Procfile, such as \"web\"",
            );
        }
        let default_app_url = heroku_app_name
            .as_deref()
            .map(|name| format!("https://{name}.herokuapp.com"));
        let heartbeat_url_text = reader.string_or("heartbeat_url", DEFAULT_HEARTBEAT_URL);
        let app_url = match read_url(reader, "app_url", default_app_url.as_deref()) {
            Some(url) => Some(url),
            None if reader
                .problems
                .iter()
                .any(|problem| problem.key.ends_with("app_url")) =>
            {
                None
            }
            // No app name to make one from: an absolute heartbeat_url gives the base.
            None => match Url::parse(&heartbeat_url_text) {
                Ok(url) => url.join("/").ok(),
                // The missing app name is the problem: app_url follows from it once given.
                Err(_) if needs_heroku && heroku_app_name.is_none() => None,
                Err(_) if purpose == Purpose::Activator => {
                    // `activate` never sends a heartbeat.
                    Url::parse("http://localhost/").ok()
                }
                Err(_) => {
                    reader.missing(
                        "app_url",
                        "your app's base URL such as \"https://app.example.com\", for the heartbeat (or an absolute heartbeat_url)",
                    );
                    None
                }
            },
        };
        let heartbeat_url =
            app_url
                .as_ref()
                .and_then(|base| match base.join(&heartbeat_url_text) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                    _ => {
                        let value = Value::new(None, heartbeat_url_text.clone());
                        reader.bad(
                    "heartbeat_url",
                    &value,
                    "an http(s) URL, or a path such as \"/autoscalebot/heartbeat/\" on app_url",
                );
                        None
                    }
                });
        let interval_seconds = reader.positive_float_or(
            "heartbeat_interval_in_seconds",
            30.0,
            "a number of seconds above 0, such as 30 or 0.5",
        );
        let max_response_time_ms = reader.whole_or(
            "max_response_time_in_ms",
            1000,
            1,
            "a whole number of milliseconds above 0",
        );
        let min_response_time_ms = reader.whole_or(
            "min_response_time_in_ms",
            200,
            0,
            "a whole number of milliseconds (0 or more)",
        );
        let default_timeout = max_response_time_ms.map_or(5000, |max| (max * 2).max(5000));
        let heartbeat_timeout_ms = reader.whole_or(
            "heartbeat_timeout_in_ms",
            default_timeout,
            1,
            "a whole number of milliseconds above 0",
        );
        let fails = reader.whole_or(
            "number_of_fails_to_scale_up_after",
            3,
            1,
            "a whole number of heartbeats, 1 or more",
        );
        let passes = reader.whole_or(
            "number_of_passes_to_scale_down_after",
            5,
            1,
            "a whole number of heartbeats, 1 or more",
        );
        let max_dynos = match reader.take("max_dynos") {
            None => Some(Schedule::Fixed(3)),
            Some(value) => reader.schedule("max_dynos", value),
        };
        let min_dynos = match reader.take("min_dynos") {
            None => Some(Schedule::Fixed(1)),
            Some(value) => reader.schedule("min_dynos", value),
        };
        let increment = reader.whole_or("increment", 1, 1, "a whole number of dynos, 1 or more");
        let policy = read_policy(reader);
        let notification_backends = reader
            .string_list("notification_backends")
            .unwrap_or_default();
        for name in &notification_backends {
            if !NOTIFICATION_BACKENDS.contains(&name.as_str()) {
                let value = Value::new(None, name.clone());
                reader.bad(
                    "notification_backends",
                    &value,
                    format!("one of {}", NOTIFICATION_BACKENDS.join(", ")),
                );
            }
        }
        let threshold = reader
            .take("notify_if_scale_diff_exceeds_threshold")
            .and_then(|value| reader.schedule("notify_if_scale_diff_exceeds_threshold", value));
        let period_minutes = match reader.take("notify_if_scale_diff_exceeds_period_in_minutes") {
            None => None,
            Some(value) => {
                let minutes = match &value.kind {
                    ValueKind::I64(n) if *n > 0 => Some(*n as f64),
                    ValueKind::U64(n) if *n > 0 => Some(*n as f64),
                    ValueKind::Float(f) if f.is_finite() && *f > 0.0 => Some(*f),
                    ValueKind::String(text) => text.trim().parse::<f64>().ok().filter(|m| *m > 0.0),
                    _ => None,
                };
                if minutes.is_none() {
                    reader.bad(
                        "notify_if_scale_diff_exceeds_period_in_minutes",
                        &value,
                        "a number of minutes above 0",
                    );
                }
                minutes.map(|m| Duration::from_secs_f64(m * 60.0))
            }
        };
        let notify_if_needs_exceed_max = reader.bool_or("notify_if_needs_exceed_max", true);
        let notify_if_needs_below_min = reader.bool_or("notify_if_needs_below_min", false);
        let notify_on_scale_fails = reader.bool_or("notify_on_scale_fails", false);
        let notify_on_every_scale = reader.bool_or("notify_on_every_scale", false);
        let notify_on_every_ping = reader.bool_or("notify_on_every_ping", false);
        let notify_repeat_after =
            reader.duration_or("notify_repeat_after", Duration::from_secs(3600));
        let time_zone_text = reader.string_or("time_zone", "UTC");
        let time_zone = match time_zone_text.parse::<Tz>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                let value = Value::new(None, time_zone_text.clone());
                reader.bad(
                    "time_zone",
                    &value,
                    "an IANA time zone name such as \"UTC\", \"Europe/London\" or \"America/Vancouver\"",
                );
                None
            }
        };
        let scale_up_cooldown = reader.duration_or("scale_up_cooldown", Duration::ZERO);
        let scale_down_cooldown = reader.duration_or("scale_down_cooldown", Duration::ZERO);
        let email = read_email(reader, &notification_backends, context);
        let webhook = read_webhook(reader, &notification_backends);
        let notify_on_downtime = reader.bool_or("notify_on_downtime", true);
        let downtime_disable = reader.bool_or("downtime_disable", false);
        let downtime_entries = reader.take("downtime");
        let (downtime, downtime_warnings) = match (downtime_disable, time_zone) {
            (false, Some(zone)) => read_downtime(reader, downtime_entries, context, zone),
            _ => (Vec::new(), Vec::new()),
        };
        let downtime_file = match reader.string("downtime_file") {
            Some(path) if path.trim().is_empty() => None,
            Some(path) => Some(beside_settings(context, &path)),
            None => Some(beside_settings(context, DEFAULT_DOWNTIME_FILE)),
        };
        let downtime_header_text = reader.string_or("downtime_header", DEFAULT_DOWNTIME_HEADER);
        let downtime_header = match downtime_header_text.trim() {
            "" => None,
            name if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                Some(name.to_string())
            }
            _ => {
                let value = Value::new(None, downtime_header_text.clone());
                reader.bad(
                    "downtime_header",
                    &value,
                    "an HTTP header name such as \"X-Downtime\", or \"\" for none",
                );
                None
            }
        };
        let downtime_dynos = reader.take("downtime_dynos").and_then(|value| {
            reader.whole_value(
                "downtime_dynos",
                &value,
                0,
                "a whole number of dynos (0 or more)",
            )
        });
        let signal_text = reader.string_or("signal", "heartbeat");
        let signal = match signal_text.as_str() {
            "heartbeat" => Some(Signal::Heartbeat),
            "router" => Some(Signal::Router),
            "both" => Some(Signal::Both),
            _ => {
                let value = Value::new(None, signal_text.clone());
                reader.bad(
                    "signal",
                    &value,
                    "one of \"heartbeat\", \"router\", \"both\"",
                );
                None
            }
        };
        let default_window = Duration::from_secs_f64(interval_seconds.unwrap_or(30.0));
        let router_window = reader.duration_or("router_window", default_window);
        if router_window == Some(Duration::ZERO) {
            let value = Value::new(None, "0s");
            reader.bad(
                "router_window",
                &value,
                "a duration above 0, such as \"30s\"",
            );
        }
        let http_port = match reader.take("http_port") {
            Some(value) => reader
                .whole_value("http_port", &value, 0, "a TCP port from 0 to 65535")
                .and_then(|port| {
                    let port = u16::try_from(port).ok();
                    if port.is_none() {
                        reader.bad("http_port", &value, "a TCP port from 0 to 65535");
                    }
                    port
                })
                .map(Some),
            // Heroku's convention: the web process listens on $PORT.
            None => match context.env_port.clone() {
                None => Some(None),
                Some(text) => match text.trim().parse::<u16>() {
                    Ok(port) => Some(Some(port)),
                    Err(_) => {
                        let value = Value::new(Some(&"PORT".to_string()), text);
                        reader.bad("http_port", &value, "a TCP port from 0 to 65535 in PORT");
                        None
                    }
                },
            },
        };
        let log_drain_password = reader
            .string("log_drain_password")
            .map(Secret::new)
            .filter(|password| !password.is_empty());
        let log_format_text = reader.string_or("log_format", "auto");
        let log_format = match log_format_text.as_str() {
            "auto" => Some(LogFormat::Auto),
            "logfmt" => Some(LogFormat::Logfmt),
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                let value = Value::new(None, log_format_text.clone());
                reader.bad(
                    "log_format",
                    &value,
                    "one of \"auto\", \"logfmt\", \"text\", \"json\"",
                );
                None
            }
        };
        if signal.is_some_and(|signal| signal.uses_router()) {
            if log_drain_password.is_none() && !reader.has_problem("log_drain_password") {
                reader.missing(
                    "log_drain_password",
                    format!(
                        "a password for the log drain's basic auth, since signal = \"{signal_text}\""
                    ),
                );
            }
            if http_port == Some(None) {
                reader.missing(
                    "http_port",
                    format!("a port for the log drain (or PORT), since signal = \"{signal_text}\""),
                );
            }
        }

        let commands = Commands {
            scale_command: reader.string("scale_command"),
            start_command: reader.string("start_command"),
            stop_command: reader.string("stop_command"),
            quantity_command: reader.string("quantity_command"),
        };
        let command_timeout = reader.duration_or("command_timeout", Duration::from_secs(60));
        if command_timeout == Some(Duration::ZERO) {
            let value = Value::new(None, "0s");
            reader.bad(
                "command_timeout",
                &value,
                "a duration above zero such as \"60s\"",
            );
        }
        let max_age = reader.positive_duration("max_age");
        let shutdown_hook = read_shutdown_hook(reader);

        // Cross-field checks, only where both sides were readable.
        check_commands(
            reader,
            scaler,
            &commands,
            max_dynos.as_ref(),
            needs_platform,
        );
        let scaler_target = activator.as_ref().is_none_or(|a| a.command.is_none());
        let idle_in_force = top_idle_after.or(activator.as_ref().and_then(|a| a.idle_after));
        if let (Some(_), Some(min), true) = (idle_in_force, &min_dynos, scaler_target) {
            if !min
                .change_minutes()
                .into_iter()
                .chain(std::iter::once(0))
                .any(|minute| min.at_minute(minute) == 0)
            {
                let value = Value::new(None, min.to_string());
                reader.bad(
                    "min_dynos",
                    &value,
                    "0 at some time of day, since idle_after is set: idle_after scales to zero only while min_dynos in force is 0",
                );
            }
        }

        if let (Some(min), Some(max)) = (min_response_time_ms, max_response_time_ms) {
            if min > max {
                let value = Value::new(None, min as i64);
                reader.bad(
                    "min_response_time_in_ms",
                    &value,
                    format!("at most max_response_time_in_ms ({max})"),
                );
            }
        }
        if let (Some(min), Some(max)) = (&min_dynos, &max_dynos) {
            if let Some(minute) = first_minute_min_above_max(min, max) {
                let value = Value::new(None, min.to_string());
                reader.bad(
                    "min_dynos",
                    &value,
                    format!(
                        "at most max_dynos at every time of day, but at {} min_dynos is {} and max_dynos is {}",
                        min_above_max_at(min, max, minute),
                        min.at_minute(minute),
                        max.at_minute(minute)
                    ),
                );
            }
        }
        match (&threshold, period_minutes) {
            (Some(_), None) => reader.missing(
                "notify_if_scale_diff_exceeds_period_in_minutes",
                "a number of minutes, since notify_if_scale_diff_exceeds_threshold is set",
            ),
            (None, Some(_)) => reader.missing(
                "notify_if_scale_diff_exceeds_threshold",
                "a number of dynos, since notify_if_scale_diff_exceeds_period_in_minutes is set",
            ),
            _ => {}
        }

        if reader.problems.len() > problems_before {
            return None;
        }
        let secret_variables = reader.env_references.split_off(references_before);
        Some(AppSettings {
            heroku_app_name: heroku_app_name.unwrap_or_else(|| DEFAULT_APP_LABEL.to_string()),
            heroku_api_key: heroku_api_key.unwrap_or_default(),
            heroku_api_url: heroku_api_url?,
            heroku_api_timeout: Duration::from_millis(heroku_api_timeout_ms? as u64),
            process_type,
            app_url: app_url?,
            heartbeat_url: heartbeat_url?,
            heartbeat_interval: Duration::from_secs_f64(interval_seconds?),
            heartbeat_timeout: Duration::from_millis(heartbeat_timeout_ms? as u64),
            max_response_time_ms: max_response_time_ms? as u64,
            min_response_time_ms: min_response_time_ms? as u64,
            number_of_fails_to_scale_up_after: fails?,
            number_of_passes_to_scale_down_after: passes?,
            max_dynos: max_dynos?,
            min_dynos: min_dynos?,
            increment: increment?,
            policy: policy?,
            notification_backends,
            notify_if_scale_diff_exceeds_threshold: threshold,
            notify_if_scale_diff_exceeds_period: period_minutes,
            notify_if_needs_exceed_max,
            notify_if_needs_below_min,
            notify_on_scale_fails,
            notify_on_every_scale,
            notify_on_every_ping,
            notify_repeat_after: notify_repeat_after?,
            time_zone: time_zone?,
            scale_up_cooldown: scale_up_cooldown?,
            scale_down_cooldown: scale_down_cooldown?,
            scaler: scaler?,
            commands,
            command_timeout: command_timeout?,
            idle_after: top_idle_after,
            max_age,
            shutdown_hook,
            activator,
            email,
            webhook,
            downtime,
            downtime_warnings,
            downtime_file,
            downtime_header,
            downtime_dynos,
            downtime_disable,
            notify_on_downtime,
            signal: signal?,
            router_window: router_window?,
            http_port: http_port?,
            log_drain_password,
            log_format: log_format?,
            secret_variables: secret_variables.into_iter().collect(),
        })
    }

    /// How `check` shows a secret: `shown` (already `***` or redacted), and where it came from
    /// when its value was `"env:NAME"`. Header names are compared as HTTP does, ignoring case.
    fn secret_shown(&self, setting: &str, shown: String) -> String {
        let variable = self
            .secret_variables
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(setting))
            .map(|(_, variable)| variable);
        match variable {
            Some(variable) => format!("{shown} (from env:{variable})"),
            None => shown,
        }
    }

    /// The settings in force as `(key, value)` lines for `autoscalebot check`; secrets as `***`.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let quoted = |text: &str| format!("{text:?}");
        let optional = |value: Option<String>| value.unwrap_or_else(|| "(not set)".to_string());
        let mut rows = vec![
            ("heroku_app_name", quoted(&self.heroku_app_name)),
            (
                "heroku_api_key",
                self.secret_shown("heroku_api_key", quoted(&self.heroku_api_key.to_string())),
            ),
            ("heroku_api_url", quoted(self.heroku_api_url.as_str())),
            (
                "heroku_api_timeout_in_ms",
                self.heroku_api_timeout.as_millis().to_string(),
            ),
            ("process_type", quoted(&self.process_type)),
            ("app_url", quoted(self.app_url.as_str())),
            ("heartbeat_url", quoted(self.heartbeat_url.as_str())),
            (
                "heartbeat_interval_in_seconds",
                self.heartbeat_interval.as_secs_f64().to_string(),
            ),
            (
                "heartbeat_timeout_in_ms",
                self.heartbeat_timeout.as_millis().to_string(),
            ),
            (
                "max_response_time_in_ms",
                self.max_response_time_ms.to_string(),
            ),
            (
                "min_response_time_in_ms",
                self.min_response_time_ms.to_string(),
            ),
            (
                "number_of_fails_to_scale_up_after",
                self.number_of_fails_to_scale_up_after.to_string(),
            ),
            (
                "number_of_passes_to_scale_down_after",
                self.number_of_passes_to_scale_down_after.to_string(),
            ),
            ("max_dynos", self.max_dynos.to_string()),
            ("min_dynos", self.min_dynos.to_string()),
            ("increment", self.increment.to_string()),
            (
                "notification_backends",
                format!(
                    "[{}]",
                    self.notification_backends
                        .iter()
                        .map(|name| quoted(name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "notify_if_scale_diff_exceeds_threshold",
                optional(
                    self.notify_if_scale_diff_exceeds_threshold
                        .as_ref()
                        .map(Schedule::to_string),
                ),
            ),
            (
                "notify_if_scale_diff_exceeds_period_in_minutes",
                optional(
                    self.notify_if_scale_diff_exceeds_period
                        .map(|p| (p.as_secs_f64() / 60.0).to_string()),
                ),
            ),
            (
                "notify_if_needs_exceed_max",
                self.notify_if_needs_exceed_max.to_string(),
            ),
            (
                "notify_if_needs_below_min",
                self.notify_if_needs_below_min.to_string(),
            ),
            (
                "notify_on_scale_fails",
                self.notify_on_scale_fails.to_string(),
            ),
            (
                "notify_on_every_scale",
                self.notify_on_every_scale.to_string(),
            ),
            (
                "notify_on_every_ping",
                self.notify_on_every_ping.to_string(),
            ),
            (
                "notify_repeat_after",
                quoted(&format_duration(self.notify_repeat_after)),
            ),
            ("time_zone", quoted(self.time_zone.name())),
            (
                "scale_up_cooldown",
                quoted(&format_duration(self.scale_up_cooldown)),
            ),
            (
                "scale_down_cooldown",
                quoted(&format_duration(self.scale_down_cooldown)),
            ),
            (
                "downtime",
                format!(
                    "[{}]",
                    self.downtime
                        .iter()
                        .filter(|window| matches!(window.source, Source::Settings { .. }))
                        .map(|window| quoted(&window.to_iso(self.time_zone)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "downtime_file",
                optional(
                    self.downtime_file
                        .as_ref()
                        .map(|path| quoted(&path.display().to_string())),
                ),
            ),
            (
                "downtime_header",
                optional(self.downtime_header.as_deref().map(quoted)),
            ),
            (
                "downtime_dynos",
                optional(self.downtime_dynos.map(|dynos| dynos.to_string())),
            ),
            ("downtime_disable", self.downtime_disable.to_string()),
            ("notify_on_downtime", self.notify_on_downtime.to_string()),
            ("signal", quoted(self.signal.as_str())),
            (
                "router_window",
                quoted(&format_duration(self.router_window)),
            ),
            (
                "http_port",
                optional(self.http_port.map(|port| port.to_string())),
            ),
            (
                "log_drain_password",
                optional(self.log_drain_password.as_ref().map(|password| {
                    self.secret_shown("log_drain_password", quoted(&password.to_string()))
                })),
            ),
            ("log_format", quoted(self.log_format.as_str())),
        ];
        // The policy's rows beside the streaks' own keys (settings/policy.rs reads them).
        let after_increment = rows
            .iter()
            .position(|(key, _)| *key == "increment")
            .map_or(rows.len(), |index| index + 1);
        rows.splice(after_increment..after_increment, self.policy.effective());
        let email = self.email.as_ref();
        let list = |items: Vec<String>| {
            let items: Vec<String> = items.iter().map(|item| quoted(item)).collect();
            format!("[{}]", items.join(", "))
        };
        rows.extend([
            (
                "email.smtp_url",
                optional(email.map(|e| {
                    let shown = quoted(&email::redact_smtp_url(e.smtp_url.expose()));
                    self.secret_shown("email.smtp_url", shown)
                })),
            ),
            (
                "email.from",
                optional(email.map(|e| quoted(&e.from.to_string()))),
            ),
            (
                "email.to",
                optional(email.map(|e| list(e.to.iter().map(|to| to.to_string()).collect()))),
            ),
            (
                "email.tls_ca_file",
                optional(email.and_then(|e| e.tls_ca.as_ref()).map(|ca| {
                    format!(
                        "{} ({} certificate{})",
                        quoted(&ca.path.display().to_string()),
                        ca.len(),
                        if ca.len() == 1 { "" } else { "s" }
                    )
                })),
            ),
            (
                "email.timeout",
                optional(email.map(|e| quoted(&format_duration(e.policy.timeout)))),
            ),
            (
                "email.give_up_after",
                optional(email.map(|e| quoted(&format_duration(e.policy.give_up_after)))),
            ),
        ]);
        let hook = self.webhook.as_ref();
        rows.extend([
            (
                "webhook.url",
                optional(hook.map(|h| {
                    self.secret_shown("webhook.url", quoted(&webhook::redact_url(&h.url)))
                })),
            ),
            (
                "webhook.method",
                optional(hook.map(|h| quoted(h.method.as_str()))),
            ),
            (
                "webhook.headers",
                optional(hook.map(|h| {
                    let headers: Vec<String> = h
                        .headers
                        .iter()
                        .map(|(name, value)| {
                            let shown = self.secret_shown(
                                &format!("webhook.headers.{name}"),
                                quoted(&value.to_string()),
                            );
                            format!("{} = {shown}", quoted(name.as_str()))
                        })
                        .collect();
                    format!("{{ {} }}", headers.join(", "))
                })),
            ),
            (
                "webhook.body",
                optional(hook.map(|h| match &h.body {
                    Some(body) => quoted(body.source()),
                    None => "(default: a JSON object with every field)".to_string(),
                })),
            ),
            (
                "webhook.timeout",
                optional(hook.map(|h| quoted(&format_duration(h.policy.timeout)))),
            ),
            (
                "webhook.give_up_after",
                optional(hook.map(|h| quoted(&format_duration(h.policy.give_up_after)))),
            ),
        ]);
        rows.extend([
            ("scaler", quoted(self.scaler.as_str())),
            (
                "scale_command",
                optional(self.commands.scale_command.as_deref().map(quoted)),
            ),
            (
                "start_command",
                optional(self.commands.start_command.as_deref().map(quoted)),
            ),
            (
                "stop_command",
                optional(self.commands.stop_command.as_deref().map(quoted)),
            ),
            (
                "quantity_command",
                optional(self.commands.quantity_command.as_deref().map(quoted)),
            ),
            (
                "command_timeout",
                quoted(&format_duration(self.command_timeout)),
            ),
            (
                "idle_after",
                optional(self.idle_after.map(|d| quoted(&format_duration(d)))),
            ),
            (
                "max_age",
                optional(self.max_age.map(|d| quoted(&format_duration(d)))),
            ),
        ]);
        let hook = self.shutdown_hook.as_ref();
        rows.extend([
            (
                "shutdown_hook.url",
                optional(hook.map(|h| quoted(h.url.as_str()))),
            ),
            (
                "shutdown_hook.method",
                optional(hook.map(|h| quoted(h.method.as_str()))),
            ),
            (
                "shutdown_hook.headers",
                optional(hook.map(|h| {
                    let names: Vec<String> = h
                        .headers
                        .iter()
                        .map(|(name, value)| {
                            let shown = self.secret_shown(
                                &format!("shutdown_hook.headers.{name}"),
                                quoted(&value.to_string()),
                            );
                            format!("{} = {shown}", quoted(name))
                        })
                        .collect();
                    format!("{{ {} }}", names.join(", "))
                })),
            ),
            (
                "shutdown_hook.body",
                optional(hook.map(|h| quoted(&h.body))),
            ),
            (
                "shutdown_hook.timeout",
                optional(hook.map(|h| quoted(&format_duration(h.timeout)))),
            ),
        ]);
        let activator = self.activator.as_ref();
        rows.extend([
            (
                "activator.listen",
                optional(activator.map(|a| quoted(&a.listen.to_string()))),
            ),
            (
                "activator.target",
                optional(
                    activator
                        .and_then(|a| a.target.as_ref())
                        .map(|t| quoted(&t.to_string())),
                ),
            ),
            (
                "activator.wake_timeout",
                optional(activator.map(|a| quoted(&format_duration(a.wake_timeout)))),
            ),
            (
                "activator.idle_after",
                optional(
                    activator
                        .and_then(|a| a.idle_after)
                        .map(|d| quoted(&format_duration(d))),
                ),
            ),
            (
                "activator.command",
                optional(activator.and_then(|a| a.command.as_deref()).map(quoted)),
            ),
            (
                "activator.stop_signal",
                optional(activator.map(|a| quoted(&a.stop_signal_name))),
            ),
            (
                "activator.stop_timeout",
                optional(activator.map(|a| quoted(&format_duration(a.stop_timeout)))),
            ),
        ]);
        rows
    }
}

/// `downtime` from the settings (a bad entry is a bad setting: exit 2, as for any other) and
/// `AUTOSCALE_DOWNTIME` (a bad item is reported and ignored, as for the file and the header).
fn read_downtime(
    reader: &mut Reader,
    entries: Option<Value>,
    context: &LoadContext,
    zone: chrono_tz::Tz,
) -> (Vec<Window>, Vec<BadEntry>) {
    let expected = "a list of ISO 8601 intervals such as [\"2026-11-25T01:00/2026-11-25T04:00\", \"2026-11-26T01:00/PT3H\"]";
    let mut windows = Vec::new();
    let items = match entries.map(|value| (value.kind.clone(), value)) {
        None => Vec::new(),
        Some((ValueKind::Array(items), _)) => items,
        Some((ValueKind::String(_), value)) => vec![value],
        Some((_, value)) => {
            reader.bad("downtime", &value, expected);
            Vec::new()
        }
    };
    for (index, item) in items.into_iter().enumerate() {
        let ValueKind::String(text) = &item.kind else {
            reader.bad("downtime", &item, expected);
            continue;
        };
        match downtime::parse_interval(text, zone) {
            Ok((start, end)) => windows.push(Window {
                start,
                end,
                source: Source::Settings { index },
            }),
            Err(error) => reader.bad(
                "downtime",
                &item,
                format!("an ISO 8601 interval such as \"2026-11-25T01:00/2026-11-25T04:00\" or \"2026-11-25T01:00/PT3H\", but {error}"),
            ),
        }
    }
    let mut warnings = Vec::new();
    if let Some(text) = &context.env_downtime {
        let source = Source::Env {
            variable: ENV_DOWNTIME.to_string(),
        };
        let (env_windows, bad) = downtime::parse_list(text, zone, &source);
        windows.extend(env_windows);
        warnings = bad;
    }
    (windows, warnings)
}

/// A path as written in the settings, relative to the settings file's folder.
pub(super) fn beside_settings(context: &LoadContext, path: &str) -> PathBuf {
    match &context.settings_dir {
        Some(dir) => dir.join(path),
        None => PathBuf::from(path),
    }
}

fn read_url(reader: &mut Reader, key: &str, default: Option<&str>) -> Option<Url> {
    let text = reader.string(key).or_else(|| default.map(str::to_string))?;
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
        _ => {
            let value = Value::new(None, text);
            reader.bad(
                key,
                &value,
                "an absolute http(s) URL such as \"https://example.com\"",
            );
            None
        }
    }
}

/// The `command` scaler needs something to run, and commands mean nothing to Heroku.
fn check_commands(
    reader: &mut Reader,
    scaler: Option<ScalerKind>,
    commands: &Commands,
    max_dynos: Option<&Schedule>,
    needs_platform: bool,
) {
    let named = [
        ("scale_command", &commands.scale_command),
        ("start_command", &commands.start_command),
        ("stop_command", &commands.stop_command),
        ("quantity_command", &commands.quantity_command),
    ];
    match scaler {
        Some(ScalerKind::Heroku) => {
            for (key, command) in named {
                if let Some(command) = command {
                    let value = Value::new(None, command.clone());
                    reader.bad(
                        key,
                        &value,
                        "no command while scaler = \"heroku\": set scaler = \"command\" to use your commands",
                    );
                }
            }
        }
        Some(ScalerKind::Command) => {
            for (key, command) in named {
                if command
                    .as_deref()
                    .is_some_and(|text| text.trim().is_empty())
                {
                    let value = Value::new(None, "");
                    reader.bad(key, &value, "a shell command, or leave the key out");
                }
            }
            let can_start = commands.scale_command.is_some() || commands.start_command.is_some();
            let can_stop = commands.scale_command.is_some() || commands.stop_command.is_some();
            if needs_platform && !(can_start && can_stop) {
                reader.missing(
                    "scale_command",
                    "a command run with the new quantity as its last argument (or both start_command and stop_command), since scaler = \"command\"",
                );
            }
            if commands.scale_command.is_none() {
                if let Some(max) = max_dynos {
                    let above_one = max
                        .change_minutes()
                        .into_iter()
                        .chain(std::iter::once(0))
                        .any(|minute| max.at_minute(minute) > 1);
                    if above_one {
                        let value = Value::new(None, max.to_string());
                        reader.bad(
                            "max_dynos",
                            &value,
                            "at most 1 without a scale_command: start_command and stop_command can only start or stop",
                        );
                    }
                }
            }
        }
        None => {}
    }
}

/// The first minute of the day at which `min` is above `max`, if any. Both are step functions,
/// so checking midnight and every change point of either covers the whole day.
fn first_minute_min_above_max(min: &Schedule, max: &Schedule) -> Option<u16> {
    let mut minutes: Vec<u16> = std::iter::once(0)
        .chain(min.change_minutes())
        .chain(max.change_minutes())
        .collect();
    minutes.sort_unstable();
    minutes.dedup();
    minutes
        .into_iter()
        .find(|&minute| min.at_minute(minute) > max.at_minute(minute))
}

/// A minute of the week found by [`first_minute_min_above_max`], as people read it: "8:00"
/// when both schedules repeat every day, "Sat 9:00" when either is by day of the week.
fn min_above_max_at(min: &Schedule, max: &Schedule, minute: u16) -> String {
    let weekly = [min, max]
        .iter()
        .any(|schedule| matches!(schedule, Schedule::Weekly(_)));
    if weekly {
        crate::schedule::format_minute_of_week(minute)
    } else {
        let minute_of_day = minute % (24 * 60);
        format!("{}:{:02}", minute_of_day / 60, minute_of_day % 60)
    }
}
