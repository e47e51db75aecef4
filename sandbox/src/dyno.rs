//! The dynos: each one a real HTTP server on its own loopback port, serving any path with a
//! fixed capacity (`concurrency` requests at a time, each taking `service_time`, or a time
//! drawn around it, [`ServiceTimes`]), the rest waiting in the dyno's own queue. The pool starts
//! and stops dynos to match the formation's quantity, the way Heroku's dyno manager does; a
//! dyno started by a scale up serves only after `boot_time`, as a real one boots.
//!
//! A dyno knows nothing of the router or the API; the pool knows nothing of HTTP routing.
//! A stopped dyno stops taking connections and finishes the requests it holds.

use axum::extract::{Request, State};
use axum::http::header::HeaderValue;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long each request takes a dyno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceTimes {
    /// Exactly `service_time`, every request.
    #[default]
    Fixed,
    /// Drawn from an exponential distribution of mean `service_time`: the variety of a real
    /// app's requests, and the M/M/c model `autoscalebot simulate` assumes.
    Exponential,
}

/// One running dyno.
#[derive(Debug)]
pub struct Dyno {
    /// `web.1`, `web.2`, … as Heroku names them.
    pub name: String,
    /// A uuid, as the Platform API's dyno `id`.
    pub id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub address: SocketAddr,
    pub concurrency: u32,
    /// Requests the router has handed this dyno and not yet seen answered.
    pub(crate) outstanding: AtomicU32,
    /// When it starts serving: the router sends it nothing before.
    pub(crate) ready_at: tokio::time::Instant,
    served: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Dyno {
    /// Binds a loopback port and starts serving.
    async fn start(
        name: String,
        concurrency: u32,
        service_time: Duration,
        service_times: ServiceTimes,
        boot_time: Duration,
    ) -> std::io::Result<Arc<Dyno>> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let state = DynoState {
            name: name.clone(),
            capacity: Arc::new(Semaphore::new(concurrency as usize)),
            service_time,
            service_times,
            served: served.clone(),
        };
        let app = axum::Router::new().fallback(serve).with_state(state);
        let stopped = stop.clone();
        tokio::spawn(async move {
            let server =
                axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned());
            if let Err(error) = server.await {
                tracing::warn!(%error, "A dyno's server failed.");
            }
        });
        Ok(Arc::new(Dyno {
            name,
            id: uuid::Uuid::new_v4().to_string(),
            started_at: chrono::Utc::now(),
            address,
            concurrency,
            outstanding: AtomicU32::new(0),
            ready_at: tokio::time::Instant::now() + boot_time,
            served,
            stop,
        }))
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Whether it has booted.
    pub fn is_ready(&self) -> bool {
        tokio::time::Instant::now() >= self.ready_at
    }
}

#[derive(Clone)]
struct DynoState {
    name: String,
    capacity: Arc<Semaphore>,
    service_time: Duration,
    service_times: ServiceTimes,
    served: Arc<AtomicU64>,
}

/// Every path, the heartbeat included: wait for a free slot, work for `service_time`, answer.
async fn serve(State(dyno): State<DynoState>, request: Request) -> Response {
    let _slot = dyno
        .capacity
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let work = match dyno.service_times {
        ServiceTimes::Fixed => dyno.service_time,
        // 1 - u keeps ln away from 0.
        ServiceTimes::Exponential => dyno
            .service_time
            .mul_f64(-(1.0 - fastrand::f64()).ln())
            .min(Duration::from_secs(600)),
    };
    tokio::time::sleep(work).await;
    dyno.served.fetch_add(1, Ordering::Relaxed);
    let mut response = format!("{} served {}\n", dyno.name, request.uri().path()).into_response();
    if let Ok(value) = HeaderValue::from_str(&dyno.name) {
        response.headers_mut().insert("x-dyno", value);
    }
    response
}

/// The dynos of one process type.
#[derive(Debug)]
pub struct DynoPool {
    process_type: String,
    concurrency: u32,
    service_time: Duration,
    service_times: ServiceTimes,
    /// How long a dyno started by a scale up takes before it serves.
    boot_time: Duration,
    /// Dynos started from now on boot (the first ones are up when the platform starts).
    booting: std::sync::atomic::AtomicBool,
    dynos: Mutex<Vec<Arc<Dyno>>>,
    /// Told when a dyno frees a slot or the set of dynos changes; the router waits on it.
    pub(crate) capacity_changed: Notify,
}

impl DynoPool {
    pub fn new(process_type: &str, concurrency: u32, service_time: Duration) -> Self {
        DynoPool {
            process_type: process_type.to_string(),
            concurrency: concurrency.max(1),
            service_time,
            service_times: ServiceTimes::Fixed,
            boot_time: Duration::ZERO,
            booting: std::sync::atomic::AtomicBool::new(false),
            dynos: Mutex::new(Vec::new()),
            capacity_changed: Notify::new(),
        }
    }

    /// Draws each request's time as `service_times` says.
    pub fn with_service_times(mut self, service_times: ServiceTimes) -> Self {
        self.service_times = service_times;
        self
    }

    /// Dynos started after [`DynoPool::booted`] serve only `boot_time` after they start.
    pub fn with_boot_time(mut self, boot_time: Duration) -> Self {
        self.boot_time = boot_time;
        self
    }

    /// The first dynos are up: from now on a new dyno boots.
    pub fn booted(&self) {
        self.booting.store(true, Ordering::Relaxed);
    }

    pub fn dynos(&self) -> Vec<Arc<Dyno>> {
        self.dynos.lock().unwrap().clone()
    }

    pub fn running(&self) -> u32 {
        self.dynos.lock().unwrap().len() as u32
    }

    /// Starts or stops dynos until `quantity` run. New dynos take the next numbers; the
    /// highest numbers stop first.
    pub async fn scale_to(&self, quantity: u32) -> std::io::Result<()> {
        loop {
            let running = self.running();
            if running < quantity {
                let name = format!("{}.{}", self.process_type, running + 1);
                let boot_time = if self.booting.load(Ordering::Relaxed) {
                    self.boot_time
                } else {
                    Duration::ZERO
                };
                let dyno = Dyno::start(
                    name,
                    self.concurrency,
                    self.service_time,
                    self.service_times,
                    boot_time,
                )
                .await?;
                tracing::info!(dyno = %dyno.name, address = %dyno.address, "Dyno started.");
                self.dynos.lock().unwrap().push(dyno);
            } else if running > quantity {
                let stopped = self.dynos.lock().unwrap().pop();
                if let Some(dyno) = stopped {
                    dyno.stop.cancel();
                    tracing::info!(dyno = %dyno.name, "Dyno stopping after the requests it holds.");
                }
            } else {
                break;
            }
            self.capacity_changed.notify_one();
        }
        Ok(())
    }

    /// Takes a slot on the booted dyno with the fewest outstanding requests, if any has one
    /// free.
    pub(crate) fn try_slot(&self) -> Option<Arc<Dyno>> {
        let dynos = self.dynos.lock().unwrap();
        let dyno = dynos
            .iter()
            .filter(|dyno| dyno.is_ready() && dyno.outstanding() < dyno.concurrency)
            .min_by_key(|dyno| dyno.outstanding())?;
        dyno.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(dyno.clone())
    }

    /// A booted dyno at random, busy or not (Heroku's router: the dyno queues what it cannot
    /// serve yet); any dyno while none has booted; `None` with no dyno at all.
    pub(crate) fn random_dyno(&self) -> Option<Arc<Dyno>> {
        let dynos = self.dynos.lock().unwrap();
        let ready: Vec<&Arc<Dyno>> = dynos.iter().filter(|dyno| dyno.is_ready()).collect();
        let dyno = if ready.is_empty() {
            dynos.get(fastrand::usize(..dynos.len().max(1)))?
        } else {
            ready[fastrand::usize(..ready.len())]
        };
        dyno.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(dyno.clone())
    }

    /// Gives a slot back.
    pub(crate) fn release(&self, dyno: &Dyno) {
        dyno.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.capacity_changed.notify_one();
    }

    /// Stops every dyno.
    pub fn stop_all(&self) {
        for dyno in self.dynos.lock().unwrap().drain(..) {
            dyno.stop.cancel();
        }
        self.capacity_changed.notify_one();
    }
}
