//! The worker's HTTP server against hostile and broken clients, black box: the built binary
//! on loopback locks its pages and `/metrics` with `http_password`, refuses to start on a
//! public address without one, and keeps answering good clients while others hold idle
//! connections, trickle their headers or flood the drain with wrong passwords.

use crate::support::*;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const PAGES: &str = "pages-pass-5150";
const DRAIN: &str = "drain-pass-4242";
/// The answer a good client must get under abuse (the bar): well above an idle
/// server's milliseconds, well below the 10 s an abusive connection may be held.
const GOOD_ANSWER_WITHIN: Duration = Duration::from_secs(1);

async fn locked_bot() -> (Bot, String, HeartbeatServer, FormationApi) {
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", "test-key-0123456789", 1).await;
    let settings = local_settings(
        &api,
        &heartbeat,
        &format!(
            "signal = \"both\"\nhttp_port = 0\nhttp_password = \"env:PAGES_PASSWORD\"\n\
             log_drain_password = \"{DRAIN}\"\nrouter_window = \"1s\""
        ),
    );
    let bot = Bot::start(&settings, &[], &[("PAGES_PASSWORD", PAGES)]);
    let base = bot.http_url().await;
    (bot, base, heartbeat, api)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(GOOD_ANSWER_WITHIN)
        .build()
        .unwrap()
}

async fn scrape(base: &str) -> String {
    let response = client()
        .get(format!("{base}/metrics"))
        .bearer_auth(PAGES)
        .send()
        .await
        .expect("a scrape is answered within a second");
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn refusals(text: &str, reason: &str) -> f64 {
    metric_value(
        &parse_metrics(text),
        "autoscalebot_http_refusals_total",
        &[("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// A good logplex batch, answered 204 within a second.
async fn good_batch(base: &str, frame_id: &str) {
    let lines = vec![router_line(40, 200)];
    let response = client()
        .post(format!("{base}/logs"))
        .header("content-type", "application/logplex-1")
        .header("logplex-frame-id", frame_id)
        .basic_auth("token", Some(DRAIN))
        .body(logplex_body(&lines))
        .send()
        .await
        .expect("a good batch is answered within a second");
    assert_eq!(response.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pages_and_metrics_need_the_password_and_healthz_does_not() {
    let (mut bot, base, _heartbeat, _api) = locked_bot().await;
    let client = reqwest::Client::new();
    for path in ["/", "/metrics", "/apps/test-app/web"] {
        let url = format!("{base}{path}");
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path} without the password");
        assert!(response.headers().contains_key("www-authenticate"));
        let wrong = client.get(&url).basic_auth("x", Some("guess")).send().await;
        assert_eq!(wrong.unwrap().status(), 401, "{path} with a wrong one");
        let basic = client.get(&url).basic_auth("any", Some(PAGES)).send().await;
        assert_eq!(basic.unwrap().status(), 200, "{path} with basic auth");
        let bearer = client.get(&url).bearer_auth(PAGES).send().await.unwrap();
        assert_eq!(bearer.status(), 200, "{path} with a bearer token");
        if path != "/metrics" {
            let policy = bearer.headers()["content-security-policy"]
                .to_str()
                .unwrap();
            assert!(policy.starts_with("default-src 'none'"), "{policy}");
        }
    }
    // Open, and only the word; the details with the password.
    wait_until_async("/healthz says ok", || async {
        let response = client.get(format!("{base}/healthz")).send().await.unwrap();
        response.status() == 200 && response.text().await.unwrap() == "ok\n"
    })
    .await;
    let detailed = client
        .get(format!("{base}/healthz"))
        .bearer_auth(PAGES)
        .send()
        .await
        .unwrap();
    assert!(detailed.text().await.unwrap().starts_with("ok: last beat"));
    let text = scrape(&base).await;
    assert!(refusals(&text, "unauthorized") >= 6.0, "{text}");
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(!output.contains(PAGES), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_bind_without_a_password_exits_2_naming_the_fix() {
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "web", "test-key-0123456789", 1).await;
    let port = free_port().to_string();
    let settings = local_settings(&api, &heartbeat, "");
    for (extra, env) in [
        ("", vec![("PORT", port.as_str())]),
        ("http_port = 0\nhttp_host = \"0.0.0.0\"", vec![]),
    ] {
        let mut command = command();
        let (_dir, path) = settings_file(&format!("{settings}{extra}\n"));
        let output = command
            .arg(format!("--settings={}", path.display()))
            .envs(env)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("http_password is not set"), "{stderr}");
        assert!(
            stderr.contains("heroku config:set AUTOSCALE_HTTP_PASSWORD="),
            "{stderr}"
        );
        assert!(stderr.contains("http_public = true"), "{stderr}");
        assert!(api.patches().is_empty(), "nothing ran");
    }
    // Said public: it starts, and the pages are open.
    let mut bot = Bot::start(
        &format!("{settings}http_port = 0\nhttp_host = \"0.0.0.0\"\nhttp_public = true\n"),
        &[],
        &[],
    );
    let base = bot.http_url().await;
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_idle_connections_and_a_slow_header_do_not_hold_back_a_good_batch_or_scrape() {
    let (mut bot, base, _heartbeat, _api) = locked_bot().await;
    let address = base.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // One byte of a request head every 100 ms, until the server closes it.
    let slow_address = address.clone();
    let slow = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(slow_address).await.unwrap();
        let head = b"GET /metrics HTTP/1.1\r\nHost: worker\r\nX-Padding: ".to_vec();
        let started = Instant::now();
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if stream.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                started.elapsed() < DEADLINE,
                "the slow client was never closed"
            );
        }
        unreachable!()
    });
    for round in 0..5 {
        good_batch(&base, &format!("good-{round}")).await;
        scrape(&base).await;
    }
    let held = slow.await.unwrap();
    assert!(
        held < Duration::from_secs(30),
        "closed at the header timeout: {held:?}"
    );
    wait_until_async("the idle and slow connections are counted", || async {
        refusals(&scrape(&base).await, "header_timeout") >= 1.0
    })
    .await;
    drop(idle);
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_wrong_passwords_does_not_delay_a_good_batch() {
    let (mut bot, base, _heartbeat, _api) = locked_bot().await;
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut floods = Vec::new();
    for attacker in 0..8 {
        let base = base.clone();
        let flooding = flooding.clone();
        floods.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut answers = std::collections::BTreeMap::<u16, u32>::new();
            let mut guess = 0;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                guess += 1;
                let response = client
                    .post(format!("{base}/logs"))
                    .header("content-type", "application/logplex-1")
                    // Through a proxy on this machine, as Heroku's router would forward it.
                    .header("x-forwarded-for", format!("203.0.113.{attacker}"))
                    .basic_auth("token", Some(format!("guess-{guess}")))
                    .body(logplex_body(&[router_line(40, 200)]))
                    .send()
                    .await
                    .unwrap();
                *answers.entry(response.status().as_u16()).or_default() += 1;
            }
            answers
        }));
    }
    for round in 0..20 {
        good_batch(&base, &format!("good-{round}")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for flood in floods {
        for (status, count) in flood.await.unwrap() {
            *answers.entry(status).or_default() += count;
        }
    }
    assert_eq!(
        answers.keys().copied().collect::<Vec<_>>(),
        vec![401, 429],
        "wrong passwords are refused, then limited: {answers:?}"
    );
    let text = scrape(&base).await;
    assert!(refusals(&text, "rate_limited") >= 1.0, "{text}");
    assert!(bot.terminate().await.success());
    let output = format!("{}{}", bot.stdout(), bot.stderr());
    assert!(
        !output.contains(DRAIN) && !output.contains(PAGES),
        "{output}"
    );
}
