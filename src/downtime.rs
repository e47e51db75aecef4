//! Planned downtime windows (seed 004): ISO 8601 intervals such as
//! `2026-11-25T01:00/2026-11-25T04:00` or `2026-11-25T01:00/PT3H`, declared in the settings, a
//! file, `AUTOSCALE_DOWNTIME`, or a header on the heartbeat response.
//!
//! This module owns the interval parser, the [`Window`] type, the [`Calendar`] of every window
//! known from each source (and which bad entries were already reported), and
//! [`active_window`]. It is pure: it is handed text and `now`, and never reads a file, the
//! environment or the clock. The shell (`bot.rs`) reads the file and the header and feeds them
//! in; what a window means for scaling is the engine's business (`decision.rs`).

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a window was declared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// `downtime = [...]` in the settings file; `index` counts from 0.
    Settings { index: usize },
    /// A line of the downtime file, counting from 1.
    File { path: PathBuf, line: usize },
    /// An environment variable (`AUTOSCALE_DOWNTIME`).
    Env { variable: String },
    /// A header on the heartbeat response (`X-Downtime`).
    Header { name: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Settings { index } => write!(f, "settings downtime[{index}]"),
            Source::File { path, line } => write!(f, "{} line {line}", path.display()),
            Source::Env { variable } => write!(f, "environment variable {variable}"),
            Source::Header { name } => write!(f, "heartbeat response header {name}"),
        }
    }
}

/// One planned downtime: from `start` (included) to `end` (excluded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub source: Source,
}

impl Window {
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end
    }

    /// "2026-11-25 01:00 GMT to 2026-11-25 04:00 GMT": the window in local time.
    pub fn local_span(&self, zone: Tz) -> String {
        format!(
            "{} to {}",
            local_time(self.start, zone),
            local_time(self.end, zone)
        )
    }

    /// The window as an ISO 8601 interval in local time with its offset, as `check` shows it.
    pub fn to_iso(&self, zone: Tz) -> String {
        let format = "%Y-%m-%dT%H:%M:%S%:z";
        format!(
            "{}/{}",
            self.start.with_timezone(&zone).format(format),
            self.end.with_timezone(&zone).format(format)
        )
    }
}

/// "2026-11-25 01:00 GMT" (seconds only when there are some).
pub fn local_time(at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone);
    if at.timestamp() % 60 == 0 && at.timestamp_subsec_nanos() == 0 {
        local.format("%Y-%m-%d %H:%M %Z").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S %Z").to_string()
    }
}

/// Why a piece of text is not a downtime window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum IntervalError {
    #[error("it is empty")]
    Empty,
    #[error("it has no \"/\": expected start/end or start/duration")]
    NoSlash,
    #[error("it has more than one \"/\"")]
    TooManySlashes,
    #[error("repeating intervals (R…) are not supported")]
    Repeating,
    #[error("both sides are durations; one side must be a date and time")]
    TwoDurations,
    #[error("{0:?} is not a date and time such as 2026-11-25T01:00 or 2026-11-25T01:00:00+01:00")]
    BadTime(String),
    #[error("{0:?} is not an ISO 8601 duration such as PT3H, PT90M or P1D")]
    BadDuration(String),
    #[error(
        "{0:?} counts years or months, which have no fixed length; use days (P30D) or an end time"
    )]
    NominalDuration(String),
    #[error("the duration {0:?} is zero")]
    ZeroDuration(String),
    #[error("{0:?} does not exist in {1} (the clocks skip it); give a UTC offset")]
    NoSuchLocalTime(String, String),
    #[error("the end ({end}) is not after the start ({start})")]
    EndNotAfterStart { start: String, end: String },
    #[error("the window is too far in the future or the past")]
    OutOfRange,
}

/// A bad entry, with where it came from, to report once and ignore.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BadEntry {
    pub source: Source,
    pub text: String,
    pub error: IntervalError,
}

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?} is not a downtime window: {}",
            self.source, self.text, self.error
        )
    }
}

/// Parses one ISO 8601 interval: `start/end`, `start/duration` or `duration/end`. Times
/// without a UTC offset are read in `zone`; an end that is only a time of day
/// (`2026-11-25T01:00/04:00`) is on the start's date.
pub fn parse_interval(
    text: &str,
    zone: Tz,
) -> Result<(DateTime<Utc>, DateTime<Utc>), IntervalError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(IntervalError::Empty);
    }
    if text.starts_with(['R', 'r']) {
        return Err(IntervalError::Repeating);
    }
    let mut parts = text.split('/');
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return Err(IntervalError::NoSlash);
    };
    if parts.next().is_some() {
        return Err(IntervalError::TooManySlashes);
    }
    let (first, second) = (first.trim(), second.trim());
    let is_duration = |part: &str| part.starts_with(['P', 'p']);
    let (start, end) = match (is_duration(first), is_duration(second)) {
        (true, true) => return Err(IntervalError::TwoDurations),
        (false, true) => {
            let start = parse_instant(first, zone)?;
            let length = parse_duration(second)?;
            let end = start.utc.checked_add_signed(length);
            (start.utc, end.ok_or(IntervalError::OutOfRange)?)
        }
        (true, false) => {
            let length = parse_duration(first)?;
            let end = parse_instant(second, zone)?;
            let start = end.utc.checked_sub_signed(length);
            (start.ok_or(IntervalError::OutOfRange)?, end.utc)
        }
        (false, false) => {
            let start = parse_instant(first, zone)?;
            let end = match parse_time_of_day(second) {
                Some(time) => start.same_day_at(time, zone, second)?,
                None => parse_instant(second, zone)?.utc,
            };
            (start.utc, end)
        }
    };
    if end <= start {
        return Err(IntervalError::EndNotAfterStart {
            start: first.to_string(),
            end: second.to_string(),
        });
    }
    Ok((start, end))
}

/// A parsed date and time, with what is needed to place an end given as a time of day.
struct Moment {
    utc: DateTime<Utc>,
    local: NaiveDateTime,
    offset: Option<FixedOffset>,
}

impl Moment {
    /// The same local date as this instant, at `time`, in the same offset or zone.
    fn same_day_at(
        &self,
        time: NaiveTime,
        zone: Tz,
        text: &str,
    ) -> Result<DateTime<Utc>, IntervalError> {
        let local = self.local.date().and_time(time);
        match self.offset {
            Some(offset) => resolve(offset, local, text, &offset.to_string()),
            None => resolve(zone, local, text, zone.name()),
        }
    }
}

/// Date-and-time forms with a UTC offset (`Z`, `+01`, `+0100`, `+01:00`), then without.
const WITH_OFFSET: &[&str] = &["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z"];
const WITHOUT_OFFSET: &[&str] = &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"];

fn parse_instant(text: &str, zone: Tz) -> Result<Moment, IntervalError> {
    let bad = || IntervalError::BadTime(text.to_string());
    // A date alone means its midnight.
    if !text.contains(['T', 't']) {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad())?;
        let local = date.and_time(NaiveTime::MIN);
        return Ok(Moment {
            utc: resolve(zone, local, text, zone.name())?,
            local,
            offset: None,
        });
    }
    let normalised = text.replacen('t', "T", 1);
    for format in WITH_OFFSET {
        if let Ok(parsed) = DateTime::parse_from_str(&normalised, format) {
            return Ok(Moment {
                utc: parsed.with_timezone(&Utc),
                local: parsed.naive_local(),
                offset: Some(*parsed.offset()),
            });
        }
    }
    for format in WITHOUT_OFFSET {
        if let Ok(local) = NaiveDateTime::parse_from_str(&normalised, format) {
            return Ok(Moment {
                utc: resolve(zone, local, text, zone.name())?,
                local,
                offset: None,
            });
        }
    }
    Err(bad())
}

/// An end given as a time of day only: `04:00` or `04:00:30`.
fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    if text.contains(['-', 'T', 't', '+', 'Z', 'z']) {
        return None;
    }
    NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
}

/// Places a local date and time in a zone. In the hour the clocks go back, the first of the
/// two moments; in the hour they skip, an error that asks for an offset.
fn resolve<Z: TimeZone>(
    zone: Z,
    local: NaiveDateTime,
    text: &str,
    zone_name: &str,
) -> Result<DateTime<Utc>, IntervalError> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Ok(at.with_timezone(&Utc)),
        LocalResult::None => Err(IntervalError::NoSuchLocalTime(
            text.to_string(),
            zone_name.to_string(),
        )),
    }
}

/// An exact length from an ISO 8601 duration. The `iso8601` crate parses it; years and months
/// are refused here because they have no fixed length, and a day is 24 hours.
fn parse_duration(text: &str) -> Result<chrono::Duration, IntervalError> {
    let upper = text.to_ascii_uppercase();
    let bad = || IntervalError::BadDuration(text.to_string());
    // `iso8601::duration` ignores trailing text ("PT3Hxyz"); the parser reports what is left.
    let (rest, parsed) = iso8601::parsers::parse_duration(upper.as_bytes()).map_err(|_| bad())?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let seconds: i64 = match parsed {
        iso8601::Duration::Weeks(weeks) => i64::from(weeks) * 7 * 86_400,
        iso8601::Duration::YMDHMS {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millisecond: _,
        } => {
            if year != 0 || month != 0 {
                return Err(IntervalError::NominalDuration(text.to_string()));
            }
            i64::from(day) * 86_400
                + i64::from(hour) * 3600
                + i64::from(minute) * 60
                + i64::from(second)
        }
    };
    let millis = match parsed {
        iso8601::Duration::YMDHMS { millisecond, .. } => i64::from(millisecond),
        iso8601::Duration::Weeks(_) => 0,
    };
    let length = chrono::Duration::try_seconds(seconds)
        .and_then(|length| length.checked_add(&chrono::Duration::milliseconds(millis)))
        .ok_or(IntervalError::OutOfRange)?;
    if length.is_zero() {
        return Err(IntervalError::ZeroDuration(text.to_string()));
    }
    Ok(length)
}

/// Parses a comma-separated list (`AUTOSCALE_DOWNTIME`, the header). Empty items are skipped.
pub fn parse_list(text: &str, zone: Tz, source: &Source) -> (Vec<Window>, Vec<BadEntry>) {
    let mut windows = Vec::new();
    let mut bad = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        match parse_interval(item, zone) {
            Ok((start, end)) => windows.push(Window {
                start,
                end,
                source: source.clone(),
            }),
            Err(error) => bad.push(BadEntry {
                source: source.clone(),
                text: item.to_string(),
                error,
            }),
        }
    }
    (windows, bad)
}

/// Parses a downtime file: one interval a line; blank lines and `#` comments are skipped.
pub fn parse_file(text: &str, path: &Path, zone: Tz) -> (Vec<Window>, Vec<BadEntry>) {
    let mut windows = Vec::new();
    let mut bad = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let source = Source::File {
            path: path.to_path_buf(),
            line: index + 1,
        };
        match parse_interval(entry, zone) {
            Ok((start, end)) => windows.push(Window { start, end, source }),
            Err(error) => bad.push(BadEntry {
                source,
                text: entry.to_string(),
                error,
            }),
        }
    }
    (windows, bad)
}

/// The window in force at `now`: of those that contain it, the one that ends last.
pub fn active_window<'a>(
    windows: impl IntoIterator<Item = &'a Window>,
    now: DateTime<Utc>,
) -> Option<&'a Window> {
    windows
        .into_iter()
        .filter(|window| window.contains(now))
        .fold(None, |best: Option<&Window>, window| match best {
            Some(best) if best.end >= window.end => Some(best),
            _ => Some(window),
        })
}

/// What one look at a source taught: the windows not known before and the bad entries not
/// reported before.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Learned {
    pub new_windows: Vec<Window>,
    pub new_problems: Vec<BadEntry>,
    /// The source's windows were replaced (a file changed or disappeared, a header changed).
    pub changed: bool,
}

/// Every window known for one app, by source, and the bad entries already reported so that
/// each is told once, not on every heartbeat.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: Tz,
    /// From the settings and the environment: fixed for the life of the process.
    fixed: Vec<Window>,
    file: Vec<Window>,
    header: Vec<Window>,
    /// The file's text when last read (`None`: absent), to parse it only when it changes.
    file_text: Option<String>,
    header_text: Option<String>,
    reported: HashSet<BadEntry>,
}

impl Calendar {
    /// A calendar holding the windows read with the settings (settings file and environment).
    pub fn new(zone: Tz, fixed: Vec<Window>) -> Self {
        Calendar {
            zone,
            fixed,
            file: Vec::new(),
            header: Vec::new(),
            file_text: None,
            header_text: None,
            reported: HashSet::new(),
        }
    }

    /// Marks bad entries as already told (those reported when the settings were read).
    pub fn already_reported(&mut self, problems: &[BadEntry]) {
        self.reported.extend(problems.iter().cloned());
    }

    /// The downtime file's current text (`None` when it does not exist). Parsed only when it
    /// differs from the last text seen.
    pub fn file_read(&mut self, path: &Path, text: Option<&str>) -> Learned {
        if self.file_text.as_deref() == text {
            return Learned::default();
        }
        self.file_text = text.map(str::to_string);
        let (windows, problems) = match text {
            Some(text) => parse_file(text, path, self.zone),
            None => (Vec::new(), Vec::new()),
        };
        let learned = learn(&mut self.reported, &self.file, &windows, problems);
        self.file = windows;
        learned
    }

    /// The downtime header of one heartbeat response. A response that carries it replaces
    /// what earlier ones announced (an empty value cancels); one without it changes nothing,
    /// because during the downtime itself the app may not answer at all; a value with no
    /// valid window is reported and ignored.
    pub fn header_seen(&mut self, name: &str, value: Option<&str>) -> Learned {
        let Some(value) = value else {
            return Learned::default();
        };
        if self.header_text.as_deref() == Some(value) {
            return Learned::default();
        }
        self.header_text = Some(value.to_string());
        let source = Source::Header {
            name: name.to_string(),
        };
        let (mut windows, mut problems) = parse_list(value, self.zone, &source);
        // The header is the app's word, not ours: a value of thousands of windows would make
        // every comparison below quadratic, so only the first few count.
        windows.truncate(MAX_HEADER_WINDOWS);
        problems.truncate(MAX_HEADER_WINDOWS);
        if windows.is_empty() && !problems.is_empty() {
            // Garbage alone is ignored: what was announced before still holds.
            let mut learned = learn(&mut self.reported, &self.header, &[], problems);
            learned.changed = false;
            return learned;
        }
        let learned = learn(&mut self.reported, &self.header, &windows, problems);
        self.header = windows;
        learned
    }

    /// Every known window, earliest first.
    pub fn windows(&self) -> Vec<&Window> {
        let mut all: Vec<&Window> = self
            .fixed
            .iter()
            .chain(&self.file)
            .chain(&self.header)
            .collect();
        all.sort_by_key(|window| (window.start, window.end));
        all
    }

    /// The window in force at `now`, if any.
    pub fn active(&self, now: DateTime<Utc>) -> Option<&Window> {
        active_window(self.fixed.iter().chain(&self.file).chain(&self.header), now)
    }
}

/// What changed from `before` to `after`, and which problems were not reported yet.
/// The most windows (and bad entries) one `X-Downtime` value may announce.
pub const MAX_HEADER_WINDOWS: usize = 64;
/// The most bad entries remembered as told.
const MAX_REPORTED: usize = 1024;

fn learn(
    reported: &mut HashSet<BadEntry>,
    before: &[Window],
    after: &[Window],
    problems: Vec<BadEntry>,
) -> Learned {
    let new_windows = after
        .iter()
        .filter(|window| {
            !before
                .iter()
                .any(|old| old.start == window.start && old.end == window.end)
        })
        .cloned()
        .collect();
    // A stream of ever-different bad values (a header, say) would grow the set without end:
    // past the cap it starts afresh, and a bad entry may then be told once more.
    if reported.len() + problems.len() > MAX_REPORTED {
        reported.clear();
    }
    let new_problems = problems
        .into_iter()
        .filter(|problem| reported.insert(problem.clone()))
        .collect();
    Learned {
        new_windows,
        new_problems,
        changed: true,
    }
}

#[cfg(test)]
mod generated;
#[cfg(test)]
mod tests;
