//! The sub-tables of an app's settings: `[email]`, `[webhook]` (with their delivery policy),
//! `[shutdown_hook]` and `[activator]`. Each reader takes its table out of the app's
//! [`Reader`] and returns the typed settings, or `None` after recording the problems.
//!
//! What a table needs from the rest of the app (named backends, purpose, `idle_after`) comes in
//! as arguments; this module must not read keys outside its own table.

use super::app::beside_settings;
use super::{ActivatorSettings, LoadContext, Purpose, Reader, ShutdownHookSettings};
use autoscalebot_backends::activator::process::parse_signal;
use autoscalebot_backends::activator::Endpoint;
use autoscalebot_backends::notify::email::TrustedCa;
use autoscalebot_backends::notify::{
    email, webhook, DeliveryPolicy, EmailConfig, Template, WebhookConfig,
};
use autoscalebot_backends::Secret;
use config::{Value, ValueKind};
use std::time::Duration;
use url::Url;

/// `[email]`: the SMTP server, the sender and the readers of the `email` backend. A relative
/// `tls_ca_file` is beside the settings file; it is read here, once, at startup.
pub(super) fn read_email(
    reader: &mut Reader,
    backends: &[String],
    context: &LoadContext,
) -> Option<EmailConfig> {
    let named = backends.iter().any(|name| name == "email");
    let Some(mut table) = reader.table("email") else {
        if named && !reader.has_problem("email") {
            reader.missing(
                "email.smtp_url",
                "an [email] table with smtp_url, from and to, since notification_backends names \"email\"",
            );
        }
        return None;
    };
    let before = table.problems.len();
    if !table.has("smtp_url") {
        table.missing(
            "smtp_url",
            "an SMTP URL such as \"smtp://user:password@smtp.example.com:587?tls=required\" (or AUTOSCALE_EMAIL__SMTP_URL)",
        );
    }
    let smtp_url = table.parsed("smtp_url", |text| {
        email::check_smtp_url(text).map(|()| Secret::new(text.trim()))
    });
    if !table.has("from") {
        table.missing(
            "from",
            "the sender's address, such as \"autoscalebot <ops@example.com>\"",
        );
    }
    let from = table.parsed("from", email::parse_mailbox);
    let mut to = Vec::new();
    match table.string_list("to") {
        None if !table.has_problem("to") => table.missing(
            "to",
            "a list of addresses such as [\"ops@example.com\"] (the people to tell)",
        ),
        None => {}
        Some(list) if list.is_empty() => {
            let value = Value::new(None, Vec::<String>::new());
            table.bad(
                "to",
                &value,
                "at least one address, such as [\"ops@example.com\"]",
            );
        }
        Some(list) => {
            for address in list {
                match email::parse_mailbox(&address) {
                    Ok(mailbox) => to.push(mailbox),
                    Err(why) => {
                        let value = Value::new(None, address);
                        table.bad("to", &value, why);
                    }
                }
            }
        }
    }
    let tls_ca = match table.take("tls_ca_file") {
        None => None,
        Some(value) => match value.clone().into_string() {
            Ok(path) if path.trim().is_empty() => None,
            Ok(path) => match TrustedCa::read(&beside_settings(context, path.trim())) {
                Ok(ca) => Some(ca),
                Err(why) => {
                    table.bad("tls_ca_file", &value, why);
                    None
                }
            },
            Err(_) => {
                table.bad(
                    "tls_ca_file",
                    &value,
                    "the path of one PEM file of CA certificates, such as \"relay-ca.pem\" (several certificates go in that one file)",
                );
                None
            }
        },
    };
    if let (Some(url), Some(ca)) = (&smtp_url, &tls_ca) {
        if !email::smtp_url_uses_tls(url.expose()) {
            let value = Value::new(None, ca.path.display().to_string());
            table.bad(
                "tls_ca_file",
                &value,
                "an smtp_url with TLS (\"smtps://…\" or \"smtp://…?tls=required\") for the CA to check: \
                 this smtp_url is plain SMTP, so mail would go unencrypted",
            );
        }
    }
    let policy = read_delivery(&mut table);
    let ok = table.problems.len() == before;
    reader.absorb(table);
    if !ok {
        return None;
    }
    Some(EmailConfig {
        smtp_url: smtp_url?,
        from: from?,
        to,
        policy: policy?,
        tls_ca,
    })
}

/// `[webhook]`: the request the `webhook` backend makes for each event.
pub(super) fn read_webhook(reader: &mut Reader, backends: &[String]) -> Option<WebhookConfig> {
    let named = backends.iter().any(|name| name == "webhook");
    let Some(mut table) = reader.table("webhook") else {
        if named && !reader.has_problem("webhook") {
            reader.missing(
                "webhook.url",
                "a [webhook] table with at least url, since notification_backends names \"webhook\"",
            );
        }
        return None;
    };
    let before = table.problems.len();
    if !table.has("url") {
        table.missing(
            "url",
            "the URL to call, such as \"https://hooks.example.com/…\" (or AUTOSCALE_WEBHOOK__URL)",
        );
    }
    let url = table.parsed("url", webhook::parse_url);
    let method = if table.has("method") {
        table.parsed("method", webhook::parse_method)
    } else {
        Some(reqwest::Method::POST)
    };
    let mut headers: Vec<(reqwest::header::HeaderName, Secret)> = Vec::new();
    if let Some(mut header_table) = table.table("headers") {
        for (name, value) in header_table.take_all() {
            // Environment variable names cannot hold a dash: AUTOSCALE_WEBHOOK__HEADERS__X_API_KEY
            // means the header X-Api-Key.
            let from_env = header_table
                .origins
                .contains_key(&format!("webhook.headers.{name}"));
            let name = if from_env {
                name.replace('_', "-")
            } else {
                name
            };
            let Some(value) = header_table.resolve_env(&name, value) else {
                continue;
            };
            let text = match &value.kind {
                ValueKind::String(text) => text.clone(),
                ValueKind::I64(_)
                | ValueKind::U64(_)
                | ValueKind::Float(_)
                | ValueKind::Boolean(_) => value.kind.to_string(),
                _ => {
                    header_table.bad(&name, &value, "a header value (a string)");
                    continue;
                }
            };
            match webhook::parse_header(&name, &text) {
                Ok(header) => {
                    // Header names are case-insensitive: `Authorization` in the file and
                    // AUTOSCALE_WEBHOOK__HEADERS__AUTHORIZATION are one header, and the
                    // environment wins, as it does for every setting.
                    match headers.iter().position(|(known, _)| *known == header.0) {
                        Some(at) if from_env => headers[at] = header,
                        Some(_) => {}
                        None => headers.push(header),
                    }
                }
                Err(why) => header_table.bad(&name, &value, why),
            }
        }
        table.absorb(header_table);
    }
    let body = table.parsed("body", |text| {
        Template::parse(text).map_err(|error| format!("a body template: {error}"))
    });
    let policy = read_delivery(&mut table);
    let ok = table.problems.len() == before;
    reader.absorb(table);
    if !ok {
        return None;
    }
    Some(WebhookConfig {
        url: url?,
        method: method?,
        headers,
        body,
        policy: policy?,
    })
}

/// `timeout` and `give_up_after` of a backend's table.
fn read_delivery(table: &mut Reader) -> Option<DeliveryPolicy> {
    let defaults = DeliveryPolicy::default();
    let timeout = table.duration_or("timeout", defaults.timeout);
    if timeout == Some(Duration::ZERO) {
        let value = Value::new(None, "0s");
        table.bad("timeout", &value, "a duration above zero, such as \"10s\"");
        return None;
    }
    let give_up_after = table.duration_or("give_up_after", defaults.give_up_after);
    Some(DeliveryPolicy {
        timeout: timeout?,
        give_up_after: give_up_after?,
        ..defaults
    })
}

pub(super) fn read_shutdown_hook(reader: &mut Reader) -> Option<ShutdownHookSettings> {
    let mut table = reader.table("shutdown_hook")?;
    let url = match table.string("url") {
        None => {
            table.missing(
                "url",
                "the URL to call right before a stop, such as \"https://example.com/shutdown\"",
            );
            None
        }
        Some(text) => match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            _ => {
                let value = Value::new(None, text);
                table.bad(
                    "url",
                    &value,
                    "an absolute http(s) URL such as \"https://example.com/shutdown\"",
                );
                None
            }
        },
    };
    let method_text = table.string_or("method", "GET").to_ascii_uppercase();
    let method = match reqwest::Method::from_bytes(method_text.as_bytes()) {
        Ok(method) => Some(method),
        Err(_) => {
            let value = Value::new(None, method_text.clone());
            table.bad(
                "method",
                &value,
                "an HTTP method such as \"GET\" or \"POST\"",
            );
            None
        }
    };
    let mut headers = Vec::new();
    if let Some(value) = table.take("headers") {
        match &value.kind {
            ValueKind::Table(entries) => {
                for (name, entry) in entries {
                    let Some(entry) = table.resolve_env(&format!("headers.{name}"), entry.clone())
                    else {
                        continue;
                    };
                    let text = match &entry.kind {
                        ValueKind::String(text) => Some(text.clone()),
                        _ => None,
                    };
                    let name_ok = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
                    let value_ok = text
                        .as_deref()
                        .is_some_and(|text| reqwest::header::HeaderValue::from_str(text).is_ok());
                    if name_ok && value_ok {
                        headers.push((name.clone(), Secret::new(text.unwrap_or_default())));
                    } else {
                        // Header values are secrets: never shown, even when wrong.
                        let shown = Value::new(None, "***");
                        table.bad(
                            &format!("headers.{name}"),
                            &shown,
                            "a header name and a string value, such as Authorization = \"Bearer …\"",
                        );
                    }
                }
            }
            _ => table.bad(
                "headers",
                &Value::new(None, "***"),
                "a table of header names and values, such as { Authorization = \"Bearer …\" }",
            ),
        }
    }
    let body = table.string_or("body", "");
    let timeout = table.duration_or("timeout", Duration::from_secs(10));
    if timeout == Some(Duration::ZERO) {
        table.bad(
            "timeout",
            &Value::new(None, "0s"),
            "a duration above zero such as \"10s\"",
        );
    }
    let ok = table.problems.is_empty();
    reader.absorb(table);
    if !ok {
        return None;
    }
    Some(ShutdownHookSettings {
        url: url?,
        method: method?,
        headers,
        body,
        timeout: timeout?,
    })
}

fn read_endpoint(reader: &mut Reader, key: &str) -> Option<Endpoint> {
    let text = reader.string(key)?;
    match Endpoint::parse(&text) {
        Ok(endpoint) => Some(endpoint),
        Err(expected) => {
            let value = Value::new(None, text);
            reader.bad(key, &value, expected);
            None
        }
    }
}

pub(super) fn read_activator(
    reader: &mut Reader,
    purpose: Purpose,
    top_idle_after: Option<Duration>,
) -> Option<ActivatorSettings> {
    let Some(mut table) = reader.table("activator") else {
        if purpose == Purpose::Activator && !reader.problems.iter().any(|p| p.key == "activator") {
            reader.missing(
                "activator",
                "an [activator] table with listen and target (or command), for `autoscalebot activate`",
            );
        }
        return None;
    };
    let listen = read_endpoint(&mut table, "listen");
    if listen.is_none() && !table.problems.iter().any(|p| p.key.ends_with("listen")) {
        table.missing(
            "listen",
            "where to listen: host:port (such as 0.0.0.0:8080) or unix:/path/to.sock",
        );
    }
    let target = read_endpoint(&mut table, "target");
    let command = table.string("command");
    if command
        .as_deref()
        .is_some_and(|text| text.trim().is_empty())
    {
        table.bad(
            "command",
            &Value::new(None, ""),
            "a command line that starts your app, or leave the key out",
        );
    }
    if target.is_none()
        && command.is_none()
        && !table.problems.iter().any(|p| p.key.ends_with("target"))
    {
        table.missing(
            "target",
            "where the app listens: host:port or unix:/path (or a command, to hand it the listening socket)",
        );
    }
    if let (Some(listen), Some(target)) = (&listen, &target) {
        if listen == target {
            table.bad(
                "target",
                &Value::new(None, target.to_string()),
                "another address than listen, or it would forward to itself",
            );
        }
    }
    let wake_timeout = table.duration_or("wake_timeout", Duration::from_secs(30));
    if wake_timeout == Some(Duration::ZERO) {
        table.bad(
            "wake_timeout",
            &Value::new(None, "0s"),
            "a duration above zero such as \"30s\"",
        );
    }
    let idle_after = table.positive_duration("idle_after").or(top_idle_after);
    let signal_text = table.string_or("stop_signal", "SIGTERM");
    let stop_signal = parse_signal(&signal_text);
    if stop_signal.is_none() {
        table.bad(
            "stop_signal",
            &Value::new(None, signal_text),
            "a signal name or number such as \"SIGTERM\", \"SIGINT\" or 15",
        );
    }
    let stop_timeout = table.duration_or("stop_timeout", Duration::from_secs(10));
    let ok = table.problems.is_empty();
    reader.absorb(table);
    if !ok {
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
