//! The demo's load generator (and `bench/sim_vs_real.sh`'s): real HTTP requests to the app's
//! router, arriving at random (Poisson) at the rate the traffic profile gives for each moment,
//! whether or not earlier ones were answered, as users do. It only sends, counts and, when
//! asked, records each answer; it decides nothing.
//!
//! In-flight requests are capped, so a demo with far too few dynos stays bounded: a request
//! that would pass the cap is counted as skipped instead of sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The most requests in flight at once.
pub const MAX_IN_FLIGHT: usize = 400;
/// A request not answered within this long counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One stretch of the traffic profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: &'static str,
    pub duration: Duration,
    pub requests_per_second: f64,
}

/// The phase in force `elapsed` after the start, with its index; `None` after the last.
pub fn phase_at(phases: &[Phase], elapsed: Duration) -> Option<(usize, &Phase)> {
    let mut end = Duration::ZERO;
    for (index, phase) in phases.iter().enumerate() {
        end += phase.duration;
        if elapsed < end {
            return Some((index, phase));
        }
    }
    None
}

/// What the generator has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    /// Answered with a 2xx.
    pub served: u64,
    /// Answered otherwise, timed out, or broken off.
    pub failed: u64,
    /// Not sent: the in-flight cap was reached.
    pub skipped: u64,
}

/// One answered (or failed) request, for a benchmark's own statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    /// When it was sent, since the start of the load.
    pub sent_after: Duration,
    /// Until the whole answer was read, or the request failed.
    pub took: Duration,
    /// The HTTP status; `None` for a timeout or a broken connection.
    pub status: Option<u16>,
}

/// How [`generate_with`] sends.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    /// Every answer is pushed here, when given.
    pub record: Option<Arc<Mutex<Vec<Answer>>>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_in_flight: MAX_IN_FLIGHT,
            request_timeout: REQUEST_TIMEOUT,
            record: None,
        }
    }
}

/// Sends requests to `url` following `phases` until they end or `shutdown`.
pub async fn generate(
    client: reqwest::Client,
    url: String,
    phases: Vec<Phase>,
    tally: Arc<Mutex<Tally>>,
    shutdown: CancellationToken,
) {
    generate_with(client, url, phases, tally, shutdown, LoadOptions::default()).await
}

/// [`generate`] with its cap, its timeout and a record of every answer.
pub async fn generate_with(
    client: reqwest::Client,
    url: String,
    phases: Vec<Phase>,
    tally: Arc<Mutex<Tally>>,
    shutdown: CancellationToken,
    options: LoadOptions,
) {
    let started = Instant::now();
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight));
    let mut next = started;
    while let Some((_, phase)) = phase_at(&phases, next - started) {
        if phase.requests_per_second <= 0.0 {
            next += Duration::from_millis(100);
        } else {
            // Exponential gaps make Poisson arrivals; 1 - u keeps ln away from 0.
            let gap_s = -(1.0 - fastrand::f64()).ln() / phase.requests_per_second;
            next += Duration::from_secs_f64(gap_s.min(10.0));
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        if phase.requests_per_second <= 0.0 {
            continue;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            tally.lock().unwrap().skipped += 1;
            continue;
        };
        tally.lock().unwrap().sent += 1;
        let client = client.clone();
        let url = url.clone();
        let tally = tally.clone();
        let record = options.record.clone();
        let timeout = options.request_timeout;
        tokio::spawn(async move {
            let sent = Instant::now();
            let answer = async {
                let response = client.get(&url).timeout(timeout).send().await?;
                let status = response.status().as_u16();
                response.bytes().await?;
                Ok::<u16, reqwest::Error>(status)
            }
            .await;
            if let Some(record) = record {
                record.lock().unwrap().push(Answer {
                    sent_after: sent - started,
                    took: sent.elapsed(),
                    status: answer.as_ref().ok().copied(),
                });
            }
            let mut tally = tally.lock().unwrap();
            match answer {
                Ok(200..=299) => tally.served += 1,
                _ => tally.failed += 1,
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_at_walks_the_profile_and_ends_after_it() {
        let phases = vec![
            Phase {
                name: "quiet",
                duration: Duration::from_secs(10),
                requests_per_second: 5.0,
            },
            Phase {
                name: "surge",
                duration: Duration::from_secs(5),
                requests_per_second: 50.0,
            },
        ];
        assert_eq!(phase_at(&phases, Duration::ZERO).unwrap().1.name, "quiet");
        assert_eq!(
            phase_at(&phases, Duration::from_millis(9_999)).unwrap().0,
            0
        );
        assert_eq!(
            phase_at(&phases, Duration::from_secs(10)).unwrap().1.name,
            "surge"
        );
        assert!(phase_at(&phases, Duration::from_secs(15)).is_none());
    }
}
