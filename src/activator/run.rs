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
//! The hot path is one atomic load (`up`) and the meter's atomics; only a client that finds the
//! target down touches the `watch` channel, and only the controller task starts or stops.

use super::meter::TrafficMeter;
use super::state::{Action, Activity, Lifecycle, Phase, Rules};
use crate::bot::{scaler_for, shutdown_hook_for};
use crate::decision::{bounds_at, StopReason};
use crate::settings::{ActivatorSettings, AppSettings};
use autoscalebot_backends::activator::forward::forward;
use autoscalebot_backends::activator::process::{LocalProcess, SIGKILL};
use autoscalebot_backends::activator::{
    bind, close_cleanly, BindError, BoundSocket, Endpoint, Stream,
};
use autoscalebot_backends::scaler::Scaler;
use autoscalebot_backends::shutdown_hook::ShutdownHook;
use chrono::Utc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::{watch, Notify};
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
    /// The hot path's only check: the target is up, connect and forward.
    up: AtomicBool,
    meter: Arc<TrafficMeter>,
    /// A client needs the target.
    demand: Notify,
    /// A client could not reach a target believed up.
    lost: Notify,
    view: watch::Sender<View>,
    target: Endpoint,
    wake_timeout: Duration,
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
    let rules = Rules {
        idle_after: activator.idle_after,
        max_age: settings.thresholds.max_age,
    };
    tracing::info!(
        listen = %bound.local_description(),
        target = %activator.target.as_ref().map_or("fd 3 handoff".to_string(), |t| t.to_string()),
        idle_after = ?rules.idle_after,
        max_age = ?rules.max_age,
        wake_timeout = ?activator.wake_timeout,
        "Activator listening."
    );
    match (&activator.command, &activator.target) {
        (Some(command), None) => handoff(bound, &activator, command, rules, hook, shutdown).await,
        (command, Some(target)) => {
            let control = match command {
                Some(command) => Control::Process {
                    command: command.clone(),
                },
                None => Control::Scaler(scaler_for(&settings, client, &shutdown)),
            };
            let shared = Arc::new(Shared {
                up: AtomicBool::new(false),
                meter: TrafficMeter::new(),
                demand: Notify::new(),
                lost: Notify::new(),
                view: watch::channel(View {
                    phase: Phase::Down,
                    failed_starts: 0,
                })
                .0,
                target: target.clone(),
                wake_timeout: activator.wake_timeout,
            });
            proxy(
                bound, shared, control, &settings, &activator, rules, hook, shutdown,
            )
            .await
        }
        (None, None) => unreachable!("settings require a target or a command"),
    }
}

/// How often the idle and max-age timer looks: often enough to stop within a few percent.
fn tick_interval(rules: Rules) -> Duration {
    let shortest = [rules.idle_after, rules.max_age]
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
    rules: Rules,
    hook: Option<ShutdownHook>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = bound.into_listener()?;
    let controller = {
        let shared = shared.clone();
        let settings = settings.clone();
        let activator = activator.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            control_loop(shared, control, settings, activator, rules, hook, shutdown).await
        })
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(client) => {
                    tokio::spawn(serve(shared.clone(), client));
                }
                Err(error) => {
                    // Out of file descriptors, most likely: wait a little rather than spin.
                    tracing::warn!(%error, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = controller.await;
    Ok(())
}

/// One client: counted open for its whole life; forwarded when the target is up, else held
/// until it is (or until `wake_timeout`, when it is closed cleanly).
async fn serve(shared: Arc<Shared>, client: Stream) {
    let _open = shared.meter.opened();
    let deadline = Instant::now() + shared.wake_timeout;
    let mut client = client;
    let mut view = shared.view.subscribe();
    loop {
        if shared.up.load(Ordering::SeqCst) {
            match shared.target.connect().await {
                Ok(mut target) => {
                    if let Err(error) = forward(&mut client, &mut target).await {
                        tracing::debug!(%error, "A forwarded connection ended with an error.");
                    }
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, target = %shared.target, "The target refused a connection; checking it.");
                    shared.lost.notify_one();
                    if tokio::time::timeout_at(
                        deadline,
                        tokio::time::sleep(Duration::from_millis(50)),
                    )
                    .await
                    .is_err()
                    {
                        break;
                    }
                    continue;
                }
            }
        }
        let seen_failures = view.borrow_and_update().failed_starts;
        shared.demand.notify_one();
        let outcome = tokio::time::timeout_at(deadline, async {
            view.wait_for(|view| view.phase == Phase::Up || view.failed_starts > seen_failures)
                .await
                .map(|view| *view)
        })
        .await;
        match outcome {
            Ok(Ok(now)) if now.phase == Phase::Up => continue,
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
    rules: Rules,
    hook: Option<ShutdownHook>,
    shutdown: CancellationToken,
) {
    let mut life = Lifecycle::default();
    let mut process: Option<LocalProcess> = None;
    let mut ticker = tokio::time::interval(tick_interval(rules));
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
                let ok = tokio::select! {
                    ok = start(&control, &shared, &mut process, &settings) => ok,
                    _ = shutdown.cancelled() => break,
                };
                life.started(Instant::now(), ok);
                shared.up.store(ok, Ordering::SeqCst);
                publish(&life);
            }
            _ = shared.lost.notified() => {
                if life.phase == Phase::Up && shared.target.connect().await.is_err() {
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
                let activity = Activity {
                    open_connections: shared.meter.open_connections(),
                    since_last: shared.meter.since_last(),
                };
                let min_in_force = match control {
                    Control::Scaler(_) => bounds_at(&settings, Utc::now()).min,
                    Control::Process { .. } => 0,
                };
                let Some(Action::Stop(reason)) = life.tick(Instant::now(), rules, activity, min_in_force) else {
                    continue;
                };
                // Close the door, then look once more: a client that counted itself open
                // before the door closed keeps the target (both sides use SeqCst).
                shared.up.store(false, Ordering::SeqCst);
                if reason == StopReason::Idle && shared.meter.open_connections() > 0 {
                    shared.up.store(true, Ordering::SeqCst);
                    life.stop_cancelled();
                    continue;
                }
                publish(&life);
                let why = describe(reason, rules);
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

fn describe(reason: StopReason, rules: Rules) -> String {
    let shown =
        |duration: Option<Duration>| crate::settings::format_duration(duration.unwrap_or_default());
    match reason {
        StopReason::Idle => format!("no connection for {} (idle_after)", shown(rules.idle_after)),
        StopReason::MaxAge => format!("running for {} (max_age)", shown(rules.max_age)),
    }
}

/// Starts the target and waits until it accepts a connection, within `wake_timeout`. On a
/// failure, whatever was started is stopped again, so nothing is left running.
async fn start(
    control: &Control,
    shared: &Shared,
    process: &mut Option<LocalProcess>,
    settings: &AppSettings,
) -> bool {
    let started_at = Instant::now();
    let deadline = started_at + shared.wake_timeout;
    match control {
        Control::Scaler(scaler) => {
            let quantity = bounds_at(settings, Utc::now()).min.max(1);
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
    rules: Rules,
    hook: Option<ShutdownHook>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // SAFETY: `BoundSocket` owns its socket for its whole life and always returns that fd.
    let socket = unsafe { AsyncFd::register_with_interest(bound, tokio::io::Interest::READABLE) }
        .map_err(|error| error.into_parts().1)?;
    let meter = TrafficMeter::new();
    let mut life = Lifecycle::default();
    let mut process: Option<LocalProcess> = None;
    let mut ticker = tokio::time::interval(tick_interval(rules));
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
                    life.started(Instant::now(), started.is_some());
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
                let activity = Activity { open_connections: 0, since_last: meter.since_last() };
                if let Some(Action::Stop(reason)) = life.tick(Instant::now(), rules, activity, 0) {
                    let why = describe(reason, rules);
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
