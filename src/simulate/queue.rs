//! The queueing model: how many requests per second and how many serving dynos turn into a
//! response-time distribution.
//!
//! Each dyno is `dyno_concurrency` servers with exponential service times (mean
//! `service_time_ms`). Heroku's routers pick a dyno at random for each request ("Routers use a
//! random selection algorithm for HTTP request load balancing across web dynos", Heroku's HTTP
//! routing documentation) and each dyno queues its own requests, so Poisson arrivals split
//! into one Poisson stream per dyno: every serving dyno is its own M/M/c queue at the rate
//! divided by the dynos, solved exactly with Erlang C. That is slower than one pooled queue
//! of all the workers (a request can wait at a busy dyno while another is idle).
//! An M/M/c has no steady state in overload, so a fluid backlog carries the excess from one
//! step to the next and drains at the spare capacity, capped by the router's 30 s timeout.
//! This module owns the arithmetic only: it knows nothing of settings, clocks or the engine.

use rand::RngExt;
use std::time::Duration;

/// Heroku's router gives up on a request after 30 s (H12), so no queue is longer than that.
pub const ROUTER_TIMEOUT: Duration = Duration::from_secs(30);

/// The M/M/c utilisation used while a backlog is draining or arrivals exceed capacity: close
/// enough to 1 that the queue is long, far enough that the formulas stay finite.
const SATURATED_UTILISATION: f64 = 0.98;

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

/// The requests waiting beyond what the M/M/c describes, in overload. Fluid: it grows at the
/// excess arrival rate and drains at the spare capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    pub requests: f64,
}

impl Backlog {
    /// Moves the backlog on by `step_s` seconds of `arrival_per_s` against `capacity_per_s`.
    /// With a `timeout` (the router's), what would wait longer is dropped; without (jobs),
    /// it all waits.
    pub fn advance(
        &mut self,
        arrival_per_s: f64,
        capacity_per_s: f64,
        step_s: f64,
        timeout: Option<Duration>,
    ) {
        let grown = self.requests + (arrival_per_s - capacity_per_s) * step_s;
        let cap = timeout.map_or(f64::INFINITY, |timeout| {
            capacity_per_s * timeout.as_secs_f64()
        });
        self.requests = grown.clamp(0.0, cap);
    }
}

/// The queue as one request arriving now finds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moment {
    /// `None` when no dyno serves: every request times out at the router.
    queue: Option<Mmc>,
    /// Time to work off the backlog ahead of this request.
    backlog_delay_s: f64,
    /// How fast that time grows (or, draining, shrinks) while the step lasts, in seconds per
    /// second: the excess of arrivals over the capacity, over the capacity.
    backlog_growth: f64,
    /// The longest response the model reports: the router's timeout, or a day for jobs.
    cap_s: f64,
    /// No job worker runs and no job waits: nothing is late.
    nothing_waits: bool,
}

impl Moment {
    pub fn new(
        model: &DynoModel,
        serving_dynos: u32,
        arrival_per_s: f64,
        backlog: Backlog,
    ) -> Moment {
        let capacity = model.capacity_per_s(serving_dynos);
        let cap_s = model.cap_s();
        if serving_dynos == 0 || model.dyno_concurrency == 0 {
            return Moment {
                queue: None,
                backlog_delay_s: 0.0,
                backlog_growth: 0.0,
                cap_s,
                nothing_waits: model.timeout.is_none()
                    && arrival_per_s <= 0.0
                    && backlog.requests <= 0.0,
            };
        }
        let saturated = backlog.requests > 0.0 || arrival_per_s >= capacity;
        let arrival = if saturated {
            arrival_per_s.min(SATURATED_UTILISATION * capacity)
        } else {
            arrival_per_s
        };
        // Random routing: each dyno sees its share of the arrivals and queues them alone.
        let per_dyno = arrival / f64::from(serving_dynos);
        Moment {
            queue: Mmc::new(model.dyno_concurrency, per_dyno, model.service_rate_per_s()),
            backlog_delay_s: backlog.requests / capacity,
            backlog_growth: if saturated {
                (arrival_per_s - capacity) / capacity
            } else {
                0.0
            },
            cap_s,
            nothing_waits: false,
        }
    }

    /// The mean wait in the workers' steady queue (the M/M/c's, without the backlog ahead),
    /// in seconds; 0 when no worker serves.
    pub fn queue_wait_s(&self) -> f64 {
        match &self.queue {
            None => 0.0,
            Some(queue) => {
                (queue.mean_response_s() - 1.0 / queue.service_per_s).clamp(0.0, self.cap_s)
            }
        }
    }

    /// The 95th percentile of the response time, capped at the router timeout.
    pub fn p95_ms(&self) -> f64 {
        let router_ms = self.cap_s * 1000.0;
        match &self.queue {
            None if self.nothing_waits => 0.0,
            None => router_ms,
            Some(queue) => {
                ((self.backlog_delay_s + queue.response_quantile_s(0.95)) * 1000.0).min(router_ms)
            }
        }
    }

    /// The mean response time, capped at the router timeout.
    pub fn mean_ms(&self) -> f64 {
        let router_ms = self.cap_s * 1000.0;
        match &self.queue {
            None if self.nothing_waits => 0.0,
            None => router_ms,
            Some(queue) => {
                ((self.backlog_delay_s + queue.mean_response_s()) * 1000.0).min(router_ms)
            }
        }
    }

    /// One request's response time, capped at the router timeout.
    pub fn sample_ms(&self, rng: &mut impl RngExt) -> f64 {
        self.sample_ms_after(0.0, rng)
    }

    /// One response time of a request arriving `after_s` into the step: the backlog ahead of
    /// it has grown (or drained) meanwhile, as the accounting's backlog does over the step.
    pub fn sample_ms_after(&self, after_s: f64, rng: &mut impl RngExt) -> f64 {
        let router_s = self.cap_s;
        match &self.queue {
            None if self.nothing_waits => 0.0,
            None => router_s * 1000.0,
            Some(queue) => {
                let backlog_s =
                    (self.backlog_delay_s + self.backlog_growth * after_s).clamp(0.0, router_s);
                ((backlog_s + queue.sample_response_s(rng)) * 1000.0).min(router_s * 1000.0)
            }
        }
    }
}

#[cfg(test)]
mod tests;
