//! Generated input for the settings loader: mutations of real settings files and variables
//! never panic, a refusal names each problem in bounded words, and a secret written intact
//! never shows in it. The million-input run is `bench/parsers.rs`.

use super::*;
use crate::generated_input::seeds::SETTINGS;
use crate::generated_input::strategy::mutated;
use proptest::prelude::*;

const SECRET: &str = "super-secret-key-123";

const FILES: &[&str] = SETTINGS;

fn bounded_refusal(text: &str, error: &SettingsError) {
    let message = error.to_string();
    assert!(
        message.len() <= 2000 + 40 * text.len(),
        "{} bytes of refusal for {} bytes of settings",
        message.len(),
        text.len()
    );
    let intact = text
        .lines()
        .any(|line| line == format!("heroku_api_key = \"{SECRET}\""));
    if intact {
        assert!(!message.contains(SECRET), "{message}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn a_mutated_file_loads_or_is_refused_in_bounded_words(text in mutated(FILES)) {
        if let Err(error) = from_toml_str(&text, &HashMap::new()) {
            bounded_refusal(&text, &error);
        }
    }

    #[test]
    fn mutated_variables_load_or_are_refused(value in mutated(&["5", "{\"0:00\" = 2}", "PT3H", "env:X", "true"]), key in 0..5usize) {
        let name = ["AUTOSCALE_MAX_DYNOS", "AUTOSCALE_DOWNTIME", "AUTOSCALE_HTTP_PASSWORD", "AUTOSCALE_SIGNAL", "AUTOSCALE_APPS"][key];
        let env: HashMap<String, String> = [(name.to_string(), value)].into_iter().collect();
        if let Err(error) = from_toml_str(FILES[0], &env) {
            bounded_refusal(FILES[0], &error);
        }
    }
}

#[test]
fn durations_past_a_century_are_refused_not_a_panic() {
    for line in [
        "heartbeat_interval_in_seconds = 127195252338293051540.5",
        "heartbeat_interval_in_seconds = 1e300",
        "notify_if_scale_diff_exceeds_period_in_minutes = 1e300",
        "scale_up_cooldown = 99999999999999",
        "router_window = 1e19",
        "idle_after = \"9999999999999999s\"",
    ] {
        let text = format!("{}{line}\n", FILES[0]);
        let error = from_toml_str(&text, &HashMap::new()).expect_err(line);
        let key = line.split(' ').next().unwrap();
        assert!(
            error.problems.iter().any(|problem| problem.key == key),
            "{line}: {error}"
        );
    }
}

#[test]
fn an_unknown_key_never_echoes_its_text() {
    let text = format!("{}heroku_api_ky = \"{SECRET}-2\"\nretires = 2\n", FILES[0]);
    let error = from_toml_str(&text, &HashMap::new()).unwrap_err();
    let message = error.to_string();
    assert!(!message.contains(&format!("{SECRET}-2")), "{message}");
    assert!(message.contains("heroku_api_ky = \"***\""), "{message}");
    assert!(message.contains("retires = 2"), "{message}");
}
