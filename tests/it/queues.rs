//! Job workers on their queues, black box: the built worker with `policy = "queue"` scaling the
//! `worker` process type of the local formation API, reading a real `redis-server` (Sidekiq's
//! lists) or a real PostgreSQL (a job table and the user's query). A backlog takes the type up
//! in one decision to the size it needs, empty queues take it to zero after the delay, a new
//! job brings it back; a dead source holds the size and is told once; the URL's password is
//! never shown; a query that writes, or runs too long, is refused with a clear message.

use crate::support::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

const KEY: &str = "test-key-0123456789";
const REDIS_PASSWORD: &str = "queue-pass-7319-secret";

/// Settings for the `worker` type on the queue policy; `source` names the queue.
fn settings(api: &FormationApi, heartbeat: &HeartbeatServer, source: &str) -> String {
    local_settings(
        api,
        heartbeat,
        &format!(
            "process_type = \"worker\"\npolicy = \"queue\"\nmin_dynos = 0\nmax_dynos = 20\n\
             scale_down_delay = \"2s\"\nqueue_target_latency = \"60s\"\n\
             notify_on_scale_fails = true\n\
             notification_backends = [\"console\"]\n{source}"
        ),
    )
}

/// Starts the worker on `source`, with the queue's URL in the variable `env.0`, and waits
/// until the backlog scaled the worker type up.
async fn start_scaled_up(
    api: &FormationApi,
    heartbeat: &HeartbeatServer,
    source: &str,
    env: (&str, &str),
) -> Bot {
    let bot = Bot::start(&settings(api, heartbeat, source), &[], &[env]);
    wait_until("the backlog scales the worker type up", || {
        api.quantity() > 1
    })
    .await;
    bot
}

/// Waits `span` and asserts that nothing was written meanwhile (the hold of a dead source:
/// what must not happen has no outcome to wait for).
async fn assert_no_write_for(api: &FormationApi, span: Duration, why: &str) {
    let before = api.patches();
    let until = Instant::now() + span;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(api.patches(), before, "{why}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sidekiq_backlog_scales_the_worker_type_up_at_once_down_to_zero_and_back() {
    let mut redis = RedisServer::start(REDIS_PASSWORD);
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "worker", KEY, 1).await;
    let source = "queue_url = \"env:REDIS_QUEUE_URL\"\nqueues = [\"queue:default\", \"queue:mailers\"]\n\
                  queue_sidekiq_latency = true\nqueue_worker_concurrency = 5\nqueue_job_duration = \"6s\"\n";
    // 5 threads × 60 s / 6 s = 50 jobs per worker within the target: 280 jobs need 6.
    redis.push_sidekiq_jobs("queue:default", 200, epoch_seconds());
    redis.push_sidekiq_jobs("queue:mailers", 80, epoch_seconds());
    let url = redis.url();
    let mut bot = start_scaled_up(&api, &heartbeat, source, ("REDIS_QUEUE_URL", &url)).await;
    assert_eq!(
        api.patches(),
        vec![6],
        "one scale, to the size the backlog needs: {}",
        bot.stderr()
    );
    assert_eq!(api.patches_of("test-app", "worker"), vec![6]);
    wait_until("the reason is logged", || bot.stderr().contains("Scaled.")).await;
    assert!(
        bot.stderr()
            .contains("queue: 280 jobs waiting, 50 per worker within 1m: 6 workers"),
        "{}",
        bot.stderr()
    );
    assert_eq!(heartbeat.hits(), 0, "a job worker gets no heartbeat");

    // The jobs are done: after the whole delay of empty queues, to zero.
    redis.cli(&["DEL", "queue:default", "queue:mailers"]);
    wait_until("empty queues take the type to zero", || api.quantity() == 0).await;
    assert_eq!(api.patches(), vec![6, 0], "{}", bot.stderr());
    wait_until("the reason is logged", || {
        bot.stderr().contains("queues empty for 2s")
    })
    .await;

    // One job brings it back.
    redis.push_sidekiq_jobs("queue:mailers", 1, epoch_seconds());
    wait_until("a new job brings a worker back", || api.quantity() == 1).await;
    assert_eq!(api.patches(), vec![6, 0, 1]);

    // The queue dies with a job in it at one worker: the size holds, told once, beats go on.
    redis.stop();
    wait_until("the dead source is logged", || {
        bot.stderr().contains("Could not read the job queues")
    })
    .await;
    assert_no_write_for(
        &api,
        Duration::from_secs(4),
        "a dead queue never scales anything down",
    )
    .await;
    assert!(bot.is_running());
    let stdout = bot.stdout();
    assert_eq!(
        stdout.matches("Could not read the job queues").count(),
        1,
        "told once: {stdout}"
    );
    let log = bot.stderr();
    assert_eq!(
        log.matches("Could not read the job queues").count(),
        1,
        "logged once: {log}"
    );
    for text in [&log, &stdout] {
        assert!(
            !text.contains(REDIS_PASSWORD),
            "the password leaked: {text}"
        );
        assert!(!text.contains(&url), "the URL leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_table_in_postgres_scales_up_to_zero_and_back_through_a_read_only_query() {
    let postgres = Postgres::start();
    postgres.psql(
        "CREATE TABLE good_jobs (id serial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), \
         finished_at timestamptz); INSERT INTO good_jobs (created_at) \
         SELECT now() FROM generate_series(1, 120)",
    );
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "worker", KEY, 1).await;
    // 1 job at a time × 60 s / 5 s = 12 jobs per worker within the target: 120 jobs need 10.
    let source = "queue_url = \"env:DATABASE_URL\"\nqueue_job_duration = \"5s\"\n\
                  queue_query = \"SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8 \
                  FROM good_jobs WHERE finished_at IS NULL\"\n";
    let url = postgres.url();
    let mut bot = start_scaled_up(&api, &heartbeat, source, ("DATABASE_URL", &url)).await;
    assert_eq!(api.patches(), vec![10], "{}", bot.stderr());

    postgres.psql("UPDATE good_jobs SET finished_at = now()");
    wait_until("an empty table takes the type to zero", || {
        api.quantity() == 0
    })
    .await;
    assert_eq!(api.patches(), vec![10, 0], "{}", bot.stderr());

    postgres.psql("INSERT INTO good_jobs DEFAULT VALUES");
    wait_until("a new job brings a worker back", || api.quantity() == 1).await;
    assert_eq!(api.patches(), vec![10, 0, 1]);
    assert!(bot.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_that_writes_or_runs_too_long_is_refused_and_holds_the_size() {
    let postgres = Postgres::start();
    postgres.psql(
        "CREATE TABLE jobs (id serial PRIMARY KEY); INSERT INTO jobs SELECT FROM generate_series(1, 50)",
    );
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "worker", KEY, 2).await;
    // Starts with SELECT-like WITH, so the settings let it through: PostgreSQL refuses it.
    let writes = "queue_url = \"env:DATABASE_URL\"\n\
                  queue_query = \"WITH gone AS (DELETE FROM jobs RETURNING id) SELECT count(*) FROM gone\"\n";
    let url = postgres.url();
    let bot = Bot::start(
        &settings(&api, &heartbeat, writes),
        &[],
        &[("DATABASE_URL", url.as_str())],
    );
    wait_until("the refusal is logged", || {
        bot.stderr()
            .contains("queue_query is not read-only, so it is refused")
    })
    .await;
    assert_no_write_for(
        &api,
        Duration::from_secs(3),
        "a refused query holds the size",
    )
    .await;
    assert_eq!(
        postgres.psql("SELECT count(*) FROM jobs").trim(),
        "50",
        "nothing was deleted"
    );
    drop(bot);

    let slow = "queue_url = \"env:DATABASE_URL\"\nqueue_query_timeout = \"1s\"\n\
                queue_query = \"SELECT count(*) FROM jobs, pg_sleep(5)\"\n";
    let bot = Bot::start(
        &settings(&api, &heartbeat, slow),
        &[],
        &[("DATABASE_URL", url.as_str())],
    );
    wait_until("the timeout is logged", || {
        bot.stderr()
            .contains("queue_query ran past queue_query_timeout (1s)")
    })
    .await;
    assert_eq!(api.patches(), Vec::<u32>::new(), "{}", bot.stderr());
}

/// Runs the worker on `settings`, which it must refuse with exit 2; its stderr.
fn refused(settings: &str) -> String {
    let (_dir, path) = settings_file(settings);
    let output = command()
        .arg(format!("--settings={}", path.display()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn bad_queue_settings_stop_the_worker_naming_each_key() {
    let stderr = refused(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"k-0123456789\"\nprocess_type = \"worker\"\n\
         policy = \"queue\"\nqueue_url = \"postgres://u:pg-secret-5521@127.0.0.1/db\"\n\
         queue_query = \"DELETE FROM jobs\"\nqueue_job_duration = \"0s\"\n\
         queue_worker_concurrency = 0\n",
    );
    for expected in [
        "queue_query = \"DELETE FROM jobs\"",
        "a read-only query starting with SELECT or WITH",
        "queue_job_duration",
        "queue_worker_concurrency = 0",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(!stderr.contains("pg-secret-5521"), "{stderr}");

    let stderr = refused(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"k-0123456789\"\nprocess_type = \"worker\"\n\
         policy = \"queue\"\nqueue_url = \"amqp://guest:mq-secret-8812@127.0.0.1\"\n",
    );
    assert!(stderr.contains("queue_url"), "{stderr}");
    assert!(
        stderr.contains("redis://, rediss://, postgres://"),
        "{stderr}"
    );
    assert!(!stderr.contains("mq-secret-8812"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn l2met_samples_in_the_drain_scale_the_worker_type_and_bad_lines_are_counted() {
    const PASSWORD: &str = "drain-pass-5150";
    let heartbeat = HeartbeatServer::start(0).await;
    let api = FormationApi::start("test-app", "worker", KEY, 0).await;
    let source = format!(
        "queue_metric = \"queue.depth\"\nqueue_latency_metric = \"queue.latency\"\n\
         queue_worker_concurrency = 5\nqueue_job_duration = \"6s\"\nhttp_port = 0\n\
         log_drain_password = \"{PASSWORD}\"\n"
    );
    let bot = Bot::start(&settings(&api, &heartbeat, &source), &[], &[]);
    let base = bot.http_url().await;
    let app_line = |metrics: &str| {
        format!("<190>1 2026-11-24T09:00:00.000000+00:00 host app worker.1 - at=info {metrics}")
    };
    // Heroku's runtime metrics of a web dyno, beside the app's own samples: read, not used.
    let runtime = "<45>1 2026-11-24T09:00:00.000000+00:00 host heroku web.1 - source=web.1 \
                   dyno=heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456 \
                   sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_pgpgin=348836pages"
        .to_string();
    let lines = [
        runtime,
        app_line("sample#queue.depth=lots"),
        app_line("sample#queue.depth=280 sample#queue.latency=1.5s"),
    ];
    let status = post_drain(&base, Some(PASSWORD), "backlog", 3, logplex_body(&lines)).await;
    assert_eq!(status, 204);
    // 5 threads × 60 s / 6 s = 50 jobs per worker: 280 need 6, from zero in one step.
    wait_until("the samples scale the worker type", || api.quantity() > 0).await;
    assert_eq!(api.patches(), vec![6], "{}", bot.stderr());
    let (_, text) = get_text(&base, "/metrics").await;
    let scrape = parse_metrics(&text);
    let frames = |result: &str| {
        metric_value(
            &scrape,
            "autoscalebot_drain_frames_total",
            &[("result", result)],
        )
    };
    assert_eq!(frames("l2met"), Some(2.0), "{text}");
    assert_eq!(frames("bad_l2met_line"), Some(1.0), "{text}");
    assert_eq!(
        metric_value(&scrape, "autoscalebot_queue_jobs", &[]),
        Some(280.0),
        "the last reading is on /metrics: {text}"
    );
    assert_eq!(
        metric_value(&scrape, "autoscalebot_queue_oldest_job_age_seconds", &[]),
        Some(1.5),
        "{text}"
    );
    assert!(
        bot.stderr()
            .contains("an l2met line where sample#queue.depth=\"lots\" is not a number"),
        "{}",
        bot.stderr()
    );

    let empty = [app_line("sample#queue.depth=0 sample#queue.latency=0s")];
    let status = post_drain(&base, Some(PASSWORD), "empty", 1, logplex_body(&empty)).await;
    assert_eq!(status, 204);
    wait_until("an empty queue takes the type to zero", || {
        api.quantity() == 0
    })
    .await;
    assert_eq!(api.patches(), vec![6, 0], "{}", bot.stderr());
}
