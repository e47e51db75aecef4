//! The status page as a person sees it: the worker runs, headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads `/` and takes a screenshot, and the test checks
//! that the chart was really drawn: the DOM's latency path has points, and the PNG has the
//! latency line's and the dyno steps' colours in it. Without Chromium the test fails, loudly:
//! a page that was never looked at must not pass.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "test-key-0123456789";
/// `LATENCY_COLOUR` and `DYNOS_COLOUR` of `src/server/status_page.rs`.
const LATENCY_RGB: [u8; 3] = [0x1f, 0x6f, 0xd1];
const DYNOS_RGB: [u8; 3] = [0xef, 0x6c, 0x00];

fn chromium() -> PathBuf {
    let candidates = [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".to_string()),
        Some("/usr/bin/chromium-browser".to_string()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Chromium is not installed, so the status page cannot be checked. \
                 Install Debian's package: apt-get update && apt-get install -y chromium \
                 (.ci/run does), or set CHROMIUM to its path."
            )
        })
}

/// Runs headless Chromium with `args` then `url`, killed after the deadline.
fn run_chromium(profile: &Path, args: &[String], url: &str) -> Output {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("chromium did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// How many pixels are within a small distance of `rgb` (anti-aliased edges are not).
fn pixels_near(rgba: &[u8], channels: usize, rgb: [u8; 3]) -> usize {
    rgba.chunks(channels)
        .filter(|pixel| {
            pixel[..3]
                .iter()
                .zip(rgb)
                .all(|(have, want)| have.abs_diff(want) <= 24)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_draws_the_chart_in_a_real_browser() {
    let heartbeat = HeartbeatServer::start(250).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        "http_port = 0\nmax_response_time_in_ms = 150\nmin_response_time_in_ms = 20\n\
         number_of_fails_to_scale_up_after = 2\nnumber_of_passes_to_scale_down_after = 2\nmax_dynos = 3",
    );
    let mut bot = Bot::start(&settings, &[], &[]);
    let base = bot.http_url().await;
    // Slow, then fast: the line goes up and down, and the dynos step up and back.
    wait_until("the formation reaches 3", || api.quantity() == 3).await;
    heartbeat.set_latency_ms(0);
    wait_until("the formation is back at 1", || api.quantity() == 1).await;
    heartbeat.wait_for_more(3).await;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/");
    let dom = run_chromium(&dir.path().join("dom"), &["--dump-dom".to_string()], &url);
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    let path_start = dom
        .find("class=\"latency\"")
        .unwrap_or_else(|| panic!("no latency path in the DOM:\n{dom}"));
    let path = &dom[path_start
        ..dom[path_start..]
            .find("/>")
            .map_or(dom.len(), |end| path_start + end)];
    let points = path.matches('L').count() + path.matches('M').count();
    assert!(points >= 8, "the latency path has {points} points: {path}");
    assert!(
        dom.matches("class=\"scale-event\"").count() >= 4,
        "four scales marked"
    );

    let shot = dir.path().join("status.png");
    let output = run_chromium(
        &dir.path().join("shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,900".to_string(),
        ],
        &url,
    );
    assert!(
        shot.is_file(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!((info.width, info.height), (1200, 900));
    let channels = info.color_type.samples();
    let pixels = &buffer[..info.buffer_size()];
    let latency = pixels_near(pixels, channels, LATENCY_RGB);
    let dynos = pixels_near(pixels, channels, DYNOS_RGB);
    // A 3 px line across most of the 880 px plot is thousands of pixels; the legend's text
    // alone is a few hundred.
    assert!(latency > 1500, "latency line pixels: {latency}");
    assert!(dynos > 1000, "dyno step pixels: {dynos}");
    if let Ok(keep) = std::env::var("KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    assert!(bot.terminate().await.success());
}
