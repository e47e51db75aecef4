//! High availability: two copies of the worker against one real PostgreSQL server (started by
//! the test in a temporary folder) and one formation API that tells their writes apart by the
//! API key each copy uses.

mod common;

use common::*;
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

#[tokio::test(flavor = "multi_thread")]
async fn only_the_lock_holder_scales_and_the_standby_takes_over_when_it_is_killed() {
    let postgres = Postgres::start();
    let heartbeat = HeartbeatServer::start(150).await;
    let api = FormationApi::start("test-app", "web", KEY_A, 1).await;
    api.add("test-app", "web", KEY_B, 1);
    let text = settings(&api, &heartbeat, &postgres.url());
    let mut a = Bot::start(&text, &[], &[("AUTOSCALE_HEROKU_API_KEY", KEY_A)]);
    let mut b = Bot::start(&text, &[], &[("AUTOSCALE_HEROKU_API_KEY", KEY_B)]);

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
