//! Many apps in one worker: the built binary with `[[apps]]` against real heartbeat servers
//! (one per app) and one Heroku-shaped formation API on loopback serving every app.

use crate::support::*;
use std::process::Stdio;

const KEY: &str = "fleet-key-0123456789";

/// An `[[apps]]` entry pointed at a local heartbeat.
fn entry(app: &str, process_type: &str, heartbeat: &HeartbeatServer, extra: &str) -> String {
    format!(
        "\n[[apps]]\nheroku_app_name = \"{app}\"\nprocess_type = \"{process_type}\"\nheartbeat_url = \"{}\"\n{extra}\n",
        heartbeat.url
    )
}

/// Top-level defaults for every app: the local API, short intervals, clear bands.
fn defaults(api: &FormationApi, extra: &str) -> String {
    format!(
        "heroku_api_key = \"{KEY}\"\nheroku_api_url = \"{}\"\nheartbeat_interval_in_seconds = 0.2\n\
         max_response_time_in_ms = 300\nmin_response_time_in_ms = 100\n\
         number_of_fails_to_scale_up_after = 2\nnumber_of_passes_to_scale_down_after = 2\n{extra}\n",
        api.url
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn three_apps_with_their_own_bounds_scale_independently_in_one_worker() {
    let slow_alpha = HeartbeatServer::start(500).await;
    let fast_beta = HeartbeatServer::start(0).await;
    let in_band_gamma_web = HeartbeatServer::start(200).await;
    let slow_gamma_worker = HeartbeatServer::start(500).await;
    let api = FormationApi::start("alpha", "web", KEY, 1).await;
    api.add("beta", "web", KEY, 5);
    api.add("gamma", "web", KEY, 2);
    api.add("gamma", "worker", KEY, 1);
    let settings = format!(
        "{}{}{}{}{}",
        defaults(&api, "max_dynos = 3"),
        entry("alpha", "web", &slow_alpha, ""),
        entry("beta", "web", &fast_beta, "min_dynos = 2\nmax_dynos = 6"),
        entry("gamma", "web", &in_band_gamma_web, "max_dynos = 5"),
        entry(
            "gamma",
            "worker",
            &slow_gamma_worker,
            "max_dynos = 4\nmin_dynos = 0"
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("alpha reaches its max of 3", || {
        api.quantity_of("alpha", "web") == 3
    })
    .await;
    wait_until("beta reaches its min of 2", || {
        api.quantity_of("beta", "web") == 2
    })
    .await;
    wait_until("gamma's worker reaches its max of 4", || {
        api.quantity_of("gamma", "worker") == 4
    })
    .await;
    // A few more heartbeats of each, to see that nothing moves past a bound.
    for heartbeat in [
        &slow_alpha,
        &fast_beta,
        &in_band_gamma_web,
        &slow_gamma_worker,
    ] {
        heartbeat.wait_for_more(4).await;
    }
    assert_eq!(api.patches_of("alpha", "web"), vec![2, 3]);
    assert_eq!(api.patches_of("beta", "web"), vec![4, 3, 2]);
    assert_eq!(api.patches_of("gamma", "worker"), vec![2, 3, 4]);
    assert_eq!(
        api.patches_of("gamma", "web"),
        Vec::<u32>::new(),
        "in band: never scaled"
    );
    assert_eq!(api.quantity_of("gamma", "web"), 2);

    let requests = api.requests();
    // Two process types of one app: one list read serves both, and writes go through the
    // batch endpoint, whose answer tells both sizes.
    assert!(requests
        .iter()
        .any(|r| r.method == "GET" && r.path == "/apps/gamma/formation"));
    assert!(!requests
        .iter()
        .any(|r| r.path.starts_with("/apps/gamma/formation/")));
    assert!(requests.iter().any(|r| r.method == "PATCH"
        && r.path == "/apps/gamma/formation"
        && r.body.contains("\"updates\"")));
    // Apps with one process type keep the per-type endpoints.
    assert!(requests
        .iter()
        .all(|r| !r.path.starts_with("/apps/alpha") || r.path == "/apps/alpha/formation/web"));
    // Unchanged formations are read conditionally, and the answer is 304 with no body.
    assert!(
        requests.iter().any(|r| r.method == "GET"
            && r.headers.contains_key("if-none-match")
            && r.status == 304),
        "no conditional read was answered 304"
    );
    assert!(requests.iter().all(|r| r.status < 400), "no call failed");
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(!output.contains(KEY), "the API key leaked:\n{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_apps_refused_key_leaves_the_others_scaling() {
    let slow_refused = HeartbeatServer::start(500).await;
    let slow_fine = HeartbeatServer::start(500).await;
    let fast_fine = HeartbeatServer::start(0).await;
    let api = FormationApi::start("fine-up", "web", KEY, 1).await;
    api.add("fine-down", "web", KEY, 3);
    api.add("refused", "web", "the-right-key-for-refused", 1);
    let settings = format!(
        "{}{}{}{}",
        defaults(
            &api,
            "max_dynos = 3\nnotify_on_scale_fails = true\nnotification_backends = [\"console\"]"
        ),
        entry(
            "refused",
            "web",
            &slow_refused,
            "heroku_api_key = \"a-wrong-key-for-refused\""
        ),
        entry("fine-up", "web", &slow_fine, ""),
        entry("fine-down", "web", &fast_fine, ""),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("fine-up reaches 3", || {
        api.quantity_of("fine-up", "web") == 3
    })
    .await;
    wait_until("fine-down reaches 1", || {
        api.quantity_of("fine-down", "web") == 1
    })
    .await;
    wait_until("the refusal is logged", || {
        bot.stderr().contains("refused the API key")
    })
    .await;
    wait_until("the refusal is told, naming the app", || {
        bot.stdout()
            .lines()
            .any(|line| line.contains(" refused scale_failed"))
    })
    .await;
    let hits = slow_refused.hits();
    wait_until("the refused app's heartbeats go on", || {
        slow_refused.hits() >= hits + 3
    })
    .await;
    assert!(bot.is_running());
    assert_eq!(api.quantity_of("refused", "web"), 1);
    assert!(api.patches_of("refused", "web").is_empty());
    let stderr = bot.stderr();
    let refusal = stderr
        .lines()
        .find(|line| line.contains("refused the API key"))
        .unwrap();
    assert!(refusal.contains("app=refused"), "names the app: {refusal}");
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(!output.contains("a-wrong-key-for-refused") && !output.contains(KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_accounts_keys_from_config_vars_each_reach_only_their_own_app() {
    const ALPHA_KEY: &str = "alpha-account-key-4821";
    const BETA_KEY: &str = "beta-account-key-7390";
    let slow_alpha = HeartbeatServer::start(500).await;
    let fast_beta = HeartbeatServer::start(0).await;
    let api = FormationApi::start("alpha", "web", ALPHA_KEY, 1).await;
    api.add("beta", "web", BETA_KEY, 3);
    // The file names the variables only: the top-level key for alpha, beta's own for beta.
    let settings = format!(
        "{}{}{}",
        defaults(&api, "max_dynos = 3").replace(KEY, "env:ALPHA_KEY"),
        entry("alpha", "web", &slow_alpha, ""),
        entry(
            "beta",
            "web",
            &fast_beta,
            "heroku_api_key = \"env:BETA_KEY\""
        ),
    );
    assert!(!settings.contains(ALPHA_KEY) && !settings.contains(BETA_KEY));
    let mut bot = Bot::start(
        &settings,
        &[],
        &[
            ("ALPHA_KEY", ALPHA_KEY),
            ("BETA_KEY", BETA_KEY),
            ("RUST_LOG", "debug"),
        ],
    );
    wait_until("alpha reaches 3", || api.quantity_of("alpha", "web") == 3).await;
    wait_until("beta reaches 1", || api.quantity_of("beta", "web") == 1).await;
    let requests = api.requests();
    for (app, key) in [("alpha", ALPHA_KEY), ("beta", BETA_KEY)] {
        let calls: Vec<_> = requests
            .iter()
            .filter(|r| r.path.starts_with(&format!("/apps/{app}/")))
            .collect();
        assert!(!calls.is_empty(), "no call for {app}");
        for call in calls {
            assert_eq!(
                call.api_key(),
                key,
                "{} {} carried another key",
                call.method,
                call.path
            );
        }
    }
    assert!(
        requests.iter().all(|r| r.status < 400),
        "no call was refused"
    );
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(output.contains("DEBUG"), "debug logging was on:\n{output}");
    for key in [ALPHA_KEY, BETA_KEY] {
        assert!(!output.contains(key), "{key} leaked:\n{output}");
    }
}

#[test]
fn a_missing_config_var_stops_the_worker_naming_the_entry_and_the_variable() {
    let (_dir, path) = settings_file(
        "heroku_api_key = \"env:ALPHA_KEY\"\n[[apps]]\nheroku_app_name = \"alpha\"\n\
         [[apps]]\nheroku_app_name = \"beta\"\nheroku_api_key = \"env:BETA_KEY\"\n",
    );
    let output = command()
        .arg(format!("--settings={}", path.display()))
        .env("ALPHA_KEY", "alpha-account-key-4821")
        .env_remove("BETA_KEY")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("apps[1] (beta/web).heroku_api_key = \"env:BETA_KEY\""),
        "{stderr}"
    );
    assert!(stderr.contains("set the config var BETA_KEY"), "{stderr}");
    assert!(!stderr.contains("alpha-account-key-4821"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_budget_stops_routine_reads_but_never_a_scale() {
    // 100 calls an hour: a tenth of it on routine reads at the start, then none; the reads
    // just before a scale and the writes still go through.
    let in_band = HeartbeatServer::start(200).await;
    let also_in_band = HeartbeatServer::start(200).await;
    let slow = HeartbeatServer::start(500).await;
    let api = FormationApi::start("quiet-1", "web", KEY, 2).await;
    api.add("quiet-2", "web", KEY, 2);
    api.add("busy", "web", KEY, 1);
    let settings = format!(
        "{}{}{}{}",
        defaults(&api, "heroku_api_calls_per_hour = 100\nmax_dynos = 3"),
        entry("quiet-1", "web", &in_band, ""),
        entry("quiet-2", "web", &also_in_band, ""),
        entry("busy", "web", &slow, ""),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    wait_until("busy reaches 3", || api.quantity_of("busy", "web") == 3).await;
    let hits = in_band.hits();
    wait_until("25 more heartbeats of quiet-1", || {
        in_band.hits() >= hits + 25
    })
    .await;
    let calls = api.requests().len();
    let beats = in_band.hits() + also_in_band.hits() + slow.hits();
    assert!(
        calls <= 20,
        "{calls} calls for {beats} heartbeats: routine reads should stop at a tenth of the budget"
    );
    assert!(beats > 60, "{beats} heartbeats");
    assert_eq!(api.patches_of("busy", "web"), vec![2, 3]);
    assert!(bot.terminate().await.success());
}

#[test]
fn check_names_each_app_and_the_most_calls_an_hour_per_key() {
    let (_dir, path) = settings_file(
        "heroku_api_key = \"check-key-1\"\n\
         [[apps]]\nheroku_app_name = \"alpha\"\n\
         [[apps]]\nheroku_app_name = \"beta\"\nmax_dynos = 6\n\
         [[apps]]\nheroku_app_name = \"beta\"\nprocess_type = \"worker\"\n\
         [[apps]]\nheroku_app_name = \"other\"\nheroku_api_key = \"check-key-2\"\n",
    );
    let output = command()
        .args(["check", "--settings"])
        .arg(&path)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for header in [
        "# app alpha (web)",
        "# app beta (web)",
        "# app beta (worker)",
        "# app other (web)",
    ] {
        assert!(stdout.contains(header), "{header} missing:\n{stdout}");
    }
    assert!(stdout.contains("heroku_api_calls_per_hour = 3600"));
    // alpha, beta/web and beta/worker share key 1: two reads every 30 s (beta's two types
    // share one) = 240, and up to 3 x 80 for scaling.
    assert!(
        stdout.contains(
            "key 1 (3 apps: alpha/web, beta/web, beta/worker): at most 480 calls an hour"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("key 2 (1 app: other/web): at most 200 calls an hour"),
        "{stdout}"
    );
    assert!(!stdout.contains("check-key-1") && !stdout.contains("check-key-2"));
}

#[test]
fn two_entries_for_one_formation_stop_the_worker_naming_both() {
    let (_dir, path) = settings_file(
        "heroku_api_key = \"k\"\n[[apps]]\nheroku_app_name = \"shop\"\n[[apps]]\nheroku_app_name = \"shop\"\nprocess_type = \"web\"\n",
    );
    let output = command()
        .arg(format!("--settings={}", path.display()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("apps[1] (shop/web).process_type"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apps[0] (shop/web) already scales shop/web"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_server_shows_every_app_and_takes_each_apps_drain() {
    const ALPHA_PASSWORD: &str = "alpha-drain-pass-17";
    const BETA_PASSWORD: &str = "beta-drain-pass-29";
    let alpha_beat = HeartbeatServer::start(0).await;
    let beta_web_beat = HeartbeatServer::start(0).await;
    let beta_worker_beat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("alpha", "web", KEY, 1).await;
    api.add("beta", "web", KEY, 1);
    api.add("beta", "worker", KEY, 1);
    let settings = format!(
        "{}{}{}{}",
        defaults(&api, "http_port = 0\nmax_dynos = 2"),
        entry(
            "alpha",
            "web",
            &alpha_beat,
            &format!("log_drain_password = \"{ALPHA_PASSWORD}\"")
        ),
        entry(
            "beta",
            "web",
            &beta_web_beat,
            &format!("log_drain_password = \"{BETA_PASSWORD}\"")
        ),
        entry("beta", "worker", &beta_worker_beat, ""),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    let base = bot.http_url().await;
    for heartbeat in [&alpha_beat, &beta_web_beat, &beta_worker_beat] {
        heartbeat.wait_for_more(2).await;
    }

    // Each app's drain at its own URL, with its own password; the router lines go to beta's
    // web entry (the one with the drain on), not to alpha nor to beta's worker.
    let lines: Vec<String> = (0..3).map(|_| router_line(40, 200)).collect();
    let beta_url = format!("{base}/logs/beta");
    let status = post_drain_at(
        &beta_url,
        Some(BETA_PASSWORD),
        "b1",
        3,
        logplex_body(&lines),
    )
    .await;
    assert_eq!(status, 204);
    let alpha_url = format!("{base}/logs/alpha");
    let status = post_drain_at(
        &alpha_url,
        Some(BETA_PASSWORD),
        "a1",
        3,
        logplex_body(&lines),
    )
    .await;
    assert_eq!(status, 401, "beta's password does not open alpha's drain");
    let unknown = format!("{base}/logs/nosuch");
    let status = post_drain_at(&unknown, Some(BETA_PASSWORD), "n1", 3, logplex_body(&lines)).await;
    assert_eq!(status, 404);
    let (status, body) = post_plain_logs(&base).await;
    assert_eq!(status, 404, "several apps: /logs alone names none");
    assert!(body.contains("/logs/<heroku_app_name>"), "{body}");

    let (status, text) = get_text(&base, "/metrics").await;
    assert_eq!(status, 200);
    let scrape = parse_metrics(&text);
    let value = |metric: &str, labels: &[(&str, &str)]| metric_value(&scrape, metric, labels);
    for (app, process_type) in [("alpha", "web"), ("beta", "web"), ("beta", "worker")] {
        let passes = value(
            "autoscalebot_heartbeats_total",
            &[
                ("app", app),
                ("process_type", process_type),
                ("result", "pass"),
            ],
        );
        assert!(
            passes.is_some_and(|passes| passes >= 2.0),
            "{app}/{process_type} has {passes:?} passes:\n{text}"
        );
    }
    let router_requests = |app: &str, process_type: &str| {
        value(
            "autoscalebot_router_requests_total",
            &[("app", app), ("process_type", process_type)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(router_requests("beta", "web"), 3.0, "{text}");
    assert_eq!(router_requests("alpha", "web"), 0.0);
    assert_eq!(router_requests("beta", "worker"), 0.0);
    assert_eq!(
        value(
            "autoscalebot_drain_batches_total",
            &[("app", "alpha"), ("result", "unauthorized")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "autoscalebot_drain_batches_total",
            &[("result", "unknown_app")]
        ),
        Some(1.0)
    );

    let (status, index) = get_text(&base, "/").await;
    assert_eq!(status, 200);
    for (app, process_type) in [("alpha", "web"), ("beta", "web"), ("beta", "worker")] {
        let link = format!("/apps/{app}/{process_type}");
        assert!(
            index.contains(&format!("href=\"{link}\"")),
            "{link}:\n{index}"
        );
        let (status, page) = get_text(&base, &link).await;
        assert_eq!(status, 200, "{link}");
        assert!(
            page.contains(&format!("autoscalebot: {app} ({process_type})")),
            "{link}:\n{page}"
        );
        assert!(page.contains("<svg id=\"chart\""));
    }
    assert_eq!(get_text(&base, "/apps/nosuch/web").await.0, 404);

    let (status, health) = get_text(&base, "/healthz").await;
    assert_eq!(
        (status, health.as_str()),
        (200, "ok: 3 apps, every loop beat within its limit\n")
    );
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(
        !output.contains(ALPHA_PASSWORD) && !output.contains(BETA_PASSWORD),
        "{output}"
    );
}

/// `POST /logs` (no app named) with a well-formed batch: status and body.
async fn post_plain_logs(base: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{base}/logs"))
        .header("content-type", "application/logplex-1")
        .body(logplex_body(&[router_line(40, 200)]))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[test]
fn entries_naming_different_ports_stop_the_worker_naming_both() {
    let (_dir, path) = settings_file(
        "heroku_api_key = \"k\"\nhttp_port = 8181\n\
         [[apps]]\nheroku_app_name = \"shop\"\n\
         [[apps]]\nheroku_app_name = \"blog\"\nhttp_port = 8282\n",
    );
    let output = command()
        .arg(format!("--settings={}", path.display()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("apps[1] (blog/web).http_port = 8282"),
        "{stderr}"
    );
    assert!(
        stderr.contains("8181, the port apps[0] (shop/web) names"),
        "{stderr}"
    );
}
