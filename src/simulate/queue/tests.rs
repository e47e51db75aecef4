use super::*;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use std::time::Duration;

fn close(actual: f64, expected: f64, relative: f64) -> bool {
    (actual - expected).abs() <= relative * expected.abs()
}

#[test]
fn erlang_c_matches_the_textbook_values() {
    // C(2, 1) = 1/3 by hand; C(10, 8) and C(100, 90) from the factorial-sum form of the
    // formula (independent of the recurrence used here).
    assert!(close(erlang_c(2, 1.0), 1.0 / 3.0, 1e-12));
    assert!(close(erlang_c(10, 8.0), 0.409_180_150_8, 1e-9));
    assert!(close(erlang_c(100, 90.0), 0.216_940_480_9, 1e-8));
    // For one server the waiting probability is the utilisation.
    assert!(close(erlang_c(1, 0.7), 0.7, 1e-12));
    assert_eq!(erlang_c(3, 3.0), 1.0, "unstable: everyone waits");
    assert_eq!(erlang_c(0, 0.5), 1.0);
    assert_eq!(erlang_c(4, 0.0), 0.0);
}

#[test]
fn mm1_mean_wait_and_p95_match_the_closed_forms() {
    // M/M/1 at 80 % load, 10 ms service: Wq = rho / (mu - lambda), T ~ Exp(mu - lambda).
    let (lambda, mu) = (80.0, 100.0);
    let queue = Mmc::new(1, lambda, mu).unwrap();
    let rho = lambda / mu;
    assert!(close(queue.mean_wait_s(), rho / (mu - lambda), 1e-12));
    assert!(close(
        queue.response_quantile_s(0.95),
        20f64.ln() / (mu - lambda),
        1e-5
    ));
}

#[test]
fn sampled_mm1_mean_wait_is_within_a_few_per_cent_of_the_formula() {
    let (lambda, mu) = (80.0, 100.0);
    let queue = Mmc::new(1, lambda, mu).unwrap();
    let mut rng = Pcg64Mcg::seed_from_u64(7);
    let samples = 400_000;
    let mean_response: f64 = (0..samples)
        .map(|_| queue.sample_response_s(&mut rng))
        .sum::<f64>()
        / samples as f64;
    let mean_wait = mean_response - 1.0 / mu;
    let expected = (lambda / mu) / (mu - lambda);
    assert!(
        close(mean_wait, expected, 0.03),
        "sampled mean wait {mean_wait} s, M/M/1 formula {expected} s"
    );
}

#[test]
fn sampled_mmc_p95_agrees_with_the_analytic_quantile() {
    // 12 servers at 90 % load: a long-tailed case where the wait matters.
    let queue = Mmc::new(12, 10.8, 1.0).unwrap();
    let mut rng = Pcg64Mcg::seed_from_u64(11);
    let mut samples: Vec<f64> = (0..200_000)
        .map(|_| queue.sample_response_s(&mut rng))
        .collect();
    samples.sort_by(f64::total_cmp);
    let sampled_p95 = samples[samples.len() * 95 / 100];
    let analytic_p95 = queue.response_quantile_s(0.95);
    assert!(
        close(sampled_p95, analytic_p95, 0.03),
        "sampled {sampled_p95}, analytic {analytic_p95}"
    );
    // Little's law cross-check on the mean: W = C / (c mu - lambda) + 1/mu.
    let expected_mean = erlang_c(12, 10.8) / (12.0 - 10.8) + 1.0;
    let sampled_mean = samples.iter().sum::<f64>() / samples.len() as f64;
    assert!(close(sampled_mean, expected_mean, 0.03));
}

#[test]
fn survival_is_continuous_where_the_two_rates_meet() {
    // c mu - lambda = mu exactly: the degenerate branch.
    let queue = Mmc::new(2, 1.0, 1.0).unwrap();
    let just_off = Mmc::new(2, 1.000_001, 1.0).unwrap();
    for t in [0.1, 1.0, 3.0] {
        assert!(close(
            queue.response_survival(t),
            just_off.response_survival(t),
            1e-4
        ));
    }
}

#[test]
fn an_unstable_queue_has_no_steady_state() {
    assert!(Mmc::new(2, 2.0, 1.0).is_none());
    assert!(Mmc::new(0, 0.0, 1.0).is_none());
}

/// One worker a dyno, 10 ms a request: 100 requests per second a dyno.
const FAST: DynoModel = DynoModel {
    dyno_concurrency: 1,
    service_time_ms: 10.0,
    timeout: Some(ROUTER_TIMEOUT),
};

/// 4 workers a dyno, 200 ms a request (the sandbox's): 20 requests per second a dyno.
const SANDBOX: DynoModel = DynoModel {
    dyno_concurrency: 4,
    service_time_ms: 200.0,
    timeout: Some(ROUTER_TIMEOUT),
};

fn serving(model: &DynoModel, dynos: u32) -> Queues {
    let mut queues = Queues::default();
    queues.set_serving(model, dynos);
    queues
}

#[test]
fn the_backlog_grows_in_overload_drains_after_and_stops_at_the_router_timeout() {
    let mut queues = serving(&FAST, 1);
    // 120 a second against 100: at least 20 more wait each second (a little more at first,
    // while the worker still idles now and then).
    queues.advance(&FAST, 120.0, 10.0);
    let after_surge = queues.waiting(&FAST);
    assert!((200.0..=230.0).contains(&after_surge), "{after_surge}");
    // 50 a second: the worker's spare 50 a second work it off.
    queues.advance(&FAST, 50.0, 2.0);
    let draining = queues.waiting(&FAST);
    assert!(
        (after_surge - 100.0 - 5.0..=after_surge - 100.0 + 5.0).contains(&draining),
        "{draining}"
    );
    queues.advance(&FAST, 50.0, 60.0);
    // Back to the steady M/M/1 at half load: 0.5 waiting on average.
    assert!(close(queues.waiting(&FAST), 0.5, 1e-3), "{queues:?}");
    // An hour at ten times the capacity: no request waits past the router's 30 s.
    queues.advance(&FAST, 1000.0, 3600.0);
    let most = queues.waiting(&FAST);
    assert!((3000.0..=3060.0).contains(&most), "{most}");
    assert_eq!(queues.moment(&FAST, 1000.0).p95_ms(), 30_000.0);
}

#[test]
fn no_serving_dyno_means_every_request_hits_the_router_timeout() {
    let model = DynoModel {
        dyno_concurrency: 4,
        service_time_ms: 50.0,
        timeout: Some(ROUTER_TIMEOUT),
    };
    let moment = Moment::steady(&model, 0, 1.0);
    assert_eq!(moment.p95_ms(), 30_000.0);
    assert_eq!(Queues::default().moment(&model, 1.0).p95_ms(), 30_000.0);
}

#[test]
fn a_backlog_adds_its_drain_time_to_the_p95() {
    let model = DynoModel {
        dyno_concurrency: 1,
        service_time_ms: 100.0,
        timeout: Some(ROUTER_TIMEOUT),
    };
    let calm = Moment::steady(&model, 1, 5.0);
    // 4 s at 15 a second against 10: about 20 requests ahead.
    let mut behind = Queues::steady(&model, 1, 5.0);
    behind.advance(&model, 15.0, 4.0);
    let ahead = behind.waiting(&model);
    assert!(ahead > 15.0, "{ahead}");
    // At 10 per second they take ahead / 10 s more, on top of a queue at least as long.
    let p95 = behind.moment(&model, 5.0).p95_ms();
    assert!(p95 >= calm.p95_ms() + ahead * 100.0, "{p95}");
    // Light load: p95 is close to the bare service time's, 100 ms × ln 20.
    let light = Moment::steady(&model, 1, 0.01);
    assert!(close(light.p95_ms(), 100.0 * 20f64.ln(), 0.01));
}

#[test]
fn a_dyno_starts_empty_and_converges_to_the_steady_queue() {
    // 3 dynos at 48 a second: each an M/M/4 at 16 a second, 80 % busy.
    let steady = Moment::steady(&SANDBOX, 3, 48.0).p95_ms();
    let mut queues = serving(&SANDBOX, 3);
    assert_eq!(queues.waiting(&SANDBOX), 0.0);
    let empty = queues.moment(&SANDBOX, 48.0).p95_ms();
    // Nobody waits yet: the bare service time's p95, 200 ms × ln 20.
    assert!(close(empty, 200.0 * 20f64.ln(), 1e-6), "{empty}");
    assert!(empty < 0.8 * steady);
    // The queue fills over a few service times, never past the steady one...
    let mut previous = empty;
    for _ in 0..20 {
        queues.advance(&SANDBOX, 48.0, 0.25);
        let now = queues.moment(&SANDBOX, 48.0).p95_ms();
        assert!(
            now >= previous - 1e-9 && now <= steady * (1.0 + 1e-6),
            "{now}"
        );
        previous = now;
    }
    // ...and is there after a few seconds.
    assert!(close(previous, steady, 0.01), "{previous} vs {steady}");
    queues.advance(&SANDBOX, 48.0, 60.0);
    assert_eq!(queues, Queues::steady(&SANDBOX, 3, 48.0));
}

#[test]
fn the_queue_does_not_depend_on_how_the_time_is_cut() {
    let mut fine = serving(&SANDBOX, 2);
    let mut coarse = serving(&SANDBOX, 2);
    for _ in 0..10 {
        fine.advance(&SANDBOX, 44.0, 0.5);
    }
    coarse.advance(&SANDBOX, 44.0, 5.0);
    let mut finest = serving(&SANDBOX, 2);
    for _ in 0..1000 {
        finest.advance(&SANDBOX, 44.0, 0.005);
    }
    let (fine, coarse, finest) = (
        fine.waiting(&SANDBOX),
        coarse.waiting(&SANDBOX),
        finest.waiting(&SANDBOX),
    );
    assert!(finest > 5.0, "{finest}");
    assert!(close(fine, finest, 0.02), "{fine} vs {finest}");
    assert!(close(coarse, finest, 0.02), "{coarse} vs {finest}");
}

#[test]
fn an_overload_carries_over_and_drains_at_the_spare_capacity() {
    // One dyno (20 a second) meets 30 a second for 4 s, then 10 a second.
    let mut queues = serving(&SANDBOX, 1);
    let first = queues.moment(&SANDBOX, 30.0).p95_ms();
    assert!(first < 1000.0, "an empty dyno is not slow at once: {first}");
    queues.advance(&SANDBOX, 30.0, 4.0);
    let swamped = queues.moment(&SANDBOX, 10.0).p95_ms();
    assert!(swamped > 2000.0, "{swamped}");
    assert!(swamped > 3.0 * Moment::steady(&SANDBOX, 1, 10.0).p95_ms());
    // 40 or so waiting, worked off at the spare 10 a second: about 4 s.
    queues.advance(&SANDBOX, 10.0, 2.0);
    let halfway = queues.moment(&SANDBOX, 10.0).p95_ms();
    assert!(halfway < swamped && halfway > 1000.0, "{halfway}");
    queues.advance(&SANDBOX, 10.0, 10.0);
    let drained = queues.moment(&SANDBOX, 10.0).p95_ms();
    assert!(close(
        drained,
        Moment::steady(&SANDBOX, 1, 10.0).p95_ms(),
        0.01
    ));
}

#[test]
fn a_dyno_that_joins_starts_empty_and_the_old_queue_stays_where_it_is() {
    let mut queues = serving(&SANDBOX, 1);
    queues.advance(&SANDBOX, 30.0, 4.0);
    let waiting = queues.waiting(&SANDBOX);
    queues.set_serving(&SANDBOX, 2);
    // Random routing does not move a queue: the new dyno is empty, the old one still full,
    // and half the requests still go to the old one.
    assert!(close(queues.waiting(&SANDBOX), waiting, 1e-12));
    let mixed = queues.moment(&SANDBOX, 30.0);
    let pooled_p95 = Moment::steady(&SANDBOX, 2, 30.0).p95_ms();
    assert!(mixed.p95_ms() > 2.0 * pooled_p95, "{mixed:?}");
    let mean = mixed.mean_ms();
    assert!(mean > 200.0 && mean < 0.5 * mixed.p95_ms(), "{mean}");
    // Stopping the newest dyno takes its (empty) queue away, and the old queue is left.
    queues.set_serving(&SANDBOX, 1);
    assert!(close(queues.waiting(&SANDBOX), waiting, 1e-12));
    // Both queues meet at the steady state and become one again.
    queues.set_serving(&SANDBOX, 2);
    queues.advance(&SANDBOX, 30.0, 120.0);
    assert_eq!(queues, Queues::steady(&SANDBOX, 2, 30.0));
}

#[test]
fn jobs_wait_for_the_first_worker() {
    let jobs = DynoModel::jobs(2, Duration::from_secs(10));
    let mut queues = Queues::default();
    assert_eq!(queues.moment(&jobs, 0.0).p95_ms(), 0.0, "nothing to do");
    queues.advance(&jobs, 1.0, 30.0);
    assert!(close(queues.waiting(&jobs), 30.0, 1e-12));
    assert_eq!(
        queues.moment(&jobs, 1.0).p95_ms(),
        JOB_WAIT_CAP.as_secs_f64() * 1000.0
    );
    queues.set_serving(&jobs, 1);
    // The worker takes the 30 jobs: two at once, the others wait.
    assert!(close(queues.waiting(&jobs), 28.0, 0.01), "{queues:?}");
}

#[test]
fn the_sampled_mixture_agrees_with_its_p95() {
    let mut queues = serving(&SANDBOX, 1);
    queues.advance(&SANDBOX, 26.0, 3.0);
    queues.set_serving(&SANDBOX, 3);
    let moment = queues.moment(&SANDBOX, 26.0);
    let mut rng = Pcg64Mcg::seed_from_u64(5);
    let mut samples: Vec<f64> = (0..100_000).map(|_| moment.sample_ms(&mut rng)).collect();
    samples.sort_by(f64::total_cmp);
    let sampled_p95 = samples[samples.len() * 95 / 100];
    assert!(
        close(sampled_p95, moment.p95_ms(), 0.03),
        "{sampled_p95} vs {}",
        moment.p95_ms()
    );
    let sampled_mean = samples.iter().sum::<f64>() / samples.len() as f64;
    assert!(close(sampled_mean, moment.mean_ms(), 0.03));
}

#[test]
fn random_routing_makes_each_dyno_its_own_queue_slower_than_one_pooled_queue() {
    let model = DynoModel {
        dyno_concurrency: 4,
        service_time_ms: 50.0,
        timeout: Some(ROUTER_TIMEOUT),
    };
    // 3 dynos at 210 req/s: each an M/M/4 at 70 req/s (87.5 % busy).
    let moment = Moment::steady(&model, 3, 210.0);
    let one_dyno = Mmc::new(4, 70.0, 20.0).unwrap();
    assert!(close(
        moment.p95_ms(),
        one_dyno.response_quantile_s(0.95) * 1000.0,
        1e-9
    ));
    assert!(close(
        moment.mean_ms(),
        one_dyno.mean_response_s() * 1000.0,
        1e-9
    ));
    // All twelve workers behind one queue would wait far less.
    let pooled = Mmc::new(12, 210.0, 20.0).unwrap();
    assert!(moment.p95_ms() > 1.3 * pooled.response_quantile_s(0.95) * 1000.0);
}
