//! The worker binary against the real `autoscalebot sandbox` platform: the platform answers as
//! Heroku does, the worker scales up under a surge of real traffic and down after it, and each
//! fault the platform can produce leaves it running, within its bounds, and at the right size
//! once the fault clears. The API key never shows in any output.

use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Settings under which the heartbeat is always in band, so the only size the worker wants is
/// `min_dynos = 2` (the sandbox starts at 1): the fault tests see one clear target.
const TARGET_TWO: &str = "min_response_time_in_ms = 1\nmax_response_time_in_ms = 5000\nmin_dynos = 2\nmax_dynos = 4\nheroku_api_timeout_in_ms = 1000\nnotify_on_scale_fails = true\nnotification_backends = [\"console\"]";

fn assert_no_key(outputs: &[String]) {
    for output in outputs {
        assert!(
            !output.contains(SANDBOX_KEY),
            "the API key leaked:\n{output}"
        );
    }
}

/// Runs the worker against `sandbox` until the formation is at 2 and a few more heartbeats
/// went by, then checks it stayed running and within its bounds, stops it, and returns its
/// output.
async fn reaches_two_and_keeps_running(sandbox: &SandboxProcess, extra: &str) -> String {
    let settings = sandbox_settings(sandbox, &format!("{TARGET_TWO}\n{extra}"));
    let mut bot = worker_at_two(sandbox, &settings, &sandbox_env()).await;
    for quantity in sandbox.requested_quantities().await {
        assert!(
            (2..=4).contains(&quantity),
            "asked for {quantity}, outside 2..=4"
        );
    }
    assert_eq!(
        sandbox.accepted_patches().await,
        vec![2],
        "one scale, never twice"
    );
    assert_eq!(bot.terminate().await.code(), Some(0), "{}", bot.stderr());
    format!("{}{}", bot.stdout(), bot.stderr())
}

/// The `at_ms` of each call, and the calls the injected fault hit.
async fn fault_calls(sandbox: &SandboxProcess) -> (Vec<Value>, Vec<usize>) {
    let calls = sandbox.calls().await;
    let hit = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| !call["fault"].is_null())
        .map(|(index, _)| index)
        .collect();
    (calls, hit)
}

fn at_ms(call: &Value) -> u64 {
    call["at_ms"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_answers_the_formation_api_with_herokus_codes_and_headers() {
    let mut sandbox = SandboxProcess::start(&["--dynos", "2", "--max-quantity", "5"]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/apps/sandbox-app/formation/web", sandbox.api_url);
    let v3 = "application/vnd.heroku+json; version=3";

    let no_version = client
        .get(&url)
        .bearer_auth(SANDBOX_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 406);
    let body: Value = no_version.json().await.unwrap();
    assert_eq!(body["id"], "not_acceptable");

    let no_key = client.get(&url).header("accept", v3).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
    assert!(no_key.headers().contains_key("request-id"));
    assert_eq!(no_key.json::<Value>().await.unwrap()["id"], "unauthorized");

    let first = client
        .get(&url)
        .header("accept", v3)
        .bearer_auth(SANDBOX_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let remaining = |response: &reqwest::Response| -> u64 {
        response.headers()["ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let first_remaining = remaining(&first);
    assert!(first_remaining <= 4499, "a call spends a token");
    let request_id = first.headers()["request-id"].to_str().unwrap().to_string();
    assert_eq!(request_id.len(), 36, "a uuid: {request_id}");
    let formation: Value = first.json().await.unwrap();
    assert_eq!(formation["quantity"], 2);
    assert_eq!(formation["type"], "web");
    assert_eq!(formation["app"]["name"], "sandbox-app");

    let patch = |body: Value| {
        client
            .patch(&url)
            .header("accept", v3)
            .bearer_auth(SANDBOX_KEY)
            .json(&body)
            .send()
    };
    let scaled = patch(json!({ "quantity": 3 })).await.unwrap();
    assert_eq!(scaled.status(), 200);
    assert!(remaining(&scaled) < first_remaining);
    assert_eq!(scaled.json::<Value>().await.unwrap()["quantity"], 3);
    wait_until_async("three dynos run", || async {
        sandbox.state().await["running"] == 3
    })
    .await;

    for bad in [
        json!({ "quantity": 6 }),
        json!({ "quantity": -1 }),
        json!({ "quantity": "two" }),
    ] {
        let refused = patch(bad.clone()).await.unwrap();
        assert_eq!(refused.status(), 422, "{bad}");
        assert_eq!(
            refused.json::<Value>().await.unwrap()["id"],
            "invalid_params"
        );
    }
    assert_eq!(
        sandbox.quantity().await,
        3,
        "a refused update changes nothing"
    );

    let wrong_app = client
        .get(format!("{}/apps/other-app/formation/web", sandbox.api_url))
        .header("accept", v3)
        .bearer_auth(SANDBOX_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_app.status(), 404);
    assert_eq!(wrong_app.json::<Value>().await.unwrap()["id"], "not_found");

    let batch = client
        .patch(format!("{}/apps/sandbox-app/formation", sandbox.api_url))
        .header("accept", v3)
        .bearer_auth(SANDBOX_KEY)
        .json(&json!({ "updates": [{ "type": "web", "quantity": 1 }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 200);
    assert_eq!(batch.json::<Value>().await.unwrap()[0]["quantity"], 1);
    wait_until_async("one dyno runs", || async {
        sandbox.state().await["running"] == 1
    })
    .await;

    sandbox.set_rate_limit_remaining(0).await;
    let limited = client
        .get(&url)
        .header("accept", v3)
        .bearer_auth(SANDBOX_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.json::<Value>().await.unwrap()["id"], "rate_limit");
    let free = client
        .get(format!("{}/account/rate-limits", sandbox.api_url))
        .header("accept", v3)
        .bearer_auth(SANDBOX_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(free.status(), 200, "reading the limit costs nothing");

    // The app: any path, the heartbeat included, is served by a dyno behind the router.
    let heartbeat = client
        .get(format!("{}/autoscalebot/heartbeat/", sandbox.app_url))
        .send()
        .await
        .unwrap();
    assert_eq!(heartbeat.status(), 200);
    assert_eq!(heartbeat.headers()["x-dyno"], "web.1");

    assert_eq!(sandbox.terminate().await.code(), Some(0));
    assert_no_key(&[sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_dynos_the_router_answers_h14() {
    let sandbox = SandboxProcess::start(&["--dynos", "0"]).await;
    let response = reqwest::get(format!("{}/", sandbox.app_url)).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("H14"));
}

/// Closed-loop users: each sends a request, waits for the answer, and sends the next, until
/// told to stop.
fn start_users(url: String, users: usize) -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    for _ in 0..users {
        let url = url.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.is_cancelled() {
                let _ = client
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
            }
        });
    }
    stop
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_scales_up_under_a_surge_and_down_after_it() {
    // Each dyno serves one request at a time in 100 ms. Ten users keep ten requests in the
    // router's queue: a heartbeat takes about 1100 ms with one dyno, 550 ms with two, 370 ms
    // with three (in band), and 100 ms once the users stop.
    let mut sandbox = SandboxProcess::start(&[
        "--dynos",
        "1",
        "--dyno-concurrency",
        "1",
        "--service-time-ms",
        "100",
    ])
    .await;
    let settings = sandbox_settings(
        &sandbox,
        "max_response_time_in_ms = 450\nmin_response_time_in_ms = 150\nnumber_of_fails_to_scale_up_after = 2\nnumber_of_passes_to_scale_down_after = 3\nmin_dynos = 1\nmax_dynos = 4",
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    let served = sandbox.served().await;
    wait_until_async("a few quiet heartbeats", || async {
        sandbox.served().await >= served + 5
    })
    .await;
    assert_eq!(sandbox.quantity().await, 1, "quiet: one dyno is enough");

    let surge = start_users(format!("{}/", sandbox.app_url), 10);
    wait_until_async("the surge brings a third dyno", || async {
        sandbox.quantity().await >= 3
    })
    .await;
    surge.cancel();
    wait_until_async("the quiet brings it back to one dyno", || async {
        sandbox.quantity().await == 1
    })
    .await;

    let patches = sandbox.accepted_patches().await;
    let peak = patches.iter().copied().max().unwrap();
    assert!((3..=4).contains(&peak), "{patches:?}");
    let rises = patches.windows(2).filter(|pair| pair[1] > pair[0]).count();
    assert!(
        patches[0] == 2 && rises >= 1,
        "up one step at a time first: {patches:?}"
    );
    assert_eq!(patches.last(), Some(&1), "{patches:?}");
    assert!(bot.is_running());
    assert_eq!(bot.terminate().await.code(), Some(0));
    assert_eq!(sandbox.terminate().await.code(), Some(0));
    assert_no_key(&[bot.stdout(), bot.stderr(), sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_without_retry_after_is_ridden_out_with_backoff() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox
        .inject(json!({ "fault": "status", "status": 429, "count": 3 }))
        .await;
    let output = reaches_two_and_keeps_running(&sandbox, "").await;
    let (calls, hit) = fault_calls(&sandbox).await;
    assert_eq!(hit.len(), 3, "three calls met the 429");
    for &index in &hit {
        let gap = at_ms(&calls[index + 1]) - at_ms(&calls[index]);
        // The first backoff is 250 ms with equal jitter: never less than half of it.
        assert!(gap >= 120, "retried {gap} ms after a 429");
    }
    assert!(output.contains("trying again after a pause"), "{output}");
    assert_no_key(&[output, sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_is_honoured() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox
        .inject(json!({ "fault": "status", "status": 429, "retry_after_s": 2, "count": 1 }))
        .await;
    let output = reaches_two_and_keeps_running(&sandbox, "").await;
    let (calls, hit) = fault_calls(&sandbox).await;
    assert_eq!(hit.len(), 1);
    assert_eq!(calls[hit[0]]["retry_after"], "2");
    let gap = at_ms(&calls[hit[0] + 1]) - at_ms(&calls[hit[0]]);
    assert!(gap >= 2000, "called again {gap} ms after Retry-After: 2");
    assert_no_key(&[output, sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn several_503s_are_ridden_out() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox
        .inject(json!({ "fault": "status", "status": 503, "count": 6 }))
        .await;
    let output = reaches_two_and_keeps_running(&sandbox, "").await;
    let (calls, hit) = fault_calls(&sandbox).await;
    assert_eq!(hit.len(), 6);
    assert!(hit.iter().all(|&index| calls[index]["status"] == 503));
    assert_no_key(&[output, sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_api_call_times_out_and_is_retried() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox
        .inject(json!({ "fault": "hang", "method": "PATCH", "count": 1 }))
        .await;
    let output = reaches_two_and_keeps_running(&sandbox, "").await;
    let (calls, hit) = fault_calls(&sandbox).await;
    assert_eq!(hit.len(), 1);
    assert_eq!(calls[hit[0]]["method"], "PATCH");
    assert!(calls[hit[0]]["status"].is_null(), "never answered");
    let gap = at_ms(&calls[hit[0] + 1]) - at_ms(&calls[hit[0]]);
    assert!(
        gap >= 1000,
        "gave up after heroku_api_timeout_in_ms, not {gap} ms"
    );
    assert!(output.contains("timeout"), "{output}");
    assert_no_key(&[output, sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_is_retried() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox.inject(json!({ "fault": "drop", "count": 2 })).await;
    let output = reaches_two_and_keeps_running(&sandbox, "").await;
    let (calls, hit) = fault_calls(&sandbox).await;
    assert_eq!(hit.len(), 2);
    assert!(hit.iter().all(|&index| calls[index]["status"].is_null()));
    assert!(output.contains("transport"), "{output}");
    assert_no_key(&[output, sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_is_named_once_and_backed_off_from_until_it_clears() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox
        .inject(json!({ "fault": "status", "status": 401, "share": 1.0 }))
        .await;
    let settings = sandbox_settings(&sandbox, TARGET_TWO);
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    wait_until("the refusal is logged", || {
        bot.stderr().contains("refused the API key")
    })
    .await;
    wait_until("the refusal is told", || {
        bot.stdout().contains("scale_failed") && bot.stdout().contains("401")
    })
    .await;
    let served = sandbox.served().await;
    let calls = sandbox.calls().await.len();
    wait_until_async("fifteen more heartbeats", || async {
        sandbox.served().await >= served + 15
    })
    .await;
    let during = sandbox.calls().await.len() - calls;
    assert!(
        during <= 4,
        "{during} platform calls in 15 heartbeats: no backoff"
    );
    assert_eq!(sandbox.quantity().await, 1);
    assert_eq!(
        bot.stderr()
            .matches("The platform refused the call")
            .count(),
        1,
        "one clear line, not one per heartbeat"
    );

    sandbox.clear_faults().await;
    wait_until_async("the formation reaches 2 once the key works", || async {
        sandbox.quantity().await == 2
    })
    .await;
    assert_eq!(sandbox.accepted_patches().await, vec![2]);
    wait_until("the recovery is logged", || {
        bot.stderr().contains("accepts the worker's calls again")
    })
    .await;
    assert!(bot.is_running());
    assert_eq!(bot.terminate().await.code(), Some(0));
    assert_no_key(&[bot.stdout(), bot.stderr(), sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_app_name_is_named_and_the_worker_goes_on() {
    let sandbox = SandboxProcess::start(&[]).await;
    let settings = sandbox_settings(&sandbox, TARGET_TWO).replace(
        "heroku_app_name = \"sandbox-app\"",
        "heroku_app_name = \"other-app\"",
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    wait_until("the cause is logged", || {
        bot.stderr().contains("no such app or process type")
            && bot.stderr().contains("heroku_app_name")
    })
    .await;
    let served = sandbox.served().await;
    wait_until_async("more heartbeats", || async {
        sandbox.served().await >= served + 5
    })
    .await;
    assert!(bot.is_running());
    assert_eq!(sandbox.quantity().await, 1);
    assert_eq!(bot.terminate().await.code(), Some(0));
    assert_no_key(&[bot.stdout(), bot.stderr(), sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_few_rate_limit_tokens_left_the_worker_spaces_its_calls() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox.set_rate_limit_remaining(20).await;
    // Every ping tells the size, so every heartbeat reads it: a call every 200 ms unpaced.
    let settings = sandbox_settings(
        &sandbox,
        "min_response_time_in_ms = 1\nmax_response_time_in_ms = 5000\nnotify_on_every_ping = true",
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    wait_until_async("six platform calls", || async {
        sandbox.calls().await.len() >= 6
    })
    .await;
    let calls = sandbox.calls().await;
    // One token comes back every 800 ms; heartbeats alone would call every 200 ms. The pace is
    // the worker's, the arrival times the sandbox's: one call held up on a loaded machine
    // arrives late and the next on time, so each gap is judged against the unpaced 200 ms and
    // their mean against the refill.
    for pair in calls.windows(2) {
        let gap = at_ms(&pair[1]) - at_ms(&pair[0]);
        assert!(gap >= 600, "calls {gap} ms apart with few tokens left");
    }
    let span = at_ms(&calls[calls.len() - 1]) - at_ms(&calls[0]);
    let mean_gap = span / (calls.len() as u64 - 1);
    assert!(
        mean_gap >= 790,
        "calls {mean_gap} ms apart on average with few tokens left"
    );
    assert!(calls.iter().all(|call| call["status"] == 200));
    assert!(
        sandbox.state().await["rate_limit_remaining"].as_u64() > Some(0),
        "the pace kept tokens in hand"
    );
    assert!(bot.is_running());
    assert_eq!(bot.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_an_outage_ends_the_retries_and_the_worker_exits_in_time() {
    let sandbox = SandboxProcess::start(&[]).await;
    // Every PATCH: 503 with Retry-After 20 s. With a 60 s budget the client would try at 0, 20
    // and 40 s, past the 20 s the worker gives itself after SIGTERM.
    sandbox
        .inject(json!({ "fault": "status", "status": 503, "retry_after_s": 20, "share": 1.0, "method": "PATCH" }))
        .await;
    let settings = sandbox_settings(
        &sandbox,
        &TARGET_TWO.replace(
            "heroku_api_timeout_in_ms = 1000",
            "heroku_api_timeout_in_ms = 20000",
        ),
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    wait_until("the first PATCH met the 503 and a retry waits", || {
        bot.stderr().contains("trying again after a pause")
    })
    .await;
    let sent = Instant::now();
    let status = bot.terminate().await;
    let took = sent.elapsed();
    let stderr = bot.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        took < Duration::from_secs(15),
        "exited {took:?} after SIGTERM: the retries were waited out\n{stderr}"
    );
    assert!(
        stderr.contains("not retried: shutting down"),
        "the log says why the scale was not made:\n{stderr}"
    );
    assert!(!stderr.contains("exiting anyway"), "{stderr}");
    assert!(
        bot.stdout().contains("scale_failed"),
        "told like any failed scale:\n{}",
        bot.stdout()
    );
    let patches = sandbox.requested_quantities().await;
    assert_eq!(patches, vec![2], "one try, no retry after SIGTERM");
    assert_eq!(sandbox.quantity().await, 1);
    assert_no_key(&[bot.stdout(), stderr, sandbox.output()]);
}
