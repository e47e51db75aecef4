//! autoscalebot 2.1's setting names (seed 001), upper case as its Python module wrote them,
//! for `import-settings` and for the hint to a settings file that still uses them:
//! `MAX_DYNOS` (or Django's `AUTOSCALE_MAX_DYNOS`) is refused with "did you mean max_dynos?",
//! the name the settings toolkit finds, and this module's note on why.
//!
//! Only names: what each value means is read by each part like any other.

/// Every setting autoscalebot 2.1 read, and Django's `TIME_ZONE`, which it followed.
pub const SETTINGS_2_1: &[&str] = &[
    "HEROKU_APP_NAME",
    "HEROKU_API_KEY",
    "HEARTBEAT_INTERVAL_IN_SECONDS",
    "HEARTBEAT_URL",
    "MAX_RESPONSE_TIME_IN_MS",
    "MIN_RESPONSE_TIME_IN_MS",
    "NUMBER_OF_FAILS_TO_SCALE_UP_AFTER",
    "NUMBER_OF_PASSES_TO_SCALE_DOWN_AFTER",
    "MAX_DYNOS",
    "MIN_DYNOS",
    "INCREMENT",
    "NOTIFICATION_BACKENDS",
    "NOTIFY_IF_SCALE_DIFF_EXCEEDS_THRESHOLD",
    "NOTIFY_IF_SCALE_DIFF_EXCEEDS_PERIOD_IN_MINUTES",
    "NOTIFY_IF_NEEDS_EXCEED_MAX",
    "NOTIFY_IF_NEEDS_BELOW_MIN",
    "NOTIFY_ON_SCALE_FAILS",
    "NOTIFY_ON_EVERY_SCALE",
    "NOTIFY_ON_EVERY_PING",
    "TIME_ZONE",
];

/// The prefix Django's `settings.py` put before each 2.1 name.
pub const DJANGO_PREFIX: &str = "AUTOSCALE_";

/// The setting a 2.1 name stands for: `MAX_DYNOS` and `AUTOSCALE_MAX_DYNOS` → `max_dynos`.
/// `None` for a name that is not 2.1's.
pub fn setting_for_2_1_name(name: &str) -> Option<String> {
    let bare = name.strip_prefix(DJANGO_PREFIX).unwrap_or(name);
    SETTINGS_2_1
        .contains(&bare)
        .then(|| bare.to_ascii_lowercase())
}

/// Why an unknown key that is a known one in upper case was refused, when it is a 2.1 name:
/// the settings toolkit's hint adds these words to the name to write instead.
pub(super) fn case_note(key: &str) -> Option<&'static str> {
    setting_for_2_1_name(key).map(|_| {
        "autoscalebot 2.1 wrote its settings in upper case; now they are lower case, and `autoscalebot import-settings autoscale_settings.py` converts a 2.1 settings module"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::all_keys;

    #[test]
    fn a_2_1_name_gets_the_importer_and_another_name_nothing() {
        assert!(case_note("HEROKU_APP_NAME")
            .unwrap()
            .contains("import-settings"));
        assert!(case_note("AUTOSCALE_MAX_DYNOS").is_some());
        assert_eq!(case_note("LOG_FORMAT"), None);
        assert_eq!(case_note("max_dynos"), None);
    }

    #[test]
    fn every_2_1_name_maps_to_a_key_of_today() {
        assert_eq!(
            setting_for_2_1_name("MAX_DYNOS").as_deref(),
            Some("max_dynos")
        );
        assert_eq!(
            setting_for_2_1_name("AUTOSCALE_TIME_ZONE").as_deref(),
            Some("time_zone")
        );
        assert_eq!(setting_for_2_1_name("DEBUG"), None);
        assert_eq!(setting_for_2_1_name("max_dynos"), None);
        let keys = all_keys();
        for name in SETTINGS_2_1 {
            let setting = setting_for_2_1_name(name).unwrap();
            assert!(
                keys.contains(&setting),
                "{name} -> {setting} is no key today"
            );
        }
    }
}
