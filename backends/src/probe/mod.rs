//! Probes measure the app. Today there is one, the heartbeat (`heartbeat.rs`): a timed GET, on
//! a connection of its own (`kept.rs`).
//!
//! A probe reports what it saw as a [`ProbeOutcome`] and nothing more: whether that is a fail
//! or a pass is the decision engine's business, not the probe's.

pub mod heartbeat;
mod kept;

pub use heartbeat::Heartbeat;

use async_trait::async_trait;
use std::time::Duration;

/// What one heartbeat saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The app answered; `elapsed` covers the whole response, body included.
    /// `downtime_header` is the value of the header the probe was asked to capture
    /// (`downtime_header`, `X-Downtime` by default), when the app sent it.
    Response {
        status: u16,
        elapsed: Duration,
        downtime_header: Option<String>,
    },
    /// No whole answer within the heartbeat timeout.
    Timeout { elapsed: Duration },
    /// The request could not be made or the connection broke (refused, reset, DNS, TLS).
    /// `refused`: nothing listens there (the connection was refused).
    ConnectError { message: String, refused: bool },
}

/// Something that can be asked "how is the app now?". A trait because the worker's loop tests
/// drive the loop under paused time with a scripted probe.
#[async_trait]
pub trait Probe: Send + Sync {
    async fn probe(&self) -> ProbeOutcome;
}
