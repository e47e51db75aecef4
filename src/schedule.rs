//! Time-of-day tables: `max_dynos = { "0:00" = 2, "9:00" = 5, "17:00" = 2 }`, the same every
//! day, or one per day of the week:
//! `max_dynos = { mon-fri = { "0:00" = 2, "9:00" = 8, "18:00" = 3 }, sat-sun = 1 }`.
//!
//! The latest entry at or before the local time applies, wrapping to the last entry before it
//! (the evening before, or last Sunday's for Monday morning); minutes count and 0 is a value.
//! This module knows nothing of settings files or clocks: it turns a local time into a number,
//! and a raw settings value into a table.

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use config::{Value, ValueKind};

const MINUTES_PER_DAY: u16 = 24 * 60;
/// Minutes in a week: the range of a minute of the week, from Monday 0:00.
pub const MINUTES_PER_WEEK: u16 = 7 * MINUTES_PER_DAY;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const EXPECTED_DAYS: &str =
    "a day of the week (mon … sun), a range such as mon-fri, a list such as \"sat,sun\", weekdays or weekends";

/// A whole number that is either fixed or changes with the time of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Fixed(u32),
    /// `(minute of the day, value)`, sorted by minute, never empty.
    Daily(Vec<(u16, u32)>),
    /// `(minute of the week from Monday 0:00, value)`, sorted by minute, never empty.
    Weekly(Vec<(u16, u32)>),
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

    /// Builds a table by day of the week from `(days, entries)` pairs: `days` as written
    /// (`"mon-fri"`), `entries` a time-of-day table. Every day must be given exactly once.
    pub fn weekly<'a>(
        days: impl IntoIterator<Item = (&'a str, Vec<(&'a str, u32)>)>,
    ) -> Result<Schedule, String> {
        let mut given: [Option<String>; 7] = Default::default();
        let mut table = Vec::new();
        for (key, entries) in days {
            let Schedule::Daily(day_table) =
                Schedule::daily(entries.iter().copied()).map_err(|why| format!("{key}: {why}"))?
            else {
                unreachable!("daily() builds a daily table");
            };
            for day in parse_days(key)? {
                if let Some(first) = &given[day] {
                    return Err(format!(
                        "{} is given twice ({first} and {key}); give every day once",
                        DAYS[day]
                    ));
                }
                given[day] = Some(key.to_string());
                let start = day as u16 * MINUTES_PER_DAY;
                table.extend(
                    day_table
                        .iter()
                        .map(|(minute, value)| (start + minute, *value)),
                );
            }
        }
        let missing: Vec<&str> = (0..7)
            .filter(|&day| given[day].is_none())
            .map(|day| DAYS[day])
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} {} not given; give every day of the week once (such as mon-fri and sat-sun)",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ));
        }
        table.sort_by_key(|(minute, _)| *minute);
        Ok(Schedule::Weekly(table))
    }

    /// The value at a minute of the week (0..10080, from Monday 0:00). A daily table reads
    /// the minute of the day, so for it a minute of the day works the same.
    pub fn at_minute(&self, minute: u16) -> u32 {
        let latest = |table: &[(u16, u32)], at: u16| {
            table
                .iter()
                .rev()
                .find(|(minute, _)| *minute <= at)
                // Before the first entry, the last one (the day or week before) is in force.
                .or_else(|| table.last())
                .map(|(_, value)| *value)
                .expect("a table is never empty")
        };
        match self {
            Schedule::Fixed(value) => *value,
            Schedule::Daily(table) => latest(table, minute % MINUTES_PER_DAY),
            Schedule::Weekly(table) => latest(table, minute % MINUTES_PER_WEEK),
        }
    }

    /// The value in force at `now` in the zone `time_zone`.
    pub fn at(&self, now: DateTime<Utc>, time_zone: Tz) -> u32 {
        self.at_minute(minute_of_week(now, time_zone))
    }

    /// The minutes of the week at which the value may change (empty when fixed): with
    /// midnight, checking these covers the whole week.
    pub fn change_minutes(&self) -> Vec<u16> {
        match self {
            Schedule::Fixed(_) => Vec::new(),
            Schedule::Daily(table) => (0..7)
                .flat_map(|day| {
                    table
                        .iter()
                        .map(move |(minute, _)| day * MINUTES_PER_DAY + minute)
                })
                .collect(),
            Schedule::Weekly(table) => table.iter().map(|(minute, _)| *minute).collect(),
        }
    }

    /// The largest value the schedule ever takes.
    pub fn highest(&self) -> u32 {
        match self {
            Schedule::Fixed(value) => *value,
            Schedule::Daily(table) | Schedule::Weekly(table) => {
                table.iter().map(|(_, value)| *value).max().unwrap_or(0)
            }
        }
    }

    /// Whether a raw settings table is by day of the week (its keys name days, or its values
    /// are tables) rather than by time of day.
    pub fn is_weekly_value(value: &Value) -> bool {
        match &value.kind {
            ValueKind::Table(entries) => entries.iter().any(|(key, entry)| {
                parse_days(key).is_ok() || matches!(entry.kind, ValueKind::Table(_))
            }),
            _ => false,
        }
    }

    /// Reads a table by day of the week from the raw settings value: each day, range or list
    /// of days gives a whole number or a time-of-day table of whole numbers. The error says
    /// which entry is wrong and what was expected.
    pub fn weekly_from_value(value: &Value) -> Result<Schedule, String> {
        let ValueKind::Table(days) = &value.kind else {
            return Err("a table by day of the week".to_string());
        };
        let mut parsed: Vec<(&str, Vec<(&str, u32)>)> = Vec::new();
        for (key, entry) in days {
            parse_days(key)?;
            let entries = match &entry.kind {
                ValueKind::Table(times) => {
                    let mut entries = Vec::new();
                    for (time, count) in times {
                        let count = whole_number(count).ok_or_else(|| {
                            format!(
                                "{key}.\"{time}\" = {count}: expected a whole number (0 or more)"
                            )
                        })?;
                        entries.push((time.as_str(), count));
                    }
                    entries
                }
                _ => {
                    let count = whole_number(entry).ok_or_else(|| {
                        format!("{key} = {entry}: expected a whole number (0 or more) or a time-of-day table")
                    })?;
                    vec![("0:00", count)]
                }
            };
            parsed.push((key.as_str(), entries));
        }
        Schedule::weekly(parsed)
    }
}

/// A TOML whole number (or text of one) that fits a `u32`.
fn whole_number(value: &Value) -> Option<u32> {
    match &value.kind {
        ValueKind::I64(n) => u32::try_from(*n).ok(),
        ValueKind::U64(n) => u32::try_from(*n).ok(),
        ValueKind::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The days (0 = Monday) a key names: `mon`, `monday`, `mon-fri` (ranges may wrap:
/// `fri-mon`), `sat,sun`, `weekdays`, `weekends`.
pub fn parse_days(key: &str) -> Result<Vec<usize>, String> {
    let invalid = || format!("\"{key}\" is not {EXPECTED_DAYS}");
    let day = |text: &str| {
        let text = text.trim().to_ascii_lowercase();
        DAYS.iter()
            .position(|day| *day == text)
            .or_else(|| FULL_DAYS.iter().position(|day| *day == text))
    };
    let lowered = key.trim().to_ascii_lowercase();
    match lowered.as_str() {
        "weekdays" => return Ok((0..5).collect()),
        "weekends" | "weekend" => return Ok(vec![5, 6]),
        _ => {}
    }
    let mut days = Vec::new();
    for part in lowered.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from).ok_or_else(invalid)?, day(to).ok_or_else(invalid)?);
                let mut at = from;
                loop {
                    days.push(at);
                    if at == to {
                        break;
                    }
                    at = (at + 1) % 7;
                }
            }
            None => days.push(day(part).ok_or_else(invalid)?),
        }
    }
    let mut unique = days.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != days.len() {
        return Err(format!("\"{key}\" names a day twice"));
    }
    Ok(days)
}

/// A minute of the week as people read it: "Tue 9:05".
pub fn format_minute_of_week(minute: u16) -> String {
    let day = (minute / MINUTES_PER_DAY) as usize % 7;
    let minute = minute % MINUTES_PER_DAY;
    let mut name = DAYS[day].to_string();
    name[..1].make_ascii_uppercase();
    format!("{name} {}:{:02}", minute / 60, minute % 60)
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = |table: &[(u16, u32)]| -> String {
            let entries: Vec<String> = table
                .iter()
                .map(|(minute, value)| format!("\"{}:{:02}\" = {value}", minute / 60, minute % 60))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        };
        match self {
            Schedule::Fixed(value) => write!(f, "{value}"),
            Schedule::Daily(table) => write!(f, "{}", entries(table)),
            Schedule::Weekly(table) => {
                // Each day's own entries; days in a row with the same entries as one range.
                let day_tables: Vec<Vec<(u16, u32)>> = (0..7u16)
                    .map(|day| {
                        table
                            .iter()
                            .filter(|(minute, _)| minute / MINUTES_PER_DAY == day)
                            .map(|(minute, value)| (minute % MINUTES_PER_DAY, *value))
                            .collect()
                    })
                    .collect();
                let mut groups: Vec<String> = Vec::new();
                let mut start = 0;
                for day in 1..=7 {
                    if day < 7 && day_tables[day] == day_tables[start] {
                        continue;
                    }
                    let days = if day - 1 == start {
                        DAYS[start].to_string()
                    } else {
                        format!("{}-{}", DAYS[start], DAYS[day - 1])
                    };
                    let value = if day_tables[start].is_empty() {
                        "{}".to_string()
                    } else {
                        entries(&day_tables[start])
                    };
                    groups.push(format!("{days} = {value}"));
                    start = day;
                }
                write!(f, "{{ {} }}", groups.join(", "))
            }
        }
    }
}

/// The local minute of the day (0..1440) of `now` in `time_zone`.
pub fn minute_of_day(now: DateTime<Utc>, time_zone: Tz) -> u16 {
    let local: NaiveTime = now.with_timezone(&time_zone).time();
    (local.hour() * 60 + local.minute()) as u16
}

/// The local minute of the week (0..10080, from Monday 0:00) of `now` in `time_zone`.
pub fn minute_of_week(now: DateTime<Utc>, time_zone: Tz) -> u16 {
    let day = now
        .with_timezone(&time_zone)
        .weekday()
        .num_days_from_monday() as u16;
    day * MINUTES_PER_DAY + minute_of_day(now, time_zone)
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

    fn week(days: &[(&str, &[(&str, u32)])]) -> Result<Schedule, String> {
        Schedule::weekly(days.iter().map(|(key, entries)| (*key, entries.to_vec())))
    }

    const TUE: u16 = MINUTES_PER_DAY;
    const SAT: u16 = 5 * MINUTES_PER_DAY;
    const SUN: u16 = 6 * MINUTES_PER_DAY;

    #[test]
    fn weekdays_and_weekends_have_their_own_tables() {
        let max = week(&[
            ("mon-fri", &[("0:00", 2), ("9:00", 8), ("18:00", 3)]),
            ("sat-sun", &[("0:00", 1)]),
        ])
        .unwrap();
        assert_eq!(max.at_minute(TUE + 9 * 60), 8);
        assert_eq!(max.at_minute(TUE + 8 * 60 + 59), 2);
        assert_eq!(max.at_minute(TUE + 20 * 60), 3);
        assert_eq!(max.at_minute(SAT + 9 * 60), 1);
        assert_eq!(max.at_minute(SUN + 23 * 60), 1);
        assert_eq!(max.highest(), 8);
        // Friday 2026-01-16 10:00 and Saturday 2026-01-17 10:00 in Paris (UTC+1).
        let friday = Utc.with_ymd_and_hms(2026, 1, 16, 9, 0, 0).unwrap();
        assert_eq!(max.at(friday, chrono_tz::Europe::Paris), 8);
        let saturday = Utc.with_ymd_and_hms(2026, 1, 17, 9, 0, 0).unwrap();
        assert_eq!(max.at(saturday, chrono_tz::Europe::Paris), 1);
        // 23:30 UTC on a Friday is already Saturday in Paris.
        let late = Utc.with_ymd_and_hms(2026, 1, 16, 23, 30, 0).unwrap();
        assert_eq!(minute_of_week(late, chrono_tz::Europe::Paris), SAT + 30);
    }

    #[test]
    fn before_a_days_first_entry_the_day_before_holds_even_across_the_week() {
        let max = week(&[
            ("mon-sat", &[("8:00", 5), ("20:00", 2)]),
            ("sun", &[("12:00", 1)]),
        ])
        .unwrap();
        assert_eq!(max.at_minute(7 * 60), 1, "Monday 7:00: Sunday's last entry");
        assert_eq!(
            max.at_minute(TUE + 7 * 60),
            2,
            "Tuesday 7:00: Monday evening's"
        );
        assert_eq!(
            max.at_minute(SUN + 11 * 60),
            2,
            "Sunday 11:00: Saturday evening's"
        );
        assert_eq!(max.at_minute(SUN + 12 * 60), 1);
    }

    #[test]
    fn days_are_written_as_people_write_them() {
        assert_eq!(parse_days("mon"), Ok(vec![0]));
        assert_eq!(parse_days("Monday"), Ok(vec![0]));
        assert_eq!(parse_days("mon-fri"), Ok(vec![0, 1, 2, 3, 4]));
        assert_eq!(
            parse_days("fri-mon"),
            Ok(vec![4, 5, 6, 0]),
            "a range may wrap"
        );
        assert_eq!(parse_days("sat,sun"), Ok(vec![5, 6]));
        assert_eq!(parse_days("weekdays"), Ok(vec![0, 1, 2, 3, 4]));
        assert_eq!(parse_days("weekends"), Ok(vec![5, 6]));
        for bad in ["9:00", "mondays", "mon-", "mon-mun", ""] {
            let why = parse_days(bad).unwrap_err();
            assert!(
                why.contains(&format!("\"{bad}\"")) && why.contains("mon-fri"),
                "{why}"
            );
        }
        assert!(parse_days("mon,mon").unwrap_err().contains("twice"));
    }

    #[test]
    fn every_day_once_or_the_error_names_the_day() {
        let missing = week(&[("mon-fri", &[("0:00", 2)])]).unwrap_err();
        assert!(missing.contains("sat, sun are not given"), "{missing}");
        let twice = week(&[("mon-fri", &[("0:00", 2)]), ("fri-sun", &[("0:00", 1)])]).unwrap_err();
        assert!(
            twice.contains("fri is given twice (mon-fri and fri-sun)"),
            "{twice}"
        );
        let bad_time =
            week(&[("weekdays", &[("25:00", 2)]), ("weekends", &[("0:00", 1)])]).unwrap_err();
        assert!(
            bad_time.starts_with("weekdays: \"25:00\" is not a time of day"),
            "{bad_time}"
        );
    }

    #[test]
    fn a_raw_settings_value_by_day_is_read_with_numbers_or_tables() {
        let text = r#"max_dynos = { mon-fri = { "0:00" = 2, "9:00" = 8 }, sat-sun = 1 }"#;
        let value = raw(text);
        assert!(Schedule::is_weekly_value(&value));
        let max = Schedule::weekly_from_value(&value).unwrap();
        assert_eq!(max.at_minute(9 * 60), 8);
        assert_eq!(max.at_minute(SAT + 9 * 60), 1);
        assert_eq!(
            max.to_string(),
            r#"{ mon-fri = { "0:00" = 2, "9:00" = 8 }, sat-sun = { "0:00" = 1 } }"#
        );
        let daily = raw(r#"max_dynos = { "0:00" = 2, "9:00" = 8 }"#);
        assert!(!Schedule::is_weekly_value(&daily));
        let bad = raw(r#"max_dynos = { mon-fri = { "9:00" = "lots" }, sat-sun = 1 }"#);
        let why = Schedule::weekly_from_value(&bad).unwrap_err();
        assert!(
            why.contains("mon-fri.\"9:00\"") && why.contains("whole number"),
            "{why}"
        );
        let bad = raw(r#"max_dynos = { mon-fri = -1, sat-sun = 1 }"#);
        assert!(Schedule::weekly_from_value(&bad)
            .unwrap_err()
            .starts_with("mon-fri = -1"));
        let mixed = raw(r#"max_dynos = { mon-fri = 2, "9:00" = 1 }"#);
        let why = Schedule::weekly_from_value(&mixed).unwrap_err();
        assert!(why.contains("\"9:00\" is not a day of the week"), "{why}");
    }

    /// The raw value of `max_dynos` in a TOML text, as the settings reader gets it.
    fn raw(text: &str) -> Value {
        let table: std::collections::HashMap<String, Value> = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        table["max_dynos"].clone()
    }

    #[test]
    fn the_change_minutes_cover_every_day_so_checks_see_the_whole_week() {
        let daily = table(&[("0:00", 2), ("9:00", 5)]);
        let minutes = daily.change_minutes();
        assert_eq!(minutes.len(), 14);
        assert!(minutes.contains(&(SUN + 9 * 60)));
        let weekly = week(&[
            ("mon-fri", &[("0:00", 2), ("9:00", 8)]),
            ("sat-sun", &[("0:00", 1)]),
        ])
        .unwrap();
        assert_eq!(weekly.change_minutes().len(), 12);
        assert_eq!(format_minute_of_week(TUE + 9 * 60 + 5), "Tue 9:05");
        assert_eq!(format_minute_of_week(0), "Mon 0:00");
    }
}
