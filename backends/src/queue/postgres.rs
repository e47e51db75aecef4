//! A job table in PostgreSQL (GoodJob, Solid Queue, Que, Oban, django-q): the user's query,
//! whose one row gives the jobs waiting and, in an optional second column, the age of the
//! oldest in seconds. It runs in a `READ ONLY` transaction with `statement_timeout` set, as
//! one statement of the extended protocol (which refuses several statements), and is rolled
//! back: a query that writes is refused by PostgreSQL itself, whatever its text.
//!
//! One connection is kept and made again after an error; TLS follows the URL's `sslmode` as
//! the leader lock's does.

use super::{explain, within, QueueReading, QueueSource, QueueSourceConfig, Scrubbed};
use crate::leader::postgres::{describe, parse_url, tls};
use crate::settings::format_duration;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

pub struct PostgresQueue {
    config: Config,
    query: String,
    timeout: Duration,
    tls: MakeRustlsConnect,
    client: Mutex<Option<Client>>,
    scrubbed: Scrubbed,
    description: String,
}

/// Whether `query` reads, as far as its first word says: the settings refuse other texts
/// before the worker starts; the read-only transaction refuses what slips past (a `WITH` that
/// deletes).
pub fn looks_read_only(query: &str) -> bool {
    let first = query
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(first.as_str(), "SELECT" | "WITH" | "VALUES" | "TABLE")
}

pub fn build(config: &QueueSourceConfig) -> Result<Arc<dyn QueueSource>, String> {
    let scrubbed = Scrubbed::new(&config.url);
    let mut pg = parse_url(&config.url)?;
    pg.connect_timeout(config.timeout)
        .application_name("autoscalebot queue");
    let query = config
        .query
        .clone()
        .filter(|query| !query.trim().is_empty())
        .ok_or_else(|| "a queue_query for the PostgreSQL queue".to_string())?;
    Ok(Arc::new(PostgresQueue {
        description: scrubbed.clean(&format!("postgres {}", describe(&pg))),
        config: pg,
        query,
        timeout: config.timeout,
        tls: tls::connector(),
        client: Mutex::new(None),
        scrubbed,
    }))
}

impl PostgresQueue {
    async fn read_once(&self) -> Result<QueueReading, String> {
        let mut kept = self.client.lock().await;
        if kept.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = self
                .config
                .connect(self.tls.clone())
                .await
                .map_err(|error| format!("connecting: {}", explain(&error)))?;
            tokio::spawn(connection);
            *kept = Some(client);
        }
        let client = kept.as_mut().expect("connected above");
        let result = self.query(client).await;
        if result.is_err() && client.is_closed() {
            *kept = None;
        }
        result
    }

    async fn query(&self, client: &mut Client) -> Result<QueueReading, String> {
        let transaction = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|error| explain(&error))?;
        let timeout_ms = self.timeout.as_millis().max(1);
        transaction
            .batch_execute(&format!("SET LOCAL statement_timeout = {timeout_ms}"))
            .await
            .map_err(|error| explain(&error))?;
        let rows = transaction
            .query(self.query.as_str(), &[])
            .await
            .map_err(|error| self.refusal(&error))?;
        // Dropping the transaction rolls it back: nothing the query did is kept.
        drop(transaction);
        reading(&rows)
    }

    /// Why PostgreSQL refused the query, in the user's terms.
    fn refusal(&self, error: &tokio_postgres::Error) -> String {
        match error.code() {
            Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => format!(
                "queue_query is not read-only, so it is refused (PostgreSQL: {}): give a SELECT that only counts",
                explain(error)
            ),
            Some(code) if *code == SqlState::QUERY_CANCELED => format!(
                "queue_query ran past queue_query_timeout ({}) and was cancelled: index the job table or simplify the query",
                format_duration(self.timeout)
            ),
            _ => format!("queue_query failed: {}", explain(error)),
        }
    }
}

/// The one row's numbers: jobs waiting, and the optional age in seconds (NULL: no job).
fn reading(rows: &[Row]) -> Result<QueueReading, String> {
    let [row] = rows else {
        return Err(format!(
            "queue_query returned {} rows, not one: give one row with the jobs waiting (and the age of the oldest in seconds)",
            rows.len()
        ));
    };
    if row.is_empty() {
        return Err("queue_query returned no column".to_string());
    }
    let jobs = number(row, 0)?.unwrap_or(0.0);
    if !(jobs.is_finite() && jobs >= 0.0) {
        return Err(format!("queue_query's job count is {jobs}, not 0 or more"));
    }
    let oldest_age = match row.len() {
        1 => None,
        _ => number(row, 1)?
            .filter(|seconds| seconds.is_finite())
            .map(|seconds| Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)),
    };
    Ok(QueueReading {
        jobs: Some(jobs.round() as u64),
        oldest_age,
    })
}

/// Column `index` as a number, whatever PostgreSQL's integer or float type.
fn number(row: &Row, index: usize) -> Result<Option<f64>, String> {
    let column = &row.columns()[index];
    let value = match *column.type_() {
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map(|v| v.map(f64::from)),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map(|v| v.map(f64::from)),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map(|v| v.map(|v| v as f64)),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map(|v| v.map(f64::from)),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index),
        ref other => {
            return Err(format!(
            "queue_query's column {:?} is {other}, not a number: cast it with ::bigint or ::float8",
            column.name()
        ))
        }
    };
    value.map_err(|error| explain(&error))
}

#[async_trait]
impl QueueSource for PostgresQueue {
    async fn read(&self, _now: DateTime<Utc>) -> Result<QueueReading, String> {
        // The server cancels the query itself at statement_timeout, and the connection has its
        // own connect timeout: this bound is the net for a network that stops answering, wide
        // enough that a slow connect on a busy machine still lets the server's answer through.
        let limit = self.timeout * 2 + Duration::from_secs(1);
        let reset = async { *self.client.lock().await = None };
        within(
            limit,
            &self.description,
            &self.scrubbed,
            self.read_once(),
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
    fn only_queries_that_read_look_read_only() {
        assert!(looks_read_only("SELECT count(*) FROM good_jobs"));
        assert!(looks_read_only("  with q as (select 1) select * from q"));
        assert!(!looks_read_only("DELETE FROM good_jobs"));
        assert!(!looks_read_only("update jobs set x = 1"));
        assert!(!looks_read_only(""));
    }
}
