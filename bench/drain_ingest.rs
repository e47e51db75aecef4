//! Drain ingestion speed: router lines per second through the logplex splitter, the router
//! line parser and the window (what `POST /logs` does per batch), then end to end through the
//! HTTP server on loopback with the client on the same thread. Run on one core with
//! `bench/drain_ingest.sh`; the numbers go in docs/benchmarks.md ("Log drain ingestion").

use autoscalebot::router_log::{parse_batch, RouterWindow};
use autoscalebot::settings::from_toml_str;
use autoscalebot::telemetry::Telemetry;
use chrono::Utc;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Logplex batches hold up to a few hundred messages; 100 is typical.
const LINES_PER_BATCH: usize = 100;

fn router_line(i: usize) -> String {
    let service = 5 + (i * 7919) % 900;
    let status = if i % 50 == 0 { 503 } else { 200 };
    format!(
        "<158>1 2026-11-24T09:00:00.{:06}+00:00 host heroku router - at=info method=GET \
         path=\"/items/{i}\" host=bench-app.herokuapp.com \
         request_id=59da6323-2bc4-4143-8677-{i:012} fwd=\"181.167.87.140\" dyno=web.{} \
         connect={}ms service={service}ms status={status} bytes=6979 protocol=https",
        i % 1_000_000,
        1 + i % 4,
        i % 3
    )
}

fn batches(count: usize) -> Vec<String> {
    (0..count)
        .map(|b| {
            (0..LINES_PER_BATCH)
                .map(|l| {
                    let line = router_line(b * LINES_PER_BATCH + l);
                    format!("{} {line}\n", line.len() + 1)
                })
                .collect()
        })
        .collect()
}

fn parse_and_aggregate(batches: &[String]) -> (Duration, u64) {
    let mut window = RouterWindow::new(Duration::from_secs(30), 1_000_000);
    let mut requests = Vec::with_capacity(LINES_PER_BATCH);
    let mut problems = Vec::new();
    let mut lines = 0;
    let now = Utc::now();
    let started = Instant::now();
    for (i, body) in batches.iter().enumerate() {
        requests.clear();
        let counts = parse_batch(body.as_bytes(), None, &mut requests, &mut problems);
        lines += counts.router_lines;
        window.push(now, requests.drain(..));
        // The loop reads the window once per heartbeat: here once per 1000 batches.
        if i % 1000 == 999 {
            std::hint::black_box(window.stats(now));
        }
    }
    (started.elapsed(), lines)
}

async fn end_to_end(batches: &[String]) -> (Duration, u64) {
    let settings = from_toml_str(
        "heroku_app_name = \"bench-app\"\nheroku_api_key = \"k\"\nhttp_port = 0\n\
         log_drain_password = \"bench\"\nrouter_window = \"30s\"",
        &HashMap::new(),
    )
    .unwrap()
    .apps
    .remove(0);
    let telemetry = Telemetry::alone(&settings, std::sync::Arc::new(Utc::now));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/logs", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(autoscalebot::server::serve(
        listener,
        vec![telemetry.clone()],
        autoscalebot::server::Access::default(),
        shutdown.clone(),
    ));
    let client = reqwest::Client::new();
    let started = Instant::now();
    for (i, body) in batches.iter().enumerate() {
        let status = client
            .post(&url)
            .header("content-type", "application/logplex-1")
            .header("logplex-msg-count", LINES_PER_BATCH.to_string())
            .header("logplex-frame-id", i.to_string())
            .basic_auth("token", Some("bench"))
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 204);
    }
    let elapsed = started.elapsed();
    let lines = telemetry.router_stats().requests;
    shutdown.cancel();
    let _ = server.await;
    (elapsed, lines)
}

fn main() {
    let batch_count: usize = std::env::var("BATCHES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20_000);
    let batches = batches(batch_count);
    let bytes: usize = batches.iter().map(String::len).sum();
    println!(
        "{} batches of {LINES_PER_BATCH} router lines, {:.1} MB",
        batch_count,
        bytes as f64 / 1e6
    );
    // Warm up, then measure.
    parse_and_aggregate(&batches[..batch_count / 10]);
    let (elapsed, lines) = parse_and_aggregate(&batches);
    println!(
        "parse + window: {lines} lines in {:.3} s = {:.0} lines/s ({:.0} MB/s)",
        elapsed.as_secs_f64(),
        lines as f64 / elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64()
    );
    let http_batches = &batches[..batch_count.min(5000)];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, lines) = runtime.block_on(end_to_end(http_batches));
    println!(
        "HTTP end to end (server and client on one thread): {lines} lines in {:.3} s = {:.0} lines/s ({:.0} batches/s)",
        elapsed.as_secs_f64(),
        lines as f64 / elapsed.as_secs_f64(),
        http_batches.len() as f64 / elapsed.as_secs_f64()
    );
}
