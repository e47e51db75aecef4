//! The pictures as a person sees them, in headless Chromium (Debian's `chromium`):
//! - the status page of a worker whose heartbeats were fast, then slower than the chart's
//!   ceiling, then timed out: the slow ones are marked as drawn at the top, the timed-out ones
//!   with a cross, and the legend names both;
//! - the `simulate --plot` SVG at 1400 and 700 px wide: it scales to the window (the whole
//!   plot is inside a 700 px window, at half the size), its x axis is clock time in the
//!   settings' time zone, scale-ups and scale-downs are triangles pointing their way in two
//!   colours, and the legend names every kind of mark.
//!
//! `KEEP_PICTURES=DIR` copies the screenshots there for a person to look at.

use crate::support::*;

const KEY: &str = "test-key-0123456789";
/// `TIMEOUT_COLOUR`, `CLIPPED_COLOUR` and `LATENCY_COLOUR` of `src/server/status_page.rs`.
const TIMEOUT_RGB: [u8; 3] = [0xe9, 0x1e, 0x63];
const CLIPPED_RGB: [u8; 3] = [0x00, 0x89, 0x7b];
/// The plot's colours (`src/simulate/report.rs`): plotters' pure red for the max line, and
/// the scale-up, scale-down and timeout marks.
const MAX_LINE_RGB: [u8; 3] = [255, 0, 0];
const SCALE_UP_RGB: [u8; 3] = [0, 150, 0];
const SCALE_DOWN_RGB: [u8; 3] = [214, 40, 40];
const PLOT_TIMEOUT_RGB: [u8; 3] = [233, 30, 99];

fn keep(dir: &std::path::Path, name: &str) {
    if let Ok(keep) = std::env::var("KEEP_PICTURES") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(dir.join(name), std::path::Path::new(&keep).join(name)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_marks_timed_out_and_clipped_beats() {
    let heartbeat = HeartbeatServer::start(10).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    // The ceiling is 3 × max + 5% = 315 ms: a 450 ms answer is above it, and the 700 ms
    // timeout too.
    let settings = local_settings(
        &api,
        &heartbeat,
        "http_port = 0\nmax_response_time_in_ms = 100\nmin_response_time_in_ms = 5\n\
         heartbeat_timeout_in_ms = 700\nmax_dynos = 2\nnumber_of_passes_to_scale_down_after = 1000",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    let base = bot.http_url().await;
    heartbeat.wait_for_more(4).await;
    heartbeat.set_latency_ms(450);
    heartbeat.wait_for_more(4).await;
    heartbeat.set_latency_ms(3000);
    // A timed-out heartbeat is never served (the worker hangs up first): count them on the
    // page instead.
    wait_until_async("three heartbeats timed out", || async {
        get_text(&base, "/")
            .await
            .1
            .matches("class=\"timed-out\"")
            .count()
            >= 3
    })
    .await;
    heartbeat.set_latency_ms(10);
    heartbeat.wait_for_more(3).await;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/");
    let dom = run_chromium(&dir.path().join("dom"), &["--dump-dom".to_string()], &url);
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    let timed_out = dom.matches("class=\"timed-out\"").count();
    let clipped = dom.matches("class=\"clipped\"").count();
    assert!(timed_out >= 3, "timed-out marks: {timed_out}\n{dom}");
    assert!(clipped >= 2, "clipped marks: {clipped}\n{dom}");
    assert!(
        dom.contains("timed out after 7"),
        "a mark's caption says so:\n{dom}"
    );
    assert!(
        dom.contains("✕ timed out (700 ms, no answer)"),
        "the legend:\n{dom}"
    );
    assert!(
        dom.contains("slower than the chart's top (315 ms)"),
        "{dom}"
    );
    assert!(
        dom.contains("drawn at most 315 ms"),
        "the chart's own note:\n{dom}"
    );

    let shot = Screenshot::take(dir.path(), "status-timeouts", &url, 1200, 1000);
    keep(dir.path(), "status-timeouts.png");
    // A cross is about 60 pixels and a triangle about 60; the legend's words in those
    // colours are a few dozen solid pixels each.
    let timeout_pixels = shot.pixels_near(TIMEOUT_RGB);
    let clipped_pixels = shot.pixels_near(CLIPPED_RGB);
    assert!(
        timeout_pixels > 150,
        "timed-out marks' pixels: {timeout_pixels}"
    );
    assert!(
        clipped_pixels > 100,
        "clipped marks' pixels: {clipped_pixels}"
    );
    assert!(bot.terminate().await.success());
}

/// A three-hour trace from 14:00 UTC (09:00 in New York): quiet, a surge that the dynos at
/// hand cannot serve (slow answers, heartbeats timing out, scale-ups), quiet again
/// (scale-downs).
fn surge_trace(dir: &std::path::Path) -> std::path::PathBuf {
    let start_s = 1_704_117_600; // 2024-01-01T14:00:00Z
    let mut text = String::from("timestamp,requests_per_second\n");
    for minute in 0..180 {
        let rate = if (60..120).contains(&minute) { 200 } else { 10 };
        text.push_str(&format!("{},{rate}\n", start_s + 60 * minute));
    }
    let path = dir.join("surge.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_simulate_plot_fits_the_window_and_says_what_it_draws() {
    let (dir, settings) =
        settings_file("max_dynos = 6\nmin_dynos = 1\ntime_zone = \"America/New_York\"\n");
    let trace = surge_trace(dir.path());
    let plot = dir.path().join("plot.svg");
    let output = command()
        .args(["simulate", "--settings"])
        .arg(&settings)
        .arg("--trace")
        .arg(&trace)
        .arg("--plot")
        .arg(&plot)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    let root = &svg[..svg.find('>').unwrap()];
    assert!(
        root.contains("width=\"100%\"") && root.contains("viewBox=\"0 0 1400 820\""),
        "a plot that scales to its window: {root}"
    );
    // Clock time in the settings' zone: the trace starts at 14:00 UTC, 09:00 in New York.
    let labels: Vec<&str> = svg
        .split("<text")
        .filter_map(|text| text.split_once('>')?.1.split('<').next())
        .map(str::trim)
        .collect();
    assert!(labels.contains(&"time (America/New_York)"), "{labels:?}");
    assert!(
        labels.contains(&"09:00") && labels.contains(&"11:00"),
        "{labels:?}"
    );
    assert!(
        !labels.contains(&"14:00"),
        "UTC is not the settings' zone: {labels:?}"
    );
    for legend in [
        "heartbeat",
        "heartbeat timed out (5000 ms)",
        "p95 (model, median per bucket)",
        "max_response_time_in_ms",
        "min_response_time_in_ms",
        "oracle",
        "ours",
        "ours scaled up",
        "ours scaled down",
    ] {
        assert!(
            labels.contains(&legend),
            "no legend for {legend}: {labels:?}"
        );
    }
    // Up and down are different shapes in different colours: a triangle with its point up
    // (smallest y first) in green, one with its point down in red.
    let polygons: Vec<&str> = svg.split("<polygon").skip(1).collect();
    let shape = |fill: &str| {
        polygons
            .iter()
            .filter(|polygon| polygon.contains(&format!("fill=\"{fill}\"")))
            .map(|polygon| {
                let points = polygon.split("points=\"").nth(1).unwrap();
                let ys: Vec<i64> = points
                    .split('"')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(|pair| pair.split(',').nth(1).unwrap().parse().unwrap())
                    .collect();
                // The apex is the first point: above the base for up, below for down.
                ys[0] < ys[1]
            })
            .collect::<Vec<bool>>()
    };
    let ups = shape("#009600");
    let downs = shape("#D62828");
    assert!(
        ups.len() >= 2 && ups.iter().all(|&apex_up| apex_up),
        "{ups:?}"
    );
    assert!(
        downs.len() >= 2 && downs.iter().all(|&apex_up| !apex_up),
        "{downs:?}"
    );

    let url = format!("file://{}", plot.display());
    let wide = Screenshot::take(dir.path(), "plot-1400", &url, 1400, 900);
    let narrow = Screenshot::take(dir.path(), "plot-700", &url, 700, 900);
    keep(dir.path(), "plot-1400.png");
    keep(dir.path(), "plot-700.png");
    for (shot, rgb, what) in [
        (&wide, SCALE_UP_RGB, "scale-up marks"),
        (&wide, SCALE_DOWN_RGB, "scale-down marks"),
        (&wide, PLOT_TIMEOUT_RGB, "timed-out heartbeats"),
        (&narrow, SCALE_UP_RGB, "scale-up marks at 700 px"),
        (&narrow, SCALE_DOWN_RGB, "scale-down marks at 700 px"),
    ] {
        assert!(
            shot.pixels_near(rgb) > 30,
            "{what}: {}",
            shot.pixels_near(rgb)
        );
    }
    // The max line runs across the whole plot: at 700 px it is half as long and starts half
    // as far in, and ends inside the window (a fixed 1400 px plot would run off its edge).
    let (wide_left, wide_right) = wide
        .columns_near(MAX_LINE_RGB)
        .expect("the max line at 1400 px");
    let (narrow_left, narrow_right) = narrow
        .columns_near(MAX_LINE_RGB)
        .expect("the max line at 700 px");
    let wide_length = f64::from(wide_right - wide_left);
    let narrow_length = f64::from(narrow_right - narrow_left);
    assert!(
        (narrow_length / wide_length - 0.5).abs() < 0.02,
        "scaled by half: {narrow_length} of {wide_length}"
    );
    assert!(
        narrow_left.abs_diff(wide_left / 2) <= 2,
        "{narrow_left} vs {wide_left}"
    );
    assert!(
        narrow_right < 700 - 3,
        "the plot's right edge is inside: {narrow_right}"
    );
}
