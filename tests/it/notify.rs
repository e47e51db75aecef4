//! Notifications as people receive them: the built binary sending mail to a real SMTP server
//! (aiosmtpd, a Python process) and web hooks to a real local HTTP server, with servers that
//! refuse, fail, hang or are down, while the worker goes on scaling.

use crate::support::*;
use std::process::Stdio;

const KEY: &str = "test-key-0123456789";
const SMTP_USER: &str = "bot";
const SMTP_PASSWORD: &str = "smtp-pass-Zq81";
const HOOK_SECRET: &str = "hook-header-Wv27";

/// Settings that email `ops@example.com` and `lead@example.com` through `smtp_port`.
fn email_table(smtp_port: u16, extra: &str) -> String {
    format!(
        r#"
[email]
smtp_url = "smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{smtp_port}"
from = "autoscalebot <bot@example.com>"
to = ["ops@example.com", "Lead <lead@example.com>"]
{extra}
"#
    )
}

/// Slow heartbeats that scale 1 → max one dyno at a time, then stay slow at the max.
const SLOW_TO_MAX: &str =
    "max_response_time_in_ms = 100\nmin_response_time_in_ms = 10\nnumber_of_fails_to_scale_up_after = 2";

#[tokio::test(flavor = "multi_thread")]
async fn email_reaches_a_real_smtp_server_with_the_numbers_and_what_to_change() {
    let smtp = SmtpServer::start(free_port(), Some((SMTP_USER, SMTP_PASSWORD)), &[]);
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 2\nnotify_on_every_scale = true\nnotification_backends = [\"email\"]\n{}",
            email_table(smtp.port, "")
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the scale and the needs-above-max mails arrive", || {
        smtp.mails().len() >= 2
    })
    .await;
    let mails = smtp.mails();
    let scaled = &mails[0];
    assert_eq!(
        scaled.subject,
        "[autoscalebot] test-app: scaled from 1 to 2 dynos"
    );
    assert_eq!(scaled.login.as_deref(), Some(SMTP_USER), "it logged in");
    assert_eq!(scaled.tls, None, "plain SMTP, as the URL says");
    assert_eq!(scaled.mail_from, "bot@example.com");
    assert_eq!(scaled.rcpt_tos, vec!["ops@example.com", "lead@example.com"]);
    assert!(
        scaled.to.contains("Lead <lead@example.com>"),
        "{}",
        scaled.to
    );
    for expected in [
        "Scaled to (2) dynos.",
        "Dynos:           1 -> 2",
        "min_dynos 1, max_dynos 2",
        "2 consecutive heartbeats slower than 100 ms",
        "notify_on_every_scale = false",
        "Last heartbeat:",
    ] {
        assert!(
            scaled.body.contains(expected),
            "{expected:?} missing:\n{}",
            scaled.body
        );
    }
    let at_max = &mails[1];
    assert_eq!(
        at_max.subject,
        "[autoscalebot] test-app: needs more than max_dynos (2)"
    );
    for expected in [
        "We are at the max (2) dynos",
        "Last heartbeat:",
        "Raise max_dynos",
    ] {
        assert!(
            at_max.body.contains(expected),
            "{expected:?} missing:\n{}",
            at_max.body
        );
    }
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    for secret in [SMTP_PASSWORD, KEY] {
        assert!(!output.contains(secret), "{secret} leaked:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_hook_carries_its_method_headers_and_body() {
    let hook = HookServer::start(HookMode::Status(200)).await;
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            r#"{SLOW_TO_MAX}
max_dynos = 2
notify_on_every_scale = true
notification_backends = ["webhook"]
[webhook]
url = "{}/services/T0/B0/path-token"
method = "PUT"
headers = {{ Authorization = "Bearer {HOOK_SECRET}", X-Team = "ops" }}
body = '{{"text": "{{app}}: {{message}} ({{from}} -> {{to}}, {{reason}})"}}'
"#,
            hook.url
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the scale hook arrives", || !hook.requests().is_empty()).await;
    let request = &hook.requests()[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/services/T0/B0/path-token");
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("authorization"), format!("Bearer {HOOK_SECRET}"));
    assert_eq!(header("x-team"), "ops");
    assert_eq!(header("content-type"), "application/json");
    assert!(header("user-agent").starts_with("autoscalebot/"));
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(
        body["text"],
        "test-app: Scaled to (2) dynos. (1 -> 2, from 1 to 2: 2 consecutive heartbeats slower than 100 ms or failing)"
    );
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    for secret in [HOOK_SECRET, "path-token", KEY] {
        assert!(!output.contains(secret), "{secret} leaked:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_hook_body_is_a_json_object_of_the_event() {
    let hook = HookServer::start(HookMode::Status(204)).await;
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 2\nnotify_on_every_scale = true\nnotification_backends = [\"webhook\"]\n[webhook]\nurl = \"{}/hook\"",
            hook.url
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the scale hook arrives", || !hook.json_bodies().is_empty()).await;
    let request = &hook.requests()[0];
    assert_eq!(request.method, "POST");
    let body = &hook.json_bodies()[0];
    assert_eq!(body["event"], "scaled");
    assert_eq!(body["app"], "test-app");
    assert_eq!(body["from"], 1);
    assert_eq!(body["to"], 2);
    assert_eq!(body["max"], 2);
    assert_eq!(body["message"], "Scaled to (2) dynos.");
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persistent_state_is_told_once_not_on_every_heartbeat() {
    let hook = HookServer::start(HookMode::Status(200)).await;
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 2).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 2\nnotification_backends = [\"webhook\"]\n[webhook]\nurl = \"{}/hook\"",
            hook.url
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("needs-above-max is told", || {
        hook.events().contains(&"needs_above_max".to_string())
    })
    .await;
    heartbeat.wait_for_more(20).await;
    assert_eq!(
        hook.events(),
        vec!["needs_above_max"],
        "told once, not per heartbeat"
    );

    heartbeat.set_latency_ms(50); // in band: the state ends
    wait_until("its end is told", || hook.events().len() >= 2).await;
    heartbeat.wait_for_more(10).await;
    assert_eq!(
        hook.events(),
        vec!["needs_above_max", "needs_above_max_ended"]
    );
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_smtp_server_hangs_the_heartbeat_keeps_its_pace_and_mail_arrives_later() {
    let smtp_port = free_port();
    let silent = SilentServer::start(smtp_port).await;
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 3\nnotify_on_every_scale = true\nnotification_backends = [\"email\", \"console\"]\n{}",
            email_table(smtp_port, "timeout = \"1s\"")
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the worker scales to 3 while mail hangs", || {
        api.quantity() == 3
    })
    .await;
    heartbeat.wait_for_more(10).await;
    wait_until("the hanging server is logged", || {
        bot.stderr().contains("Notification failed; retrying.")
    })
    .await;
    assert!(
        bot.stderr().contains("no answer within 1s"),
        "{}",
        bot.stderr()
    );
    assert!(
        bot.stdout().contains("Scaled to (3) dynos."),
        "the console backend is not held up by email"
    );

    silent.stop().await;
    let smtp = SmtpServer::start(smtp_port, Some((SMTP_USER, SMTP_PASSWORD)), &[]);
    wait_until("both scale mails arrive once the server is back", || {
        smtp.mails().len() >= 2
    })
    .await;
    assert_eq!(
        smtp.subjects()[..2],
        [
            "[autoscalebot] test-app: scaled from 1 to 2 dynos",
            "[autoscalebot] test-app: scaled from 2 to 3 dynos"
        ]
    );
    assert!(bot.is_running());
    assert!(bot.terminate().await.success());
    assert!(!bot.stderr().contains(SMTP_PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_that_hangs_or_answers_500_is_retried_and_what_was_dropped_is_told() {
    let hook = HookServer::start(HookMode::Hang).await;
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 3\nnotify_on_every_ping = true\nnotification_backends = [\"webhook\"]\n[webhook]\nurl = \"{}/hook\"\ntimeout = \"500ms\"\ngive_up_after = \"1s\"",
            hook.url
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the worker scales to 3 while the hook hangs", || {
        api.quantity() == 3
    })
    .await;
    wait_until("a hanging send is dropped", || {
        bot.stderr().contains("Notification dropped.")
    })
    .await;

    hook.set_mode(HookMode::Status(500));
    let seen = hook.requests().len();
    wait_until("a 500 is logged", || {
        bot.stderr().contains("answered 500 Internal Server Error")
    })
    .await;
    heartbeat.wait_for_more(5).await;
    assert!(hook.requests().len() > seen + 1, "sends are retried");

    hook.set_mode(HookMode::Status(200));
    wait_until("the loss is told when the hook answers again", || {
        hook.events().contains(&"notifications_dropped".to_string())
    })
    .await;
    let notice = hook
        .json_bodies()
        .into_iter()
        .find(|body| body["event"] == "notifications_dropped")
        .unwrap();
    let message = notice["message"].as_str().unwrap();
    let count: u64 = message.split(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2, "{message}");
    assert!(
        message.contains("were dropped while webhook was down"),
        "{message}"
    );
    assert!(bot.is_running());
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_recipient_is_a_clear_error_and_the_worker_keeps_scaling() {
    let smtp = SmtpServer::start(free_port(), None, &["nobody@example.com"]);
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 3\nnotify_on_every_scale = true\nnotification_backends = [\"email\"]\n[email]\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"bot@example.com\"\nto = [\"nobody@example.com\"]",
            smtp.port
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the refusal is logged", || {
        bot.stderr().contains("550") && bot.stderr().contains("no such mailbox here")
    })
    .await;
    wait_until("the worker scales to 3 regardless", || api.quantity() == 3).await;
    assert!(
        !bot.stderr().contains("Notification failed; retrying."),
        "a refused recipient is not retried"
    );
    assert!(smtp.mails().is_empty());
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_refused_recipient_does_not_keep_the_message_from_the_others() {
    let smtp = SmtpServer::start(
        free_port(),
        Some((SMTP_USER, SMTP_PASSWORD)),
        &["nobody@example.com"],
    );
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 2\nhttp_port = 0\nnotify_on_every_scale = true\nnotification_backends = [\"email\"]\n{}",
            email_table(smtp.port, "").replace(
                r#"to = ["ops@example.com", "Lead <lead@example.com>"]"#,
                r#"to = ["ops@example.com", "Nobody <nobody@example.com>"]"#,
            )
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the scale mail reaches the good address", || {
        smtp.mails()
            .iter()
            .any(|mail| mail.subject.contains("scaled from 1 to 2"))
    })
    .await;
    let mail = smtp
        .mails()
        .into_iter()
        .find(|mail| mail.subject.contains("scaled from 1 to 2"))
        .unwrap();
    assert_eq!(mail.rcpt_tos, vec!["ops@example.com"]);
    assert!(
        mail.to.contains("Nobody <nobody@example.com>"),
        "the message itself is unchanged: {}",
        mail.to
    );
    wait_until("the refused address is logged", || {
        bot.stderr().contains("Email recipient refused")
    })
    .await;
    let refusal = bot
        .stderr()
        .lines()
        .find(|line| line.contains("Email recipient refused"))
        .unwrap()
        .to_string();
    assert!(refusal.contains("address=nobody@example.com"), "{refusal}");
    assert!(refusal.contains("550"), "the server's answer: {refusal}");
    let base = bot.http_url().await;
    let (_, text) = get_text(&base, "/metrics").await;
    let refused = metric_value(
        &parse_metrics(&text),
        "autoscalebot_notification_recipients_refused_total",
        &[("backend", "email")],
    );
    assert!(refused >= Some(1.0), "{refused:?}\n{text}");
    assert!(
        !bot.stderr().contains("Notification dropped."),
        "delivered to the others, not dropped"
    );
    assert!(bot.terminate().await.success());
    for output in [bot.stdout(), bot.stderr()] {
        assert!(!output.contains(SMTP_PASSWORD), "the password leaked");
    }
}

fn notify_test(settings: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let (_dir, path) = settings_file(settings);
    let output = command()
        .arg("notify-test")
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
async fn notify_test_reports_each_backend_and_env_overrides_reach_the_tables() {
    let smtp = SmtpServer::start(free_port(), Some((SMTP_USER, SMTP_PASSWORD)), &[]);
    let hook = HookServer::start(HookMode::Status(500)).await;
    // The secrets come from the environment only, as on Heroku.
    let settings = format!(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"{KEY}\"\nnotification_backends = [\"email\", \"webhook\", \"console\"]\n[email]\nfrom = \"bot@example.com\"\nto = [\"ops@example.com\"]\n[webhook]\nheaders = {{ X-Team = \"ops\" }}\n"
    );
    let smtp_url = format!("smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}", smtp.port);
    let hook_url = format!("{}/hook/path-token", hook.url);
    let env = [
        ("AUTOSCALE_EMAIL__SMTP_URL", smtp_url.as_str()),
        ("AUTOSCALE_WEBHOOK__URL", hook_url.as_str()),
        ("AUTOSCALE_WEBHOOK__HEADERS__X_API_KEY", HOOK_SECRET),
    ];
    let (code, stdout, stderr) = notify_test(&settings, &env);
    assert_eq!(code, Some(1), "a backend failed:\n{stdout}{stderr}");
    assert!(stdout.contains("email: delivered"), "{stdout}");
    assert!(
        stdout.contains("webhook: failed: POST http://127.0.0.1:")
            && stdout.contains("/*** answered 500 Internal Server Error: hook says hi"),
        "{stdout}"
    );
    assert!(stdout.contains("console: delivered"), "{stdout}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject,
        "[autoscalebot] test-app: test notification"
    );
    assert!(mails[0].body.contains("autoscalebot notify-test"));
    let request = &hook.requests()[0];
    assert_eq!(request.headers.get("x-api-key").unwrap(), HOOK_SECRET);
    assert_eq!(request.headers.get("x-team").unwrap(), "ops");
    assert_eq!(hook.events(), vec!["test"]);

    hook.set_mode(HookMode::Status(200));
    let (code, stdout, _) = notify_test(&settings, &env);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("webhook: delivered"), "{stdout}");
    for secret in [SMTP_PASSWORD, HOOK_SECRET, KEY, "path-token"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_or_refusing_smtp_server_is_a_clear_error() {
    let base = "heroku_app_name = \"test-app\"\nheroku_api_key = \"k\"\nnotification_backends = [\"email\"]\n";
    let closed = free_port();
    let (code, stdout, _) = notify_test(&format!("{base}{}", email_table(closed, "")), &[]);
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains(&format!(
            "email: failed: SMTP server smtp://***@127.0.0.1:{closed}: Connection error"
        )) && stdout.contains("refused"),
        "{stdout}"
    );

    // A wrong password is refused, and told without the password.
    let smtp = SmtpServer::start(free_port(), Some((SMTP_USER, "another-password")), &[]);
    let (code, stdout, stderr) = notify_test(&format!("{base}{}", email_table(smtp.port, "")), &[]);
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("email: failed:") && stdout.contains("535"),
        "{stdout}"
    );
    assert!(!stdout.contains(SMTP_PASSWORD) && !stderr.contains(SMTP_PASSWORD));

    // STARTTLS asked for but not offered: refused before the password is sent.
    let smtp = SmtpServer::start(free_port(), None, &[]);
    let settings = format!(
        "{base}[email]\nsmtp_url = \"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}?tls=required\"\nfrom = \"bot@example.com\"\nto = [\"ops@example.com\"]",
        smtp.port
    );
    let (code, stdout, _) = notify_test(&settings, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("email: failed: SMTP server smtp://***@127.0.0.1:")
            && stdout.contains("STARTTLS is not supported"),
        "{stdout}"
    );
    assert!(smtp.mails().is_empty());
}

#[test]
fn a_malformed_placeholder_or_address_stops_the_worker_with_exit_2_naming_it() {
    let settings = "heroku_app_name = \"test-app\"\nheroku_api_key = \"k\"\nnotification_backends = [\"webhook\", \"email\"]\n[webhook]\nurl = \"http://127.0.0.1:9/hook\"\nbody = '{\"text\": \"{mesage}\"}'\n[email]\nsmtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"bot@example.com\"\nto = [\"ops at example\"]\n";
    let (_dir, path) = settings_file(settings);
    let output = command()
        .arg(format!("--settings={}", path.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("webhook.body") && stderr.contains("unknown placeholder {mesage}"),
        "{stderr}"
    );
    assert!(stderr.contains("email.to = \"ops at example\""), "{stderr}");
}

#[test]
fn check_shows_the_tables_with_secrets_hidden() {
    let settings = format!(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"{KEY}\"\n{}\n[webhook]\nurl = \"https://hooks.example.com/services/path-token\"\nheaders = {{ Authorization = \"Bearer {HOOK_SECRET}\" }}\n",
        email_table(2525, "")
    );
    let (_dir, path) = settings_file(&settings);
    let output = command()
        .arg("check")
        .arg(format!("--settings={}", path.display()))
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("email.smtp_url = \"smtp://***@127.0.0.1:2525\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("email.to = [\"ops@example.com\", \"Lead <lead@example.com>\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("webhook.url = \"https://hooks.example.com/***\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("webhook.headers = { \"authorization\" = \"***\" }"),
        "{stdout}"
    );
    for secret in [SMTP_PASSWORD, HOOK_SECRET, KEY, "path-token"] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_any_output_even_with_debug_logs_and_failing_backends() {
    let smtp = SmtpServer::start(free_port(), Some((SMTP_USER, "not-the-password")), &[]);
    let hook = HookServer::start(HookMode::Status(401)).await;
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 2\nnotify_on_every_scale = true\nnotify_on_every_ping = true\nnotification_backends = [\"email\", \"webhook\", \"console\", \"log\"]\n[webhook]\nurl = \"{}/hook/path-token\"\nheaders = {{ Authorization = \"Bearer {HOOK_SECRET}\" }}\n{}",
            hook.url,
            email_table(smtp.port, "")
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[("RUST_LOG", "debug")]);
    wait_until("the worker scales and both backends fail", || {
        api.quantity() == 2
            && bot.stderr().contains("answered 401")
            && bot.stderr().contains("Authentication credentials invalid")
    })
    .await;
    assert!(bot.terminate().await.success());
    let bodies: String = hook
        .requests()
        .iter()
        .map(|request| request.body.clone())
        .collect();
    for (what, text) in [
        ("stdout", bot.stdout()),
        ("stderr", bot.stderr()),
        ("hook bodies", bodies),
    ] {
        for secret in [SMTP_PASSWORD, HOOK_SECRET, KEY, "path-token"] {
            assert!(
                !text.contains(secret),
                "{secret} appears in {what}:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_test_names_a_refused_address_while_the_others_get_the_message() {
    let smtp = SmtpServer::start(free_port(), None, &["nobody@example.com"]);
    let settings = format!(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"{KEY}\"\nnotification_backends = [\"email\"]\n[email]\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"bot@example.com\"\nto = [\"nobody@example.com\", \"ops@example.com\"]\n",
        smtp.port
    );
    let (code, stdout, stderr) = notify_test(&settings, &[]);
    assert_eq!(code, Some(1), "an address is wrong:\n{stdout}{stderr}");
    assert!(
        stdout.contains("email: delivered, but refused for nobody@example.com:")
            && stdout.contains("550"),
        "{stdout}"
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, vec!["ops@example.com"]);
}

// ---- email over real TLS: a private CA made in the test, aiosmtpd serving its certificate ----

/// `[email]` for `notify-test` through `smtp_url`, trusting `ca_file` when given.
fn tls_email_settings(smtp_url: &str, ca_file: Option<&std::path::Path>) -> String {
    let ca_line = ca_file
        .map(|path| format!("tls_ca_file = \"{}\"\n", path.display()))
        .unwrap_or_default();
    format!(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"{KEY}\"\nnotification_backends = [\"email\"]\n[email]\nsmtp_url = \"{smtp_url}\"\nfrom = \"bot@example.com\"\nto = [\"ops@example.com\"]\ntimeout = \"5s\"\n{ca_line}"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_mails_over_implicit_tls_to_a_relay_of_a_private_ca() {
    let ca = PrivateCa::new(&["localhost", "127.0.0.1"]);
    let smtp = SmtpServer::start_tls(
        free_port(),
        Some((SMTP_USER, SMTP_PASSWORD)),
        SmtpTls::Implicit,
        &ca,
    );
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "{SLOW_TO_MAX}\nmax_dynos = 2\nnotify_on_every_scale = true\nnotification_backends = [\"email\"]\n[email]\nsmtp_url = \"smtps://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}\"\nfrom = \"bot@example.com\"\nto = [\"ops@example.com\"]\ntls_ca_file = \"{}\"\n",
            smtp.port,
            ca.ca_file.display()
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("the scale mail arrives over TLS", || {
        !smtp.mails().is_empty()
    })
    .await;
    let mail = &smtp.mails()[0];
    assert_eq!(
        mail.subject,
        "[autoscalebot] test-app: scaled from 1 to 2 dynos"
    );
    assert_eq!(mail.login.as_deref(), Some(SMTP_USER));
    assert!(
        mail.tls.as_deref().is_some_and(|v| v.starts_with("TLSv1.")),
        "the session was TLS: {:?}",
        mail.tls
    );
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(!output.contains(SMTP_PASSWORD), "the password leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_to_a_relay_of_a_private_ca_delivers_and_the_password_crosses_tls() {
    let ca = PrivateCa::new(&["localhost", "127.0.0.1"]);
    let smtp = SmtpServer::start_tls(
        free_port(),
        Some((SMTP_USER, SMTP_PASSWORD)),
        SmtpTls::Starttls,
        &ca,
    );
    // By IP address: the certificate names 127.0.0.1 too, and that is checked as a name is.
    let url = format!(
        "smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}?tls=required",
        smtp.port
    );
    let (code, stdout, stderr) = notify_test(&tls_email_settings(&url, Some(&ca.ca_file)), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("email: delivered"), "{stdout}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject,
        "[autoscalebot] test-app: test notification"
    );
    assert!(
        mails[0]
            .tls
            .as_deref()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "the message crossed STARTTLS: {:?}",
        mails[0].tls
    );
    let logins = smtp.logins_tried();
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert!(logins[0].tls.is_some(), "the password crossed TLS only");
    assert!(!stdout.contains(SMTP_PASSWORD) && !stderr.contains(SMTP_PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tls_ca_file_a_private_ca_is_refused_with_a_certificate_error() {
    let ca = PrivateCa::new(&["localhost", "127.0.0.1"]);
    let smtp = SmtpServer::start_tls(
        free_port(),
        Some((SMTP_USER, SMTP_PASSWORD)),
        SmtpTls::Starttls,
        &ca,
    );
    let url = format!(
        "smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}?tls=required",
        smtp.port
    );
    let (code, stdout, stderr) = notify_test(&tls_email_settings(&url, None), &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("email: failed: SMTP server smtp://***@localhost:")
            && stdout.contains("TLS failed: invalid peer certificate: UnknownIssuer")
            && stdout.contains("set email.tls_ca_file"),
        "{stdout}"
    );
    assert!(!stdout.contains(SMTP_PASSWORD) && !stderr.contains(SMTP_PASSWORD));
    assert!(smtp.mails().is_empty());
    assert!(
        smtp.logins_tried().is_empty(),
        "the password was never sent to an unverified server"
    );

    // The same server, with its CA trusted: delivered.
    let (code, stdout, _) = notify_test(&tls_email_settings(&url, Some(&ca.ca_file)), &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(smtp.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_of_the_trusted_ca_for_another_host_is_refused() {
    let ca = PrivateCa::new(&["relay.example.com"]);
    let smtp = SmtpServer::start_tls(
        free_port(),
        Some((SMTP_USER, SMTP_PASSWORD)),
        SmtpTls::Implicit,
        &ca,
    );
    let url = format!(
        "smtps://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}",
        smtp.port
    );
    let (code, stdout, stderr) = notify_test(&tls_email_settings(&url, Some(&ca.ca_file)), &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("email: failed: SMTP server smtps://***@localhost:")
            && stdout.contains("certificate not valid for name \"localhost\"")
            && stdout.contains("does not name the host of smtp_url"),
        "host names are checked: {stdout}"
    );
    assert!(!stdout.contains(SMTP_PASSWORD) && !stderr.contains(SMTP_PASSWORD));
    assert!(smtp.mails().is_empty() && smtp.logins_tried().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_required_against_a_server_without_starttls_sends_nothing_in_the_clear() {
    let ca = PrivateCa::new(&["localhost", "127.0.0.1"]);
    let smtp = SmtpServer::start(free_port(), Some((SMTP_USER, SMTP_PASSWORD)), &[]);
    let url = format!(
        "smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}?tls=required",
        smtp.port
    );
    let (code, stdout, stderr) = notify_test(&tls_email_settings(&url, Some(&ca.ca_file)), &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("email: failed: SMTP server smtp://***@localhost:")
            && stdout.contains("STARTTLS is not supported"),
        "{stdout}"
    );
    assert!(!stdout.contains(SMTP_PASSWORD) && !stderr.contains(SMTP_PASSWORD));
    assert!(smtp.mails().is_empty(), "no message went in the clear");
    assert!(
        smtp.logins_tried().is_empty(),
        "the password did not go in the clear"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_opportunistic_uses_starttls_when_offered_and_plain_smtp_when_not() {
    let ca = PrivateCa::new(&["localhost", "127.0.0.1"]);
    let with_starttls = SmtpServer::start_tls(free_port(), None, SmtpTls::Starttls, &ca);
    let url = format!("smtp://localhost:{}?tls=opportunistic", with_starttls.port);
    let (code, stdout, stderr) = notify_test(&tls_email_settings(&url, Some(&ca.ca_file)), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let mails = with_starttls.mails();
    assert_eq!(mails.len(), 1, "{stdout}{stderr}");
    assert!(
        mails[0]
            .tls
            .as_deref()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "STARTTLS was offered, so the message crossed TLS: {:?}",
        mails[0].tls
    );

    let plain = SmtpServer::start(free_port(), None, &[]);
    let url = format!("smtp://localhost:{}?tls=opportunistic", plain.port);
    let (code, stdout, stderr) = notify_test(&tls_email_settings(&url, None), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let mails = plain.mails();
    assert_eq!(mails.len(), 1, "delivered without TLS: {stdout}{stderr}");
    assert_eq!(mails[0].tls, None, "the plain server has no TLS to offer");
}

#[test]
fn a_missing_or_non_pem_tls_ca_file_stops_the_worker_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("relay-ca.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let missing = dir.path().join("missing-ca.pem");
    for (path, why) in [
        (&missing, "cannot be read"),
        (&not_pem, "holds no certificate"),
    ] {
        let settings = tls_email_settings(
            &format!("smtps://{SMTP_USER}:{SMTP_PASSWORD}@localhost:465"),
            Some(path),
        );
        let (_dir, settings_path) = settings_file(&settings);
        let output = command()
            .arg("check")
            .arg(format!("--settings={}", settings_path.display()))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("email.tls_ca_file = \"{}\"", path.display()))
                && stderr.contains("expected a PEM file of one or more CA certificates")
                && stderr.contains(why),
            "{stderr}"
        );
        assert!(!stderr.contains(SMTP_PASSWORD), "{stderr}");
    }
}
