//! High availability: copies of the worker against one real PostgreSQL server (started by the
//! test in a temporary folder; one test's takes TLS only, as Heroku Postgres does) and one
//! formation API that tells their writes apart by the API key each copy uses.

use crate::support::*;
use std::time::Instant;

const KEY_A: &str = "copy-a-key-0123456789";
const KEY_B: &str = "copy-b-key-0123456789";

/// Slow heartbeats and a scale up on every one: a copy that leads writes all the time.
fn settings(api: &FormationApi, heartbeat: &HeartbeatServer, lock_url: &str) -> String {
    local_settings(
        api,
        heartbeat,
        &format!(
            "leader_lock_url = \"{lock_url}\"\nmax_response_time_in_ms = 100\nmin_response_time_in_ms = 10\n\
             number_of_fails_to_scale_up_after = 1\nmax_dynos = 100000\n\
             notify_on_every_scale = true\nnotification_backends = [\"console\"]"
        ),
    )
}

/// The API key of each write, in the order they arrived, with when.
fn writers(api: &FormationApi) -> Vec<(String, Instant)> {
    api.requests()
        .into_iter()
        .filter(|request| request.method == "PATCH")
        .map(|request| (request.api_key(), request.at))
        .collect()
}

/// The log line of the copy taking the lock.
fn leader_line(bot: &Bot) -> String {
    let stderr = bot.stderr();
    stderr
        .lines()
        .find(|line| line.contains("Took the leader lock"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no \"Took the leader lock\" line: {stderr}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_lock_holder_scales_and_the_standby_takes_over_when_it_is_killed() {
    let postgres = Postgres::start();
    let heartbeat = HeartbeatServer::start(150).await;
    let api = FormationApi::start("test-app", "web", KEY_A, 1).await;
    api.add("test-app", "web", KEY_B, 1);
    // One copy says sslmode=disable; the other names none (prefer), and this server offers
    // no TLS, so it falls back to plain.
    let text = settings(&api, &heartbeat, &postgres.url());
    let prefer_url = postgres.url().replace("?sslmode=disable", "");
    let text_prefer = settings(&api, &heartbeat, &prefer_url);
    let mut a = Bot::start(&text, &[], &[("AUTOSCALE_HEROKU_API_KEY", KEY_A)]);
    let mut b = Bot::start(&text_prefer, &[], &[("AUTOSCALE_HEROKU_API_KEY", KEY_B)]);

    wait_until("ten writes", || writers(&api).len() >= 10).await;
    let first = writers(&api)[0].0.clone();
    let (leader, standby, standby_key) = if first == KEY_A {
        (&mut a, &mut b, KEY_B)
    } else {
        (&mut b, &mut a, KEY_A)
    };
    // Both copies heartbeat all along; only one writes and tells.
    heartbeat.wait_for_more(10).await;
    assert!(
        writers(&api).iter().all(|(key, _)| *key == first),
        "two copies wrote while both were up"
    );
    assert!(
        !api.requests()
            .iter()
            .any(|request| request.api_key() == standby_key),
        "the standby spent API calls"
    );
    assert!(leader.stderr().contains("Took the leader lock"));
    assert!(!standby.stderr().contains("Took the leader lock"));
    let line = leader_line(leader);
    assert!(line.contains("tls=false"), "{line}");
    assert!(leader.stdout().contains("Scaled to"));
    assert!(
        !standby.stdout().contains("Scaled to"),
        "the standby told: {}",
        standby.stdout()
    );

    let before = writers(&api).len();
    let killed_at = Instant::now();
    leader.kill();
    wait_until("the standby writes", || {
        writers(&api).iter().any(|(key, _)| key == standby_key)
    })
    .await;
    let took_over_after = killed_at.elapsed();
    wait_until("five writes by the new leader", || {
        writers(&api)
            .iter()
            .filter(|(key, _)| key == standby_key)
            .count()
            >= 5
    })
    .await;

    let all = writers(&api);
    assert!(all.len() > before);
    // One switch from the old leader to the new, never back and forth: no moment with two.
    let switch = all.iter().position(|(key, _)| key == standby_key).unwrap();
    assert!(all[..switch].iter().all(|(key, _)| *key == first));
    assert!(all[switch..].iter().all(|(key, _)| key == standby_key));
    assert!(
        all[switch].1 >= killed_at,
        "the standby wrote before the leader was killed"
    );
    assert!(standby.stderr().contains("Took the leader lock"));
    assert!(standby.stderr().contains("tls=false"));
    assert!(standby.stdout().contains("Scaled to"));
    eprintln!("The standby took over {took_over_after:?} after the leader was killed.");
    assert!(standby.terminate().await.success());
    let output = format!("{}{}", standby.stdout(), standby.stderr());
    assert!(!output.contains(KEY_A) && !output.contains(KEY_B));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_lock_database_unreachable_nobody_scales_and_the_log_says_why() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://bot:lock-password-9@127.0.0.1:{port}/locks?sslmode=disable");
    let heartbeat = HeartbeatServer::start(150).await;
    let api = FormationApi::start("test-app", "web", KEY_A, 1).await;
    let mut bot = Bot::start(&settings(&api, &heartbeat, &url), &[], &[]);
    wait_until("the unreachable database is logged", || {
        bot.stderr()
            .contains("Cannot reach the leader-lock database")
    })
    .await;
    heartbeat.wait_for_more(10).await;
    assert!(
        api.requests().is_empty(),
        "a worker without the lock called the API"
    );
    assert!(bot.is_running());
    let stderr = bot.stderr();
    assert!(
        stderr.contains(&format!("bot@127.0.0.1:{port}/locks")),
        "{stderr}"
    );
    assert!(!stderr.contains("lock-password-9"), "{stderr}");
    assert!(bot.terminate().await.success());
}

const KEY_C: &str = "copy-c-key-0123456789";
const LOCK_PASSWORD: &str = "lock-password-tls-31";

/// How many writes one API key made.
fn writes_by(api: &FormationApi, key: &str) -> usize {
    writers(api).iter().filter(|(by, _)| by == key).count()
}

/// Heroku Postgres takes TLS only, and its DATABASE_URL names no sslmode. Three workers with
/// their own `leader_lock_key` each, so only TLS decides who leads.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_only_database_is_used_with_prefer_and_require_and_refused_with_disable() {
    let postgres = Postgres::start_tls_only();
    let url = |query: &str| {
        format!(
            "postgres://postgres:{LOCK_PASSWORD}@127.0.0.1:{}/postgres{query}",
            postgres.port
        )
    };
    let heartbeat = HeartbeatServer::start(150).await;
    let api = FormationApi::start("test-app", "web", KEY_A, 1).await;
    api.add("test-app", "web", KEY_B, 1);
    api.add("test-app", "web", KEY_C, 1);
    let start = |query: &str, api_key: &str, lock_key: &str| {
        Bot::start(
            &settings(&api, &heartbeat, &url(query)),
            &[],
            &[
                ("AUTOSCALE_HEROKU_API_KEY", api_key),
                ("AUTOSCALE_LEADER_LOCK_KEY", lock_key),
            ],
        )
    };
    let mut prefer = start("", KEY_A, "107157092528995");
    let mut require = start("?sslmode=require", KEY_B, "2");
    let mut disable = start("?sslmode=disable", KEY_C, "3");

    // Different keys: both TLS workers lead at once in one database.
    wait_until("both TLS workers write", || {
        writes_by(&api, KEY_A) >= 3 && writes_by(&api, KEY_B) >= 3
    })
    .await;
    for (bot, sslmode) in [(&prefer, "prefer"), (&require, "require")] {
        let line = leader_line(bot);
        assert!(line.contains("tls=true"), "{line}");
        assert!(line.contains(&format!("sslmode={sslmode}")), "{line}");
        assert!(bot.stdout().contains("Scaled to"), "{}", bot.stdout());
    }

    wait_until("the plain worker's refusal is logged", || {
        disable
            .stderr()
            .contains("Cannot reach the leader-lock database")
    })
    .await;
    heartbeat.wait_for_more(10).await;
    assert_eq!(writes_by(&api, KEY_C), 0, "the plain worker wrote");
    assert!(
        !api.requests()
            .iter()
            .any(|request| request.api_key() == KEY_C),
        "the plain worker called the API"
    );
    assert!(disable.is_running());
    let stderr = disable.stderr();
    assert!(!stderr.contains("Took the leader lock"), "{stderr}");
    // PostgreSQL's own reason: its pg_hba.conf rejects a connection without encryption.
    assert!(stderr.contains("pg_hba.conf"), "{stderr}");
    assert!(stderr.contains("no encryption"), "{stderr}");
    assert!(stderr.contains(&format!("postgres@127.0.0.1:{}/postgres", postgres.port)));

    for bot in [&mut prefer, &mut require, &mut disable] {
        assert!(bot.terminate().await.success());
        let output = format!("{}{}", bot.stdout(), bot.stderr());
        assert!(!output.contains(LOCK_PASSWORD), "{output}");
    }
}
