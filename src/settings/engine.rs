//! The decision engine's settings, taken from an app's settings in one place: what the engine
//! needs to decide and to know what to tell, and nothing else (no secrets, no URLs, no
//! backends, no names of keys).

use super::{AppSettings, PolicyKind, Signal};
use crate::decision::{
    Config, NotifyRules, PolicyConfig, ScaleDiffRule, SignalKind, StreaksConfig,
};

impl AppSettings {
    /// The engine's [`Config`] for this app.
    pub fn engine_config(&self) -> Config {
        let scale_diff = match (
            &self.notify.if_scale_diff_exceeds_threshold,
            self.notify.if_scale_diff_exceeds_period,
        ) {
            (Some(threshold), Some(period)) => Some(ScaleDiffRule {
                threshold: threshold.clone(),
                period,
            }),
            _ => None,
        };
        Config {
            min_dynos: self.thresholds.min_dynos.clone(),
            max_dynos: self.thresholds.max_dynos.clone(),
            time_zone: self.thresholds.time_zone,
            max_response_time_ms: self.thresholds.max_response_time_ms,
            min_response_time_ms: self.thresholds.min_response_time_ms,
            signal: match self.drain.signal {
                Signal::Heartbeat => SignalKind::Heartbeat,
                Signal::Router => SignalKind::Router,
                Signal::Both => SignalKind::Both,
            },
            policy: match self.thresholds.policy.kind {
                PolicyKind::Streaks => PolicyConfig::Streaks(StreaksConfig {
                    fails_to_scale_up: self.thresholds.number_of_fails_to_scale_up_after,
                    passes_to_scale_down: self.thresholds.number_of_passes_to_scale_down_after,
                    increment: self.thresholds.increment,
                }),
                PolicyKind::Target => PolicyConfig::Target(
                    self.thresholds
                        .policy
                        .target_config(self.thresholds.max_response_time_ms),
                ),
                PolicyKind::Queue => PolicyConfig::Queue(
                    self.queue
                        .as_ref()
                        .expect("policy = \"queue\" is loaded with its queue")
                        .policy(self.thresholds.policy.scale_down_delay),
                ),
            },
            scale_up_cooldown: self.thresholds.scale_up_cooldown,
            scale_down_cooldown: self.thresholds.scale_down_cooldown,
            idle_after: self.thresholds.idle_after,
            max_age: self.thresholds.max_age,
            downtime_dynos: self.downtime.dynos,
            notify: NotifyRules {
                every_ping: self.notify.on_every_ping,
                every_scale: self.notify.on_every_scale,
                scale_fails: self.notify.on_scale_fails,
                downtime: self.notify.on_downtime,
                needs_above_max: self.notify.if_needs_exceed_max,
                needs_below_min: self.notify.if_needs_below_min,
                repeat_after: self.notify.repeat_after,
                scale_diff,
            },
        }
    }
}
