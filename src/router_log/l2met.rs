//! The l2met convention in an app's log lines, as a Heroku log drain carries them: the app's
//! own `sample#queue.depth=120 measure#queue.latency=4.2s count#jobs=3`, and Heroku's runtime
//! metrics (`source=web.1 dyno=heroku.… sample#load_avg_1m=2.46`, `sample#memory_total=21.00MB`),
//! each for the process type of the dyno that logged it.
//!
//! Pure: a syslog message in, samples out; no clock, no locks. A line whose metric has no
//! number (`sample#queue.depth=lots`) is refused whole and counted by the caller; the drain
//! keeps the newest value of each (process type, name). Times are read in seconds (`4.2s`,
//! `350ms`, `12us`); other units (`MB`, `pages`, `%`) are dropped and the number kept.
//! Hand-written because l2met is a convention of a few lines of `key=value` text, read with
//! the router parser's [`key_values`].

use super::{key_values, SyslogMessage};

/// One value from a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The process type of the dyno that logged it: `web` for `web.1` (or `source=web.1` on a
    /// runtime-metrics line).
    pub process_type: String,
    /// The metric's name, without its `sample#` prefix: `queue.depth`, `load_avg_1m`.
    pub name: String,
    pub kind: Kind,
    /// The value, in seconds for a time.
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sample,
    Measure,
    Count,
}

/// Whether a message may hold l2met metrics (cheap: the router's lines and most app output
/// are passed over without parsing).
pub fn mentions_metrics(message: &str) -> bool {
    message.contains("sample#") || message.contains("measure#") || message.contains("count#")
}

/// The samples of one message; an error names the first value that is not a number.
pub fn parse(syslog: &SyslogMessage<'_>) -> Result<Vec<Sample>, String> {
    let mut source = None;
    let mut found = Vec::new();
    for pair in key_values(syslog.message) {
        let (key, value) = pair.map_err(|error| error.to_string())?;
        if key == "source" {
            source = Some(value);
            continue;
        }
        let (kind, name) = if let Some(name) = key.strip_prefix("sample#") {
            (Kind::Sample, name)
        } else if let Some(name) = key.strip_prefix("measure#") {
            (Kind::Measure, name)
        } else if let Some(name) = key.strip_prefix("count#") {
            (Kind::Count, name)
        } else {
            continue;
        };
        if name.is_empty() {
            return Err(format!("{key}={value:?} has no metric name"));
        }
        let value =
            number(value).ok_or_else(|| format!("{key}={value:?} is not a number with a unit"))?;
        found.push((kind, name, value));
    }
    // Heroku's runtime metrics come from `heroku` with the dyno in `source=`; an app's own
    // lines from `app` with the dyno as the process id.
    let dyno = source.unwrap_or(syslog.proc_id);
    let process_type = dyno.split('.').next().unwrap_or(dyno).to_string();
    Ok(found
        .into_iter()
        .map(|(kind, name, value)| Sample {
            process_type: process_type.clone(),
            name: name.to_string(),
            kind,
            value,
        })
        .collect())
}

/// `4.2s` → 4.2, `350ms` → 0.35, `21.00MB` → 21.0, `120` → 120.0.
fn number(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(text.len());
    // An exponent's `e` may have been taken for a unit's first letter: try the longest number.
    let (digits, unit) = text.split_at(split);
    let value: f64 = digits.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "" => 1.0,
        unit if unit.chars().all(|c| c.is_ascii_alphabetic() || c == '%') => 1.0,
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router_log::parse_syslog;

    fn samples(line: &str) -> Result<Vec<Sample>, String> {
        parse(&parse_syslog(line.as_bytes()).expect("a syslog line"))
    }

    fn values(line: &str) -> Vec<(String, String, f64)> {
        samples(line)
            .unwrap()
            .into_iter()
            .map(|sample| (sample.process_type, sample.name, sample.value))
            .collect()
    }

    #[test]
    fn heroku_runtime_metrics_load_and_memory_lines_are_read_per_process_type() {
        // As Heroku's runtime metrics documentation shows them (log-runtime-metrics).
        let load = "<45>1 2026-11-24T09:00:00.000000+00:00 host heroku web.1 - source=web.1 \
                    dyno=heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456 \
                    sample#load_avg_1m=2.46 sample#load_avg_5m=1.79 sample#load_avg_15m=0.91";
        assert_eq!(
            values(load),
            vec![
                ("web".into(), "load_avg_1m".into(), 2.46),
                ("web".into(), "load_avg_5m".into(), 1.79),
                ("web".into(), "load_avg_15m".into(), 0.91),
            ]
        );
        let memory = "<45>1 2026-11-24T09:00:00.000000+00:00 host heroku worker.3 - source=worker.3 \
                      dyno=heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456 \
                      sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_cache=0.00MB \
                      sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages";
        let read = values(memory);
        assert_eq!(read.len(), 6);
        assert_eq!(read[0], ("worker".into(), "memory_total".into(), 21.0));
        assert_eq!(
            read[5],
            ("worker".into(), "memory_pgpgout".into(), 343403.0)
        );
    }

    #[test]
    fn an_apps_own_samples_measures_and_counts_with_units() {
        let line = "<190>1 2026-11-24T09:00:00+00:00 host app worker.2 - at=info \
                    sample#queue.depth=120 measure#queue.latency=4.2s measure#job.time=350ms count#jobs.done=3";
        let read = samples(line).unwrap();
        assert_eq!(read.len(), 4);
        assert!(read.iter().all(|sample| sample.process_type == "worker"));
        assert_eq!((read[0].kind, read[0].value), (Kind::Sample, 120.0));
        assert_eq!((read[1].kind, read[1].value), (Kind::Measure, 4.2));
        assert!((read[2].value - 0.35).abs() < 1e-12);
        assert_eq!((read[3].kind, read[3].value), (Kind::Count, 3.0));
    }

    #[test]
    fn a_value_that_is_not_a_number_refuses_the_line() {
        for bad in [
            "sample#queue.depth=lots",
            "sample#queue.depth=",
            "sample#=4",
            "measure#x=4.2s/job",
        ] {
            let line = format!("<190>1 2026-11-24T09:00:00+00:00 host app worker.1 - {bad}");
            assert!(samples(&line).is_err(), "{bad}");
        }
    }
}
