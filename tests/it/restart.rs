//! Crash and restart, black box: the worker binary against the real `autoscalebot sandbox`,
//! killed with SIGKILL while its scale call is in flight, started again: it reads the
//! formation afresh, converges on the right size with one scale for the streak, and tells an
//! open condition at most once per run.

use crate::support::*;
use serde_json::json;

/// Every heartbeat is slow (the app takes 300 ms, the bound is 100 ms): the worker wants one
/// dyno more until it reaches `max_dynos = 2`, and at the max the condition "needs above max"
/// is open for good.
const ALWAYS_SLOW: &str = "min_response_time_in_ms = 50\nmax_response_time_in_ms = 100\n\
     number_of_fails_to_scale_up_after = 2\nmin_dynos = 1\nmax_dynos = 2\n\
     heroku_api_timeout_in_ms = 20000\nnotify_if_needs_exceed_max = true\n\
     notify_on_every_scale = true\nnotification_backends = [\"console\"]";

/// How many times a run of the worker told the condition (the console notifier's lines).
fn told(bot: &Bot, kind: &str) -> usize {
    bot.stdout()
        .lines()
        .filter(|line| line.contains(kind))
        .count()
}

/// Waits until `bot` told the open condition, then for ten more slow heartbeats, in which it
/// could tell it again.
async fn told_then_ten_more_beats(sandbox: &SandboxProcess, bot: &Bot) {
    wait_until("the open condition is told", || {
        told(bot, "needs_above_max") >= 1
    })
    .await;
    let served = sandbox.served().await;
    wait_until_async("ten more slow heartbeats", || async {
        sandbox.served().await >= served + 10
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_scale_and_restarted_the_worker_converges_once_and_tells_once() {
    let sandbox = SandboxProcess::start(&["--dynos", "1", "--service-time-ms", "300"]).await;
    let settings = sandbox_settings(&sandbox, ALWAYS_SLOW);
    // The worker's scale call arrives and is never answered: SIGKILL finds it in flight.
    sandbox
        .inject(json!({ "fault": "hang", "method": "PATCH", "count": 1 }))
        .await;
    let mut first = Bot::start(&settings, &[], &sandbox_env());
    wait_until_async("the scale call is in flight", || async {
        sandbox.requested_quantities().await == vec![2]
    })
    .await;
    first.kill();
    assert_eq!(
        sandbox.quantity().await,
        1,
        "the killed call changed nothing"
    );
    assert!(sandbox.accepted_patches().await.is_empty());

    // Started again: a fresh read says 1, the slow beats make a new streak, one scale to 2.
    let mut second = Bot::start(&settings, &[], &sandbox_env());
    wait_until_async("the restarted worker reaches 2", || async {
        sandbox.quantity().await == 2
    })
    .await;
    told_then_ten_more_beats(&sandbox, &second).await;
    assert_eq!(
        sandbox.accepted_patches().await,
        vec![2],
        "one scale for the streak, none at the max"
    );
    assert_eq!(told(&second, "needs_above_max"), 1, "{}", second.stdout());

    // Killed again with the condition open, and started again: at the right size already, it
    // scales nothing and tells the open condition at most once more.
    second.kill();
    let mut third = Bot::start(&settings, &[], &sandbox_env());
    told_then_ten_more_beats(&sandbox, &third).await;
    assert_eq!(told(&third, "needs_above_max"), 1, "{}", third.stdout());
    assert_eq!(sandbox.accepted_patches().await, vec![2], "no scale again");
    assert_eq!(sandbox.quantity().await, 2);
    assert!(third.is_running());
    assert_eq!(third.terminate().await.code(), Some(0));
    for output in [
        first.stdout(),
        second.stdout(),
        third.stdout(),
        third.stderr(),
    ] {
        assert!(!output.contains(SANDBOX_KEY), "{output}");
    }
}
