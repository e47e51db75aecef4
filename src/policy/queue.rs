//! Queue sizing: the workers a backlog of jobs needs, for a process type that runs background
//! jobs (`worker`) rather than serving requests.
//!
//! A worker dyno runs `worker_concurrency` jobs at once, each taking `job_duration`, so within
//! the `target_latency` a job may wait it clears `worker_concurrency × target_latency /
//! job_duration` jobs (at least `worker_concurrency`: a job longer than the target still takes
//! a whole slot). The backlog needs `ceil(jobs waiting / that)` workers, at least one while any
//! job waits; an oldest job that has waited past the target asks for one worker more than runs
//! now (a gentle step: its age says the size is short, not by how much). Up at once, to that
//! size; down to the largest size asked for during the whole `scale_down_delay`, so to zero
//! only after the queues stayed empty that long. A failed reading holds the size and starts the
//! delay afresh. Pure: no I/O, `now` is an argument; the bounds are the engine's business.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;

/// How long a job may wait by default: a background job is seldom urgent to the second, and a
/// shorter target boots dynos for every short burst.
pub const DEFAULT_TARGET_LATENCY: Duration = Duration::from_secs(30);
/// What one job takes by default: the order of a mail sent or a row updated.
pub const DEFAULT_JOB_DURATION: Duration = Duration::from_secs(1);
/// Jobs one worker dyno runs at once by default (one process, one thread: RQ's, Celery's
/// `--concurrency=1`); Sidekiq's threads or Celery's processes raise it.
pub const DEFAULT_WORKER_CONCURRENCY: u32 = 1;

/// The queue policy's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// How long a job may wait before a worker takes it.
    pub target_latency: Duration,
    /// How long one job takes, on average.
    pub job_duration: Duration,
    /// Jobs one worker dyno runs at once.
    pub worker_concurrency: u32,
    /// How long every reading must ask for fewer workers before scaling down (to zero too).
    pub scale_down_delay: Duration,
}

impl QueueConfig {
    /// Jobs one worker clears within the target latency.
    pub fn jobs_per_worker(&self) -> f64 {
        let slots = f64::from(self.worker_concurrency.max(1));
        let duration = self.job_duration.as_secs_f64();
        let rounds = if duration > 0.0 {
            (self.target_latency.as_secs_f64() / duration).max(1.0)
        } else {
            1.0
        };
        slots * rounds
    }
}

/// What a queue source read: the jobs waiting, and how long the oldest has waited when the
/// source knows (Sidekiq's enqueue time, a query's age column, an l2met latency sample).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueueSignal {
    /// `None` when the source gives only an age.
    pub jobs: Option<u64>,
    pub oldest_age: Option<Duration>,
}

/// Why the policy asked for its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueueWhy {
    /// `jobs` waiting need `desired` workers at `jobs_per_worker` each.
    Backlog { jobs: u64, desired: u32 },
    /// The oldest job waited `age`, past the target: one more worker than runs.
    Late { age: Duration, desired: u32 },
    /// Every reading during the scale-down delay asked for at most `desired` (0: the queues
    /// stayed empty).
    Quiet { desired: u32, delay: Duration },
    /// Fewer workers would do, but not for the whole delay yet.
    Stabilising { desired: u32 },
    /// The size is what the queues need.
    Steady,
    /// The source could not be read: hold.
    SourceFailed,
}

/// One reading's decision: `to` is the size to move to (`None`: keep), `why` says why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueDecision {
    pub to: Option<u32>,
    pub why: QueueWhy,
}

/// What the policy remembers: the sizes asked for within the scale-down delay, and since when
/// readings have come without a failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueState {
    asked: VecDeque<(DateTime<Utc>, u32)>,
    reading_since: Option<DateTime<Utc>>,
}

/// The workers `signal` needs at `current` workers.
pub fn desired(config: &QueueConfig, signal: &QueueSignal, current: u32) -> (u32, QueueWhy) {
    let jobs = signal.jobs.unwrap_or(0);
    let by_backlog = (jobs as f64 / config.jobs_per_worker()).ceil();
    let by_backlog = if by_backlog >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        by_backlog as u32
    };
    let late = signal.oldest_age.filter(|age| *age > config.target_latency);
    match late {
        Some(age) if current.saturating_add(1) > by_backlog => {
            let desired = current.saturating_add(1);
            (desired, QueueWhy::Late { age, desired })
        }
        _ => (
            by_backlog,
            QueueWhy::Backlog {
                jobs,
                desired: by_backlog,
            },
        ),
    }
}

impl QueueState {
    /// One reading at `current` workers: `None` when the source failed.
    pub fn step(
        &mut self,
        config: &QueueConfig,
        signal: Option<&QueueSignal>,
        current: u32,
        now: DateTime<Utc>,
    ) -> QueueDecision {
        let Some(signal) = signal else {
            // No reading: hold, and a scale down needs a whole delay of readings again.
            self.forget();
            return QueueDecision {
                to: None,
                why: QueueWhy::SourceFailed,
            };
        };
        let since = *self.reading_since.get_or_insert(now);
        let (wanted, why) = desired(config, signal, current);
        self.asked.push_back((now, wanted));
        while let Some((at, _)) = self.asked.front() {
            if elapsed(*at, now) > config.scale_down_delay {
                self.asked.pop_front();
            } else {
                break;
            }
        }
        if wanted > current {
            return QueueDecision {
                to: Some(wanted),
                why,
            };
        }
        if wanted == current {
            return QueueDecision {
                to: None,
                why: QueueWhy::Steady,
            };
        }
        let most = self.asked.iter().map(|(_, size)| *size).max().unwrap_or(0);
        if elapsed(since, now) < config.scale_down_delay || most >= current {
            return QueueDecision {
                to: None,
                why: QueueWhy::Stabilising { desired: most },
            };
        }
        QueueDecision {
            to: Some(most),
            why: QueueWhy::Quiet {
                desired: most,
                delay: config.scale_down_delay,
            },
        }
    }

    /// Forgets the readings: after a failure, around planned downtime.
    pub fn forget(&mut self) {
        self.asked.clear();
        self.reading_since = None;
    }
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> QueueConfig {
        QueueConfig {
            target_latency: Duration::from_secs(30),
            job_duration: Duration::from_secs(1),
            worker_concurrency: 5,
            scale_down_delay: Duration::from_secs(60),
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn jobs(n: u64) -> QueueSignal {
        QueueSignal {
            jobs: Some(n),
            oldest_age: None,
        }
    }

    #[test]
    fn a_backlog_asks_for_its_size_at_once() {
        // 5 slots × 30 s / 1 s = 150 jobs per worker within the target: 1000 jobs need 7.
        let mut state = QueueState::default();
        let decision = state.step(&config(), Some(&jobs(1000)), 1, at(0));
        assert_eq!(decision.to, Some(7));
        assert_eq!(
            decision.why,
            QueueWhy::Backlog {
                jobs: 1000,
                desired: 7
            }
        );
    }

    #[test]
    fn one_job_brings_a_stopped_type_back() {
        let mut state = QueueState::default();
        assert_eq!(state.step(&config(), Some(&jobs(1)), 0, at(0)).to, Some(1));
    }

    #[test]
    fn empty_queues_go_to_zero_only_after_the_whole_delay() {
        let mut state = QueueState::default();
        state.step(&config(), Some(&jobs(300)), 2, at(0));
        for second in [10, 30, 60] {
            let decision = state.step(&config(), Some(&jobs(0)), 2, at(second));
            assert_eq!(decision.to, None, "at {second} s");
        }
        let decision = state.step(&config(), Some(&jobs(0)), 2, at(61));
        assert_eq!(decision.to, Some(0));
        assert!(matches!(decision.why, QueueWhy::Quiet { desired: 0, .. }));
    }

    #[test]
    fn a_failed_reading_holds_and_starts_the_delay_afresh() {
        let mut state = QueueState::default();
        state.step(&config(), Some(&jobs(0)), 2, at(0));
        let decision = state.step(&config(), None, 2, at(50));
        assert_eq!(decision.to, None);
        assert_eq!(decision.why, QueueWhy::SourceFailed);
        assert_eq!(state.step(&config(), Some(&jobs(0)), 2, at(70)).to, None);
        assert_eq!(
            state.step(&config(), Some(&jobs(0)), 2, at(131)).to,
            Some(0)
        );
    }

    #[test]
    fn an_old_job_asks_for_one_more() {
        let mut state = QueueState::default();
        let signal = QueueSignal {
            jobs: Some(10),
            oldest_age: Some(Duration::from_secs(90)),
        };
        let decision = state.step(&config(), Some(&signal), 3, at(0));
        assert_eq!(decision.to, Some(4));
    }

    #[test]
    fn a_job_longer_than_the_target_takes_a_whole_slot() {
        let config = QueueConfig {
            job_duration: Duration::from_secs(120),
            worker_concurrency: 2,
            ..config()
        };
        assert_eq!(config.jobs_per_worker(), 2.0);
        assert_eq!(desired(&config, &jobs(5), 0).0, 3);
    }

    proptest! {
        #[test]
        fn never_below_what_the_backlog_needs_and_never_down_on_a_failure(
            readings in proptest::collection::vec(proptest::option::of(0u64..5000), 1..40),
            current in 0u32..50,
        ) {
            let mut state = QueueState::default();
            for (index, reading) in readings.iter().enumerate() {
                let signal = reading.map(jobs);
                let decision = state.step(&config(), signal.as_ref(), current, at(index as i64 * 15));
                match (signal, decision.to) {
                    (None, to) => prop_assert_eq!(to, None),
                    (Some(signal), Some(to)) => {
                        prop_assert!(to >= desired(&config(), &signal, current).0);
                    }
                    (Some(_), None) => {}
                }
            }
        }
    }
}
