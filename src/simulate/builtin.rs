//! Built-in traces, generated rather than shipped, so `simulate` runs on a bare machine.
//!
//! Each is one point per minute, shaped by the local time of day in the settings' time zone
//! so that schedules line up with the traffic as they would in production. The rates suit the
//! default model (4 requests at once per dyno, 50 ms each: 80 req/s per dyno). A fixed seed
//! adds a little noise, so a builtin is the same trace on every run and every machine.

use super::trace::{Point, Trace};
use super::BadInput;
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::f64::consts::PI;

pub const NAMES: &[&str] = &["diurnal-week", "flash-crowd", "quiet-weekend"];

/// The trace called `builtin:NAME`.
pub fn generate(name: &str, time_zone: Tz) -> Result<Trace, BadInput> {
    let trace = match name {
        // Monday 2024-01-01 to the next Monday: busy afternoons, quieter weekend.
        "diurnal-week" => minutes(
            name,
            time_zone,
            (2024, 1, 1, 0),
            7 * 24 * 60,
            |hour, day| {
                let peak = if day >= 5 { 90.0 } else { 185.0 };
                15.0 + peak * daytime(hour)
            },
        ),
        // A Monday from 06:00 to 12:00: 40 req/s, then at 09:00 a surge to 220 req/s within
        // five minutes that holds half an hour and fades over the next hours.
        "flash-crowd" => minutes(name, time_zone, (2024, 1, 1, 6), 6 * 60, |hour, _| {
            let since_h = hour - 9.0;
            let surge = if since_h < 0.0 {
                0.0
            } else if since_h < 5.0 / 60.0 {
                since_h / (5.0 / 60.0)
            } else if since_h < 0.5 + 5.0 / 60.0 {
                1.0
            } else {
                (-(since_h - 0.5 - 5.0 / 60.0) / 0.75).exp()
            };
            40.0 + 180.0 * surge
        }),
        // Saturday and Sunday of a small site: a few requests per second.
        "quiet-weekend" => minutes(name, time_zone, (2024, 1, 6, 0), 2 * 24 * 60, |hour, _| {
            2.0 + 25.0 * daytime(hour)
        }),
        _ => {
            let known: Vec<String> = NAMES.iter().map(|n| format!("builtin:{n}")).collect();
            return Err(BadInput(format!(
                "--trace builtin:{name}: unknown built-in trace; expected one of {}",
                known.join(", ")
            )));
        }
    };
    trace
}

/// 0 at night, rising from 06:00 to a peak at 14:00 and back to 0 at 22:00.
fn daytime(hour: f64) -> f64 {
    if !(6.0..22.0).contains(&hour) {
        return 0.0;
    }
    (PI * (hour - 6.0) / 16.0).sin().powf(1.5)
}

/// `count` minutes from `start_hour` on `date`, local time in `time_zone`; `rate(local hour,
/// day index)` gives each minute's rate before ±5 % noise.
fn minutes(
    name: &str,
    time_zone: Tz,
    (year, month, day, start_hour): (i32, u32, u32, u32),
    count: i64,
    rate: impl Fn(f64, i64) -> f64,
) -> Result<Trace, BadInput> {
    let midnight = NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|date| date.and_hms_opt(start_hour, 0, 0))
        .expect("a valid date");
    let start_ms = time_zone
        .from_local_datetime(&midnight)
        .earliest()
        .expect("local midnight exists in every zone in January")
        .timestamp_millis();
    let mut noise = Pcg64Mcg::seed_from_u64(1998);
    let points = (0..count)
        .map(|minute| {
            let minute_of_day = minute + i64::from(start_hour) * 60;
            let hour = (minute_of_day % (24 * 60)) as f64 / 60.0;
            let jitter = 1.0 + 0.1 * (noise.random::<f64>() - 0.5);
            Point {
                at_ms: start_ms + minute * 60_000,
                requests_per_second: (rate(hour, minute_of_day / (24 * 60)) * jitter).max(0.0),
            }
        })
        .collect();
    Trace::from_points(format!("builtin:{name}"), points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_minute_by_minute_and_busiest_in_the_day() {
        for name in NAMES {
            let trace = generate(name, chrono_tz::UTC).unwrap();
            let points = trace.points();
            assert!(points.len() >= 6 * 60, "{name}");
            assert!(points.windows(2).all(|w| w[1].at_ms - w[0].at_ms == 60_000));
            let busiest = points
                .iter()
                .max_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second))
                .unwrap();
            let hour = (busiest.at_ms / 3_600_000) % 24;
            assert!((8..20).contains(&hour), "{name}: busiest at {hour}:00");
            let quietest = points
                .iter()
                .map(|p| p.requests_per_second)
                .fold(f64::INFINITY, f64::min);
            assert!(busiest.requests_per_second > 3.0 * quietest, "{name}");
        }
    }

    #[test]
    fn builtins_follow_the_settings_time_zone() {
        let utc = generate("diurnal-week", chrono_tz::UTC).unwrap();
        let vancouver = generate("diurnal-week", chrono_tz::America::Vancouver).unwrap();
        assert_eq!(vancouver.start_ms() - utc.start_ms(), 8 * 3600 * 1000);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let error = generate("diurnal-month", chrono_tz::UTC).unwrap_err();
        assert!(error.0.contains("builtin:diurnal-month"), "{error}");
        assert!(error.0.contains("builtin:flash-crowd"), "{error}");
    }
}
