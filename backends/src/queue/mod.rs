//! Queue sources: how many jobs wait (and how long the oldest has waited) where the jobs are,
//! read directly with no change to the app. One file per source ([`redis`]: list lengths and
//! Sidekiq's enqueue times; [`postgres`]: the user's read-only query); [`SOURCES`] is the
//! registry, one line per source, chosen by the URL's scheme.
//!
//! A source only reads and reports: it decides nothing (the queue policy is the `autoscalebot`
//! crate's), keeps no history, and never lets its URL reach an error or a log: every error
//! passes through [`Scrubbed`] before it leaves, so a driver that echoes the URL (or its
//! password) shows `***` instead.

pub mod postgres;
pub mod redis;

use crate::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// What one reading found.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueueReading {
    /// Jobs waiting, over every queue read; `None` when the source gives only an age.
    pub jobs: Option<u64>,
    /// How long the oldest job has waited, when the source knows.
    pub oldest_age: Option<Duration>,
}

/// A place jobs wait in.
#[async_trait]
pub trait QueueSource: Send + Sync {
    /// One reading at `now` (for the age of a job whose enqueue time is stored). Never takes
    /// longer than the source's timeout; the error names what failed, never the URL.
    async fn read(&self, now: DateTime<Utc>) -> Result<QueueReading, String>;
    /// "redis host:6379 (queue:default, queue:mailers)": for logs and `check`, no secret.
    fn describe(&self) -> String;
}

/// What a source is built from: the checked settings.
#[derive(Debug, Clone)]
pub struct QueueSourceConfig {
    pub url: Secret,
    /// Redis: the list keys whose lengths add up.
    pub lists: Vec<String>,
    /// Redis: read the enqueue time of the oldest job of each list as Sidekiq stores it.
    pub sidekiq_latency: bool,
    /// PostgreSQL: the query whose one row gives the jobs waiting (and an age in seconds).
    pub query: Option<String>,
    /// The longest one reading may take (the query's `statement_timeout` too).
    pub timeout: Duration,
}

/// One source: its name, the URL schemes it takes, and how it is built.
pub struct SourceEntry {
    pub name: &'static str,
    pub schemes: &'static [&'static str],
    pub build: fn(&QueueSourceConfig) -> Result<Arc<dyn QueueSource>, String>,
    /// Checks a URL without connecting; the error says what is expected, never the URL.
    pub check_url: fn(&Secret) -> Result<(), String>,
}

/// The registry.
pub const SOURCES: &[SourceEntry] = &[
    SourceEntry {
        name: "redis",
        schemes: &["redis", "rediss"],
        build: redis::build,
        check_url: redis::check_url,
    },
    SourceEntry {
        name: "postgres",
        schemes: &["postgres", "postgresql"],
        build: postgres::build,
        check_url: |url| crate::leader::postgres::parse_url(url).map(drop),
    },
];

/// The source a URL names by its scheme (`redis://`, `postgres://`…).
pub fn source_for(url: &Secret) -> Option<&'static SourceEntry> {
    let scheme = url
        .expose()
        .trim()
        .split("://")
        .next()?
        .to_ascii_lowercase();
    SOURCES
        .iter()
        .find(|source| source.schemes.contains(&scheme.as_str()))
}

/// Every scheme a queue URL may have, for errors: "redis://, rediss://, postgres://…".
pub fn schemes() -> String {
    SOURCES
        .iter()
        .flat_map(|source| source.schemes.iter().map(|scheme| format!("{scheme}://")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the source `config.url` names.
pub fn build(config: &QueueSourceConfig) -> Result<Arc<dyn QueueSource>, String> {
    let source = source_for(&config.url)
        .ok_or_else(|| format!("a queue URL starting with one of {}", schemes()))?;
    (source.build)(config).map_err(|error| Scrubbed::new(&config.url).clean(&error))
}

/// Takes a URL's secret parts out of texts: the whole URL, its password, and its user info.
#[derive(Debug, Clone)]
pub struct Scrubbed {
    secrets: Vec<String>,
}

impl Scrubbed {
    pub fn new(url: &Secret) -> Self {
        let text = url.expose().trim().to_string();
        let mut secrets = vec![text.clone()];
        if let Ok(parsed) = url::Url::parse(&text) {
            if let Some(password) = parsed.password() {
                secrets.push(password.to_string());
                if let Ok(decoded) = percent_decode(password) {
                    secrets.push(decoded);
                }
            }
        }
        // The longest first, so a password inside the URL does not leave the rest of it.
        secrets.retain(|secret| secret.len() >= 3);
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Scrubbed { secrets }
    }

    /// `text` with every secret part as `***`, on one line.
    pub fn clean(&self, text: &str) -> String {
        let mut text = text.replace('\n', "; ");
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// One reading bounded by `limit`, its error prefixed with the source's `description` and
/// scrubbed of the URL; `reset` runs when the time ran out (its connection may be stuck).
pub(crate) async fn within(
    limit: Duration,
    description: &str,
    scrubbed: &Scrubbed,
    reading: impl std::future::Future<Output = Result<QueueReading, String>>,
    reset: impl std::future::Future<Output = ()>,
) -> Result<QueueReading, String> {
    let result = match tokio::time::timeout(limit, reading).await {
        Ok(result) => result,
        Err(_) => {
            reset.await;
            Err(format!(
                "no answer within {}",
                crate::settings::format_duration(limit)
            ))
        }
    };
    result.map_err(|error| scrubbed.clean(&format!("{description}: {error}")))
}

/// An error with its causes on one line (drivers put the useful part in the source).
pub(crate) fn explain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_source() {
        let name = |url: &str| source_for(&Secret::new(url)).map(|source| source.name);
        assert_eq!(name("redis://localhost:6379"), Some("redis"));
        assert_eq!(name("rediss://h:p@host:6380"), Some("redis"));
        assert_eq!(name("postgres://u:p@host/db"), Some("postgres"));
        assert_eq!(name("POSTGRESQL://u@host/db"), Some("postgres"));
        assert_eq!(name("amqp://host"), None);
    }

    #[test]
    fn scrubbing_takes_out_the_url_and_its_password() {
        let url = Secret::new("rediss://:p%40ss-word-99@redis.example:6380/0");
        let scrubbed = Scrubbed::new(&url);
        let text = scrubbed.clean(
            "failed rediss://:p%40ss-word-99@redis.example:6380/0 with p%40ss-word-99 and p@ss-word-99",
        );
        assert!(!text.contains("ss-word"), "{text}");
        assert_eq!(text, "failed *** with *** and ***");
    }
}
