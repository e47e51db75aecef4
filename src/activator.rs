//! The activator: listens in front of a target, starts it on the first connection, holds every
//! connection until it accepts, forwards both ways, and stops it after `idle_after` with none.
//!
//! - [`state`]: the pure state machine (Down → Starting → Up → Stopping); when to stop is the
//!   engine's step.
//! - [`run`]: the async shell: accept, hold, wake, forward (proxy or fd-3 handoff), stop.
//! - [`release`]: waiting clients released onto a target that has just started, paced by a
//!   window that follows what the target takes.
//!
//! The sockets, the forwarding and the local process live in the backends crate
//! (`autoscalebot_backends::activator`); this module decides, and never blocks the forwarding
//! path on a lock.

pub mod release;
pub mod run;
pub mod state;

pub use run::{bind_listen, run};
