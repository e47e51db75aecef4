//! The router signal as the worker sees it: one router line per request, each request sent
//! to a random serving dyno and timed by that dyno's queue, gathered into the worker's own
//! [`RouterWindow`] and read with its own statistics, so a policy in the simulator reads what
//! it would read from the log drain in production.
//!
//! A request's line is drawn from the [`Moment`] it arrived in (the queue of the dyno random
//! routing sent it to, as it was then); one that would wait past the router's 30 s is an
//! H12 line at `service=30000ms`, as Heroku logs it. The router logs a request when it answers,
//! so a line reaches the window at its arrival plus its response time (an H12 30 s after its
//! arrival): an overloaded app's window shows what it served, not what was asked of it, as the
//! real drain does. At high rates only every `thin`-th
//! request is drawn (each kept line stands for `thin`): the counts and rates are scaled back,
//! and the percentiles and means come from thousands of lines a window, as many as a window
//! needs for them to settle. This module measures; it decides nothing.

use super::queue::{Moment, ROUTER_TIMEOUT};
use super::trace::utc;
use crate::router_log::{Request, RouterStats, RouterWindow};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::collections::VecDeque;
use std::time::Duration;

/// Lines drawn per window at the busiest moment, at most: enough for a stable p95.
const LINES_PER_WINDOW: f64 = 5000.0;
/// Per-second sums kept for the concurrency windows of the HPA and KPA reconstructions.
const KEPT_SECONDS: usize = 60;
/// Answered lines held before the first drop of those too old for the window.
const MIN_ANSWERED_LIMIT: usize = 4096;

/// The drain's view of one simulated app.
pub struct RouterFeed {
    window: RouterWindow,
    /// Lines not logged yet, in the order they were drawn: `(when the router answers, ms;
    /// the line's service ms, which is all of the line [`router_line_of`] needs)`. Plain
    /// numbers in a vector rather than an ordered map of lines: one is pushed per simulated
    /// request, and those answered by a beat are sorted once, at that beat.
    answering: Vec<(i64, u32)>,
    /// Lines answered but not in the window yet, in the order they were answered by beat and
    /// drawn within one: they enter it only when its statistics are read (HPA and KPA read
    /// only the age and the concurrency), and those older than the window are dropped.
    answered: Vec<(i64, u32)>,
    /// How many answered lines to hold before dropping those too old for any window.
    answered_limit: usize,
    /// When the router answered the newest line logged.
    last_answered_ms: Option<i64>,
    /// The day of the last line logged, with its date: a line's time is built from it.
    day: Option<(i64, NaiveDate)>,
    thin: u32,
    /// `(second, lines, sum of service ms)` of the last [`KEPT_SECONDS`] seconds.
    seconds: VecDeque<(i64, u32, f64)>,
    rng: Pcg64Mcg,
}

impl RouterFeed {
    /// A feed with the worker's window, drawing one line in `thin`.
    pub fn new(window: Duration, thin: u32, seed: u64) -> RouterFeed {
        RouterFeed {
            window: RouterWindow::new(window, usize::MAX),
            answering: Vec::new(),
            answered: Vec::new(),
            answered_limit: MIN_ANSWERED_LIMIT,
            last_answered_ms: None,
            day: None,
            thin: thin.max(1),
            seconds: VecDeque::new(),
            rng: Pcg64Mcg::seed_from_u64(seed),
        }
    }

    /// The thinning that keeps a window at the busiest rate under [`LINES_PER_WINDOW`] lines.
    pub fn thin_for(peak_per_s: f64, window: Duration) -> u32 {
        let lines = peak_per_s * window.as_secs_f64().max(1.0);
        (lines / LINES_PER_WINDOW)
            .ceil()
            .clamp(1.0, f64::from(u32::MAX)) as u32
    }

    /// The router lines of the requests arriving in `[from_ms, to_ms)` at `rate` per second,
    /// timed by the queue as it was at `from_ms` (`start`) and as it is at `to_ms` (`end`): a
    /// request arriving a share of the way through finds the end's queue with that chance.
    pub fn arrive(&mut self, start: &Moment, end: &Moment, rate: f64, from_ms: i64, to_ms: i64) {
        let span_ms = (to_ms - from_ms).max(1) as f64;
        let mut at_ms = from_ms;
        while at_ms < to_ms {
            let second = at_ms.div_euclid(1000);
            let end_ms = ((second + 1) * 1000).min(to_ms);
            let expected = rate * (end_ms - at_ms) as f64 / 1000.0 / f64::from(self.thin);
            let lines = poisson(&mut self.rng, expected);
            if lines > 0 {
                let mut service_sum_ms = 0.0;
                for _ in 0..lines {
                    let arrived_ms =
                        at_ms + (self.rng.random::<f64>() * (end_ms - at_ms) as f64) as i64;
                    let through = (arrived_ms - from_ms) as f64 / span_ms;
                    let moment = if self.rng.random::<f64>() < through {
                        end
                    } else {
                        start
                    };
                    let service_ms = router_service_ms(moment.sample_ms(&mut self.rng));
                    service_sum_ms += f64::from(service_ms);
                    let answered_ms = arrived_ms + i64::from(service_ms);
                    self.answering.push((answered_ms, service_ms));
                }
                match self.seconds.back_mut() {
                    Some((last, count, sum)) if *last == second => {
                        *count += lines;
                        *sum += service_sum_ms;
                    }
                    _ => self.seconds.push_back((second, lines, service_sum_ms)),
                }
                while self.seconds.len() > KEPT_SECONDS {
                    self.seconds.pop_front();
                }
            }
            at_ms = end_ms;
        }
    }

    /// Takes the lines of the requests the router has answered by `now_ms`, keeping those a
    /// window read now or later can still hold: `RouterWindow::stats` at a later time drops
    /// every line more than the window before it.
    fn log_answered(&mut self, now_ms: i64) {
        let (answered, last) = (&mut self.answered, &mut self.last_answered_ms);
        self.answering.retain(|&line| {
            let now = line.0 <= now_ms;
            if now {
                answered.push(line);
                *last = Some(last.map_or(line.0, |last| last.max(line.0)));
            }
            !now
        });
        if self.answered.len() > self.answered_limit {
            let window_ns = self.window.window().as_nanos();
            self.answered
                .retain(|&(at_ms, _)| i128::from(now_ms - at_ms) * 1_000_000 <= window_ns as i128);
            self.answered_limit = (2 * self.answered.len()).max(MIN_ANSWERED_LIMIT);
        }
    }

    /// Hands the answered lines to the window, oldest first.
    fn fill_window(&mut self, now_ms: i64) {
        self.log_answered(now_ms);
        // A stable sort: lines answered in the same millisecond keep the order they were
        // drawn in, as the router logs them (lines of a later beat were answered later).
        self.answered.sort_by_key(|&(at_ms, _)| at_ms);
        let day = &mut self.day;
        self.window.push_each(
            self.answered
                .drain(..)
                .map(|(at_ms, service_ms)| (line_time(day, at_ms), router_line_of(service_ms))),
        );
    }

    /// The window at `now_ms`, as `RouterWindow::stats` reports it, counts scaled back to all
    /// requests: the lines of the requests answered by then.
    pub fn stats(&mut self, now_ms: i64) -> RouterStats {
        self.fill_window(now_ms);
        let now = utc(now_ms);
        let mut stats = self.window.stats(now);
        // The window's own newest line may be older than the newest answered: lines too old
        // for any window never reached it.
        stats.since_last_line = self
            .last_answered_ms
            .map(|at_ms| (now - utc(at_ms)).to_std().unwrap_or(Duration::ZERO));
        let thin = u64::from(self.thin);
        stats.requests *= thin;
        stats.requests_per_second *= f64::from(self.thin);
        stats.errors *= thin;
        stats.timeouts *= thin;
        stats.unavailable *= thin;
        stats.silent *= thin;
        stats
    }

    /// Since the newest line, at `now_ms` (the window's staleness).
    pub fn age(&mut self, now_ms: i64) -> Duration {
        self.log_answered(now_ms);
        self.last_answered_ms.map_or(Duration::MAX, |at_ms| {
            Duration::from_millis((now_ms - at_ms).max(0) as u64)
        })
    }

    /// The mean number of requests in the app (served or waiting) over the last `span`
    /// before `now_ms`, by Little's law on the lines: the sum of their `service=` over the
    /// span. `span` is at most a minute.
    pub fn concurrency(&self, now_ms: i64, span: Duration) -> f64 {
        let span_s = span.as_secs().clamp(1, KEPT_SECONDS as u64) as i64;
        let now_s = now_ms.div_euclid(1000);
        let service_ms: f64 = self
            .seconds
            .iter()
            .filter(|(second, ..)| *second >= now_s - span_s && *second < now_s)
            .map(|(_, _, sum)| sum)
            .sum();
        service_ms * f64::from(self.thin) / 1000.0 / span_s as f64
    }
}

/// `utc(at_ms)`, from the date of the day `day` remembers: working out the date of every line
/// from the epoch would cost a tenth of a simulation.
fn line_time(day: &mut Option<(i64, NaiveDate)>, at_ms: i64) -> DateTime<Utc> {
    const DAY_MS: i64 = 86_400_000;
    let (number, in_day_ms) = (at_ms.div_euclid(DAY_MS), at_ms.rem_euclid(DAY_MS));
    let date = match *day {
        Some((known, date)) if known == number => Some(date),
        _ => {
            let date = utc(number * DAY_MS);
            (date.timestamp_millis() == number * DAY_MS).then(|| date.date_naive())
        }
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(
        (in_day_ms / 1000) as u32,
        (in_day_ms % 1000) as u32 * 1_000_000,
    );
    match (date, time) {
        (Some(date), Some(time)) => {
            *day = Some((number, date));
            date.and_time(time).and_utc()
        }
        _ => utc(at_ms),
    }
}

/// The `service=` of the router line of a request that took `response_ms`: capped at the
/// router's timeout.
fn router_service_ms(response_ms: f64) -> u32 {
    let router_ms = ROUTER_TIMEOUT.as_millis() as u32;
    let ms = response_ms.clamp(0.0, f64::from(router_ms));
    // `ms.round()`, without a call to libm's `round` for every request: in [0, 30 000] the
    // cast truncates exactly and the fraction left is exact, so halves round away from zero
    // as `round` does (clamping first changes nothing: the bounds are whole).
    let whole = ms as u32;
    if ms - f64::from(whole) >= 0.5 {
        whole + 1
    } else {
        whole
    }
}

/// The router line whose `service=` is `ms`: served, or an H12 at the router's timeout.
fn router_line_of(ms: u32) -> Request {
    let router_ms = ROUTER_TIMEOUT.as_millis() as u32;
    if ms >= router_ms {
        Request {
            connect_ms: None,
            service_ms: Some(router_ms),
            status: 503,
            code: Some(12),
        }
    } else {
        Request {
            connect_ms: Some(0),
            service_ms: Some(ms),
            status: 200,
            code: None,
        }
    }
}

/// A Poisson count with mean `mean`: Knuth's product of uniforms for small means, the normal
/// approximation above 30 (exact enough for a count of arrivals). Written here rather than
/// adding a distributions crate for these few lines.
fn poisson(rng: &mut Pcg64Mcg, mean: f64) -> u32 {
    if mean.is_nan() || mean <= 0.0 {
        return 0;
    }
    if mean < 30.0 {
        let limit = (-mean).exp();
        let mut product = rng.random::<f64>();
        let mut count = 0;
        while product > limit {
            product *= rng.random::<f64>();
            count += 1;
        }
        return count;
    }
    // Box–Muller: 1 − u lies in (0, 1], so the logarithm is finite.
    let (u, v) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
    let normal = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
    (mean + mean.sqrt() * normal).round().max(0.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::queue::DynoModel;

    const MODEL: DynoModel = DynoModel {
        dyno_concurrency: 4,
        service_time_ms: 50.0,
        timeout: Some(ROUTER_TIMEOUT),
    };

    #[test]
    fn poisson_counts_have_the_right_mean() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        for mean in [0.5, 4.0, 29.0, 120.0] {
            let total: u64 = (0..20_000)
                .map(|_| u64::from(poisson(&mut rng, mean)))
                .sum();
            let measured = total as f64 / 20_000.0;
            assert!(
                (measured - mean).abs() < 0.03 * mean + 0.02,
                "{mean}: {measured}"
            );
        }
        assert_eq!(poisson(&mut rng, 0.0), 0);
    }

    #[test]
    fn the_window_reads_the_rate_and_the_service_time_of_the_requests() {
        // 2 dynos at 100 req/s: each an M/M/4 at 50 req/s.
        let moment = Moment::steady(&MODEL, 2, 100.0);
        for thin in [1, 4] {
            let mut feed = RouterFeed::new(Duration::from_secs(30), thin, 1);
            feed.arrive(&moment, &moment, 100.0, 0, 30_000);
            let stats = feed.stats(29_999);
            assert!(
                (stats.requests_per_second - 100.0).abs() < 8.0,
                "{thin}: {stats:?}"
            );
            let mean = stats.mean_service_ms.unwrap();
            let expected = moment.mean_ms();
            assert!(
                (mean - expected).abs() < 0.1 * expected,
                "{thin}: {mean} vs {expected}"
            );
            let p95 = stats.latency_p95_ms.unwrap() as f64;
            assert!(
                (p95 - moment.p95_ms()).abs() < 0.15 * moment.p95_ms(),
                "{p95}"
            );
            // Little's law: about rate × mean time requests in the app.
            let inside = feed.concurrency(30_000, Duration::from_secs(30));
            assert!((inside - 100.0 * expected / 1000.0).abs() < 0.6, "{inside}");
            assert!(feed.age(30_000) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn requests_past_the_router_timeout_are_h12_lines() {
        let nobody = Moment::steady(&MODEL, 0, 10.0);
        let mut feed = RouterFeed::new(Duration::from_secs(10), 1, 1);
        feed.arrive(&nobody, &nobody, 10.0, 0, 10_000);
        // The router logs an H12 when it gives up, 30 s after the request came.
        assert_eq!(feed.stats(10_000).requests, 0, "nothing answered yet");
        let stats = feed.stats(40_000);
        assert!(stats.requests > 50);
        assert_eq!(stats.timeouts, stats.requests);
        assert_eq!(stats.mean_service_ms, Some(30_000.0));
        assert_eq!(RouterFeed::thin_for(1000.0, Duration::from_secs(30)), 6);
        assert_eq!(RouterFeed::thin_for(10.0, Duration::from_secs(30)), 1);
    }
}
