//! The Platform API budget: Heroku gives each account a pool of 4,500 calls, refilled at
//! 4,500 an hour, and answers 429 when it is empty. Apps that share an API key share the pool.
//!
//! This module owns the accounting and the plan, both pure (`now` is an argument): an
//! [`ApiBudget`] per key that every formation read and write asks first, and [`plan`], which
//! turns the settings into the pace at which each app's size is re-read and the most calls an
//! hour the settings can cost (for `check`). It makes no call itself. It also spreads the
//! apps' first heartbeats over the interval ([`first_beat_offset`]), so thousands of apps never
//! beat at once.

use crate::settings::{AppSettings, Settings};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// A size known from the platform is re-read once it is this many heartbeats old, however much
/// budget there is: a scale made by hand (the dashboard, the CLI) is seen within this many
/// heartbeats, 5 minutes at the default 30 s interval, unless a key's budget sets a slower
/// pace. In between, a beat reads only when its decision rests on the size (see
/// `crate::decision::Output::rests_on_the_size`), so a write always follows a fresh read.
pub const REFRESH_EVERY_BEATS: u32 = 10;
/// Above this share of the budget a size older than [`REFRESH_EVERY_BEATS`] is re-read at
/// once, whatever the planned pace: the budget has room to spare.
const FREE_ABOVE: f64 = 0.9;
/// Above this share, sizes are re-read at the planned pace; below it only reads before a scale
/// and writes are made, so a scale never waits for routine refreshes.
const PACED_ABOVE: f64 = 0.1;

/// Why a call is wanted, which decides how much of the budget it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A routine re-read of a size no decision needs now (it is [`REFRESH_EVERY_BEATS`]
    /// old); `due` when the planned pace says this app's size is stale as well.
    Refresh { due: bool },
    /// A read just before a scale, or the write itself: may use the budget to the last call.
    Decision,
}

/// The calls one API key may still spend, as a token bucket like Heroku's own.
#[derive(Debug, Clone)]
pub struct ApiBudget {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl ApiBudget {
    /// A full budget of `calls_per_hour`, refilled continuously.
    pub fn new(calls_per_hour: u32, now: Instant) -> Self {
        let capacity = f64::from(calls_per_hour.max(1));
        ApiBudget {
            capacity,
            per_second: capacity / 3600.0,
            tokens: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// The calls left now.
    pub fn tokens(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Takes one call when `call` may have it now.
    pub fn try_take(&mut self, now: Instant, call: Call) -> bool {
        self.refill(now);
        let share = self.tokens / self.capacity;
        let allowed = self.tokens >= 1.0
            && match call {
                Call::Decision => true,
                Call::Refresh { due } => share > FREE_ABOVE || (due && share > PACED_ABOVE),
            };
        if allowed {
            self.tokens -= 1.0;
        }
        allowed
    }

    /// How long until a [`Call::Decision`] may take a call: zero when one is left now.
    pub fn next_call_in(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
        }
    }

    /// Heroku's `RateLimit-Remaining` for the whole account. When others spent from the same
    /// account (a deploy, the CLI), the worker never counts on more than Heroku has left; its
    /// own refill rate (`heroku_api_calls_per_hour`, below Heroku's 4,500) leaves them room.
    pub fn heroku_remaining(&mut self, now: Instant, remaining: u32) {
        self.refill(now);
        self.tokens = self.tokens.min(f64::from(remaining));
    }

    /// Heroku answered 429: nothing is left until the pool refills.
    pub fn rate_limited(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = 0.0;
    }
}

/// What the settings cost one API key, for `check` and for the pace of re-reads.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPlan {
    /// "app/type" of every entry using this key.
    pub formations: Vec<String>,
    /// Reads an hour if every heartbeat read its size (entries of one app share a read).
    pub reads_every_beat_per_hour: f64,
    /// The most reads and writes an hour for scaling, one read and one write per streak.
    pub scaling_per_hour: f64,
    /// `heroku_api_calls_per_hour`.
    pub budget_per_hour: u32,
    /// The budget's pace: each size may be re-read every this many heartbeats (and is, once
    /// [`REFRESH_EVERY_BEATS`] old); `None` when scaling alone may spend the budget, and
    /// sizes are re-read only while it has room.
    pub refresh_every_beats: Option<u32>,
    /// The most calls an hour these settings can cost this key.
    pub at_most_per_hour: f64,
    /// Whether the worker spends from a budget for this key. A key with one formation spends
    /// from none: the Heroku client spaces its calls when `RateLimit-Remaining` runs low.
    pub budgeted: bool,
}

/// Groups the apps by API key (and API URL) and plans each key's calls.
pub fn plan(settings: &Settings) -> Vec<KeyPlan> {
    plan_by_key(settings).into_values().collect()
}

/// [`plan`], by [`budget_key`].
pub fn plan_by_key(settings: &Settings) -> BTreeMap<(String, String), KeyPlan> {
    let mut by_key: BTreeMap<(String, String), Vec<&AppSettings>> = BTreeMap::new();
    // Apps scaled by commands spend nothing from Heroku.
    for app in settings.apps.iter().filter(|app| app.heroku().is_some()) {
        by_key.entry(budget_key(app)).or_default().push(app);
    }
    by_key
        .into_iter()
        .map(|(key, apps)| (key, plan_key(&apps, settings.heroku_api_calls_per_hour)))
        .collect()
}

/// Which budget an app spends from: its API URL and key (none off Heroku). Never shown: it
/// holds the key.
pub fn budget_key(app: &AppSettings) -> (String, String) {
    match app.heroku() {
        Some(heroku) => (
            heroku.api_url.as_str().to_string(),
            heroku.api_key.expose().to_string(),
        ),
        None => Default::default(),
    }
}

fn plan_key(apps: &[&AppSettings], budget_per_hour: u32) -> KeyPlan {
    // Entries of one app are read together (the list endpoint), at the quickest one's pace.
    let mut quickest: BTreeMap<&str, Duration> = BTreeMap::new();
    for app in apps {
        let interval = quickest
            .entry(app.app_name.as_str())
            .or_insert(app.heartbeat.interval);
        *interval = (*interval).min(app.heartbeat.interval);
    }
    let per_hour = |interval: Duration| 3600.0 / interval.as_secs_f64().max(0.001);
    let reads_every_beat_per_hour: f64 = quickest.values().map(|i| per_hour(*i)).sum();
    let scaling_per_hour: f64 = apps
        .iter()
        .map(|app| {
            let streak = app
                .thresholds
                .number_of_fails_to_scale_up_after
                .min(app.thresholds.number_of_passes_to_scale_down_after)
                .max(1);
            2.0 * per_hour(app.heartbeat.interval) / f64::from(streak)
        })
        .sum();
    let budget = f64::from(budget_per_hour);
    if apps.len() == 1 {
        return KeyPlan {
            formations: vec![format!("{}/{}", apps[0].app_name, apps[0].process_type)],
            reads_every_beat_per_hour,
            scaling_per_hour,
            budget_per_hour,
            refresh_every_beats: Some(1),
            at_most_per_hour: reads_every_beat_per_hour + scaling_per_hour,
            budgeted: false,
        };
    }
    let for_reads = budget - scaling_per_hour;
    let refresh_every_beats = (for_reads > 0.0)
        .then(|| (reads_every_beat_per_hour / for_reads).ceil().max(1.0))
        .filter(|beats| *beats <= f64::from(u32::MAX))
        .map(|beats| beats as u32);
    KeyPlan {
        formations: apps
            .iter()
            .map(|app| format!("{}/{}", app.app_name, app.process_type))
            .collect(),
        reads_every_beat_per_hour,
        scaling_per_hour,
        budget_per_hour,
        refresh_every_beats,
        at_most_per_hour: (reads_every_beat_per_hour + scaling_per_hour).min(budget),
        budgeted: true,
    }
}

/// When an app's first heartbeat comes, after the worker starts: a stable hash of its name and
/// process type spread over the interval, so that thousands of apps never beat at once and an
/// app keeps its place across restarts.
pub fn first_beat_offset(app: &str, process_type: &str, interval: Duration) -> Duration {
    let micros = interval.as_micros().max(1) as u64;
    Duration::from_micros(stable_hash(&format!("{app}/{process_type}")) % micros)
}

/// FNV-1a, 64 bits. By hand because it is five lines and must never change between builds
/// (std's `DefaultHasher` may).
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
