//! Every edge of autoscalebot to the outside world.
//!
//! Layout: `probe/` measures the app (the heartbeat), `scaler/` reads and sets its size (the
//! Heroku Platform API, the user's commands), `notify/` tells people what happened (console,
//! email, log, slack, test, webhook). One file per backend, holding its settings section too;
//! each kind has a small trait and its registry (a list) in its `mod.rs`. `settings` is the
//! toolkit every backend checks its section with. `leader/` decides which copy of the worker
//! may act (a PostgreSQL advisory lock); `queue/` reads how many jobs wait (Redis lists, a
//! PostgreSQL query);
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
pub mod queue;
pub mod retry;
pub mod scaler;
mod secret;
pub mod settings;
pub mod shell;
pub mod shutdown_hook;

pub use secret::{shown_url, Secret};

/// The `User-Agent` every request of ours carries, so the platform and the app can tell us apart.
pub const USER_AGENT: &str = concat!("autoscalebot/", env!("CARGO_PKG_VERSION"));
