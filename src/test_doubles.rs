//! Test doubles for the worker's loop: a probe that answers from a script and a platform that
//! keeps its size in memory. For tests only, the loop's unit tests and the integration tests
//! alike (public, hidden from the docs, so both reach them); the worker must never use them.
//! Doubles stand in only where a test drives `Worker` in-process under paused time: every
//! black-box test talks to real servers instead.

use async_trait::async_trait;
use autoscalebot_backends::probe::{Probe, ProbeOutcome};
use autoscalebot_backends::scaler::{Known, ScaleError, Scaler};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Answers with the scripted outcomes in turn. Then it repeats the last one, or, made with
/// [`ScriptedProbe::until_done`], it cancels a token and never answers again.
pub struct ScriptedProbe {
    pub outcomes: Mutex<VecDeque<ProbeOutcome>>,
    /// Probes so far.
    pub calls: Mutex<u32>,
    /// Cancelled when the script is over; `None`: the last outcome repeats.
    done: Option<CancellationToken>,
}

impl ScriptedProbe {
    /// Answers 200 after each latency in turn, then after the last one forever.
    pub fn new(latencies_ms: &[u64]) -> Arc<Self> {
        ScriptedProbe::with_outcomes(
            latencies_ms
                .iter()
                .map(|ms| ProbeOutcome::Response {
                    status: 200,
                    elapsed: Duration::from_millis(*ms),
                    downtime_header: None,
                })
                .collect(),
        )
    }

    /// Answers each outcome in turn, then the last one forever.
    pub fn with_outcomes(outcomes: Vec<ProbeOutcome>) -> Arc<Self> {
        Arc::new(ScriptedProbe {
            outcomes: Mutex::new(outcomes.into()),
            calls: Mutex::new(0),
            done: None,
        })
    }

    /// Answers each outcome once; the probe after the last cancels `done` (a worker run with
    /// it stops) and never answers.
    pub fn until_done(outcomes: Vec<ProbeOutcome>, done: CancellationToken) -> Arc<Self> {
        Arc::new(ScriptedProbe {
            outcomes: Mutex::new(outcomes.into()),
            calls: Mutex::new(0),
            done: Some(done),
        })
    }
}

#[async_trait]
impl Probe for ScriptedProbe {
    async fn probe(&self) -> ProbeOutcome {
        *self.calls.lock().unwrap() += 1;
        let next = {
            let mut outcomes = self.outcomes.lock().unwrap();
            if self.done.is_some() || outcomes.len() > 1 {
                outcomes.pop_front()
            } else {
                outcomes.front().cloned()
            }
        };
        match (next, &self.done) {
            (Some(outcome), _) => outcome,
            (None, Some(done)) => {
                // The worker is waiting on this probe: it sees the cancellation and stops.
                done.cancel();
                std::future::pending().await
            }
            (None, None) => panic!("a ScriptedProbe needs at least one outcome"),
        }
    }
}

/// A platform that keeps one quantity, can be told to fail, and records every write.
#[derive(Default)]
pub struct MemoryScaler {
    pub quantity: Mutex<u32>,
    /// The quantities written, in order.
    pub writes: Mutex<Vec<u32>>,
    /// Reads so far.
    pub reads: Mutex<u32>,
    /// Every read and write fails with this while it is set.
    pub failing: Mutex<Option<ScaleError>>,
    /// A write takes this long, to test that shutdown waits for it.
    pub write_delay: Duration,
    /// The last size told, for the budget's tests.
    pub known: Mutex<Option<Known>>,
    /// Called with (from, to) as each write is applied, to record more about it (such as the
    /// worker's clock).
    pub on_write: Option<Box<dyn Fn(u32, u32) + Send + Sync>>,
}

impl MemoryScaler {
    fn remember(&self, quantity: u32) {
        *self.known.lock().unwrap() = Some(Known {
            quantity,
            at: tokio::time::Instant::now(),
        });
    }
}

#[async_trait]
impl Scaler for MemoryScaler {
    fn describe(&self) -> String {
        "memory".into()
    }
    async fn current(&self) -> Result<u32, ScaleError> {
        *self.reads.lock().unwrap() += 1;
        if let Some(error) = self.failing.lock().unwrap().clone() {
            return Err(error);
        }
        let quantity = *self.quantity.lock().unwrap();
        self.remember(quantity);
        Ok(quantity)
    }
    fn recent(&self) -> Option<Known> {
        *self.known.lock().unwrap()
    }
    async fn set(&self, quantity: u32) -> Result<u32, ScaleError> {
        tokio::time::sleep(self.write_delay).await;
        if let Some(error) = self.failing.lock().unwrap().clone() {
            return Err(error);
        }
        let from = std::mem::replace(&mut *self.quantity.lock().unwrap(), quantity);
        if let Some(on_write) = &self.on_write {
            on_write(from, quantity);
        }
        self.writes.lock().unwrap().push(quantity);
        self.remember(quantity);
        Ok(quantity)
    }
}
