//! The worker as a team runs it: the built binary against a real heartbeat server and a real
//! Heroku-shaped formation API on loopback.

use crate::support::*;
use std::process::{Command, Stdio};

const KEY: &str = "test-key-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn scales_up_after_n_slow_heartbeats_and_never_past_the_max() {
    let heartbeat = HeartbeatServer::start(400).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "max_response_time_in_ms = 200\nmin_response_time_in_ms = 50\nnumber_of_fails_to_scale_up_after = 2\nmax_dynos = 3",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the formation reaches 3", || api.quantity() == 3).await;
    heartbeat.wait_for_more(4).await;
    assert_eq!(
        api.patches(),
        vec![2, 3],
        "one step at a time, never past max_dynos"
    );

    let patch = api
        .requests()
        .into_iter()
        .find(|request| request.method == "PATCH")
        .unwrap();
    assert_eq!(patch.path, "/apps/test-app/formation/web");
    let header = |name: &str| {
        patch
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("accept"), "application/vnd.heroku+json; version=3");
    assert_eq!(header("authorization"), format!("Bearer {KEY}"));
    assert_eq!(header("content-type"), "application/json");
    assert!(header("user-agent").starts_with("autoscalebot/"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&patch.body).unwrap(),
        serde_json::json!({ "quantity": 2 })
    );
    assert!(bot.terminate().await.success());
    assert!(!bot.stderr().contains(KEY) && !bot.stdout().contains(KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn scales_down_after_m_fast_heartbeats_and_never_below_the_min() {
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", KEY, 3).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "min_response_time_in_ms = 150\nnumber_of_passes_to_scale_down_after = 3\nmin_dynos = 1",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the formation reaches 1", || api.quantity() == 1).await;
    heartbeat.wait_for_more(4).await;
    assert_eq!(api.patches(), vec![2, 1]);
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_scaling_while_answers_are_in_band_and_the_heartbeat_is_most_requests() {
    let heartbeat = HeartbeatServer::start(150).await;
    let api = FormationApi::start("test-app", "web", KEY, 2).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "min_response_time_in_ms = 50\nmax_response_time_in_ms = 3000\nnumber_of_fails_to_scale_up_after = 1\nnumber_of_passes_to_scale_down_after = 1",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("25 heartbeats", || heartbeat.hits() >= 25).await;
    let beats = heartbeat.hits();
    let reads = api
        .requests()
        .iter()
        .filter(|request| request.method == "GET")
        .count() as u64;
    // The first beat reads, then the size is re-read every 10 heartbeats: never one a beat.
    assert!(
        (2..=beats / 3).contains(&reads),
        "{reads} formation reads in {beats} heartbeats"
    );
    assert!(api.patches().is_empty(), "in band: no scale");
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scale_made_by_hand_is_noticed_within_ten_heartbeats() {
    let heartbeat = HeartbeatServer::start(100).await;
    let api = FormationApi::start("test-app", "web", KEY, 2).await;
    // In band, so that only a read can make the worker scale.
    let settings = local_settings(
        &api,
        &heartbeat,
        "min_response_time_in_ms = 10\nmax_response_time_in_ms = 5000\nmax_dynos = 3",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the first read", || !api.requests().is_empty()).await;
    heartbeat.wait_for_more(2).await;
    api.scale_by_hand(5); // past the max, from the dashboard
    let hits = heartbeat.hits();
    wait_until("the worker brings it back to the max", || {
        api.patches() == vec![3]
    })
    .await;
    // The read comes at most ten heartbeats after the one before it; one more beat may have
    // been in flight when the scale was made, and one may land before the write is seen here.
    let beats = heartbeat.hits() - hits;
    assert!(beats <= 12, "noticed after {beats} heartbeats");
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_in_a_non_utc_zone_moves_the_size_to_its_bound() {
    use chrono::{Duration as ChronoDuration, Timelike, Utc};
    // An entry of 2 that began two minutes ago in Kolkata and an entry of 1 starting in an
    // hour: in Kolkata the 2 is in force; read in UTC (5:30 behind) it would be the 1.
    let kolkata = Utc::now().with_timezone(&chrono_tz::Asia::Kolkata);
    let fmt = |t: chrono::DateTime<chrono_tz::Tz>| format!("{}:{:02}", t.hour(), t.minute());
    let began = fmt(kolkata - ChronoDuration::minutes(2));
    let ends = fmt(kolkata + ChronoDuration::minutes(60));
    let heartbeat = HeartbeatServer::start(100).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "min_response_time_in_ms = 10\nmax_response_time_in_ms = 5000\ntime_zone = \"Asia/Kolkata\"\nmax_dynos = 4\nmin_dynos = {{ \"{began}\" = 2, \"{ends}\" = 1 }}"
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the formation reaches the scheduled min of 2", || {
        api.quantity() == 2
    })
    .await;
    assert_eq!(api.patches(), vec![2]);
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_worker_with_exit_code_0() {
    let heartbeat = HeartbeatServer::start(100).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let mut bot = Bot::start(&local_settings(&api, &heartbeat, ""), &[], &[]);
    wait_until("the first heartbeat", || heartbeat.hits() >= 1).await;
    let started = std::time::Instant::now();
    let status = bot.terminate().await;
    assert_eq!(status.code(), Some(0), "stderr: {}", bot.stderr());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "exits within the shutdown deadline"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_decides_and_notifies_but_never_patches() {
    let heartbeat = HeartbeatServer::start(400).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "max_response_time_in_ms = 200\nnumber_of_fails_to_scale_up_after = 2\nnotify_on_every_scale = true\nnotification_backends = [\"console\"]",
    );
    let mut bot = Bot::start(&settings, &["--dry-run"], &[]);
    wait_until("the console shows the decision", || {
        bot.stdout().contains("Would scale to (2) dynos (dry run).")
    })
    .await;
    assert!(api.patches().is_empty());
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_environment_overrides_the_file() {
    let heartbeat = HeartbeatServer::start(400).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "max_response_time_in_ms = 200\nnumber_of_fails_to_scale_up_after = 1\nmax_dynos = 5",
    );
    let mut bot = Bot::start(&settings, &[], &[("AUTOSCALE_MAX_DYNOS", "2")]);
    wait_until("the formation reaches 2", || api.quantity() == 2).await;
    heartbeat.wait_for_more(4).await;
    assert_eq!(api.patches(), vec![2]);
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_api_key_is_logged_and_told_and_the_worker_goes_on() {
    let heartbeat = HeartbeatServer::start(400).await;
    let api = FormationApi::start("test-app", "web", "the-right-key", 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "max_response_time_in_ms = 200\nnotify_on_scale_fails = true\nnotification_backends = [\"console\"]",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the refusal is logged", || {
        bot.stderr().contains("refused the API key")
    })
    .await;
    wait_until("the refusal is told", || {
        bot.stdout().contains("scale_failed") && bot.stdout().contains("401")
    })
    .await;
    heartbeat.wait_for_more(3).await;
    assert!(bot.is_running());
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(!output.contains(KEY), "the API key leaked:\n{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_4xx_heartbeat_is_reported_and_never_adds_dynos() {
    let heartbeat = HeartbeatServer::start(400).await;
    heartbeat.set_status(404);
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "max_response_time_in_ms = 200\nnumber_of_fails_to_scale_up_after = 1",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the 404 is reported", || {
        bot.stderr().contains("answered 404")
    })
    .await;
    wait_until("five heartbeats", || heartbeat.hits() >= 5).await;
    assert!(api.patches().is_empty());
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_prints_the_values_in_force_and_hides_the_key() {
    let (_dir, path) = settings_file(
        "heroku_app_name = \"my-app\"\nheroku_api_key = \"check-secret-42\"\nmax_dynos = { \"0:00\" = 2, \"9:00\" = 5 }",
    );
    let output = command()
        .args(["check", "--settings"])
        .arg(&path)
        .env("AUTOSCALE_INCREMENT", "2")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("heroku_api_key = \"***\""), "{stdout}");
    assert!(stdout.contains("max_dynos = { \"0:00\" = 2, \"9:00\" = 5 }"));
    assert!(stdout.contains("increment = 2"));
    // Apps made since mid-2023 answer at NAME-<random>.herokuapp.com: the address is the
    // app's web_url, read at start, and check says so rather than guess one from the name.
    assert!(
        stdout.contains("heartbeat_url = \"/autoscalebot/heartbeat/\" on the app's web_url"),
        "{stdout}"
    );
    assert!(
        stdout.contains("app_url = (not set: from the Platform API's web_url"),
        "{stdout}"
    );
    assert!(!stdout.contains("check-secret-42"));
}

#[test]
fn bad_settings_stop_the_worker_with_exit_code_2_naming_key_value_and_expectation() {
    let base = "heroku_app_name = \"my-app\"\nheroku_api_key = \"bad-secret-99\"\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "max_dynoz = 5",
            &["max_dynoz = 5", "did you mean max_dynos"],
        ),
        (
            "max_dynos = \"many\"",
            &["max_dynos = \"many\"", "whole number"],
        ),
        (
            "min_dynos = 4\nmax_dynos = 2",
            &["min_dynos", "max_dynos is 2"],
        ),
        (
            "max_dynos = { \"25:00\" = 3 }",
            &["max_dynos", "\"25:00\" is not a time of day"],
        ),
        (
            "time_zone = \"Moon/Base\"",
            &["time_zone = \"Moon/Base\"", "IANA"],
        ),
        (
            "heartbeat_interval_in_seconds = 0",
            &["heartbeat_interval_in_seconds = 0", "above 0"],
        ),
        ("increment = -1", &["increment = -1", "1 or more"]),
    ];
    for (extra, needles) in cases {
        let (_dir, path) = settings_file(&format!("{base}{extra}"));
        let output = command().arg("--settings").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra}: {stderr}");
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "{extra}: expected {needle:?} in {stderr}"
            );
        }
        assert!(
            !stderr.contains("bad-secret-99"),
            "the key leaked: {stderr}"
        );
    }
    // Missing name and key.
    let (_dir, path) = settings_file("max_dynos = 3");
    let output = command().arg("--settings").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("heroku_app_name is not set")
            && stderr.contains("heroku_api_key is not set")
    );
    // A settings file that does not exist.
    let output = command()
        .args(["--settings", "/nonexistent/settings.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/settings.toml"));
}

/// Settings given only as config vars (a time-of-day table and `[[apps]]` included) are the
/// settings of the same file: `check` prints the same values in force.
#[test]
fn config_vars_alone_give_the_same_settings_as_the_file() {
    let document = "heroku_api_key = \"vars-secret-77\"\nmax_dynos = { \"0:00\" = 2, \"9:00\" = 5 }\n\n\
                    [[apps]]\nheroku_app_name = \"shop\"\n\n[[apps]]\nheroku_app_name = \"api\"\nmin_dynos = 2\n";
    let (_dir, path) = settings_file(document);
    let check = |command: &mut Command| {
        let output = command
            .arg("check")
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        assert!(!stdout.contains("vars-secret-77"), "{stdout}");
        // The downtime file is found beside a settings file, in the working folder without
        // one: the only line that may differ.
        stdout
            .lines()
            .filter(|line| !line.contains("downtime.txt"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let from_file = check(command().arg("--settings").arg(&path));
    assert!(
        from_file.contains("max_dynos = { \"0:00\" = 2, \"9:00\" = 5 }"),
        "{from_file}"
    );
    let from_document = check(command().env("AUTOSCALE_SETTINGS", document));
    assert_eq!(from_document, from_file);
    let from_single_vars = check(
        command()
            .env("AUTOSCALE_HEROKU_API_KEY", "vars-secret-77")
            .env("AUTOSCALE_MAX_DYNOS", r#"{"0:00" = 2, "9:00" = 5}"#)
            .env(
                "AUTOSCALE_APPS",
                r#"[{heroku_app_name = "shop"}, {heroku_app_name = "api", min_dynos = 2}]"#,
            ),
    );
    assert_eq!(from_single_vars, from_file);
}
