//! The routes in process (tower's `oneshot`, no socket) and the status page's chart geometry.
//! The black-box tests in `tests/it/observe.rs` drive the same routes over real loopback.

use super::*;
use crate::decision::Observation;
use crate::settings::from_toml_str;
use crate::telemetry::BeatPoint;
use autoscalebot_backends::notify::{Event, EventKind};
use axum::body::Body;
use axum::http::Request;
use chrono::{TimeZone, Utc};
use std::collections::HashMap;
use std::time::Duration;
use tower::ServiceExt;

const PASSWORD: &str = "drain-secret-31";

fn telemetry(extra: &str) -> Telemetry {
    let text = format!(
        "heroku_app_name = \"page-app\"\nheroku_api_key = \"api-secret-77\"\nhttp_port = 0\n{extra}"
    );
    let settings = from_toml_str(&text, &HashMap::new())
        .unwrap()
        .apps
        .remove(0);
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    Telemetry::alone(&settings, crate::clock::tokio_clock(start))
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

const LINE: &str = "<158>1 2022-06-13T14:52:23.622778+00:00 host heroku router - at=info method=GET path=\"/\" host=a.herokuapp.com request_id=1 fwd=\"1.2.3.4\" dyno=web.1 connect=2ms service=640ms status=200 bytes=6979 protocol=https";

fn batch(lines: usize) -> String {
    (0..lines)
        .map(|_| format!("{} {LINE}\n", LINE.len() + 1))
        .collect()
}

async fn post(
    app: &Router,
    authorization: Option<String>,
    frame_id: &str,
    body: String,
) -> StatusCode {
    post_to(app, "/logs", authorization, frame_id, body).await
}

async fn post_to(
    app: &Router,
    path: &str,
    authorization: Option<String>,
    frame_id: &str,
    body: String,
) -> StatusCode {
    let mut request = Request::post(path)
        .header("content-type", "application/logplex-1")
        .header("logplex-frame-id", frame_id)
        .header("logplex-msg-count", "3");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    app.clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_drain_takes_authorised_batches_once_per_frame_id() {
    let telemetry = telemetry(&format!("log_drain_password = \"{PASSWORD}\""));
    let app = router(vec![telemetry.clone()]);
    assert_eq!(
        post(&app, None, "f1", batch(3)).await,
        StatusCode::UNAUTHORIZED
    );
    let wrong = Some(basic("user", "not-it"));
    assert_eq!(
        post(&app, wrong, "f1", batch(3)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        telemetry.router_stats().requests,
        0,
        "refused batches are not used"
    );
    let right = || Some(basic("anyone", PASSWORD));
    assert_eq!(
        post(&app, right(), "f1", batch(3)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(&app, right(), "f1", batch(3)).await,
        StatusCode::NO_CONTENT
    );
    let stats = telemetry.router_stats();
    assert_eq!(stats.requests, 3, "the retried frame id was ignored");
    assert_eq!(stats.service.unwrap().p95_ms, 640);
    assert_eq!(stats.latency_p95_ms, Some(642));
    assert!(telemetry.last_router_request_at().is_some());

    let oversized = "x".repeat(MAX_DRAIN_BODY_BYTES + 1);
    assert_eq!(
        post(&app, right(), "f2", oversized).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let text = telemetry.metrics.worker().encode();
    assert!(
        text.contains(
            "autoscalebot_drain_batches_total{app=\"\",process_type=\"\",result=\"too_large\"} 1"
        ),
        "a refused oversized batch is counted: {text}"
    );
    let json = Request::post("/logs")
        .header("content-type", "application/json")
        .header("authorization", basic("u", PASSWORD))
        .body(Body::from("{}"))
        .unwrap();
    let status = app.clone().oneshot(json).await.unwrap().status();
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn without_a_password_the_drain_is_off() {
    let app = router(vec![telemetry("")]);
    let status = post(&app, Some(basic("u", "")), "f1", batch(1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn healthz_is_503_once_no_beat_came_within_the_stall_limit() {
    let telemetry = telemetry("heartbeat_interval_in_seconds = 30");
    let app = router(vec![telemetry.clone()]);
    let health = || async {
        let request = Request::get("/healthz").body(Body::empty()).unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    };
    assert_eq!(health().await, StatusCode::OK);
    // 3 × 30 s + 5 s heartbeat timeout + 2 × 10 s API timeout.
    assert_eq!(telemetry.stall_limit(), Duration::from_secs(115));
    tokio::time::advance(Duration::from_secs(114)).await;
    assert_eq!(health().await, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(health().await, StatusCode::SERVICE_UNAVAILABLE);
    telemetry.stamp_alive();
    assert_eq!(health().await, StatusCode::OK);
}

fn beats() -> Vec<BeatPoint> {
    let t0 = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let point = |i: i64, ms: Option<u32>, dynos: u32, scale: Option<(u32, u32)>| BeatPoint {
        at: t0 + chrono::Duration::seconds(30 * i),
        response_time_ms: ms,
        observation: Observation::InBand,
        dynos: Some(dynos),
        scale,
        timed_out: false,
    };
    vec![
        point(0, Some(100), 1, None),
        point(1, Some(1500), 1, None),
        point(2, None, 1, None),
        point(3, Some(1400), 2, Some((1, 2))),
        point(4, Some(300), 2, None),
    ]
}

#[test]
fn the_chart_draws_latency_bounds_steps_and_scale_marks() {
    let chart = status_page::Chart::build(&beats(), 200, 1000, chrono_tz::UTC);
    assert_eq!(chart.latency_points, 4);
    // A beat without a time lifts the pen: two segments.
    assert_eq!(
        chart.latency_path.matches('M').count(),
        2,
        "{}",
        chart.latency_path
    );
    assert_eq!(chart.latency_path.matches('L').count(), 2);
    assert!(
        chart.max_y < chart.min_y,
        "the max line is above the min line"
    );
    assert!(chart.dynos_path.starts_with('M') && chart.dynos_path.contains('V'));
    assert_eq!(chart.scale_marks.len(), 1);
    assert!(chart.scale_marks[0]
        .2
        .ends_with("12:01:30: scaled from 1 to 2"));
    assert_eq!(chart.time_ticks.first().unwrap().1, "12:00:00");
    assert_eq!(chart.time_ticks.last().unwrap().1, "12:02:00");
}

#[test]
fn timed_out_and_clipped_beats_are_marked_not_passed_off_as_times() {
    let mut high = beats();
    // A 5 s timeout and a 9 s answer, far above a 1000 ms max: both at the ceiling.
    high[1].response_time_ms = Some(5000);
    high[1].timed_out = true;
    high[3].response_time_ms = Some(9000);
    let chart = status_page::Chart::build(&high, 200, 1000, chrono_tz::UTC);
    assert_eq!(chart.ceiling_ms, 3150, "3 × max, and 5% room");
    assert_eq!(chart.timeout_marks.len(), 1);
    assert!(
        chart.timeout_marks[0]
            .2
            .ends_with("12:00:30: timed out after 5000 ms, above the chart"),
        "{:?}",
        chart.timeout_marks
    );
    assert_eq!(chart.clipped_marks.len(), 1);
    assert!(chart.clipped_marks[0]
        .2
        .contains("9000 ms, above the chart's 3150 ms"));
    let top = chart.latency_ticks.last().unwrap().0;
    assert_eq!(chart.timeout_marks[0].1, top, "drawn at the ceiling");
    // A timeout below the ceiling is marked where it is.
    let mut low = beats();
    low[4].response_time_ms = Some(300);
    low[4].timed_out = true;
    let chart = status_page::Chart::build(&low, 200, 1000, chrono_tz::UTC);
    assert_eq!(chart.timeout_marks.len(), 1);
    assert!(chart.timeout_marks[0].2.ends_with("timed out after 300 ms"));
    assert!(chart.clipped_marks.is_empty());
}

#[tokio::test]
async fn the_page_hides_secrets_and_escapes_what_it_shows() {
    let telemetry = telemetry(&format!(
        "log_drain_password = \"{PASSWORD}\"\nsignal = \"both\""
    ));
    let t0 = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let mut event = Event::new(t0, "page-app", EventKind::Scaled, "Scaled to (2) dynos.");
    event.reason = "<script>alert(1)</script>".into();
    telemetry.record_notifications(&[event]);
    let request = Request::get("/").body(Body::empty()).unwrap();
    let response = router(vec![telemetry]).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let page = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(page.contains("<svg id=\"chart\""));
    assert!(page.contains("Scaled to (2) dynos."));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("log_drain_password"));
    assert!(!page.contains(PASSWORD) && !page.contains("api-secret-77"));
    assert!(page.contains("signal <b>both</b>"));
}

/// Several apps of one worker, counting in one registry: `(name, process_type, extra)` each.
fn fleet(entries: &[(&str, &str, &str)]) -> Vec<Telemetry> {
    let registry = crate::metrics::WorkerMetrics::new();
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    entries
        .iter()
        .map(|(name, process_type, extra)| {
            let text = format!(
                "heroku_app_name = \"{name}\"\nprocess_type = \"{process_type}\"\n\
                 heroku_api_key = \"k\"\nhttp_port = 0\n{extra}"
            );
            let settings = from_toml_str(&text, &HashMap::new())
                .unwrap()
                .apps
                .remove(0);
            let metrics = registry.app(name, process_type, Vec::new());
            let drain = crate::drain::Drain::new(settings.drain.router_window);
            Telemetry::new(
                Arc::new(settings),
                crate::clock::tokio_clock(start),
                metrics,
                drain,
            )
        })
        .collect()
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn each_app_has_its_drain_and_plain_logs_names_the_form() {
    let apps = fleet(&[
        ("shop", "web", "log_drain_password = \"shop-pass\""),
        ("shop", "worker", "log_drain_password = \"shop-pass\""),
        ("blog", "web", "log_drain_password = \"blog-pass\""),
        ("wiki", "web", ""),
    ]);
    let app = router(apps.clone());
    let shop = Some(basic("u", "shop-pass"));
    assert_eq!(
        post(&app, shop.clone(), "f1", batch(3)).await,
        StatusCode::NOT_FOUND,
        "three app names: /logs alone is none of them"
    );
    assert_eq!(
        post_to(&app, "/logs/blog", shop.clone(), "f1", batch(3)).await,
        StatusCode::UNAUTHORIZED,
        "shop's password does not open blog's drain"
    );
    assert_eq!(
        post_to(&app, "/logs/shop", shop.clone(), "f1", batch(3)).await,
        StatusCode::NO_CONTENT
    );
    // Both of shop's entries take it (the drain is on for both); blog and wiki nothing.
    let requests: Vec<u64> = apps
        .iter()
        .map(|telemetry| telemetry.router_stats().requests)
        .collect();
    assert_eq!(requests, vec![3, 3, 0, 0]);
    // The frame ids are the app's: a retry is dropped, another app's same id is not.
    assert_eq!(
        post_to(&app, "/logs/shop", shop, "f1", batch(3)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(apps[0].router_stats().requests, 3);
    let blog = Some(basic("u", "blog-pass"));
    assert_eq!(
        post_to(&app, "/logs/BLOG", blog.clone(), "f1", batch(2)).await,
        StatusCode::NO_CONTENT,
        "app names are matched as Heroku spells them: any case"
    );
    assert_eq!(apps[2].router_stats().requests, 2);
    assert_eq!(
        post_to(&app, "/logs/wiki", blog.clone(), "f2", batch(1)).await,
        StatusCode::NOT_FOUND,
        "wiki's drain is off"
    );
    assert_eq!(
        post_to(&app, "/logs/nosuch", blog, "f3", batch(1)).await,
        StatusCode::NOT_FOUND
    );
    let text = apps[0].metrics.worker().encode();
    assert!(
        text.contains(
            "autoscalebot_drain_batches_total{app=\"\",process_type=\"\",result=\"unknown_app\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains(
        "autoscalebot_drain_batches_total{app=\"blog\",process_type=\"web\",result=\"unauthorized\"} 1"
    ));
    assert!(text.contains(
        "autoscalebot_drain_batches_total{app=\"shop\",process_type=\"worker\",result=\"duplicate\"} 1"
    ));
}

#[tokio::test]
async fn with_one_app_name_plain_logs_is_its_drain() {
    let apps = fleet(&[
        ("shop", "web", "log_drain_password = \"shop-pass\""),
        ("shop", "worker", ""),
    ]);
    let app = router(apps.clone());
    let shop = Some(basic("u", "shop-pass"));
    assert_eq!(
        post(&app, shop, "f1", batch(2)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(apps[0].router_stats().requests, 2);
    assert_eq!(apps[1].router_stats().requests, 0, "its drain is off");
}

#[tokio::test]
async fn the_index_lists_every_app_and_links_its_page() {
    let apps = fleet(&[("shop", "web", ""), ("shop", "<i>jobs?", "")]);
    let app = router(apps);
    let (status, index) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(index.contains("autoscalebot: 2 apps"), "{index}");
    assert!(index.contains("href=\"/apps/shop/web\""));
    assert!(index.contains("&lt;i&gt;jobs?") && !index.contains("<i>jobs"));
    assert!(
        index.contains("href=\"/apps/shop/%3Ci%3Ejobs%3F\""),
        "{index}"
    );
    assert!(!index.contains("<svg"), "no chart in the index");
    let (status, page) = get(&app, "/apps/shop/%3Ci%3Ejobs%3F").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("autoscalebot: shop (&lt;i&gt;jobs?)"));
    assert!(page.contains("href=\"/\""), "a link back to the index");
    let (status, page) = get(&app, "/apps/shop/web").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<svg id=\"chart\""));
    let (status, answer) = get(&app, "/apps/shop/worker").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(answer.contains("\"shop\"/\"worker\""), "{answer}");
}

#[test]
fn an_app_page_path_is_percent_encoded() {
    assert_eq!(app_page_path("shop", "web"), "/apps/shop/web");
    assert_eq!(app_page_path("a b/c", "web"), "/apps/a%20b%2Fc/web");
}

#[tokio::test(start_paused = true)]
async fn healthz_of_several_apps_names_the_stalled_ones() {
    // Stall limits: 3 × 30 s + 5 s + 20 s = 115 s, and 3 × 1 s + 5 s + 20 s = 28 s.
    let apps = fleet(&[
        ("slow", "web", "heartbeat_interval_in_seconds = 30"),
        ("quick", "web", "heartbeat_interval_in_seconds = 1"),
    ]);
    let app = router(apps.clone());
    let (status, body) = get(&app, "/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::OK,
            "ok: 2 apps, every loop beat within its limit\n"
        )
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    let (status, body) = get(&app, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "stalled: 1 of 2 apps: quick/web (no beat for 30.0 s, limit 28.0 s)\n"
    );
    apps[1].stamp_alive();
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
}

#[test]
fn healthz_names_at_most_twenty_stalled_apps() {
    let stalled: Vec<(String, Duration, Duration)> = (0..25)
        .map(|i| {
            (
                format!("app-{i}/web"),
                Duration::from_secs(200),
                Duration::from_secs(115),
            )
        })
        .collect();
    let (healthy, message) = health_of_many(1000, &stalled);
    assert!(!healthy);
    assert!(message.starts_with("stalled: 25 of 1000 apps: app-0/web (no beat for 200.0 s"));
    assert!(message.contains("app-19/web"), "{message}");
    assert!(!message.contains("app-20/web"), "{message}");
    assert!(message.ends_with(", and 5 more\n"), "{message}");
}

/// Sends `request` to `app`, as a peer `peer` of the listening socket would.
async fn send_from(app: &Router, peer: &str, request: Request<Body>) -> Response {
    let mut request = request;
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::connect_info::ConnectInfo(peer));
    app.clone().oneshot(request).await.unwrap()
}

fn locked(apps: Vec<Telemetry>) -> Router {
    let access = Access {
        password: Some(Secret::new("pages-secret-9")),
        limits: Limits::default(),
    };
    router_with(apps, &access)
}

#[tokio::test]
async fn with_a_password_the_pages_and_metrics_need_it_and_healthz_says_only_ok() {
    let telemetry = telemetry("");
    let app = locked(vec![telemetry.clone()]);
    let get = |path: &str, authorization: Option<String>| {
        let mut request = Request::get(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.body(Body::empty()).unwrap()
    };
    for path in ["/", "/metrics", "/apps/page-app/web"] {
        let response = send_from(&app, "127.0.0.1:1000", get(path, None)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(response.headers().contains_key("www-authenticate"));
        let wrong = Some(basic("prometheus", "pages-secret"));
        let response = send_from(&app, "127.0.0.1:1000", get(path, wrong)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let right = Some(basic("prometheus", "pages-secret-9"));
        let response = send_from(&app, "127.0.0.1:1000", get(path, right)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let bearer = Some("Bearer pages-secret-9".to_string());
        let response = send_from(&app, "127.0.0.1:1000", get(path, bearer)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let response = send_from(&app, "127.0.0.1:1000", get("/healthz", None)).await;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert!(
        body == "ok\n" || body == "stalled\n",
        "{status} {body:?}: nothing but the word"
    );
    let response = send_from(
        &app,
        "127.0.0.1:1000",
        get("/healthz", Some("Bearer pages-secret-9".to_string())),
    )
    .await;
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert!(body.len() > "stalled\n".len(), "{body:?}");
    let text = telemetry.metrics.worker().encode();
    assert!(
        text.contains("autoscalebot_http_refusals_total{reason=\"unauthorized\"} 6"),
        "{text}"
    );
}

#[tokio::test]
async fn every_answer_carries_a_strict_content_security_policy() {
    let app = router(vec![telemetry("")]);
    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert!(
        !policy.contains("script"),
        "no script of any kind: {policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn a_source_flooding_wrong_passwords_gets_429_and_others_and_the_right_one_pass() {
    let telemetry = telemetry(&format!("log_drain_password = \"{PASSWORD}\""));
    let app = router(vec![telemetry.clone()]);
    let drain = |authorization: String, forwarded: &str, frame: &str| {
        Request::post("/logs")
            .header("content-type", "application/logplex-1")
            .header("logplex-frame-id", frame)
            .header("authorization", authorization)
            .header("x-forwarded-for", forwarded)
            .body(Body::from(batch(1)))
            .unwrap()
    };
    // Behind Heroku's router (a private peer), the source is the last forwarded address.
    let router_peer = "10.0.0.7:40000";
    for index in 0..guard::FAILURE_BURST {
        let request = drain(
            basic("u", "guess"),
            "6.6.6.6, 203.0.113.9",
            &format!("x{index}"),
        );
        let response = send_from(&app, router_peer, request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let request = drain(basic("u", PASSWORD), "203.0.113.9", "late");
    let response = send_from(&app, router_peer, request).await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "refused unread, the right password or not"
    );
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    // The client's own entries are not the source: the attacker cannot name the drain's.
    let request = drain(basic("u", PASSWORD), "203.0.113.9, 198.51.100.4", "good");
    let response = send_from(&app, router_peer, request).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(telemetry.router_stats().requests, 1);
    let text = telemetry.metrics.worker().encode();
    assert!(
        text.contains("autoscalebot_http_refusals_total{reason=\"rate_limited\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("result=\"rate_limited\"} 1"),
        "the drain counts it too: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_ends_is_answered_408_at_the_request_timeout() {
    let telemetry = telemetry(&format!("log_drain_password = \"{PASSWORD}\""));
    let app = router(vec![telemetry.clone()]);
    let never = futures_never();
    let request = Request::post("/logs")
        .header("content-type", "application/logplex-1")
        .header("authorization", basic("u", PASSWORD))
        .body(Body::from_stream(never))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(response.headers()["connection"], "close");
    let text = telemetry.metrics.worker().encode();
    assert!(
        text.contains("autoscalebot_http_refusals_total{reason=\"timeout\"} 1"),
        "{text}"
    );
}

/// A body stream that sends one chunk, then nothing, ever.
fn futures_never(
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    struct Trickle(bool);
    impl futures_core::Stream for Trickle {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                std::task::Poll::Pending
            } else {
                self.0 = true;
                std::task::Poll::Ready(Some(Ok(Bytes::from_static(b"12 <1>1 - - -"))))
            }
        }
    }
    Trickle(false)
}

/// The accept loop on a real loopback socket with small limits: a slow head is closed at the
/// header timeout, an oversized head answered 431, one connection over the cap closed at once,
/// each counted; a good request on a free slot is answered meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn the_accept_loop_closes_slow_heads_oversized_heads_and_connections_over_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let telemetry = telemetry("");
    let limits = Limits {
        max_connections: 3,
        header_read_timeout: Duration::from_millis(300),
        max_header_bytes: 8192,
        request_timeout: Duration::from_secs(5),
    };
    let access = Access {
        password: None,
        limits,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        vec![telemetry.clone()],
        access,
        shutdown.clone(),
    ));
    let read_all = |mut stream: tokio::net::TcpStream| async move {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).to_string()
    };
    // A head that never ends is closed without an answer.
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A head over the limit is answered 431.
    let mut big = tokio::net::TcpStream::connect(address).await.unwrap();
    let header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    big.write_all(header.as_bytes()).await.unwrap();
    assert!(read_all(big).await.starts_with("HTTP/1.1 431"));
    assert_eq!(read_all(slow).await, "", "closed without an answer");
    // Three idle connections fill the slots; a fourth is closed at once.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let over = tokio::net::TcpStream::connect(address).await.unwrap();
    assert_eq!(read_all(over).await, "");
    // Once the idle ones time out, a good request is answered.
    let mut good = None;
    for _ in 0..100 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_all(stream).await;
        if !answer.is_empty() {
            good = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let good = good.expect("answered once a slot is free");
    assert!(good.starts_with("HTTP/1.1 "), "{good}");
    let text = telemetry.metrics.worker().encode();
    for reason in ["header_timeout", "header_too_large", "over_capacity"] {
        assert!(
            text.contains(&format!(
                "autoscalebot_http_refusals_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {text}"
        );
    }
    drop(idle);
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[test]
fn the_page_shows_the_last_queue_reading_and_why_one_failed() {
    let telemetry = telemetry("");
    let at = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 5).unwrap();
    let beat = |queue| crate::telemetry::Beat {
        at,
        heartbeat: crate::decision::Heartbeat::nothing(),
        stopped: false,
        quantity: Some(2),
        output: None,
        scaled_to: None,
        error: None,
        router: None,
        queue,
    };
    let page = || status_page::render(&telemetry.snapshot(), false);
    assert!(!page().contains("Job queues"), "no reading, no line");
    telemetry.record_beat(&beat(Some(Ok(crate::decision::QueueSignal {
        jobs: Some(280),
        oldest_age: Some(Duration::from_millis(4500)),
    }))));
    assert!(
        page().contains(
            "Job queues, read 2026-03-10 12:00:05 UTC: 280 jobs waiting, the oldest for 4.5 s"
        ),
        "{}",
        page()
    );
    telemetry.record_beat(&beat(None));
    assert!(
        page().contains("280 jobs waiting"),
        "a beat without a reading keeps the last"
    );
    telemetry.record_beat(&beat(Some(Err("redis: connection refused".into()))));
    let text = page();
    assert!(
        text.contains("could not be read: redis: connection refused (the size holds)"),
        "{text}"
    );
    assert!(!text.contains("280 jobs"), "{text}");
}
