//! The decision policy's settings, read in this one place: `policy` ("streaks", 2.1's
//! algorithm and the default, "target", or "queue"), and the target policy's knobs
//! `target_utilisation`, `scale_down_delay` and `dyno_concurrency`. The streaks' own keys
//! (`number_of_fails_to_scale_up_after`, …, `increment`) stay with the app's other keys.
//!
//! The keys sit in the thresholds section (`settings/thresholds.rs` owns them); this module
//! checks their values and records problems in the [`Check`]; it must not read the environment
//! or the file itself, and it holds no rule of the policy (that is `crate::policy::target`'s).

use crate::policy::target::{
    TargetConfig, DEFAULT_DYNO_CONCURRENCY, DEFAULT_SCALE_DOWN_DELAY, DEFAULT_TARGET_UTILISATION,
};
use autoscalebot_backends::settings::{format_duration, Check, Raw};
use config::ValueKind;
use std::time::Duration;

/// Which policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// 2.1's streaks: `increment` dynos after a streak of fails or passes.
    Streaks,
    /// Target tracking: the size the measured load needs, up fast, down slowly.
    Target,
    /// Job workers on their queues: the workers the backlog needs, down to zero when the
    /// queues stay empty (`settings/queue.rs` reads the source).
    Queue,
}

impl PolicyKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PolicyKind::Streaks => "streaks",
            PolicyKind::Target => "target",
            PolicyKind::Queue => "queue",
        }
    }
}

/// The policy settings of one app. The target policy's knobs are read (and checked) whatever
/// the policy, so that switching to it needs no other change.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    pub kind: PolicyKind,
    /// The share of each dyno's workers the target policy keeps busy, in (0, 1].
    pub target_utilisation: f64,
    /// How long every observation must ask for fewer dynos before the target policy scales
    /// down.
    pub scale_down_delay: Duration,
    /// Requests one dyno serves at once (web workers × threads).
    pub dyno_concurrency: u32,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            kind: PolicyKind::Streaks,
            target_utilisation: DEFAULT_TARGET_UTILISATION,
            scale_down_delay: DEFAULT_SCALE_DOWN_DELAY,
            dyno_concurrency: DEFAULT_DYNO_CONCURRENCY,
        }
    }
}

impl PolicySettings {
    /// The target policy's knobs, with the latency target `max_response_time_in_ms`.
    pub fn target_config(&self, max_response_time_ms: u64) -> TargetConfig {
        TargetConfig {
            target_utilisation: self.target_utilisation,
            scale_down_delay: self.scale_down_delay,
            dyno_concurrency: self.dyno_concurrency,
            ..TargetConfig::new(max_response_time_ms)
        }
    }

    /// The rows `check` and the status page show.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        vec![
            ("policy", format!("{:?}", self.kind.as_str())),
            ("target_utilisation", self.target_utilisation.to_string()),
            (
                "scale_down_delay",
                format!("{:?}", format_duration(self.scale_down_delay)),
            ),
            ("dyno_concurrency", self.dyno_concurrency.to_string()),
        ]
    }
}

/// The policy's keys as written.
pub(super) struct RawPolicy<'a> {
    pub policy: &'a Raw,
    pub target_utilisation: &'a Raw,
    pub scale_down_delay: &'a Raw,
    pub dyno_concurrency: &'a Raw,
}

/// Checks `policy`, `target_utilisation`, `scale_down_delay` and `dyno_concurrency`. `None`
/// when any is unusable (each problem is recorded in `check`, naming the key, the value, where
/// it came from and what is expected).
pub(super) fn read_policy(raw: RawPolicy<'_>, check: &mut Check) -> Option<PolicySettings> {
    let defaults = PolicySettings::default();
    let kind = match raw.policy.is_set() {
        false => Some(defaults.kind),
        true => match raw.policy.text(check).as_deref() {
            Some("streaks") => Some(PolicyKind::Streaks),
            Some("target") => Some(PolicyKind::Target),
            Some("queue") => Some(PolicyKind::Queue),
            _ => {
                raw.policy.bad(
                    check,
                    "\"streaks\" (2.1's algorithm: increment dynos after a streak of slow or fast beats), \"target\" (scale to the size the measured load needs) or \"queue\" (scale a job worker on its queue's backlog, down to zero when it stays empty)",
                );
                None
            }
        },
    };
    let target_utilisation = match raw.target_utilisation.value() {
        None => Some(defaults.target_utilisation),
        Some(value) => {
            let share = match &value.kind {
                ValueKind::Float(f) => Some(*f),
                ValueKind::I64(n) => Some(*n as f64),
                ValueKind::U64(n) => Some(*n as f64),
                ValueKind::String(text) => text.trim().parse::<f64>().ok(),
                _ => None,
            };
            match share {
                Some(share) if share > 0.0 && share <= 1.0 => Some(share),
                _ => {
                    raw.target_utilisation.bad(
                        check,
                        "a share of each dyno's workers to keep busy, above 0 and at most 1, such as 0.9",
                    );
                    None
                }
            }
        }
    };
    let scale_down_delay = raw
        .scale_down_delay
        .duration_or(check, defaults.scale_down_delay);
    let dyno_concurrency = raw.dyno_concurrency.whole_or(
        check,
        defaults.dyno_concurrency,
        1,
        "a whole number of requests one dyno serves at once (web workers × threads), 1 or more",
    );
    Some(PolicySettings {
        kind: kind?,
        target_utilisation: target_utilisation?,
        scale_down_delay: scale_down_delay?,
        dyno_concurrency: dyno_concurrency?,
    })
}
