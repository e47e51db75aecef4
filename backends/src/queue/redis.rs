//! Redis lists as job queues: Sidekiq's `queue:NAME`, RQ's `rq:queue:NAME`, Celery's `celery`.
//! A reading is one pipeline: `LLEN` of each list and, with Sidekiq's latency, `LINDEX list -1`
//! (Sidekiq pushes on the left and takes from the right, so the last element is the oldest
//! job) whose JSON `enqueued_at` (seconds as a float up to Sidekiq 7, milliseconds from 8)
//! gives its age.
//!
//! One multiplexed connection is kept and made again after an error; every reading is bounded
//! by the timeout. An element that is not a Sidekiq job, or a key that is not a list, is an
//! error (the size holds), never a zero.

use super::{explain, within, QueueReading, QueueSource, QueueSourceConfig, Scrubbed};
use crate::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

pub struct RedisQueue {
    client: redis::Client,
    lists: Vec<String>,
    sidekiq_latency: bool,
    timeout: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
    scrubbed: Scrubbed,
    description: String,
}

/// Parses a Redis URL without connecting.
pub fn check_url(url: &Secret) -> Result<(), String> {
    open(url).map(drop)
}

fn open(url: &Secret) -> Result<redis::Client, String> {
    redis::Client::open(url.expose().trim()).map_err(|error| {
        format!(
            "a Redis URL such as \"redis://:password@host:6379/0\" ({})",
            Scrubbed::new(url).clean(&explain(&error))
        )
    })
}

pub fn build(config: &QueueSourceConfig) -> Result<Arc<dyn QueueSource>, String> {
    let scrubbed = Scrubbed::new(&config.url);
    let client = open(&config.url)?;
    if config.lists.is_empty() {
        return Err("at least one Redis list to read".to_string());
    }
    let host = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("redis {host}:{port}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("rediss {host}:{port}"),
        other => format!("redis {other}"),
    };
    let description = format!("{host} ({})", config.lists.join(", "));
    Ok(Arc::new(RedisQueue {
        client,
        lists: config.lists.clone(),
        sidekiq_latency: config.sidekiq_latency,
        timeout: config.timeout,
        connection: Mutex::new(None),
        description: scrubbed.clean(&description),
        scrubbed,
    }))
}

impl RedisQueue {
    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        let mut kept = self.connection.lock().await;
        if let Some(connection) = kept.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| format!("connecting: {}", explain(&error)))?;
        *kept = Some(connection.clone());
        Ok(connection)
    }

    async fn read_once(&self, now: DateTime<Utc>) -> Result<QueueReading, String> {
        let mut connection = self.connection().await?;
        let mut pipe = redis::pipe();
        for list in &self.lists {
            pipe.llen(list);
        }
        if self.sidekiq_latency {
            for list in &self.lists {
                pipe.lindex(list, -1);
            }
        }
        let answers: Vec<redis::Value> = match pipe.query_async(&mut connection).await {
            Ok(answers) => answers,
            Err(error) => {
                // The connection may be broken: make a new one next time.
                *self.connection.lock().await = None;
                return Err(explain(&error));
            }
        };
        let (lengths, oldest) = answers.split_at(self.lists.len().min(answers.len()));
        let mut jobs = 0u64;
        for (list, length) in self.lists.iter().zip(lengths) {
            let length: u64 = redis::from_redis_value_ref(length)
                .map_err(|error| format!("LLEN {list:?}: {}", explain(&error)))?;
            jobs = jobs.saturating_add(length);
        }
        let mut oldest_age: Option<Duration> = None;
        for (list, element) in self.lists.iter().zip(oldest) {
            let element: Option<String> = redis::from_redis_value_ref(element)
                .map_err(|error| format!("LINDEX {list:?} -1: {}", explain(&error)))?;
            if let Some(element) = element {
                let age = sidekiq_age(&element, now)
                    .map_err(|why| format!("the oldest job of {list:?} {why}"))?;
                oldest_age = oldest_age.max(Some(age));
            }
        }
        Ok(QueueReading {
            jobs: Some(jobs),
            oldest_age,
        })
    }
}

/// The age at `now` of a Sidekiq job from its JSON `enqueued_at`.
pub fn sidekiq_age(job: &str, now: DateTime<Utc>) -> Result<Duration, String> {
    let value: serde_json::Value = serde_json::from_str(job).map_err(|_| {
        "is not JSON: not a Sidekiq queue (set queue_sidekiq_latency = false for other lists)"
            .to_string()
    })?;
    let enqueued = value
        .get("enqueued_at")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| "has no numeric enqueued_at: not a Sidekiq job".to_string())?;
    // Sidekiq 8 stores milliseconds; earlier versions seconds. Seconds reach 1e11 in 5138.
    let seconds = if enqueued > 1e11 {
        enqueued / 1000.0
    } else {
        enqueued
    };
    let now_seconds = now.timestamp_millis() as f64 / 1000.0;
    // A garbled time far in the past reads as the longest wait, never a panic.
    Ok(Duration::try_from_secs_f64((now_seconds - seconds).max(0.0)).unwrap_or(Duration::MAX))
}

#[async_trait]
impl QueueSource for RedisQueue {
    async fn read(&self, now: DateTime<Utc>) -> Result<QueueReading, String> {
        let reset = async { *self.connection.lock().await = None };
        within(
            self.timeout,
            &self.description,
            &self.scrubbed,
            self.read_once(now),
            reset,
        )
        .await
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidekiq_enqueue_times_in_seconds_and_in_milliseconds() {
        let now = DateTime::from_timestamp(1_800_000_100, 0).unwrap();
        let seven =
            r#"{"class":"HardJob","jid":"b4a577edbccf1d805744efa9","enqueued_at":1800000040.5}"#;
        assert_eq!(
            sidekiq_age(seven, now).unwrap(),
            Duration::from_millis(59_500)
        );
        let eight = r#"{"class":"HardJob","enqueued_at":1800000090000}"#;
        assert_eq!(sidekiq_age(eight, now).unwrap(), Duration::from_secs(10));
        assert!(sidekiq_age("job-id-1234", now).is_err());
        assert!(sidekiq_age(r#"{"class":"X"}"#, now).is_err());
    }
}
