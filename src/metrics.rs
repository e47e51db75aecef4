//! The Prometheus metrics (prometheus-client): what the loops and the drain count, encoded for
//! `GET /metrics` as OpenMetrics or, for a client that asks for it, Prometheus' classic text
//! format 0.0.4 ([`negotiate`]).
//!
//! One [`WorkerMetrics`] (one registry) per worker; each app counts through an [`AppMetrics`],
//! which is that registry plus the app's labels (`app`, `process_type`), so an app costs a few
//! label sets in shared families, not a registry of its own. This module owns the names, help
//! texts and labels of every metric and the small methods that update them from the loop's
//! values. It never decides anything and does no I/O; every update is a few atomic operations
//! under a read lock, so the loops and the drain never wait on a scrape.
//!
//! Every family a healthy worker may not have used yet (router, drain, API errors, scales)
//! has zero-valued series from the moment an app is added, so `absent()` alerts stay quiet
//! and `increase()` sees the first event.

use crate::decision::Observation;
use crate::router_log::{IngestCounts, Quantiles, Request, RouterStats};
use autoscalebot_backends::notify::DeliveryCounts;
use autoscalebot_backends::probe::ProbeOutcome;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The content type of [`WorkerMetrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic text format ([`WorkerMetrics::encode_as`]).
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `kind`s of `api_errors_total`: every [`ScaleError::kind`], each counted from zero.
///
/// [`ScaleError::kind`]: autoscalebot_backends::scaler::ScaleError::kind
pub const API_ERROR_KINDS: [&str; 10] = [
    "unauthorized",
    "forbidden",
    "not_found",
    "rate_limit",
    "status",
    "timeout",
    "transport",
    "bad_answer",
    "hook",
    "shutting_down",
];
/// Router error codes counted from zero: the ones that say the app is short of dynos or down
/// (H10 app crashed, H12 request timeout, H13 connection closed, H14 no web dynos). Others
/// appear at their first line.
const ZEROED_ROUTER_ERRORS: [&str; 4] = ["H10", "H12", "H13", "H14"];
/// `drain_batches_total` results that belong to an app, and those that belong to none.
const APP_DRAIN_BATCH_RESULTS: [&str; 5] = [
    "accepted",
    "duplicate",
    "unauthorized",
    "rate_limited",
    "wrong_content_type",
];
/// Why the HTTP server refused a request or a connection (`http_refusals_total`).
const HTTP_REFUSAL_REASONS: [&str; 7] = [
    "unauthorized",
    "timeout",
    "too_large",
    "rate_limited",
    "header_timeout",
    "header_too_large",
    "over_capacity",
];
const WORKER_DRAIN_BATCH_RESULTS: [&str; 2] = ["unknown_app", "too_large"];
const DRAIN_FRAME_RESULTS: [&str; 4] = ["router", "other", "malformed", "bad_router_line"];
/// The router latency percentiles, as the `percentile` label says them.
const PERCENTILES: [&str; 3] = ["p50", "p95", "p99"];

/// What a scraper gets from `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0: the default.
    OpenMetrics,
    /// Prometheus' classic text format 0.0.4, for clients that ask for `text/plain`.
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => CONTENT_TYPE,
            Format::Classic => CLASSIC_CONTENT_TYPE,
        }
    }
}

/// Chooses the format from an `Accept` header: the servable media range with the highest
/// `q`, OpenMetrics on a tie; OpenMetrics when nothing servable is asked for (no header,
/// `*/*`, or only types the worker does not speak), so a scrape is never refused.
///
/// By hand: the rule is a dozen lines, and the HTTP crates in use parse `Accept` only into
/// raw strings.
pub fn negotiate(accept: Option<&str>) -> Format {
    let mut best: Option<(f32, Format)> = None;
    for range in accept.unwrap_or_default().split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
        let format = match media_type.as_str() {
            "application/openmetrics-text" => Format::OpenMetrics,
            "text/plain" => Format::Classic,
            _ => continue,
        };
        let q = parts
            .filter_map(|param| param.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, value)| value.trim().parse::<f32>().ok());
        let Some(q) = q.filter(|q| *q > 0.0) else {
            continue;
        };
        let better = match best {
            None => true,
            Some((best_q, best_format)) => {
                q > best_q
                    || (q == best_q && format == Format::OpenMetrics && best_format != format)
            }
        };
        if better {
            best = Some((q, format));
        }
    }
    best.map_or(Format::OpenMetrics, |(_, format)| format)
}

/// Rewrites prometheus-client's OpenMetrics text as the classic text format 0.0.4: a
/// counter's family is named with its `_total` (`# TYPE x_total counter`, as its samples
/// are), `unknown` is `untyped`, and `# UNIT` and `# EOF` go. Samples are unchanged: this
/// registry has no exemplars, `_created` samples or info metrics.
///
/// By hand: prometheus-client encodes OpenMetrics only, and the two formats differ in
/// exactly these header lines for the metric types used here.
fn openmetrics_to_classic(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_string(), "untyped"),
                other => (name.to_string(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `app` and `process_type`: the labels every series of one app carries. The names are shared
/// (`Arc<str>`), so a series costs a pointer per label, not a copy of the name.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct AppLabels {
    app: Arc<str>,
    process_type: Arc<str>,
}

impl AppLabels {
    pub fn new(app: &str, process_type: &str) -> Self {
        AppLabels {
            app: app.into(),
            process_type: process_type.into(),
        }
    }

    /// For what belongs to no app of the worker (a drain batch posted for an unknown app):
    /// empty values, which Prometheus reads as the labels being absent.
    pub fn none() -> Self {
        AppLabels::new("", "")
    }
}

impl EncodeLabelSet for AppLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let labels = [
            ("app", self.app.as_ref()),
            ("process_type", self.process_type.as_ref()),
        ];
        EncodeLabelSet::encode(&labels, encoder)
    }
}

/// One more label after the app's: static for most (`result="fail"`), owned for a few
/// (`status="503"`).
type Label = [(&'static str, Cow<'static, str>); 1];
type Keyed = (AppLabels, Label);
/// `kind` and `percentile` of `router_latency`.
type KindQuantile = (AppLabels, [(&'static str, &'static str); 2]);
/// Each app's notification lanes: the backend's name and its delivery counts.
type Lanes = Arc<Mutex<Vec<(&'static str, Arc<DeliveryCounts>)>>>;

fn label(name: &'static str, value: impl Into<Cow<'static, str>>) -> Label {
    [(name, value.into())]
}

fn heartbeat_histogram() -> Histogram {
    // 5 ms to about 40 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The worker's registry: one family per metric, with a series per app (and label values).
#[derive(Debug)]
pub struct WorkerMetrics {
    registry: Registry,
    heartbeats: Family<Keyed, Counter>,
    heartbeat_latency: Family<AppLabels, Histogram>,
    router_requests: Family<AppLabels, Counter>,
    router_responses: Family<Keyed, Counter>,
    router_errors: Family<Keyed, Counter>,
    router_latency: Family<KindQuantile, Gauge<f64, AtomicU64>>,
    router_requests_per_second: Family<AppLabels, Gauge<f64, AtomicU64>>,
    queue_jobs: Family<AppLabels, Gauge>,
    queue_oldest_job_age: Family<AppLabels, Gauge<f64, AtomicU64>>,
    drain_frames: Family<Keyed, Counter>,
    drain_batches: Family<Keyed, Counter>,
    dynos: Family<AppLabels, Gauge>,
    bounds: Family<Keyed, Gauge>,
    scale_actions: Family<Keyed, Counter>,
    api_errors: Family<Keyed, Counter>,
    http_refusals: Family<[(&'static str, &'static str); 1], Counter>,
    /// Every app's notification lanes, summed by backend at each scrape.
    notifications: Lanes,
}

impl WorkerMetrics {
    /// The registry, with the notification counts of every app's backends read at every scrape.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("autoscalebot");
        let heartbeats = Family::default();
        registry.register(
            "heartbeats",
            "Heartbeats by result: fail, pass, in_band, misconfigured",
            heartbeats.clone(),
        );
        let heartbeat_latency =
            Family::<AppLabels, Histogram>::new_with_constructor(heartbeat_histogram);
        registry.register_with_unit(
            "heartbeat_latency",
            "Heartbeat response time, body included (timeouts at the timeout)",
            Unit::Seconds,
            heartbeat_latency.clone(),
        );
        let router_requests = Family::default();
        registry.register(
            "router_requests",
            "Router lines received through the log drain",
            router_requests.clone(),
        );
        let router_responses = Family::default();
        registry.register(
            "router_responses",
            "Router lines by HTTP status",
            router_responses.clone(),
        );
        let router_errors = Family::default();
        registry.register(
            "router_errors",
            "Router error lines by code (H12 request timeout, H13 connection closed, ...)",
            router_errors.clone(),
        );
        let router_latency = Family::default();
        registry.register_with_unit(
            "router_latency",
            "Percentiles (p50, p95, p99) of connect (queue) and service time over the last router window; NaN without requests",
            Unit::Seconds,
            router_latency.clone(),
        );
        let router_requests_per_second = Family::default();
        registry.register(
            "router_requests_per_second",
            "Requests per second over the last router window",
            router_requests_per_second.clone(),
        );
        // Only for process types scaled on a queue: a web app has no series rather than a 0.
        let queue_jobs = Family::default();
        registry.register(
            "queue_jobs",
            "Jobs waiting in the job queues at the last reading (queue policy)",
            queue_jobs.clone(),
        );
        let queue_oldest_job_age = Family::default();
        registry.register_with_unit(
            "queue_oldest_job_age",
            "How long the oldest job has waited at the last reading; 0 when no job waits (queue policy)",
            Unit::Seconds,
            queue_oldest_job_age.clone(),
        );
        let drain_frames = Family::default();
        registry.register(
            "drain_frames",
            "Log drain frames by result: router, other, malformed, bad_router_line, l2met, bad_l2met_line",
            drain_frames.clone(),
        );
        let drain_batches: Family<Keyed, Counter> = Family::default();
        registry.register(
            "drain_batches",
            "Log drain requests by result: accepted, duplicate, unauthorized, rate_limited, wrong_content_type, unknown_app, too_large",
            drain_batches.clone(),
        );
        let http_refusals: Family<[(&'static str, &'static str); 1], Counter> = Family::default();
        registry.register(
            "http_refusals",
            "HTTP requests and connections refused by reason: unauthorized (401), timeout (408), \
             too_large (413), rate_limited (429), header_timeout and header_too_large (closed \
             while the request head was read), over_capacity (closed: too many connections)",
            http_refusals.clone(),
        );
        let dynos = Family::default();
        registry.register(
            "dynos",
            "Dynos of the process type, as last read from the platform",
            dynos.clone(),
        );
        let bounds = Family::default();
        registry.register(
            "dyno_bounds",
            "min_dynos and max_dynos in force",
            bounds.clone(),
        );
        let scale_actions = Family::default();
        registry.register(
            "scale_actions",
            "Scales made, by direction",
            scale_actions.clone(),
        );
        let api_errors = Family::default();
        registry.register(
            "api_errors",
            "Failed platform calls, by kind",
            api_errors.clone(),
        );
        for result in WORKER_DRAIN_BATCH_RESULTS {
            drain_batches
                .get_or_create(&(AppLabels::none(), label("result", result)))
                .inc_by(0);
        }
        for reason in HTTP_REFUSAL_REASONS {
            http_refusals.get_or_create(&[("reason", reason)]).inc_by(0);
        }
        let notifications = Arc::default();
        registry.register_collector(Box::new(NotificationCounts(Arc::clone(&notifications))));
        Arc::new(WorkerMetrics {
            registry,
            heartbeats,
            heartbeat_latency,
            router_requests,
            router_responses,
            router_errors,
            router_latency,
            router_requests_per_second,
            queue_jobs,
            queue_oldest_job_age,
            drain_frames,
            drain_batches,
            dynos,
            bounds,
            scale_actions,
            api_errors,
            http_refusals,
            notifications,
        })
    }

    /// The handle one app counts through; its backends' delivery counts join the worker's.
    pub fn app(
        self: &Arc<Self>,
        app: &str,
        process_type: &str,
        notifications: Vec<(&'static str, Arc<DeliveryCounts>)>,
    ) -> AppMetrics {
        if !notifications.is_empty() {
            self.notifications.lock().unwrap().extend(notifications);
        }
        let metrics = AppMetrics {
            worker: Arc::clone(self),
            labels: AppLabels::new(app, process_type),
            every_beat: Arc::default(),
        };
        metrics.zero_series();
        metrics
    }

    /// The OpenMetrics text exposition, every app's series.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Every app's series in `format`.
    pub fn encode_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.encode(),
            Format::Classic => openmetrics_to_classic(&self.encode()),
        }
    }

    /// A drain batch refused before any app took it: `unknown_app` (`/logs/{app}` for an app
    /// the worker does not scale) or `too_large` (a body over the limit).
    pub fn drain_batch_refused(&self, result: &'static str) {
        self.drain_batches
            .get_or_create(&(AppLabels::none(), label("result", result)))
            .inc();
    }

    /// A request or connection the HTTP server refused, by `reason` (see the family's help).
    pub fn http_refused(&self, reason: &'static str) {
        self.http_refusals
            .get_or_create(&[("reason", reason)])
            .inc();
    }
}

/// One app's counts in the worker's registry.
#[derive(Debug, Clone)]
pub struct AppMetrics {
    worker: Arc<WorkerMetrics>,
    labels: AppLabels,
    every_beat: Arc<EveryBeat>,
}

/// The series an app updates on every beat, each looked up in its family once: a lookup
/// hashes the labels under the family's lock, while a handle is the series' own atomic (the
/// family keeps the same series, so a scrape sees every update).
#[derive(Debug, Default)]
struct EveryBeat {
    /// By result: fail, pass, in_band, misconfigured.
    heartbeats: [OnceLock<Counter>; 4],
    latency: OnceLock<Histogram>,
    dynos: OnceLock<Gauge>,
    /// min, max.
    bounds: [OnceLock<Gauge>; 2],
    /// Only for a process type scaled on its queue.
    queue_jobs: OnceLock<Gauge>,
    queue_oldest_job_age: OnceLock<Gauge<f64, AtomicU64>>,
}

impl AppMetrics {
    /// The registry this app counts in (the server encodes it).
    pub fn worker(&self) -> &Arc<WorkerMetrics> {
        &self.worker
    }

    fn keyed(&self, label: Label) -> Keyed {
        (self.labels.clone(), label)
    }

    /// The series of events a healthy app may not have had yet, at zero (see the module doc).
    /// The router's gauges start empty: NaN latency, 0 requests per second.
    fn zero_series(&self) {
        let worker = &self.worker;
        worker.router_requests.get_or_create(&self.labels).inc_by(0);
        for code in ZEROED_ROUTER_ERRORS {
            worker
                .router_errors
                .get_or_create(&self.keyed(label("code", code)))
                .inc_by(0);
        }
        for result in APP_DRAIN_BATCH_RESULTS {
            worker
                .drain_batches
                .get_or_create(&self.keyed(label("result", result)))
                .inc_by(0);
        }
        for result in DRAIN_FRAME_RESULTS {
            worker
                .drain_frames
                .get_or_create(&self.keyed(label("result", result)))
                .inc_by(0);
        }
        for kind in API_ERROR_KINDS {
            worker
                .api_errors
                .get_or_create(&self.keyed(label("kind", kind)))
                .inc_by(0);
        }
        for direction in ["up", "down"] {
            worker
                .scale_actions
                .get_or_create(&self.keyed(label("direction", direction)))
                .inc_by(0);
        }
        self.router_window(&RouterStats::default());
    }

    pub fn heartbeat(&self, outcome: &ProbeOutcome, observation: Observation) {
        let (index, result) = match observation {
            Observation::Fail => (0, "fail"),
            Observation::Pass => (1, "pass"),
            Observation::InBand => (2, "in_band"),
            Observation::Misconfigured { .. } => (3, "misconfigured"),
        };
        let worker = &self.worker;
        self.every_beat.heartbeats[index]
            .get_or_init(|| {
                worker
                    .heartbeats
                    .get_or_create(&self.keyed(label("result", result)))
                    .clone()
            })
            .inc();
        match outcome {
            ProbeOutcome::Response { elapsed, .. } | ProbeOutcome::Timeout { elapsed } => self
                .every_beat
                .latency
                .get_or_init(|| worker.heartbeat_latency.get_or_create(&self.labels).clone())
                .observe(elapsed.as_secs_f64()),
            ProbeOutcome::ConnectError { .. } => {}
        }
    }

    pub fn router_window(&self, stats: &RouterStats) {
        let worker = &self.worker;
        worker
            .router_requests_per_second
            .get_or_create(&self.labels)
            .set(stats.requests_per_second);
        for (kind, quantiles) in [("connect", stats.connect), ("service", stats.service)] {
            // No requests, no percentile: NaN, as a Prometheus summary says it, not 0 s.
            let seconds = match quantiles {
                Some(Quantiles {
                    p50_ms,
                    p95_ms,
                    p99_ms,
                }) => [p50_ms, p95_ms, p99_ms].map(|ms| ms as f64 / 1000.0),
                None => [f64::NAN; 3],
            };
            for (percentile, value) in PERCENTILES.into_iter().zip(seconds) {
                let key = (
                    self.labels.clone(),
                    [("kind", kind), ("percentile", percentile)],
                );
                worker.router_latency.get_or_create(&key).set(value);
            }
        }
    }

    pub fn drain_batch(&self, result: &'static str) {
        self.worker
            .drain_batches
            .get_or_create(&self.keyed(label("result", result)))
            .inc();
    }

    pub fn drain_ingested(&self, counts: &IngestCounts, requests: &[Request]) {
        let worker = &self.worker;
        for (result, count) in [
            ("router", counts.router_lines),
            ("other", counts.other_lines),
            ("malformed", counts.malformed_frames),
            ("bad_router_line", counts.bad_router_lines),
            ("l2met", counts.l2met_lines),
            ("bad_l2met_line", counts.bad_l2met_lines),
        ] {
            if count > 0 {
                worker
                    .drain_frames
                    .get_or_create(&self.keyed(label("result", result)))
                    .inc_by(count);
            }
        }
        worker
            .router_requests
            .get_or_create(&self.labels)
            .inc_by(requests.len() as u64);
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
            worker
                .router_responses
                .get_or_create(&self.keyed(label("status", status.to_string())))
                .inc_by(count);
        }
        for (code, count) in codes {
            worker
                .router_errors
                .get_or_create(&self.keyed(label("code", format!("H{code:02}"))))
                .inc_by(count);
        }
    }

    /// A reading of the job queues: the jobs waiting (when the source counts them) and the
    /// oldest job's wait (when it tells it).
    pub fn queue(&self, jobs: Option<u64>, oldest_age: Option<std::time::Duration>) {
        if let Some(jobs) = jobs {
            let jobs = i64::try_from(jobs).unwrap_or(i64::MAX);
            self.every_beat
                .queue_jobs
                .get_or_init(|| self.worker.queue_jobs.get_or_create(&self.labels).clone())
                .set(jobs);
        }
        let ages = &self.every_beat.queue_oldest_job_age;
        match oldest_age {
            Some(age) => {
                ages.get_or_init(|| {
                    self.worker
                        .queue_oldest_job_age
                        .get_or_create(&self.labels)
                        .clone()
                })
                .set(age.as_secs_f64());
            }
            // A source that tells ages tells none when no job waits: the wait is then 0, not
            // the last job's.
            None => {
                if let Some(gauge) = ages.get() {
                    gauge.set(0.0);
                }
            }
        }
    }

    pub fn dynos(&self, quantity: u32) {
        self.every_beat
            .dynos
            .get_or_init(|| self.worker.dynos.get_or_create(&self.labels).clone())
            .set(quantity as i64);
    }

    pub fn bounds(&self, min: u32, max: u32) {
        for (index, (bound, value)) in [("min", min), ("max", max)].into_iter().enumerate() {
            self.every_beat.bounds[index]
                .get_or_init(|| {
                    self.worker
                        .bounds
                        .get_or_create(&self.keyed(label("bound", bound)))
                        .clone()
                })
                .set(value as i64);
        }
    }

    pub fn scaled(&self, from: u32, to: u32) {
        let direction = if to > from { "up" } else { "down" };
        self.worker
            .scale_actions
            .get_or_create(&self.keyed(label("direction", direction)))
            .inc();
        self.dynos(to);
    }

    pub fn api_error(&self, kind: &'static str) {
        self.worker
            .api_errors
            .get_or_create(&self.keyed(label("kind", kind)))
            .inc();
    }
}

fn bump<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, count)) => *count += 1,
        None => counts.push((key, 1)),
    }
}

/// `(backend, total)` in the order backends were first named: every app's lanes of one
/// backend summed, so a worker of 10,000 apps has one series per backend, not per app.
fn totals_by_backend(
    lanes: &[(&'static str, Arc<DeliveryCounts>)],
    read: impl Fn(&DeliveryCounts) -> u64,
) -> Vec<(&'static str, u64)> {
    let mut totals: Vec<(&'static str, u64)> = Vec::new();
    for (backend, counts) in lanes {
        let value = read(counts);
        match totals.iter_mut().find(|(name, _)| name == backend) {
            Some((_, total)) => *total += value,
            None => totals.push((backend, value)),
        }
    }
    totals
}

/// Reads the dispatchers' per-backend counts at scrape time, so the notifier crate needs no
/// knowledge of Prometheus.
#[derive(Debug)]
struct NotificationCounts(Lanes);

impl Collector for NotificationCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type Read = fn(&DeliveryCounts) -> u64;
        let families: [(&str, &str, Read); 4] = [
            (
                "notifications_sent",
                "Notifications delivered, by backend, all apps together",
                |counts| counts.delivered.load(Ordering::Relaxed),
            ),
            (
                "notifications_failed",
                "Notifications a backend failed to deliver, by backend, all apps together",
                |counts| counts.failed.load(Ordering::Relaxed),
            ),
            (
                "notifications_dropped",
                "Notifications dropped because a backend's queue was full, by backend, all apps together",
                |counts| counts.dropped.load(Ordering::Relaxed),
            ),
            (
                "notification_recipients_refused",
                "Recipients a server refused while the others got the notification, by backend",
                |counts| counts.recipients_refused.load(Ordering::Relaxed),
            ),
        ];
        let lanes = self.0.lock().unwrap().clone();
        for (name, help, read) in families {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (backend, total) in totals_by_backend(&lanes, read) {
                let labels = [("backend", backend)];
                let family = metric.encode_family(&labels)?;
                ConstCounter::new(total).encode(family)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample<'a>(text: &'a str, name: &str, labels: &str) -> Option<&'a str> {
        text.lines()
            .find(|line| line.starts_with(&format!("{name}{{{labels}}} ")))
            .map(|line| line.rsplit(' ').next().unwrap())
    }

    #[test]
    fn each_apps_series_carry_its_app_and_process_type() {
        let worker = WorkerMetrics::new();
        let web = worker.app("shop", "web", Vec::new());
        let jobs = worker.app("shop", "worker", Vec::new());
        let outcome = ProbeOutcome::Timeout {
            elapsed: Duration::from_millis(30),
        };
        web.heartbeat(&outcome, Observation::Fail);
        web.heartbeat(&outcome, Observation::Fail);
        jobs.heartbeat(&outcome, Observation::Pass);
        web.dynos(3);
        jobs.bounds(0, 4);
        let text = worker.encode();
        let shop_web = "app=\"shop\",process_type=\"web\"";
        let shop_jobs = "app=\"shop\",process_type=\"worker\"";
        assert_eq!(
            sample(
                &text,
                "autoscalebot_heartbeats_total",
                &format!("{shop_web},result=\"fail\"")
            ),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "autoscalebot_heartbeats_total",
                &format!("{shop_jobs},result=\"pass\"")
            ),
            Some("1")
        );
        assert_eq!(
            sample(
                &text,
                "autoscalebot_heartbeats_total",
                &format!("{shop_jobs},result=\"fail\"")
            ),
            None
        );
        assert_eq!(sample(&text, "autoscalebot_dynos", shop_web), Some("3"));
        assert_eq!(
            sample(
                &text,
                "autoscalebot_dyno_bounds",
                &format!("{shop_jobs},bound=\"max\"")
            ),
            Some("4")
        );
        assert_eq!(
            sample(
                &text,
                "autoscalebot_heartbeat_latency_seconds_count",
                shop_web
            ),
            Some("2")
        );
        // One family per metric, however many apps.
        assert_eq!(
            text.matches("# TYPE autoscalebot_heartbeats counter")
                .count(),
            1
        );
    }

    #[test]
    fn a_batch_for_no_app_is_counted_without_an_app() {
        let worker = WorkerMetrics::new();
        worker.drain_batch_refused("unknown_app");
        let text = worker.encode();
        assert_eq!(
            sample(
                &text,
                "autoscalebot_drain_batches_total",
                "app=\"\",process_type=\"\",result=\"unknown_app\""
            ),
            Some("1"),
            "{text}"
        );
    }

    #[test]
    fn notification_counts_are_summed_by_backend_over_every_app() {
        let lane = |delivered: u64| {
            let counts = DeliveryCounts::default();
            counts.delivered.store(delivered, Ordering::Relaxed);
            Arc::new(counts)
        };
        let worker = WorkerMetrics::new();
        let _a = worker.app("a", "web", vec![("log", lane(2)), ("email", lane(1))]);
        let _b = worker.app("b", "web", vec![("log", lane(5))]);
        let text = worker.encode();
        assert_eq!(
            sample(
                &text,
                "autoscalebot_notifications_sent_total",
                "backend=\"log\""
            ),
            Some("7"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "autoscalebot_notifications_sent_total",
                "backend=\"email\""
            ),
            Some("1")
        );
    }

    #[test]
    fn the_format_follows_the_accept_header_and_falls_back_to_openmetrics() {
        use Format::*;
        let cases = [
            (None, OpenMetrics),
            (Some(""), OpenMetrics),
            (Some("*/*"), OpenMetrics),
            (Some("text/plain"), Classic),
            (Some("text/plain; version=0.0.4"), Classic),
            (Some("Text/Plain;Version=0.0.4;charset=utf-8"), Classic),
            (Some("application/openmetrics-text; version=1.0.0"), OpenMetrics),
            (Some("application/json"), OpenMetrics),
            (Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"), OpenMetrics),
            (Some("nonsense;;;q=banana,,"), OpenMetrics),
            // What Prometheus sends: OpenMetrics preferred.
            (Some("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"), OpenMetrics),
            (Some("application/openmetrics-text;q=0.2,text/plain;q=0.9"), Classic),
            (Some("text/plain;q=0, application/json"), OpenMetrics),
            (Some("text/plain;q=0.5,application/openmetrics-text;q=0.5"), OpenMetrics),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn the_classic_format_names_counter_families_with_total_and_drops_openmetrics_lines() {
        let worker = WorkerMetrics::new();
        let web = worker.app("shop", "web", Vec::new());
        web.scaled(1, 2);
        web.heartbeat(
            &ProbeOutcome::Timeout {
                elapsed: Duration::from_millis(30),
            },
            Observation::Fail,
        );
        let text = worker.encode_as(Format::Classic);
        assert!(
            text.contains("# TYPE autoscalebot_scale_actions_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP autoscalebot_scale_actions_total Scales made"),
            "{text}"
        );
        assert!(text.contains("# TYPE autoscalebot_dynos gauge\n"));
        assert!(text.contains("# TYPE autoscalebot_heartbeat_latency_seconds histogram\n"));
        assert!(
            !text.contains("# UNIT") && !text.contains("# EOF"),
            "{text}"
        );
        assert!(!text.contains("# TYPE autoscalebot_scale_actions counter"));
        assert_eq!(
            sample(
                &text,
                "autoscalebot_scale_actions_total",
                "app=\"shop\",process_type=\"web\",direction=\"up\""
            ),
            Some("1")
        );
        // The samples are the OpenMetrics ones, line for line.
        let samples = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(samples(&text), samples(&worker.encode()));
    }

    #[test]
    fn a_new_app_has_every_event_family_at_zero_and_no_reserved_labels() {
        let worker = WorkerMetrics::new();
        let _web = worker.app("shop", "web", Vec::new());
        let text = worker.encode();
        let app = "app=\"shop\",process_type=\"web\"";
        assert_eq!(
            sample(&text, "autoscalebot_router_requests_total", app),
            Some("0")
        );
        assert_eq!(
            sample(
                &text,
                "autoscalebot_router_errors_total",
                &format!("{app},code=\"H12\"")
            ),
            Some("0")
        );
        for kind in API_ERROR_KINDS {
            assert_eq!(
                sample(
                    &text,
                    "autoscalebot_api_errors_total",
                    &format!("{app},kind=\"{kind}\"")
                ),
                Some("0"),
                "{kind}"
            );
        }
        for (family, label) in [
            ("autoscalebot_drain_batches_total", "result=\"accepted\""),
            ("autoscalebot_drain_frames_total", "result=\"router\""),
            ("autoscalebot_scale_actions_total", "direction=\"down\""),
        ] {
            assert_eq!(
                sample(&text, family, &format!("{app},{label}")),
                Some("0"),
                "{family}"
            );
        }
        assert_eq!(
            sample(
                &text,
                "autoscalebot_drain_batches_total",
                "app=\"\",process_type=\"\",result=\"too_large\""
            ),
            Some("0")
        );
        assert_eq!(
            sample(
                &text,
                "autoscalebot_router_latency_seconds",
                &format!("{app},kind=\"service\",percentile=\"p95\"")
            ),
            Some("NaN"),
            "no requests, no percentile"
        );
        assert!(!text.contains("quantile="), "{text}");
    }

    #[test]
    fn the_queue_reading_is_a_gauge_only_where_a_queue_is_read() {
        let worker = WorkerMetrics::new();
        let _web = worker.app("shop", "web", Vec::new());
        let jobs = worker.app("shop", "worker", Vec::new());
        jobs.queue(Some(280), Some(Duration::from_millis(4500)));
        let text = worker.encode();
        let on_worker = "app=\"shop\",process_type=\"worker\"";
        assert_eq!(
            sample(&text, "autoscalebot_queue_jobs", on_worker),
            Some("280")
        );
        assert_eq!(
            sample(
                &text,
                "autoscalebot_queue_oldest_job_age_seconds",
                on_worker
            ),
            Some("4.5")
        );
        jobs.queue(Some(0), None);
        let text = worker.encode();
        assert_eq!(
            sample(
                &text,
                "autoscalebot_queue_oldest_job_age_seconds",
                on_worker
            ),
            Some("0.0"),
            "no job waits: no wait"
        );
        let on_web = "app=\"shop\",process_type=\"web\"";
        assert_eq!(sample(&text, "autoscalebot_queue_jobs", on_web), None);
    }

    #[test]
    fn router_percentiles_are_gauges_in_seconds() {
        let worker = WorkerMetrics::new();
        let web = worker.app("shop", "web", Vec::new());
        let quantiles = Quantiles {
            p50_ms: 20,
            p95_ms: 450,
            p99_ms: 1200,
        };
        web.router_window(&RouterStats {
            requests: 10,
            requests_per_second: 2.5,
            service: Some(quantiles),
            connect: Some(quantiles),
            ..RouterStats::default()
        });
        let text = worker.encode();
        let app = "app=\"shop\",process_type=\"web\"";
        assert_eq!(
            sample(
                &text,
                "autoscalebot_router_latency_seconds",
                &format!("{app},kind=\"service\",percentile=\"p95\"")
            ),
            Some("0.45")
        );
        assert_eq!(
            sample(&text, "autoscalebot_router_requests_per_second", app),
            Some("2.5")
        );
    }

    #[test]
    fn every_scale_error_kind_is_counted_from_zero() {
        use autoscalebot_backends::scaler::ScaleError;
        // A new variant breaks this match, and so asks for its kind in API_ERROR_KINDS.
        let every = |error: &ScaleError| match error {
            ScaleError::Unauthorized { .. }
            | ScaleError::Forbidden { .. }
            | ScaleError::NotFound { .. }
            | ScaleError::RateLimited { .. }
            | ScaleError::Status { .. }
            | ScaleError::Timeout(_)
            | ScaleError::Transport(_)
            | ScaleError::BadAnswer(_)
            | ScaleError::Hook(_)
            | ScaleError::ShuttingDown { .. } => error.kind(),
        };
        let id = String::new;
        let errors = [
            ScaleError::Unauthorized { id: id(), hint: "" },
            ScaleError::Forbidden { id: id(), hint: "" },
            ScaleError::NotFound { id: id(), hint: "" },
            ScaleError::RateLimited {
                id: id(),
                retry_after: None,
            },
            ScaleError::Status {
                status: 500,
                id: id(),
                message: id(),
            },
            ScaleError::Timeout(Duration::from_secs(1)),
            ScaleError::Transport(id()),
            ScaleError::BadAnswer(id()),
            ScaleError::Hook(id()),
            ScaleError::ShuttingDown { last: None },
        ];
        let kinds: Vec<&str> = errors.iter().map(every).collect();
        assert_eq!(kinds, API_ERROR_KINDS);
    }
}
