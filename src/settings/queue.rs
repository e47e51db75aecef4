//! The job-queue section: where a worker process type's jobs wait (`queue_url`: Redis or
//! PostgreSQL, the URL's scheme says which; or `queue_metric`: the app's l2met sample through
//! the log drain), which Redis lists or which query, and the queue
//! policy's knobs (`queue_target_latency`, `queue_job_duration`, `queue_worker_concurrency`;
//! the scale-down delay is the policies' shared `scale_down_delay`). It is read only with
//! `policy = "queue"`, and then it must name a source. It must not read keys outside its
//! section, and it opens no connection: a source is built by the loop.

use crate::policy::queue::{
    QueueConfig, DEFAULT_JOB_DURATION, DEFAULT_TARGET_LATENCY, DEFAULT_WORKER_CONCURRENCY,
};
use autoscalebot_backends::queue::{self, postgres::looks_read_only, QueueSourceConfig};
use autoscalebot_backends::settings::{
    fields, named, rows, variable_for, Check, Raw, SecretRaw, Table, HIDDEN,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one reading may take by default: a count on an indexed table or a few `LLEN`s
/// answer in milliseconds; five seconds is an outage, not a slow query.
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The section as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    queue_url: SecretRaw,
    queues: Raw,
    queue_sidekiq_latency: Raw,
    queue_query: Raw,
    queue_query_timeout: Raw,
    queue_target_latency: Raw,
    queue_job_duration: Raw,
    queue_worker_concurrency: Raw,
    queue_metric: Raw,
    queue_latency_metric: Raw,
}

/// The checked section, with `policy = "queue"`.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub source: QueueFrom,
    pub target_latency: Duration,
    pub job_duration: Duration,
    pub worker_concurrency: u32,
}

/// Where the queue is read.
#[derive(Debug, Clone)]
pub enum QueueFrom {
    /// Redis or PostgreSQL, directly (the URL is a secret).
    Url(QueueSourceConfig),
    /// The app's own l2met samples through the log drain: the newest of `depth` (jobs waiting)
    /// and of `latency` (the oldest job's wait, in seconds).
    Drain {
        depth: Option<String>,
        latency: Option<String>,
    },
}

impl QueueSettings {
    /// The policy's knobs, with the policies' `scale_down_delay`.
    pub fn policy(&self, scale_down_delay: Duration) -> QueueConfig {
        QueueConfig {
            target_latency: self.target_latency,
            job_duration: self.job_duration,
            worker_concurrency: self.worker_concurrency,
            scale_down_delay,
        }
    }
}

impl RawQueue {
    pub(super) fn take(table: &mut Table, check: &Check) -> Self {
        check.section(table, "")
    }

    pub(super) fn keys() -> &'static [&'static str] {
        fields::<RawQueue>()
    }

    /// `Some(None)`: no queue (another policy, and no queue key set); `None`: a problem.
    /// `drain_on`: a log drain password is set, so l2met samples can come in.
    pub(super) fn check(
        &self,
        check: &mut Check,
        queue_policy: bool,
        drain_on: bool,
    ) -> Option<Option<QueueSettings>> {
        let mark = check.mark();
        if !queue_policy {
            let keys = named::<RawQueue>("");
            for (raw, key) in [
                (self.queue_url.is_set(), keys.queue_url.key()),
                (self.queues.is_set(), keys.queues.key()),
                (self.queue_query.is_set(), keys.queue_query.key()),
                (self.queue_metric.is_set(), keys.queue_metric.key()),
                (
                    self.queue_latency_metric.is_set(),
                    keys.queue_latency_metric.key(),
                ),
            ] {
                if raw {
                    check.problem(
                        key,
                        None,
                        None,
                        "policy = \"queue\" to be set as well: the job queue is read only by the queue policy",
                    );
                }
            }
            return (!check.failed_since(mark)).then_some(None);
        }
        let depth_metric = self
            .queue_metric
            .text(check)
            .filter(|name| !name.is_empty());
        let latency_metric = self
            .queue_latency_metric
            .text(check)
            .filter(|name| !name.is_empty());
        let from_drain = depth_metric.is_some() || latency_metric.is_some();
        if from_drain && !drain_on {
            check.problem(
                self.queue_metric.key(),
                None,
                None,
                "a log drain to carry the app's l2met samples: set log_drain_password (and http_port or PORT)",
            );
        }
        let url = self.queue_url.secret(check);
        if from_drain && url.is_some() {
            self.queue_url.bad(
                check,
                "no queue_url with queue_metric: the queue is read either from Redis or PostgreSQL, or from the app's l2met samples",
            );
        }
        let source = match &url {
            None if from_drain => Some("drain"),
            None if !check.has_problem(self.queue_url.key()) => {
                self.queue_url.missing(
                    check,
                    format!(
                        "a URL of the job queue, since policy = \"queue\": {}, such as \"env:REDIS_URL\" (or queue_metric, an l2met sample the app logs)",
                        queue::schemes()
                    ),
                );
                None
            }
            None => None,
            Some(url) => match queue::source_for(url) {
                Some(source) => match (source.check_url)(url) {
                    Ok(()) => Some(source.name),
                    Err(expected) => {
                        self.queue_url.bad(check, expected);
                        None
                    }
                },
                None => {
                    self.queue_url.bad(
                        check,
                        format!("a URL starting with one of {}", queue::schemes()),
                    );
                    None
                }
            },
        };
        let lists = self.queues.string_list(check).unwrap_or_default();
        let sidekiq_latency = self.queue_sidekiq_latency.flag_or(check, false);
        let query = self.queue_query.text(check);
        match source {
            Some("redis") => {
                if lists.iter().all(|list| list.is_empty()) {
                    self.queues.missing(
                        check,
                        "the Redis lists the jobs wait in, such as [\"queue:default\"] (Sidekiq), [\"rq:queue:default\"] (RQ) or [\"celery\"]",
                    );
                }
                if self.queue_query.is_set() {
                    check.problem(
                        self.queue_query.key(),
                        None,
                        None,
                        "no query with a Redis queue_url (queues names its lists)",
                    );
                }
            }
            Some("postgres") => {
                match &query {
                    None => self.queue_query.missing(
                        check,
                        "a read-only query whose one row gives the jobs waiting (and the age of the oldest in seconds), such as \"SELECT count(*) FROM good_jobs WHERE finished_at IS NULL\"",
                    ),
                    Some(text) if !looks_read_only(text) => self.queue_query.bad(
                        check,
                        "a read-only query starting with SELECT or WITH: it runs in a READ ONLY transaction",
                    ),
                    Some(_) => {}
                }
                if self.queues.is_set() || self.queue_sidekiq_latency.is_set() {
                    check.problem(
                        self.queues.key(),
                        None,
                        None,
                        "no Redis lists with a PostgreSQL queue_url (queue_query counts the jobs)",
                    );
                }
            }
            _ => {}
        }
        let timeout = self.queue_query_timeout.timeout_or(
            check,
            DEFAULT_QUERY_TIMEOUT,
            "a duration above 0, such as \"5s\"",
        );
        let target_latency = self.queue_target_latency.timeout_or(
            check,
            DEFAULT_TARGET_LATENCY,
            "how long a job may wait before a worker takes it: a duration above 0, such as \"30s\"",
        );
        let job_duration = self.queue_job_duration.timeout_or(
            check,
            DEFAULT_JOB_DURATION,
            "how long one job takes on average: a duration above 0, such as \"2s\" or \"500ms\"",
        );
        let worker_concurrency = self.queue_worker_concurrency.whole_or(
            check,
            DEFAULT_WORKER_CONCURRENCY,
            1,
            "a whole number of jobs one worker dyno runs at once (Sidekiq's threads, Celery's concurrency), 1 or more",
        );
        if check.failed_since(mark) {
            return None;
        }
        let source = match url {
            None => QueueFrom::Drain {
                depth: depth_metric,
                latency: latency_metric,
            },
            Some(url) => QueueFrom::Url(QueueSourceConfig {
                url,
                lists,
                sidekiq_latency,
                query,
                timeout: timeout?,
            }),
        };
        Some(Some(QueueSettings {
            source,
            target_latency: target_latency?,
            job_duration: job_duration?,
            worker_concurrency: worker_concurrency?,
        }))
    }
}

/// The section's rows for `check`: the knobs' defaults without the queue policy; the URL as
/// `***`.
pub(super) fn rows_of(
    queue: Option<&QueueSettings>,
    variables: &BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    let keys = named::<RawQueue>("");
    let (url, drain) = match queue.map(|queue| &queue.source) {
        Some(QueueFrom::Url(url)) => (Some(url), None),
        Some(QueueFrom::Drain { depth, latency }) => (None, Some((depth, latency))),
        None => (None, None),
    };
    let shown = RawQueue {
        queue_url: match url {
            Some(_) => SecretRaw::shown(
                HIDDEN.to_string(),
                variable_for(variables, keys.queue_url.key()),
            ),
            None => SecretRaw::default(),
        },
        queues: Raw::optional(url.filter(|url| !url.lists.is_empty()), |url| {
            Raw::shown(format!("{:?}", url.lists))
        }),
        queue_sidekiq_latency: Raw::shown(url.is_some_and(|url| url.sidekiq_latency).to_string()),
        queue_query: Raw::optional(url.and_then(|url| url.query.as_deref()), Raw::quoted),
        queue_query_timeout: Raw::duration(url.map_or(DEFAULT_QUERY_TIMEOUT, |url| url.timeout)),
        queue_target_latency: Raw::duration(
            queue.map_or(DEFAULT_TARGET_LATENCY, |queue| queue.target_latency),
        ),
        queue_job_duration: Raw::duration(
            queue.map_or(DEFAULT_JOB_DURATION, |queue| queue.job_duration),
        ),
        queue_worker_concurrency: Raw::shown(
            queue
                .map_or(DEFAULT_WORKER_CONCURRENCY, |queue| queue.worker_concurrency)
                .to_string(),
        ),
        queue_metric: Raw::optional(drain.and_then(|(depth, _)| depth.as_deref()), Raw::quoted),
        queue_latency_metric: Raw::optional(
            drain.and_then(|(_, latency)| latency.as_deref()),
            Raw::quoted,
        ),
    };
    rows("", &shown)
}
