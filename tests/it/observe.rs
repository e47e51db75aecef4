//! Real traffic and observability, black box: the built worker's HTTP server on loopback takes
//! logplex batches shaped as Heroku sends them, scales on router lines, refuses bad
//! credentials, uses what it can of bad batches, and exposes `/metrics`, `/healthz` and `/`.

use crate::support::*;
use std::time::{Duration, Instant};

const KEY: &str = "test-key-0123456789";
const PASSWORD: &str = "drain-pass-4242";

fn router_settings(api: &FormationApi, heartbeat: &HeartbeatServer, extra: &str) -> String {
    local_settings(
        api,
        heartbeat,
        &format!(
            "signal = \"router\"\nhttp_port = 0\nlog_drain_password = \"{PASSWORD}\"\n\
             router_window = \"1s\"\n{extra}"
        ),
    )
}

/// Posts batches of 20 router lines at `service_ms` every 100 ms until `done`, or panics at
/// the deadline.
async fn feed_until(
    base: &str,
    service_ms: u64,
    frame_prefix: &str,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let started = Instant::now();
    let mut batch = 0;
    while !done() {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting until {what}"
        );
        let lines: Vec<String> = (0..20).map(|_| router_line(service_ms, 200)).collect();
        let status = post_drain(
            base,
            Some(PASSWORD),
            &format!("{frame_prefix}-{batch}"),
            lines.len(),
            logplex_body(&lines),
        )
        .await;
        assert_eq!(status, 204, "the drain accepts the batch");
        batch += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn router_lines_scale_the_app_up_and_down_without_a_heartbeat() {
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = router_settings(
        &api,
        &heartbeat,
        "max_response_time_in_ms = 300\nmin_response_time_in_ms = 100\n\
         number_of_fails_to_scale_up_after = 2\nnumber_of_passes_to_scale_down_after = 3\nmax_dynos = 3",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    let base = bot.http_url().await;
    feed_until(&base, 800, "slow", "slow router lines scale up", || {
        api.quantity() >= 2
    })
    .await;
    assert_eq!(api.patches()[0], 2, "one step up on slow service times");
    feed_until(&base, 20, "fast", "fast router lines scale down", || {
        api.quantity() == 1
    })
    .await;
    assert_eq!(api.patches().last(), Some(&1));
    assert_eq!(
        heartbeat.hits(),
        0,
        "signal = router sends no heartbeat: the router lines alone decided"
    );
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(
        !output.contains(PASSWORD) && !output.contains(KEY),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_drain_refuses_a_missing_or_wrong_password_and_ignores_retries() {
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let mut bot = Bot::start(&router_settings(&api, &heartbeat, ""), &[], &[]);
    let base = bot.http_url().await;
    let lines = vec![router_line(50, 200), router_line(60, 200)];
    let body = || logplex_body(&lines);
    assert_eq!(post_drain(&base, None, "a", 2, body()).await, 401);
    assert_eq!(post_drain(&base, Some("guess"), "a", 2, body()).await, 401);
    assert_eq!(post_drain(&base, Some(PASSWORD), "a", 2, body()).await, 204);
    // Logplex retries with the same frame id: counted once.
    assert_eq!(post_drain(&base, Some(PASSWORD), "a", 2, body()).await, 204);
    let (_, text) = get_text(&base, "/metrics").await;
    let scrape = parse_metrics(&text);
    assert_eq!(
        metric_value(&scrape, "autoscalebot_router_requests_total", &[]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &scrape,
            "autoscalebot_drain_batches_total",
            &[("result", "unauthorized")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &scrape,
            "autoscalebot_drain_batches_total",
            &[("result", "duplicate")]
        ),
        Some(1.0)
    );
    // A body over the cap is refused whole; the worker goes on.
    let huge = "9".repeat(5 * 1024 * 1024);
    assert_eq!(post_drain(&base, Some(PASSWORD), "b", 1, huge).await, 413);
    assert_eq!(get_text(&base, "/healthz").await.0, 200);
    assert!(bot.is_running());
    assert!(bot.terminate().await.success());
    assert!(!bot.stderr().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_batch_is_partly_used_and_the_rest_counted() {
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let mut bot = Bot::start(&router_settings(&api, &heartbeat, ""), &[], &[]);
    let base = bot.http_url().await;
    let good = router_line(120, 200);
    let garbage_line = good.replace("service=120ms", "service=soonms");
    let h12 = "<158>1 2026-11-24T09:00:00+00:00 host heroku router - at=error code=H12 \
               desc=\"Request timeout\" method=GET path=/ host=test-app.herokuapp.com \
               request_id=8601b555 fwd=\"204.204.204.204\" dyno=web.1 connect= service=30000ms \
               status=503 bytes=0 protocol=http"
        .to_string();
    let body = format!(
        "{}this is not a frame\n{}{}99999 <158>1 cut short",
        logplex_body(std::slice::from_ref(&good)),
        logplex_body(&[garbage_line, h12]),
        logplex_body(&[router_line(130, 404)]),
    );
    assert_eq!(
        post_drain(&base, Some(PASSWORD), "mixed", 6, body).await,
        204
    );
    wait_until("the skipped input is logged", || {
        bot.stderr()
            .contains("Skipped bad input in a log drain batch")
    })
    .await;
    let (_, text) = get_text(&base, "/metrics").await;
    let scrape = parse_metrics(&text);
    let value = |metric: &str, labels: &[(&str, &str)]| metric_value(&scrape, metric, labels);
    assert_eq!(
        value("autoscalebot_router_requests_total", &[]),
        Some(3.0),
        "{text}"
    );
    let frames = "autoscalebot_drain_frames_total";
    assert_eq!(value(frames, &[("result", "router")]), Some(3.0));
    assert_eq!(value(frames, &[("result", "malformed")]), Some(2.0));
    assert_eq!(value(frames, &[("result", "bad_router_line")]), Some(1.0));
    assert_eq!(
        value("autoscalebot_router_errors_total", &[("code", "H12")]),
        Some(1.0)
    );
    assert_eq!(
        value("autoscalebot_router_responses_total", &[("status", "404")]),
        Some(1.0)
    );
    assert_eq!(
        value("autoscalebot_router_responses_total", &[("status", "503")]),
        Some(1.0)
    );
    assert!(bot.stderr().contains("service=\\\"soonms\\\"") || bot.stderr().contains("soonms"));
    assert!(bot.is_running());
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_health_and_the_status_page_show_what_the_worker_did() {
    let heartbeat = HeartbeatServer::start(300).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "http_port = 0\nmax_response_time_in_ms = 150\nmin_response_time_in_ms = 10\n\
         number_of_fails_to_scale_up_after = 2\nmax_dynos = 2\nnotify_on_every_scale = true\n\
         notify_if_needs_exceed_max = false\n\
         notification_backends = [\"console\"]",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    let base = bot.http_url().await;
    wait_until("the formation reaches 2", || api.quantity() == 2).await;
    heartbeat.wait_for_more(3).await;

    let (status, text) = get_text(&base, "/metrics").await;
    assert_eq!(status, 200);
    let scrape = parse_metrics(&text);
    let value = |metric: &str, labels: &[(&str, &str)]| metric_value(&scrape, metric, labels);
    let fails = value("autoscalebot_heartbeats_total", &[("result", "fail")]).unwrap_or(0.0);
    assert!(
        fails >= 4.0,
        "heartbeats counted by result: {fails}\n{text}"
    );
    assert_eq!(
        value("autoscalebot_dynos", &[]),
        Some(api.quantity() as f64)
    );
    assert_eq!(
        value("autoscalebot_dyno_bounds", &[("bound", "max")]),
        Some(2.0)
    );
    assert_eq!(
        value("autoscalebot_dyno_bounds", &[("bound", "min")]),
        Some(1.0)
    );
    assert_eq!(
        value("autoscalebot_scale_actions_total", &[("direction", "up")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            "autoscalebot_notifications_sent_total",
            &[("backend", "console")]
        ),
        Some(1.0),
        "one scale, one console notification"
    );
    assert_eq!(
        value(
            "autoscalebot_notifications_dropped_total",
            &[("backend", "console")]
        ),
        Some(0.0)
    );
    let latency_count = scrape
        .samples
        .iter()
        .find(|sample| sample.metric == "autoscalebot_heartbeat_latency_seconds")
        .map(|sample| match &sample.value {
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            _ => 0.0,
        });
    assert!(
        latency_count.is_some_and(|count| count >= fails),
        "the latency histogram counts every heartbeat: {latency_count:?}"
    );

    let (status, body) = get_text(&base, "/healthz").await;
    assert_eq!((status, body.starts_with("ok")), (200, true), "{body}");

    let (status, page) = get_text(&base, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg id=\"chart\""), "{page}");
    assert!(
        page.contains("class=\"scale-event\""),
        "the scale is marked"
    );
    assert!(
        page.contains("Scaled to (2) dynos."),
        "recent notifications"
    );
    assert!(page.contains("heroku_api_key"));
    assert!(!page.contains(KEY), "secrets are hidden");
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_logfmt_on_a_dyno() {
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let mut bot = Bot::start(
        &local_settings(&api, &heartbeat, "http_port = 0"),
        &[],
        &[("DYNO", "autoscaleworker.1")],
    );
    wait_until("the worker logs its start", || {
        bot.stderr().contains("Worker started.")
    })
    .await;
    let started = bot
        .stderr()
        .lines()
        .find(|line| line.contains("Worker started."))
        .unwrap()
        .to_string();
    assert!(
        started.contains("level=info")
            && started.contains("message=\"Worker started.\"")
            && started.contains("app=test-app"),
        "logfmt: {started}"
    );
    assert!(bot.terminate().await.success());

    // text elsewhere, and log_format chooses.
    let mut bot = Bot::start(
        &local_settings(&api, &heartbeat, "log_format = \"json\""),
        &[],
        &[],
    );
    wait_until("the worker logs its start", || {
        bot.stderr().contains("Worker started.")
    })
    .await;
    let line = bot
        .stderr()
        .lines()
        .find(|line| line.contains("Worker started."))
        .unwrap()
        .to_string();
    let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(json["fields"]["message"], "Worker started.");
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_in_use_stops_the_worker_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let mut bot = Bot::start(
        &local_settings(&api, &heartbeat, &format!("http_port = {port}")),
        &[],
        &[],
    );
    wait_until("the worker exits", || !bot.is_running()).await;
    assert!(
        bot.stderr()
            .contains(&format!("binding the HTTP server to port {port}")),
        "{}",
        bot.stderr()
    );
}

/// Posts one batch of 5 router lines for `path` every 100 ms until `done`.
async fn feed_path_until(base: &str, path: &str, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    let mut batch = 0;
    while !done() {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting until {what}"
        );
        let lines: Vec<String> = (0..5).map(|_| router_line_for(path, 20, 200)).collect();
        let frame_id = format!("{path}-{batch}");
        let status = post_drain(base, Some(PASSWORD), &frame_id, 5, logplex_body(&lines)).await;
        assert_eq!(status, 204);
        batch += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_traffic_keeps_the_app_up_and_its_own_heartbeats_do_not() {
    let heartbeat = HeartbeatServer::start(100).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "http_port = 0\nlog_drain_password = \"{PASSWORD}\"\nidle_after = \"1s\"\nmin_dynos = 0\n\
             min_response_time_in_ms = 10\nmax_response_time_in_ms = 5000"
        ),
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    let base = bot.http_url().await;
    // Real requests for three times idle_after: the app stays up.
    let hits = heartbeat.hits();
    feed_path_until(&base, "/", "15 heartbeats with traffic", || {
        heartbeat.hits() >= hits + 15
    })
    .await;
    assert!(
        api.patches().is_empty(),
        "traffic through the router keeps the app up"
    );
    // Only the worker's own heartbeat lines: idle, so it stops.
    feed_path_until(
        &base,
        "/autoscalebot/heartbeat/",
        "the app is stopped",
        || api.quantity() == 0,
    )
    .await;
    assert_eq!(api.patches(), vec![0]);
    assert!(bot.terminate().await.success());
}
