//! Time-of-day tables: `max_dynos = { "0:00" = 2, "9:00" = 5, "17:00" = 2 }`.
//!
//! The latest entry at or before the local time applies, wrapping to the last entry of the day
//! before; minutes count and 0 is a value. This module knows nothing of settings files or
//! clocks: it turns a local time of day into a number.

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;

/// A whole number that is either fixed or changes with the time of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Fixed(u32),
    /// `(minute of the day, value)`, sorted by minute, never empty.
    Daily(Vec<(u16, u32)>),
}

impl Schedule {
    /// Builds a daily table, checking every key. Errors name the bad key.
    pub fn daily<'a>(
        entries: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<Schedule, String> {
        let mut table = Vec::new();
        for (key, value) in entries {
            let minute = parse_time_of_day(key)?;
            if table.iter().any(|(existing, _)| *existing == minute) {
                return Err(format!("\"{key}\" names the same time as another entry"));
            }
            table.push((minute, value));
        }
        if table.is_empty() {
            return Err("the table is empty; give at least \"0:00\"".to_string());
        }
        table.sort_by_key(|(minute, _)| *minute);
        Ok(Schedule::Daily(table))
    }

    /// The value at a minute of the day (0..1440).
    pub fn at_minute(&self, minute_of_day: u16) -> u32 {
        match self {
            Schedule::Fixed(value) => *value,
            Schedule::Daily(table) => table
                .iter()
                .rev()
                .find(|(minute, _)| *minute <= minute_of_day)
                // Before the day's first entry, yesterday's last entry is still in force.
                .or_else(|| table.last())
                .map(|(_, value)| *value)
                .expect("a daily table is never empty"),
        }
    }

    /// The value in force at `now` in the zone `time_zone`.
    pub fn at(&self, now: DateTime<Utc>, time_zone: Tz) -> u32 {
        self.at_minute(minute_of_day(now, time_zone))
    }

    /// The minutes at which the value may change (empty when fixed).
    pub fn change_minutes(&self) -> Vec<u16> {
        match self {
            Schedule::Fixed(_) => Vec::new(),
            Schedule::Daily(table) => table.iter().map(|(minute, _)| *minute).collect(),
        }
    }

    /// The largest value the schedule ever takes.
    pub fn highest(&self) -> u32 {
        match self {
            Schedule::Fixed(value) => *value,
            Schedule::Daily(table) => table.iter().map(|(_, value)| *value).max().unwrap_or(0),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Fixed(value) => write!(f, "{value}"),
            Schedule::Daily(table) => {
                let entries: Vec<String> = table
                    .iter()
                    .map(|(minute, value)| {
                        format!("\"{}:{:02}\" = {value}", minute / 60, minute % 60)
                    })
                    .collect();
                write!(f, "{{ {} }}", entries.join(", "))
            }
        }
    }
}

/// The local minute of the day (0..1440) of `now` in `time_zone`.
pub fn minute_of_day(now: DateTime<Utc>, time_zone: Tz) -> u16 {
    let local: NaiveTime = now.with_timezone(&time_zone).time();
    (local.hour() * 60 + local.minute()) as u16
}

/// Parses `"H:MM"` or `"HH:MM"` (0:00 to 23:59) into a minute of the day.
pub fn parse_time_of_day(text: &str) -> Result<u16, String> {
    let invalid = || format!("\"{text}\" is not a time of day: expected H:MM from 0:00 to 23:59");
    let (hours, minutes) = text.trim().split_once(':').ok_or_else(invalid)?;
    if hours.is_empty() || hours.len() > 2 || minutes.len() != 2 {
        return Err(invalid());
    }
    let hours: u16 = hours.parse().map_err(|_| invalid())?;
    let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
    if hours > 23 || minutes > 59 {
        return Err(invalid());
    }
    Ok(hours * 60 + minutes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn table(entries: &[(&str, u32)]) -> Schedule {
        Schedule::daily(entries.iter().copied()).unwrap()
    }

    #[test]
    fn the_latest_entry_at_or_before_applies() {
        let max = table(&[("0:00", 2), ("9:00", 5), ("17:00", 3)]);
        assert_eq!(max.at_minute(60), 2);
        assert_eq!(max.at_minute(12 * 60), 5);
        assert_eq!(max.at_minute(18 * 60), 3);
        assert_eq!(max.at_minute(9 * 60 + 5), 5);
        assert_eq!(max.at_minute(9 * 60), 5);
        assert_eq!(max.at_minute(9 * 60 - 1), 2);
    }

    #[test]
    fn before_the_first_entry_wraps_to_the_evening_before() {
        let min = table(&[("8:00", 3), ("18:00", 1)]);
        assert_eq!(min.at_minute(7 * 60 + 59), 1);
        assert_eq!(min.at_minute(0), 1);
        assert_eq!(min.at_minute(8 * 60), 3);
    }

    #[test]
    fn minutes_count_and_order_is_by_time_not_text() {
        let max = table(&[("9:45", 4), ("9:15", 2), ("10:00", 6), ("9:30", 3)]);
        assert_eq!(max.at_minute(9 * 60 + 20), 2);
        assert_eq!(max.at_minute(9 * 60 + 30), 3);
        assert_eq!(max.at_minute(9 * 60 + 59), 4);
        assert_eq!(max.at_minute(10 * 60), 6);
    }

    #[test]
    fn zero_is_a_value() {
        let min = table(&[("0:00", 0), ("9:00", 1)]);
        assert_eq!(min.at_minute(3 * 60), 0);
    }

    #[test]
    fn bad_times_are_refused() {
        for bad in ["25:00", "9", "9:7", "9:60", "-1:00", "ab:cd", "", "9:000"] {
            assert!(parse_time_of_day(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(parse_time_of_day("09:05"), Ok(545));
        assert_eq!(parse_time_of_day("23:59"), Ok(1439));
        assert!(Schedule::daily([("1:00", 1), ("01:00", 2)]).is_err());
        assert!(Schedule::daily(std::iter::empty()).is_err());
    }

    #[test]
    fn the_zone_decides_the_local_time() {
        let max = table(&[("0:00", 2), ("9:00", 5), ("17:00", 2)]);
        // 14:00 UTC is 9:00 in New York (EST, UTC-5) on a winter day.
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 14, 0, 0).unwrap();
        assert_eq!(max.at(now, chrono_tz::UTC), 5);
        assert_eq!(max.at(now, chrono_tz::America::New_York), 5);
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 13, 59, 0).unwrap();
        assert_eq!(max.at(now, chrono_tz::America::New_York), 2);
        // 23:30 UTC is 5:00 the next day in Kolkata (UTC+5:30).
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 23, 30, 0).unwrap();
        assert_eq!(minute_of_day(now, chrono_tz::Asia::Kolkata), 5 * 60);
        assert_eq!(max.at(now, chrono_tz::Asia::Kolkata), 2);
    }

    #[test]
    fn display_reads_like_the_settings_file() {
        let max = table(&[("17:00", 2), ("9:05", 5)]);
        assert_eq!(max.to_string(), "{ \"9:05\" = 5, \"17:00\" = 2 }");
        assert_eq!(Schedule::Fixed(3).to_string(), "3");
    }
}
