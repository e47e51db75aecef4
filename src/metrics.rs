//! The Prometheus metrics (prometheus-client): what the loop and the drain count, encoded as
//! text for `GET /metrics`.
//!
//! This module owns the names, help texts and labels of every metric, and the small methods
//! that update them from the loop's values. It never decides anything and does no I/O; every
//! update is a few atomic operations, so the loop and the drain never wait on a scrape.

use crate::decision::Observation;
use crate::router_log::{IngestCounts, Quantiles, Request, RouterStats};
use autoscalebot_backends::notify::DeliveryCounts;
use autoscalebot_backends::probe::ProbeOutcome;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Labels as `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    heartbeats: Family<Labels, Counter>,
    heartbeat_latency: Histogram,
    router_requests: Counter,
    router_responses: Family<Labels, Counter>,
    router_errors: Family<Labels, Counter>,
    router_latency: Family<Labels, Gauge<f64, AtomicU64>>,
    router_requests_per_second: Gauge<f64, AtomicU64>,
    drain_frames: Family<Labels, Counter>,
    drain_batches: Family<Labels, Counter>,
    dynos: Gauge,
    bounds: Family<Labels, Gauge>,
    scale_actions: Family<Labels, Counter>,
    api_errors: Family<Labels, Counter>,
}

fn labels(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

impl Metrics {
    /// The registry, with the notification counts of each backend read at every scrape.
    pub fn new(notifications: Vec<(&'static str, Arc<DeliveryCounts>)>) -> Self {
        let mut registry = Registry::with_prefix("autoscalebot");
        let heartbeats = Family::<Labels, Counter>::default();
        registry.register(
            "heartbeats",
            "Heartbeats by result: fail, pass, in_band, misconfigured",
            heartbeats.clone(),
        );
        // 5 ms to about 40 s.
        let heartbeat_latency = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register_with_unit(
            "heartbeat_latency",
            "Heartbeat response time, body included (timeouts at the timeout)",
            Unit::Seconds,
            heartbeat_latency.clone(),
        );
        let router_requests = Counter::default();
        registry.register(
            "router_requests",
            "Router lines received through the log drain",
            router_requests.clone(),
        );
        let router_responses = Family::<Labels, Counter>::default();
        registry.register(
            "router_responses",
            "Router lines by HTTP status",
            router_responses.clone(),
        );
        let router_errors = Family::<Labels, Counter>::default();
        registry.register(
            "router_errors",
            "Router error lines by code (H12 request timeout, H13 connection closed, ...)",
            router_errors.clone(),
        );
        let router_latency = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "router_latency",
            "Quantiles of connect (queue) and service time over the last router window",
            Unit::Seconds,
            router_latency.clone(),
        );
        let router_requests_per_second = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "router_requests_per_second",
            "Requests per second over the last router window",
            router_requests_per_second.clone(),
        );
        let drain_frames = Family::<Labels, Counter>::default();
        registry.register(
            "drain_frames",
            "Log drain frames by result: router, other, malformed, bad_router_line",
            drain_frames.clone(),
        );
        let drain_batches = Family::<Labels, Counter>::default();
        registry.register(
            "drain_batches",
            "Log drain requests by result: accepted, duplicate, unauthorized, too_large",
            drain_batches.clone(),
        );
        let dynos = Gauge::default();
        registry.register(
            "dynos",
            "Dynos of the process type, as last read from the platform",
            dynos.clone(),
        );
        let bounds = Family::<Labels, Gauge>::default();
        registry.register(
            "dyno_bounds",
            "min_dynos and max_dynos in force",
            bounds.clone(),
        );
        let scale_actions = Family::<Labels, Counter>::default();
        registry.register(
            "scale_actions",
            "Scales made, by direction",
            scale_actions.clone(),
        );
        let api_errors = Family::<Labels, Counter>::default();
        registry.register(
            "api_errors",
            "Failed platform calls, by kind",
            api_errors.clone(),
        );
        registry.register_collector(Box::new(NotificationCounts(notifications)));
        Metrics {
            registry,
            heartbeats,
            heartbeat_latency,
            router_requests,
            router_responses,
            router_errors,
            router_latency,
            router_requests_per_second,
            drain_frames,
            drain_batches,
            dynos,
            bounds,
            scale_actions,
            api_errors,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    pub fn heartbeat(&self, outcome: &ProbeOutcome, observation: Observation) {
        let result = match observation {
            Observation::Fail => "fail",
            Observation::Pass => "pass",
            Observation::InBand => "in_band",
            Observation::Misconfigured { .. } => "misconfigured",
        };
        self.heartbeats
            .get_or_create(&labels("result", result))
            .inc();
        match outcome {
            ProbeOutcome::Response { elapsed, .. } | ProbeOutcome::Timeout { elapsed } => {
                self.heartbeat_latency.observe(elapsed.as_secs_f64())
            }
            ProbeOutcome::ConnectError { .. } => {}
        }
    }

    pub fn router_window(&self, stats: &RouterStats) {
        self.router_requests_per_second
            .set(stats.requests_per_second);
        for (kind, quantiles) in [("connect", stats.connect), ("service", stats.service)] {
            let Quantiles {
                p50_ms,
                p95_ms,
                p99_ms,
            } = quantiles.unwrap_or_default();
            for (quantile, ms) in [("0.5", p50_ms), ("0.95", p95_ms), ("0.99", p99_ms)] {
                let labels = vec![
                    ("kind", kind.to_string()),
                    ("quantile", quantile.to_string()),
                ];
                self.router_latency
                    .get_or_create(&labels)
                    .set(ms as f64 / 1000.0);
            }
        }
    }

    pub fn drain_batch(&self, result: &'static str) {
        self.drain_batches
            .get_or_create(&labels("result", result))
            .inc();
    }

    pub fn drain_ingested(&self, counts: &IngestCounts, requests: &[Request]) {
        for (result, count) in [
            ("router", counts.router_lines),
            ("other", counts.other_lines),
            ("malformed", counts.malformed_frames),
            ("bad_router_line", counts.bad_router_lines),
        ] {
            if count > 0 {
                self.drain_frames
                    .get_or_create(&labels("result", result))
                    .inc_by(count);
            }
        }
        self.router_requests.inc_by(requests.len() as u64);
        // Few distinct statuses and codes per batch: count them before touching the families.
        let mut statuses: Vec<(u16, u64)> = Vec::new();
        let mut codes: Vec<(u8, u64)> = Vec::new();
        for request in requests {
            bump(&mut statuses, request.status);
            if let Some(code) = request.code {
                bump(&mut codes, code);
            }
        }
        for (status, count) in statuses {
            self.router_responses
                .get_or_create(&labels("status", status.to_string()))
                .inc_by(count);
        }
        for (code, count) in codes {
            self.router_errors
                .get_or_create(&labels("code", format!("H{code:02}")))
                .inc_by(count);
        }
    }

    pub fn dynos(&self, quantity: u32) {
        self.dynos.set(quantity as i64);
    }

    pub fn bounds(&self, min: u32, max: u32) {
        self.bounds
            .get_or_create(&labels("bound", "min"))
            .set(min as i64);
        self.bounds
            .get_or_create(&labels("bound", "max"))
            .set(max as i64);
    }

    pub fn scaled(&self, from: u32, to: u32) {
        let direction = if to > from { "up" } else { "down" };
        self.scale_actions
            .get_or_create(&labels("direction", direction))
            .inc();
        self.dynos(to);
    }

    pub fn api_error(&self, kind: &'static str) {
        self.api_errors.get_or_create(&labels("kind", kind)).inc();
    }
}

fn bump<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, count)) => *count += 1,
        None => counts.push((key, 1)),
    }
}

/// Reads the dispatcher's per-backend counts at scrape time, so the notifier crate needs no
/// knowledge of Prometheus.
#[derive(Debug)]
struct NotificationCounts(Vec<(&'static str, Arc<DeliveryCounts>)>);

impl Collector for NotificationCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type Read = fn(&DeliveryCounts) -> u64;
        let families: [(&str, &str, Read); 4] = [
            (
                "notifications_sent",
                "Notifications delivered, by backend",
                |counts| counts.delivered.load(Ordering::Relaxed),
            ),
            (
                "notifications_failed",
                "Notifications a backend failed to deliver, by backend",
                |counts| counts.failed.load(Ordering::Relaxed),
            ),
            (
                "notifications_dropped",
                "Notifications dropped because a backend's queue was full, by backend",
                |counts| counts.dropped.load(Ordering::Relaxed),
            ),
            (
                "notification_recipients_refused",
                "Recipients a server refused while the others got the notification, by backend",
                |counts| counts.recipients_refused.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, read) in families {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (backend, counts) in &self.0 {
                let labels = labels("backend", *backend);
                let family = metric.encode_family(&labels)?;
                ConstCounter::new(read(counts)).encode(family)?;
            }
        }
        Ok(())
    }
}
