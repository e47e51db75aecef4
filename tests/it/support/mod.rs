//! The fixtures of the integration tests, one file each: a real heartbeat server, a real
//! Heroku-shaped formation API that records what it was sent, the real `autoscalebot` binary run
//! as a child process, mail and web hook receivers, the log drain's requests, a throwaway
//! PostgreSQL and Redis, and the real `autoscalebot sandbox` platform driven through its admin API. An
//! area's module takes them all with `use crate::support::*`. Every wait has a generous
//! deadline and polls for an outcome; no fixed sleeps.

mod binary;
mod chromium;
mod drain;
mod formation;
mod heartbeat;
mod hooks;
mod http;
mod metrics;
mod postgres;
mod redis;
mod sandbox;
mod smtp;
mod wait;

pub use binary::*;
pub use chromium::*;
pub use drain::*;
pub use formation::*;
pub use heartbeat::*;
pub use hooks::*;
pub use http::*;
pub use metrics::*;
pub use postgres::*;
pub use redis::*;
pub use sandbox::*;
pub use smtp::*;
pub use wait::*;
