//! Planned downtime as a team uses it: the built binary against a slow heartbeat server and a
//! Heroku-shaped formation API, with a window declared in each place the worker looks (the
//! settings, a file written while it runs, the environment, the heartbeat's own header).
//!
//! Windows are built around the real clock; each test waits for what the worker says
//! (`downtime_started` on the console) before asserting, and checks the order of what it
//! said rather than the time it took.

use crate::support::*;
use chrono::{Duration as ChronoDuration, Utc};
use std::process::Stdio;

const KEY: &str = "test-key-0123456789";

/// An interval from `from` to `to` after now, in UTC, as a person would write it.
fn interval(from: ChronoDuration, to: ChronoDuration) -> String {
    let now = Utc::now();
    let format = "%Y-%m-%dT%H:%M:%SZ";
    format!(
        "{}/{}",
        (now + from).format(format),
        (now + to).format(format)
    )
}

/// A window that began a minute ago and lasts an hour: in force for the whole test.
fn current_window() -> String {
    interval(ChronoDuration::minutes(-1), ChronoDuration::hours(1))
}

/// Slow heartbeats are fails; two of them scale up, so every quiet heartbeat counts.
const SLOW: &str = "max_response_time_in_ms = 200
min_response_time_in_ms = 50
number_of_fails_to_scale_up_after = 2
max_dynos = 4
notification_backends = [\"console\"]
notify_on_every_scale = true";

fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_in_the_settings_stops_scale_up_and_downtime_dynos_holds_the_size() {
    let heartbeat = HeartbeatServer::start(400).await;
    let api = FormationApi::start("test-app", "web", KEY, 3).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW}\ndowntime = [\"{}\"]\ndowntime_dynos = 1",
            current_window()
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the window is told", || {
        bot.stdout().contains("downtime_started")
    })
    .await;
    wait_until("the formation is held at 1", || api.quantity() == 1).await;
    heartbeat.wait_for_more(6).await;
    assert_eq!(
        api.patches(),
        vec![1],
        "held at downtime_dynos; six slow heartbeats and no scale up"
    );
    assert!(bot.terminate().await.success());
    let stdout = bot.stdout();
    assert_eq!(occurrences(&stdout, "downtime_started"), 1, "{stdout}");
    assert_eq!(occurrences(&stdout, "downtime_ended"), 0, "{stdout}");
    assert!(
        stdout.contains("from settings downtime[0]"),
        "the start names its source: {stdout}"
    );
    assert!(
        stdout.contains("Holding 1 dynos."),
        "the start says the size is held: {stdout}"
    );
    assert!(!stdout.contains(KEY) && !bot.stderr().contains(KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_in_the_environment_stops_scale_up_and_a_bad_item_is_reported_once() {
    let heartbeat = HeartbeatServer::start(400).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(&api, &heartbeat, SLOW);
    let env_value = format!("not-a-window, {}", current_window());
    let mut bot = Bot::start(&settings, &[], &[("AUTOSCALE_DOWNTIME", &env_value)]);
    wait_until("the window is told", || {
        bot.stdout().contains("downtime_started")
    })
    .await;
    heartbeat.wait_for_more(6).await;
    assert!(api.patches().is_empty(), "no scale up during the window");
    assert!(bot.is_running(), "a bad item never stops the worker");
    assert!(bot.terminate().await.success());
    let stderr = bot.stderr();
    assert_eq!(occurrences(&stderr, "not-a-window"), 1, "{stderr}");
    let report = stderr
        .lines()
        .find(|line| line.contains("not-a-window"))
        .unwrap();
    assert!(report.contains("AUTOSCALE_DOWNTIME"), "{report}");
    assert!(report.contains("no \"/\""), "says what is wrong: {report}");
    assert!(bot
        .stdout()
        .contains("from environment variable AUTOSCALE_DOWNTIME"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_the_app_announces_in_a_header_stops_scale_up_until_it_is_withdrawn() {
    // In band at first, announcing garbage: reported once, ignored.
    let heartbeat = HeartbeatServer::start(100).await;
    heartbeat.set_header("X-Downtime", "soon-ish");
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(&api, &heartbeat, SLOW);
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the garbage is reported", || {
        bot.stderr().contains("soon-ish")
    })
    .await;
    heartbeat.wait_for_more(4).await;
    assert_eq!(occurrences(&bot.stderr(), "soon-ish"), 1, "told once");
    assert!(bot.stderr().contains("X-Downtime"), "names the header");

    // A real announcement, then the app slows down.
    heartbeat.set_header("X-Downtime", &current_window());
    wait_until("the window is told", || {
        bot.stdout().contains("downtime_started")
    })
    .await;
    heartbeat.set_latency_ms(400);
    heartbeat.wait_for_more(6).await;
    assert!(api.patches().is_empty(), "no scale up during the window");

    // The app stops sending the header: the window stays (the app may be down).
    heartbeat.clear_header();
    heartbeat.wait_for_more(4).await;
    assert!(
        api.patches().is_empty(),
        "a response without the header changes nothing"
    );

    // An empty value withdraws it: scaling resumes from fresh counts.
    heartbeat.set_header("X-Downtime", "");
    wait_until("the formation scales up", || api.quantity() >= 2).await;
    assert!(bot.terminate().await.success());
    let stdout = bot.stdout();
    assert_eq!(occurrences(&stdout, "downtime_started"), 1, "{stdout}");
    assert_eq!(occurrences(&stdout, "downtime_ended"), 1, "{stdout}");
    assert!(
        stdout.find("downtime_ended").unwrap() < stdout.find(" scaled:").unwrap(),
        "the scale comes after the end: {stdout}"
    );
    assert!(stdout.contains("from heartbeat response header X-Downtime"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_written_while_the_worker_runs_holds_scale_up_until_the_window_ends() {
    let heartbeat = HeartbeatServer::start(100).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!("{SLOW}\nnotify_on_every_ping = true"),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    heartbeat.wait_for_more(2).await;

    // Declared beside the settings, as a person would, written whole (rename) so the worker
    // never reads half a file. The window ends 8 s from now.
    let path = bot.dir().join("downtime.txt");
    let draft = bot.dir().join("downtime.txt.new");
    let window = interval(ChronoDuration::minutes(-1), ChronoDuration::seconds(8));
    std::fs::write(&draft, format!("# the migration\nnonsense\n{window}\n")).unwrap();
    std::fs::rename(&draft, &path).unwrap();
    wait_until("the window is told", || {
        bot.stdout().contains("downtime_started")
    })
    .await;
    heartbeat.set_latency_ms(400);
    wait_until("the window ends", || {
        bot.stdout().contains("downtime_ended")
    })
    .await;
    wait_until("scale up resumes", || api.quantity() >= 2).await;
    heartbeat.wait_for_more(2).await;
    assert!(bot.terminate().await.success());

    let stdout = bot.stdout();
    let started = stdout.find("downtime_started").unwrap();
    let ended = stdout.find("downtime_ended").unwrap();
    let first_scale = stdout.find(" scaled:").expect("a scale after the window");
    assert!(
        started < ended && ended < first_scale,
        "no scale before the window ended: {stdout}"
    );
    let slow_in_window = occurrences(&stdout[started..ended], "high (planned downtime)");
    assert!(
        slow_in_window >= 2,
        "enough slow heartbeats in the window to have scaled without it ({slow_in_window}): {stdout}"
    );
    assert_eq!(occurrences(&stdout, "downtime_started"), 1, "{stdout}");
    assert_eq!(occurrences(&stdout, "downtime_ended"), 1, "{stdout}");
    assert!(stdout.contains("downtime.txt line 3"), "{stdout}");
    let stderr = bot.stderr();
    assert_eq!(occurrences(&stderr, "\"nonsense\""), 1, "{stderr}");
    let report = stderr
        .lines()
        .find(|line| line.contains("nonsense"))
        .unwrap();
    assert!(report.contains("downtime.txt line 2"), "{report}");
}

#[test]
fn check_lists_the_windows_with_their_source_in_local_time() {
    let (dir, path) = settings_file(
        "heroku_app_name = \"my-app\"\nheroku_api_key = \"k\"\ntime_zone = \"America/Vancouver\"\n\
         downtime = [\"2026-11-25T01:00/PT3H\"]\ndowntime_dynos = 1",
    );
    std::fs::write(
        dir.path().join("downtime.txt"),
        "2026-11-26T01:00Z/2026-11-26T02:00Z\n2026-11-26T05:00/2026-11-26T04:00\n",
    )
    .unwrap();
    let output = command()
        .args(["check", "--settings"])
        .arg(&path)
        .env("AUTOSCALE_DOWNTIME", "2026-11-27T01:00-08:00/PT90M")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let file = dir.path().join("downtime.txt").display().to_string();
    for needle in [
        "# planned downtime windows (3, times in America/Vancouver):".to_string(),
        "2026-11-25 01:00 PST to 2026-11-25 04:00 PST".to_string(),
        "from settings downtime[0]".to_string(),
        "2026-11-25 17:00 PST to 2026-11-25 18:00 PST".to_string(),
        format!("from {file} line 1"),
        "2026-11-27 01:00 PST to 2026-11-27 02:30 PST".to_string(),
        "from environment variable AUTOSCALE_DOWNTIME".to_string(),
        format!("# ignored: {file} line 2: \"2026-11-26T05:00/2026-11-26T04:00\""),
        "downtime_dynos = 1".to_string(),
        "downtime header X-Downtime".to_string(),
    ] {
        assert!(
            stdout.contains(&needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }

    let disabled = command()
        .args(["check", "--settings"])
        .arg(&path)
        .env("AUTOSCALE_DOWNTIME_DISABLE", "1")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&disabled.stdout);
    assert_eq!(disabled.status.code(), Some(0), "not an unknown setting");
    assert!(stdout.contains("downtime_disable = true"), "{stdout}");
    assert!(stdout.contains("every source is ignored"), "{stdout}");
}

#[test]
fn a_bad_window_in_the_settings_file_is_a_bad_setting() {
    let (_dir, path) = settings_file(
        "heroku_app_name = \"my-app\"\nheroku_api_key = \"k\"\n\
         downtime = [\"2026-11-25T04:00/2026-11-25T01:00\"]",
    );
    let output = command().arg("--settings").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("downtime = \"2026-11-25T04:00/2026-11-25T01:00\""),
        "{stderr}"
    );
    assert!(stderr.contains("is not after the start"), "{stderr}");
}
