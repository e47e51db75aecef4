//! The target policy, black box: the built worker with `policy = "target"` and
//! `signal = "router"`, its drain fed logplex batches over loopback, against the local
//! formation API. A surge of router lines takes the app to the size the load needs in one
//! scale; a drain that then goes quiet (or sends only maintenance lines) never scales it down,
//! and the worker says it is holding.

use crate::support::*;
use std::time::{Duration, Instant};

const KEY: &str = "test-key-0123456789";
const PASSWORD: &str = "drain-pass-4242";

/// The app's work: 99 ms a request, learnt from quiet windows (10 requests a second on one
/// dyno hardly queue). Then a surge of 200 requests a second swamps the one dyno (its lines say
/// 3 s, a backlog's time, which says nothing of the work): 200 × 0.098 s = 19.7 busy workers,
/// at 90 % of 4 per dyno 5.5 dynos, so 6, several at once from 1.
const QUIET_LINES: usize = 10;
const SERVICE_MS: u64 = 99;
const SURGE_LINES: usize = 200;
const SWAMPED_MS: u64 = 3000;
const SURGE_DYNOS: u32 = 6;

fn settings(api: &FormationApi, heartbeat: &HeartbeatServer) -> String {
    // The window is one second, and one batch is posted a little more than a second apart, so
    // every window the worker reads holds one whole batch (or none): the same rate at every
    // beat, whatever the timing. A short scale-down delay: without its hold on a quiet drain,
    // the policy would scale down within seconds.
    local_settings(
        api,
        heartbeat,
        &format!(
            "policy = \"target\"\nsignal = \"router\"\nhttp_port = 0\n\
             log_drain_password = \"{PASSWORD}\"\nrouter_window = \"1s\"\n\
             scale_down_delay = \"2s\"\nmax_dynos = 10\nmax_response_time_in_ms = 1000"
        ),
    )
}

/// Posts one batch of `lines` every 1.05 s until `done` (told how many were posted), or panics
/// at the deadline.
async fn post_until(base: &str, lines: &[String], what: &str, mut done: impl FnMut(usize) -> bool) {
    let started = Instant::now();
    let mut batch = 0;
    while !done(batch) {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting until {what}"
        );
        let status = post_drain(
            base,
            Some(PASSWORD),
            &format!("{what}-{batch}"),
            lines.len(),
            logplex_body(lines),
        )
        .await;
        assert_eq!(status, 204, "the drain accepts the batch");
        batch += 1;
        let until = Instant::now() + Duration::from_millis(1050);
        while Instant::now() < until && !done(batch) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_surge_of_router_lines_scales_to_the_computed_size_at_once_and_a_quiet_drain_never_down()
{
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", KEY, 1).await;
    let mut bot = Bot::start(&settings(&api, &heartbeat), &[], &[]);
    let base = bot.http_url().await;

    let quiet: Vec<String> = (0..QUIET_LINES)
        .map(|_| router_line(SERVICE_MS, 200))
        .collect();
    post_until(&base, &quiet, "quiet", |batches| batches >= 4).await;
    // The last quiet batch leaves the window before the surge's first comes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        api.patches(),
        Vec::<u32>::new(),
        "10 requests a second need 1 dyno"
    );
    let surge: Vec<String> = (0..SURGE_LINES)
        .map(|_| router_line(SWAMPED_MS, 200))
        .collect();
    post_until(&base, &surge, "surge", |_| api.quantity() > 1).await;
    assert_eq!(
        api.patches(),
        vec![SURGE_DYNOS],
        "one scale, straight to the computed size: {}",
        bot.stderr()
    );
    wait_until("the scale and its reason are logged", || {
        bot.stderr().contains("Scaled.")
    })
    .await;
    let log = bot.stderr();
    // Before the surge the drain was quiet too (and said so); what follows is the quiet after.
    let mark = log.len();
    assert!(
        log.contains("reason=router: 200.0 req/s × 98 ms need 6 dynos at 90 % of 4 workers each"),
        "{log}"
    );

    // The drain goes quiet: empty windows are no signal, and no signal never scales down.
    wait_until("the worker says it holds", || {
        bot.stderr()[mark..].contains("No usable signal")
    })
    .await;
    let quiet_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < quiet_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then only maintenance pages (H80): the platform answering for the app, not its load.
    let h80 = "<158>1 2026-11-24T09:00:00+00:00 host heroku router - at=info code=H80 \
               desc=\"Maintenance mode\" method=GET path=\"/\" host=test-app.herokuapp.com \
               fwd=\"1.2.3.4\" dyno= connect= service= status=503 bytes="
        .to_string();
    let maintenance = vec![h80; 50];
    let posted_until = Instant::now() + Duration::from_secs(3);
    post_until(&base, &maintenance, "maintenance", |_| {
        Instant::now() >= posted_until
    })
    .await;
    assert_eq!(
        api.patches(),
        vec![SURGE_DYNOS],
        "never down without a signal"
    );
    assert_eq!(api.quantity(), SURGE_DYNOS);

    let (status, page) = get_text(&base, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("holding: no signal since"), "{page}");
    let log = bot.stderr();
    assert_eq!(
        log[mark..].matches("No usable signal").count(),
        1,
        "the hold is logged once: {log}"
    );
    assert_eq!(heartbeat.hits(), 0, "signal = router sends no heartbeat");
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(
        !output.contains(PASSWORD) && !output.contains(KEY),
        "{output}"
    );
}

/// The whole chain on the local platform: `autoscalebot sandbox` routes real requests at
/// random to its dynos (as Heroku does) and posts its router lines to the worker's drain,
/// added through the Platform API; the target policy scales on them alone.
#[tokio::test(flavor = "multi_thread")]
async fn the_target_policy_scales_the_sandbox_app_on_the_sandboxs_own_router_lines() {
    use autoscalebot::demo::load::{generate, Phase, Tally};
    let mut sandbox = SandboxProcess::start(&[
        "--routing",
        "random",
        "--dyno-concurrency",
        "2",
        "--service-time-ms",
        "100",
        "--max-quantity",
        "8",
    ])
    .await;
    // 2 workers a dyno at 90 %: 1.8 busy; 60 requests a second of 100 ms: 6 busy, 4 dynos.
    let settings = sandbox_settings(
        &sandbox,
        &format!(
            "policy = \"target\"\nsignal = \"router\"\nhttp_port = 0\n\
             log_drain_password = \"{PASSWORD}\"\nrouter_window = \"1s\"\n\
             dyno_concurrency = 2\nmax_dynos = 8\nscale_down_delay = \"1m\""
        ),
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    let base = bot.http_url().await;
    let port = base.rsplit(':').next().unwrap();
    let drain_url = format!("http://token:{PASSWORD}@127.0.0.1:{port}/logs");
    let added = reqwest::Client::new()
        .post(format!(
            "{}/apps/{}/log-drains",
            sandbox.api_url, sandbox.app
        ))
        .bearer_auth(SANDBOX_KEY)
        .header("accept", "application/vnd.heroku+json; version=3")
        .json(&serde_json::json!({ "url": drain_url }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 201);

    let tally = std::sync::Arc::new(std::sync::Mutex::new(Tally::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let phases = vec![
        Phase {
            name: "quiet",
            duration: Duration::from_secs(4),
            requests_per_second: 5.0,
        },
        Phase {
            name: "surge",
            duration: DEADLINE,
            requests_per_second: 60.0,
        },
    ];
    let load = tokio::spawn(generate(
        reqwest::Client::new(),
        format!("{}/", sandbox.app_url),
        phases,
        tally.clone(),
        stop.clone(),
    ));
    wait_until_async("the surge takes the app to 4 dynos or more", || async {
        sandbox.quantity().await >= 4
    })
    .await;
    stop.cancel();
    let _ = load.await;
    let patches = sandbox.accepted_patches().await;
    assert!(
        patches.iter().all(|&quantity| quantity <= 6),
        "no wild overshoot: {patches:?}"
    );
    let log = bot.stderr();
    assert!(log.contains("reason=router: "), "{log}");
    let (_, text) = get_text(&base, "/metrics").await;
    let scrape = parse_metrics(&text);
    let lines = metric_value(&scrape, "autoscalebot_router_requests_total", &[]).unwrap_or(0.0);
    assert!(
        lines >= 100.0,
        "the sandbox's router lines reached the drain: {text}"
    );
    assert!(bot.terminate().await.success());
    assert_eq!(sandbox.terminate().await.code(), Some(0));
    for output in [bot.stdout(), bot.stderr(), sandbox.output()] {
        assert!(!output.contains(PASSWORD), "{output}");
        assert!(!output.contains(SANDBOX_KEY), "{output}");
    }
}
