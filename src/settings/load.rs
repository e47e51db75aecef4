//! The first stage's loading: the `config` crate merges the file and the `AUTOSCALE_*`
//! variables into one table of raw values, and each variable is remembered as the origin of
//! the setting it sets. What a setting means belongs to the part that owns it.

use super::{SettingsError, ENV_DOWNTIME};
use autoscalebot_backends::settings::Table;
use config::Value;
use std::collections::HashMap;

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
    // Keys of a whole document in AUTOSCALE_SETTINGS come from it, unless a variable of
    // their own sets them.
    if let Some(document) = env.get(ENV_SETTINGS).and_then(|text| {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .ok()?
            .try_deserialize::<config::Map<String, Value>>()
            .ok()
    }) {
        let mut keys = Vec::new();
        for (key, value) in &document {
            keys.push(key.clone());
            if let Ok(table) = value.clone().into_table() {
                keys.extend(table.keys().map(|inner| format!("{key}.{inner}")));
            }
        }
        for key in keys {
            origins
                .entry(key)
                .or_insert_with(|| ENV_SETTINGS.to_string());
        }
    }
    if env.contains_key("HEROKU_API_KEY") && !origins.contains_key("heroku_api_key") {
        origins.insert("heroku_api_key".into(), "HEROKU_API_KEY".into());
    }
    origins
}

/// Merges the file and the environment into one raw table of values.
pub(super) fn raw_table<S>(
    file: Option<S>,
    env: &HashMap<String, String>,
) -> Result<Table, SettingsError>
where
    S: config::Source + Send + Sync + 'static,
{
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(file);
    }
    // A whole settings document in one config var, over the file, under single variables.
    if let Some(text) = env.get(ENV_SETTINGS) {
        parsed_toml(ENV_SETTINGS, text, "a TOML document of settings")?;
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    // A variable holding a table or a list (`AUTOSCALE_MAX_DYNOS='{"0:00" = 2, "9:00" = 5}'`,
    // `AUTOSCALE_APPS='[{heroku_app_name = "a"}]'`) is read as TOML under its key, so tables,
    // `[[apps]]` and lists can be given as config vars alone.
    let mut structured = String::new();
    for (name, value) in env {
        let Some(key) = structured_key(name, value) else {
            continue;
        };
        let line = format!("{key} = {}\n", value.trim());
        parsed_toml(
            name,
            &line,
            "a TOML inline table such as {\"0:00\" = 2, \"9:00\" = 5} or a list such as [\"email\", \"log\"]",
        )?;
        structured.push_str(&line);
    }
    if !structured.is_empty() {
        builder = builder.add_source(config::File::from_str(
            &structured,
            config::FileFormat::Toml,
        ));
    }
    let mut prefixed: config::Map<String, String> = env
        .iter()
        // AUTOSCALE_DOWNTIME adds windows to the file's list, so it is read on its own.
        .filter(|(name, _)| {
            name.starts_with("AUTOSCALE_") && *name != ENV_DOWNTIME && *name != ENV_SETTINGS
        })
        .filter(|(name, value)| structured_key(name, value).is_none())
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
            // Values stay text: each part parses them as its setting expects, so an API key
            // or a header value such as "00123" keeps its leading zeros, and lists are split
            // on commas by `Raw::string_list`.
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

/// The config var that holds a whole TOML settings document.
pub const ENV_SETTINGS: &str = "AUTOSCALE_SETTINGS";

/// The dotted key an `AUTOSCALE_*` variable sets when its value is a TOML table or list
/// (`AUTOSCALE_EMAIL__RECIPIENTS` → `email.recipients`); `None` for plain text values.
fn structured_key(name: &str, value: &str) -> Option<String> {
    if name == ENV_DOWNTIME || name == ENV_SETTINGS {
        return None;
    }
    let key = name.strip_prefix("AUTOSCALE_")?;
    let value = value.trim();
    let structured = (value.starts_with('{') && value.ends_with('}'))
        || (value.starts_with('[') && value.ends_with(']'));
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (structured && plain).then(|| key.to_lowercase().replace("__", "."))
}

/// Checks that `text` (from the variable `name`) is TOML, so that a mistake names the
/// variable rather than a merged table.
fn parsed_toml(name: &str, text: &str, expected: &str) -> Result<(), SettingsError> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map(|_| ())
        .map_err(|error| {
            SettingsError::one(
                name,
                None,
                format!("{expected} ({})", scrub(&error.to_string())),
            )
        })
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
