//! A local stand-in for the Heroku platform, on loopback: the Platform API's formation
//! endpoints in front of an app made of real local dynos, so that the worker, the demo and the
//! tests run end to end with no account and no network.
//!
//! Layout: `api.rs` (the formation API and the gate every platform's calls pass),
//! `resources.rs` (the app, account, dynos and log drains the Heroku CLI reads), `fly.rs` and
//! `render.rs` (the same app through Fly.io's Machines API and Render's API, as their
//! published documents in `api-docs/` describe them), `admin.rs` (`/__sandbox/…`: faults, rate
//! limit, state), `faults.rs` (which injected fault hits a call), `rate_limit.rs` (Heroku's
//! token pool), `dyno.rs` (dynos and the pool that runs `quantity` of them), `router.rs` (the
//! app's port: one queue to the least busy dyno, or Heroku's random routing), `logplex.rs` (the
//! router's lines, delivered to the log drains as Heroku's logplex does).
//!
//! A crate of its own, not a module of `autoscalebot-backends`: the backends are the worker's
//! side of each edge (clients), while the sandbox is the other side (servers that stand in for
//! the platform). Kept apart, the worker's Heroku client cannot lean on sandbox internals, the
//! schema test checks two independent parties against Heroku's schema, and the worker's
//! library does not carry an HTTP server it never runs. It decides nothing about scaling.

mod admin;
pub mod api;
pub mod dyno;
pub mod faults;
mod fly;
pub mod logplex;
pub mod rate_limit;
mod render;
mod resources;
pub mod router;

pub use api::{ApiCall, Dialect, ACCEPT_V3};
pub use dyno::{DynoPool, ServiceTimes};
pub use faults::FaultSpec;
pub use router::Routing;

use api::{Platform, PlatformConfig};
use autoscalebot_backends::Secret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How the sandbox is set up. `Default` is what `autoscalebot sandbox` uses without flags.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Port of the Platform API (0: any free port).
    pub api_port: u16,
    /// Port of the app's router (0: any free port).
    pub app_port: u16,
    /// The app's name, as `heroku_app_name` should say it.
    pub app: String,
    pub process_type: String,
    /// The only key the API accepts, as `Authorization: Bearer <key>`.
    pub api_key: Secret,
    /// Dynos running at the start.
    pub dynos: u32,
    /// The most dynos a formation update may ask for (more: 422 `invalid_params`).
    pub max_quantity: u32,
    /// Requests one dyno serves at a time.
    pub dyno_concurrency: u32,
    /// How long one dyno takes to serve one request (the mean, with exponential times).
    pub service_time: Duration,
    /// Fixed or exponential service times.
    pub service_times: ServiceTimes,
    /// How long a dyno started by a scale up takes before it serves.
    pub boot_time: Duration,
    /// How the router hands requests to dynos.
    pub routing: Routing,
    /// The rate-limit pool (Heroku: 4,500 an account).
    pub rate_limit_tokens: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            api_port: 5001,
            app_port: 5000,
            app: "sandbox-app".into(),
            process_type: "web".into(),
            api_key: Secret::new("sandbox-api-key"),
            dynos: 1,
            max_quantity: 10,
            dyno_concurrency: 4,
            service_time: Duration::from_millis(100),
            service_times: ServiceTimes::Fixed,
            boot_time: Duration::ZERO,
            routing: Routing::Pooled,
            rate_limit_tokens: rate_limit::POOL_TOKENS,
        }
    }
}

/// A running sandbox. Dropping it without [`Sandbox::stop`] stops it too.
pub struct Sandbox {
    /// `http://127.0.0.1:PORT` of the Platform API (use it as `heroku_api_url`).
    pub api_url: String,
    /// `http://127.0.0.1:PORT` of the app's router (use it as `app_url`).
    pub app_url: String,
    pub api_address: SocketAddr,
    pub app_address: SocketAddr,
    platform: Arc<Platform>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Sandbox {
    /// Binds both ports on 127.0.0.1, starts the dynos, and serves until stopped.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let api_listener = tokio::net::TcpListener::bind(("127.0.0.1", config.api_port)).await?;
        let app_listener = tokio::net::TcpListener::bind(("127.0.0.1", config.app_port)).await?;
        let api_address = api_listener.local_addr()?;
        let app_address = app_listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let dynos = Arc::new(
            DynoPool::new(
                &config.process_type,
                config.dyno_concurrency,
                config.service_time,
            )
            .with_service_times(config.service_times)
            .with_boot_time(config.boot_time),
        );
        dynos.scale_to(config.dynos).await?;
        dynos.booted();
        let (platform, mut quantity) = Platform::new(
            PlatformConfig {
                app: config.app.clone(),
                process_type: config.process_type.clone(),
                web_url: format!("http://{app_address}/"),
                api_key: config.api_key.clone(),
                quantity: config.dynos,
                max_quantity: config.max_quantity,
                rate_limit_tokens: config.rate_limit_tokens,
            },
            dynos.clone(),
            shutdown.clone(),
        );
        let mut tasks = JoinSet::new();
        // The dyno manager: runs as many dynos as the formation says.
        let manager_pool = dynos.clone();
        let manager_shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = manager_shutdown.cancelled() => break,
                    changed = quantity.changed() => if changed.is_err() { break },
                }
                let wanted = *quantity.borrow_and_update();
                if let Err(error) = manager_pool.scale_to(wanted).await {
                    tracing::error!(%error, wanted, "Could not start a dyno.");
                }
            }
            manager_pool.stop_all();
        });
        tasks.spawn(api::serve(
            api_listener,
            api::app(platform.clone()),
            shutdown.clone(),
        ));
        let logplex = logplex::Logplex::start(platform.clone(), shutdown.clone());
        let router = router::app(dynos, config.routing, logplex, shutdown.clone());
        let router_shutdown = shutdown.clone();
        tasks.spawn(async move {
            let server = axum::serve(app_listener, router)
                .with_graceful_shutdown(router_shutdown.cancelled_owned());
            if let Err(error) = server.await {
                tracing::error!(%error, "The router failed.");
            }
        });
        Ok(Sandbox {
            api_url: format!("http://{api_address}"),
            app_url: format!("http://{app_address}"),
            api_address,
            app_address,
            platform,
            shutdown,
            tasks,
        })
    }

    pub fn app(&self) -> &str {
        &self.platform.app
    }

    pub fn process_type(&self) -> &str {
        &self.platform.process_type
    }

    /// The app's id as a Render service (`srv-…`), for `render_service_id`.
    pub fn render_service_id(&self) -> &str {
        &self.platform.render.id
    }

    /// The formation's quantity (what the API last accepted).
    pub fn quantity(&self) -> u32 {
        self.platform.quantity()
    }

    /// Dynos running now (the manager catches up with the quantity within milliseconds).
    pub fn running_dynos(&self) -> u32 {
        self.platform.dynos.running()
    }

    /// Every API call recorded so far, oldest first (the last 5,000).
    pub fn calls(&self) -> Vec<ApiCall> {
        self.platform.calls()
    }

    /// Injects a fault, as `POST /__sandbox/faults` does.
    pub fn inject(&self, fault: &FaultSpec) -> Result<u64, String> {
        self.platform.faults.lock().unwrap().add(fault)
    }

    pub fn clear_faults(&self) {
        self.platform.faults.lock().unwrap().clear();
    }

    pub fn set_rate_limit_remaining(&self, remaining: u32) {
        self.platform
            .tokens
            .lock()
            .unwrap()
            .set_remaining(remaining, std::time::Instant::now());
    }

    pub fn rate_limit_remaining(&self) -> u32 {
        self.platform.rate_limit_remaining()
    }

    /// A future that ends when the sandbox is told to stop.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.shutdown.clone().cancelled_owned()
    }

    /// Stops serving, stops every dyno, and waits (briefly) for the tasks.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.join_all()).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.platform.dynos.stop_all();
    }
}
