//! Erlang C and the M/M/c queue, the queueing arithmetic shared by the simulator's model and
//! the target policy (its estimate of the work per request, and the size that keeps the p95
//! under the max): the probability that a request waits at a dyno of `c` workers fed at
//! random, and the distribution of its response time. Arithmetic only: no clock, no settings,
//! no I/O, no randomness.

/// Erlang C: the probability that an arrival waits, for `servers` servers and an offered load
/// of `offered_erlangs` (arrival rate / service rate per server). 1 when the queue is unstable.
pub fn erlang_c(servers: u32, offered_erlangs: f64) -> f64 {
    if servers == 0 || offered_erlangs >= f64::from(servers) {
        return 1.0;
    }
    if offered_erlangs <= 0.0 {
        return 0.0;
    }
    // Erlang B by its recurrence, which stays finite for thousands of servers (the closed
    // form overflows factorials long before that).
    let mut erlang_b = 1.0;
    for k in 1..=servers {
        erlang_b = offered_erlangs * erlang_b / (f64::from(k) + offered_erlangs * erlang_b);
    }
    let c = f64::from(servers);
    c * erlang_b / (c - offered_erlangs * (1.0 - erlang_b))
}

/// A stable M/M/c queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mmc {
    pub servers: u32,
    pub arrival_per_s: f64,
    pub service_per_s: f64,
    /// Erlang C, computed once.
    wait_probability: f64,
}

impl Mmc {
    /// `None` when there is no server or the arrivals reach the capacity.
    pub fn new(servers: u32, arrival_per_s: f64, service_per_s: f64) -> Option<Mmc> {
        let capacity = f64::from(servers) * service_per_s;
        if servers == 0 || arrival_per_s >= capacity || service_per_s <= 0.0 {
            return None;
        }
        let arrival_per_s = arrival_per_s.max(0.0);
        Some(Mmc {
            servers,
            arrival_per_s,
            service_per_s,
            wait_probability: erlang_c(servers, arrival_per_s / service_per_s),
        })
    }

    pub fn wait_probability(&self) -> f64 {
        self.wait_probability
    }

    /// The rate at which a waiting request's wait ends: the spare capacity.
    pub fn drain_per_s(&self) -> f64 {
        f64::from(self.servers) * self.service_per_s - self.arrival_per_s
    }

    pub fn mean_wait_s(&self) -> f64 {
        self.wait_probability / self.drain_per_s()
    }

    pub fn mean_response_s(&self) -> f64 {
        self.mean_wait_s() + 1.0 / self.service_per_s
    }

    /// P(response time > t): the wait is 0 with probability 1 − C, else exponential at the
    /// spare capacity; the service is exponential; the sum has this closed form.
    pub fn response_survival(&self, t_s: f64) -> f64 {
        if t_s <= 0.0 {
            return 1.0;
        }
        let mu = self.service_per_s;
        let theta = self.drain_per_s();
        let c = self.wait_probability;
        let gap = theta - mu;
        // Where the two rates coincide the hypoexponential term degenerates to its limit.
        let waited = if (gap / mu).abs() < 1e-9 {
            (1.0 + mu * t_s) * (-mu * t_s).exp()
        } else {
            (theta * (-mu * t_s).exp() - mu * (-theta * t_s).exp()) / gap
        };
        ((1.0 - c) * (-mu * t_s).exp() + c * waited).clamp(0.0, 1.0)
    }

    /// The `quantile` (0..1) of the response time, by bisection on the survival function.
    pub fn response_quantile_s(&self, quantile: f64) -> f64 {
        let target = 1.0 - quantile;
        let mut high = 1.0 / self.service_per_s;
        while self.response_survival(high) > target {
            high *= 2.0;
        }
        survival_crossing_s(|t_s| self.response_survival(t_s), target, high)
    }
}

/// The time in `[0, high_s]` at which a falling survival function `survival` comes down to
/// `target`, by bisection to a relative 1e-7: an M/M/c's quantile, and a mixture of them.
pub fn survival_crossing_s(survival: impl Fn(f64) -> f64, target: f64, high_s: f64) -> f64 {
    let (mut low, mut high) = (0.0, high_s);
    for _ in 0..64 {
        let mid = 0.5 * (low + high);
        if survival(mid) > target {
            low = mid;
        } else {
            high = mid;
        }
        if high - low < 1e-7 * high {
            break;
        }
    }
    0.5 * (low + high)
}
