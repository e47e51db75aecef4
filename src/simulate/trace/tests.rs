use super::*;

fn warnings_mention(trace: &Trace, needle: &str) -> bool {
    trace.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn a_csv_with_a_header_reads_every_line() {
    let trace = parse_csv(
        "t.csv",
        "timestamp,requests_per_second\n1000,2.5\n1060,5\n1120,0\n",
    )
    .unwrap();
    assert!(trace.warnings.is_empty(), "{:?}", trace.warnings);
    let rates: Vec<f64> = trace
        .points()
        .iter()
        .map(|p| p.requests_per_second)
        .collect();
    assert_eq!(rates, vec![2.5, 5.0, 0.0]);
    assert_eq!(trace.start_ms(), 1_000_000);
    // The last point lasts the usual step.
    assert_eq!(trace.end_ms(), 1_180_000);
}

#[test]
fn a_csv_without_header_and_with_rfc3339_times_reads_too() {
    let trace = parse_csv(
        "t.csv",
        "2024-01-01T00:00:00Z,1\n2024-01-01 00:01:00,2\n2024-01-01T00:02:00+00:00,3\n",
    )
    .unwrap();
    assert!(trace.warnings.is_empty(), "{:?}", trace.warnings);
    assert_eq!(trace.points().len(), 3);
    assert_eq!(trace.points()[1].at_ms - trace.points()[0].at_ms, 60_000);
}

#[test]
fn bad_lines_are_skipped_and_named_and_the_rest_is_kept() {
    let text = "timestamp,requests_per_second\n\
                0,1\n\
                60,oops\n\
                120,-4\n\
                120,2\n\
                120,3\n\
                60,9\n\
                180,4\n\
                what is this\n";
    let trace = parse_csv("t.csv", text).unwrap();
    let rates: Vec<f64> = trace
        .points()
        .iter()
        .map(|p| p.requests_per_second)
        .collect();
    assert_eq!(rates, vec![1.0, 2.0, 4.0]);
    assert!(
        warnings_mention(&trace, "line 3: \"60,oops\""),
        "{:?}",
        trace.warnings
    );
    assert!(
        warnings_mention(&trace, "line 4: rate -4"),
        "{:?}",
        trace.warnings
    );
    assert!(
        warnings_mention(&trace, "line 6: timestamp 120 repeats line 5"),
        "{:?}",
        trace.warnings
    );
    assert!(
        warnings_mention(&trace, "line 7: timestamp 60 is earlier than line 5"),
        "{:?}",
        trace.warnings
    );
    assert!(
        warnings_mention(&trace, "line 9: \"what is this\""),
        "{:?}",
        trace.warnings
    );
    assert_eq!(trace.warnings.len(), 5, "{:?}", trace.warnings);
}

#[test]
fn a_gap_is_reported_with_its_line_and_the_rate_is_held_across_it() {
    let trace = parse_csv("t.csv", "0,1\n60,1\n120,2\n3720,1\n3780,1\n").unwrap();
    assert!(
        warnings_mention(&trace, "line 4: a gap of 1h 00m after line 3"),
        "{:?}",
        trace.warnings
    );
    // Line 3's 2 req/s holds for the hour: 7200 requests over [120 s, 3720 s).
    assert!((trace.mean_rate(120_000, 3_720_000) - 2.0).abs() < 1e-12);
}

#[test]
fn a_trace_with_no_valid_line_is_an_error_naming_the_lines() {
    let error = parse_csv("t.csv", "timestamp,rps\nx,1\n5,-1\n").unwrap_err();
    assert!(error.0.contains("no valid line"), "{error}");
    assert!(error.0.contains("line 2"), "{error}");
    assert!(error.0.contains("line 3"), "{error}");
    assert!(parse_csv("t.csv", "").is_err());
}

#[test]
fn the_mean_rate_integrates_the_steps() {
    let trace = parse_csv("t.csv", "0,10\n60,20\n120,0\n").unwrap();
    assert!((trace.mean_rate(0, 60_000) - 10.0).abs() < 1e-12);
    // Half a minute of 10 and half of 20.
    assert!((trace.mean_rate(30_000, 90_000) - 15.0).abs() < 1e-12);
    assert_eq!(trace.mean_rate(200_000, 300_000), 0.0, "after the end");
    let mut doubled = trace.clone();
    doubled.scale_rates(2.0);
    assert!((doubled.mean_rate(30_000, 90_000) - 30.0).abs() < 1e-12);
}

const ROUTER_LINES: &str = "\
2024-03-01T10:00:00.120000+00:00 heroku[router]: at=info method=GET path=\"/\" host=my-app.herokuapp.com request_id=a fwd=\"1.2.3.4\" dyno=web.1 connect=0ms service=20ms status=200 bytes=100 protocol=https
2024-03-01T10:00:00.480000+00:00 heroku[router]: at=info method=GET path=\"/a\" host=my-app.herokuapp.com request_id=b fwd=\"1.2.3.4\" dyno=web.2 connect=1ms service=40ms status=200 bytes=100 protocol=https
2024-03-01T10:00:00.500000+00:00 app[web.1]: Completed 200 OK in 18ms
2024-03-01T10:00:02.900000+00:00 heroku[router]: at=info method=POST path=\"/b\" host=my-app.herokuapp.com request_id=c fwd=\"1.2.3.4\" dyno=web.1 connect=0ms service=90ms status=201 bytes=10 protocol=https
yesterday heroku[router]: at=info method=GET path=\"/c\" service=5ms status=200
";

#[test]
fn a_router_log_gives_requests_per_second_and_the_mean_service_time() {
    assert!(looks_like_router_log(ROUTER_LINES));
    let trace = parse_router_log("router.log", ROUTER_LINES).unwrap();
    let rates: Vec<f64> = trace
        .points()
        .iter()
        .map(|p| p.requests_per_second)
        .collect();
    // Seconds 10:00:00, :01 (quiet) and :02.
    assert_eq!(rates, vec![2.0, 0.0, 1.0]);
    let service = trace.service_times.unwrap();
    assert_eq!(service.requests, 3);
    assert!((service.mean_ms - 50.0).abs() < 1e-9);
    assert!(
        warnings_mention(
            &trace,
            "line 5: a router line without an RFC 3339 timestamp"
        ),
        "{:?}",
        trace.warnings
    );
}

#[test]
fn logplex_frames_are_split_by_their_octet_counts() {
    let frames: String = [
        "<158>1 2024-03-01T10:00:00+00:00 host heroku router - at=info method=GET path=\"/\" connect=1ms service=10ms status=200 bytes=5",
        "<158>1 2024-03-01T10:00:00+00:00 host heroku router - at=info method=GET path=\"/x\" connect=1ms service=30ms status=200 bytes=5",
        "<45>1 2024-03-01T10:00:01+00:00 host app web.1 - Started GET",
        "<158>1 2024-03-01T10:00:01+00:00 host heroku router - at=info method=GET path=\"/y\" connect=1ms service=20ms status=200 bytes=5",
    ]
    .iter()
    .map(|frame| format!("{} {frame}", frame.len()))
    .collect();
    assert!(looks_like_router_log(&frames));
    let trace = parse_router_log("drain", &frames).unwrap();
    let rates: Vec<f64> = trace
        .points()
        .iter()
        .map(|p| p.requests_per_second)
        .collect();
    assert_eq!(rates, vec![2.0, 1.0]);
    assert!((trace.service_times.unwrap().mean_ms - 20.0).abs() < 1e-9);
}

#[test]
fn a_log_without_router_lines_is_an_error() {
    let error =
        parse_router_log("app.log", "2024-03-01T10:00:00+00:00 app[web.1]: hello\n").unwrap_err();
    assert!(error.0.contains("no valid line"), "{error}");
}

#[test]
fn an_unknown_builtin_and_a_missing_file_are_bad_input() {
    let error = load("builtin:nope", chrono_tz::UTC).unwrap_err();
    assert!(error.0.contains("builtin:nope"), "{error}");
    let error = load("/nonexistent/trace.csv", chrono_tz::UTC).unwrap_err();
    assert!(error.0.contains("/nonexistent/trace.csv"), "{error}");
}

#[test]
fn from_points_refuses_what_parsing_would_have_skipped() {
    let point = |at_ms, requests_per_second| Point {
        at_ms,
        requests_per_second,
    };
    assert!(Trace::from_points("t", vec![]).is_err());
    assert!(Trace::from_points("t", vec![point(0, 1.0), point(0, 1.0)]).is_err());
    assert!(Trace::from_points("t", vec![point(0, -1.0)]).is_err());
    assert!(Trace::from_points("t", vec![point(0, f64::NAN)]).is_err());
}

#[test]
fn router_lines_count_as_the_drain_counts_them() {
    let lines = "\
2024-03-01T10:00:00+00:00 heroku[router]: at=info method=GET path=\"/\" dyno=web.1 connect=0ms service=20ms status=200 bytes=100
2024-03-01T10:00:00+00:00 heroku[router]: at=error code=H12 desc=\"Request timeout\" method=GET path=\"/slow\" dyno=web.1 connect=0ms service=30000ms status=503 bytes=0
2024-03-01T10:00:00+00:00 heroku[router]: at=error code=H15 desc=\"Idle connection\" dyno=web.1 connect=1ms service=55449ms status=503 bytes=18
2024-03-01T10:00:01+00:00 heroku[router]: at=info code=H80 desc=\"Maintenance mode\" method=GET path=\"/\" dyno= connect= service= status=503 bytes=
2024-03-01T10:00:01+00:00 heroku[router]: at=info code=H27 desc=\"Client Request Interrupted\" method=POST path=\"/\" dyno=web.1 connect=1ms service=900ms status=499 bytes=
2024-03-01T10:00:01+00:00 heroku[router]: at=error code=H10 desc=\"App crashed\" method=GET path=\"/\" dyno= connect= service= status=503 bytes=
2024-03-01T10:00:02+00:00 heroku[router]: at=info method=GET path=\"/\" dyno=web.1 connect=0ms service=40ms status=200 bytes=100
";
    let trace = parse_router_log("router.log", lines).unwrap();
    let rates: Vec<f64> = trace
        .points()
        .iter()
        .map(|p| p.requests_per_second)
        .collect();
    // The served requests and the timeout reached the app; H15, H80, H27 and H10 did not
    // load it (the H15 line, without method=, is still read as a router line).
    assert_eq!(rates, vec![2.0, 0.0, 1.0]);
    let service = trace.service_times.unwrap();
    assert_eq!((service.requests, service.timeouts), (3, 1));
    assert!((service.mean_ms - (20.0 + 30_000.0 + 40.0) / 3.0).abs() < 1e-9);
    assert!(
        warnings_mention(&trace, "1 router lines say the app was down")
            && warnings_mention(&trace, "3 say nothing of its speed"),
        "{:?}",
        trace.warnings
    );
}
