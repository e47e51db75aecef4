//! The integration tests, one binary with one module per area: `cargo test --test it` runs them
//! all, `cargo test --test it notify::` one area. Most run the built `autoscalebot` binary
//! against real servers and processes on loopback (the fixtures are in [`support`]); `schema`
//! and `simulate_vs_worker` drive the crates' public APIs in-process.
//!
//! One binary rather than one per file: the fixtures and the dependencies are compiled and
//! linked once.

mod support;

mod activator;
mod activator_settings;
mod adoption;
mod apps;
mod demo;
mod docs;
mod downtime;
mod heroku_cli;
mod leader;
mod notify;
mod observe;
mod pictures;
mod platforms;
mod promtool;
mod queues;
mod restart;
mod sandbox;
mod schema;
mod security;
mod simulate;
mod simulate_vs_worker;
mod slack;
mod status_page_screenshot;
mod target;
mod wheel;
mod worker;
