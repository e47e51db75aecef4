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
            &self.notify_if_scale_diff_exceeds_threshold,
            self.notify_if_scale_diff_exceeds_period,
        ) {
            (Some(threshold), Some(period)) => Some(ScaleDiffRule {
                threshold: threshold.clone(),
                period,
            }),
            _ => None,
        };
        Config {
            min_dynos: self.min_dynos.clone(),
            max_dynos: self.max_dynos.clone(),
            time_zone: self.time_zone,
            max_response_time_ms: self.max_response_time_ms,
            min_response_time_ms: self.min_response_time_ms,
            signal: match self.signal {
                Signal::Heartbeat => SignalKind::Heartbeat,
                Signal::Router => SignalKind::Router,
                Signal::Both => SignalKind::Both,
            },
            policy: match self.policy.kind {
                PolicyKind::Streaks => PolicyConfig::Streaks(StreaksConfig {
                    fails_to_scale_up: self.number_of_fails_to_scale_up_after,
                    passes_to_scale_down: self.number_of_passes_to_scale_down_after,
                    increment: self.increment,
                }),
                PolicyKind::Target => {
                    PolicyConfig::Target(self.policy.target_config(self.max_response_time_ms))
                }
            },
            scale_up_cooldown: self.scale_up_cooldown,
            scale_down_cooldown: self.scale_down_cooldown,
            idle_after: self.idle_after,
            max_age: self.max_age,
            downtime_dynos: self.downtime_dynos,
            notify: NotifyRules {
                every_ping: self.notify_on_every_ping,
                every_scale: self.notify_on_every_scale,
                scale_fails: self.notify_on_scale_fails,
                downtime: self.notify_on_downtime,
                needs_above_max: self.notify_if_needs_exceed_max,
                needs_below_min: self.notify_if_needs_below_min,
                repeat_after: self.notify_repeat_after,
                scale_diff,
            },
        }
    }
}
