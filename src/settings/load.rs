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

/// Parser messages can quote a line of the file, which may hold a key: keep only the first
/// line of the message and cut anything after "=".
fn scrub(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    match first.find('=') {
        Some(at) => format!("{}…", &first[..at]),
        None => first.to_string(),
    }
}
