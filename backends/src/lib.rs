//! Every edge of autoscalebot to the outside world.
//!
//! Layout: `probe/` measures the app (the heartbeat), `scaler/` reads and sets its size (the
//! Heroku Platform API), `notify/` tells people what happened (console, log, test). One file per
//! backend; each kind has a small trait in its `mod.rs` so the worker can hold any of them.
//! `leader/` decides which copy of the worker may act (a PostgreSQL advisory lock);
//! `file_watch.rs` tells when a file (the downtime file) may have changed, so it is not opened
//! on every heartbeat.
//!
//! Nothing here decides anything: the rules live in the `autoscalebot` crate. Nothing here may
//! print a secret: keys and passwords travel as [`Secret`], whose `Debug` and `Display` are `***`.

pub mod activator;
pub mod file_watch;
pub mod leader;
pub mod notify;
pub mod probe;
pub mod retry;
pub mod scaler;
mod secret;
pub mod shell;
pub mod shutdown_hook;

pub use secret::Secret;

/// The `User-Agent` every request of ours carries, so the platform and the app can tell us apart.
pub const USER_AGENT: &str = concat!("autoscalebot/", env!("CARGO_PKG_VERSION"));
