//! The queue policy through the engine's one step: up at once from zero, down to zero only
//! after the delay and only with `min_dynos` 0, a failed reading holds and is told once. The
//! policy's own sizing is tested in `crate::policy::queue`; these test the wiring.

use super::*;

fn queue_settings(extra: &str) -> AppSettings {
    let text = format!(
        "heroku_app_name = \"test-app\"\nheroku_api_key = \"secret-key\"\nprocess_type = \"worker\"\n\
         policy = \"queue\"\nqueue_url = \"redis://localhost:6379\"\nqueues = [\"queue:default\"]\n\
         queue_worker_concurrency = 5\nqueue_job_duration = \"1s\"\nqueue_target_latency = \"30s\"\n\
         max_dynos = 20\nscale_down_delay = \"1m\"\nnotify_on_scale_fails = true\n{extra}"
    );
    from_toml_str(&text, &HashMap::new())
        .unwrap_or_else(|error| panic!("queue settings: {error}"))
        .apps
        .remove(0)
}

fn jobs(n: u64) -> Option<Result<QueueSignal, String>> {
    Some(Ok(QueueSignal {
        jobs: Some(n),
        oldest_age: None,
    }))
}

/// One beat at `dynos`, `seconds` after noon; the platform obeys.
fn beat(
    config: &Config,
    state: &mut State,
    dynos: &mut u32,
    seconds: i64,
    queue: Option<Result<QueueSignal, String>>,
) -> Output {
    let now = noon() + chrono::Duration::seconds(seconds);
    let inputs = Inputs {
        size: Some(*dynos),
        queue,
        ..Inputs::default()
    };
    let (next, output) = step(state, config, &inputs, now);
    *state = next;
    if let Some(scale) = output.scale {
        state.acted(
            config,
            &Acted::Scaled {
                scale,
                dry_run: false,
            },
            now,
        );
        *dynos = scale.to;
    }
    output
}

#[test]
fn a_backlog_starts_a_stopped_type_at_the_size_it_needs_and_empty_queues_stop_it() {
    let config = queue_settings("min_dynos = 0").engine_config();
    let mut state = State::new(&config);
    let mut dynos = 0;
    // 5 × 30 s / 1 s = 150 jobs per worker: 1000 jobs need 7, in one step from zero.
    let output = beat(&config, &mut state, &mut dynos, 0, jobs(1000));
    assert_eq!(dynos, 7);
    assert!(notices::describe(&output.scale.unwrap().reason)
        .contains("1000 jobs waiting, 150 per worker within 30s: 7 workers"));
    for second in [30, 60] {
        beat(&config, &mut state, &mut dynos, second, jobs(0));
        assert_eq!(dynos, 7, "not before the whole delay");
    }
    beat(&config, &mut state, &mut dynos, 90, jobs(0));
    assert_eq!(dynos, 0);
    beat(&config, &mut state, &mut dynos, 120, jobs(0));
    assert_eq!(dynos, 0);
    beat(&config, &mut state, &mut dynos, 150, jobs(1));
    assert_eq!(dynos, 1, "the first job brings a worker back");
}

#[test]
fn with_a_minimum_above_zero_empty_queues_stop_at_the_minimum() {
    let config = queue_settings("min_dynos = 2").engine_config();
    let mut state = State::new(&config);
    let mut dynos = 5;
    for second in (0..=300).step_by(30) {
        beat(&config, &mut state, &mut dynos, second, jobs(0));
    }
    assert_eq!(dynos, 2);
}

#[test]
fn a_failing_source_holds_the_size_and_is_told_once_until_it_answers() {
    let config = queue_settings("min_dynos = 0").engine_config();
    let mut state = State::new(&config);
    let mut dynos = 3;
    let mut told = Vec::new();
    for second in (0..=600).step_by(30) {
        let output = beat(
            &config,
            &mut state,
            &mut dynos,
            second,
            Some(Err(
                "redis localhost:6379 (queue:default): connecting: refused".into(),
            )),
        );
        told.extend(output.notices);
    }
    assert_eq!(dynos, 3, "a dead source never scales down");
    assert_eq!(
        told,
        vec![Notice::QueueFailed {
            error: "redis localhost:6379 (queue:default): connecting: refused".into(),
            dynos: Some(3)
        }]
    );
    let output = beat(&config, &mut state, &mut dynos, 630, jobs(0));
    assert_eq!(output.notices, vec![Notice::QueueRecovered]);
    assert_eq!(dynos, 3, "a whole delay of readings before a scale down");
    let event = notices::event("test-app", noon(), &told[0]);
    assert_eq!(event.kind, EventKind::ScaleFailed);
}
