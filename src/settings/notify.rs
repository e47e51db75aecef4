//! The notification rules: which backends are told (`notification_backends`, checked against
//! the backends' registry) and when (seed 001's `notify_*` keys). Each backend's own table
//! belongs to the backend, in the backends crate; this module must not read it.

use super::thresholds::read_schedule;
use crate::schedule::Schedule;
use autoscalebot_backends::notify::NOTIFIERS;
use autoscalebot_backends::settings::{fields, rows, Check, Raw, Table};
use config::ValueKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The section as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    notification_backends: Raw,
    notify_if_scale_diff_exceeds_threshold: Raw,
    notify_if_scale_diff_exceeds_period_in_minutes: Raw,
    notify_if_needs_exceed_max: Raw,
    notify_if_needs_below_min: Raw,
    notify_on_scale_fails: Raw,
    notify_on_every_scale: Raw,
    notify_on_every_ping: Raw,
    notify_repeat_after: Raw,
    notify_on_downtime: Raw,
}

/// The checked rules.
#[derive(Debug, Clone)]
pub struct NotifyRules {
    /// `notification_backends`, in order: each is in the registry.
    pub backends: Vec<String>,
    pub if_scale_diff_exceeds_threshold: Option<Schedule>,
    pub if_scale_diff_exceeds_period: Option<Duration>,
    pub if_needs_exceed_max: bool,
    pub if_needs_below_min: bool,
    pub on_scale_fails: bool,
    pub on_every_scale: bool,
    pub on_every_ping: bool,
    /// A condition that persists is told again after this.
    pub repeat_after: Duration,
    /// Tell when a downtime window starts and ends.
    pub on_downtime: bool,
}

impl RawNotify {
    pub(super) fn take(table: &mut Table, check: &Check) -> Self {
        check.section(table, "")
    }

    pub(super) fn keys() -> &'static [&'static str] {
        fields::<RawNotify>()
    }

    pub(super) fn check(&self, check: &mut Check) -> Option<NotifyRules> {
        let mark = check.mark();
        let backends = self
            .notification_backends
            .string_list(check)
            .unwrap_or_default();
        for name in &backends {
            if !NOTIFIERS.iter().any(|entry| entry.name == name) {
                let names: Vec<&str> = NOTIFIERS.iter().map(|entry| entry.name).collect();
                self.notification_backends.bad_text(
                    check,
                    name,
                    format!("one of {}", names.join(", ")),
                );
            }
        }
        let threshold = read_schedule(&self.notify_if_scale_diff_exceeds_threshold, check);
        let period = self.period(check);
        match (
            self.notify_if_scale_diff_exceeds_threshold.is_set(),
            self.notify_if_scale_diff_exceeds_period_in_minutes.is_set(),
        ) {
            (true, false) => self.notify_if_scale_diff_exceeds_period_in_minutes.missing(
                check,
                "a number of minutes, since notify_if_scale_diff_exceeds_threshold is set",
            ),
            (false, true) => self.notify_if_scale_diff_exceeds_threshold.missing(
                check,
                "a number of dynos, since notify_if_scale_diff_exceeds_period_in_minutes is set",
            ),
            _ => {}
        }
        let repeat_after = self
            .notify_repeat_after
            .duration_or(check, Duration::from_secs(3600));
        let rules = NotifyRules {
            backends,
            if_scale_diff_exceeds_threshold: threshold,
            if_scale_diff_exceeds_period: period,
            if_needs_exceed_max: self.notify_if_needs_exceed_max.flag_or(check, true),
            if_needs_below_min: self.notify_if_needs_below_min.flag_or(check, false),
            on_scale_fails: self.notify_on_scale_fails.flag_or(check, false),
            on_every_scale: self.notify_on_every_scale.flag_or(check, false),
            on_every_ping: self.notify_on_every_ping.flag_or(check, false),
            on_downtime: self.notify_on_downtime.flag_or(check, true),
            repeat_after: repeat_after?,
        };
        (!check.failed_since(mark)).then_some(rules)
    }

    /// `notify_if_scale_diff_exceeds_period_in_minutes`: minutes, with a fraction if need be.
    fn period(&self, check: &mut Check) -> Option<Duration> {
        let raw = &self.notify_if_scale_diff_exceeds_period_in_minutes;
        let minutes = match &raw.value()?.kind {
            ValueKind::I64(n) if *n > 0 => Some(*n as f64),
            ValueKind::U64(n) if *n > 0 => Some(*n as f64),
            ValueKind::Float(f) if f.is_finite() && *f > 0.0 => Some(*f),
            ValueKind::String(text) => text.trim().parse::<f64>().ok().filter(|m| *m > 0.0),
            _ => None,
        };
        let period =
            minutes.and_then(|minutes| autoscalebot_backends::settings::seconds(minutes * 60.0));
        if period.is_none() {
            raw.bad(check, "a number of minutes above 0");
        }
        period
    }
}

impl NotifyRules {
    pub(super) fn rows(&self) -> Vec<(&'static str, String)> {
        let flag = |flag: bool| Raw::shown(flag.to_string());
        let names: Vec<String> = self
            .backends
            .iter()
            .map(|name| format!("{name:?}"))
            .collect();
        let shown = RawNotify {
            notification_backends: Raw::shown(format!("[{}]", names.join(", "))),
            notify_if_scale_diff_exceeds_threshold: Raw::optional(
                self.if_scale_diff_exceeds_threshold.as_ref(),
                |threshold| Raw::shown(threshold.to_string()),
            ),
            notify_if_scale_diff_exceeds_period_in_minutes: Raw::optional(
                self.if_scale_diff_exceeds_period,
                |period| Raw::shown((period.as_secs_f64() / 60.0).to_string()),
            ),
            notify_if_needs_exceed_max: flag(self.if_needs_exceed_max),
            notify_if_needs_below_min: flag(self.if_needs_below_min),
            notify_on_scale_fails: flag(self.on_scale_fails),
            notify_on_every_scale: flag(self.on_every_scale),
            notify_on_every_ping: flag(self.on_every_ping),
            notify_repeat_after: Raw::duration(self.repeat_after),
            notify_on_downtime: flag(self.on_downtime),
        };
        rows("", &shown)
    }
}
