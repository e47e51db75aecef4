//! Loading and validation: defaults, env overrides, and a clear problem for each bad value.

use super::*;
use crate::downtime::Source;
use crate::schedule::Schedule;
use autoscalebot_backends::activator::Endpoint;
use autoscalebot_backends::notify::{EmailConfig, WebhookConfig};
use std::time::Duration;

const MINIMAL: &str = r#"
heroku_app_name = "my-app"
heroku_api_key = "super-secret-key-123"
"#;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A server on `$PORT` listens on every interface, so it needs a password.
const HTTP_PASSWORD: (&str, &str) = ("AUTOSCALE_HTTP_PASSWORD", "pages-secret-5");

fn load_ok(text: &str, vars: &[(&str, &str)]) -> AppSettings {
    from_toml_str(text, &env(vars))
        .unwrap_or_else(|error| panic!("{error}"))
        .apps
        .remove(0)
}

fn load_err(text: &str, vars: &[(&str, &str)]) -> SettingsError {
    match from_toml_str(text, &env(vars)) {
        Ok(_) => panic!("settings should have been refused:\n{text}"),
        Err(error) => error,
    }
}

fn problem_for<'a>(error: &'a SettingsError, key: &str) -> &'a Problem {
    error
        .problems
        .iter()
        .find(|problem| problem.key == key)
        .unwrap_or_else(|| panic!("no problem names {key}: {error}"))
}

#[test]
fn every_default_of_seed_001() {
    let app = load_ok(MINIMAL, &[]);
    assert_eq!(app.heartbeat.interval, Duration::from_secs(30));
    assert_eq!(
        app.heartbeat.url.as_str(),
        "https://my-app.herokuapp.com/autoscalebot/heartbeat/"
    );
    assert_eq!(app.thresholds.max_response_time_ms, 1000);
    assert_eq!(app.thresholds.min_response_time_ms, 200);
    assert_eq!(app.thresholds.number_of_fails_to_scale_up_after, 3);
    assert_eq!(app.thresholds.number_of_passes_to_scale_down_after, 5);
    assert_eq!(app.thresholds.max_dynos, Schedule::Fixed(3));
    assert_eq!(app.thresholds.min_dynos, Schedule::Fixed(1));
    assert_eq!(app.thresholds.increment, 1);
    assert!(app.notify.backends.is_empty());
    assert_eq!(app.notify.if_scale_diff_exceeds_threshold, None);
    assert_eq!(app.notify.if_scale_diff_exceeds_period, None);
    assert!(app.notify.if_needs_exceed_max);
    assert!(!app.notify.if_needs_below_min);
    assert!(!app.notify.on_scale_fails);
    assert!(!app.notify.on_every_scale);
    assert!(!app.notify.on_every_ping);
    assert_eq!(app.thresholds.time_zone, chrono_tz::UTC);
    assert_eq!(
        app.heroku().unwrap().api_url.as_str(),
        "https://api.heroku.com/"
    );
    assert_eq!(app.process_type, "web");
    assert_eq!(app.thresholds.scale_up_cooldown, Duration::ZERO);
    assert_eq!(app.thresholds.scale_down_cooldown, Duration::ZERO);
    assert_eq!(app.notify.repeat_after, Duration::from_secs(3600));
    assert_eq!(app.heartbeat.timeout, Duration::from_secs(5));
}

#[test]
fn fractional_intervals_and_absolute_heartbeat_urls() {
    let app = load_ok(
        &format!(
            "{MINIMAL}\nheartbeat_interval_in_seconds = 0.5\nheartbeat_url = \"http://127.0.0.1:9/hb\""
        ),
        &[],
    );
    assert_eq!(app.heartbeat.interval, Duration::from_millis(500));
    assert_eq!(app.heartbeat.url.as_str(), "http://127.0.0.1:9/hb");
}

#[test]
fn a_relative_heartbeat_url_resolves_against_app_url() {
    let app = load_ok(
        &format!("{MINIMAL}\napp_url = \"http://127.0.0.1:8080\"\nheartbeat_url = \"/health\""),
        &[],
    );
    assert_eq!(app.heartbeat.url.as_str(), "http://127.0.0.1:8080/health");
}

#[test]
fn environment_overrides_the_file() {
    let app = load_ok(
        &format!("{MINIMAL}\nmax_dynos = 3\nnotify_on_every_scale = false"),
        &[
            ("AUTOSCALE_MAX_DYNOS", "5"),
            ("AUTOSCALE_NOTIFY_ON_EVERY_SCALE", "true"),
            ("AUTOSCALE_HEARTBEAT_INTERVAL_IN_SECONDS", "0.2"),
            ("AUTOSCALE_NOTIFICATION_BACKENDS", "console,log"),
            ("AUTOSCALE_TIME_ZONE", "Europe/London"),
            ("UNRELATED", "x"),
        ],
    );
    assert_eq!(app.thresholds.max_dynos, Schedule::Fixed(5));
    assert!(app.notify.on_every_scale);
    assert_eq!(app.heartbeat.interval, Duration::from_millis(200));
    assert_eq!(app.notify.backends, vec!["console", "log"]);
    assert_eq!(app.thresholds.time_zone, chrono_tz::Europe::London);
}

#[test]
fn heroku_api_key_from_the_environment() {
    let text = "heroku_app_name = \"my-app\"";
    let app = load_ok(text, &[("HEROKU_API_KEY", "from-heroku-cli")]);
    assert_eq!(app.heroku().unwrap().api_key.expose(), "from-heroku-cli");
    let app = load_ok(
        text,
        &[
            ("HEROKU_API_KEY", "from-heroku-cli"),
            ("AUTOSCALE_HEROKU_API_KEY", "from-autoscale"),
        ],
    );
    assert_eq!(app.heroku().unwrap().api_key.expose(), "from-autoscale");
    // A numeric-looking key stays text, leading zeros and all.
    let app = load_ok(text, &[("HEROKU_API_KEY", "0012345")]);
    assert_eq!(app.heroku().unwrap().api_key.expose(), "0012345");
    let app = load_ok(text, &[("AUTOSCALE_HEROKU_API_KEY", "true")]);
    assert_eq!(app.heroku().unwrap().api_key.expose(), "true");
}

#[test]
fn schedules_in_toml() {
    let app = load_ok(
        &format!(
            "{MINIMAL}\nmax_dynos = {{ \"0:00\" = 2, \"9:00\" = 5, \"17:00\" = 2 }}\nmin_dynos = {{ \"0:00\" = 0, \"9:30\" = 2 }}"
        ),
        &[],
    );
    assert_eq!(app.thresholds.max_dynos.at_minute(9 * 60), 5);
    assert_eq!(app.thresholds.min_dynos.at_minute(9 * 60), 0);
    assert_eq!(app.thresholds.min_dynos.at_minute(9 * 60 + 30), 2);
}

#[test]
fn an_unknown_key_is_named_with_a_suggestion() {
    let error = load_err(&format!("{MINIMAL}\nmax_dynoz = 5"), &[]);
    let problem = problem_for(&error, "max_dynoz");
    assert_eq!(problem.value.as_deref(), Some("5"));
    assert!(
        problem.expected.contains("did you mean max_dynos"),
        "{problem}"
    );
}

#[test]
fn an_unknown_environment_variable_is_named() {
    let error = load_err(MINIMAL, &[("AUTOSCALE_MAX_DYNOZ", "5")]);
    let problem = problem_for(&error, "max_dynoz");
    assert_eq!(problem.origin.as_deref(), Some("AUTOSCALE_MAX_DYNOZ"));
}

#[test]
fn wrong_types_name_key_value_and_expectation() {
    let error = load_err(
        &format!("{MINIMAL}\nmax_dynos = \"lots\"\nnotify_on_every_scale = \"sometimes\"\nincrement = 1.5"),
        &[],
    );
    assert_eq!(error.problems.len(), 3, "{error}");
    let problem = problem_for(&error, "max_dynos");
    assert_eq!(problem.value.as_deref(), Some("\"lots\""));
    assert!(problem.expected.contains("whole number"));
    assert!(problem_for(&error, "notify_on_every_scale")
        .expected
        .contains("true or false"));
    assert!(problem_for(&error, "increment")
        .expected
        .contains("whole number"));
}

#[test]
fn min_above_max_at_any_time_of_day_is_refused() {
    let error = load_err(
        &format!(
            "{MINIMAL}\nmax_dynos = {{ \"0:00\" = 2, \"9:00\" = 5, \"17:00\" = 2 }}\nmin_dynos = {{ \"0:00\" = 1, \"8:00\" = 3 }}"
        ),
        &[],
    );
    let problem = problem_for(&error, "min_dynos");
    assert!(problem.expected.contains("at 8:00"), "{problem}");
    let error = load_err(&format!("{MINIMAL}\nmax_dynos = 2\nmin_dynos = 4"), &[]);
    assert!(problem_for(&error, "min_dynos")
        .expected
        .contains("max_dynos is 2"));
}

#[test]
fn min_above_max_on_a_weekly_schedule_names_the_day_and_time() {
    let error = load_err(
        &format!(
            "{MINIMAL}\nmax_dynos = {{ mon-fri = 6, sat-sun = {{ \"0:00\" = 2, \"9:00\" = 3 }} }}\nmin_dynos = {{ \"0:00\" = 1, \"9:00\" = 4 }}"
        ),
        &[],
    );
    let problem = problem_for(&error, "min_dynos");
    assert!(problem.expected.contains("at Sat 9:00"), "{problem}");
    assert!(!problem.expected.contains("129:00"), "{problem}");
}

// ---- The policy (settings/policy.rs) ----

#[test]
fn the_policy_is_the_streaks_by_default_with_the_target_knobs_tuned() {
    let app = load_ok(MINIMAL, &[]);
    assert_eq!(app.thresholds.policy.kind, PolicyKind::Streaks);
    assert_eq!(app.thresholds.policy.target_utilisation, 0.9);
    assert_eq!(
        app.thresholds.policy.scale_down_delay,
        Duration::from_secs(180)
    );
    assert_eq!(app.thresholds.policy.dyno_concurrency, 4);
    assert!(matches!(
        app.engine_config().policy,
        crate::decision::PolicyConfig::Streaks(_)
    ));
    let rows = app.effective();
    let row = |key: &str| rows.iter().find(|(k, _)| *k == key).unwrap().1.clone();
    assert_eq!(row("policy"), "\"streaks\"");
    assert_eq!(row("target_utilisation"), "0.9");
    assert_eq!(row("scale_down_delay"), "\"3m\"");
    assert_eq!(row("dyno_concurrency"), "4");
}

#[test]
fn the_target_policy_and_its_knobs_are_read_from_the_file_and_the_environment() {
    let app = load_ok(
        &format!("{MINIMAL}\npolicy = \"target\"\ntarget_utilisation = 0.8\nscale_down_delay = \"5m\"\nmax_response_time_in_ms = 500"),
        &[("AUTOSCALE_DYNO_CONCURRENCY", "8")],
    );
    assert_eq!(app.thresholds.policy.kind, PolicyKind::Target);
    let crate::decision::PolicyConfig::Target(target) = app.engine_config().policy else {
        panic!("not the target policy");
    };
    assert_eq!(target.target_utilisation, 0.8);
    assert_eq!(target.scale_down_delay, Duration::from_secs(300));
    assert_eq!(target.dyno_concurrency, 8);
    assert_eq!(
        target.max_response_time_ms, 500,
        "the latency target is the max"
    );
}

#[test]
fn an_unknown_policy_is_refused_naming_the_key_the_value_its_origin_and_what_is_expected() {
    let error = load_err(&format!("{MINIMAL}\npolicy = \"magic\""), &[]);
    let problem = problem_for(&error, "policy");
    assert_eq!(problem.value.as_deref(), Some("\"magic\""));
    assert!(problem.expected.contains("\"streaks\""), "{problem}");
    assert!(problem.expected.contains("\"target\""), "{problem}");
    let error = load_err(MINIMAL, &[("AUTOSCALE_POLICY", "hpa")]);
    let problem = problem_for(&error, "policy");
    assert_eq!(
        problem.origin.as_deref(),
        Some("AUTOSCALE_POLICY"),
        "{problem}"
    );
}

#[test]
fn a_target_utilisation_outside_zero_to_one_is_refused() {
    for share in ["0", "-0.5", "1.2", "\"most\""] {
        let error = load_err(&format!("{MINIMAL}\ntarget_utilisation = {share}"), &[]);
        let problem = problem_for(&error, "target_utilisation");
        assert!(
            problem.expected.contains("above 0 and at most 1"),
            "{problem}"
        );
        assert!(problem.value.is_some(), "{problem}");
    }
    let app = load_ok(&format!("{MINIMAL}\ntarget_utilisation = 1"), &[]);
    assert_eq!(
        app.thresholds.policy.target_utilisation, 1.0,
        "1 is in (0, 1]"
    );
}

#[test]
fn a_scale_down_delay_that_is_not_a_duration_is_refused() {
    let error = load_err(&format!("{MINIMAL}\nscale_down_delay = \"soon\""), &[]);
    let problem = problem_for(&error, "scale_down_delay");
    assert_eq!(problem.value.as_deref(), Some("\"soon\""));
    assert!(problem.expected.contains("a duration"), "{problem}");
    let error = load_err(MINIMAL, &[("AUTOSCALE_DYNO_CONCURRENCY", "0")]);
    let problem = problem_for(&error, "dyno_concurrency");
    assert_eq!(
        problem.origin.as_deref(),
        Some("AUTOSCALE_DYNO_CONCURRENCY")
    );
}

#[test]
fn a_time_such_as_25_00_is_refused() {
    let error = load_err(&format!("{MINIMAL}\nmax_dynos = {{ \"25:00\" = 3 }}"), &[]);
    let problem = problem_for(&error, "max_dynos");
    assert!(
        problem.expected.contains("\"25:00\" is not a time of day"),
        "{problem}"
    );
}

#[test]
fn an_unknown_time_zone_is_refused() {
    let error = load_err(&format!("{MINIMAL}\ntime_zone = \"Mars/Olympus\""), &[]);
    let problem = problem_for(&error, "time_zone");
    assert_eq!(problem.value.as_deref(), Some("\"Mars/Olympus\""));
    assert!(problem.expected.contains("IANA"));
}

#[test]
fn zero_or_negative_intervals_and_increments_are_refused() {
    for (line, key) in [
        (
            "heartbeat_interval_in_seconds = 0",
            "heartbeat_interval_in_seconds",
        ),
        (
            "heartbeat_interval_in_seconds = -1",
            "heartbeat_interval_in_seconds",
        ),
        ("increment = 0", "increment"),
        ("increment = -2", "increment"),
        (
            "number_of_fails_to_scale_up_after = 0",
            "number_of_fails_to_scale_up_after",
        ),
        (
            "number_of_passes_to_scale_down_after = -5",
            "number_of_passes_to_scale_down_after",
        ),
        ("min_dynos = -1", "min_dynos"),
        ("scale_up_cooldown = \"soon\"", "scale_up_cooldown"),
    ] {
        let error = load_err(&format!("{MINIMAL}\n{line}"), &[]);
        problem_for(&error, key);
    }
}

#[test]
fn a_missing_app_name_or_key_is_refused() {
    let error = load_err("max_dynos = 3", &[]);
    assert!(problem_for(&error, "heroku_app_name").value.is_none());
    assert!(problem_for(&error, "heroku_api_key").value.is_none());
    assert!(error.to_string().contains("heroku_api_key is not set"));
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let error = load_err(
        "heroku_app_name = \"a\"\nheroku_api_key = \"k\"\nincrement = 0\ntime_zone = \"Nowhere\"\nmax_dynoz = 1\nheartbeat_url = \"ftp://x\"",
        &[],
    );
    assert_eq!(error.problems.len(), 4, "{error}");
}

#[test]
fn the_threshold_and_its_period_go_together() {
    let error = load_err(
        &format!("{MINIMAL}\nnotify_if_scale_diff_exceeds_threshold = 5"),
        &[],
    );
    problem_for(&error, "notify_if_scale_diff_exceeds_period_in_minutes");
}

#[test]
fn unknown_notification_backends_are_refused() {
    let error = load_err(
        &format!("{MINIMAL}\nnotification_backends = [\"pigeon\"]"),
        &[],
    );
    assert!(problem_for(&error, "notification_backends")
        .expected
        .contains("console"));
}

#[test]
fn the_api_key_never_appears_in_errors_or_effective_values() {
    let secret = "super-secret-key-123";
    let error = load_err(&format!("{MINIMAL}\nincrement = 0"), &[]);
    assert!(!error.to_string().contains(secret));
    // A key of the wrong type is shown as *** too.
    let error = load_err(
        "heroku_app_name = \"a\"\nheroku_api_key = [\"super-secret-key-123\"]",
        &[],
    );
    assert!(!error.to_string().contains(secret), "{error}");
    let app = load_ok(MINIMAL, &[]);
    let shown: String = app
        .effective()
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    assert!(!shown.contains(secret));
    assert!(shown.contains("heroku_api_key = \"***\""));
    assert!(!format!("{app:?}").contains(secret));
}

#[test]
fn a_toml_syntax_error_does_not_echo_the_line() {
    let error = load_err(
        "heroku_api_key = \"super-secret-key-123\nheroku_app_name = \"a\"",
        &[],
    );
    assert!(
        !error.to_string().contains("super-secret-key-123"),
        "{error}"
    );
    problem_for(&error, "--settings");
}

#[test]
fn a_file_that_is_not_toml_is_named_not_called_unset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "max_dynos = [\n").unwrap();
    let error = load(Some(&path), &HashMap::new()).unwrap_err();
    let problem = problem_for(&error, "--settings");
    let shown = problem.to_string();
    assert!(!shown.contains("is not set"), "{shown}");
    assert!(shown.contains("broken.toml"), "{shown}");
    assert!(shown.contains("expected a valid TOML file"), "{shown}");
}

#[test]
fn effective_lists_every_setting() {
    let app = load_ok(MINIMAL, &[]);
    let keys: Vec<&str> = app.effective().iter().map(|(key, _)| *key).collect();
    for key in [
        "heroku_app_name",
        "heroku_api_key",
        "heartbeat_interval_in_seconds",
        "heartbeat_url",
        "max_response_time_in_ms",
        "min_response_time_in_ms",
        "number_of_fails_to_scale_up_after",
        "number_of_passes_to_scale_down_after",
        "max_dynos",
        "min_dynos",
        "increment",
        "policy",
        "target_utilisation",
        "scale_down_delay",
        "dyno_concurrency",
        "notification_backends",
        "notify_if_scale_diff_exceeds_threshold",
        "notify_if_scale_diff_exceeds_period_in_minutes",
        "notify_if_needs_exceed_max",
        "notify_if_needs_below_min",
        "notify_on_scale_fails",
        "notify_on_every_scale",
        "notify_on_every_ping",
        "time_zone",
        "scale_up_cooldown",
        "scale_down_cooldown",
        "downtime",
        "downtime_file",
        "downtime_header",
        "downtime_dynos",
        "downtime_disable",
        "notify_on_downtime",
        "signal",
        "router_window",
        "http_port",
        "log_drain_password",
        "log_format",
    ] {
        assert!(keys.contains(&key), "{key} missing from check output");
    }
}

#[test]
fn settings_example_is_valid_and_names_every_setting() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let app = load(Some(&path), &HashMap::new())
        .unwrap_or_else(|error| panic!("settings.example.toml: {error}"))
        .apps
        .remove(0);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/settings.md"))
            .unwrap();
    for (key, _) in app.effective() {
        assert!(
            text.contains(&format!("{key} =")),
            "settings.example.toml lacks {key}"
        );
        assert!(
            readme.contains(&format!("`{key}`")),
            "docs/settings.md lacks `{key}`"
        );
    }
}

// ---- the [email] and [webhook] tables ----

const EMAIL: &str = r#"
notification_backends = ["email", "webhook"]

[email]
smtp_url = "smtp://ops:smtp-pass-456@mail.example.com:587?tls=required"
from = "autoscalebot <bot@example.com>"
to = ["ops@example.com", "Lead <lead@example.com>"]

[webhook]
url = "https://hooks.example.com/services/T0/B0/hook-path-token"
headers = { Authorization = "Bearer hook-header-789", X-Team = "ops" }
body = '{"text": "{app}: {message}"}'
timeout = "3s"
"#;

#[test]
fn email_and_webhook_tables_are_read() {
    let app = load_ok(&format!("{MINIMAL}{EMAIL}"), &[]);
    let email = app.notifiers.get::<EmailConfig>().unwrap();
    assert_eq!(
        email.smtp_url.expose(),
        "smtp://ops:smtp-pass-456@mail.example.com:587?tls=required"
    );
    assert_eq!(email.from.email.to_string(), "bot@example.com");
    assert_eq!(email.to.len(), 2);
    assert_eq!(email.policy.timeout, Duration::from_secs(10));
    assert_eq!(email.policy.give_up_after, Duration::from_secs(600));
    let hook = app.notifiers.get::<WebhookConfig>().unwrap();
    assert_eq!(hook.method, reqwest::Method::POST);
    let names: Vec<&str> = hook.headers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        vec!["authorization", "x-team"],
        "header names are case-insensitive"
    );
    assert_eq!(
        hook.body.as_ref().unwrap().source(),
        r#"{"text": "{app}: {message}"}"#
    );
    assert_eq!(hook.policy.timeout, Duration::from_secs(3));
}

#[test]
fn the_environment_reaches_the_tables() {
    let app = load_ok(
        &format!("{MINIMAL}{EMAIL}"),
        &[
            (
                "AUTOSCALE_EMAIL__SMTP_URL",
                "smtps://u:env-pass@smtp.example.org",
            ),
            (
                "AUTOSCALE_EMAIL__TO",
                "a@example.com,b@example.com,c@example.com",
            ),
            ("AUTOSCALE_WEBHOOK__URL", "http://127.0.0.1:9/hook"),
            ("AUTOSCALE_WEBHOOK__METHOD", "put"),
            ("AUTOSCALE_WEBHOOK__HEADERS__X_API_KEY", "env-header-secret"),
            (
                "AUTOSCALE_WEBHOOK__HEADERS__AUTHORIZATION",
                "Bearer from-env",
            ),
        ],
    );
    let email = app.notifiers.get::<EmailConfig>().unwrap();
    assert_eq!(
        email.smtp_url.expose(),
        "smtps://u:env-pass@smtp.example.org"
    );
    assert_eq!(email.to.len(), 3);
    let hook = app.notifiers.get::<WebhookConfig>().unwrap();
    assert_eq!(hook.url.as_str(), "http://127.0.0.1:9/hook");
    assert_eq!(hook.method, reqwest::Method::PUT);
    let header = |wanted: &str| {
        hook.headers
            .iter()
            .filter(|(name, _)| name.as_str() == wanted)
            .map(|(_, value)| value.expose().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(header("x-api-key"), vec!["env-header-secret"]);
    // The file's Authorization and the environment's AUTHORIZATION are one header.
    assert_eq!(header("authorization"), vec!["Bearer from-env"]);

    // The tables can come from the environment alone.
    let app = load_ok(
        MINIMAL,
        &[
            ("AUTOSCALE_NOTIFICATION_BACKENDS", "email"),
            ("AUTOSCALE_EMAIL__SMTP_URL", "smtp://127.0.0.1:2525"),
            ("AUTOSCALE_EMAIL__FROM", "bot@example.com"),
            ("AUTOSCALE_EMAIL__TO", "ops@example.com"),
        ],
    );
    assert_eq!(app.notifiers.get::<EmailConfig>().unwrap().to.len(), 1);
}

#[test]
fn a_malformed_placeholder_is_named() {
    let text = format!("{MINIMAL}{EMAIL}").replace("{message}", "{mesage}");
    let error = load_err(&text, &[]);
    let problem = problem_for(&error, "webhook.body");
    assert!(
        problem.expected.contains("unknown placeholder {mesage}"),
        "{error}"
    );
    let text = format!("{MINIMAL}{EMAIL}").replace("{message}\"", "{message\"");
    let error = load_err(&text, &[]);
    assert!(
        problem_for(&error, "webhook.body")
            .expected
            .contains("{message has no closing }"),
        "{error}"
    );
}

#[test]
fn bad_email_settings_are_named() {
    let text = format!("{MINIMAL}{EMAIL}").replace("\"ops@example.com\"", "\"ops at example\"");
    let error = load_err(&text, &[]);
    let problem = problem_for(&error, "email.to");
    assert_eq!(problem.value.as_deref(), Some("\"ops at example\""));
    assert!(problem.expected.contains("an email address"), "{error}");

    let text = format!("{MINIMAL}{EMAIL}").replace("from = ", "form = ");
    let error = load_err(&text, &[]);
    assert!(problem_for(&error, "email.form")
        .expected
        .contains("did you mean email.from?"));
    problem_for(&error, "email.from");

    let text = format!("{MINIMAL}{EMAIL}").replace(
        "to = [\"ops@example.com\", \"Lead <lead@example.com>\"]",
        "to = []",
    );
    problem_for(&load_err(&text, &[]), "email.to");
}

#[test]
fn a_named_backend_needs_its_table() {
    let error = load_err(
        &format!("{MINIMAL}\nnotification_backends = [\"email\", \"webhook\"]"),
        &[],
    );
    assert!(problem_for(&error, "email.smtp_url")
        .expected
        .contains("[email] table"));
    assert!(problem_for(&error, "webhook.url")
        .expected
        .contains("[webhook] table"));
}

#[test]
fn notification_secrets_never_appear_in_errors_check_or_debug() {
    let secrets = [
        "smtp-pass-456",
        "hook-header-789",
        "hook-path-token",
        "super-secret-key-123",
    ];
    let app = load_ok(&format!("{MINIMAL}{EMAIL}"), &[]);
    let shown: String = app
        .effective()
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    let debug = format!("{app:?}");
    for secret in secrets {
        assert!(
            !shown.contains(secret),
            "{secret} in check output:\n{shown}"
        );
        assert!(!debug.contains(secret), "{secret} in Debug");
    }
    assert!(
        shown.contains("email.smtp_url = \"smtp://***@mail.example.com:587?tls=required\""),
        "{shown}"
    );
    assert!(
        shown.contains("webhook.url = \"https://hooks.example.com/***\""),
        "{shown}"
    );
    assert!(shown.contains("\"authorization\" = \"***\""), "{shown}");

    // Bad values are not echoed either.
    let bad = format!("{MINIMAL}{EMAIL}")
        .replace("smtp://ops", "http://ops")
        .replace("https://hooks", "htps:/hooks")
        .replace("Bearer hook-header-789", "Bearer hook-header-789\\n");
    let error = load_err(&bad, &[]).to_string();
    for secret in secrets {
        assert!(!error.contains(secret), "{secret} in:\n{error}");
    }
    for key in [
        "email.smtp_url",
        "webhook.url",
        "webhook.headers.Authorization",
    ] {
        assert!(
            error.contains(&format!("{key} = \"***\"")),
            "{key} not hidden in:\n{error}"
        );
    }
}

#[test]
fn the_example_notification_lines_load_when_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.example.toml");
    let text: String = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            // The CA file it names is the reader's own: none is beside the example.
            Some(rest) if rest.starts_with("email.tls_ca_file") => line,
            Some(rest) if rest.starts_with("email.") || rest.starts_with("webhook.") => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let app = from_toml_str(&text, &HashMap::new())
        .unwrap_or_else(|error| panic!("{error}"))
        .apps
        .remove(0);
    assert_eq!(app.notifiers.get::<EmailConfig>().unwrap().to.len(), 2);
    let hook = app.notifiers.get::<WebhookConfig>().unwrap();
    assert_eq!(hook.headers.len(), 1);
    assert!(hook.body.is_some());
}

/// A CA certificate as PEM, made here.
fn ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

const SMTPS: &str = r#"
notification_backends = ["email"]
[email]
smtp_url = "smtps://ops:smtp-pass-456@relay.corp.example:465"
from = "bot@example.com"
to = ["ops@example.com"]
"#;

#[test]
fn tls_ca_file_is_read_beside_the_settings_file_and_shown_by_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(
        dir.path().join("certs/relay-ca.pem"),
        format!("{}{}", ca_pem(), ca_pem()),
    )
    .unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(
        &path,
        format!("{MINIMAL}{SMTPS}tls_ca_file = \"certs/relay-ca.pem\"\n"),
    )
    .unwrap();
    let app = load(Some(&path), &HashMap::new()).unwrap().apps.remove(0);
    let ca = app
        .notifiers
        .get::<EmailConfig>()
        .unwrap()
        .tls_ca
        .as_ref()
        .unwrap();
    assert_eq!(ca.path, dir.path().join("certs/relay-ca.pem"));
    assert_eq!(ca.len(), 2, "every certificate of the file");
    let shown: Vec<(&str, String)> = app.effective();
    let (_, value) = shown
        .iter()
        .find(|(key, _)| *key == "email.tls_ca_file")
        .unwrap();
    assert_eq!(
        value,
        &format!(
            "\"{}\" (2 certificates)",
            dir.path().join("certs/relay-ca.pem").display()
        )
    );

    let app = load_ok(&format!("{MINIMAL}{SMTPS}"), &[]);
    assert!(
        app.notifiers.get::<EmailConfig>().unwrap().tls_ca.is_none(),
        "the webpki roots alone"
    );
}

#[test]
fn a_tls_ca_file_that_is_missing_not_pem_or_damaged_is_named_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let key_only = write(
        "key.pem",
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
    );
    let damaged = write(
        "damaged.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    let broken = write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n", // no end line
    );
    let missing = dir.path().join("missing.pem");
    for (path, why) in [
        (&missing, "cannot be read"),
        (&key_only, "holds no certificate"),
        (&damaged, "does not parse"),
        (&broken, "is not valid PEM"),
    ] {
        let text = format!("{MINIMAL}{SMTPS}tls_ca_file = \"{}\"\n", path.display());
        let error = load_err(&text, &[]);
        let problem = problem_for(&error, "email.tls_ca_file");
        assert_eq!(
            problem.value.as_deref(),
            Some(format!("\"{}\"", path.display()).as_str())
        );
        assert!(
            problem
                .expected
                .starts_with("a PEM file of one or more CA certificates")
                && problem.expected.contains(&path.display().to_string())
                && problem.expected.contains(why),
            "{why}: {error}"
        );
        assert!(!error.to_string().contains("smtp-pass-456"));
    }
    let error = load_err(
        &format!("{MINIMAL}{SMTPS}tls_ca_file = [\"a.pem\", \"b.pem\"]\n"),
        &[],
    );
    assert!(problem_for(&error, "email.tls_ca_file")
        .expected
        .contains("the path of one PEM file"));
}

#[test]
fn tls_ca_file_with_plain_smtp_is_refused_since_mail_would_go_unencrypted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem()).unwrap();
    let text = format!(
        "{MINIMAL}{}tls_ca_file = \"{}\"\n",
        SMTPS.replace("smtps://", "smtp://"),
        ca.display()
    );
    let error = load_err(&text, &[]);
    assert!(
        problem_for(&error, "email.tls_ca_file")
            .expected
            .contains("plain SMTP"),
        "{error}"
    );
    let text = format!(
        "{MINIMAL}{}tls_ca_file = \"{}\"\n",
        SMTPS
            .replace("smtps://", "smtp://")
            .replace(":465", ":587?tls=required"),
        ca.display()
    );
    assert!(load_ok(&text, &[])
        .notifiers
        .get::<EmailConfig>()
        .unwrap()
        .tls_ca
        .is_some());
}

#[test]
fn each_apps_entry_may_trust_its_own_relays_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem()).unwrap();
    let text = format!(
        "heroku_api_key = \"super-secret-key-123\"\n{SMTPS}tls_ca_file = \"{ca}\"\n\
         [[apps]]\nheroku_app_name = \"alpha\"\n\
         [[apps]]\nheroku_app_name = \"beta\"\n\
         [apps.email]\nsmtp_url = \"smtps://mail.example.com\"\nfrom = \"bot@example.com\"\nto = [\"beta@example.com\"]\n\
         [[apps]]\nheroku_app_name = \"gamma\"\n\
         [apps.email]\nsmtp_url = \"smtps://relay.gamma.example\"\nfrom = \"bot@example.com\"\nto = [\"g@example.com\"]\ntls_ca_file = \"{missing}\"\n",
        ca = ca.display(),
        missing = dir.path().join("gamma-ca.pem").display(),
    );
    let error = load_err(&text, &[]);
    assert_eq!(error.problems.len(), 1, "{error}");
    assert!(
        problem_for(&error, "apps[2] (gamma/web).email.tls_ca_file")
            .expected
            .contains("cannot be read"),
        "{error}"
    );
    let text = text.replace(
        &dir.path().join("gamma-ca.pem").display().to_string(),
        &ca.display().to_string(),
    );
    let settings = load_all(&text, &[]);
    let cas: Vec<bool> = settings
        .apps
        .iter()
        .map(|app| app.notifiers.get::<EmailConfig>().unwrap().tls_ca.is_some())
        .collect();
    assert_eq!(
        cas,
        vec![true, false, true],
        "the top-level [email] with its CA, beta's own without, gamma's own with"
    );
}

// ---- planned downtime ----

fn utc(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[test]
fn downtime_defaults() {
    let app = load_ok(MINIMAL, &[]);
    assert!(app.downtime.windows.is_empty());
    assert!(app.downtime.warnings.is_empty());
    assert_eq!(app.downtime.file, Some(PathBuf::from("downtime.txt")));
    assert_eq!(app.downtime.header.as_deref(), Some("X-Downtime"));
    assert_eq!(app.downtime.dynos, None);
    assert!(!app.downtime.disable);
    assert!(app.notify.on_downtime);
}

#[test]
fn downtime_in_the_settings_is_read_in_the_time_zone() {
    let app = load_ok(
        &format!(
            "{MINIMAL}\ntime_zone = \"Europe/Paris\"\ndowntime = [\"2026-11-25T01:00/2026-11-25T04:00\", \"2026-11-26T01:00Z/PT90M\"]\ndowntime_dynos = 2"
        ),
        &[],
    );
    assert_eq!(app.downtime.windows.len(), 2);
    assert_eq!(app.downtime.windows[0].start, utc("2026-11-25T00:00:00Z"));
    assert_eq!(app.downtime.windows[0].end, utc("2026-11-25T03:00:00Z"));
    assert_eq!(
        app.downtime.windows[1].source,
        Source::Settings { index: 1 }
    );
    assert_eq!(app.downtime.windows[1].end, utc("2026-11-26T02:30:00Z"));
    assert_eq!(app.downtime.dynos, Some(2));
    let effective: HashMap<_, _> = app.effective().into_iter().collect();
    assert_eq!(
        effective["downtime"],
        "[\"2026-11-25T01:00:00+01:00/2026-11-25T04:00:00+01:00\", \"2026-11-26T02:00:00+01:00/2026-11-26T03:30:00+01:00\"]"
    );
}

#[test]
fn a_bad_downtime_entry_in_the_settings_is_a_bad_setting() {
    let error = load_err(
        &format!("{MINIMAL}\ndowntime = [\"2026-11-25T01:00/PT1H\", \"2026-11-25T04:00/2026-11-25T01:00\", 7]"),
        &[],
    );
    let problems: Vec<&Problem> = error
        .problems
        .iter()
        .filter(|problem| problem.key == "downtime")
        .collect();
    assert_eq!(problems.len(), 2, "{error}");
    assert_eq!(
        problems[0].value.as_deref(),
        Some("\"2026-11-25T04:00/2026-11-25T01:00\"")
    );
    assert!(
        problems[0]
            .expected
            .contains("the end (2026-11-25T01:00) is not after the start"),
        "{error}"
    );
    assert_eq!(problems[1].value.as_deref(), Some("7"));
}

#[test]
fn the_environment_adds_windows_and_its_bad_items_are_warnings_not_problems() {
    let app = load_ok(
        &format!("{MINIMAL}\ndowntime = [\"2026-11-25T01:00/PT1H\"]"),
        &[(
            "AUTOSCALE_DOWNTIME",
            "2026-11-26T01:00/PT1H,garbage, 2026-11-27T01:00/PT1H",
        )],
    );
    let sources: Vec<String> = app
        .downtime
        .windows
        .iter()
        .map(|window| window.source.to_string())
        .collect();
    assert_eq!(
        sources,
        [
            "settings downtime[0]",
            "environment variable AUTOSCALE_DOWNTIME",
            "environment variable AUTOSCALE_DOWNTIME"
        ]
    );
    assert_eq!(app.downtime.warnings.len(), 1);
    assert_eq!(app.downtime.warnings[0].text, "garbage");
    // The file's list stays the setting shown by `check`.
    let effective: HashMap<_, _> = app.effective().into_iter().collect();
    assert_eq!(
        effective["downtime"],
        "[\"2026-11-25T01:00:00+00:00/2026-11-25T02:00:00+00:00\"]"
    );
}

#[test]
fn downtime_disable_from_the_environment_ignores_every_source() {
    for flag in ["1", "true"] {
        let app = load_ok(
            &format!(
                "{MINIMAL}\ndowntime = [\"2026-11-25T01:00/PT1H\", \"not checked when disabled\"]"
            ),
            &[
                ("AUTOSCALE_DOWNTIME_DISABLE", flag),
                ("AUTOSCALE_DOWNTIME", "2026-11-26T01:00/PT1H,garbage"),
            ],
        );
        assert!(app.downtime.disable, "{flag}");
        assert!(app.downtime.windows.is_empty());
        assert!(app.downtime.warnings.is_empty());
    }
    let error = load_err(MINIMAL, &[("AUTOSCALE_DOWNTIME_DISABLE", "maybe")]);
    assert_eq!(
        problem_for(&error, "downtime_disable").origin.as_deref(),
        Some("AUTOSCALE_DOWNTIME_DISABLE")
    );
}

#[test]
fn the_downtime_file_is_beside_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let app = load(Some(&path), &HashMap::new()).unwrap().apps.remove(0);
    assert_eq!(app.downtime.file, Some(dir.path().join("downtime.txt")));

    std::fs::write(
        &path,
        format!("{MINIMAL}\ndowntime_file = \"ops/planned.txt\""),
    )
    .unwrap();
    let app = load(Some(&path), &HashMap::new()).unwrap().apps.remove(0);
    assert_eq!(app.downtime.file, Some(dir.path().join("ops/planned.txt")));

    std::fs::write(
        &path,
        format!("{MINIMAL}\ndowntime_file = \"/srv/planned.txt\""),
    )
    .unwrap();
    let app = load(Some(&path), &HashMap::new()).unwrap().apps.remove(0);
    assert_eq!(app.downtime.file, Some(PathBuf::from("/srv/planned.txt")));

    let app = load_ok(&format!("{MINIMAL}\ndowntime_file = \"\""), &[]);
    assert_eq!(app.downtime.file, None, "\"\" turns the file off");
}

#[test]
fn downtime_header_and_dynos_are_checked() {
    let app = load_ok(&format!("{MINIMAL}\ndowntime_header = \"\""), &[]);
    assert_eq!(app.downtime.header, None);
    let app = load_ok(MINIMAL, &[("AUTOSCALE_DOWNTIME_HEADER", "X-Maintenance")]);
    assert_eq!(app.downtime.header.as_deref(), Some("X-Maintenance"));
    let app = load_ok(MINIMAL, &[("AUTOSCALE_DOWNTIME_DYNOS", "0")]);
    assert_eq!(app.downtime.dynos, Some(0));

    let error = load_err(
        &format!("{MINIMAL}\ndowntime_header = \"X Down: time\"\ndowntime_dynos = -1"),
        &[],
    );
    assert!(problem_for(&error, "downtime_header")
        .expected
        .contains("header name"));
    assert!(problem_for(&error, "downtime_dynos")
        .expected
        .contains("whole number"));
}

// ---- many apps ----

const THREE_APPS: &str = r#"
heroku_api_key = "shared-secret-key-123"
max_dynos = 4
heartbeat_interval_in_seconds = 10

[[apps]]
heroku_app_name = "alpha"

[[apps]]
heroku_app_name = "beta"
max_dynos = 8
min_dynos = 2

[[apps]]
heroku_app_name = "beta"
process_type = "worker"
heartbeat_url = "https://beta.example.com/worker-health"
"#;

fn load_all(text: &str, vars: &[(&str, &str)]) -> Settings {
    from_toml_str(text, &env(vars)).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn each_apps_entry_is_one_app_with_the_top_level_as_defaults() {
    let settings = load_all(THREE_APPS, &[]);
    let names: Vec<(&str, &str)> = settings
        .apps
        .iter()
        .map(|app| (app.app_name.as_str(), app.process_type.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![("alpha", "web"), ("beta", "web"), ("beta", "worker")]
    );
    let [alpha, beta, worker] = &settings.apps[..] else {
        unreachable!()
    };
    assert_eq!(
        alpha.thresholds.max_dynos,
        Schedule::Fixed(4),
        "the top-level default"
    );
    assert_eq!(
        beta.thresholds.max_dynos,
        Schedule::Fixed(8),
        "the entry's own value"
    );
    assert_eq!(beta.thresholds.min_dynos, Schedule::Fixed(2));
    assert_eq!(
        worker.thresholds.min_dynos,
        Schedule::Fixed(1),
        "the built-in default"
    );
    assert_eq!(alpha.heartbeat.interval, Duration::from_secs(10));
    assert_eq!(
        alpha.heroku().unwrap().api_key.expose(),
        "shared-secret-key-123"
    );
    assert_eq!(
        alpha.heartbeat.url.as_str(),
        "https://alpha.herokuapp.com/autoscalebot/heartbeat/"
    );
    assert_eq!(
        worker.heartbeat.url.as_str(),
        "https://beta.example.com/worker-health"
    );
}

#[test]
fn a_file_without_apps_is_one_app_and_the_worker_settings_have_defaults() {
    let settings = load_all(MINIMAL, &[]);
    assert_eq!(settings.apps.len(), 1);
    assert_eq!(settings.leader_lock_url, None);
    assert_eq!(settings.leader_lock_key, 0x6175_746f_7363);
    assert_eq!(settings.heroku_api_calls_per_hour, 3600);
}

#[test]
fn a_bad_value_in_an_entry_names_the_app_and_the_key() {
    let text = THREE_APPS.replace("min_dynos = 2", "min_dynos = \"two\"");
    let error = load_err(&text, &[]);
    let problem = problem_for(&error, "apps[1] (beta/web).min_dynos");
    assert_eq!(problem.value.as_deref(), Some("\"two\""));
    assert_eq!(error.problems.len(), 1, "{error}");
}

#[test]
fn a_key_missing_from_one_entry_names_that_entry() {
    let text = format!("{THREE_APPS}\n[[apps]]\nprocess_type = \"clock\"\n");
    let error = load_err(&text, &[]);
    let problem = problem_for(&error, "apps[3].heroku_app_name");
    assert_eq!(problem.value, None);
    assert_eq!(error.problems.len(), 1, "{error}");
}

#[test]
fn two_entries_for_one_formation_are_refused_naming_both() {
    let text = format!("{THREE_APPS}\n[[apps]]\nheroku_app_name = \"beta\"\n");
    let error = load_err(&text, &[]);
    let problem = problem_for(&error, "apps[3] (beta/web).process_type");
    assert!(
        problem
            .expected
            .contains("apps[1] (beta/web) already scales beta/web"),
        "{problem}"
    );
    assert_eq!(error.problems.len(), 1, "{error}");
}

#[test]
fn a_bad_top_level_default_every_entry_inherits_is_told_once() {
    let text = "heroku_api_key = \"k\"\nincrement = 0\n[[apps]]\nheroku_app_name = \"a\"\n[[apps]]\nheroku_app_name = \"b\"\n";
    let error = load_err(text, &[]);
    assert_eq!(error.problems.len(), 1, "{error}");
    problem_for(&error, "increment");
    // From the environment: the problem names the variable.
    let text = "heroku_api_key = \"k\"\n[[apps]]\nheroku_app_name = \"a\"\n[[apps]]\nheroku_app_name = \"b\"\n";
    let error = load_err(text, &[("AUTOSCALE_INCREMENT", "none")]);
    assert_eq!(error.problems.len(), 1, "{error}");
    assert_eq!(
        problem_for(&error, "increment").origin.as_deref(),
        Some("AUTOSCALE_INCREMENT")
    );
}

#[test]
fn a_top_level_default_that_breaks_only_one_entry_names_that_entry() {
    // min_dynos = 5 is fine under b's max of 9 but above a's max of 3.
    let text = "heroku_api_key = \"k\"\nmin_dynos = 5\n[[apps]]\nheroku_app_name = \"a\"\nmax_dynos = 3\n[[apps]]\nheroku_app_name = \"b\"\nmax_dynos = 9\n";
    let error = load_err(text, &[]);
    assert_eq!(error.problems.len(), 1, "{error}");
    problem_for(&error, "apps[0] (a/web).min_dynos");
}

#[test]
fn unknown_keys_are_named_where_they_are() {
    let text = "heroku_api_key = \"k\"\nmax_dynoz = 3\nmin_dynos = 1\n[[apps]]\nheroku_app_name = \"a\"\nincremnet = 2\nmin_dynos = 1\n";
    let error = load_err(text, &[]);
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(problem_for(&error, "max_dynoz")
        .expected
        .contains("max_dynos"));
    assert!(problem_for(&error, "apps[0] (a/web).incremnet")
        .expected
        .contains("apps[0] (a/web).increment"));
}

#[test]
fn worker_wide_settings_are_refused_inside_an_entry() {
    let text = "heroku_api_key = \"k\"\n[[apps]]\nheroku_app_name = \"a\"\nheroku_api_calls_per_hour = 100\n";
    let error = load_err(text, &[]);
    assert!(
        problem_for(&error, "apps[0] (a/web).heroku_api_calls_per_hour")
            .expected
            .contains("top level")
    );
}

#[test]
fn the_leader_lock_key_is_any_bigint_at_the_top_level_only() {
    let settings = load_all(&format!("{MINIMAL}leader_lock_key = -42\n"), &[]);
    assert_eq!(settings.leader_lock_key, -42);
    let shown: HashMap<_, _> = settings.effective().into_iter().collect();
    assert_eq!(shown["leader_lock_key"], "-42");
    // TOML's hexadecimal, and the environment.
    let settings = load_all(&format!("{MINIMAL}leader_lock_key = 0x10\n"), &[]);
    assert_eq!(settings.leader_lock_key, 16);
    let settings = load_all(
        MINIMAL,
        &[("AUTOSCALE_LEADER_LOCK_KEY", "9007199254740993")],
    );
    assert_eq!(settings.leader_lock_key, 9_007_199_254_740_993);

    for (text, shown) in [
        ("\"fleet-a\"", "\"fleet-a\""),
        ("1.5", "1.5"),
        ("true", "true"),
    ] {
        let error = load_err(&format!("{MINIMAL}leader_lock_key = {text}\n"), &[]);
        let problem = problem_for(&error, "leader_lock_key");
        assert_eq!(problem.value.as_deref(), Some(shown), "{error}");
        assert!(problem.expected.contains("whole number"), "{error}");
        assert!(problem.expected.contains("bigint"), "{error}");
    }
    let error = load_err(
        MINIMAL,
        &[("AUTOSCALE_LEADER_LOCK_KEY", "9223372036854775808")],
    );
    let problem = problem_for(&error, "leader_lock_key");
    assert_eq!(problem.origin.as_deref(), Some("AUTOSCALE_LEADER_LOCK_KEY"));

    let text = "heroku_api_key = \"k\"\n[[apps]]\nheroku_app_name = \"a\"\nleader_lock_key = 7\n";
    let error = load_err(text, &[]);
    assert!(problem_for(&error, "apps[0] (a/web).leader_lock_key")
        .expected
        .contains("top level"));
}

#[test]
fn apps_must_be_a_list_of_tables() {
    for text in [
        "heroku_api_key = \"k\"\napps = []\n",
        "heroku_api_key = \"k\"\napps = \"alpha\"\n",
    ] {
        let error = load_err(text, &[]);
        assert!(problem_for(&error, "apps").expected.contains("[[apps]]"));
    }
}

#[test]
fn the_leader_lock_url_comes_from_the_file_or_database_url_and_is_never_shown() {
    let url = "postgres://bot:pg-password-77@db.internal:5432/locks?sslmode=disable";
    let settings = load_all(&format!("{MINIMAL}leader_lock_url = \"{url}\"\n"), &[]);
    assert_eq!(settings.leader_lock_url.as_ref().unwrap().expose(), url);
    let shown: HashMap<_, _> = settings.effective().into_iter().collect();
    assert_eq!(
        shown["leader_lock_url"],
        "\"***\" (bot@db.internal:5432/locks, sslmode=disable)"
    );
    let settings = load_all(
        &format!("{MINIMAL}leader_lock_url = \"env\"\n"),
        &[("DATABASE_URL", url)],
    );
    assert_eq!(settings.leader_lock_url.unwrap().expose(), url);

    let error = load_err(&format!("{MINIMAL}leader_lock_url = \"env\"\n"), &[]);
    assert!(problem_for(&error, "leader_lock_url")
        .expected
        .contains("DATABASE_URL"));
    let error = load_err(
        &format!("{MINIMAL}leader_lock_url = \"postgres://bot:pg-password-77@db:x/locks\"\n"),
        &[],
    );
    let message = error.to_string();
    assert!(message.contains("leader_lock_url"), "{message}");
    assert!(!message.contains("pg-password-77"), "{message}");
}

#[test]
fn the_worker_settings_are_in_the_example_and_the_readme() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/settings.md"))
            .unwrap();
    let settings = load(Some(&path), &HashMap::new()).unwrap();
    // The example sets the default key: a copy of it must share the lock with a worker without.
    assert_eq!(
        settings.leader_lock_key,
        autoscalebot_backends::leader::postgres::DEFAULT_LOCK_KEY
    );
    for (key, _) in settings.effective() {
        assert!(GLOBAL_KEYS.contains(&key));
        assert!(
            text.contains(&format!("{key} =")),
            "settings.example.toml lacks {key}"
        );
        assert!(
            readme.contains(&format!("`{key}`")),
            "docs/settings.md lacks `{key}`"
        );
    }
    assert!(text.contains("[[apps]]"), "the example shows [[apps]]");
}

#[test]
fn observe_settings_default_to_the_heartbeat_alone_and_no_server() {
    let app = load_ok(MINIMAL, &[]);
    assert_eq!(app.drain.signal, Signal::Heartbeat);
    assert_eq!(app.drain.router_window, app.heartbeat.interval);
    assert_eq!(app.drain.http_port, None);
    assert!(app.drain.log_drain_password.is_none());
    assert_eq!(app.log_format, LogFormat::Auto);
    let app = load_ok(&format!("{MINIMAL}heartbeat_interval_in_seconds = 10"), &[]);
    assert_eq!(app.drain.router_window, Duration::from_secs(10));
}

#[test]
fn the_server_port_comes_from_http_port_else_from_port() {
    assert_eq!(
        load_ok(MINIMAL, &[("PORT", "5000"), HTTP_PASSWORD])
            .drain
            .http_port,
        Some(5000)
    );
    let app = load_ok(
        &format!("{MINIMAL}http_port = 8080"),
        &[("PORT", "5000"), HTTP_PASSWORD],
    );
    assert_eq!(app.drain.http_port, Some(8080));
    let error = load_err(MINIMAL, &[("PORT", "fifty")]);
    let problem = problem_for(&error, "http_port");
    assert_eq!(problem.value.as_deref(), Some("\"fifty\""));
    assert_eq!(problem.origin.as_deref(), Some("PORT"));
    let error = load_err(&format!("{MINIMAL}http_port = 70000"), &[]);
    assert!(problem_for(&error, "http_port").expected.contains("65535"));
}

#[test]
fn the_router_signal_needs_a_drain_password_and_a_port() {
    let error = load_err(&format!("{MINIMAL}signal = \"router\""), &[]);
    assert!(problem_for(&error, "log_drain_password")
        .expected
        .contains("signal = \"router\""));
    assert!(problem_for(&error, "http_port").expected.contains("PORT"));
    let app = load_ok(
        &format!(
            "{MINIMAL}signal = \"both\"\nrouter_window = \"1m\"\nlog_drain_password = \"drain-pw-77\""
        ),
        &[("PORT", "0"), HTTP_PASSWORD],
    );
    assert_eq!(app.drain.signal, Signal::Both);
    assert_eq!(app.drain.router_window, Duration::from_secs(60));
    let shown: String = app
        .effective()
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    assert!(shown.contains("log_drain_password = \"***\""), "{shown}");
    assert!(!shown.contains("drain-pw-77") && !format!("{app:?}").contains("drain-pw-77"));
}

#[test]
fn bad_signal_window_and_log_format_are_named() {
    let error = load_err(
        &format!(
            "{MINIMAL}signal = \"vibes\"\nrouter_window = \"0s\"\nlog_format = \"xml\"\nlog_drain_password = [1]"
        ),
        &[],
    );
    assert!(problem_for(&error, "signal")
        .expected
        .contains("\"router\""));
    assert!(problem_for(&error, "router_window")
        .expected
        .contains("above 0"));
    assert!(problem_for(&error, "log_format")
        .expected
        .contains("logfmt"));
    assert_eq!(
        problem_for(&error, "log_drain_password").value.as_deref(),
        Some("\"***\"")
    );
}

#[test]
fn auto_log_format_is_logfmt_on_a_dyno() {
    assert_eq!(LogFormat::Auto.resolve(true), LogFormat::Logfmt);
    assert_eq!(LogFormat::Auto.resolve(false), LogFormat::Text);
    assert_eq!(LogFormat::Json.resolve(true), LogFormat::Json);
}

// --- Scale to zero, the command scaler, the shutdown hook and the activator ---

fn commands(app: &AppSettings) -> &CommandPlatform {
    match &app.platform {
        Some(Platform::Command(commands)) => commands,
        other => panic!("not the command platform: {other:?}"),
    }
}

fn load_for_ok(text: &str, purpose: Purpose) -> AppSettings {
    from_toml_str_for(text, &HashMap::new(), purpose)
        .unwrap_or_else(|error| panic!("{error}"))
        .apps
        .remove(0)
}

fn load_for_err(text: &str, purpose: Purpose) -> SettingsError {
    match from_toml_str_for(text, &HashMap::new(), purpose) {
        Ok(_) => panic!("settings should have been refused:\n{text}"),
        Err(error) => error,
    }
}

#[test]
fn the_command_scaler_needs_no_heroku_keys_but_a_command() {
    let app = load_ok(
        "scaler = \"command\"\nscale_command = \"./scale.sh\"\nheartbeat_url = \"http://127.0.0.1:9/hb\"",
        &[],
    );
    assert_eq!(app.platform().settings().name(), "command");
    assert_eq!(
        commands(&app).commands.scale_command.as_deref(),
        Some("./scale.sh")
    );
    assert_eq!(commands(&app).timeout, Duration::from_secs(60));
    assert_eq!(app.app_name, "app");
    assert_eq!(app.heartbeat.app_url.as_str(), "http://127.0.0.1:9/");

    let error = load_err(
        "scaler = \"command\"\nheartbeat_url = \"http://127.0.0.1:9/hb\"",
        &[],
    );
    assert!(problem_for(&error, "scale_command")
        .expected
        .contains("start_command and stop_command"));
    assert!(
        !error.problems.iter().any(|p| p.key.starts_with("heroku")),
        "{error}"
    );

    // A relative heartbeat with no app name to build a URL from: app_url is asked for.
    let error = load_err("scaler = \"command\"\nscale_command = \"./scale.sh\"", &[]);
    problem_for(&error, "app_url");
}

#[test]
fn commands_are_refused_with_the_heroku_scaler_and_a_bad_scaler_is_named() {
    let error = load_err(&format!("{MINIMAL}\nstart_command = \"./start.sh\""), &[]);
    assert!(problem_for(&error, "start_command")
        .expected
        .contains("scaler = \"command\""));
    let error = load_err(&format!("{MINIMAL}\nscaler = \"aws\""), &[]);
    assert_eq!(
        problem_for(&error, "scaler").value.as_deref(),
        Some("\"aws\"")
    );
}

#[test]
fn start_and_stop_alone_can_only_run_one() {
    let text = "scaler = \"command\"\nstart_command = \"./start.sh\"\nstop_command = \"./stop.sh\"\nheartbeat_url = \"http://127.0.0.1:9/hb\"";
    let error = load_err(&format!("{text}\nmax_dynos = 3"), &[]);
    assert!(problem_for(&error, "max_dynos")
        .expected
        .contains("at most 1"));
    let app = load_ok(&format!("{text}\nmax_dynos = 1\nmin_dynos = 0"), &[]);
    assert_eq!(
        commands(&app).commands.stop_command.as_deref(),
        Some("./stop.sh")
    );
}

#[test]
fn idle_after_and_max_age_read_durations_and_need_a_zero_minimum() {
    let app = load_ok(
        &format!("{MINIMAL}\nidle_after = \"10m\"\nmax_age = \"10h\"\nmin_dynos = {{ \"0:00\" = 0, \"9:00\" = 2 }}"),
        &[],
    );
    assert_eq!(app.thresholds.idle_after, Some(Duration::from_secs(600)));
    assert_eq!(app.thresholds.max_age, Some(Duration::from_secs(36_000)));
    let defaults = load_ok(MINIMAL, &[]);
    assert_eq!(
        (defaults.thresholds.idle_after, defaults.thresholds.max_age),
        (None, None)
    );

    let error = load_err(&format!("{MINIMAL}\nidle_after = \"10m\""), &[]);
    assert!(problem_for(&error, "min_dynos")
        .expected
        .contains("idle_after"));
    let error = load_err(
        &format!("{MINIMAL}\nidle_after = \"0s\"\nmax_age = \"soon\"\nmin_dynos = 0"),
        &[],
    );
    problem_for(&error, "idle_after");
    problem_for(&error, "max_age");
}

#[test]
fn the_shutdown_hook_reads_every_key_and_never_shows_header_values() {
    let app = load_ok(
        &format!(
            "{MINIMAL}\n[shutdown_hook]\nurl = \"https://example.com/shutdown\"\nmethod = \"post\"\nbody = '{{\"message\": \"bye\"}}'\nheaders = {{ Authorization = \"Bearer hook-secret-42\" }}"
        ),
        &[],
    );
    let hook = app.shutdown_hook.as_ref().unwrap();
    assert_eq!(hook.method, reqwest::Method::POST);
    assert_eq!(hook.body, "{\"message\": \"bye\"}");
    assert_eq!(hook.headers[0].0, "Authorization");
    assert_eq!(hook.headers[0].1.expose(), "Bearer hook-secret-42");
    assert_eq!(hook.timeout, Duration::from_secs(10));
    let shown = format!("{:?}", app.effective());
    assert!(shown.contains("Authorization"), "{shown}");
    assert!(!shown.contains("hook-secret-42"), "{shown}");

    let minimal = load_ok(
        &format!("{MINIMAL}\n[shutdown_hook]\nurl = \"http://127.0.0.1:9/bye\""),
        &[],
    );
    assert_eq!(minimal.shutdown_hook.unwrap().method, reqwest::Method::GET);

    let error = load_err(
        &format!("{MINIMAL}\n[shutdown_hook]\nmethod = \"GE T\"\nheaders = {{ \"Bad Name\" = \"hook-secret-42\" }}\nsurprise = 1"),
        &[],
    );
    problem_for(&error, "shutdown_hook.url");
    problem_for(&error, "shutdown_hook.method");
    problem_for(&error, "shutdown_hook.headers.Bad Name");
    problem_for(&error, "shutdown_hook.surprise");
    assert!(!error.to_string().contains("hook-secret-42"), "{error}");
}

#[test]
fn the_activator_table_is_read_and_checked() {
    let app = load_ok(
        &format!("{MINIMAL}\nidle_after = \"2m\"\nmin_dynos = 0\n[activator]\nlisten = \"127.0.0.1:8080\"\ntarget = \"unix:/tmp/app.sock\""),
        &[],
    );
    let activator = app.activator.unwrap();
    assert_eq!(activator.listen, Endpoint::Tcp("127.0.0.1:8080".into()));
    assert_eq!(
        activator.target,
        Some(Endpoint::Unix("/tmp/app.sock".into()))
    );
    assert_eq!(activator.wake_timeout, Duration::from_secs(30));
    assert_eq!(
        activator.idle_after,
        Some(Duration::from_secs(120)),
        "the top-level idle_after"
    );
    assert_eq!(
        (activator.stop_signal, activator.stop_signal_name.as_str()),
        (libc_sigterm(), "SIGTERM")
    );

    let error = load_err(
        &format!("{MINIMAL}\n[activator]\ntarget = \"8080\"\nstop_signal = \"SIGNOPE\"\nwake_timeout = \"0s\""),
        &[],
    );
    problem_for(&error, "activator.listen");
    assert!(problem_for(&error, "activator.target")
        .expected
        .contains("host:port"));
    problem_for(&error, "activator.stop_signal");
    problem_for(&error, "activator.wake_timeout");

    let error = load_err(
        &format!(
            "{MINIMAL}\n[activator]\nlisten = \"127.0.0.1:8080\"\ntarget = \"127.0.0.1:8080\""
        ),
        &[],
    );
    assert!(problem_for(&error, "activator.target")
        .expected
        .contains("itself"));
}

fn libc_sigterm() -> i32 {
    15
}

#[test]
fn activate_with_a_local_command_needs_no_platform_and_activate_needs_the_table() {
    let app = load_for_ok(
        "[activator]\nlisten = \"unix:/tmp/x.sock\"\ncommand = \"python3 app.py\"\nidle_after = \"30s\"\nstop_signal = \"SIGINT\"",
        Purpose::Activator,
    );
    let activator = app.activator.unwrap();
    assert_eq!(activator.target, None);
    assert_eq!(activator.stop_signal_name, "SIGINT");
    assert_eq!(activator.idle_after, Some(Duration::from_secs(30)));

    // The same file is not enough for the worker, which needs a platform.
    let error = load_err(
        "[activator]\nlisten = \"unix:/tmp/x.sock\"\ncommand = \"python3 app.py\"",
        &[],
    );
    problem_for(&error, "heroku_app_name");

    let error = load_for_err(MINIMAL, Purpose::Activator);
    problem_for(&error, "activator");
}

#[test]
fn activator_keys_come_from_the_environment_too() {
    let app = load_ok(
        &format!("{MINIMAL}\nmin_dynos = 0\n[activator]\ntarget = \"127.0.0.1:9000\""),
        &[("AUTOSCALE_ACTIVATOR__LISTEN", "127.0.0.1:9001")],
    );
    assert_eq!(
        app.activator.unwrap().listen,
        Endpoint::Tcp("127.0.0.1:9001".into())
    );
    let error = load_err(
        &format!("{MINIMAL}\n[activator]\ntarget = \"127.0.0.1:9000\""),
        &[("AUTOSCALE_ACTIVATOR__LISTEN", "nowhere")],
    );
    assert_eq!(
        problem_for(&error, "activator.listen").origin.as_deref(),
        Some("AUTOSCALE_ACTIVATOR__LISTEN")
    );
}

#[test]
fn the_worker_has_one_server_port_and_refuses_entries_naming_another() {
    let two = "heroku_api_key = \"k\"\n[[apps]]\nheroku_app_name = \"shop\"\n\
               [[apps]]\nheroku_app_name = \"blog\"\n";
    assert_eq!(load_all(two, &[]).http_port(), None);
    assert_eq!(
        load_all(two, &[("PORT", "5000"), HTTP_PASSWORD]).http_port(),
        Some(5000)
    );
    // An entry may name the port the others have.
    let same = format!("{two}http_port = 5000\n");
    assert_eq!(
        load_all(&same, &[("PORT", "5000"), HTTP_PASSWORD]).http_port(),
        Some(5000)
    );
    // Only one entry naming a port: the server runs there, for both apps.
    let one = format!("{two}http_port = 8080\n");
    assert_eq!(load_all(&one, &[]).http_port(), Some(8080));
    let error = load_err(&one, &[("PORT", "5000"), HTTP_PASSWORD]);
    let problem = problem_for(&error, "apps[1] (blog/web).http_port");
    assert_eq!(problem.value.as_deref(), Some("8080"));
    assert!(
        problem
            .expected
            .starts_with("5000, the port apps[0] (shop/web) names"),
        "{}",
        problem.expected
    );
}

/// Two accounts' keys, each from its own variable, and every other secret as `env:NAME`.
const ENV_SECRETS: &str = r#"
heroku_api_key = "env:ALPHA_KEY"
notification_backends = ["email", "webhook"]
leader_lock_url = "env:LOCK_URL"

[email]
smtp_url = "env:SMTP_URL"
from = "autoscalebot <bot@example.com>"
to = ["ops@example.com"]

[webhook]
url = "env:HOOK_URL"
headers = { Authorization = "env:HOOK_AUTH", X-Team = "ops" }

[[apps]]
heroku_app_name = "alpha"

[[apps]]
heroku_app_name = "beta"
heroku_api_key = "env:BETA_KEY"
log_drain_password = "env:DRAIN_PASSWORD"

[apps.shutdown_hook]
url = "https://example.com/bye"
headers = { Authorization = "env:BYE_AUTH" }
"#;

const ENV_SECRET_VALUES: &[(&str, &str)] = &[
    ("ALPHA_KEY", "alpha-key-0001"),
    ("BETA_KEY", "beta-key-0002"),
    (
        "SMTP_URL",
        "smtp://ops:smtp-pass-0003@mail.example.com:587?tls=required",
    ),
    (
        "HOOK_URL",
        "https://hooks.example.com/services/hook-token-0004",
    ),
    ("HOOK_AUTH", "Bearer hook-header-0005"),
    ("DRAIN_PASSWORD", "drain-pass-0006"),
    ("BYE_AUTH", "Bearer bye-header-0007"),
    (
        "LOCK_URL",
        "postgres://bot:pg-pass-0008@db.internal:5432/locks?sslmode=disable",
    ),
];

/// Every line `check` prints for these settings: the worker's, then each app's.
fn check_lines(settings: &Settings) -> String {
    let rows = settings
        .effective()
        .into_iter()
        .chain(settings.apps.iter().flat_map(AppSettings::effective));
    rows.map(|(key, value)| format!("{key} = {value}\n"))
        .collect()
}

#[test]
fn env_values_of_secrets_come_from_the_named_variables_at_the_top_and_in_entries() {
    let settings = load_all(ENV_SECRETS, ENV_SECRET_VALUES);
    let [alpha, beta] = &settings.apps[..] else {
        panic!("two apps")
    };
    assert_eq!(alpha.heroku().unwrap().api_key.expose(), "alpha-key-0001");
    assert_eq!(
        beta.heroku().unwrap().api_key.expose(),
        "beta-key-0002",
        "its own key"
    );
    assert_eq!(alpha.drain.log_drain_password, None);
    assert_eq!(
        beta.drain.log_drain_password.as_ref().unwrap().expose(),
        "drain-pass-0006"
    );
    for app in [alpha, beta] {
        let email = app.notifiers.get::<EmailConfig>().unwrap();
        assert_eq!(email.smtp_url.expose(), ENV_SECRET_VALUES[2].1);
        let hook = app.notifiers.get::<WebhookConfig>().unwrap();
        assert_eq!(hook.url.as_str(), ENV_SECRET_VALUES[3].1);
        let headers: Vec<(&str, &str)> = hook
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose()))
            .collect();
        assert!(headers.contains(&("authorization", "Bearer hook-header-0005")));
        assert!(headers.contains(&("x-team", "ops")), "literal: {headers:?}");
    }
    assert!(alpha.shutdown_hook.is_none());
    let bye = beta.shutdown_hook.as_ref().unwrap();
    assert_eq!(bye.headers[0].1.expose(), "Bearer bye-header-0007");
    assert_eq!(
        settings.leader_lock_url.as_ref().unwrap().expose(),
        ENV_SECRET_VALUES[7].1
    );
}

#[test]
fn an_entrys_own_env_key_wins_over_heroku_api_key_and_autoscale_variables() {
    let settings = load_all(
        ENV_SECRETS,
        &[
            ENV_SECRET_VALUES,
            &[
                ("HEROKU_API_KEY", "heroku-cli-key"),
                ("AUTOSCALE_HEROKU_API_KEY", "autoscale-key"),
            ],
        ]
        .concat(),
    );
    assert_eq!(
        settings.apps[0].heroku().unwrap().api_key.expose(),
        "autoscale-key",
        "the top level: AUTOSCALE_ wins over HEROKU_API_KEY and the file"
    );
    assert_eq!(
        settings.apps[1].heroku().unwrap().api_key.expose(),
        "beta-key-0002"
    );

    // HEROKU_API_KEY, itself "env:NAME", is followed too: one way for every secret.
    let app = load_ok(
        "heroku_app_name = \"solo\"\n",
        &[("HEROKU_API_KEY", "env:SOLO_KEY"), ("SOLO_KEY", "solo-key")],
    );
    assert_eq!(app.heroku().unwrap().api_key.expose(), "solo-key");
}

#[test]
fn a_missing_or_empty_variable_names_the_entry_the_key_and_the_variable_never_a_secret() {
    let only_alpha: Vec<(&str, &str)> = ENV_SECRET_VALUES
        .iter()
        .copied()
        .filter(|(name, _)| *name != "BETA_KEY")
        .collect();
    let error = load_err(ENV_SECRETS, &only_alpha);
    let problem = problem_for(&error, "apps[1] (beta/web).heroku_api_key");
    assert_eq!(problem.value.as_deref(), Some("\"env:BETA_KEY\""));
    assert!(
        problem.expected.contains("not set")
            && problem.expected.contains("set the config var BETA_KEY"),
        "{problem}"
    );
    assert_eq!(
        error.problems.len(),
        1,
        "told once, not also as missing: {error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("apps[1] (beta/web).heroku_api_key = \"env:BETA_KEY\""),
        "{message}"
    );
    for (_, secret) in ENV_SECRET_VALUES {
        assert!(!message.contains(secret), "{secret} in:\n{message}");
    }

    let mut empty_beta = only_alpha.clone();
    empty_beta.push(("BETA_KEY", " "));
    let error = load_err(ENV_SECRETS, &empty_beta);
    let problem = problem_for(&error, "apps[1] (beta/web).heroku_api_key");
    assert!(problem.expected.contains("empty"), "{problem}");

    // A missing top-level default that every entry inherits is told once, under its key.
    let no_alpha: Vec<(&str, &str)> = ENV_SECRET_VALUES
        .iter()
        .copied()
        .filter(|(name, _)| *name != "ALPHA_KEY")
        .collect();
    let text = ENV_SECRETS.replace("heroku_api_key = \"env:BETA_KEY\"\n", "");
    let error = load_err(&text, &no_alpha);
    let problem = problem_for(&error, "heroku_api_key");
    assert_eq!(problem.value.as_deref(), Some("\"env:ALPHA_KEY\""));
    assert_eq!(error.problems.len(), 1, "{error}");

    // Tables, headers and the worker's lock name their variables too.
    let error = load_err(ENV_SECRETS, &[("ALPHA_KEY", "a"), ("BETA_KEY", "b")]);
    for (key, variable) in [
        ("email.smtp_url", "SMTP_URL"),
        ("webhook.url", "HOOK_URL"),
        ("webhook.headers.Authorization", "HOOK_AUTH"),
        ("apps[1] (beta/web).log_drain_password", "DRAIN_PASSWORD"),
        (
            "apps[1] (beta/web).shutdown_hook.headers.Authorization",
            "BYE_AUTH",
        ),
        ("leader_lock_url", "LOCK_URL"),
    ] {
        let problem = problem_for(&error, key);
        assert_eq!(
            problem.value.as_deref(),
            Some(format!("\"env:{variable}\"").as_str())
        );
        assert!(
            problem
                .expected
                .contains(&format!("set the config var {variable}")),
            "{problem}"
        );
    }
}

#[test]
fn only_a_value_starting_with_env_colon_names_a_variable() {
    for literal in ["ENV:ALPHA_KEY", "myenv:ALPHA_KEY", " env:ALPHA_KEY", "env"] {
        let app = load_ok(
            &format!("heroku_app_name = \"a\"\nheroku_api_key = \"{literal}\"\n"),
            &[("ALPHA_KEY", "alpha-key-0001")],
        );
        assert_eq!(app.heroku().unwrap().api_key.expose(), literal);
        assert!(app.secret_variables.is_empty());
    }
    // After env: comes a variable name; what is there instead is not shown.
    let error = load_err(
        "heroku_app_name = \"a\"\nheroku_api_key = \"env:not a name 0009\"\n",
        &[],
    );
    let problem = problem_for(&error, "heroku_api_key");
    assert_eq!(problem.value.as_deref(), Some("\"env:…\""));
    assert!(problem.expected.contains("variable name"), "{problem}");
    assert!(!error.to_string().contains("0009"), "{error}");

    // Settings that are not secrets take env: literally.
    let app = load_ok(
        "scaler = \"command\"\nscale_command = \"env:SCALE\"\napp_url = \"http://127.0.0.1:1\"\n",
        &[("SCALE", "./scale.sh")],
    );
    assert_eq!(
        commands(&app).commands.scale_command.as_deref(),
        Some("env:SCALE")
    );
}

#[test]
fn check_shows_where_a_secret_comes_from_and_never_the_secret() {
    let settings = load_all(ENV_SECRETS, ENV_SECRET_VALUES);
    let shown = check_lines(&settings);
    let debug = format!("{settings:?}");
    for (_, secret) in ENV_SECRET_VALUES {
        assert!(!shown.contains(secret), "{secret} in check:\n{shown}");
        assert!(!debug.contains(secret), "{secret} in Debug");
    }
    for line in [
        "heroku_api_key = \"***\" (from env:ALPHA_KEY)",
        "heroku_api_key = \"***\" (from env:BETA_KEY)",
        "log_drain_password = \"***\" (from env:DRAIN_PASSWORD)",
        "email.smtp_url = \"smtp://***@mail.example.com:587?tls=required\" (from env:SMTP_URL)",
        "webhook.url = \"https://hooks.example.com/***\" (from env:HOOK_URL)",
        "\"authorization\" = \"***\" (from env:HOOK_AUTH)",
        "\"x-team\" = \"***\" }",
        "\"Authorization\" = \"***\" (from env:BYE_AUTH)",
        "leader_lock_url = \"***\" (bot@db.internal:5432/locks, sslmode=disable) (from env:LOCK_URL)",
    ] {
        assert!(shown.contains(line), "no {line:?} in:\n{shown}");
    }
    // A literal secret says nothing of a variable.
    let app = load_ok(MINIMAL, &[]);
    let rows: HashMap<_, _> = app.effective().into_iter().collect();
    assert_eq!(rows["heroku_api_key"], "\"***\"");
}

#[test]
fn a_bad_secret_inside_an_entry_or_from_a_variable_is_never_shown() {
    let text = "heroku_api_key = \"k\"\n[[apps]]\nheroku_app_name = \"alpha\"\n\
        notification_backends = [\"email\", \"webhook\"]\n\
        [apps.email]\nsmtp_url = \"http://ops:smtp-pass-0010@mail.example.com\"\n\
        from = \"bot@example.com\"\nto = [\"ops@example.com\"]\n\
        [apps.webhook]\nurl = \"env:HOOK_URL\"\nheaders = { Authorization = \"Bearer bad\\nhook-0011\" }\n";
    let error = load_err(
        text,
        &[("HOOK_URL", "htps:/hooks.example.com/hook-token-0012")],
    );
    let message = error.to_string();
    for secret in ["smtp-pass-0010", "hook-0011", "hook-token-0012"] {
        assert!(!message.contains(secret), "{secret} in:\n{message}");
    }
    for key in [
        "apps[0] (alpha/web).email.smtp_url = \"***\"",
        "apps[0] (alpha/web).webhook.url = \"***\" (from env:HOOK_URL)",
        "apps[0] (alpha/web).webhook.headers.Authorization = \"***\"",
    ] {
        assert!(message.contains(key), "no {key} in:\n{message}");
    }
}

// ---- each command needs only its own settings; the key list written once ----

/// Seed 003's setup: a TCP proxy in front of a start and a stop hook, nothing else.
const SEED_003: &str = r#"
scaler = "command"
start_command = "./start.sh"
stop_command = "./stop.sh"

[activator]
listen = "127.0.0.1:8080"
target = "127.0.0.1:8081"
idle_after = "60s"
"#;

#[test]
fn activate_in_front_of_a_start_and_a_stop_hook_needs_its_table_and_the_hooks_alone() {
    let app = load_for_ok(SEED_003, Purpose::Activator);
    assert_eq!(
        app.thresholds.min_dynos,
        Schedule::Fixed(0),
        "the activator stops the target"
    );
    assert_eq!(
        app.thresholds.max_dynos,
        Schedule::Fixed(1),
        "start and stop run one"
    );
    assert_eq!(
        app.activator.unwrap().idle_after,
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        commands(&load_for_ok(SEED_003, Purpose::Activator))
            .commands
            .start_command
            .as_deref(),
        Some("./start.sh")
    );

    // The worker needs a heartbeat, and a minimum of 0 for idle_after: it says so, and never
    // blames a default the user did not write.
    let error = load_err(SEED_003, &[]);
    problem_for(&error, "app_url");
    assert!(
        !error.problems.iter().any(|p| p.key == "max_dynos"),
        "{error}"
    );
}

#[test]
fn a_default_is_never_wrong_start_and_stop_alone_run_one_dyno() {
    let text = "scaler = \"command\"\nstart_command = \"./start.sh\"\nstop_command = \"./stop.sh\"\nheartbeat_url = \"http://127.0.0.1:9/hb\"";
    let app = load_ok(text, &[]);
    assert_eq!(app.thresholds.max_dynos, Schedule::Fixed(1));
    assert_eq!(app.thresholds.min_dynos, Schedule::Fixed(1));
    // With a scale_command, the default is seed 001's 3.
    let app = load_ok(&format!("{text}\nscale_command = \"./scale.sh\""), &[]);
    assert_eq!(app.thresholds.max_dynos, Schedule::Fixed(3));
    // A maximum the user wrote above what start and stop can run is still refused, named.
    let error = load_err(
        &format!("{text}\nmax_dynos = {{ \"0:00\" = 1, \"9:00\" = 2 }}"),
        &[],
    );
    let problem = problem_for(&error, "max_dynos");
    assert_eq!(
        problem.to_string(),
        "max_dynos = \"{ \\\"0:00\\\" = 1, \\\"9:00\\\" = 2 }\": expected at most 1 without a scale_command: start_command and stop_command can only start or stop"
    );
}

#[test]
fn check_shows_the_keys_of_the_platform_and_the_backends_in_use() {
    let rows = |app: &AppSettings| -> Vec<&'static str> {
        app.effective().into_iter().map(|(key, _)| key).collect()
    };
    let heroku = load_ok(MINIMAL, &[]);
    let shown = rows(&heroku);
    assert!(shown.contains(&"heroku_api_key") && shown.contains(&"scaler"));
    for key in [
        "scale_command",
        "command_timeout",
        "email.smtp_url",
        "webhook.url",
    ] {
        assert!(
            !shown.contains(&key),
            "{key} shown for an app that does not use it"
        );
    }
    let commands = load_ok(
        "scaler = \"command\"\nscale_command = \"./scale.sh\"\napp_url = \"http://127.0.0.1:1\"",
        &[],
    );
    let shown = rows(&commands);
    assert!(shown.contains(&"scale_command") && shown.contains(&"command_timeout"));
    assert!(
        !shown.iter().any(|key| key.starts_with("heroku_api")),
        "no empty Heroku key beside the commands: {shown:?}"
    );
    let with_email = load_ok(&format!("{MINIMAL}{SMTPS}"), &[]);
    assert!(rows(&with_email).contains(&"email.smtp_url"));
}

/// settings.example.toml with the lines of every notifier's table uncommented (but the CA
/// file, which is the reader's own): each backend of the registry configured as documented.
fn example_with_every_notifier() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.example.toml");
    let tables: Vec<String> = autoscalebot_backends::notify::table_names()
        .map(|name| format!("{name}."))
        .collect();
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with("email.tls_ca_file") => line,
            Some(rest) if tables.iter().any(|table| rest.starts_with(table.as_str())) => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Every key of every part, each once: the same names `check` shows and the hints suggest.
fn key_list() -> Vec<String> {
    let mut keys = all_keys();
    keys.extend(GLOBAL_KEYS.iter().map(|key| key.to_string()));
    keys
}

#[test]
fn the_key_list_holds_each_key_once_and_check_shows_each_of_them() {
    let keys = key_list();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "a key in two parts: {keys:?}");
    // Every part in use: the Heroku platform and the commands, each notifier's table (as the
    // example documents it), the hook and the activator.
    let hook_tables = "[shutdown_hook]\nurl = \"http://127.0.0.1:9/bye\"\n[activator]\nlisten = \"127.0.0.1:8080\"\ntarget = \"127.0.0.1:8081\"\n";
    let heroku = load_all(
        &format!("{}{hook_tables}", example_with_every_notifier()),
        &[],
    );
    let commands = load_all(
        &format!("scaler = \"command\"\nscale_command = \"./scale.sh\"\napp_url = \"http://127.0.0.1:1\"\n{hook_tables}"),
        &[],
    );
    let fly = load_all(
        &format!("scaler = \"fly\"\nfly_app_name = \"a\"\nfly_api_token = \"t\"\nfly_process_group = \"web\"\napp_url = \"http://127.0.0.1:1\"\n{hook_tables}"),
        &[],
    );
    let render = load_all(
        &format!("scaler = \"render\"\nrender_service_id = \"srv-a\"\nrender_api_key = \"k\"\napp_url = \"http://127.0.0.1:1\"\n{hook_tables}"),
        &[],
    );
    let mut shown: Vec<String> = [&heroku, &commands, &fly, &render]
        .iter()
        .flat_map(|settings| {
            check_lines(settings)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| line.split(" = ").next().map(str::to_string))
        .collect();
    shown.sort();
    shown.dedup();
    for key in &keys {
        assert!(shown.contains(key), "{key} never shown by check");
    }
    for key in &shown {
        assert!(
            keys.contains(key),
            "check shows {key}, which is in no part's section"
        );
    }
}

#[test]
fn every_key_is_in_the_example() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    for key in key_list() {
        assert!(
            text.contains(&format!("{key} =")),
            "settings.example.toml lacks {key}"
        );
    }
}

#[test]
fn every_key_is_in_the_settings_reference() {
    let reference =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/settings.md"))
            .unwrap();
    for key in key_list() {
        assert!(
            reference.contains(&format!("`{key}`")),
            "docs/settings.md lacks `{key}`"
        );
    }
}

#[test]
fn a_secret_is_chosen_by_its_type_not_by_its_name() {
    // A key named like a secret but typed plain is shown; one typed secret is hidden, however
    // it is named.
    let settings = load_all(&format!("{MINIMAL}leader_lock_key = 42\n"), &[]);
    let rows: HashMap<_, _> = settings.effective().into_iter().collect();
    assert_eq!(rows["leader_lock_key"], "42");
    // The web hook's URL, a secret by type, hides its token also in a bad value's message.
    let error = load_err(
        &format!("{MINIMAL}[webhook]\nurl = \"ftp://hooks.example.com/token-0013\"\n"),
        &[],
    );
    assert_eq!(
        problem_for(&error, "webhook.url").value.as_deref(),
        Some("\"***\"")
    );
    assert!(!error.to_string().contains("token-0013"));
}

#[test]
fn a_time_of_day_table_as_a_config_var_is_the_same_as_in_the_file() {
    let from_file = load_ok(
        &format!("{MINIMAL}max_dynos = {{ \"0:00\" = 2, \"9:00\" = 5 }}\n"),
        &[],
    );
    let from_env = load_ok(
        MINIMAL,
        &[("AUTOSCALE_MAX_DYNOS", r#"{"0:00" = 2, "9:00" = 5}"#)],
    );
    assert_eq!(
        from_env.thresholds.max_dynos,
        from_file.thresholds.max_dynos
    );
    assert_eq!(
        from_env.thresholds.max_dynos.to_string(),
        r#"{ "0:00" = 2, "9:00" = 5 }"#
    );
    // A list too, and a variable still wins over the file.
    let listed = load_ok(
        &format!("{MINIMAL}notification_backends = [\"console\"]\n"),
        &[("AUTOSCALE_NOTIFICATION_BACKENDS", r#"["log", "console"]"#)],
    );
    assert_eq!(listed.notify.backends, vec!["log", "console"]);
}

#[test]
fn a_whole_settings_document_in_one_config_var_behaves_as_the_file() {
    let document = THREE_APPS.to_string();
    let from_file = load_all(&document, &[]);
    let from_env = match from_sources(
        None::<config::File<config::FileSourceString, config::FileFormat>>,
        &env(&[("AUTOSCALE_SETTINGS", document.as_str())]),
        None,
        Purpose::Worker,
    ) {
        Ok(settings) => settings,
        Err(error) => panic!("{error}"),
    };
    let names = |settings: &Settings| -> Vec<(String, String)> {
        settings
            .apps
            .iter()
            .map(|app| (app.app_name.clone(), app.process_type.clone()))
            .collect()
    };
    assert_eq!(names(&from_env), names(&from_file));
    assert_eq!(from_env.effective(), from_file.effective());
    // [[apps]] as one variable holding a list of inline tables.
    let apps = load_all(
        MINIMAL,
        &[(
            "AUTOSCALE_APPS",
            r#"[{heroku_app_name = "alpha"}, {heroku_app_name = "beta", max_dynos = 7}]"#,
        )],
    );
    let names: Vec<&str> = apps.apps.iter().map(|app| app.app_name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
}

#[test]
fn a_malformed_config_var_names_the_variable() {
    let error = load_err(
        MINIMAL,
        &[("AUTOSCALE_MAX_DYNOS", r#"{"0:00" = 2, "9:00" = }"#)],
    );
    let problem = problem_for(&error, "AUTOSCALE_MAX_DYNOS");
    assert!(
        problem.expected.contains("a TOML inline table"),
        "{problem}"
    );
    let error = load_err(
        MINIMAL,
        &[(
            "AUTOSCALE_SETTINGS",
            "max_dynos = = 3\nheroku_api_key = \"leaked-key-0042\"",
        )],
    );
    let problem = problem_for(&error, "AUTOSCALE_SETTINGS");
    assert!(problem.expected.contains("a TOML document"), "{problem}");
    assert!(!error.to_string().contains("leaked-key-0042"), "{error}");
    // An unknown key inside the document is named with the variable it came from.
    let error = load_err(MINIMAL, &[("AUTOSCALE_SETTINGS", "max_dynoz = 3\n")]);
    let problem = problem_for(&error, "max_dynoz");
    assert_eq!(
        problem.origin.as_deref(),
        Some("AUTOSCALE_SETTINGS"),
        "{problem}"
    );
    assert!(problem.expected.contains("max_dynos"), "{problem}");
}

#[test]
fn a_server_others_can_reach_needs_a_password_unless_said_public() {
    let error = load_err(MINIMAL, &[("PORT", "5000")]);
    let problem = problem_for(&error, "http_password");
    assert!(
        problem
            .expected
            .contains("0.0.0.0:5000 (the port from PORT)"),
        "{problem}"
    );
    assert!(
        problem
            .expected
            .contains("heroku config:set AUTOSCALE_HTTP_PASSWORD="),
        "{problem}"
    );
    assert!(problem.expected.contains("http_public = true"), "{problem}");
    let error = load_err(
        &format!("{MINIMAL}http_port = 8080\nhttp_host = \"0.0.0.0\""),
        &[],
    );
    assert!(problem_for(&error, "http_password")
        .expected
        .contains("0.0.0.0:8080,"));
    // Said public, given a password, or kept on this machine: no problem.
    let public = load_all(&format!("{MINIMAL}http_public = true"), &[("PORT", "5000")]);
    assert_eq!(public.http_host.to_string(), "0.0.0.0");
    assert!(public.http_password.is_none());
    let locked = load_all(MINIMAL, &[("PORT", "5000"), HTTP_PASSWORD]);
    assert_eq!(
        locked.http_password.as_ref().map(|secret| secret.expose()),
        Some("pages-secret-5")
    );
    let own = load_all(
        &format!("{MINIMAL}http_password = \"env:PAGES\""),
        &[("PORT", "5000"), ("PAGES", "pages-secret-6")],
    );
    let shown = format!("{:?}", own.effective());
    assert!(!shown.contains("pages-secret-6"), "{shown}");
    assert!(shown.contains("PAGES"), "{shown}");
    let local = load_all(&format!("{MINIMAL}http_port = 8080"), &[]);
    assert_eq!(local.http_host.to_string(), "127.0.0.1");
    let local = load_all(
        &format!("{MINIMAL}http_host = \"127.0.0.1\""),
        &[("PORT", "5000")],
    );
    assert_eq!(local.http_host.to_string(), "127.0.0.1");
    // No server, nothing to lock.
    assert!(load_all(MINIMAL, &[]).http_password.is_none());
}

#[test]
fn a_bad_http_host_or_http_public_is_named() {
    let error = load_err(&format!("{MINIMAL}http_host = \"example.com\""), &[]);
    let problem = problem_for(&error, "http_host");
    assert_eq!(problem.value.as_deref(), Some("\"example.com\""));
    assert!(problem.expected.contains("IP address"), "{problem}");
    let error = load_err(&format!("{MINIMAL}http_public = \"maybe\""), &[]);
    assert!(problem_for(&error, "http_public")
        .expected
        .contains("true or false"));
}
