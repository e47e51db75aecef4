//! Waiting for an outcome: a condition polled until it holds, within a generous deadline,
//! never a fixed sleep.

use std::time::{Duration, Instant};

/// How long any test waits for an outcome before failing. Generous: CI machines are slow.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `condition` every 50 ms until it holds or `DEADLINE` passes; panics with `what`.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the async `condition` every 50 ms until it holds or `DEADLINE` passes; panics with
/// `what`.
pub async fn wait_until_async<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        if started.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
