//! What the loop shares with the HTTP server: the metrics, the recent beats and notifications
//! (for the status page), the app's log drain (which the server fills), and the loop's
//! liveness stamp.
//!
//! One [`Telemetry`] per app, a small struct of `Arc`s cloned into both sides; the settings
//! are the worker's own `Arc`, never a copy. Locks are std mutexes held for a push or a copy,
//! never across an await, so the loop never waits on the server (nor the server on the loop).
//! A worker may hold thousands: nothing is allocated before it is needed, and a beat kept for
//! the chart is a few plain numbers. Nothing here decides or does I/O, and the loop reads its
//! inputs (the drain among them) from their own handles, not from here.

use crate::clock::Clock;
use crate::decision::{Heartbeat, Observation, Output, QueueSignal};
use crate::drain::Drain;
use crate::metrics::AppMetrics;
use crate::router_log::{IngestCounts, Request, RouterStats};
use crate::settings::AppSettings;
use autoscalebot_backends::notify::{Event, EventKind};
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What one beat did, for the status page, the demo's timeline, logs and tests.
#[derive(Debug, Clone)]
pub struct Beat {
    pub at: DateTime<Utc>,
    /// What the beat observed ([`Heartbeat::nothing`] for a stopped app: no heartbeat was sent).
    pub heartbeat: Heartbeat,
    /// The app was believed stopped, so it was not probed: only its size was read.
    pub stopped: bool,
    /// The quantity read from the platform (or the last one known), when there was one.
    pub quantity: Option<u32>,
    /// The engine's output, when it decided from a size.
    pub output: Option<Output>,
    /// The quantity after this beat's scale, when one was made.
    pub scaled_to: Option<u32>,
    pub error: Option<String>,
    /// The router window, when the log drain is on.
    pub router: Option<RouterStats>,
    /// The job queues' reading, with the queue policy: `Err` says why it failed.
    pub queue: Option<Result<QueueSignal, String>>,
}

/// How far back the status page's chart reaches.
pub const CHART_SPAN: Duration = Duration::from_secs(6 * 3600);
/// At most this many beats are kept for the chart (6 h of 30 s beats is 720).
const MAX_BEATS: usize = 5000;
/// The status page lists this many recent notifications.
const MAX_NOTIFICATIONS: usize = 50;

/// One beat as the chart draws it: plain numbers, since an app keeps up to 720 of them (the
/// last beat's words are kept once, in [`Snapshot::last_summary`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BeatPoint {
    pub at: DateTime<Utc>,
    /// The heartbeat time or the router p95 the decision used.
    pub response_time_ms: Option<u32>,
    pub observation: Observation,
    /// Dynos after this beat: the scaled-to quantity, else the quantity read.
    pub dynos: Option<u32>,
    /// `Some((from, to))` when this beat scaled.
    pub scale: Option<(u32, u32)>,
    /// The heartbeat got no answer within `heartbeat_timeout_in_ms`: its time is the timeout,
    /// not a response time, and the chart marks it so.
    pub timed_out: bool,
}

/// Whether a classified beat's heartbeat timed out (alone, or first with `signal = "both"`).
pub fn heartbeat_timed_out(heartbeat: &crate::decision::Heartbeat) -> bool {
    use crate::decision::{HeartbeatReading, Seen};
    fn timed_out(seen: &Seen) -> bool {
        match seen {
            Seen::Heartbeat(HeartbeatReading::TimedOut { .. }) => true,
            Seen::Both(heartbeat, _) => timed_out(heartbeat),
            _ => false,
        }
    }
    timed_out(&heartbeat.seen)
}

#[derive(Debug, Default)]
struct History {
    beats: VecDeque<BeatPoint>,
    /// What the last beat saw (worded as "523 ms" only when a page asks: most beats are never
    /// shown), its error and the bounds then in force.
    last_seen: Option<crate::decision::Seen>,
    last_error: Option<String>,
    last_bounds: Option<(u32, u32)>,
    /// Since when the policy holds for want of a signal, as of the last beat that decided.
    holding_since: Option<DateTime<Utc>>,
    /// The last reading of the job queues and when it was taken.
    last_queue: Option<QueueReading>,
    notifications: VecDeque<Event>,
}

/// A reading of the job queues as the status page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueReading {
    pub at: DateTime<Utc>,
    /// `Err` says why the source could not be read (never a secret).
    pub read: Result<QueueSignal, String>,
}

/// What the loop and the server share, behind one allocation.
#[derive(Debug)]
struct Shared {
    history: Mutex<History>,
    last_beat: Mutex<Instant>,
}

/// A copy of what the status page shows, taken under the locks in one go.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: DateTime<Utc>,
    pub settings: Arc<AppSettings>,
    pub beats: Vec<BeatPoint>,
    /// The last beat's summary ("523 ms", "timeout after 5000 ms"); empty before any beat.
    pub last_summary: String,
    /// Newest first.
    pub notifications: Vec<Event>,
    /// The router window, when the drain is on.
    pub router: Option<RouterStats>,
    pub last_router_request_at: Option<DateTime<Utc>>,
    /// Since when the policy holds for want of a signal (the target policy on a quiet drain).
    pub holding_since: Option<DateTime<Utc>>,
    /// The last reading of the job queues, with the queue policy.
    pub queue: Option<QueueReading>,
    pub since_last_beat: Duration,
    pub stall_limit: Duration,
}

/// One app's line in the worker's index page: a few numbers, no history copied.
#[derive(Debug, Clone)]
pub struct Summary {
    pub settings: Arc<AppSettings>,
    pub last_beat: Option<BeatPoint>,
    pub bounds: Option<(u32, u32)>,
    pub last_error: Option<String>,
    /// Conditions told and not yet told ended, from the recent notifications.
    pub open_alerts: Vec<&'static str>,
    /// Since when the policy holds for want of a signal.
    pub holding_since: Option<DateTime<Utc>>,
    pub alive: bool,
}

#[derive(Clone)]
pub struct Telemetry {
    pub metrics: AppMetrics,
    settings: Arc<AppSettings>,
    shared: Arc<Shared>,
    /// The app's log drain: the server fills it, the status page shows it.
    drain: Drain,
    clock: Clock,
}

impl Telemetry {
    pub fn new(
        settings: Arc<AppSettings>,
        clock: Clock,
        metrics: AppMetrics,
        drain: Drain,
    ) -> Self {
        Telemetry {
            metrics,
            shared: Arc::new(Shared {
                history: Mutex::default(),
                last_beat: Mutex::new(Instant::now()),
            }),
            settings,
            drain,
            clock,
        }
    }

    /// An app on its own: a registry of its own and no notification backends (for tests and
    /// benchmarks; the worker gives every app its registry through [`Telemetry::new`]).
    pub fn alone(settings: &AppSettings, clock: Clock) -> Self {
        let metrics = crate::metrics::WorkerMetrics::new().app(
            &settings.app_name,
            &settings.process_type,
            Vec::new(),
        );
        let drain = Drain::new(settings.drain.router_window);
        Telemetry::new(Arc::new(settings.clone()), clock, metrics, drain)
    }

    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// How long the loop may go without finishing a beat before `/healthz` says it stalled:
    /// three intervals, plus the longest a beat may legitimately take (the heartbeat timeout
    /// and a read and a write of the formation).
    pub fn stall_limit(&self) -> Duration {
        let settings = &self.settings;
        settings.heartbeat.interval * 3
            + settings.heartbeat.timeout
            + settings.platform().settings().call_timeout() * 2
    }

    /// The loop is alive: called when it starts and after every beat.
    pub fn stamp_alive(&self) {
        *self.shared.last_beat.lock().unwrap() = Instant::now();
    }

    pub fn since_last_beat(&self) -> Duration {
        self.shared.last_beat.lock().unwrap().elapsed()
    }

    pub fn is_alive(&self) -> bool {
        self.since_last_beat() <= self.stall_limit()
    }

    /// The most beats the chart can show at this app's interval: the history grows to this
    /// and no further, so no app keeps room it will never use.
    fn beats_wanted(&self) -> usize {
        let interval = self.settings.heartbeat.interval.as_secs_f64().max(0.001);
        ((CHART_SPAN.as_secs_f64() / interval) as usize + 2).min(MAX_BEATS)
    }

    pub fn record_beat(&self, beat: &Beat) {
        let point = BeatPoint {
            at: beat.at,
            response_time_ms: beat
                .heartbeat
                .response_time_ms
                .map(|ms| u32::try_from(ms).unwrap_or(u32::MAX)),
            observation: beat.heartbeat.observation,
            dynos: beat.scaled_to.or(beat.quantity),
            scale: beat.quantity.zip(beat.scaled_to),
            timed_out: heartbeat_timed_out(&beat.heartbeat),
        };
        let cutoff = beat.at - chrono::Duration::from_std(CHART_SPAN).unwrap_or_default();
        let wanted = self.beats_wanted();
        let mut history = self.shared.history.lock().unwrap();
        let history = &mut *history;
        grow_towards(&mut history.beats, wanted);
        history.beats.push_back(point);
        while history.beats.len() > wanted
            || history.beats.front().is_some_and(|beat| beat.at < cutoff)
        {
            history.beats.pop_front();
        }
        history.last_seen = Some(beat.heartbeat.seen.clone());
        history.last_error.clone_from(&beat.error);
        if let Some(output) = &beat.output {
            history.last_bounds = Some((output.bounds.min, output.bounds.max));
            history.holding_since = output.signal_lost.map(|lost| lost.since);
        }
        if let Some(read) = &beat.queue {
            history.last_queue = Some(QueueReading {
                at: beat.at,
                read: read.clone(),
            });
        }
    }

    pub fn record_notifications(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut history = self.shared.history.lock().unwrap();
        for event in events {
            history.notifications.push_back(event.clone());
        }
        while history.notifications.len() > MAX_NOTIFICATIONS {
            history.notifications.pop_front();
        }
    }

    /// Adds a drain batch's requests to the window, stamped with their arrival time.
    pub fn ingest(&self, counts: &IngestCounts, requests: Vec<Request>) {
        self.metrics.drain_ingested(counts, &requests);
        self.drain.ingest(self.now(), counts, requests);
    }

    /// Keeps the newest of each l2met sample of a batch (the drain's [`crate::drain::Samples`]).
    pub fn ingest_samples(&self, samples: &[crate::router_log::l2met::Sample]) {
        if !samples.is_empty() {
            self.drain.samples().record(self.now(), samples);
        }
    }

    /// The router window now (and the metrics' gauges set from it).
    pub fn router_stats(&self) -> RouterStats {
        let stats = self.drain.stats(self.now());
        self.metrics.router_window(&stats);
        stats
    }

    /// When the router last logged a request: with the drain on, idleness is the time since.
    pub fn last_router_request_at(&self) -> Option<DateTime<Utc>> {
        self.drain.last_request_at()
    }

    pub fn snapshot(&self) -> Snapshot {
        let router = self
            .settings
            .drain
            .log_drain_password
            .is_some()
            .then(|| self.router_stats());
        let (beats, last_summary, notifications, holding_since, queue) = {
            let history = self.shared.history.lock().unwrap();
            (
                history.beats.iter().cloned().collect(),
                history
                    .last_seen
                    .as_ref()
                    .map(crate::notices::seen_words)
                    .unwrap_or_default(),
                history.notifications.iter().rev().cloned().collect(),
                history.holding_since,
                history.last_queue.clone(),
            )
        };
        Snapshot {
            now: self.now(),
            settings: self.settings.clone(),
            beats,
            last_summary,
            notifications,
            router,
            last_router_request_at: self.last_router_request_at(),
            holding_since,
            queue,
            since_last_beat: self.since_last_beat(),
            stall_limit: self.stall_limit(),
        }
    }

    /// The app's line in the index: the last beat and what is wrong, without the history.
    pub fn summary(&self) -> Summary {
        let history = self.shared.history.lock().unwrap();
        Summary {
            settings: self.settings.clone(),
            last_beat: history.beats.back().cloned(),
            bounds: history.last_bounds,
            last_error: history.last_error.clone(),
            open_alerts: open_alerts(history.notifications.iter().rev().map(|e| e.kind)),
            holding_since: history.holding_since,
            alive: self.is_alive(),
        }
    }
}

/// Makes room for one more beat, doubling the capacity as a `VecDeque` would, but never past
/// `wanted`: at 30 s an app keeps 722 beats in room for 722, not 1024.
fn grow_towards<T>(beats: &mut VecDeque<T>, wanted: usize) {
    if beats.len() < beats.capacity() {
        return;
    }
    let target = (beats.capacity() * 2).clamp(4, wanted.max(4));
    beats.reserve_exact(target.saturating_sub(beats.len()).max(1));
}

/// The conditions whose start was told and whose end was not, from notification kinds newest
/// first: the state column of the index.
pub fn open_alerts(newest_first: impl Iterator<Item = EventKind>) -> Vec<&'static str> {
    const PAIRS: [(EventKind, EventKind, &str); 6] = [
        (
            EventKind::NeedsAboveMax,
            EventKind::NeedsAboveMaxEnded,
            "needs more than max",
        ),
        (
            EventKind::NeedsBelowMin,
            EventKind::NeedsBelowMinEnded,
            "needs less than min",
        ),
        (
            EventKind::ScaleFailed,
            EventKind::ScaleRecovered,
            "scale failing",
        ),
        (
            EventKind::ScaleDiffExceeded,
            EventKind::ScaleDiffEnded,
            "scale difference over threshold",
        ),
        (
            EventKind::DowntimeStarted,
            EventKind::DowntimeEnded,
            "planned downtime",
        ),
        (
            EventKind::HeartbeatMisconfigured,
            EventKind::HeartbeatMisconfiguredEnded,
            "heartbeat URL misconfigured",
        ),
    ];
    let mut decided = [None::<bool>; PAIRS.len()];
    for kind in newest_first {
        for (index, (start, end, _)) in PAIRS.iter().enumerate() {
            if decided[index].is_none() && (kind == *start || kind == *end) {
                decided[index] = Some(kind == *start);
            }
        }
    }
    PAIRS
        .iter()
        .zip(decided)
        .filter(|(_, open)| *open == Some(true))
        .map(|((_, _, name), _)| *name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    #[test]
    fn an_alert_is_open_until_its_end_is_told() {
        // Newest first: above max was told again after it once ended; the failure recovered.
        let kinds = [
            NeedsAboveMax,
            ScaleRecovered,
            NeedsAboveMaxEnded,
            ScaleFailed,
        ];
        assert_eq!(open_alerts(kinds.into_iter()), vec!["needs more than max"]);
        let kinds = [NeedsBelowMinEnded, Scaled, NeedsBelowMin, DowntimeStarted];
        assert_eq!(open_alerts(kinds.into_iter()), vec!["planned downtime"]);
        assert!(open_alerts([Scaled, Ping].into_iter()).is_empty());
    }

    #[test]
    fn the_history_grows_to_what_the_chart_can_show_and_no_further() {
        let mut beats: VecDeque<u8> = VecDeque::new();
        assert_eq!(beats.capacity(), 0, "nothing is allocated before a beat");
        for _ in 0..722 {
            grow_towards(&mut beats, 722);
            beats.push_back(0);
        }
        assert!(
            beats.capacity() < 1024,
            "room for {} beats",
            beats.capacity()
        );
        assert!(beats.capacity() >= 722);
    }

    #[test]
    fn a_timeout_is_told_from_a_slow_answer() {
        use crate::decision::HeartbeatReading;
        use std::time::Duration;
        let timeout = crate::decision::classify(
            &HeartbeatReading::TimedOut {
                after: Duration::from_millis(5000),
            },
            1000,
            200,
        );
        assert!(heartbeat_timed_out(&timeout), "{timeout:?}");
        let slow = crate::decision::classify(
            &HeartbeatReading::Answered {
                status: 200,
                elapsed: Duration::from_millis(4999),
            },
            1000,
            200,
        );
        assert!(!heartbeat_timed_out(&slow), "{slow:?}");
    }
}
