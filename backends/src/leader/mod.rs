//! Leader election: which of several copies of the worker may act (scale and notify) now.
//! Today one backend, a PostgreSQL advisory lock (`postgres.rs`).
//!
//! The election hands the worker a [`Leadership`]: a watch of "I lead" that the loops read at
//! each heartbeat, and [`Leadership::confirm`], a round trip to the lock's holder just before a
//! write, so that a copy that lost its lock never writes. Nothing here decides about scaling.

pub mod postgres;

pub use postgres::PostgresLock;

use tokio::sync::{mpsc, oneshot, watch};

/// Whether this copy of the worker may act now.
#[derive(Clone, Debug)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    /// Asks the elector to prove, on the lock's own connection, that the lock is still held.
    confirm: Option<mpsc::Sender<oneshot::Sender<bool>>>,
}

impl Leadership {
    /// A worker without a leader lock: it always leads.
    pub fn always() -> Self {
        let (_sender, state) = watch::channel(true);
        Leadership {
            state,
            confirm: None,
        }
    }

    /// A leadership driven by another elector: `state` says whether it leads, `confirm`
    /// answers a check before a write.
    pub fn from_parts(
        state: watch::Receiver<bool>,
        confirm: mpsc::Sender<oneshot::Sender<bool>>,
    ) -> Self {
        Leadership {
            state,
            confirm: Some(confirm),
        }
    }

    /// What the elector last knew: `true` while this copy holds the lock.
    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// Just before a write: `true` only when the lock is held and its session answered now.
    /// A lost session means stepping down, so two copies never write at once.
    pub async fn confirm(&self) -> bool {
        let Some(confirm) = &self.confirm else {
            return true;
        };
        if !self.is_leader() {
            return false;
        }
        let (reply, answer) = oneshot::channel();
        if confirm.send(reply).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Waits until leadership changes; for loops that want to log the change.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.state.clone()
    }
}
