//! The thresholds section: what the engine decides by (seed 001's response times, streaks,
//! bounds and increment, the cool-offs, the time zone the tables are read in) and the
//! scale-to-zero times. Its checks are its own (min at most max at every time of day); what it
//! needs from other parts (the platform's most, what the settings are for) comes in as
//! [`Needs`]. It must not read keys outside its section.

use super::policy::{read_policy, PolicySettings, RawPolicy};
use super::Purpose;
use crate::schedule::Schedule;
use autoscalebot_backends::settings::{fields, rows, Check, Raw, Table};
use chrono_tz::Tz;
use config::ValueKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The section as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholds {
    max_response_time_in_ms: Raw,
    min_response_time_in_ms: Raw,
    number_of_fails_to_scale_up_after: Raw,
    number_of_passes_to_scale_down_after: Raw,
    max_dynos: Raw,
    min_dynos: Raw,
    increment: Raw,
    time_zone: Raw,
    scale_up_cooldown: Raw,
    scale_down_cooldown: Raw,
    pub(super) idle_after: Raw,
    max_age: Raw,
    policy: Raw,
    target_utilisation: Raw,
    scale_down_delay: Raw,
    dyno_concurrency: Raw,
}

/// The checked thresholds.
#[derive(Debug, Clone)]
pub struct Thresholds {
    pub max_response_time_ms: u64,
    pub min_response_time_ms: u64,
    pub number_of_fails_to_scale_up_after: u32,
    pub number_of_passes_to_scale_down_after: u32,
    pub max_dynos: Schedule,
    pub min_dynos: Schedule,
    pub increment: u32,
    /// The zone the time-of-day tables (and downtime windows) are read in.
    pub time_zone: Tz,
    pub scale_up_cooldown: Duration,
    pub scale_down_cooldown: Duration,
    /// Scale to zero after this long with no traffic (only while `min_dynos` in force is 0).
    pub idle_after: Option<Duration>,
    /// Stop after running this long, whatever the traffic.
    pub max_age: Option<Duration>,
    /// `policy` and the target policy's knobs (`settings/policy.rs` checks them).
    pub policy: PolicySettings,
}

/// What was read before the section's check, because other parts need it too.
pub(super) struct Read {
    pub time_zone: Option<Tz>,
    pub idle_after: Option<Duration>,
    pub max_response_time_ms: Option<u32>,
}

/// What the thresholds' checks need from the other parts.
pub(super) struct Needs {
    pub purpose: Purpose,
    /// The most the platform can run, and why (start and stop commands alone: 1).
    pub most: Option<(u32, &'static str)>,
    /// The `idle_after` in force for the platform's target (the top-level one, else the
    /// activator's), when the target is started through the platform.
    pub idle_in_force: Option<Duration>,
}

const SCHEDULE_EXPECTED: &str = "a whole number (0 or more), a time-of-day table such as { \"0:00\" = 2, \"9:00\" = 5 }, or one by day such as { mon-fri = { \"0:00\" = 2, \"9:00\" = 5 }, sat-sun = 1 }";

impl RawThresholds {
    pub(super) fn take(table: &mut Table, check: &Check) -> Self {
        check.section(table, "")
    }

    pub(super) fn keys() -> &'static [&'static str] {
        fields::<RawThresholds>()
    }

    /// `time_zone`, checked: downtime windows are read in it too.
    pub(super) fn time_zone(&self, check: &mut Check) -> Option<Tz> {
        let text = self.time_zone.text_or(check, "UTC");
        match text.parse::<Tz>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                self.time_zone.bad_text(
                    check,
                    &text,
                    "an IANA time zone name such as \"UTC\", \"Europe/London\" or \"America/Vancouver\"",
                );
                None
            }
        }
    }

    /// Checks the rest of the section.
    pub(super) fn check(&self, check: &mut Check, read: Read, needs: &Needs) -> Option<Thresholds> {
        let mark = check.mark();
        let Read {
            time_zone,
            idle_after,
            max_response_time_ms,
        } = read;
        let min_response_time_ms = self.min_response_time_in_ms.whole_or(
            check,
            200,
            0,
            "a whole number of milliseconds (0 or more)",
        );
        let fails = self.number_of_fails_to_scale_up_after.whole_or(
            check,
            3,
            1,
            "a whole number of heartbeats, 1 or more",
        );
        let passes = self.number_of_passes_to_scale_down_after.whole_or(
            check,
            5,
            1,
            "a whole number of heartbeats, 1 or more",
        );
        // A default is never wrong: without an explicit max_dynos, a platform that can run
        // only one runs one; `activate` exists to stop the target, so its minimum is 0.
        let default_max = needs.most.map_or(3, |(most, _)| most.min(3));
        let max_dynos = match self.max_dynos.is_set() {
            false => Some(Schedule::Fixed(default_max)),
            true => read_schedule(&self.max_dynos, check),
        };
        let default_min = match needs.purpose {
            Purpose::Activator => 0,
            Purpose::Worker => 1,
        };
        let min_dynos = match self.min_dynos.is_set() {
            false => Some(Schedule::Fixed(default_min)),
            true => read_schedule(&self.min_dynos, check),
        };
        let increment = self
            .increment
            .whole_or(check, 1, 1, "a whole number of dynos, 1 or more");
        let scale_up_cooldown = self.scale_up_cooldown.duration_or(check, Duration::ZERO);
        let scale_down_cooldown = self.scale_down_cooldown.duration_or(check, Duration::ZERO);
        let max_age = self.max_age.positive_duration(check);
        let policy = read_policy(
            RawPolicy {
                policy: &self.policy,
                target_utilisation: &self.target_utilisation,
                scale_down_delay: &self.scale_down_delay,
                dyno_concurrency: &self.dyno_concurrency,
            },
            check,
        );

        // Cross-field checks, only where both sides were readable.
        if let (Some((most, why)), Some(max), true) =
            (needs.most, &max_dynos, self.max_dynos.is_set())
        {
            if always_or_sometimes(max, |dynos| dynos > most) {
                self.max_dynos
                    .bad_text(check, &max.to_string(), format!("at most {most} {why}"));
            }
        }
        if let (Some(_), Some(min)) = (needs.idle_in_force, &min_dynos) {
            if !always_or_sometimes(min, |dynos| dynos == 0) {
                self.min_dynos.bad_text(
                    check,
                    &min.to_string(),
                    "0 at some time of day, since idle_after is set: idle_after scales to zero only while min_dynos in force is 0",
                );
            }
        }
        if let (Some(min), Some(max)) = (min_response_time_ms, max_response_time_ms) {
            if min > max {
                self.min_response_time_in_ms.bad_shown(
                    check,
                    min.to_string(),
                    format!("at most max_response_time_in_ms ({max})"),
                );
            }
        }
        if let (Some(min), Some(max)) = (&min_dynos, &max_dynos) {
            if let Some(minute) = first_minute_min_above_max(min, max) {
                self.min_dynos.bad_text(
                    check,
                    &min.to_string(),
                    format!(
                        "at most max_dynos at every time of day, but at {} min_dynos is {} and max_dynos is {}",
                        when(min, max, minute),
                        min.at_minute(minute),
                        max.at_minute(minute)
                    ),
                );
            }
        }
        if check.failed_since(mark) {
            return None;
        }
        Some(Thresholds {
            max_response_time_ms: u64::from(max_response_time_ms?),
            min_response_time_ms: u64::from(min_response_time_ms?),
            number_of_fails_to_scale_up_after: fails?,
            number_of_passes_to_scale_down_after: passes?,
            max_dynos: max_dynos?,
            min_dynos: min_dynos?,
            increment: increment?,
            time_zone: time_zone?,
            scale_up_cooldown: scale_up_cooldown?,
            scale_down_cooldown: scale_down_cooldown?,
            idle_after,
            max_age,
            policy: policy?,
        })
    }

    /// `max_response_time_in_ms`: the heartbeat's timeout defaults from it.
    pub(super) fn max_response_time_ms(&self, check: &mut Check) -> Option<u32> {
        self.max_response_time_in_ms.whole_or(
            check,
            1000,
            1,
            "a whole number of milliseconds above 0",
        )
    }
}

impl Thresholds {
    pub(super) fn rows(&self) -> Vec<(&'static str, String)> {
        let shown = RawThresholds {
            max_response_time_in_ms: Raw::shown(self.max_response_time_ms.to_string()),
            min_response_time_in_ms: Raw::shown(self.min_response_time_ms.to_string()),
            number_of_fails_to_scale_up_after: Raw::shown(
                self.number_of_fails_to_scale_up_after.to_string(),
            ),
            number_of_passes_to_scale_down_after: Raw::shown(
                self.number_of_passes_to_scale_down_after.to_string(),
            ),
            max_dynos: Raw::shown(self.max_dynos.to_string()),
            min_dynos: Raw::shown(self.min_dynos.to_string()),
            increment: Raw::shown(self.increment.to_string()),
            time_zone: Raw::quoted(self.time_zone.name()),
            scale_up_cooldown: Raw::duration(self.scale_up_cooldown),
            scale_down_cooldown: Raw::duration(self.scale_down_cooldown),
            idle_after: Raw::optional(self.idle_after, Raw::duration),
            max_age: Raw::optional(self.max_age, Raw::duration),
            policy: Raw::quoted(self.policy.kind.as_str()),
            target_utilisation: Raw::shown(self.policy.target_utilisation.to_string()),
            scale_down_delay: Raw::duration(self.policy.scale_down_delay),
            dyno_concurrency: Raw::shown(self.policy.dyno_concurrency.to_string()),
        };
        rows("", &shown)
    }
}

/// Whether `test` holds for the schedule's value at some time of day. It is a step function,
/// so midnight and its change points cover the whole day.
fn always_or_sometimes(schedule: &Schedule, test: impl Fn(u32) -> bool) -> bool {
    schedule
        .change_minutes()
        .into_iter()
        .chain(std::iter::once(0))
        .any(|minute| test(schedule.at_minute(minute)))
}

/// A whole number or a time-of-day table of whole numbers: `max_dynos`, `min_dynos`, the
/// notification threshold. `None` when absent or bad.
pub(super) fn read_schedule(raw: &Raw, check: &mut Check) -> Option<Schedule> {
    let value = raw.value()?;
    let ValueKind::Table(entries) = &value.kind else {
        return raw.whole(check, 0, SCHEDULE_EXPECTED).map(Schedule::Fixed);
    };
    if Schedule::is_weekly_value(value) {
        return Schedule::weekly_from_value(value)
            .map_err(|why| raw.bad(check, format!("a table by day: {why}")))
            .ok();
    }
    let mut entries: Vec<_> = entries.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut parsed = Vec::new();
    let mut ok = true;
    for (time, entry) in entries {
        let child = raw.child(&format!("\"{time}\""), entry.clone());
        match child.whole(check, 0, "a whole number (0 or more)") {
            Some(n) => parsed.push((time.as_str(), n)),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    match Schedule::daily(parsed) {
        Ok(schedule) => Some(schedule),
        Err(why) => {
            raw.bad(check, format!("a time-of-day table: {why}"));
            None
        }
    }
}

/// A minute of `first_minute_min_above_max` as people read it: "9:00" for daily tables,
/// "Tue 9:00" when either table is by day of the week.
fn when(min: &Schedule, max: &Schedule, minute: u16) -> String {
    if matches!(min, Schedule::Weekly(_)) || matches!(max, Schedule::Weekly(_)) {
        crate::schedule::format_minute_of_week(minute)
    } else {
        format!("{}:{:02}", minute / 60, minute % 60)
    }
}

/// The first minute of the day (of the week, for tables by day) at which `min` is above `max`, if any. Both are step functions,
/// so checking midnight and every change point of either covers the whole day.
fn first_minute_min_above_max(min: &Schedule, max: &Schedule) -> Option<u16> {
    let mut minutes: Vec<u16> = std::iter::once(0)
        .chain(min.change_minutes())
        .chain(max.change_minutes())
        .collect();
    minutes.sort_unstable();
    minutes.dedup();
    minutes
        .into_iter()
        .find(|&minute| min.at_minute(minute) > max.at_minute(minute))
}
