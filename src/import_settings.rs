//! `autoscalebot import-settings autoscale_settings.py`: turns an autoscalebot 2.1 settings
//! module (or Django's `settings.py` with `AUTOSCALE_` names) into this version's TOML.
//!
//! Each top-level `NAME = literal` of a 2.1 setting becomes `name = value`; 2.1's notification
//! classes become backend names. Everything else is named line by line, with why: code
//! (imports, calls, expressions, blocks), names that are not 2.1's, values no setting takes.
//! The API key is never written (nor shown): the file goes into the app's repository, so the
//! key stays a config var. The result is loaded as `check` would before it is handed back.
//!
//! It reads the module as text and never runs it.

mod python;

use crate::settings::{self, setting_for_2_1_name};
use python::{Kind, Value};
use std::collections::HashMap;

/// What the import made: the TOML file, and what the user should read.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub toml: String,
    /// In the order of the module's lines.
    pub notes: Vec<Note>,
    /// Problems `check` would report with the file, each as it would word them.
    pub problems: Vec<String>,
}

/// Something about lines `first_line..=last_line` of the module.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub first_line: usize,
    pub last_line: usize,
    pub text: String,
    /// The lines were not carried over: the TOML lacks something the module said.
    pub dropped: bool,
}

impl Imported {
    /// How many notes are about something not carried over.
    pub fn dropped(&self) -> usize {
        self.notes.iter().filter(|note| note.dropped).count()
    }

    /// The notes as the command prints them: `FILE:LINE: …`, one a line.
    pub fn note_lines(&self, file: &str) -> Vec<String> {
        self.notes
            .iter()
            .map(|note| {
                let lines = if note.first_line == note.last_line {
                    note.first_line.to_string()
                } else {
                    format!("{}-{}", note.first_line, note.last_line)
                };
                format!("{file}:{lines}: {}", note.text)
            })
            .collect()
    }
}

/// 2.1's notification classes (the last part of the dotted path) and this version's names.
const BACKENDS_2_1: &[(&str, &str)] = &[
    ("ConsoleBackend", "console"),
    ("LoggerBackend", "log"),
    ("TestBackend", "test"),
];

/// Settings whose 2.1 `None` means "off", as leaving them out does now.
const NONE_IS_DEFAULT: &[&str] = &[
    "notify_if_scale_diff_exceeds_threshold",
    "notify_if_scale_diff_exceeds_period_in_minutes",
];

/// One setting carried over: its line in the module and its TOML value.
struct Carried {
    setting: String,
    value: String,
    line: usize,
}

/// Converts the module's text; `name` is how the TOML's header names the module.
pub fn import(source: &str, name: &str) -> Imported {
    let mut notes = Vec::new();
    let mut carried: Vec<Carried> = Vec::new();
    // Settings whose value the user will give some other way (a config var): `check`'s
    // complaint that they are missing is no news.
    let mut given_elsewhere: Vec<String> = Vec::new();
    let mut env_variables: Vec<String> = Vec::new();
    for statement in python::statements(source) {
        let (first_line, last_line) = (statement.first_line, statement.last_line);
        let mut note = |text: String, dropped: bool| {
            notes.push(Note {
                first_line,
                last_line,
                text,
                dropped,
            })
        };
        let (variable, value) = match statement.kind {
            Kind::Other { head, why } => {
                note(format!("{head}: not carried over: {why}"), true);
                continue;
            }
            Kind::Assign { name, value } => (name, value),
        };
        let Some(setting) = setting_for_2_1_name(&variable) else {
            note(
                format!("{variable} = …: not carried over: not a setting of autoscalebot 2.1 (docs/migrating-from-2.1.md lists them)"),
                true,
            );
            continue;
        };
        let head = format!("{variable} = …");
        let converted = convert(&setting, &value);
        for (text, dropped) in converted.notes {
            let text = if dropped {
                format!("{head}: not carried over: {text}")
            } else {
                format!("{head}: {text}")
            };
            note(text, dropped);
        }
        if converted.given_elsewhere {
            given_elsewhere.push(setting.clone());
        }
        env_variables.extend(converted.env_variable);
        let Some(value) = converted.toml else {
            continue;
        };
        if let Some(at) = carried.iter().position(|c| c.setting == setting) {
            let earlier = carried.remove(at);
            notes.push(Note {
                first_line: earlier.line,
                last_line: earlier.line,
                text: format!("{setting}: replaced by line {first_line}, as in Python"),
                dropped: false,
            });
        }
        carried.push(Carried {
            setting,
            value,
            line: first_line,
        });
    }
    let schedule = carried
        .iter()
        .find(|c| c.setting.ends_with("_dynos") && c.value.starts_with('{'));
    if let (Some(schedule), false) = (schedule, carried.iter().any(|c| c.setting == "time_zone")) {
        notes.push(Note {
            first_line: schedule.line,
            last_line: schedule.line,
            text: "time_zone: not set, so the time-of-day tables are read in UTC; 2.1 read them in the process's local time (UTC on Heroku): add time_zone = \"America/Vancouver\" (your zone) if you meant another".into(),
            dropped: false,
        });
    }
    notes.sort_by_key(|note| (note.first_line, note.last_line));
    let mut toml = format!(
        "# Made by `autoscalebot import-settings` from {name} (autoscalebot 2.1).\n# Check it with `autoscalebot check --settings FILE`; docs/settings.md lists every setting.\n"
    );
    for c in &carried {
        toml.push_str(&format!("{} = {}\n", c.setting, c.value));
    }
    let problems = problems(&toml, &env_variables, &given_elsewhere);
    Imported {
        toml,
        notes,
        problems,
    }
}

/// What `check` would say of the file, on a dyno whose config vars hold the key and the
/// variables the file names.
fn problems(toml: &str, env_variables: &[String], given_elsewhere: &[String]) -> Vec<String> {
    let mut env: HashMap<String, String> = env_variables
        .iter()
        .map(|name| (name.clone(), "set-as-a-config-var".to_string()))
        .collect();
    env.insert("HEROKU_API_KEY".into(), "set-as-a-config-var".into());
    match settings::from_toml_str(toml, &env) {
        Ok(_) => Vec::new(),
        Err(error) => error
            .problems
            .iter()
            .filter(|problem| !given_elsewhere.contains(&problem.key))
            .map(ToString::to_string)
            .collect(),
    }
}

/// What one 2.1 value becomes.
#[derive(Default)]
struct Converted {
    /// The setting's TOML value, if one is written.
    toml: Option<String>,
    /// What to tell: (text, whether something was left out).
    notes: Vec<(String, bool)>,
    /// The environment variable a `"env:NAME"` value names.
    env_variable: Option<String>,
    /// The value is read from the environment: the user gives it as a config var.
    given_elsewhere: bool,
}

impl Converted {
    fn value(toml: String) -> Self {
        Converted {
            toml: Some(toml),
            ..Converted::default()
        }
    }

    fn note(text: impl Into<String>) -> Self {
        Converted {
            notes: vec![(text.into(), false)],
            ..Converted::default()
        }
    }

    fn left_out(why: impl Into<String>) -> Self {
        Converted {
            notes: vec![(why.into(), true)],
            ..Converted::default()
        }
    }
}

fn convert(setting: &str, value: &Value) -> Converted {
    if setting == "heroku_api_key" {
        return api_key(value);
    }
    match value {
        Value::None if NONE_IS_DEFAULT.contains(&setting) => {
            Converted::note("None: left out, which is the same (off)")
        }
        Value::None => Converted::note(format!("None: left out, so {setting} keeps its default")),
        Value::Env { variable, .. } => {
            let upper = setting.to_ascii_uppercase();
            Converted {
                given_elsewhere: true,
                ..Converted::left_out(format!(
                    "read from the environment variable {variable} when Python runs: set the config var AUTOSCALE_{upper} instead (heroku config:set AUTOSCALE_{upper}=…)"
                ))
            }
        }
        _ if setting == "notification_backends" => backends(value),
        _ => match toml_value(value) {
            Ok(toml) => Converted::value(toml),
            Err(why) => Converted::left_out(why),
        },
    }
}

/// The key is never written to the file, and never shown.
fn api_key(value: &Value) -> Converted {
    match value {
        Value::Env { variable, default } => {
            let default_note = if default.is_some() {
                "; its default in the module is not carried over (the worker has no default key)"
            } else {
                ""
            };
            if variable == "HEROKU_API_KEY" {
                Converted::note(format!(
                    "read from HEROKU_API_KEY, which the worker reads by itself: nothing to write{default_note}"
                ))
            } else {
                Converted {
                    toml: Some(format!("\"env:{variable}\"")),
                    env_variable: Some(variable.clone()),
                    ..Converted::note(format!(
                        "read from the config var {variable}, as heroku_api_key = \"env:{variable}\"{default_note}"
                    ))
                }
            }
        }
        Value::None => Converted::note("None: left out; set the config var HEROKU_API_KEY"),
        _ => Converted::note(
            "the key is not written to the file (it goes into your repository) and not shown: set it as a config var, heroku config:set HEROKU_API_KEY=… (a long-lived one from heroku authorizations:create)",
        ),
    }
}

/// 2.1's notification classes as backend names; the ones with no counterpart are left out.
fn backends(value: &Value) -> Converted {
    let items = match value {
        Value::List(items) | Value::Tuple(items) => items,
        _ => return Converted::left_out("notification_backends takes a list of 2.1's backend classes, such as ['autoscalebot.backends.notification.ConsoleBackend']"),
    };
    let mut names = Vec::new();
    let mut converted = Converted::default();
    for item in items {
        let Value::Str(path) = item else {
            converted
                .notes
                .push(("an item that is not a string".to_string(), true));
            continue;
        };
        let class = path.rsplit('.').next().unwrap_or(path);
        match BACKENDS_2_1.iter().find(|(old, _)| *old == class) {
            Some((_, new)) => {
                if !names.contains(new) {
                    names.push(*new)
                }
            }
            None if class == "DjangoEmailBackend" => converted.notes.push((
                "DjangoEmailBackend mailed Django's ADMINS; add \"email\" to notification_backends with an [email] table (smtp_url, from, to), see docs/notifications.md".to_string(),
                true,
            )),
            None => converted.notes.push((
                format!("{path:?} is not one of 2.1's backends (ConsoleBackend, LoggerBackend, TestBackend, DjangoEmailBackend)"),
                true,
            )),
        }
    }
    converted.toml = Some(format!(
        "[{}]",
        names
            .iter()
            .map(|name| format!("{name:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    converted
}

/// A literal as a TOML value: lists and tuples as arrays, dicts with string keys as inline
/// tables.
fn toml_value(value: &Value) -> Result<String, String> {
    Ok(match value {
        Value::Int(n) => n.to_string(),
        Value::Float(f) => toml::Value::Float(*f).to_string(),
        Value::Str(text) => toml::Value::String(text.clone()).to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::None => return Err("None inside a list or a dict: TOML has no None".into()),
        Value::List(items) | Value::Tuple(items) => {
            let items: Result<Vec<String>, String> = items.iter().map(toml_value).collect();
            format!("[{}]", items?.join(", "))
        }
        Value::Dict(entries) => {
            let mut shown = Vec::new();
            for (key, entry) in entries {
                let Value::Str(key) = key else {
                    return Err(
                        "a dict whose keys are not strings: tables need keys such as \"9:00\""
                            .into(),
                    );
                };
                shown.push(format!(
                    "{} = {}",
                    toml::Value::String(key.clone()),
                    toml_value(entry)?
                ));
            }
            if shown.is_empty() {
                "{}".to_string()
            } else {
                format!("{{ {} }}", shown.join(", "))
            }
        }
        Value::Env { variable, .. } => {
            return Err(format!(
                "reads the environment variable {variable} inside a list or a dict"
            ))
        }
    })
}

#[cfg(test)]
mod tests;
