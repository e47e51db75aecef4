//! The references `simulate` runs on the router signal beside the engine (whose streaks and
//! target policy run through its own step, in `replay`): reconstructions of Kubernetes' HPA
//! and Knative's KPA on the same signal and the same target as the target policy, each
//! following its published algorithm and defaults (sources in each type's doc).
//!
//! Each is a [`Sizer`]: at each of its ticks it reads the drain's view ([`RouterFeed`]) and
//! says the size it wants. No rule of ours lives here.

use super::queue::Moment;
use super::signal::RouterFeed;
use super::trace::utc;
use crate::policy::Bounds;
use crate::settings::AppSettings;
use std::collections::VecDeque;
use std::time::Duration;

/// What a sizer sees at one of its ticks.
pub struct Tick<'a> {
    pub at_ms: i64,
    /// What the platform reports (booting dynos included).
    pub quantity: u32,
    pub serving: u32,
    /// The queue a request arriving now finds: what a heartbeat would sample.
    pub moment: &'a Moment,
    pub bounds: Bounds,
}

/// A way of sizing the app, ticking at its own interval.
pub trait Sizer {
    fn tick_every(&self) -> Duration;
    /// The window of the drain it reads, when it reads one.
    fn router_window(&self) -> Option<Duration>;
    /// The size wanted after this tick (`None`: unchanged).
    fn decide(&mut self, tick: &Tick, feed: Option<&mut RouterFeed>) -> Option<u32>;
}

/// The bounds in force for `settings` at a moment, as the engine reads them.
pub fn bounds_of(settings: &AppSettings, at_ms: i64) -> Bounds {
    let bounds = settings.engine_config().bounds_at(utc(at_ms));
    Bounds {
        min: bounds.min,
        max: bounds.max,
    }
}

/// Kubernetes' Horizontal Pod Autoscaler, reconstructed from kubernetes/kubernetes
/// `pkg/controller/podautoscaler` (`horizontal.go`, `replica_calculator.go`) and its defaults:
/// every 15 s (`--horizontal-pod-autoscaler-sync-period`) desired = ceil(ready dynos × metric
/// per dyno / target), unchanged within the 10 % tolerance (`--horizontal-pod-autoscaler-
/// tolerance`); scale-down stabilised over 300 s (the highest recommendation of the window,
/// `behavior.scaleDown.stabilizationWindowSeconds`), scale-up not stabilised; at most
/// max(100 %, 4 pods) more per 15 s, 100 % fewer. The metric is the drain's: requests in the
/// app (rate × `service=`, Little's law) over the last minute (a custom-metrics adapter's
/// `rate(...[1m])`), against `dyno_concurrency × target_utilisation` per dyno: the same
/// metric and target as the target policy.
pub struct Hpa {
    target_per_dyno: f64,
    recommendations: VecDeque<(i64, u32)>,
}

impl Hpa {
    pub const SYNC: Duration = Duration::from_secs(15);
    pub const TOLERANCE: f64 = 0.1;
    pub const SCALE_DOWN_STABILISATION: Duration = Duration::from_secs(300);
    pub const METRIC_WINDOW: Duration = Duration::from_secs(60);

    pub fn new(target_per_dyno: f64) -> Self {
        Hpa {
            target_per_dyno,
            recommendations: VecDeque::new(),
        }
    }
}

impl Sizer for Hpa {
    fn tick_every(&self) -> Duration {
        Hpa::SYNC
    }

    fn router_window(&self) -> Option<Duration> {
        Some(Hpa::METRIC_WINDOW)
    }

    fn decide(&mut self, tick: &Tick, feed: Option<&mut RouterFeed>) -> Option<u32> {
        let feed = feed?;
        // No metric (no line for two windows): HPA skips the pod's recommendation.
        if feed.age(tick.at_ms) > 2 * Hpa::METRIC_WINDOW {
            return None;
        }
        let current = tick.quantity;
        let ready = f64::from(tick.serving.max(1));
        let total = feed.concurrency(tick.at_ms, Hpa::METRIC_WINDOW);
        let usage_ratio = total / ready / self.target_per_dyno;
        let desired = if (usage_ratio - 1.0).abs() <= Hpa::TOLERANCE {
            current
        } else {
            (usage_ratio * ready).ceil() as u32
        };
        self.recommendations.push_back((tick.at_ms, desired));
        let window_ms = Hpa::SCALE_DOWN_STABILISATION.as_millis() as i64;
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| tick.at_ms - at > window_ms)
        {
            self.recommendations.pop_front();
        }
        let down_recommendation = self
            .recommendations
            .iter()
            .map(|(_, wanted)| *wanted)
            .max()
            .unwrap_or(desired);
        let stabilised = if desired > current {
            desired
        } else if current > down_recommendation {
            down_recommendation
        } else {
            current
        };
        let up_limit = (current * 2).max(current + 4);
        let to = tick
            .bounds
            .clamp(stabilised.min(up_limit))
            .max(tick.bounds.min.max(1).min(tick.bounds.max));
        (to != current).then_some(to)
    }
}

/// Knative's Pod Autoscaler, reconstructed from knative/serving
/// `pkg/autoscaler/scaling/autoscaler.go` and `config/core/configmaps/autoscaler.yaml`: every
/// 2 s (`tick-interval`) desired = ceil(requests in the app / target) over the 60 s stable
/// window (`stable-window`) and over the 6 s panic window (`panic-window-percentage` 10 %);
/// when the panic window asks for 2× the ready dynos (`panic-threshold-percentage` 200 %) it
/// panics: the larger of the two counts, never down, until the stable window has passed
/// without that; at most 1000× up (`max-scale-up-rate`) and half down
/// (`max-scale-down-rate` 2) per tick; no scale-down delay (`scale-down-delay` 0). The
/// target per dyno is `dyno_concurrency × target_utilisation` (Knative's
/// `container-concurrency × container-concurrency-target-percentage`), the same as the
/// target policy's.
pub struct Kpa {
    target_per_dyno: f64,
    panic_since_ms: Option<i64>,
    max_panic_dynos: u32,
}

impl Kpa {
    pub const TICK: Duration = Duration::from_secs(2);
    pub const STABLE_WINDOW: Duration = Duration::from_secs(60);
    pub const PANIC_WINDOW: Duration = Duration::from_secs(6);
    pub const PANIC_THRESHOLD: f64 = 2.0;
    pub const MAX_SCALE_UP_RATE: f64 = 1000.0;
    pub const MAX_SCALE_DOWN_RATE: f64 = 2.0;

    pub fn new(target_per_dyno: f64) -> Self {
        Kpa {
            target_per_dyno,
            panic_since_ms: None,
            max_panic_dynos: 0,
        }
    }
}

impl Sizer for Kpa {
    fn tick_every(&self) -> Duration {
        Kpa::TICK
    }

    fn router_window(&self) -> Option<Duration> {
        Some(Kpa::STABLE_WINDOW)
    }

    fn decide(&mut self, tick: &Tick, feed: Option<&mut RouterFeed>) -> Option<u32> {
        let feed = feed?;
        if feed.age(tick.at_ms) > Kpa::STABLE_WINDOW {
            // "No data to scale on yet": the autoscaler leaves the size alone.
            return None;
        }
        let ready = f64::from(tick.serving.max(1));
        let stable = feed.concurrency(tick.at_ms, Kpa::STABLE_WINDOW);
        let panic = feed.concurrency(tick.at_ms, Kpa::PANIC_WINDOW);
        let max_up = (Kpa::MAX_SCALE_UP_RATE * ready).ceil();
        let max_down = (ready / Kpa::MAX_SCALE_DOWN_RATE).floor();
        let stable_dynos = (stable / self.target_per_dyno).ceil();
        let panic_dynos = (panic / self.target_per_dyno).ceil();
        let desired_stable = stable_dynos.max(max_down).min(max_up) as u32;
        let desired_panic = panic_dynos.max(max_down).min(max_up) as u32;
        let over_threshold = panic_dynos / ready >= Kpa::PANIC_THRESHOLD;
        let stable_ms = Kpa::STABLE_WINDOW.as_millis() as i64;
        match self.panic_since_ms {
            _ if over_threshold => self.panic_since_ms = Some(tick.at_ms),
            Some(since) if since + stable_ms < tick.at_ms => {
                self.panic_since_ms = None;
                self.max_panic_dynos = 0;
            }
            _ => {}
        }
        let mut desired = desired_stable;
        if self.panic_since_ms.is_some() {
            desired = desired.max(desired_panic).max(self.max_panic_dynos);
            self.max_panic_dynos = desired;
        }
        let to = tick
            .bounds
            .clamp(desired)
            .max(tick.bounds.min.max(1).min(tick.bounds.max));
        (to != tick.quantity).then_some(to)
    }
}
