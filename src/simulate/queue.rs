//! The queueing model: how many requests per second and how many serving dynos turn into a
//! response-time distribution, moment by moment.
//!
//! Each dyno is `dyno_concurrency` servers with exponential service times (mean
//! `service_time_ms`). Heroku's routers pick a dyno at random for each request ("Routers use a
//! random selection algorithm for HTTP request load balancing across web dynos", Heroku's HTTP
//! routing documentation) and each dyno queues its own requests, so Poisson arrivals split
//! into one Poisson stream per dyno: every serving dyno is its own M/M/c queue, fed the rate
//! divided by the dynos. That is slower than one pooled queue of all the workers (a request
//! can wait at a busy dyno while another is idle).
//!
//! A queue takes time to fill and to drain, so the state carries over from one moment to the
//! next ([`Queues`]): each dyno's mean number of requests follows the pointwise stationary
//! fluid flow approximation (Rothkopf and Oren 1979; Wang, Wolff et al. 1996): it grows at
//! the arrival rate and shrinks at the rate its workers complete requests, as busy as an
//! M/M/c whose steady queue holds that many. A dyno starts empty, converges to the steady
//! M/M/c of a constant rate, and in overload keeps growing, capped by the router's 30 s
//! timeout, until spare capacity drains it. A request arriving finds the M/M/c whose steady
//! queue is as long as its dyno's; past a saturated M/M/c the excess waits ahead of it as a
//! fluid backlog. Dynos that started serving at different times hold different queues.
//! This module owns the arithmetic only: it knows nothing of settings, clocks or the engine.

use rand::RngExt;
use std::time::Duration;

/// Heroku's router gives up on a request after 30 s (H12), so no queue is longer than that.
pub const ROUTER_TIMEOUT: Duration = Duration::from_secs(30);

/// The utilisation past which an arrival's view of a dyno stops being the steady M/M/c's:
/// close enough to 1 that the queue is long, far enough that the formulas stay finite. The
/// requests beyond that queue wait as a fluid backlog.
const SATURATED_UTILISATION: f64 = 0.98;

/// A queue this close to the steady one (a share of it, plus as many requests) is there.
const STEADY: f64 = 1e-6;

/// Two groups of dynos whose queues are this close (in requests per dyno, plus this share of
/// the queue) are one group: they converge exponentially, and one group is cheaper.
const SAME_QUEUE: f64 = 1e-3;

/// What one dyno can do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynoModel {
    /// Requests one dyno serves at once (web workers or threads).
    pub dyno_concurrency: u32,
    /// Mean time to serve one request once a worker picks it up.
    pub service_time_ms: f64,
    /// How long a request may wait before it is dropped: Heroku's router timeout for web
    /// dynos; `None` for job workers, whose jobs wait in their queue however long it takes.
    pub timeout: Option<Duration>,
}

/// The longest wait a job worker's model reports (a day): past the router's timeout there is
/// no natural cap, and a job that waits a day is as late as any later one for the totals.
pub const JOB_WAIT_CAP: Duration = Duration::from_secs(24 * 3600);

impl DynoModel {
    /// A web dyno's model: requests dropped at the router's timeout.
    pub fn web(dyno_concurrency: u32, service_time_ms: f64) -> Self {
        DynoModel {
            dyno_concurrency,
            service_time_ms,
            timeout: Some(ROUTER_TIMEOUT),
        }
    }

    /// A job worker's model: `worker_concurrency` jobs at once, none ever dropped.
    pub fn jobs(worker_concurrency: u32, job_duration: Duration) -> Self {
        DynoModel {
            dyno_concurrency: worker_concurrency,
            service_time_ms: job_duration.as_secs_f64() * 1000.0,
            timeout: None,
        }
    }

    /// The longest response (or wait) the model reports, in seconds.
    pub fn cap_s(&self) -> f64 {
        self.timeout.unwrap_or(JOB_WAIT_CAP).as_secs_f64()
    }

    /// Requests per second one worker completes.
    pub fn service_rate_per_s(&self) -> f64 {
        1000.0 / self.service_time_ms
    }

    /// Requests per second `dynos` dynos complete when every worker is busy.
    pub fn capacity_per_s(&self, dynos: u32) -> f64 {
        f64::from(dynos) * f64::from(self.dyno_concurrency) * self.service_rate_per_s()
    }

    /// Requests in one dyno (served or waiting) in the steady M/M/c at `utilisation` < 1.
    pub fn steady_in_dyno(&self, utilisation: f64) -> f64 {
        let workers = f64::from(self.dyno_concurrency);
        let rho = utilisation.clamp(0.0, 1.0);
        if rho <= 0.0 {
            return 0.0;
        }
        if rho >= 1.0 {
            return f64::INFINITY;
        }
        workers * rho + erlang_c(self.dyno_concurrency, workers * rho) * rho / (1.0 - rho)
    }

    /// The most requests one dyno holds: an arrival behind them would wait past the router's
    /// timeout (no cap for jobs).
    fn most_in_dyno(&self) -> f64 {
        match self.timeout {
            None => f64::INFINITY,
            Some(timeout) => {
                self.steady_in_dyno(SATURATED_UTILISATION)
                    + self.capacity_per_s(1) * timeout.as_secs_f64()
            }
        }
    }

    /// The utilisation `u` in [0, 1) at which `steady_in_dyno(u) + slope × u` is `value`:
    /// with `slope` 0 the M/M/c whose steady queue holds `value` requests; with `slope` the
    /// workers' completions over a step, one implicit Euler step of the fluid queue. The
    /// left side grows with `u`, so a safeguarded Newton search from `guess` finds it.
    fn utilisation_at(&self, value: f64, slope: f64, guess: f64) -> f64 {
        if value <= 0.0 || self.dyno_concurrency == 0 {
            return 0.0;
        }
        let f = |u: f64| self.steady_in_dyno(u) + slope * u - value;
        let (mut low, mut high) = (0.0_f64, 1.0_f64);
        let mut u = guess.clamp(0.0, 1.0 - 1e-12);
        for _ in 0..100 {
            let here = f(u);
            if here.abs() <= 1e-10 * (1.0 + value) {
                return u;
            }
            if here > 0.0 {
                high = u;
            } else {
                low = u;
            }
            if high - low <= 1e-15 {
                break;
            }
            // A one-sided difference, inside the bracket; bisection when Newton leaves it.
            let h = 1e-7 * (1.0 - u).max(1e-9);
            let slope_here = (f(u + h) - here) / h;
            let newton = u - here / slope_here;
            u = if slope_here.is_finite() && slope_here > 0.0 && newton > low && newton < high {
                newton
            } else {
                0.5 * (low + high)
            };
        }
        0.5 * (low + high)
    }
}

pub use crate::erlang::{erlang_c, Mmc};

/// Drawing from the queue is the simulator's alone.
impl Mmc {
    /// One response time drawn from the distribution.
    pub fn sample_response_s(&self, rng: &mut impl RngExt) -> f64 {
        let wait = if rng.random::<f64>() < self.wait_probability() {
            exponential(rng, self.drain_per_s())
        } else {
            0.0
        };
        wait + exponential(rng, self.service_per_s)
    }
}

fn exponential(rng: &mut impl RngExt, rate_per_s: f64) -> f64 {
    // 1 − u lies in (0, 1], so the logarithm is finite.
    -(1.0 - rng.random::<f64>()).ln() / rate_per_s
}

/// Dynos that started serving together, and so hold the same queue.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Group {
    dynos: u32,
    /// Requests in each of these dynos, served or waiting (the fluid's mean).
    in_dyno: f64,
    /// The utilisation of the M/M/c whose steady queue holds `in_dyno`: how busy the workers
    /// are.
    utilisation: f64,
}

/// The queues of the serving dynos, carried from one moment to the next: what a request
/// arriving now finds, and how it changes while requests arrive and are served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queues {
    /// Oldest dynos first: the platform stops the newest first.
    groups: Vec<Group>,
    /// Jobs waiting while no worker runs (a web request without a dyno is dropped instead).
    unserved: f64,
}

impl Queues {
    /// `serving` dynos, each already at the steady queue of its share of `arrival_per_s` (a
    /// saturated one when the arrivals reach the capacity): what a run that has long been at
    /// this rate finds. The oracle's yardstick.
    pub fn steady(model: &DynoModel, serving: u32, arrival_per_s: f64) -> Queues {
        if serving == 0 {
            return Queues::default();
        }
        let capacity = model.capacity_per_s(serving);
        let utilisation = if capacity > 0.0 {
            (arrival_per_s.max(0.0) / capacity).min(SATURATED_UTILISATION)
        } else {
            0.0
        };
        Queues {
            groups: vec![Group {
                dynos: serving,
                in_dyno: model.steady_in_dyno(utilisation),
                utilisation,
            }],
            unserved: 0.0,
        }
    }

    pub fn serving(&self) -> u32 {
        self.groups.iter().map(|group| group.dynos).sum()
    }

    /// Requests waiting for a worker (not in service), over all dynos, with the jobs no
    /// worker runs.
    pub fn waiting(&self, model: &DynoModel) -> f64 {
        let workers = f64::from(model.dyno_concurrency);
        self.unserved
            + self
                .groups
                .iter()
                .map(|g| f64::from(g.dynos) * (g.in_dyno - workers * g.utilisation).max(0.0))
                .sum::<f64>()
    }

    /// Follows the formation: dynos that start serving join empty (a job worker's first ones
    /// take the jobs waiting for a worker); stopped ones, the newest first, take their queue
    /// with them.
    pub fn set_serving(&mut self, model: &DynoModel, serving: u32) {
        let now = self.serving();
        if serving > now {
            let dynos = serving - now;
            let in_dyno = if now == 0 {
                std::mem::take(&mut self.unserved) / f64::from(dynos)
            } else {
                0.0
            };
            let in_dyno = in_dyno.min(model.most_in_dyno());
            self.groups.push(Group {
                dynos,
                in_dyno,
                utilisation: model.utilisation_at(in_dyno, 0.0, 0.5),
            });
        } else {
            let mut surplus = now - serving;
            while surplus > 0 {
                let Some(newest) = self.groups.last_mut() else {
                    break;
                };
                let stopped = newest.dynos.min(surplus);
                newest.dynos -= stopped;
                surplus -= stopped;
                if newest.dynos == 0 {
                    self.groups.pop();
                }
            }
        }
    }

    /// Moves the queues on by `step_s` seconds of `arrival_per_s`, split at random over the
    /// serving dynos. Each dyno's queue grows at its arrivals and shrinks at its workers'
    /// completions, integrated by implicit Euler steps (stable however long the step) that
    /// start short, where the queue changes fastest, and double.
    pub fn advance(&mut self, model: &DynoModel, arrival_per_s: f64, step_s: f64) {
        let serving = self.serving();
        if serving == 0 {
            if model.timeout.is_none() {
                self.unserved += arrival_per_s.max(0.0) * step_s;
            }
            return;
        }
        let per_dyno = arrival_per_s.max(0.0) / f64::from(serving);
        let capacity = model.capacity_per_s(1);
        let most = model.most_in_dyno();
        let steady = (per_dyno < capacity).then(|| {
            let utilisation = per_dyno / capacity;
            (utilisation, model.steady_in_dyno(utilisation))
        });
        let service_s = 1.0 / model.service_rate_per_s();
        for group in &mut self.groups {
            let mut done_s = 0.0;
            // Short where the queue changes fastest, doubling while it settles, and never
            // much longer than the queue takes to settle (a service time at light load, longer
            // near saturation), where the queue curves.
            let mut h_s = 0.25 * service_s;
            while done_s < step_s {
                if let Some((utilisation, in_dyno)) = steady {
                    if (group.in_dyno - in_dyno).abs() <= STEADY * (1.0 + in_dyno) {
                        // There: a constant rate keeps it there.
                        group.in_dyno = in_dyno;
                        group.utilisation = utilisation;
                        break;
                    }
                }
                let h = h_s.min(step_s - done_s);
                // The trapezoid rule: completions at the mean of the two ends' utilisations.
                let utilisation = model.utilisation_at(
                    group.in_dyno + h * (per_dyno - 0.5 * capacity * group.utilisation),
                    0.5 * h * capacity,
                    group.utilisation,
                );
                group.utilisation = utilisation;
                group.in_dyno = model.steady_in_dyno(utilisation);
                if group.in_dyno > most {
                    // The router drops what would wait past its timeout.
                    group.in_dyno = most;
                    group.utilisation = model.utilisation_at(most, 0.0, utilisation);
                }
                done_s += h;
                h_s = (2.0 * h_s).min(service_s / (1.0 - group.utilisation).max(1e-6));
            }
        }
        self.merge();
    }

    /// One group for neighbours whose queues have met.
    fn merge(&mut self) {
        let mut merged: Vec<Group> = Vec::with_capacity(self.groups.len());
        for group in self.groups.drain(..) {
            match merged.last_mut() {
                Some(last)
                    if (last.in_dyno - group.in_dyno).abs()
                        <= SAME_QUEUE * (1.0 + last.in_dyno.max(group.in_dyno)) =>
                {
                    let (a, b) = (f64::from(last.dynos), f64::from(group.dynos));
                    last.in_dyno = (a * last.in_dyno + b * group.in_dyno) / (a + b);
                    last.utilisation = (a * last.utilisation + b * group.utilisation) / (a + b);
                    last.dynos += group.dynos;
                }
                _ => merged.push(group),
            }
        }
        self.groups = merged;
    }

    /// The queue as a request arriving now (at `arrival_per_s`) finds it.
    pub fn moment(&self, model: &DynoModel, arrival_per_s: f64) -> Moment {
        let cap_s = model.cap_s();
        let serving = self.serving();
        if serving == 0 || model.dyno_concurrency == 0 {
            return Moment {
                parts: Vec::new(),
                cap_s,
                nothing_waits: model.timeout.is_none()
                    && arrival_per_s <= 0.0
                    && self.unserved <= 0.0,
            };
        }
        let capacity = model.capacity_per_s(1);
        let saturated_in_dyno = model.steady_in_dyno(SATURATED_UTILISATION);
        let parts = self
            .groups
            .iter()
            .map(|group| {
                let utilisation = group.utilisation.min(SATURATED_UTILISATION);
                Part {
                    share: f64::from(group.dynos) / f64::from(serving),
                    queue: Mmc::new(
                        model.dyno_concurrency,
                        utilisation * capacity,
                        model.service_rate_per_s(),
                    ),
                    backlog_s: (group.in_dyno - saturated_in_dyno).max(0.0) / capacity,
                }
            })
            .collect();
        Moment {
            parts,
            cap_s,
            nothing_waits: false,
        }
    }
}

/// The dynos of one group as an arrival sent to one of them finds them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Part {
    /// The share of the requests routed to this group.
    share: f64,
    queue: Option<Mmc>,
    /// Time to work off the backlog beyond the saturated M/M/c, ahead of the request.
    backlog_s: f64,
}

impl Part {
    fn survival(&self, t_s: f64) -> f64 {
        match &self.queue {
            None => 1.0,
            Some(queue) => queue.response_survival(t_s - self.backlog_s),
        }
    }
}

/// The queue as one request arriving now finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    /// One part per group of dynos in the same state; empty when no dyno serves: every
    /// request times out at the router.
    parts: Vec<Part>,
    /// The longest response the model reports: the router's timeout, or a day for jobs.
    cap_s: f64,
    /// No job worker runs and no job waits: nothing is late.
    nothing_waits: bool,
}

impl Moment {
    /// The queue every serving dyno has at the steady state of `arrival_per_s`.
    pub fn steady(model: &DynoModel, serving_dynos: u32, arrival_per_s: f64) -> Moment {
        Queues::steady(model, serving_dynos, arrival_per_s).moment(model, arrival_per_s)
    }

    /// The 95th percentile of the response time, capped at the router timeout.
    pub fn p95_ms(&self) -> f64 {
        let router_ms = self.cap_s * 1000.0;
        match self.parts.as_slice() {
            [] if self.nothing_waits => 0.0,
            [] => router_ms,
            [Part {
                queue: Some(queue),
                backlog_s,
                ..
            }] => ((backlog_s + queue.response_quantile_s(0.95)) * 1000.0).min(router_ms),
            parts => {
                // Random routing mixes the groups: bisect the mixture's survival.
                let survival = |t: f64| parts.iter().map(|p| p.share * p.survival(t)).sum::<f64>();
                if survival(self.cap_s) > 0.05 {
                    return router_ms;
                }
                crate::erlang::survival_crossing_s(survival, 0.05, self.cap_s) * 1000.0
            }
        }
    }

    /// The mean response time, capped at the router timeout.
    pub fn mean_ms(&self) -> f64 {
        let router_ms = self.cap_s * 1000.0;
        if self.parts.is_empty() {
            return if self.nothing_waits { 0.0 } else { router_ms };
        }
        self.parts
            .iter()
            .map(|part| {
                let ms = match &part.queue {
                    None => router_ms,
                    Some(queue) => (part.backlog_s + queue.mean_response_s()) * 1000.0,
                };
                part.share * ms.min(router_ms)
            })
            .sum()
    }

    /// One request's response time, capped at the router timeout: sent to a dyno at random.
    pub fn sample_ms(&self, rng: &mut impl RngExt) -> f64 {
        let router_ms = self.cap_s * 1000.0;
        if self.parts.is_empty() {
            return if self.nothing_waits { 0.0 } else { router_ms };
        }
        let mut pick = rng.random::<f64>();
        let part = self
            .parts
            .iter()
            .find(|part| {
                pick -= part.share;
                pick < 0.0
            })
            .or(self.parts.last())
            .copied();
        match part.and_then(|part| part.queue.map(|queue| (part.backlog_s, queue))) {
            None => router_ms,
            Some((backlog_s, queue)) => {
                ((backlog_s + queue.sample_response_s(rng)) * 1000.0).min(router_ms)
            }
        }
    }
}

#[cfg(test)]
mod tests;
