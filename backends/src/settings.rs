//! The second stage of the settings, the toolkit every part checks its own section with.
//!
//! A part's raw section is a serde struct (`deny_unknown_fields`) whose fields are all [`Raw`]
//! or [`SecretRaw`]: untyped values that know their setting's name. [`Check::section`] takes
//! one out of the merged table of the file and the `AUTOSCALE_*` variables; the part then
//! types each field through the [`Check`], which collects every problem (key, value, where it
//! came from, what was expected) instead of stopping at the first, as serde would. A field's
//! type decides whether it is a secret: a [`SecretRaw`] follows `"env:NAME"` and is never shown.
//!
//! `check`'s rows come from the same structs: a part fills its raw struct with the values in
//! force and [`rows`] lists them under the struct's field names, as [`fields`] gives them to
//! the "did you mean" hints. So a key's name is written once, in its raw struct. This module
//! knows no particular setting and does no I/O.

mod de;

use crate::Secret;
use config::{Value, ValueKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use de::fields;

/// A table of raw values, as the `config` crate merged them.
pub type Table = BTreeMap<String, Value>;

/// One thing wrong with the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    /// The bad value as the user wrote it (`***` for secrets); `None` when it is missing.
    pub value: Option<String>,
    /// Where the value came from, when known: the variable that set it.
    pub origin: Option<String>,
    pub expected: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} = {value}", self.key)?,
            None => write!(f, "{} is not set", self.key)?,
        }
        if let Some(origin) = &self.origin {
            write!(f, " (from {origin})")?;
        }
        write!(f, ": expected {}", self.expected)
    }
}

/// Where the second stage of one app (or of the worker as a whole) writes: every problem
/// found, and each secret taken from `"env:NAME"` (for `check`).
pub struct Check {
    env: Arc<HashMap<String, String>>,
    /// Setting → the environment variable that set it.
    origins: HashMap<String, String>,
    /// An `[[apps]]` entry's label and a dot (`apps[1] (beta/web).`), or "": what every
    /// problem's key starts with.
    label: String,
    settings_dir: Option<PathBuf>,
    problems: Vec<Problem>,
    env_references: Vec<(String, String)>,
    /// Why an unknown key that is a known one in other letters was written so, when the
    /// application knows (another version's names): see [`Check::with_case_note`].
    case_note: Option<CaseNote>,
}

/// For an unknown key that is a known one in upper case (`MAX_DYNOS`), or with the prefix of
/// the variables (`AUTOSCALE_MAX_DYNOS`): why, when it is known whose names those are.
pub type CaseNote = fn(&str) -> Option<&'static str>;

impl Check {
    /// `env` is where `"env:NAME"` values are looked up; `origins` names the variable that set
    /// each setting; `label` starts every problem's key.
    pub fn new(
        env: Arc<HashMap<String, String>>,
        origins: HashMap<String, String>,
        label: &str,
        settings_dir: Option<PathBuf>,
    ) -> Self {
        Check {
            env,
            origins,
            label: label.to_string(),
            settings_dir,
            problems: Vec::new(),
            env_references: Vec::new(),
            case_note: None,
        }
    }

    /// Adds `note`'s words to the hint for a known key written in other letters, beside the
    /// name to write instead.
    pub fn with_case_note(mut self, note: CaseNote) -> Self {
        self.case_note = Some(note);
        self
    }

    /// A check of its own for an `[[apps]]` entry, whose problems start with `label` and whose
    /// settings came from the variables in `origins`.
    pub fn entry(&self, label: &str, origins: HashMap<String, String>) -> Check {
        let entry = Check::new(self.env.clone(), origins, label, self.settings_dir.clone());
        Check {
            case_note: self.case_note,
            ..entry
        }
    }

    /// Setting → the environment variable that set it.
    pub fn origins(&self) -> &HashMap<String, String> {
        &self.origins
    }

    /// Takes the raw section `T` out of `table`: each of its fields gets its value, if there
    /// is one, and its setting's name (`prefix` and the field's name). Other keys stay.
    pub fn section<T: DeserializeOwned>(&self, table: &mut Table, prefix: &str) -> T {
        de::take(table, prefix)
    }

    /// Reports each key of `leftover` as unknown, with the nearest of `known` (under `prefix`,
    /// such as `email.`) when one is close.
    pub fn unknown<'k>(
        &mut self,
        leftover: Table,
        known: impl IntoIterator<Item = &'k str> + Clone,
        prefix: &str,
    ) {
        for (key, value) in leftover {
            let expected = match self.in_other_letters(&key, known.clone(), prefix) {
                Some(hint) => format!("a known setting: {hint}"),
                None => match nearest(&key, known.clone()) {
                    Some(name) => format!(
                        "a known setting: did you mean {}{prefix}{name}?",
                        self.label
                    ),
                    None => "a known setting (see settings.example.toml for the list)".to_string(),
                },
            };
            // An unknown key may be a misspelt secret (`heroku_api_ky = "…"`): only a number
            // or a flag is echoed, never text, a list or a table.
            let echoed = matches!(
                value.kind,
                ValueKind::Boolean(_)
                    | ValueKind::I64(_)
                    | ValueKind::U64(_)
                    | ValueKind::I128(_)
                    | ValueKind::U128(_)
                    | ValueKind::Float(_)
            );
            let raw = Raw::new(format!("{prefix}{key}"), Some(value));
            if echoed {
                raw.bad(self, expected);
            } else {
                raw.bad_shown(self, HIDDEN.to_string(), expected);
            }
        }
    }

    /// "did you mean max_dynos? (…)" for `MAX_DYNOS` or `AUTOSCALE_MAX_DYNOS` when `max_dynos`
    /// is `known`: the name exactly as it is written now, and why the other was refused.
    fn in_other_letters<'k>(
        &self,
        key: &str,
        known: impl IntoIterator<Item = &'k str>,
        prefix: &str,
    ) -> Option<String> {
        let bare = key.strip_prefix(VARIABLE_PREFIX).unwrap_or(key);
        let lower = bare.to_ascii_lowercase();
        if lower == key {
            return None;
        }
        let name = known.into_iter().find(|name| *name == lower)?;
        let why = self
            .case_note
            .and_then(|note| note(key))
            .unwrap_or("setting names are lower case, without the variables' AUTOSCALE_ prefix");
        Some(format!(
            "did you mean {}{prefix}{name}? ({why})",
            self.label
        ))
    }

    /// How many problems so far: with [`Check::failed_since`], whether a part added any.
    pub fn mark(&self) -> usize {
        self.problems.len()
    }

    pub fn failed_since(&self, mark: usize) -> bool {
        self.problems.len() > mark
    }

    /// Whether a problem was already told about this setting (or a key under it).
    pub fn has_problem(&self, key: &str) -> bool {
        let full = format!("{}{key}", self.label);
        self.problems.iter().any(|problem| {
            problem.key == full
                || problem
                    .key
                    .strip_prefix(&full)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    /// Records a problem with the setting `key`, whose value is shown as `shown` (`None`: it is
    /// missing). The origin is the variable that set it, else `value_origin`.
    pub fn problem(
        &mut self,
        key: &str,
        shown: Option<String>,
        value_origin: Option<&str>,
        expected: impl Into<String>,
    ) {
        let origin = self
            .origins
            .get(key)
            .cloned()
            .or_else(|| value_origin.map(str::to_string));
        self.problems.push(Problem {
            key: format!("{}{key}", self.label),
            value: shown,
            origin,
            expected: expected.into(),
        });
    }

    /// Records that `key` is missing.
    pub fn missing(&mut self, key: &str, expected: impl Into<String>) {
        self.problems.push(Problem {
            key: format!("{}{key}", self.label),
            value: None,
            origin: None,
            expected: expected.into(),
        });
    }

    /// Records a problem that is already whole (named after another entry, say).
    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// The variable that set `key`, if one did.
    pub fn origin(&self, key: &str) -> Option<&str> {
        self.origins.get(key).map(String::as_str)
    }

    /// A path as written in the settings: relative to the settings file's folder.
    pub fn beside_settings(&self, path: &str) -> PathBuf {
        match &self.settings_dir {
            Some(dir) => dir.join(path),
            None => PathBuf::from(path),
        }
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// (setting, variable) for each secret whose value was `"env:NAME"`.
    pub fn env_references(&self) -> &[(String, String)] {
        &self.env_references
    }

    /// Takes the (setting, variable) pairs recorded since `from`.
    pub fn take_env_references(&mut self, from: usize) -> Vec<(String, String)> {
        self.env_references
            .split_off(from.min(self.env_references.len()))
    }

    pub fn env_reference_count(&self) -> usize {
        self.env_references.len()
    }

    /// The environment `"env:NAME"` values are looked up in.
    pub fn env(&self) -> &HashMap<String, String> {
        &self.env
    }
}

/// A setting's value as written, not yet typed, and the setting's name (`email.smtp_url`).
/// Its `Deserialize` works only through [`Check::section`], which tells it its name.
#[derive(Clone, Default)]
pub struct Raw {
    key: String,
    value: Option<Value>,
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Raw({} = ", self.key)?;
        match &self.value {
            Some(value) => f.write_str(&show(value))?,
            None => f.write_str("(not set)")?,
        }
        f.write_str(")")
    }
}

/// What the raw values of a section are shown as in `check`: the value in force, as text.
impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.value {
            Some(Value {
                kind: ValueKind::String(text),
                ..
            }) => serializer.serialize_str(text),
            Some(value) => serializer.serialize_str(&show(value)),
            None => serializer.serialize_str(NOT_SET),
        }
    }
}

/// How `check` shows a setting that has no value.
pub const NOT_SET: &str = "(not set)";

impl Raw {
    pub fn new(key: impl Into<String>, value: Option<Value>) -> Self {
        Raw {
            key: key.into(),
            value,
        }
    }

    /// A value in force, as `check` shows it: fill a raw struct with these and pass it to
    /// [`rows`].
    pub fn shown(text: impl Into<String>) -> Self {
        Raw::new("", Some(Value::new(None, text.into())))
    }

    /// `text` quoted, as a string setting is shown.
    pub fn quoted(text: &str) -> Self {
        Raw::shown(format!("{text:?}"))
    }

    /// A duration as written: `"1h 30m"`.
    pub fn duration(duration: Duration) -> Self {
        Raw::quoted(&format_duration(duration))
    }

    /// `(not set)`, or what `show` makes of the value.
    pub fn optional<T>(value: Option<T>, show: impl FnOnce(T) -> Raw) -> Self {
        value.map_or_else(Raw::default, show)
    }

    /// The setting's name, without an `[[apps]]` entry's label.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The environment variable that sets it: `AUTOSCALE_EMAIL__SMTP_URL`.
    pub fn variable(&self) -> String {
        variable_of(&self.key)
    }

    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }

    pub fn value(&self) -> Option<&Value> {
        self.value.as_ref()
    }

    /// The same setting, one level down: `max_dynos."9:00"`, `webhook.headers.X-Team`.
    pub fn child(&self, name: &str, value: Value) -> Raw {
        Raw::new(format!("{}.{name}", self.key), Some(value))
    }

    /// Records that this present value is not what was expected.
    pub fn bad(&self, check: &mut Check, expected: impl Into<String>) {
        let shown = self
            .value
            .as_ref()
            .map_or_else(|| NOT_SET.to_string(), show);
        check.problem(&self.key, Some(shown), None, expected);
    }

    /// Records a problem with this setting, showing `text` (quoted) as its value: for a value
    /// that was read and found wrong as a whole (`"0s"`, a name that is not a time zone).
    pub fn bad_text(&self, check: &mut Check, text: &str, expected: impl Into<String>) {
        check.problem(&self.key, Some(format!("{text:?}")), None, expected);
    }

    /// Records a problem with this setting, showing `shown` as it is.
    pub fn bad_shown(&self, check: &mut Check, shown: String, expected: impl Into<String>) {
        check.problem(&self.key, Some(shown), None, expected);
    }

    pub fn missing(&self, check: &mut Check, expected: impl Into<String>) {
        check.missing(&self.key, expected);
    }

    /// Text: a string, or a whole number written bare. `None` when absent or not text.
    pub fn text(&self, check: &mut Check) -> Option<String> {
        let value = self.value.as_ref()?;
        match &value.kind {
            ValueKind::String(text) => Some(text.clone()),
            ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_) => {
                Some(value.kind.to_string())
            }
            _ => {
                self.bad(check, "a string");
                None
            }
        }
    }

    /// [`Raw::text`], or `default` when absent or not text (a problem is recorded then).
    pub fn text_or(&self, check: &mut Check, default: &str) -> String {
        self.text(check).unwrap_or_else(|| default.to_string())
    }

    /// A string checked by `parse`; a problem with the reason when it fails. `None` when absent
    /// or bad.
    pub fn parsed<T>(
        &self,
        check: &mut Check,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.value.as_ref()?;
        let ValueKind::String(text) = &value.kind else {
            self.bad(check, "a string");
            return None;
        };
        match parse(text) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                self.bad(check, why);
                None
            }
        }
    }

    /// true or false (also `"yes"`, `"on"`, `1`…, as environment variables write them);
    /// `default` when absent or bad (a problem is recorded then).
    pub fn flag_or(&self, check: &mut Check, default: bool) -> bool {
        let Some(value) = &self.value else {
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
                self.bad(check, "true or false");
                default
            }
        }
    }

    /// A whole number from `min` up. `None` when absent, or when not one (a problem then).
    pub fn whole(&self, check: &mut Check, min: i64, expected: &str) -> Option<u32> {
        let value = self.value.as_ref()?;
        let number = match &value.kind {
            ValueKind::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            kind => integer(kind),
        };
        match number {
            Some(n) if n >= min && n <= u32::MAX as i64 => Some(n as u32),
            _ => {
                self.bad(check, expected);
                None
            }
        }
    }

    /// [`Raw::whole`], `default` when absent; `None` only when bad.
    pub fn whole_or(
        &self,
        check: &mut Check,
        default: u32,
        min: i64,
        expected: &str,
    ) -> Option<u32> {
        match self.value {
            None => Some(default),
            Some(_) => self.whole(check, min, expected),
        }
    }

    /// Any whole number that fits in 64 bits, signed (PostgreSQL's `bigint`).
    pub fn integer_or(&self, check: &mut Check, default: i64, expected: &str) -> Option<i64> {
        let Some(value) = &self.value else {
            return Some(default);
        };
        let number = integer(&value.kind);
        if number.is_none() {
            self.bad(check, expected);
        }
        number
    }

    /// A number that may have a fraction, above zero.
    pub fn positive_float_or(
        &self,
        check: &mut Check,
        default: f64,
        expected: &str,
    ) -> Option<f64> {
        let Some(value) = &self.value else {
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
                self.bad(check, expected);
                None
            }
        }
    }

    /// A duration: `"90s"`, `"5m"`, `"1h"`, `"1h 30m"`, or a number of seconds. `None` when
    /// absent or bad.
    pub fn duration_value(&self, check: &mut Check) -> Option<Duration> {
        let value = self.value.as_ref()?;
        let parsed = match &value.kind {
            ValueKind::String(text) => parse_duration(text),
            ValueKind::I64(n) if *n >= 0 => Some(Duration::from_secs(*n as u64)),
            ValueKind::U64(n) => Some(Duration::from_secs(*n)),
            ValueKind::Float(f) => seconds(*f),
            _ => None,
        }
        .filter(|duration| *duration <= MAX_DURATION);
        if parsed.is_none() {
            self.bad(
                check,
                "a duration such as \"90s\", \"5m\" or \"1h\" (or a number of seconds)",
            );
        }
        parsed
    }

    /// [`Raw::duration_value`], `default` when absent; `None` only when bad.
    pub fn duration_or(&self, check: &mut Check, default: Duration) -> Option<Duration> {
        match self.value {
            None => Some(default),
            Some(_) => self.duration_value(check),
        }
    }

    /// A duration above zero, `default` when absent: a timeout. `expected` is told for zero.
    pub fn timeout_or(
        &self,
        check: &mut Check,
        default: Duration,
        expected: &str,
    ) -> Option<Duration> {
        let duration = self.duration_or(check, default)?;
        if duration.is_zero() {
            self.bad_text(check, "0s", expected);
            return None;
        }
        Some(duration)
    }

    /// An optional duration above zero: `None` when absent or bad (a problem is recorded).
    pub fn positive_duration(&self, check: &mut Check) -> Option<Duration> {
        let duration = self.duration_value(check)?;
        if duration.is_zero() {
            self.bad(
                check,
                "a duration above zero such as \"10m\" (leave it out to turn this off)",
            );
            return None;
        }
        Some(duration)
    }

    /// A list of strings; from the environment one string split on commas (`"console,log"`).
    pub fn string_list(&self, check: &mut Check) -> Option<Vec<String>> {
        const EXPECTED: &str = "a list of strings such as [\"console\", \"log\"]";
        let value = self.value.as_ref()?;
        let items = match &value.kind {
            ValueKind::Array(items) => items.clone(),
            ValueKind::String(text) if text.trim().is_empty() => Vec::new(),
            ValueKind::String(text) => text
                .split(',')
                .map(|item| Value::new(None, item.trim().to_string()))
                .collect(),
            _ => {
                self.bad(check, EXPECTED);
                return None;
            }
        };
        let mut list = Vec::new();
        for item in items {
            match item.kind {
                ValueKind::String(text) => list.push(text.trim().to_string()),
                _ => {
                    self.bad(check, EXPECTED);
                    return None;
                }
            }
        }
        Some(list)
    }

    /// The entries of a table (`None` when absent, or not a table: a problem saying
    /// `expected` then).
    pub fn table(&self, check: &mut Check, expected: &str) -> Option<Table> {
        let value = self.value.as_ref()?;
        match &value.kind {
            ValueKind::Table(entries) => Some(entries.clone().into_iter().collect()),
            _ => {
                self.bad(check, expected);
                None
            }
        }
    }

    /// The raw section `T` of this table (`[email]`: `email.smtp_url`…), its unknown keys
    /// told. `None` when absent, or not a table (a problem then).
    pub fn section<T: DeserializeOwned>(&self, check: &mut Check) -> Option<T> {
        let mut values = self.section_table(check)?;
        let prefix = format!("{}.", self.key);
        let raw: T = check.section(&mut values, &prefix);
        check.unknown(values, fields::<T>().iter().copied(), &prefix);
        Some(raw)
    }

    /// A nested section's table: `[email]`, or `email.smtp_url = …` lines.
    fn section_table(&self, check: &mut Check) -> Option<Table> {
        let name = self.key.rsplit('.').next().unwrap_or(&self.key).to_string();
        self.table(
            check,
            &format!("a table: a [{name}] section, or {name}.name = value lines"),
        )
    }
}

/// A secret setting's value as written: an API key, a password, a URL holding a token, a
/// header value. It may be `"env:NAME"`, the value of the variable NAME; it is shown as `***`.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct SecretRaw(Raw);

impl fmt::Debug for SecretRaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRaw({} = ***)", self.0.key)
    }
}

/// What starts a secret's value that names an environment variable: `"env:NAME"`.
const ENV_REFERENCE: &str = "env:";

/// How a secret is shown.
pub const HIDDEN: &str = "\"***\"";

impl SecretRaw {
    /// A secret in force, as `check` shows it: `shown` must already hide it (`"***"`, a
    /// redacted URL); `variable` is where an `"env:NAME"` took it from.
    pub fn shown(shown: String, variable: Option<&str>) -> Self {
        SecretRaw(Raw::shown(hidden_from(shown, variable)))
    }

    /// The same setting with `text` as its value (a header value written as a number).
    pub fn with_text(&self, text: String) -> SecretRaw {
        SecretRaw(Raw::new(self.0.key.clone(), Some(Value::new(None, text))))
    }

    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// The environment variable that sets it: `AUTOSCALE_WEBHOOK__URL`.
    pub fn variable(&self) -> String {
        variable_of(&self.0.key)
    }

    pub fn is_set(&self) -> bool {
        self.0.is_set()
    }

    /// Renamed: a header whose name came from an environment variable (`X_API_KEY` is the
    /// header `X-Api-Key`).
    pub fn renamed(&self, key: String) -> SecretRaw {
        SecretRaw(Raw::new(key, self.0.value.clone()))
    }

    /// The value as written, for a caller that must look at its kind first.
    pub fn value(&self) -> Option<&Value> {
        self.0.value()
    }

    /// Records that the (hidden) value is not what was expected.
    pub fn bad(&self, check: &mut Check, expected: impl Into<String>) {
        check.problem(&self.0.key, Some(HIDDEN.to_string()), None, expected);
    }

    pub fn missing(&self, check: &mut Check, expected: impl Into<String>) {
        check.missing(&self.0.key, expected);
    }

    /// The secret's text and, when it came from `"env:NAME"`, `env:NAME`. `None` when absent
    /// or unusable (a problem naming the variable, never a value, is recorded then).
    fn resolve(&self, check: &mut Check) -> Option<(String, Option<String>)> {
        let value = self.0.value.as_ref()?;
        let text = match &value.kind {
            ValueKind::String(text) => text.clone(),
            ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_) => {
                value.kind.to_string()
            }
            _ => {
                self.bad(check, "a string");
                return None;
            }
        };
        let Some(name) = text.strip_prefix(ENV_REFERENCE) else {
            return Some((text, None));
        };
        if !is_variable_name(name) {
            // What follows env: is not shown: it may be a secret that merely looks like this.
            check.problem(
                &self.0.key,
                Some(format!("\"{ENV_REFERENCE}…\"")),
                None,
                format!("a variable name after {ENV_REFERENCE} (letters, digits and _), such as \"{ENV_REFERENCE}BETA_API_KEY\""),
            );
            return None;
        }
        match check.env.get(name) {
            Some(found) if !found.trim().is_empty() => {
                let found = found.clone();
                check
                    .env_references
                    .push((self.0.key.clone(), name.to_string()));
                Some((found, Some(format!("{ENV_REFERENCE}{name}"))))
            }
            found => {
                let state = if found.is_some() { "empty" } else { "not set" };
                check.problem(
                    &self.0.key,
                    Some(format!("\"{ENV_REFERENCE}{name}\"")),
                    None,
                    format!("the environment variable {name} to hold the value, but it is {state}: set the config var {name} (heroku config:set {name}=…)"),
                );
                None
            }
        }
    }

    /// The secret, following `"env:NAME"`. `None` when absent or unusable.
    pub fn secret(&self, check: &mut Check) -> Option<Secret> {
        self.resolve(check).map(|(text, _)| Secret::new(text))
    }

    /// The secret checked by `parse`, whose error must not repeat the text. The value is shown
    /// as `***`, with the variable it came from.
    pub fn parsed<T>(
        &self,
        check: &mut Check,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (text, from) = self.resolve(check)?;
        match parse(&text) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                check.problem(&self.0.key, Some(HIDDEN.to_string()), from.as_deref(), why);
                None
            }
        }
    }

    /// A table whose values are all secrets (hook headers): each entry as a secret of its own,
    /// `webhook.headers.Authorization`. `None` when absent or not a table.
    pub fn entries(&self, check: &mut Check, expected: &str) -> Option<Vec<(String, SecretRaw)>> {
        let value = self.0.value.as_ref()?;
        let ValueKind::Table(entries) = &value.kind else {
            self.bad(check, expected);
            return None;
        };
        let mut entries: Vec<(String, Value)> = entries.clone().into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Some(
            entries
                .into_iter()
                .map(|(name, value)| {
                    let raw = SecretRaw(self.0.child(&name, value));
                    (name, raw)
                })
                .collect(),
        )
    }
}

/// A hidden secret as `check` shows it, and the variable an `"env:NAME"` took it from.
pub fn hidden_from(shown: String, variable: Option<&str>) -> String {
    match variable {
        Some(variable) => format!("{shown} (from env:{variable})"),
        None => shown,
    }
}

/// What starts the name of every variable that sets a setting.
pub const VARIABLE_PREFIX: &str = "AUTOSCALE_";

fn variable_of(key: &str) -> String {
    format!(
        "{VARIABLE_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// The known name closest to `key`, when one is close: a typo's hint.
fn nearest<'k>(key: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    known
        .into_iter()
        .map(|name| (strsim::jaro_winkler(key, name), name))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

/// Where `check` says a secret came from: the variable its `"env:NAME"` named, from the
/// (setting → variable) pairs [`Check::env_references`] recorded. Header names are compared
/// as HTTP does, ignoring case.
pub fn variable_for<'a>(variables: &'a BTreeMap<String, String>, setting: &str) -> Option<&'a str> {
    variables
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(setting))
        .map(|(_, variable)| variable.as_str())
}

/// A raw section whose fields have their names and no value: what a part needs to name its
/// keys (in a message, or to find a secret's variable) without writing them again.
pub fn named<T: DeserializeOwned>(prefix: &str) -> T {
    de::take(&mut Table::new(), prefix)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `check`'s rows of a raw struct filled with the values in force: each field's name (under
/// `prefix`, such as `email.`) and its value, in the struct's order.
pub fn rows<T: Serialize + DeserializeOwned>(
    prefix: &str,
    shown: &T,
) -> Vec<(&'static str, String)> {
    let values = match serde_json::to_value(shown) {
        Ok(serde_json::Value::Object(values)) => values,
        _ => unreachable!("a raw section serializes as a map of strings"),
    };
    fields::<T>()
        .iter()
        .map(|field| {
            let value = match values.get(*field) {
                Some(serde_json::Value::String(text)) => text.clone(),
                _ => NOT_SET.to_string(),
            };
            (intern(&format!("{prefix}{field}")), value)
        })
        .collect()
}

/// A setting's full name for the life of the process. The names are few and fixed (the fields
/// of the raw sections), so each is kept once; rows then borrow them as `&'static str`.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .expect("setting names lock");
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// How a raw value is shown in a message: strings quoted, the rest as written.
fn show(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(text) => format!("{text:?}"),
        ValueKind::Table(table) => {
            let mut entries: Vec<(&String, &Value)> = table.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
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
    if let Ok(number) = text.parse::<f64>() {
        return seconds(number);
    }
    humantime::parse_duration(text)
        .ok()
        .filter(|duration| *duration <= MAX_DURATION)
}

/// The longest duration a setting may give: longer ones would overflow the clock's
/// arithmetic (an `Instant` plus them), and no interval or timeout means a century.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A number of seconds as a duration, when it is one from 0 to [`MAX_DURATION`].
pub fn seconds(number: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(number)
        .ok()
        .filter(|duration| *duration <= MAX_DURATION)
}

/// A duration as people write it in the settings: "90s", "1h 30m".
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_string();
    }
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests;
