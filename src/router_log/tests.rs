//! The logplex splitter, the router line parser and the window, on the verbatim examples of
//! `../shared/heroku/README.md` and on broken input.

use super::*;
use chrono::TimeZone;

const INFO: &str = "<158>1 2022-06-13T14:52:23.622778+00:00 host heroku router - at=info method=GET path=\"/\" host=cryptic-cliffs-27764.herokuapp.com request_id=59da6323-2bc4-4143-8677-cc66ccfb115f fwd=\"181.167.87.140\" dyno=web.1 connect=0ms service=3ms status=200 bytes=6979 protocol=https";
const H12: &str = "<158>1 2012-10-11T03:47:20+00:00 host heroku router - at=error code=H12 desc=\"Request timeout\" method=GET path=/ host=example-app-1234567890ab.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd=\"204.204.204.204\" dyno=web.1 connect= service=30000ms status=503 bytes=0 protocol=http";
const H14: &str = "<158>1 2012-10-11T03:47:20+00:00 host heroku router - at=error code=H14 desc=\"No web processes running\" method=GET path=\"/\" host=myapp.herokuapp.com fwd=\"1.2.3.4\" dyno= connect= service= status=503 bytes=";
const APP: &str =
    "<190>1 2022-06-13T14:52:23.622778+00:00 host app web.1 - Started GET \"/\" for 1.2.3.4";

/// Frames a message the way logplex does: the count includes the trailing newline.
fn frame(message: &str) -> String {
    format!("{} {message}\n", message.len() + 1)
}

#[test]
fn the_verbatim_example_frame_is_270_bytes_and_splits_whole() {
    // The README's first example carries its own count: 270 bytes with the newline.
    assert_eq!(frame(INFO), format!("270 {INFO}\n"));
    let body = format!("{}{}", frame(INFO), frame(H12));
    let frames: Vec<Frame> = split_frames(body.as_bytes()).collect();
    assert_eq!(
        frames,
        vec![
            Frame::Message(INFO.as_bytes()),
            Frame::Message(H12.as_bytes())
        ]
    );
}

#[test]
fn frames_are_split_by_count_not_by_line() {
    // A message with a newline inside: a line splitter would cut it in two.
    let message = "<158>1 2022-06-13T14:52:23Z host app web.1 - two\nlines";
    let body = format!("{}{}", frame(message), frame(INFO));
    let frames: Vec<Frame> = split_frames(body.as_bytes()).collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0], Frame::Message(message.as_bytes()));
    // And without a trailing newline the count is the message alone.
    let bare = format!("{} {INFO}", INFO.len());
    assert_eq!(
        split_frames(bare.as_bytes()).collect::<Vec<_>>(),
        vec![Frame::Message(INFO.as_bytes())]
    );
}

#[test]
fn a_bad_count_costs_one_frame_and_the_splitter_resynchronises() {
    let body = format!(
        "{}garbage without a count\n9999 <158>1 too short\n{}{}",
        frame(INFO),
        frame(H12),
        "12 <1"
    );
    let frames: Vec<Frame> = split_frames(body.as_bytes()).collect();
    assert_eq!(frames[0], Frame::Message(INFO.as_bytes()));
    assert_eq!(frames[1], Frame::Malformed(b"garbage without a count"));
    assert_eq!(frames[2], Frame::Malformed(b"9999 <158>1 too short"));
    assert_eq!(frames[3], Frame::Message(H12.as_bytes()));
    assert_eq!(frames[4], Frame::Malformed(b"12 <1"));
    assert_eq!(frames.len(), 5);
    assert_eq!(split_frames(b"").count(), 0);
    assert_eq!(split_frames(b"\n\n").count(), 0);
}

#[test]
fn the_syslog_header_names_the_router() {
    let syslog = parse_syslog(INFO.as_bytes()).unwrap();
    assert_eq!(syslog.timestamp, "2022-06-13T14:52:23.622778+00:00");
    assert_eq!((syslog.app_name, syslog.proc_id), ("heroku", "router"));
    assert!(syslog.message.starts_with("at=info method=GET"));
    let app = parse_syslog(APP.as_bytes()).unwrap();
    assert_eq!((app.app_name, app.proc_id), ("app", "web.1"));
    assert_eq!(parse_syslog(b"no pri here"), None);
    assert_eq!(parse_syslog(b"<abc>1 x y z w v m"), None);
    assert_eq!(parse_syslog(b"<158>1 too few"), None);
}

fn router_message(line: &str) -> &str {
    parse_syslog(line.as_bytes()).unwrap().message
}

#[test]
fn an_info_line_gives_times_and_status() {
    let line = parse_router_line(router_message(INFO)).unwrap();
    assert_eq!(
        line,
        RouterLine {
            is_error: false,
            code: None,
            dyno: "web.1",
            path: "/",
            connect_ms: Some(0),
            service_ms: Some(3),
            status: 200,
        }
    );
}

#[test]
fn error_lines_have_codes_and_may_have_empty_times() {
    let h12 = parse_router_line(router_message(H12)).unwrap();
    assert!(h12.is_error);
    assert_eq!(h12.code, Some(12));
    assert_eq!((h12.connect_ms, h12.service_ms), (None, Some(30000)));
    assert_eq!(h12.status, 503);
    let h14 = parse_router_line(router_message(H14)).unwrap();
    assert_eq!(h14.code, Some(14));
    assert_eq!((h14.connect_ms, h14.service_ms, h14.dyno), (None, None, ""));
    assert_eq!(Request::from(&h14).latency_ms(), None, "down, not slow");
    assert_eq!(Request::from(&h12).latency_ms(), Some(30000));
}

#[test]
fn quoted_values_keep_their_spaces_and_equals_signs() {
    let pairs: Vec<(&str, &str)> =
        key_values("desc=\"Request timeout\" path=\"/a b?c=d\" bare status=200")
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(
        pairs,
        vec![
            ("desc", "Request timeout"),
            ("path", "/a b?c=d"),
            ("status", "200")
        ]
    );
}

#[test]
fn garbage_in_a_router_line_is_named() {
    let cases: &[(&str, LineError)] = &[
        (
            "at=info connect=0ms service=fastms status=200",
            LineError::BadTime {
                key: "service",
                value: "fastms".into(),
            },
        ),
        (
            "at=info connect=-3ms service=3ms status=200",
            LineError::BadTime {
                key: "connect",
                value: "-3ms".into(),
            },
        ),
        (
            "at=info connect=0ms service=3ms status=abc",
            LineError::BadStatus("abc".into()),
        ),
        (
            "at=info connect=0ms service=3ms status=999",
            LineError::BadStatus("999".into()),
        ),
        (
            "at=info connect=0ms service=3ms",
            LineError::BadStatus(String::new()),
        ),
        (
            "at=error code=X1 status=503",
            LineError::BadCode("X1".into()),
        ),
        (
            "at=info desc=\"never closed status=200",
            LineError::UnterminatedQuote,
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(parse_router_line(line).as_ref(), Err(expected), "{line}");
    }
}

#[test]
fn a_batch_uses_what_it_can_and_counts_the_rest() {
    let body = format!(
        "{}{}garbage\n{}{}{}",
        frame(INFO),
        frame(APP),
        frame("<158>1 2022-06-13T14:52:23Z host heroku router - at=info service=soonms status=200"),
        frame(H12),
        frame("<158>1 not-enough-fields"),
    );
    let mut requests = Vec::new();
    let mut problems = Vec::new();
    let counts = parse_batch(body.as_bytes(), None, &mut requests, &mut problems);
    assert_eq!(
        counts,
        IngestCounts {
            frames: 6,
            malformed_frames: 2,
            router_lines: 2,
            bad_router_lines: 1,
            other_lines: 1,
            heartbeat_lines: 0,
            traffic_lines: 2,
            l2met_lines: 0,
            bad_l2met_lines: 0,
        }
    );
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].code, Some(12));
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[1].contains("service=\"soonms\""), "{problems:?}");
}

#[test]
fn nearest_rank_percentiles() {
    let mut values: Vec<u64> = (1..=100).collect();
    let q = Quantiles::of(&mut values).unwrap();
    assert_eq!((q.p50_ms, q.p95_ms, q.p99_ms), (50, 95, 99));
    let mut one = vec![7];
    let q = Quantiles::of(&mut one).unwrap();
    assert_eq!((q.p50_ms, q.p95_ms, q.p99_ms), (7, 7, 7));
    // 20 values: p95 is the 19th.
    let mut twenty: Vec<u64> = (1..=20).rev().map(|v| v * 10).collect();
    assert_eq!(Quantiles::of(&mut twenty).unwrap().p95_ms, 190);
    assert_eq!(Quantiles::of(&mut []), None);
}

fn request(service_ms: u32) -> Request {
    Request {
        connect_ms: Some(1),
        service_ms: Some(service_ms),
        status: 200,
        code: None,
    }
}

#[test]
fn the_window_keeps_only_its_span_and_counts_the_rate() {
    let t0 = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let mut window = RouterWindow::new(Duration::from_secs(30), 1000);
    window.push(t0, (0..30).map(|_| request(900)));
    window.push(
        t0 + chrono::Duration::seconds(20),
        (0..60).map(|_| request(100)),
    );
    let stats = window.stats(t0 + chrono::Duration::seconds(25));
    assert_eq!(stats.requests, 90);
    assert!((stats.requests_per_second - 3.0).abs() < 1e-9);
    assert_eq!(stats.service.unwrap().p95_ms, 900);
    assert_eq!(stats.latency_p95_ms, Some(901));
    // Past 30 s the first batch has left the window.
    let stats = window.stats(t0 + chrono::Duration::seconds(45));
    assert_eq!(stats.requests, 60);
    assert_eq!(stats.service.unwrap().p99_ms, 100);
    assert_eq!(stats.connect.unwrap().p50_ms, 1);
    assert_eq!(
        window.last_request_at(),
        Some(t0 + chrono::Duration::seconds(20))
    );
    let stats = window.stats(t0 + chrono::Duration::seconds(60));
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.latency_p95_ms, None);
    assert_eq!(stats.service, None);
}

#[test]
fn the_window_is_bounded_and_errors_push_the_p95_up() {
    let t0 = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let mut window = RouterWindow::new(Duration::from_secs(30), 100);
    window.push(t0, (0..250).map(|_| request(5)));
    assert_eq!(window.stats(t0).requests, 100);
    let untimed = |code: u8| Request {
        connect_ms: None,
        service_ms: None,
        status: 503,
        code: Some(code),
    };
    // 10 of 110 are H11 (backlog too deep, no times): more than 5%, so the p95 is an
    // endless wait.
    window.push(t0, std::iter::repeat_n(untimed(11), 10));
    let stats = window.stats(t0);
    assert_eq!(stats.errors, 10);
    assert_eq!(stats.timeouts, 10);
    assert_eq!(stats.latency_p95_ms, Some(u64::MAX));
    assert_eq!(
        stats.service.unwrap().p95_ms,
        5,
        "untimed errors have no service time"
    );
    // H14 (no web dynos) says the app is down: counted apart, never slow.
    let mut window = RouterWindow::new(Duration::from_secs(30), 100);
    window.push(t0, (0..50).map(|_| request(5)));
    window.push(t0, std::iter::repeat_n(untimed(14), 50));
    let stats = window.stats(t0);
    assert_eq!(
        (stats.requests, stats.unavailable, stats.errors),
        (50, 50, 50)
    );
    assert_eq!(stats.latency_p95_ms, Some(6));
}

#[test]
fn the_workers_own_heartbeat_lines_are_counted_apart() {
    let line = |path: &str| {
        format!(
            "<158>1 2026-11-24T09:00:00+00:00 host heroku router - at=info method=GET path=\"{path}\" dyno=web.1 connect=1ms service=5ms status=200"
        )
    };
    let messages = [
        line("/"),
        line("/autoscalebot/heartbeat/?x=1"),
        line("/autoscalebot/heartbeat/"),
    ];
    let body: String = messages
        .iter()
        .map(|message| format!("{} {message}\n", message.len() + 1))
        .collect();
    let mut requests = Vec::new();
    let counts = parse_batch(
        body.as_bytes(),
        Some("/autoscalebot/heartbeat/"),
        &mut requests,
        &mut Vec::new(),
    );
    assert_eq!((counts.router_lines, counts.heartbeat_lines), (3, 2));
    assert_eq!(
        counts.traffic_lines, 1,
        "only the user's request is traffic"
    );
    assert_eq!(requests.len(), 3, "heartbeat lines still count for latency");
}

#[test]
fn a_maintenance_page_is_not_traffic_but_a_client_that_gave_up_is() {
    let body: String = [H80, H80, H27]
        .iter()
        .map(|message| format!("{} {message}\n", message.len() + 1))
        .collect();
    let mut requests = Vec::new();
    let counts = parse_batch(body.as_bytes(), None, &mut requests, &mut Vec::new());
    assert_eq!(counts.router_lines, 3);
    assert_eq!(counts.traffic_lines, 1);
    assert!(!requests[0].is_traffic());
}

const H80: &str = "<158>1 2026-03-10T12:00:00+00:00 host heroku router - at=info code=H80 desc=\"Maintenance mode\" method=GET path=\"/\" host=myapp.herokuapp.com fwd=\"1.2.3.4\" dyno= connect= service= status=503 bytes=";
const H27: &str = "<158>1 2026-03-10T12:00:00+00:00 host heroku router - at=info code=H27 desc=\"Client Request Interrupted\" method=POST path=\"/submit/\" host=myapp.herokuapp.com fwd=\"1.2.3.4\" dyno=web.1 connect=1ms service=4000ms status=499 bytes=0";
const H15: &str = "<158>1 2026-03-10T12:00:00+00:00 host heroku router - at=error code=H15 desc=\"Idle connection\" dyno=web.1 connect=1ms service=55449ms status=503 bytes=18";
const H10: &str = "<158>1 2026-03-10T12:00:00+00:00 host heroku router - at=error code=H10 desc=\"App crashed\" method=GET path=\"/\" host=myapp.herokuapp.com fwd=\"1.2.3.4\" dyno= connect= service= status=503 bytes=";

fn one_request(line: &str) -> Request {
    Request::from(&parse_router_line(router_message(line)).unwrap())
}

#[test]
fn each_router_code_means_what_herokus_documentation_says() {
    let meaning = |code: Option<u8>, status: u16| {
        Request {
            connect_ms: Some(1),
            service_ms: Some(10),
            status,
            code,
        }
        .meaning()
    };
    assert_eq!(meaning(None, 200), Meaning::Served);
    assert_eq!(
        meaning(None, 500),
        Meaning::Served,
        "the app's own 500 is its answer"
    );
    assert_eq!(meaning(None, 499), Meaning::Silent, "the client hung up");
    for code in [11, 12, 13] {
        assert_eq!(meaning(Some(code), 503), Meaning::Overloaded, "H{code}");
    }
    for code in [10, 14, 19, 20, 21] {
        assert_eq!(meaning(Some(code), 503), Meaning::Down, "H{code}");
    }
    for code in [17, 18] {
        assert_eq!(meaning(Some(code), 503), Meaning::Served, "H{code}");
    }
    for code in [
        15, 16, 22, 23, 24, 25, 26, 27, 28, 31, 32, 80, 81, 82, 83, 99,
    ] {
        assert_eq!(meaning(Some(code), 503), Meaning::Silent, "H{code}");
    }
    assert_eq!(one_request(H80).meaning(), Meaning::Silent);
    assert_eq!(one_request(H27).meaning(), Meaning::Silent);
    assert_eq!(one_request(H15).meaning(), Meaning::Silent);
    assert_eq!(one_request(H10).meaning(), Meaning::Down);
    assert_eq!(one_request(H12).meaning(), Meaning::Overloaded);
}

#[test]
fn maintenance_client_aborts_and_idle_connections_never_make_a_window_slow() {
    let t0 = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let mut window = RouterWindow::new(Duration::from_secs(30), 1000);
    // 16 batches of H80, as in the report that scaled an app from 1 to 3 dynos.
    for _ in 0..16 {
        window.push(t0, std::iter::repeat_n(one_request(H80), 10));
    }
    window.push(t0, [one_request(H27), one_request(H15)]);
    let stats = window.stats(t0);
    assert_eq!((stats.requests, stats.silent), (0, 162));
    assert_eq!(stats.latency_p95_ms, None);
    assert_eq!(stats.requests_per_second, 0.0);
    // Beside real traffic they change neither the rate nor the p95.
    window.push(t0, (0..20).map(|_| request(40)));
    let stats = window.stats(t0);
    assert_eq!(stats.requests, 20);
    assert_eq!(stats.latency_p95_ms, Some(41));
    assert_eq!(stats.mean_service_ms, Some(40.0));
}

#[test]
fn the_mean_service_time_counts_timeouts_at_their_30_s() {
    let t0 = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let mut window = RouterWindow::new(Duration::from_secs(10), 1000);
    window.push(t0, (0..9).map(|_| request(100)));
    window.push(t0, [one_request(H12), one_request(H10)]);
    let stats = window.stats(t0);
    assert_eq!(
        (stats.requests, stats.timeouts, stats.unavailable),
        (10, 1, 1)
    );
    assert_eq!(stats.mean_service_ms, Some((900.0 + 30_000.0) / 10.0));
    assert!((stats.requests_per_second - 1.0).abs() < 1e-9);
}

#[test]
fn l2met_lines_are_collected_per_process_type_and_a_bad_one_is_skipped_and_counted() {
    let body = format!(
        "{}{}{}{}",
        frame("<190>1 2026-11-24T09:00:00+00:00 host app worker.2 - sample#queue.depth=42 measure#queue.latency=1.5s"),
        frame("<190>1 2026-11-24T09:00:00+00:00 host app worker.1 - sample#queue.depth=many"),
        frame("<45>1 2026-11-24T09:00:00+00:00 host heroku web.1 - source=web.1 dyno=heroku.1.abc sample#load_avg_1m=0.52"),
        frame(H12),
    );
    let mut requests = Vec::new();
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    let counts = crate::router_log::parse_batch_with_samples(
        body.as_bytes(),
        None,
        &mut requests,
        Some(&mut samples),
        &mut problems,
    );
    assert_eq!((counts.l2met_lines, counts.bad_l2met_lines), (2, 1));
    assert_eq!((counts.router_lines, counts.other_lines), (1, 0));
    let read: Vec<(&str, &str, f64)> = samples
        .iter()
        .map(|s| (s.process_type.as_str(), s.name.as_str(), s.value))
        .collect();
    assert_eq!(
        read,
        vec![
            ("worker", "queue.depth", 42.0),
            ("worker", "queue.latency", 1.5),
            ("web", "load_avg_1m", 0.52),
        ]
    );
    assert!(
        problems[0].contains("sample#queue.depth=\"many\""),
        "{problems:?}"
    );
}

#[test]
fn pushing_lines_in_one_batch_keeps_what_pushing_them_one_by_one_keeps() {
    let line = |service_ms: u32| Request {
        connect_ms: Some(0),
        service_ms: Some(service_ms),
        status: 200,
        code: None,
    };
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    // Lines every 700 ms over 50 s, some sharing a moment, in a 30 s window of at most 40.
    let lines: Vec<_> = (0..100_i64)
        .map(|i| {
            let at = start + chrono::Duration::milliseconds(i / 2 * 1000 + (i % 2) * 700);
            (at, line(i as u32))
        })
        .collect();
    for capacity in [40, usize::MAX] {
        let mut one_by_one = RouterWindow::new(Duration::from_secs(30), capacity);
        for (at, request) in &lines {
            one_by_one.push(*at, [*request]);
        }
        let mut batched = RouterWindow::new(Duration::from_secs(30), capacity);
        batched.push_each(lines[..30].iter().copied());
        batched.push_each(lines[30..].iter().copied());
        assert_eq!(batched.last_request_at(), one_by_one.last_request_at());
        let now = start + chrono::Duration::seconds(55);
        assert_eq!(batched.stats(now), one_by_one.stats(now), "{capacity}");
    }
}
