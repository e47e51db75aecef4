//! Notifiers tell people what the worker did. One file per backend, holding its settings
//! section, their checks, its name and how it is built; [`NOTIFIERS`] is the registry, one
//! line per backend, and what `notification_backends` may name. `template.rs` fills web hook
//! bodies.
//!
//! Which events exist and when they fire is decided by the engine; this module only carries an
//! [`Event`] to each backend. [`Dispatcher`] gives every backend its own bounded queue and task,
//! with a timeout per send and retries with capped backoff ([`DeliveryPolicy`]), so a slow or
//! failing backend never holds up the heartbeat loop or the other backends, and what it lost
//! is counted and told through it when it delivers again.

pub mod console;
pub mod email;
mod http;
pub mod log;
pub mod slack;
pub mod template;
pub mod test;
pub mod webhook;

pub use console::ConsoleNotifier;
pub use email::{EmailConfig, EmailNotifier};
pub use log::LogNotifier;
pub use template::Template;
pub use test::TestNotifier;
pub use webhook::{WebhookConfig, WebhookNotifier};

use crate::retry::Backoff;
use crate::settings::{Check, Raw, Table};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What happened. The names are stable: they appear in web hooks and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `notify_on_every_ping`.
    Ping,
    /// `notify_on_every_scale`.
    Scaled,
    /// `notify_on_scale_fails`: a read or a write of the formation failed.
    ScaleFailed,
    /// The platform answers again after `ScaleFailed`.
    ScaleRecovered,
    /// `notify_if_needs_exceed_max`: at the max and still too slow.
    NeedsAboveMax,
    NeedsAboveMaxEnded,
    /// `notify_if_needs_below_min`: at the min and still fast enough to remove dynos.
    NeedsBelowMin,
    NeedsBelowMinEnded,
    /// `notify_if_scale_diff_exceeds_threshold` within `…_period_in_minutes`.
    ScaleDiffExceeded,
    ScaleDiffEnded,
    /// The heartbeat answers a 4xx, or nothing listens where it points: a setting is wrong,
    /// and the worker cannot measure the app. Always told.
    HeartbeatMisconfigured,
    /// The heartbeat answers again.
    HeartbeatMisconfiguredEnded,
    /// `notify_on_downtime`: a planned downtime window started; told once per window.
    DowntimeStarted,
    /// The planned downtime window ended; the streaks start afresh.
    DowntimeEnded,
    /// Sent by hand to check that a backend delivers.
    Test,
    /// A backend delivers again after losing notifications; told through that backend only.
    NotificationsDropped,
}

impl EventKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Ping => "ping",
            EventKind::Scaled => "scaled",
            EventKind::ScaleFailed => "scale_failed",
            EventKind::ScaleRecovered => "scale_recovered",
            EventKind::NeedsAboveMax => "needs_above_max",
            EventKind::NeedsAboveMaxEnded => "needs_above_max_ended",
            EventKind::NeedsBelowMin => "needs_below_min",
            EventKind::NeedsBelowMinEnded => "needs_below_min_ended",
            EventKind::ScaleDiffExceeded => "scale_diff_exceeded",
            EventKind::ScaleDiffEnded => "scale_diff_ended",
            EventKind::HeartbeatMisconfigured => "heartbeat_misconfigured",
            EventKind::HeartbeatMisconfiguredEnded => "heartbeat_misconfigured_ended",
            EventKind::DowntimeStarted => "downtime_started",
            EventKind::DowntimeEnded => "downtime_ended",
            EventKind::Test => "test",
            EventKind::NotificationsDropped => "notifications_dropped",
        }
    }
}

/// One notification, with the numbers behind it so a backend can show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub app: String,
    pub kind: EventKind,
    /// A sentence for people: "Scaled to (3) dynos."
    pub message: String,
    /// Why, in a few words: "3 consecutive heartbeats slower than 1000 ms".
    pub reason: String,
    pub from_quantity: Option<u32>,
    pub to_quantity: Option<u32>,
    pub min_dynos: Option<u32>,
    pub max_dynos: Option<u32>,
    pub response_time_ms: Option<u64>,
}

impl Event {
    pub fn new(at: DateTime<Utc>, app: &str, kind: EventKind, message: impl Into<String>) -> Self {
        Event {
            at,
            app: app.to_string(),
            kind,
            message: message.into(),
            reason: String::new(),
            from_quantity: None,
            to_quantity: None,
            min_dynos: None,
            max_dynos: None,
            response_time_ms: None,
        }
    }

    /// One readable line: "2026-11-24T09:00:00Z my-app scaled: Scaled to (3) dynos. (reason)".
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} {} {}: {}",
            self.at.format("%Y-%m-%dT%H:%M:%SZ"),
            self.app,
            self.kind.as_str(),
            self.message
        );
        if !self.reason.is_empty() {
            line.push_str(&format!(" ({})", self.reason));
        }
        line
    }
}

/// Why a delivery failed. `retriable` says whether trying again may help (a timeout, a refused
/// connection, a 5xx) or not (a 4xx, a rejected recipient). Messages never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    pub message: String,
    pub retriable: bool,
}

impl NotifyError {
    /// A failure that may pass: the dispatcher retries it.
    pub fn transient(message: impl Into<String>) -> Self {
        NotifyError {
            message: message.into(),
            retriable: true,
        }
    }

    /// A failure that repeating will not fix: the dispatcher gives up at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        NotifyError {
            message: message.into(),
            retriable: false,
        }
    }
}

/// What a delivery reached: everyone, or everyone but the recipients the server refused (an
/// email address with no mailbox) while it took the message for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Each refused recipient with the server's answer: `nobody@example.com: permanent error
    /// (550): …`. The backend has logged each one.
    pub refused: Vec<String>,
}

impl Delivered {
    /// Every recipient got it.
    pub const ALL: Delivered = Delivered {
        refused: Vec::new(),
    };
}

/// How one backend's deliveries are paced: a small retry policy, as vector's sinks have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// How long one attempt may take before it is abandoned (and retried).
    pub timeout: Duration,
    /// Retriable failures are retried until the event has waited this long since it was
    /// queued; then it is dropped and counted. A stale notification helps nobody.
    pub give_up_after: Duration,
    /// The pause before the first retry; it doubles after each failed retry…
    pub first_backoff: Duration,
    /// …up to this.
    pub max_backoff: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            timeout: Duration::from_secs(10),
            give_up_after: Duration::from_secs(10 * 60),
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl DeliveryPolicy {
    /// The pause after failed attempt number `attempt` (1 for the first): capped exponential.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff::doubling(self.first_backoff, self.max_backoff).delay(attempt)
    }
}

/// A notification backend.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// The name used in `notification_backends`.
    fn name(&self) -> &'static str;
    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError>;
    /// Timeout and retries for this backend; local backends keep the default.
    fn policy(&self) -> DeliveryPolicy {
        DeliveryPolicy::default()
    }
}

/// The registry: every notification backend this build knows, in the order the hints list them.
pub const NOTIFIERS: &[NotifierEntry] = &[
    console::ENTRY,
    email::ENTRY,
    log::ENTRY,
    slack::ENTRY,
    test::ENTRY,
    webhook::ENTRY,
];

/// One backend of the registry: its name in `notification_backends`, and its settings.
pub struct NotifierEntry {
    pub name: &'static str,
    pub settings: SettingsKind,
}

/// A backend's settings, as the registry knows them.
pub enum SettingsKind {
    /// None: the backend is built, when named, by this.
    None(fn(&BuildContext) -> Arc<dyn Notifier>),
    /// A table named after the backend (`[email]`).
    Table {
        keys: fn() -> &'static [&'static str],
        /// Checks the table (absent when not given) for an app whose `notification_backends`
        /// names it (`named`) or not. `None`: not used, or wrong (the problems are in the
        /// check).
        read: fn(table: &Raw, named: bool, check: &mut Check) -> Option<Arc<dyn NotifierSettings>>,
    },
}

impl NotifierEntry {
    /// The keys of its table; none for a backend without settings.
    pub fn keys(&self) -> &'static [&'static str] {
        match self.settings {
            SettingsKind::None(_) => &[],
            SettingsKind::Table { keys, .. } => keys(),
        }
    }

    fn read(
        &self,
        table: &mut Table,
        named: bool,
        check: &mut Check,
    ) -> Option<Arc<dyn NotifierSettings>> {
        match self.settings {
            SettingsKind::None(build) => named.then(|| {
                Arc::new(NoSettings {
                    name: self.name,
                    build,
                }) as Arc<dyn NotifierSettings>
            }),
            SettingsKind::Table { read, .. } => {
                read(&Raw::new(self.name, table.remove(self.name)), named, check)
            }
        }
    }
}

/// A backend's checked settings, ready to build a notifier from.
pub trait NotifierSettings: fmt::Debug + Send + Sync + Any {
    /// Its name in `notification_backends`.
    fn name(&self) -> &'static str;
    fn build(&self, context: &BuildContext) -> Result<Arc<dyn Notifier>, String>;
    /// `check`'s rows for its table, secrets hidden; `variables` says which secrets came from
    /// an `"env:NAME"` (setting → NAME).
    fn rows(&self, _variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    fn as_any(&self) -> &dyn Any;
}

/// The settings of a backend that has none: its name and how it is built.
struct NoSettings {
    name: &'static str,
    build: fn(&BuildContext) -> Arc<dyn Notifier>,
}

impl fmt::Debug for NoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl NotifierSettings for NoSettings {
    fn name(&self) -> &'static str {
        self.name
    }

    fn build(&self, context: &BuildContext) -> Result<Arc<dyn Notifier>, String> {
        Ok((self.build)(context))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What building a notifier may take besides its settings.
#[derive(Clone, Default)]
pub struct BuildContext {
    /// The `test` backend's event list, shared with the test that reads it.
    pub test_notifier: Option<TestNotifier>,
}

/// The backends one app has settings for: each one its `notification_backends` names, and
/// each one whose table is given.
#[derive(Clone, Debug, Default)]
pub struct Notifiers(Vec<Arc<dyn NotifierSettings>>);

impl Notifiers {
    /// Checks the table of every backend of the registry, taken out of an app's `table`.
    /// `named`: the app's `notification_backends`, already checked against the registry.
    pub fn read(table: &mut Table, named: &[String], check: &mut Check) -> Notifiers {
        let mut found = Vec::new();
        for entry in NOTIFIERS {
            let is_named = named.iter().any(|name| name == entry.name);
            if let Some(settings) = entry.read(table, is_named, check) {
                found.push(settings);
            }
        }
        Notifiers(found)
    }

    /// The settings of the backend called `name`.
    pub fn named(&self, name: &str) -> Option<&Arc<dyn NotifierSettings>> {
        self.0.iter().find(|settings| settings.name() == name)
    }

    /// The settings of type `T`: `notifiers.get::<EmailConfig>()`.
    pub fn get<T: NotifierSettings>(&self) -> Option<&T> {
        self.0
            .iter()
            .find_map(|settings| settings.as_any().downcast_ref::<T>())
    }

    /// `check`'s rows of every backend that has settings, in the registry's order.
    pub fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        self.0
            .iter()
            .flat_map(|settings| settings.rows(variables))
            .collect()
    }
}

/// The names of the registry's tables (`email`, `webhook`): keys at the top of an app.
pub fn table_names() -> impl Iterator<Item = &'static str> + Clone {
    NOTIFIERS
        .iter()
        .filter(|entry| matches!(entry.settings, SettingsKind::Table { .. }))
        .map(|entry| entry.name)
}

/// Every key of every backend's table, `email.smtp_url`…: for the settings' key list.
pub fn keys() -> Vec<String> {
    NOTIFIERS
        .iter()
        .flat_map(|entry| {
            entry
                .keys()
                .iter()
                .map(move |key| format!("{}.{key}", entry.name))
        })
        .collect()
}

/// `timeout` and `give_up_after` of a backend's table: its [`DeliveryPolicy`].
pub fn delivery_policy(
    timeout: &Raw,
    give_up_after: &Raw,
    check: &mut Check,
) -> Option<DeliveryPolicy> {
    let defaults = DeliveryPolicy::default();
    let timeout = timeout.timeout_or(
        check,
        defaults.timeout,
        "a duration above zero, such as \"10s\"",
    );
    let give_up_after = give_up_after.duration_or(check, defaults.give_up_after);
    Some(DeliveryPolicy {
        timeout: timeout?,
        give_up_after: give_up_after?,
        ..defaults
    })
}

/// How many events each backend may have waiting before new ones are dropped (and counted).
const QUEUE_CAPACITY: usize = 256;

/// Counts per backend, readable while the worker runs.
#[derive(Debug, Default)]
pub struct DeliveryCounts {
    pub delivered: AtomicU64,
    /// Given up: a permanent error, or retriable ones for longer than `give_up_after`.
    pub failed: AtomicU64,
    /// Never tried: the backend's queue was full.
    pub dropped: AtomicU64,
    /// Recipients the server refused in deliveries that reached the others (each delivery
    /// still counts once in `delivered`).
    pub recipients_refused: AtomicU64,
}

impl DeliveryCounts {
    fn lost(&self) -> u64 {
        self.failed.load(Ordering::Relaxed) + self.dropped.load(Ordering::Relaxed)
    }
}

struct Lane {
    name: &'static str,
    queue: mpsc::Sender<Queued>,
    counts: Arc<DeliveryCounts>,
}

struct Queued {
    event: Event,
    at: Instant,
}

/// Hands each event to every backend's own queue without waiting for delivery.
pub struct Dispatcher {
    lanes: Vec<Lane>,
    tasks: Vec<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts one delivery task per backend. Needs a tokio runtime.
    pub fn start(notifiers: Vec<Arc<dyn Notifier>>) -> Self {
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for notifier in notifiers {
            let (queue, receiver) = mpsc::channel::<Queued>(QUEUE_CAPACITY);
            let counts = Arc::new(DeliveryCounts::default());
            let name = notifier.name();
            tasks.push(tokio::spawn(run_lane(notifier, receiver, counts.clone())));
            lanes.push(Lane {
                name,
                queue,
                counts,
            });
        }
        Dispatcher { lanes, tasks }
    }

    /// Queues the event for every backend; never waits.
    pub fn dispatch(&self, event: &Event) {
        for lane in &self.lanes {
            let queued = Queued {
                event: event.clone(),
                at: Instant::now(),
            };
            if lane.queue.try_send(queued).is_err() {
                lane.counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    backend = lane.name,
                    event = event.kind.as_str(),
                    "Notification dropped: the backend's queue is full."
                );
            }
        }
    }

    pub fn counts(&self) -> Vec<(&'static str, Arc<DeliveryCounts>)> {
        self.lanes
            .iter()
            .map(|lane| (lane.name, lane.counts.clone()))
            .collect()
    }

    /// Stops taking events and waits up to `deadline` for the queued ones to be delivered.
    pub async fn drain(self, deadline: Duration) {
        drop(self.lanes);
        let all = futures_join_all(self.tasks);
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!(
                ?deadline,
                "Some notifications were still queued at shutdown."
            );
        }
    }
}

/// One backend's delivery task: takes events in order, delivers each with retries, and after
/// a delivery that follows losses, tells how many were lost.
async fn run_lane(
    notifier: Arc<dyn Notifier>,
    mut receiver: mpsc::Receiver<Queued>,
    counts: Arc<DeliveryCounts>,
) {
    let name = notifier.name();
    let policy = notifier.policy();
    // Losses already told, and when the first untold one happened.
    let mut lost_told = 0u64;
    let mut first_loss: Option<DateTime<Utc>> = None;
    while let Some(queued) = receiver.recv().await {
        let kind = queued.event.kind.as_str();
        match deliver(notifier.as_ref(), &policy, &queued).await {
            Ok((attempts, delivered)) => {
                counts.delivered.fetch_add(1, Ordering::Relaxed);
                counts
                    .recipients_refused
                    .fetch_add(delivered.refused.len() as u64, Ordering::Relaxed);
                if attempts > 1 {
                    tracing::info!(
                        backend = name,
                        event = kind,
                        attempts,
                        "Notification delivered after retrying."
                    );
                }
                let lost = counts.lost().saturating_sub(lost_told);
                if lost == 0 {
                    continue;
                }
                let notice = lost_notice(&queued.event, name, lost, first_loss);
                match attempt(notifier.as_ref(), policy.timeout, &notice).await {
                    Ok(_) => {
                        tracing::info!(
                            backend = name,
                            lost,
                            "Told how many notifications were dropped."
                        );
                        lost_told += lost;
                        first_loss = None;
                    }
                    Err(error) => {
                        tracing::warn!(backend = name, %error, "Could not tell how many notifications were dropped; will try after the next delivery.");
                    }
                }
            }
            Err(error) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                first_loss.get_or_insert(queued.event.at);
                tracing::warn!(backend = name, %error, event = kind, "Notification dropped.");
            }
        }
        // Queue-full drops happen outside this task; date them no later than now.
        if counts.lost() > lost_told && first_loss.is_none() {
            first_loss = Some(Utc::now());
        }
    }
}

/// Delivers one event, retrying retriable failures with capped exponential backoff until
/// `give_up_after` since it was queued. Returns how many attempts it took and what the last
/// one reached.
async fn deliver(
    notifier: &dyn Notifier,
    policy: &DeliveryPolicy,
    queued: &Queued,
) -> Result<(u32, Delivered), NotifyError> {
    let give_up_at = queued.at + policy.give_up_after;
    let mut attempts = 1;
    loop {
        let error = match attempt(notifier, policy.timeout, &queued.event).await {
            Ok(delivered) => return Ok((attempts, delivered)),
            Err(error) => error,
        };
        if !error.retriable {
            return Err(error);
        }
        let pause = policy.backoff(attempts);
        if Instant::now() + pause > give_up_at {
            let plural = if attempts == 1 { "" } else { "s" };
            return Err(NotifyError::transient(format!(
                "{error} (gave up after {attempts} attempt{plural})"
            )));
        }
        tracing::info!(
            backend = notifier.name(),
            %error,
            event = queued.event.kind.as_str(),
            attempt = attempts,
            retry_in = ?pause,
            "Notification failed; retrying."
        );
        tokio::time::sleep(pause).await;
        attempts += 1;
    }
}

/// One send, abandoned after `timeout`.
async fn attempt(
    notifier: &dyn Notifier,
    timeout: Duration,
    event: &Event,
) -> Result<Delivered, NotifyError> {
    match tokio::time::timeout(timeout, notifier.send(event)).await {
        Ok(result) => result,
        Err(_) => Err(NotifyError::transient(format!(
            "no answer within {timeout:?}"
        ))),
    }
}

/// "3 notifications were dropped while email was down", for the app of `delivered`.
fn lost_notice(delivered: &Event, backend: &str, lost: u64, since: Option<DateTime<Utc>>) -> Event {
    let (noun, verb) = if lost == 1 {
        ("notification was", "it")
    } else {
        ("notifications were", "they")
    };
    let mut notice = Event::new(
        Utc::now(),
        &delivered.app,
        EventKind::NotificationsDropped,
        format!("{lost} {noun} dropped while {backend} was down or slow; {verb} will not be sent."),
    );
    notice.reason = match since {
        Some(since) => format!(
            "{backend} failed or fell behind from {} until it delivered again; the worker's log names each one",
            since.format("%Y-%m-%dT%H:%M:%SZ")
        ),
        None => format!("{backend} failed or fell behind; the worker's log names each one"),
    };
    notice
}

async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

#[cfg(test)]
mod tests;
