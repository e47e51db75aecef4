//! A new user's first hour, black-box: `check --online` against the sandbox (passing, and
//! failing with a helpful line for a wrong key, app, process type, heartbeat URL and drain),
//! the app's `web_url` as `app_url`, a misconfigured heartbeat told once through a web hook,
//! and a 2.1 user's settings: refused upper-case names with the new name, and
//! `import-settings`. No secret is ever printed.

use crate::support::*;
use std::process::Output;

/// `autoscalebot --settings FILE check --online` with the sandbox's key (or `key`).
fn check_online(settings: &str, key: &str) -> (Output, String) {
    let output = run_with_settings(settings, &["check", "--online"], &[("HEROKU_API_KEY", key)]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains(key), "the key leaked:\n{text}");
    (output, text)
}

/// Settings for the sandbox without `app_url`: it comes from the app's `web_url`.
fn settings_without_app_url(sandbox: &SandboxProcess, extra: &str) -> String {
    format!(
        "heroku_app_name = \"{}\"\nheroku_api_url = \"{}\"\nheartbeat_interval_in_seconds = 0.2\n{extra}\n",
        sandbox.app, sandbox.api_url
    )
}

/// `check --online`, which must exit `code`: its line about `what`, and all it printed.
fn online_line(settings: &str, key: &str, code: i32, what: &str) -> (String, String) {
    let (output, text) = check_online(settings, key);
    assert_eq!(output.status.code(), Some(code), "{text}");
    (line_about(&text, what).to_string(), text)
}

/// The online check's line about `what`.
fn line_about<'a>(text: &'a str, what: &str) -> &'a str {
    text.lines()
        .find(|line| line[6.min(line.len())..].starts_with(&format!("{what}:")))
        .unwrap_or_else(|| panic!("no line about {what}:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_passes_against_the_sandbox_and_reads_the_web_url() {
    let sandbox = SandboxProcess::start(&[]).await;
    let (output, text) = check_online(&settings_without_app_url(&sandbox, ""), SANDBOX_KEY);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("app_url = (not set: from the Platform API's web_url"),
        "check says where app_url will come from:\n{text}"
    );
    assert!(
        line_about(&text, "API key").starts_with("ok    API key: belongs to owner@sandbox.invalid")
    );
    let app = line_about(&text, "app");
    assert!(
        app.starts_with("ok") && app.contains(&format!("web_url {}/", sandbox.app_url)),
        "{app}"
    );
    assert!(line_about(&text, "process type")
        .starts_with("ok    process type: web is in the formation, at 1 dyno"));
    let heartbeat = line_about(&text, "heartbeat");
    assert!(
        heartbeat.starts_with(&format!(
            "ok    heartbeat: {}/autoscalebot/heartbeat/ answered 200 in",
            sandbox.app_url
        )),
        "the heartbeat goes to the web_url:\n{heartbeat}"
    );
    assert!(line_about(&text, "log drain").starts_with("skip"));
    assert!(line_about(&text, "API budget").starts_with("ok    API budget: "));
    assert!(text.contains("# 0 of 6 online checks failed"), "{text}");
    // It only reads: no formation update.
    assert!(sandbox.accepted_patches().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_names_a_wrong_key_and_what_to_do() {
    let sandbox = SandboxProcess::start(&[]).await;
    let wrong = "wrong-key-77c1e0";
    let (output, text) = check_online(&settings_without_app_url(&sandbox, ""), wrong);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let key = line_about(&text, "API key");
    assert!(
        key.starts_with("FAIL  API key: the platform refused it (401")
            && key.contains("HEROKU_API_KEY")
            && key.contains("heroku authorizations:create"),
        "{key}"
    );
    assert!(line_about(&text, "app").starts_with("skip"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_names_a_wrong_app() {
    let sandbox = SandboxProcess::start(&[]).await;
    let settings = format!(
        "heroku_app_name = \"no-such-app\"\nheroku_api_url = \"{}\"\napp_url = \"{}\"\n",
        sandbox.api_url, sandbox.app_url
    );
    let (output, text) = check_online(&settings, SANDBOX_KEY);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let app = line_about(&text, "app");
    assert!(
        app.starts_with("FAIL  app: the platform knows no app \"no-such-app\"")
            && app.contains("heroku apps"),
        "{app}"
    );
    assert!(line_about(&text, "process type").starts_with("skip"));
    assert!(text.contains("# 1 of 6 online checks failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_names_a_wrong_process_type() {
    let sandbox = SandboxProcess::start(&[]).await;
    let (output, text) = check_online(
        &settings_without_app_url(&sandbox, "process_type = \"worker\""),
        SANDBOX_KEY,
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    let line = line_about(&text, "process type");
    assert!(
        line.starts_with(
            "FAIL  process type: the formation of sandbox-app has no \"worker\" (it has: web)"
        ) && line.contains("set process_type"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_names_a_wrong_heartbeat_url() {
    let sandbox = SandboxProcess::start(&[]).await;
    // A path the app does not serve.
    let heartbeat = HeartbeatServer::start(5).await;
    heartbeat.set_status(404);
    let settings =
        settings_without_app_url(&sandbox, &format!("heartbeat_url = \"{}\"", heartbeat.url));
    let (line, _) = online_line(&settings, SANDBOX_KEY, 1, "heartbeat");
    assert!(
        line.starts_with(&format!("FAIL  heartbeat: {} answered 404", heartbeat.url))
            && line.contains("check heartbeat_url")
            && line.contains("app_url"),
        "{line}"
    );
    // A host and port where nothing listens.
    let closed = free_port();
    let settings = settings_without_app_url(
        &sandbox,
        &format!("app_url = \"http://127.0.0.1:{closed}\""),
    );
    let (line, _) = online_line(&settings, SANDBOX_KEY, 1, "heartbeat");
    assert!(
        line.starts_with(&format!("FAIL  heartbeat: http://127.0.0.1:{closed}/autoscalebot/heartbeat/ could not be reached"))
            && line.contains("check app_url"),
        "{line}"
    );
    // Slower than the max: worth a warning, not a failure.
    heartbeat.set_status(200);
    heartbeat.set_latency_ms(150);
    let settings = settings_without_app_url(
        &sandbox,
        &format!(
            "heartbeat_url = \"{}\"\nmax_response_time_in_ms = 100\nmin_response_time_in_ms = 10",
            heartbeat.url
        ),
    );
    let (line, _) = online_line(&settings, SANDBOX_KEY, 0, "heartbeat");
    assert!(
        line.starts_with("warn") && line.contains("slower than max_response_time_in_ms (100 ms)"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_finds_the_drain_without_showing_its_password() {
    let sandbox = SandboxProcess::start(&[]).await;
    let password = "drain-pw-31415";
    let settings = settings_without_app_url(
        &sandbox,
        &format!("signal = \"both\"\nhttp_port = 0\nlog_drain_password = \"{password}\""),
    );
    let (line, _) = online_line(&settings, SANDBOX_KEY, 1, "log drain");
    assert!(
        line.starts_with("FAIL  log drain: none of the app's 0 drains")
            && line.contains("heroku drains:add"),
        "{line}"
    );
    let add_drain = |url: String| {
        let api = sandbox.api_url.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{api}/apps/sandbox-app/log-drains"))
                .header("Accept", "application/vnd.heroku+json; version=3")
                .bearer_auth(SANDBOX_KEY)
                .json(&serde_json::json!({ "url": url }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
    };
    // A drain listed without a password cannot be compared: a warning, not a failure.
    add_drain("https://worker0.example.com/logs/sandbox-app".into()).await;
    let (line, _) = online_line(&settings, SANDBOX_KEY, 0, "log drain");
    assert!(
        line.starts_with("warn  log drain: https://worker0.example.com/logs/sandbox-app points at the worker, but the platform does not show its password"),
        "{line}"
    );
    add_drain("https://drain:not-the-password@worker.example.com/logs/sandbox-app".into()).await;
    let (line, text) = online_line(&settings, SANDBOX_KEY, 1, "log drain");
    assert!(
        line.starts_with(
            "FAIL  log drain: https://worker.example.com/logs/sandbox-app points at the worker, but its password is not log_drain_password"
        ),
        "{line}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
    add_drain(format!(
        "https://drain:{password}@worker2.example.com/logs/sandbox-app"
    ))
    .await;
    let (output, text) = check_online(&settings, SANDBOX_KEY);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        line_about(&text, "log drain").starts_with(
            "ok    log drain: https://worker2.example.com/logs/sandbox-app gets the app's logs"
        ),
        "{text}"
    );
    assert!(
        !text.contains(password),
        "the drain password leaked:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_app_url_the_worker_heartbeats_the_apps_web_url() {
    let sandbox = SandboxProcess::start(&[]).await;
    let mut bot = Bot::start(&settings_without_app_url(&sandbox, ""), &[], &sandbox_env());
    wait_until("the worker reads the web_url", || {
        bot.stderr().contains("app_url is the app's web_url")
    })
    .await;
    wait_until_async("the app's dynos serve heartbeats", || async {
        sandbox.served().await >= 3
    })
    .await;
    let app_reads = sandbox
        .calls()
        .await
        .iter()
        .filter(|call| call["method"] == "GET" && call["path"] == "/apps/sandbox-app")
        .count();
    assert_eq!(app_reads, 1, "read once, at start");
    let started = bot
        .stderr()
        .lines()
        .find(|line| line.contains("Worker started"))
        .unwrap()
        .to_string();
    assert!(
        started.contains(&format!("{}/autoscalebot/heartbeat/", sandbox.app_url)),
        "{started}"
    );
    assert!(bot.terminate().await.success());
    assert!(!bot.stderr().contains(SANDBOX_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_url_is_read_again_after_a_passing_failure_and_once_per_app() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox
        .inject(
            serde_json::json!({ "fault": "status", "status": 503, "count": 2, "method": "GET" }),
        )
        .await;
    // Two process types of one app share one read; "worker" is not in the sandbox's
    // formation, which the worker logs and rides out.
    let settings = format!(
        "heroku_api_url = \"{}\"\nheartbeat_interval_in_seconds = 0.2\n\
         [[apps]]\nheroku_app_name = \"{app}\"\n[[apps]]\nheroku_app_name = \"{app}\"\nprocess_type = \"worker\"\n",
        sandbox.api_url,
        app = sandbox.app
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    wait_until("the worker reads the web_url", || {
        bot.stderr().contains("app_url is the app's web_url")
    })
    .await;
    let stderr = bot.stderr();
    assert_eq!(
        stderr.matches("Could not read the app's web_url").count(),
        2,
        "each 503 is logged and tried again:\n{stderr}"
    );
    let app_reads = || async {
        sandbox
            .calls()
            .await
            .iter()
            .filter(|call| call["method"] == "GET" && call["path"] == "/apps/sandbox-app")
            .count()
    };
    assert_eq!(
        app_reads().await,
        3,
        "two failed reads and one for both entries"
    );
    wait_until_async("the app's dynos serve heartbeats", || async {
        sandbox.served().await >= 3
    })
    .await;
    assert_eq!(app_reads().await, 3, "read at start only");
    assert!(bot.terminate().await.success());
    assert!(!bot.stderr().contains(SANDBOX_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_url_the_platform_refuses_stops_the_worker_naming_the_setting() {
    let sandbox = SandboxProcess::start(&[]).await;
    let settings = format!(
        "heroku_app_name = \"no-such-app\"\nheroku_api_url = \"{}\"\n",
        sandbox.api_url
    );
    let output = run_with_settings(&settings, &[], &[("HEROKU_API_KEY", SANDBOX_KEY)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("heroku_app_name = \"no-such-app\" (from the Platform API")
            && stderr.contains("set app_url"),
        "{stderr}"
    );
    assert!(!stderr.contains(SANDBOX_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_url_refused_under_apps_names_the_entry() {
    let sandbox = SandboxProcess::start(&[]).await;
    let settings = format!(
        "heroku_api_url = \"{}\"\n\
         [[apps]]\nheroku_app_name = \"{}\"\n[[apps]]\nheroku_app_name = \"no-such-app\"\n",
        sandbox.api_url, sandbox.app
    );
    let output = run_with_settings(&settings, &[], &[("HEROKU_API_KEY", SANDBOX_KEY)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "apps[1] (no-such-app/web).heroku_app_name = \"no-such-app\" (from the Platform API"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(SANDBOX_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_url_read_spends_from_the_api_budget() {
    let sandbox = SandboxProcess::start(&[]).await;
    // Two process types on one key spend from one budget of a single call an hour: the
    // web_url read takes it, so the first formation read finds the budget empty.
    let settings = format!(
        "heroku_api_url = \"{}\"\nheartbeat_interval_in_seconds = 0.2\nheroku_api_calls_per_hour = 1\n\
         [[apps]]\nheroku_app_name = \"{app}\"\n[[apps]]\nheroku_app_name = \"{app}\"\nprocess_type = \"worker\"\n",
        sandbox.api_url,
        app = sandbox.app
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    wait_until("the formation read is refused by the budget", || {
        bot.stderr()
            .contains("Not reading the formation: the API budget is spent.")
    })
    .await;
    let calls = sandbox.calls().await;
    let reads = |of: &dyn Fn(&str) -> bool| {
        calls
            .iter()
            .filter(|call| call["method"] == "GET" && of(call["path"].as_str().unwrap_or("")))
            .count()
    };
    assert_eq!(reads(&|path| path == "/apps/sandbox-app"), 1, "{calls:?}");
    assert_eq!(
        reads(&|path| path.starts_with("/apps/sandbox-app/formation")),
        0,
        "{calls:?}"
    );
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_4xx_heartbeat_is_told_once_through_a_web_hook_and_its_end_once() {
    const KEY: &str = "test-key-0123456789";
    let hook = HookServer::start(HookMode::Status(200)).await;
    let heartbeat = HeartbeatServer::start(5).await;
    heartbeat.set_status(404);
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "notification_backends = [\"webhook\"]\n[webhook]\nurl = \"{}/hook\"",
            hook.url
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    let told = |kind: &str| {
        hook.requests()
            .iter()
            .filter(|request| {
                serde_json::from_str::<serde_json::Value>(&request.body)
                    .is_ok_and(|body| body["event"] == kind)
            })
            .count()
    };
    wait_until("the misconfigured heartbeat is told", || {
        told("heartbeat_misconfigured") == 1
    })
    .await;
    heartbeat.wait_for_more(10).await;
    assert_eq!(told("heartbeat_misconfigured"), 1, "once, not every beat");
    let body: serde_json::Value = hook
        .requests()
        .iter()
        .find_map(|request| serde_json::from_str(&request.body).ok())
        .unwrap();
    let message = body["message"].as_str().unwrap();
    let reason = body["reason"].as_str().unwrap();
    assert!(message.contains("answers 404"), "{message}");
    assert!(
        reason.contains(&format!("heartbeat_url {}", heartbeat.url))
            && reason.contains("check app_url"),
        "what to check: {reason}"
    );
    heartbeat.set_status(200);
    wait_until("its end is told", || {
        told("heartbeat_misconfigured_ended") == 1
    })
    .await;
    heartbeat.wait_for_more(5).await;
    assert_eq!(told("heartbeat_misconfigured_ended"), 1);
    assert_eq!(told("heartbeat_misconfigured"), 1);
    assert!(api.patches().is_empty(), "a 4xx never adds dynos");
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_refused_from_the_start_is_told_once_without_its_credentials() {
    const KEY: &str = "test-key-0123456789";
    let hook = HookServer::start(HookMode::Status(200)).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let closed = free_port();
    let settings = format!(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"{KEY}\"\nheroku_api_url = \"{}\"\n\
         heartbeat_url = \"http://hb-user:hb-secret-31@127.0.0.1:{closed}/hb/?token=tok-secret-27\"\n\
         heartbeat_interval_in_seconds = 0.2\nnotify_on_every_ping = true\nhttp_port = 0\n\
         notification_backends = [\"webhook\"]\n[webhook]\nurl = \"{}/hook\"\n",
        api.url, hook.url
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    let base = bot.http_url().await;
    let told = |kind: &str| hook.events().iter().filter(|event| *event == kind).count();
    wait_until("ten beats are told as pings", || told("ping") >= 10).await;
    assert_eq!(told("heartbeat_misconfigured"), 1, "once, not every beat");
    let (status, text) = get_text(&base, "/metrics").await;
    assert_eq!(status, 200);
    let scrape = parse_metrics(&text);
    let count = |result| {
        metric_value(
            &scrape,
            "autoscalebot_heartbeats_total",
            &[("result", result)],
        )
    };
    assert!(count("misconfigured").unwrap_or(0.0) >= 10.0, "{text}");
    assert_eq!(count("fail").unwrap_or(0.0), 0.0, "{text}");
    assert_eq!(
        api.patches(),
        Vec::<u32>::new(),
        "ten refused beats never add dynos: more would not answer a wrong address either"
    );
    let body = hook
        .json_bodies()
        .into_iter()
        .find(|body| body["event"] == "heartbeat_misconfigured")
        .unwrap();
    let (message, reason) = (
        body["message"].as_str().unwrap(),
        body["reason"].as_str().unwrap(),
    );
    assert!(message.contains("connection refused"), "{message}");
    assert!(
        reason.contains(&format!("heartbeat_url http://127.0.0.1:{closed}/hb/"))
            && reason.contains("check app_url and heartbeat_url"),
        "{reason}"
    );
    for request in hook.requests() {
        assert!(
            !request.body.contains("hb-secret-31") && !request.body.contains("tok-secret-27"),
            "a credential of the heartbeat URL was told: {}",
            request.body
        );
    }
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(
        output.contains("Worker started."),
        "the log was read: {output}"
    );
    assert!(
        !output.contains("hb-secret-31") && !output.contains("tok-secret-27"),
        "a credential of the heartbeat URL was logged: {output}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settings_file_with_2_1_names_is_refused_with_the_new_names() {
    let output = run_with_settings(
        "HEROKU_APP_NAME = \"my-app\"\nheroku_api_key = \"k-0123456789\"\nNUMBER_OF_FAILS_TO_SCALE_UP_AFTER = 4\n",
        &["check"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    // An unknown key's text is never shown: it may be a secret under a misspelt name.
    assert!(stderr.contains("HEROKU_APP_NAME = \"***\""), "{stderr}");
    assert!(!stderr.contains("my-app"), "{stderr}");
    assert!(
        stderr.contains("did you mean heroku_app_name?")
            && stderr.contains("did you mean number_of_fails_to_scale_up_after?")
            && stderr.contains("import-settings"),
        "{stderr}"
    );
}

/// A 2.1 module as seed 001's README shows one, with an import and Django's email backend.
const MODULE_2_1: &str = r#"import os

HEROKU_APP_NAME = "my-app-name"
HEROKU_API_KEY = "1234567890abcdef1234567890abcdef"
HEARTBEAT_INTERVAL_IN_SECONDS = 30
MAX_DYNOS = {
"0:00": 2,
"9:00": 5,
"17:00": 2
}
NOTIFICATION_BACKENDS = [
'autoscalebot.backends.notification.DjangoEmailBackend',
'autoscalebot.backends.notification.ConsoleBackend',
]
NOTIFY_ON_EVERY_SCALE = True
TIME_ZONE = 'America/Vancouver'
"#;

#[test]
fn import_settings_turns_a_2_1_module_into_a_file_check_loads() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("autoscale_settings.py");
    std::fs::write(&module, MODULE_2_1).unwrap();
    let import = |allow: bool| {
        let mut command = command();
        command.arg("import-settings").arg(&module);
        if allow {
            command.arg("--allow-dropped");
        }
        command.output().unwrap()
    };
    let output = import(false);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(
        output.status.code(),
        Some(2),
        "something was dropped:\n{stderr}"
    );
    let shown = module.display().to_string();
    assert!(
        stderr.contains(&format!("{shown}:1: import …: not carried over: an import")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{shown}:11-14: NOTIFICATION_BACKENDS = …: not carried over: DjangoEmailBackend"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-dropped"), "{stderr}");
    assert!(stderr.contains("HEROKU_API_KEY = …: the key is not written"));
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("1234567890abcdef"),
            "the key leaked:\n{text}"
        );
    }
    let output = import(true);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), stdout);
    let check = run_with_settings(
        &stdout,
        &["check"],
        &[("HEROKU_API_KEY", "a-config-var-key-0123")],
    );
    let checked = String::from_utf8_lossy(&check.stdout);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for line in [
        "heroku_app_name = \"my-app-name\"",
        "max_dynos = { \"0:00\" = 2, \"9:00\" = 5, \"17:00\" = 2 }",
        "notification_backends = [\"console\"]",
        "notify_on_every_scale = true",
        "time_zone = \"America/Vancouver\"",
    ] {
        assert!(checked.contains(line), "{line} not in force:\n{checked}");
    }
}

#[test]
fn import_settings_refuses_a_module_it_cannot_read() {
    let output = command()
        .args(["import-settings", "/nonexistent/autoscale_settings.py"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/autoscale_settings.py"));
}
