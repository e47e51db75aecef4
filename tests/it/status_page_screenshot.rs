//! The status page as a person sees it: the worker runs, headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads `/` and takes a screenshot, and the test checks
//! that the chart was really drawn: the DOM's latency path has points, and the PNG has the
//! latency line's and the dyno steps' colours in it. Without Chromium the test fails, loudly:
//! a page that was never looked at must not pass.

use crate::support::*;

const KEY: &str = "test-key-0123456789";
/// `LATENCY_COLOUR` and `DYNOS_COLOUR` of `src/server/status_page.rs`.
const LATENCY_RGB: [u8; 3] = [0x1f, 0x6f, 0xd1];
const DYNOS_RGB: [u8; 3] = [0xef, 0x6c, 0x00];

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

    let shot = Screenshot::take(dir.path(), "status", &url, 1200, 900);
    assert_eq!((shot.width, shot.height), (1200, 900));
    let latency = shot.pixels_near(LATENCY_RGB);
    let dynos = shot.pixels_near(DYNOS_RGB);
    // A 3 px line across most of the 880 px plot is thousands of pixels; the legend's text
    // alone is a few hundred.
    assert!(latency > 1500, "latency line pixels: {latency}");
    assert!(dynos > 1000, "dyno step pixels: {dynos}");
    if let Ok(keep) = std::env::var("KEEP_SCREENSHOT") {
        std::fs::copy(dir.path().join("status.png"), keep).unwrap();
    }
    assert!(bot.terminate().await.success());
}
