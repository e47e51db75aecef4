//! Decision policies: the rules that turn what the worker measured into the size the app
//! should have. 2.1's streaks live in `crate::decision`; [`target`] is the target-tracking
//! policy, which computes the dynos the measured load needs and scales straight to it;
//! [`queue`] sizes a job-worker process type on its backlog, down to zero when the queues stay
//! empty.
//!
//! Everything here is pure: measurements, the bounds in force and `now` in, a size out. No
//! I/O, no clock, no settings file: each policy has its own small config and input types, so
//! the engine, the simulator and tests drive it alike. This module must not import the engine
//! (`decision`), the loop or the settings: they import it.

pub mod queue;
pub mod target;

/// The `min_dynos`/`max_dynos` in force at one moment, as the engine computed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    /// `size` moved inside the bounds (a `min` above `max` gives `max`).
    pub fn clamp(&self, size: u32) -> u32 {
        size.max(self.min).min(self.max)
    }
}
