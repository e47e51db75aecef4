//! The raw layer: the `config` crate merges the file and the `AUTOSCALE_*` variables into one
//! table of values, and [`Reader`] takes typed values out of it, recording a [`Problem`] for
//! each bad one. Also how values are shown (secrets never) and durations parsed and written.
//!
//! This module knows no particular setting beyond which keys are secret: what a setting means
//! and how settings check each other belongs to `app`, `tables` and `apps`.

use super::{Problem, SettingsError, ENV_DOWNTIME};
use crate::schedule::Schedule;
use config::{Value, ValueKind};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Settings whose values are never shown and may be given as `"env:NAME"`: keys, passwords
/// and tokens by name, the SMTP URL (it holds the password), the hook URL (Slack keeps its
/// token in the path), hook headers and the leader lock's URL. `key` is the setting's own
/// name, without an `[[apps]]` entry's label (see [`Reader::setting_key`]).
/// `leader_lock_key` is a lock's number, not a secret.
fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    (last.contains("key") && last != "leader_lock_key")
        || last.contains("password")
        || last.contains("token")
        || matches!(
            key,
            "email.smtp_url" | "webhook" | "webhook.url" | "leader_lock_url"
        )
        || key.starts_with("webhook.headers")
        || key.starts_with("shutdown_hook.headers")
}

/// What starts a secret's value that names an environment variable: `"env:NAME"`.
const ENV_REFERENCE: &str = "env:";

/// The variable named by `"env:NAME"`: `None` when the text does not start with `env:` (it is
/// taken literally), `Some(Err(()))` when what follows is not a variable name.
fn env_reference(text: &str) -> Option<Result<&str, ()>> {
    let name = text.strip_prefix(ENV_REFERENCE)?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    Some(if valid { Ok(name) } else { Err(()) })
}

/// Which setting each `AUTOSCALE_*` variable sets, so a problem can name the variable:
/// `AUTOSCALE_EMAIL__SMTP_URL` sets `email.smtp_url`.
pub(super) fn env_origins(env: &HashMap<String, String>) -> HashMap<String, String> {
    let mut origins: HashMap<String, String> = env
        .keys()
        .filter_map(|name| {
            let key = name.strip_prefix("AUTOSCALE_")?;
            Some((key.to_lowercase().replace("__", "."), name.clone()))
        })
        .collect();
    if env.contains_key("HEROKU_API_KEY") && !origins.contains_key("heroku_api_key") {
        origins.insert("heroku_api_key".into(), "HEROKU_API_KEY".into());
    }
    origins
}

/// Merges the file and the environment into one raw table of values.
pub(super) fn raw_table<S>(
    file: Option<S>,
    env: &HashMap<String, String>,
) -> Result<BTreeMap<String, Value>, SettingsError>
where
    S: config::Source + Send + Sync + 'static,
{
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(file);
    }
    let mut prefixed: config::Map<String, String> = env
        .iter()
        // AUTOSCALE_DOWNTIME adds windows to the file's list, so it is read on its own.
        .filter(|(name, _)| name.starts_with("AUTOSCALE_") && *name != ENV_DOWNTIME)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    // As the Heroku CLI does, HEROKU_API_KEY gives the key unless AUTOSCALE_ names one.
    if let Some(key) = env.get("HEROKU_API_KEY") {
        prefixed
            .entry("AUTOSCALE_HEROKU_API_KEY".to_string())
            .or_insert_with(|| key.clone());
    }
    builder = builder.add_source(
        config::Environment::with_prefix("AUTOSCALE")
            .prefix_separator("_")
            .separator("__")
            // Values stay text: the Reader parses each as its setting expects, so an API key
            // or a header value such as "00123" keeps its leading zeros, and lists are split
            // on commas by `Reader::string_list`.
            .try_parsing(false)
            .source(Some(prefixed)),
    );
    let built = builder.build().map_err(|error| {
        SettingsError::one(
            "--settings",
            None,
            format!("a valid TOML file ({})", scrub(&error.to_string())),
        )
    })?;
    let table = built
        .try_deserialize::<config::Map<String, Value>>()
        .map_err(|error| {
            SettingsError::one(
                "--settings",
                None,
                format!("a table of settings ({})", scrub(&error.to_string())),
            )
        })?;
    Ok(table.into_iter().collect())
}

/// Parser messages can quote a line of the file, which may hold a key: keep only the first
/// line of the message and cut anything after "=".
fn scrub(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    match first.find('=') {
        Some(at) => format!("{}…", &first[..at]),
        None => first.to_string(),
    }
}

const EXPECTED_LIST: &str = "a list of strings such as [\"console\", \"log\"]";

/// Takes typed values out of a raw table, collecting a [`Problem`] for each bad one. What is
/// left at the end is unknown keys.
pub struct Reader {
    pub(super) table: BTreeMap<String, Value>,
    pub(super) prefix: String,
    pub(super) known: Vec<String>,
    /// Setting → the environment variable that set it.
    pub origins: HashMap<String, String>,
    pub problems: Vec<Problem>,
    /// The environment that `"env:NAME"` values of secrets are looked up in.
    pub(super) env: Arc<HashMap<String, String>>,
    /// The `[[apps]]` entry's label and a dot (`apps[1] (beta/web).`), or "" at the top
    /// level: what `prefix` adds before the setting's own name.
    pub(super) entry_prefix: String,
    /// (setting, variable) for each secret whose value was `"env:NAME"`, for `check`.
    pub(super) env_references: Vec<(String, String)>,
}

impl Reader {
    pub fn new(table: BTreeMap<String, Value>, prefix: &str) -> Self {
        Reader {
            table,
            prefix: prefix.to_string(),
            known: Vec::new(),
            origins: HashMap::new(),
            problems: Vec::new(),
            env: Arc::default(),
            entry_prefix: String::new(),
            env_references: Vec::new(),
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The setting's own name (`email.smtp_url`), without the `[[apps]]` entry's label.
    pub(super) fn setting_key(&self, key: &str) -> String {
        let full = self.full_key(key);
        match full.strip_prefix(&self.entry_prefix) {
            Some(own) => own.to_string(),
            None => full,
        }
    }

    /// A secret's value as given, or, when it is `"env:NAME"`, the value of the variable NAME
    /// (recorded for `check`). Any other setting's value is returned as it is. `None`, with a
    /// problem naming the key and the variable (never a value), when NAME is not set or empty.
    pub fn resolve_env(&mut self, key: &str, value: Value) -> Option<Value> {
        let setting = self.setting_key(key);
        if !is_secret_key(&setting) {
            return Some(value);
        }
        let ValueKind::String(text) = &value.kind else {
            return Some(value);
        };
        let (shown, expected) = match env_reference(text) {
            None => return Some(value),
            Some(Ok(name)) => match self.env.get(name) {
                Some(found) if !found.trim().is_empty() => {
                    let origin = format!("{ENV_REFERENCE}{name}");
                    self.env_references.push((setting, name.to_string()));
                    return Some(Value::new(Some(&origin), found.clone()));
                }
                found => (
                    format!("\"{ENV_REFERENCE}{name}\""),
                    format!(
                        "the environment variable {name} to hold the value, but it is {}: set the config var {name} (heroku config:set {name}=…)",
                        if found.is_some() { "empty" } else { "not set" }
                    ),
                ),
            },
            // The text after env: is not shown: it may be a secret that merely looks like this.
            Some(Err(())) => (
                format!("\"{ENV_REFERENCE}…\""),
                format!("a variable name after {ENV_REFERENCE} (letters, digits and _), such as \"{ENV_REFERENCE}BETA_API_KEY\""),
            ),
        };
        self.push_shown(key, &value, shown, expected);
        None
    }

    /// Whether the key was given (without taking it).
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// A nested table as a reader of its own, whose problems are named `key.…`. `None` when
    /// absent, or when not a table (a problem is recorded). Hand it back with [`Reader::absorb`].
    pub fn table(&mut self, key: &str) -> Option<Reader> {
        let value = self.take(key)?;
        match value.kind.clone() {
            ValueKind::Table(entries) => {
                let mut child = Reader::new(entries.into_iter().collect(), &self.full_key(key));
                child.prefix.push('.');
                child.origins = self.origins.clone();
                child.env = self.env.clone();
                child.entry_prefix = self.entry_prefix.clone();
                Some(child)
            }
            _ => {
                self.bad(
                    key,
                    &value,
                    format!("a table: a [{key}] section, or {key}.name = value lines"),
                );
                None
            }
        }
    }

    /// Takes back a child from [`Reader::table`]: its unknown keys and all its problems.
    pub fn absorb(&mut self, mut child: Reader) {
        child.finish_unknown();
        self.problems.append(&mut child.problems);
        self.env_references.append(&mut child.env_references);
    }

    /// Every entry left, taken: for tables whose keys are the user's (web hook headers).
    /// Values are as given: pass each through [`Reader::resolve_env`].
    pub fn take_all(&mut self) -> Vec<(String, Value)> {
        let entries = std::mem::take(&mut self.table);
        self.known.extend(entries.keys().cloned());
        entries.into_iter().collect()
    }

    /// A string checked by `parse`; a problem with the reason when it fails. `None` when
    /// absent or bad.
    pub fn parsed<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.take(key)?;
        let text = match &value.kind {
            ValueKind::String(text) => text.clone(),
            _ => {
                self.bad(key, &value, "a string");
                return None;
            }
        };
        match parse(&text) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                self.bad(key, &value, why);
                None
            }
        }
    }

    /// Removes and returns a raw value; a secret's `"env:NAME"` is replaced by the variable's
    /// value (`None` after a problem when it is not set).
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.known.push(key.to_string());
        let value = self.table.remove(key)?;
        self.resolve_env(key, value)
    }

    /// Records a problem with a present value.
    pub fn bad(&mut self, key: &str, value: &Value, expected: impl Into<String>) {
        let shown = if is_secret_key(&self.setting_key(key)) {
            "\"***\"".to_string()
        } else {
            show(value)
        };
        self.push_shown(key, value, shown, expected.into());
    }

    /// Records a problem with a present value, shown as `shown`; the origin is the variable
    /// that set it, else the value's own.
    fn push_shown(&mut self, key: &str, value: &Value, shown: String, expected: String) {
        let full = self.full_key(key);
        let origin = self
            .origins
            .get(&full)
            .cloned()
            .or_else(|| value.origin().map(str::to_string));
        self.problems.push(Problem {
            key: full,
            value: Some(shown),
            origin,
            expected,
        });
    }

    /// Whether a problem was already recorded for this key.
    pub fn has_problem(&self, key: &str) -> bool {
        let full = self.full_key(key);
        self.problems.iter().any(|problem| problem.key == full)
    }

    /// Records a problem with a missing value.
    pub fn missing(&mut self, key: &str, expected: impl Into<String>) {
        let full = self.full_key(key);
        self.problems.push(Problem {
            key: full,
            value: None,
            origin: None,
            expected: expected.into(),
        });
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        let value = self.take(key)?;
        match &value.kind {
            ValueKind::String(text) => Some(text.clone()),
            ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_) => {
                Some(value.kind.to_string())
            }
            _ => {
                self.bad(key, &value, "a string");
                None
            }
        }
    }

    pub fn string_or(&mut self, key: &str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_string())
    }

    pub fn bool_or(&mut self, key: &str, default: bool) -> bool {
        let Some(value) = self.take(key) else {
            return default;
        };
        match &value.kind {
            ValueKind::Boolean(flag) => *flag,
            ValueKind::String(text) if matches!(text.as_str(), "true" | "1" | "yes" | "on") => true,
            ValueKind::String(text) if matches!(text.as_str(), "false" | "0" | "no" | "off") => {
                false
            }
            ValueKind::I64(1) | ValueKind::U64(1) => true,
            ValueKind::I64(0) | ValueKind::U64(0) => false,
            _ => {
                self.bad(key, &value, "true or false");
                default
            }
        }
    }

    /// A whole number from `min` up, or `None` (with a problem recorded) when it is not one.
    pub fn whole_value(
        &mut self,
        key: &str,
        value: &Value,
        min: i64,
        expected: &str,
    ) -> Option<u32> {
        let number = match &value.kind {
            ValueKind::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            kind => integer(kind),
        };
        match number {
            Some(n) if n >= min && n <= u32::MAX as i64 => Some(n as u32),
            _ => {
                self.bad(key, value, expected);
                None
            }
        }
    }

    pub fn whole_or(&mut self, key: &str, default: u32, min: i64, expected: &str) -> Option<u32> {
        match self.take(key) {
            None => Some(default),
            Some(value) => self.whole_value(key, &value, min, expected),
        }
    }

    /// Any whole number that fits in 64 bits, signed (PostgreSQL's `bigint`).
    pub fn integer_or(&mut self, key: &str, default: i64, expected: &str) -> Option<i64> {
        let Some(value) = self.take(key) else {
            return Some(default);
        };
        let number = integer(&value.kind);
        if number.is_none() {
            self.bad(key, &value, expected);
        }
        number
    }

    /// A number that may have a fraction, above zero.
    pub fn positive_float_or(&mut self, key: &str, default: f64, expected: &str) -> Option<f64> {
        let Some(value) = self.take(key) else {
            return Some(default);
        };
        let number = match &value.kind {
            ValueKind::I64(n) => Some(*n as f64),
            ValueKind::U64(n) => Some(*n as f64),
            ValueKind::Float(f) => Some(*f),
            ValueKind::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n.is_finite() && n > 0.0 => Some(n),
            _ => {
                self.bad(key, &value, expected);
                None
            }
        }
    }

    /// A duration: `"90s"`, `"5m"`, `"1h"`, `"1h 30m"`, or a number of seconds.
    pub fn duration_or(&mut self, key: &str, default: Duration) -> Option<Duration> {
        let Some(value) = self.take(key) else {
            return Some(default);
        };
        let parsed = match &value.kind {
            ValueKind::String(text) => parse_duration(text),
            ValueKind::I64(n) if *n >= 0 => Some(Duration::from_secs(*n as u64)),
            ValueKind::U64(n) => Some(Duration::from_secs(*n)),
            ValueKind::Float(f) if f.is_finite() && *f >= 0.0 => Some(Duration::from_secs_f64(*f)),
            _ => None,
        };
        if parsed.is_none() {
            self.bad(
                key,
                &value,
                "a duration such as \"90s\", \"5m\" or \"1h\" (or a number of seconds)",
            );
        }
        parsed
    }

    /// An optional duration above zero: `None` when absent or bad (a problem is recorded).
    pub fn positive_duration(&mut self, key: &str) -> Option<Duration> {
        let value = self.table.get(key).cloned()?;
        let duration = self.duration_or(key, Duration::ZERO)?;
        if duration.is_zero() {
            self.bad(
                key,
                &value,
                "a duration above zero such as \"10m\" (leave it out to turn this off)",
            );
            return None;
        }
        Some(duration)
    }

    /// A whole number or a time-of-day table of whole numbers.
    pub fn schedule(&mut self, key: &str, value: Value) -> Option<Schedule> {
        let expected = "a whole number (0 or more), a time-of-day table such as { \"0:00\" = 2, \"9:00\" = 5 }, or one by day such as { mon-fri = { \"0:00\" = 2, \"9:00\" = 5 }, sat-sun = 1 }";
        match value.kind.clone() {
            ValueKind::Table(_) if Schedule::is_weekly_value(&value) => {
                Schedule::weekly_from_value(&value)
                    .map_err(|why| self.bad(key, &value, format!("a table by day: {why}")))
                    .ok()
            }
            ValueKind::Table(entries) => {
                let mut parsed = Vec::new();
                let mut ok = true;
                for (time, entry) in entries {
                    match self.whole_value(
                        &format!("{key}.\"{time}\""),
                        &entry,
                        0,
                        "a whole number (0 or more)",
                    ) {
                        Some(n) => parsed.push((time, n)),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                match Schedule::daily(parsed.iter().map(|(time, n)| (time.as_str(), *n))) {
                    Ok(schedule) => Some(schedule),
                    Err(why) => {
                        self.bad(key, &value, format!("a time-of-day table: {why}"));
                        None
                    }
                }
            }
            _ => self
                .whole_value(key, &value, 0, expected)
                .map(Schedule::Fixed),
        }
    }

    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        let value = self.take(key)?;
        let items = match value.kind.clone() {
            ValueKind::Array(items) => items,
            ValueKind::String(text) if text.trim().is_empty() => Vec::new(),
            // From the environment a list arrives as one string: "console,log".
            ValueKind::String(text) => text
                .split(',')
                .map(|item| Value::new(None, item.trim().to_string()))
                .collect(),
            _ => {
                self.bad(key, &value, EXPECTED_LIST);
                return None;
            }
        };
        let mut list = Vec::new();
        for item in items {
            match item.kind {
                ValueKind::String(text) => list.push(text.trim().to_string()),
                _ => {
                    self.bad(key, &value, EXPECTED_LIST);
                    return None;
                }
            }
        }
        Some(list)
    }

    /// Reports every key nobody took, with the nearest known name when one is close.
    pub fn finish_unknown(&mut self) {
        let leftover = std::mem::take(&mut self.table);
        for (key, value) in leftover {
            let nearest = self
                .known
                .iter()
                .map(|known| (strsim::jaro_winkler(&key, known), known))
                .filter(|(score, _)| *score > 0.85)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, known)| known.clone());
            let expected = match nearest {
                Some(known) => format!("a known setting: did you mean {}{known}?", self.prefix),
                None => "a known setting (see settings.example.toml for the list)".to_string(),
            };
            self.bad(&key, &value, expected);
        }
    }
}

/// How a raw value is shown in a message: strings quoted, the rest as written.
pub(super) fn show(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(text) => format!("{text:?}"),
        ValueKind::Table(table) => {
            let entries: Vec<String> = table
                .iter()
                .map(|(key, entry)| format!("{key:?} = {}", show(entry)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        ValueKind::Array(items) => {
            let items: Vec<String> = items.iter().map(show).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A TOML integer, or text of one (environment values stay text), as an `i64`.
fn integer(kind: &ValueKind) -> Option<i64> {
    match kind {
        ValueKind::I64(n) => Some(*n),
        ValueKind::U64(n) => i64::try_from(*n).ok(),
        ValueKind::String(text) => text.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// `"90s"`, `"5m"`, `"1h"`, `"1h 30m"`, `"0"` (humantime), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    humantime::parse_duration(text).ok()
}

/// A duration as people write it in the settings: "90s", "1h 30m".
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_string();
    }
    humantime::format_duration(duration).to_string()
}
