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
}

impl DynoModel {
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
    pub fn advance(&mut self, arrival_per_s: f64, capacity_per_s: f64, step_s: f64) {
        let grown = self.requests + (arrival_per_s - capacity_per_s) * step_s;
        // The router drops what would wait longer than its timeout.
        let cap = capacity_per_s * ROUTER_TIMEOUT.as_secs_f64();
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
}

impl Moment {
    pub fn new(
        model: &DynoModel,
        serving_dynos: u32,
        arrival_per_s: f64,
        backlog: Backlog,
    ) -> Moment {
        let capacity = model.capacity_per_s(serving_dynos);
        if serving_dynos == 0 || model.dyno_concurrency == 0 {
            return Moment {
                queue: None,
                backlog_delay_s: 0.0,
                backlog_growth: 0.0,
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
        }
    }

    /// The 95th percentile of the response time, capped at the router timeout.
    pub fn p95_ms(&self) -> f64 {
        let router_ms = ROUTER_TIMEOUT.as_secs_f64() * 1000.0;
        match &self.queue {
            None => router_ms,
            Some(queue) => {
                ((self.backlog_delay_s + queue.response_quantile_s(0.95)) * 1000.0).min(router_ms)
            }
        }
    }

    /// The mean response time, capped at the router timeout.
    pub fn mean_ms(&self) -> f64 {
        let router_ms = ROUTER_TIMEOUT.as_secs_f64() * 1000.0;
        match &self.queue {
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
        let router_s = ROUTER_TIMEOUT.as_secs_f64();
        match &self.queue {
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
