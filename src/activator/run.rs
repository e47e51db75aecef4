//! The activator's async shell: accept, hold, wake, forward, stop. It carries out what the
//! [`Lifecycle`] decides and never decides itself.
//!
//! Two modes:
//! - **proxy** (a `target` is set): every connection is accepted here and forwarded to the
//!   target. The target is started by the configured scaler (Heroku formation to `min_dynos`,
//!   at least 1, or the command hooks) or as a local `command`, and stopped the same way.
//! - **handoff** (a `command` and no `target`): the command gets the listening socket as fd 3
//!   (systemd protocol) and accepts on it itself; connections wait in the kernel's backlog
//!   while it starts. Traffic is then each new connection's arrival, as in soad.
//!
//! In proxy mode the forwarding lanes (`autoscalebot_backends::activator::forward`) accept and
//! forward on their own threads while `up` is set: the hot path is that one atomic load and the
//! meter's atomics. A client they accept while it is not set is handed here and waits (`serve`)
//! for the target to be up; then it is released (`release.rs`: a window of connects at a time,
//! each confirmed, retried with back-off until `wake_timeout`) and handed back to the lanes.
//! `up` opens again once the herd that waited for the start has been released, so that herd is
//! paced even against a listen backlog of 5. Only the controller task starts, stops, or sets
//! `up`.

use super::release::{self, Window};
use super::state::{rules, Action, Lifecycle, Phase};
use crate::bot::{scaler_for, shutdown_hook_for};
use crate::clock::{tokio_clock, Clock};
use crate::decision::{Config, ScaleReason};
use crate::settings::{ActivatorSettings, AppSettings};
use crate::traffic::TrafficMeter;
use autoscalebot_backends::activator::forward::{
    default_lanes, AcceptSettings, Cold, Forwarder, Meter,
};
use autoscalebot_backends::activator::process::{LocalProcess, SIGKILL};
use autoscalebot_backends::activator::{bind, close_cleanly, BindError, BoundSocket, Endpoint};
use autoscalebot_backends::scaler::Scaler;
use autoscalebot_backends::shutdown_hook::ShutdownHook;
use chrono::Utc;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The name a handed-off socket gets in `LISTEN_FDNAMES`.
pub const FD_NAME: &str = "activator";

/// How the target is started and stopped.
enum Control {
    Scaler(Arc<dyn Scaler>),
    Process { command: String },
}

/// What waiting clients watch: the phase, and how many starts have failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    phase: Phase,
    failed_starts: u64,
}

/// Everything the connection tasks share with the controller.
struct Shared {
    /// The lanes' only check: the target is up and no client waits here, connect and forward.
    up: Arc<AtomicBool>,
    meter: Arc<TrafficMeter>,
    /// A client needs the target.
    demand: Notify,
    /// A client could not reach a target believed up.
    lost: Notify,
    /// Clients that waited for a start and are not yet forwarded or closed: the herd.
    herd: AtomicUsize,
    /// The last of the herd is gone: the controller may set `up`.
    released: Notify,
    /// How many waiting clients connect to the target at once.
    window: Window,
    view: watch::Sender<View>,
    target: Endpoint,
    wake_timeout: Duration,
    /// The listening socket is a unix socket, so are the clients.
    unix_clients: bool,
}

/// One client that waited for a start, counted in [`Shared::herd`] until dropped. Only these
/// hold `up` closed: clients that arrive while the herd is released go the same slow way but
/// do not, or a steady stream of them would keep the lanes from ever forwarding alone.
struct HerdMember<'a>(&'a Shared);

impl<'a> HerdMember<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.herd.fetch_add(1, Ordering::SeqCst);
        HerdMember(shared)
    }
}

impl Drop for HerdMember<'_> {
    fn drop(&mut self) {
        if self.0.herd.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.released.notify_one();
        }
    }
}

/// Binds the listening socket; a bad `listen` is the caller's exit 2.
pub fn bind_listen(settings: &AppSettings) -> Result<BoundSocket, BindError> {
    let activator = settings
        .activator
        .as_ref()
        .expect("settings for `activate` have an [activator] table");
    bind(&activator.listen)
}

/// Runs the activator on `bound` until `shutdown`; then stops a local command it started
/// (a target started through the scaler is left as it is, as the worker would leave it).
pub async fn run(
    settings: AppSettings,
    bound: BoundSocket,
    client: reqwest::Client,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let activator = settings
        .activator
        .clone()
        .expect("settings for `activate` have an [activator] table");
    let hook = shutdown_hook_for(&settings, client.clone());
    // A local command is no dyno: no minimum holds it.
    let local = activator.command.is_some();
    let config = rules(settings.engine_config(), activator.idle_after, local);
    // Tokio's time, so that paused-time tests move the engine's clock with the timers.
    let clock = tokio_clock(Utc::now());
    tracing::info!(
        listen = %bound.local_description(),
        target = %activator.target.as_ref().map_or("fd 3 handoff".to_string(), |t| t.to_string()),
        idle_after = ?config.idle_after,
        max_age = ?config.max_age,
        wake_timeout = ?activator.wake_timeout,
        "Activator listening."
    );
    let engine = Engine { config, clock };
    match (&activator.command, &activator.target) {
        (Some(command), None) => handoff(bound, &activator, command, engine, hook, shutdown).await,
        (command, Some(target)) => {
            let control = match command {
                Some(command) => Control::Process {
                    command: command.clone(),
                },
                None => Control::Scaler(scaler_for(&settings, client, &shutdown)),
            };
            let shared = Arc::new(Shared {
                up: Arc::new(AtomicBool::new(false)),
                meter: TrafficMeter::new(),
                demand: Notify::new(),
                lost: Notify::new(),
                herd: AtomicUsize::new(0),
                released: Notify::new(),
                window: Window::default(),
                unix_clients: matches!(activator.listen, Endpoint::Unix(_)),
                view: watch::channel(View {
                    phase: Phase::Down,
                    failed_starts: 0,
                })
                .0,
                target: target.clone(),
                wake_timeout: activator.wake_timeout,
            });
            proxy(
                bound, shared, control, &settings, &activator, engine, hook, shutdown,
            )
            .await
        }
        (None, None) => unreachable!("settings require a target or a command"),
    }
}

/// The engine's settings as the activator uses them, and its clock.
#[derive(Clone)]
struct Engine {
    config: Config,
    clock: Clock,
}

/// How often the idle and max-age timer looks: often enough to stop within a few percent.
fn tick_interval(config: &Config) -> Duration {
    let shortest = [config.idle_after, config.max_age]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(5));
    (shortest / 10).clamp(Duration::from_millis(20), Duration::from_secs(5))
}

#[allow(clippy::too_many_arguments)]
async fn proxy(
    bound: BoundSocket,
    shared: Arc<Shared>,
    control: Control,
    settings: &AppSettings,
    activator: &ActivatorSettings,
    engine: Engine,
    hook: Option<ShutdownHook>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let (cold_sender, mut cold) = mpsc::unbounded_channel();
    let accept = AcceptSettings {
        target: shared.target.clone(),
        up: shared.up.clone(),
        meter: shared.meter.clone() as Arc<dyn Meter>,
        cold: cold_sender,
    };
    let forwarder = Arc::new(Forwarder::start(
        default_lanes(),
        Some(&bound),
        Some(accept),
    )?);
    let controller = {
        let shared = shared.clone();
        let settings = settings.clone();
        let activator = activator.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            control_loop(shared, control, settings, activator, engine, hook, shutdown).await
        })
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            client = cold.recv() => match client {
                Some(client) => {
                    tokio::spawn(serve(shared.clone(), forwarder.clone(), client));
                }
                None => {
                    tracing::error!("Every forwarding lane has stopped; the activator stops.");
                    shutdown.cancel();
                    break;
                }
            },
        }
    }
    forwarder.stop();
    drop(bound);
    let _ = controller.await;
    Ok(())
}

/// Whether a failed connection says the target is gone (nothing listens), rather than busy.
fn gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
    )
}

/// Whether the target takes a connection now: a full unix backlog is busy, not gone.
async fn reachable(target: &Endpoint) -> bool {
    match target.connect().await {
        Ok(_) => true,
        Err(error) => error.kind() == io::ErrorKind::WouldBlock,
    }
}

/// A client the lanes handed over: counted open for its whole life; held until the target is
/// up, then released through the gate (each attempt confirmed, retried with back-off) and
/// handed back to the lanes; closed cleanly when the target failed to start or when
/// `wake_timeout` has passed since it arrived.
async fn serve(shared: Arc<Shared>, forwarder: Arc<Forwarder>, cold: Cold) {
    let mut herd = None;
    let deadline = Instant::now() + shared.wake_timeout;
    if let Some(error) = cold.lost.as_ref().filter(|error| gone(error)) {
        tracing::warn!(%error, target = %shared.target, "The target refused a connection; checking it.");
        shared.lost.notify_one();
    }
    let (client, mut first, open) = match cold.into_parts(shared.unix_clients) {
        Ok(parts) => parts,
        Err(error) => {
            tracing::warn!(%error, "A client could not be taken over; closing it.");
            return;
        }
    };
    let mut view = shared.view.subscribe();
    let mut attempt = 0;
    loop {
        let seen = *view.borrow_and_update();
        if seen.phase != Phase::Up {
            herd.get_or_insert_with(|| HerdMember::new(&shared));
            shared.demand.notify_one();
            let outcome = tokio::time::timeout_at(deadline, async {
                view.wait_for(|view| {
                    view.phase == Phase::Up || view.failed_starts > seen.failed_starts
                })
                .await
                .map(|view| *view)
            })
            .await;
            match outcome {
                Ok(Ok(now)) if now.phase == Phase::Up => {}
                Ok(Ok(_)) => {
                    tracing::warn!("The target failed to start; closing a waiting client.");
                    close_cleanly(client).await;
                    return;
                }
                // The controller is gone: the activator is shutting down.
                Ok(Err(_)) => return,
                Err(_) => break,
            }
        }
        attempt += 1;
        let at_most = deadline.saturating_duration_since(Instant::now());
        let connected = release::attempt(
            &shared.window,
            &shared.target,
            &client,
            &mut first,
            attempt,
            at_most,
        )
        .await;
        match connected {
            Ok(target) => {
                // Not awaited: the lane forwards it from now on, and counts it closed at the end.
                drop(forwarder.forward(client, target, open));
                drop(herd);
                return;
            }
            Err(error) => {
                tracing::debug!(%error, attempt, target = %shared.target, "A waiting client's connection to the target was not taken; trying again.");
                if gone(&error) {
                    shared.lost.notify_one();
                }
            }
        }
        let pause = release::RETRY.delay(attempt);
        if Instant::now() + pause >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    tracing::warn!(
        wake_timeout = ?shared.wake_timeout,
        target = %shared.target,
        "A client waited past wake_timeout for the target; closing it."
    );
    close_cleanly(client).await;
}

async fn control_loop(
    shared: Arc<Shared>,
    control: Control,
    settings: AppSettings,
    activator: ActivatorSettings,
    engine: Engine,
    hook: Option<ShutdownHook>,
    shutdown: CancellationToken,
) {
    let Engine { config, clock } = engine;
    let mut life = Lifecycle::new(&config);
    let mut process: Option<LocalProcess> = None;
    let mut ticker = tokio::time::interval(tick_interval(&config));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let publish = |life: &Lifecycle| {
        shared.view.send_replace(View {
            phase: life.phase,
            failed_starts: life.failed_starts,
        });
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = shared.demand.notified() => {
                if life.demand() != Some(Action::Start) {
                    continue;
                }
                publish(&life);
                let quantity = match control {
                    Control::Scaler(_) => config.bounds_at(clock()).min.max(1),
                    Control::Process { .. } => 1,
                };
                let ok = tokio::select! {
                    ok = start(&control, quantity, &shared, &mut process, &settings) => ok,
                    _ = shutdown.cancelled() => break,
                };
                life.started(&config, clock(), ok.then_some(quantity));
                // The herd that waited for this start is released first; `up` opens once it is.
                if ok {
                    open_when_released(&shared);
                } else {
                    shared.up.store(false, Ordering::SeqCst);
                }
                publish(&life);
            }
            _ = shared.released.notified() => {
                if life.phase == Phase::Up {
                    open_when_released(&shared);
                }
            }
            _ = shared.lost.notified() => {
                if life.phase == Phase::Up && !reachable(&shared.target).await {
                    tracing::warn!(target = %shared.target, "The target went away; the next client starts it again.");
                    shared.up.store(false, Ordering::SeqCst);
                    stop_target(&control, &mut process, &activator).await;
                    life.stopped();
                    publish(&life);
                }
            }
            _ = ticker.tick() => {
                if let Some(exited) = process.as_mut().and_then(LocalProcess::try_exited) {
                    tracing::warn!(status = %exited, "The target exited by itself; the next client starts it again.");
                    process = None;
                    if life.phase == Phase::Up {
                        shared.up.store(false, Ordering::SeqCst);
                        life.stopped();
                        publish(&life);
                    }
                }
                let now = clock();
                let traffic = shared.meter.snapshot(now);
                let Some(Action::Stop(reason)) = life.tick(&config, now, traffic) else {
                    continue;
                };
                // Close the door, then look once more: a client that counted itself open
                // before the door closed keeps the target (both sides use SeqCst).
                shared.up.store(false, Ordering::SeqCst);
                if matches!(reason, ScaleReason::Idle { .. }) && shared.meter.open_connections() > 0 {
                    shared.up.store(true, Ordering::SeqCst);
                    life.stop_cancelled();
                    continue;
                }
                publish(&life);
                let why = describe(&reason);
                tracing::info!(reason = %why, "Stopping the target.");
                if let Some(hook) = &hook {
                    hook.call_and_log(&why).await;
                }
                stop_target(&control, &mut process, &activator).await;
                life.stopped();
                publish(&life);
            }
        }
    }
    if let Some(process) = process.take() {
        tracing::info!(
            pid = process.pid(),
            "Stopping the local target before exiting."
        );
        let _ = process
            .stop(activator.stop_signal, activator.stop_timeout)
            .await;
    }
}

/// Sets `up` once no client that waited for the start is left: from then on the lanes forward
/// new clients straight to the target.
fn open_when_released(shared: &Shared) {
    if shared.herd.load(Ordering::SeqCst) == 0 && !shared.up.swap(true, Ordering::SeqCst) {
        tracing::info!(
            "The clients that waited are released; new clients go straight to the target."
        );
    }
}

/// Why the target stops, for the log and the shutdown hook: the activator's traffic is
/// connections.
fn describe(reason: &ScaleReason) -> String {
    match reason {
        ScaleReason::Idle { after } => format!(
            "no connection for {} (idle_after)",
            crate::settings::format_duration(*after)
        ),
        other => crate::notices::describe(other),
    }
}

/// Starts the target and waits until it accepts a connection, within `wake_timeout`. On a
/// failure, whatever was started is stopped again, so nothing is left running.
async fn start(
    control: &Control,
    quantity: u32,
    shared: &Shared,
    process: &mut Option<LocalProcess>,
    settings: &AppSettings,
) -> bool {
    let started_at = Instant::now();
    let deadline = started_at + shared.wake_timeout;
    match control {
        Control::Scaler(scaler) => {
            tracing::info!(quantity, scaler = %scaler.describe(), "Starting the target.");
            if let Err(error) = scaler.set(quantity).await {
                tracing::error!(%error, kind = error.kind(), "Starting the target failed.");
                return false;
            }
        }
        Control::Process { command } => match LocalProcess::spawn(command, None, FD_NAME) {
            Ok(child) => {
                tracing::info!(pid = child.pid(), "Started the target.");
                *process = Some(child);
            }
            Err(error) => {
                tracing::error!(%error, "The target command could not be started.");
                return false;
            }
        },
    }
    let mut pause = Duration::from_millis(10);
    loop {
        if shared.target.connect().await.is_ok() {
            tracing::info!(target = %shared.target, waited_ms = started_at.elapsed().as_millis() as u64, "The target accepts connections.");
            return true;
        }
        if let Some(status) = process.as_mut().and_then(LocalProcess::try_exited) {
            tracing::error!(%status, "The target exited while starting.");
            *process = None;
            return false;
        }
        if Instant::now() >= deadline {
            tracing::error!(
                target = %shared.target,
                wake_timeout = ?shared.wake_timeout,
                "The target did not accept connections within wake_timeout; stopping it again."
            );
            let activator = settings.activator.as_ref().expect("activator settings");
            stop_target(control, process, activator).await;
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

async fn stop_target(
    control: &Control,
    process: &mut Option<LocalProcess>,
    activator: &ActivatorSettings,
) {
    match control {
        Control::Scaler(scaler) => match scaler.set(0).await {
            Ok(_) => tracing::info!("Stopped the target."),
            Err(error) => {
                tracing::error!(%error, kind = error.kind(), "Stopping the target failed.")
            }
        },
        Control::Process { .. } => {
            if let Some(child) = process.take() {
                let pid = child.pid();
                match child
                    .stop(activator.stop_signal, activator.stop_timeout)
                    .await
                {
                    Ok(status) => {
                        tracing::info!(pid, %status, signal = %activator.stop_signal_name, "Stopped the target.")
                    }
                    Err(error) => tracing::error!(pid, %error, "Stopping the target failed."),
                }
            }
        }
    }
}

/// Handoff mode: the command accepts on our listening socket (fd 3) itself.
async fn handoff(
    bound: BoundSocket,
    activator: &ActivatorSettings,
    command: &str,
    engine: Engine,
    hook: Option<ShutdownHook>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Engine { config, clock } = engine;
    // SAFETY: `BoundSocket` owns its socket for its whole life and always returns that fd.
    let socket = unsafe { AsyncFd::register_with_interest(bound, tokio::io::Interest::READABLE) }
        .map_err(|error| error.into_parts().1)?;
    let meter = TrafficMeter::new();
    let mut life = Lifecycle::new(&config);
    let mut process: Option<LocalProcess> = None;
    let mut ticker = tokio::time::interval(tick_interval(&config));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let exited = async {
            match process.as_mut() {
                Some(child) => child.exited().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            status = exited => {
                tracing::warn!(status = ?status.ok(), "The target exited by itself; the next connection starts it again.");
                process = None;
                life.stopped();
            }
            ready = socket.readable() => {
                let mut ready = ready?;
                meter.touch();
                if life.demand() == Some(Action::Start) {
                    let started = start_handoff(socket.get_ref(), command, activator.wake_timeout).await;
                    life.started(&config, clock(), started.is_some().then_some(1));
                    if started.is_none() {
                        let closed = socket.get_ref().close_waiting_connections();
                        tracing::warn!(closed, "The target failed to start; closed the waiting clients.");
                    }
                    process = started;
                }
                // Edge-triggered from here: the next wake is the next new connection.
                ready.clear_ready();
            }
            _ = ticker.tick() => {
                // The command accepts on the socket itself: traffic is each new connection's
                // arrival, and none is ever counted open here.
                let now = clock();
                if let Some(Action::Stop(reason)) = life.tick(&config, now, meter.snapshot(now)) {
                    let why = describe(&reason);
                    tracing::info!(reason = %why, "Stopping the target.");
                    if let Some(hook) = &hook {
                        hook.call_and_log(&why).await;
                    }
                    stop_target(&Control::Process { command: command.to_string() }, &mut process, activator).await;
                    life.stopped();
                }
            }
        }
    }
    if let Some(child) = process.take() {
        tracing::info!(
            pid = child.pid(),
            "Stopping the local target before exiting."
        );
        let _ = child
            .stop(activator.stop_signal, activator.stop_timeout)
            .await;
    }
    Ok(())
}

/// Starts the command with the socket and waits until it has taken the waiting connections
/// (the socket has none left), within `wake_timeout`. `None`: it failed and is gone.
async fn start_handoff(
    socket: &BoundSocket,
    command: &str,
    wake_timeout: Duration,
) -> Option<LocalProcess> {
    let started_at = Instant::now();
    let mut child = match LocalProcess::spawn(command, Some(socket.raw_fd()), FD_NAME) {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(%error, "The target command could not be started.");
            return None;
        }
    };
    tracing::info!(
        pid = child.pid(),
        "Started the target with the listening socket as fd 3."
    );
    loop {
        if let Some(status) = child.try_exited() {
            tracing::error!(%status, "The target exited while starting.");
            return None;
        }
        if !socket.has_waiting_connection() {
            tracing::info!(
                waited_ms = started_at.elapsed().as_millis() as u64,
                "The target accepts connections."
            );
            return Some(child);
        }
        if started_at.elapsed() >= wake_timeout {
            tracing::error!(
                ?wake_timeout,
                "The target did not accept connections within wake_timeout; killing it."
            );
            let _ = child.stop(SIGKILL, Duration::from_secs(5)).await;
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
