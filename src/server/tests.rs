//! The routes in process (tower's `oneshot`, no socket) and the status page's chart geometry.
//! The black-box tests in `tests/observe.rs` drive the same routes over real loopback.

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
    Telemetry::alone(&settings, crate::bot::tokio_clock(start))
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
    let mut request = Request::post("/logs")
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
