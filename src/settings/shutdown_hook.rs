//! The `[shutdown_hook]` table (seed 000): the request made right before every stop. Its
//! header values are secrets. It must not read keys outside its table.

use autoscalebot_backends::settings::{
    fields, hidden_from, named, rows, variable_for, Check, Raw, SecretRaw, HIDDEN,
};
use autoscalebot_backends::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

/// The table as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawShutdownHook {
    url: Raw,
    method: Raw,
    /// A table whose values are secrets: they often carry an `Authorization`.
    headers: SecretRaw,
    body: Raw,
    timeout: Raw,
}

/// The checked table.
#[derive(Debug, Clone)]
pub struct ShutdownHookSettings {
    pub url: Url,
    pub method: reqwest::Method,
    pub headers: Vec<(String, Secret)>,
    pub body: String,
    pub timeout: Duration,
}

pub(super) fn keys() -> &'static [&'static str] {
    fields::<RawShutdownHook>()
}

/// Checks the table (the setting `shutdown_hook`; absent when not given).
pub(super) fn read(table: &Raw, check: &mut Check) -> Option<ShutdownHookSettings> {
    let raw = table.section::<RawShutdownHook>(check)?;
    let mark = check.mark();
    let url = match raw.url.text(check) {
        None => {
            if !raw.url.is_set() {
                raw.url.missing(
                    check,
                    "the URL to call right before a stop, such as \"https://example.com/shutdown\"",
                );
            }
            None
        }
        Some(text) => match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            _ => {
                raw.url.bad_text(
                    check,
                    &text,
                    "an absolute http(s) URL such as \"https://example.com/shutdown\"",
                );
                None
            }
        },
    };
    let method_text = raw.method.text_or(check, "GET").to_ascii_uppercase();
    let method = match reqwest::Method::from_bytes(method_text.as_bytes()) {
        Ok(method) => Some(method),
        Err(_) => {
            raw.method.bad_text(
                check,
                &method_text,
                "an HTTP method such as \"GET\" or \"POST\"",
            );
            None
        }
    };
    let mut headers = Vec::new();
    let expected = "a table of header names and values, such as { Authorization = \"Bearer …\" }";
    for (name, entry) in raw.headers.entries(check, expected).unwrap_or_default() {
        let Some(value) = entry.secret(check) else {
            if entry.is_set() && !check.has_problem(entry.key()) {
                entry.bad(check, HEADER_EXPECTED);
            }
            continue;
        };
        let name_ok = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
        let value_ok = reqwest::header::HeaderValue::from_str(value.expose()).is_ok();
        if name_ok && value_ok {
            headers.push((name, value));
        } else {
            entry.bad(check, HEADER_EXPECTED);
        }
    }
    let body = raw.body.text_or(check, "");
    let timeout = raw.timeout.timeout_or(
        check,
        Duration::from_secs(10),
        "a duration above zero such as \"10s\"",
    );
    if check.failed_since(mark) {
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

const HEADER_EXPECTED: &str =
    "a header name and a string value, such as Authorization = \"Bearer …\"";

/// `check`'s rows: the table in force, or every key `(not set)` without one.
pub(super) fn rows_of(
    hook: Option<&ShutdownHookSettings>,
    key: &str,
    variables: &BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    let prefix = format!("{key}.");
    let Some(hook) = hook else {
        return rows(&prefix, &RawShutdownHook::default());
    };
    let keys = named::<RawShutdownHook>(&prefix);
    let headers: Vec<String> = hook
        .headers
        .iter()
        .map(|(name, _)| {
            let key = format!("{}.{name}", keys.headers.key());
            let variable = variable_for(variables, &key);
            format!("{name:?} = {}", hidden_from(HIDDEN.to_string(), variable))
        })
        .collect();
    let shown = RawShutdownHook {
        url: Raw::quoted(hook.url.as_str()),
        method: Raw::quoted(hook.method.as_str()),
        headers: SecretRaw::shown(format!("{{ {} }}", headers.join(", ")), None),
        body: Raw::quoted(&hook.body),
        timeout: Raw::duration(hook.timeout),
    };
    rows(&prefix, &shown)
}
