//! The `slack` backend as a user runs it: the built binary posting to a real local HTTP
//! server that stands in for Slack's incoming webhook endpoint. The message is Slack's format
//! (`text` and `blocks`), and the webhook URL, whose path is Slack's token, never appears in
//! the output, the logs or `check`.

use crate::support::*;
use std::process::Stdio;

const KEY: &str = "test-key-0123456789";
/// The secret part of the webhook URL, as Slack gives it.
const TOKEN: &str = "T0SLACK/B0HOOK/slack-token-Kx93";

/// The settings of one app telling Slack at `webhook_url`, plus `extra`.
fn slack_settings(webhook_url: &str, extra: &str) -> String {
    format!(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"{KEY}\"\nnotification_backends = [\"slack\"]\n{extra}\n[slack]\nwebhook_url = \"{webhook_url}\"\n"
    )
}

/// `autoscalebot ARGS --settings FILE` with `env`: its exit code, stdout and stderr.
fn run(args: &[&str], settings: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let (_dir, path) = settings_file(settings);
    let output = command()
        .args(args)
        .arg(format!("--settings={}", path.display()))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_test_posts_slacks_message_format_and_check_hides_the_token() {
    let slack = HookServer::start(HookMode::Status(200)).await;
    let webhook_url = format!("{}/services/{TOKEN}", slack.url);
    let settings = slack_settings(&webhook_url, "");

    let (code, stdout, stderr) = run(&["notify-test"], &settings, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("slack: delivered"), "{stdout}");
    let requests = slack.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/services/{TOKEN}"));
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(request.headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("autoscalebot/"));
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    let text = body["text"].as_str().expect("a text for notifications");
    assert!(
        text.starts_with("test-app: This is a test notification from autoscalebot"),
        "{text}"
    );
    let blocks = body["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert!(blocks[0]["text"]["text"]
        .as_str()
        .unwrap()
        .starts_with("*test-app* · test\n"));
    assert_eq!(blocks[1]["type"], "context");
    assert!(blocks[1]["elements"][0]["text"]
        .as_str()
        .unwrap()
        .contains("min 1, max 3"));

    let (code, stdout, stderr) = run(&["check"], &settings, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let shown = format!("slack.webhook_url = \"{}/***\"", slack.url);
    assert!(stdout.contains(&shown), "no {shown} in:\n{stdout}");
    assert!(stdout.contains("slack.timeout = \"10s\""), "{stdout}");
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains("slack-token-Kx93"),
            "the token leaked:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_tells_slack_when_it_scales_with_the_url_from_a_config_var() {
    let slack = HookServer::start(HookMode::Status(200)).await;
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let webhook_url = format!("{}/services/{TOKEN}", slack.url);
    let settings = local_settings(
        &api,
        &heartbeat,
        "max_response_time_in_ms = 100\nmin_response_time_in_ms = 10\nnumber_of_fails_to_scale_up_after = 2\n\
         max_dynos = 2\nnotify_on_every_scale = true\nnotification_backends = [\"slack\"]\n\
         [slack]\nwebhook_url = \"env:SLACK_WEBHOOK\"\n",
    );
    let mut bot = Bot::start(
        &settings,
        &[],
        &[("SLACK_WEBHOOK", &webhook_url), ("RUST_LOG", "debug")],
    );
    wait_until("Slack hears of the scale", || {
        slack.json_bodies().iter().any(|body| {
            body["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Scaled to (2) dynos.")
        })
    })
    .await;
    let body = slack
        .json_bodies()
        .into_iter()
        .find(|body| {
            body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("· scaled\n")
        })
        .expect("a scaled message");
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        "*test-app* · scaled\nScaled to (2) dynos."
    );
    let facts = body["blocks"][1]["elements"][0]["text"].as_str().unwrap();
    assert!(
        facts.contains("1 → 2 dynos") && facts.contains("min 1, max 2"),
        "{facts}"
    );
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    for secret in ["slack-token-Kx93", KEY] {
        assert!(!output.contains(secret), "{secret} leaked:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_webhook_is_a_clear_error_that_never_shows_the_url() {
    let slack = HookServer::start(HookMode::Status(404)).await;
    let webhook_url = format!("{}/services/{TOKEN}", slack.url);
    let settings = slack_settings(&webhook_url, "");
    let (code, stdout, stderr) = run(&["notify-test"], &settings, &[("RUST_LOG", "debug")]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let said = format!(
        "slack: failed: POST {}/*** answered 404 Not Found: hook says hi (the webhook is gone",
        slack.url
    );
    assert!(stdout.contains(&said), "no {said:?} in:\n{stdout}");
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains("slack-token-Kx93"),
            "the token leaked:\n{output}"
        );
    }

    // A URL that is not one stops the worker (exit 2), naming the key, never the token.
    let settings = slack_settings("htps:/hooks.slack.com/services/T0/B0/slack-token-Kx93", "");
    let (code, _, stderr) = run(&["check"], &settings, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("slack.webhook_url = \"***\": expected a Slack incoming webhook URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("slack-token-Kx93"), "{stderr}");
    // Named without its table: the table is asked for.
    let (code, _, stderr) = run(
        &["check"],
        &format!("heroku_app_name = \"test-app\"\nheroku_api_key = \"{KEY}\"\nnotification_backends = [\"slack\"]\n"),
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("slack.webhook_url is not set: expected a [slack] table with webhook_url"),
        "{stderr}"
    );
}
