//! Where `now` comes from. Production uses the system clock; loop tests use tokio's clock, so
//! that `tokio::time::pause` and `advance` move it too. The engine never reads a clock: the
//! loop, the activator and the server take `now` from one of these and pass it in.

use chrono::{DateTime, Utc};
use std::sync::Arc;

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A clock that starts at `start` and follows tokio's (pausable) time.
pub fn tokio_clock(start: DateTime<Utc>) -> Clock {
    let origin = tokio::time::Instant::now();
    Arc::new(move || start + chrono::Duration::from_std(origin.elapsed()).unwrap_or_default())
}
