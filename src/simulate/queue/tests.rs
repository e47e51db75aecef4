use super::*;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

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

#[test]
fn the_backlog_grows_in_overload_drains_after_and_stops_at_the_router_timeout() {
    let mut backlog = Backlog::default();
    backlog.advance(120.0, 100.0, 10.0, Some(ROUTER_TIMEOUT));
    assert!(close(backlog.requests, 200.0, 1e-12));
    backlog.advance(50.0, 100.0, 2.0, Some(ROUTER_TIMEOUT));
    assert!(close(backlog.requests, 100.0, 1e-12));
    backlog.advance(50.0, 100.0, 60.0, Some(ROUTER_TIMEOUT));
    assert_eq!(backlog.requests, 0.0);
    backlog.advance(1000.0, 100.0, 3600.0, Some(ROUTER_TIMEOUT));
    assert!(close(backlog.requests, 100.0 * 30.0, 1e-12));
}

#[test]
fn no_serving_dyno_means_every_request_hits_the_router_timeout() {
    let model = DynoModel {
        dyno_concurrency: 4,
        service_time_ms: 50.0,
        timeout: Some(ROUTER_TIMEOUT),
    };
    let moment = Moment::new(&model, 0, 1.0, Backlog::default());
    assert_eq!(moment.p95_ms(), 30_000.0);
}

#[test]
fn a_backlog_adds_its_drain_time_to_the_p95() {
    let model = DynoModel {
        dyno_concurrency: 1,
        service_time_ms: 100.0,
        timeout: Some(ROUTER_TIMEOUT),
    };
    let calm = Moment::new(&model, 1, 5.0, Backlog::default());
    let behind = Moment::new(&model, 1, 5.0, Backlog { requests: 20.0 });
    // 20 requests at 10 per second ahead: 2 s more, on top of a queue at least as long.
    assert!(behind.p95_ms() >= calm.p95_ms() + 2000.0);
    // Light load: p95 is close to the bare service time's, 100 ms × ln 20.
    let light = Moment::new(&model, 1, 0.01, Backlog::default());
    assert!(close(light.p95_ms(), 100.0 * 20f64.ln(), 0.01));
}

#[test]
fn random_routing_makes_each_dyno_its_own_queue_slower_than_one_pooled_queue() {
    let model = DynoModel {
        dyno_concurrency: 4,
        service_time_ms: 50.0,
        timeout: Some(ROUTER_TIMEOUT),
    };
    // 3 dynos at 210 req/s: each an M/M/4 at 70 req/s (87.5 % busy).
    let moment = Moment::new(&model, 3, 210.0, Backlog::default());
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
