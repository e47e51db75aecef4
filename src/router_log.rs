//! Heroku router logs, as a log drain delivers them: the logplex frame splitter, the router
//! line parser and a time window of requests with their percentiles.
//!
//! Everything here is pure: bytes and `now` in, values out; no I/O, no clock, no locks. The
//! HTTP edge (`server.rs`) feeds batches in; the loop (`bot.rs`) reads [`RouterStats`] for its
//! decision and the metrics. Bad input never fails a whole batch: a malformed frame or a router
//! line with garbage is skipped and counted in [`IngestCounts`], and the rest is used.
//! Hand-written because no maintained crate parses logplex octet counting or Heroku's
//! `key=value` router lines; both formats are small and documented (`../shared/heroku/`).

use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;

/// One octet-counted frame of a logplex body: `<byte count> <RFC 5424 message>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The message, its trailing newline (counted by logplex) removed.
    Message(&'a [u8]),
    /// Bytes that are not a frame: a missing or wrong count, or a message that is not syslog.
    /// The splitter resynchronises at the next line.
    Malformed(&'a [u8]),
}

/// Splits a logplex body by the octet counts, not by lines. After a bad count, it skips to the
/// next newline and tries again there, so one broken frame costs that frame only.
pub fn split_frames(body: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    let mut rest = body;
    std::iter::from_fn(move || {
        // Whitespace between frames (a stray newline) is not a frame.
        while let [first, tail @ ..] = rest {
            if first.is_ascii_whitespace() {
                rest = tail;
            } else {
                break;
            }
        }
        if rest.is_empty() {
            return None;
        }
        if let Some((message, after)) = counted_frame(rest) {
            rest = after;
            return Some(Frame::Message(trim_newline(message)));
        }
        let end = rest
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(rest.len(), |at| at + 1);
        let (bad, after) = rest.split_at(end);
        rest = after;
        Some(Frame::Malformed(trim_newline(bad)))
    })
}

/// `<digits> <message of that many bytes>`, when the count is sane and the message looks like
/// syslog (`<PRI>`).
fn counted_frame(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let digits = bytes
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if digits == 0 || digits > 7 || bytes.get(digits) != Some(&b' ') {
        return None;
    }
    let count: usize = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    let start = digits + 1;
    let message = bytes.get(start..start + count)?;
    if count == 0 || message[0] != b'<' {
        return None;
    }
    Some((message, &bytes[start + count..]))
}

fn trim_newline(bytes: &[u8]) -> &[u8] {
    match bytes {
        [head @ .., b'\r', b'\n'] => head,
        [head @ .., b'\n'] => head,
        _ => bytes,
    }
}

/// The parts of an RFC 5424 message that logplex sends: `<PRI>1 TIMESTAMP HOST APP PROC MSGID
/// MSG` (logplex sends no structured data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    pub timestamp: &'a str,
    pub app_name: &'a str,
    pub proc_id: &'a str,
    pub message: &'a str,
}

/// Parses the syslog header; `None` when it is not one.
pub fn parse_syslog(message: &[u8]) -> Option<SyslogMessage<'_>> {
    let text = std::str::from_utf8(message).ok()?;
    let after_pri = text.strip_prefix('<')?;
    let close = after_pri.find('>')?;
    if close == 0 || close > 3 || !after_pri[..close].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut fields = after_pri[close + 1..].splitn(7, ' ');
    let version = fields.next()?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let timestamp = fields.next()?;
    let _host = fields.next()?;
    let app_name = fields.next()?;
    let proc_id = fields.next()?;
    let _msg_id = fields.next()?;
    let message = fields.next().unwrap_or_default();
    Some(SyslogMessage {
        timestamp,
        app_name,
        proc_id,
        message,
    })
}

/// One request as the router logged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterLine<'a> {
    /// `at=error`.
    pub is_error: bool,
    /// The router error code, `H12` → 12; `None` on `at=info`.
    pub code: Option<u8>,
    pub dyno: &'a str,
    /// The request path, query string included, as the router logged it.
    pub path: &'a str,
    /// Time in the router's queue before a dyno took the request; empty on H10/H14.
    pub connect_ms: Option<u32>,
    /// Time the dyno took; empty on H10/H14.
    pub service_ms: Option<u32>,
    pub status: u16,
}

/// Why a router line was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// A quoted value never closes.
    UnterminatedQuote,
    /// `status=` is missing or not an HTTP status.
    BadStatus(String),
    /// `connect=` or `service=` is neither empty nor `<whole number>ms`.
    BadTime { key: &'static str, value: String },
    /// `code=` is not `H` and a number.
    BadCode(String),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::UnterminatedQuote => write!(f, "a quoted value never closes"),
            LineError::BadStatus(value) => write!(f, "status={value:?} is not an HTTP status"),
            LineError::BadTime { key, value } => {
                write!(f, "{key}={value:?} is neither empty nor a number of ms")
            }
            LineError::BadCode(value) => write!(f, "code={value:?} is not a router error code"),
        }
    }
}

/// The `key=value` pairs of a router line; values may be quoted (`desc="Request timeout"`).
/// Tokens without `=` are passed over.
pub fn key_values(line: &str) -> impl Iterator<Item = Result<(&str, &str), LineError>> {
    let mut rest = line;
    let mut failed = false;
    std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            return None;
        }
        let token_end = rest.find([' ', '=']).unwrap_or(rest.len());
        if rest.as_bytes().get(token_end) != Some(&b'=') {
            // A bare word: not a pair.
            rest = &rest[token_end..];
            continue;
        }
        let key = &rest[..token_end];
        let after = &rest[token_end + 1..];
        if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(close) => {
                    rest = &quoted[close + 1..];
                    return Some(Ok((key, &quoted[..close])));
                }
                None => {
                    failed = true;
                    return Some(Err(LineError::UnterminatedQuote));
                }
            }
        }
        let value_end = after.find(' ').unwrap_or(after.len());
        rest = &after[value_end..];
        return Some(Ok((key, &after[..value_end])));
    })
}

/// Parses the message part of a router line (after `heroku router - `).
pub fn parse_router_line(message: &str) -> Result<RouterLine<'_>, LineError> {
    let mut line = RouterLine {
        is_error: false,
        code: None,
        dyno: "",
        path: "",
        connect_ms: None,
        service_ms: None,
        status: 0,
    };
    let mut status = None;
    for pair in key_values(message) {
        let (key, value) = pair?;
        match key {
            "at" => line.is_error = value == "error",
            "code" => {
                let number = value
                    .strip_prefix('H')
                    .and_then(|digits| digits.parse::<u8>().ok())
                    .ok_or_else(|| LineError::BadCode(value.to_string()))?;
                line.code = Some(number);
            }
            "dyno" => line.dyno = value,
            "path" => line.path = value,
            "connect" => line.connect_ms = parse_ms("connect", value)?,
            "service" => line.service_ms = parse_ms("service", value)?,
            "status" => {
                status = Some(
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|code| (100..=599).contains(code))
                        .ok_or_else(|| LineError::BadStatus(value.to_string()))?,
                )
            }
            _ => {}
        }
    }
    line.status = status.ok_or_else(|| LineError::BadStatus(String::new()))?;
    Ok(line)
}

fn parse_ms(key: &'static str, value: &str) -> Result<Option<u32>, LineError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .strip_suffix("ms")
        .and_then(|digits| digits.parse::<u32>().ok())
        .map(Some)
        .ok_or_else(|| LineError::BadTime {
            key,
            value: value.to_string(),
        })
}

/// One request kept in the window: what the percentiles and counts need, nothing borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub connect_ms: Option<u32>,
    pub service_ms: Option<u32>,
    pub status: u16,
    pub code: Option<u8>,
}

impl Request {
    /// What the request cost the user at the router: queue plus service. A router error
    /// without times (H10 crash, H13 closed, H14 no dynos…) counts as endlessly slow, so a
    /// burst of them makes the p95 a fail, as a 5xx heartbeat is.
    pub fn latency_ms(&self) -> u64 {
        match (self.connect_ms, self.service_ms) {
            (None, None) if self.code.is_some() || self.status >= 500 => u64::MAX,
            (connect, service) => connect.unwrap_or(0) as u64 + service.unwrap_or(0) as u64,
        }
    }
}

impl From<&RouterLine<'_>> for Request {
    fn from(line: &RouterLine<'_>) -> Self {
        Request {
            connect_ms: line.connect_ms,
            service_ms: line.service_ms,
            status: line.status,
            code: line.code,
        }
    }
}

/// What one batch held, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestCounts {
    pub frames: u64,
    pub malformed_frames: u64,
    /// Router lines used.
    pub router_lines: u64,
    /// Router lines skipped for garbage.
    pub bad_router_lines: u64,
    /// Other lines of the app's log (its own output, releases, dyno state…), passed over.
    pub other_lines: u64,
    /// Router lines (among `router_lines`) for the worker's own heartbeat path.
    pub heartbeat_lines: u64,
}

/// Parses a whole logplex body into requests (pushed onto `into`) and counts. The first few
/// problems are kept in `problems` for the log, so an operator can see what was wrong.
/// Router lines for `heartbeat_path` (the worker's own heartbeats) are kept for latency but
/// counted apart, since they are not traffic for `idle_after`.
pub fn parse_batch(
    body: &[u8],
    heartbeat_path: Option<&str>,
    into: &mut Vec<Request>,
    problems: &mut Vec<String>,
) -> IngestCounts {
    const KEEP_PROBLEMS: usize = 3;
    let mut counts = IngestCounts::default();
    for frame in split_frames(body) {
        counts.frames += 1;
        let message = match frame {
            Frame::Message(message) => message,
            Frame::Malformed(bytes) => {
                counts.malformed_frames += 1;
                if problems.len() < KEEP_PROBLEMS {
                    problems.push(format!(
                        "a malformed frame starting {:?}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
                    ));
                }
                continue;
            }
        };
        let Some(syslog) = parse_syslog(message) else {
            counts.malformed_frames += 1;
            if problems.len() < KEEP_PROBLEMS {
                problems.push("a frame that is not an RFC 5424 message".to_string());
            }
            continue;
        };
        if syslog.app_name != "heroku" || syslog.proc_id != "router" {
            counts.other_lines += 1;
            continue;
        }
        match parse_router_line(syslog.message) {
            Ok(line) => {
                counts.router_lines += 1;
                let path = line.path.split('?').next().unwrap_or_default();
                if heartbeat_path.is_some_and(|heartbeat| heartbeat == path) {
                    counts.heartbeat_lines += 1;
                }
                into.push(Request::from(&line));
            }
            Err(error) => {
                counts.bad_router_lines += 1;
                if problems.len() < KEEP_PROBLEMS {
                    problems.push(format!("a router line where {error}"));
                }
            }
        }
    }
    counts
}

/// Percentiles of one series, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quantiles {
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
}

impl Quantiles {
    /// Nearest-rank percentiles; sorts `values` in place. `None` for an empty series.
    pub fn of(values: &mut [u64]) -> Option<Quantiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        Some(Quantiles {
            p50_ms: nearest_rank(values, 50),
            p95_ms: nearest_rank(values, 95),
            p99_ms: nearest_rank(values, 99),
        })
    }
}

/// The value at percentile `p` of sorted `values` (nearest rank: the smallest value with at
/// least p% of the values at or below it).
pub fn nearest_rank(sorted: &[u64], p: u32) -> u64 {
    let n = sorted.len();
    let rank = (n * p as usize).div_ceil(100).clamp(1, n);
    sorted[rank - 1]
}

/// The router's view of one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterStats {
    pub window: Duration,
    pub requests: u64,
    pub requests_per_second: f64,
    pub connect: Option<Quantiles>,
    pub service: Option<Quantiles>,
    /// p95 of [`Request::latency_ms`]: what the decision uses. `u64::MAX` when more than 5%
    /// of the requests were router errors without times.
    pub latency_p95_ms: Option<u64>,
    /// Requests answered with a 5xx or a router error code.
    pub errors: u64,
}

/// The requests of the last `window`, by arrival time. Bounded: past `capacity` the oldest are
/// dropped, so a flood cannot exhaust memory.
#[derive(Debug, Clone)]
pub struct RouterWindow {
    window: Duration,
    capacity: usize,
    requests: VecDeque<(DateTime<Utc>, Request)>,
    last_request_at: Option<DateTime<Utc>>,
}

impl RouterWindow {
    pub fn new(window: Duration, capacity: usize) -> Self {
        RouterWindow {
            window,
            capacity,
            requests: VecDeque::new(),
            last_request_at: None,
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn push(&mut self, at: DateTime<Utc>, requests: impl IntoIterator<Item = Request>) {
        let before = self.requests.len();
        self.requests.extend(requests.into_iter().map(|r| (at, r)));
        if self.requests.len() > before {
            self.last_request_at = Some(at);
        }
        while self.requests.len() > self.capacity {
            self.requests.pop_front();
        }
        self.prune(at);
    }

    /// When the router last logged a request: the drain's measure of idleness.
    pub fn last_request_at(&self) -> Option<DateTime<Utc>> {
        self.last_request_at
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX);
        while let Some((at, _)) = self.requests.front() {
            if now - *at > window {
                self.requests.pop_front();
            } else {
                break;
            }
        }
    }

    /// The statistics of the requests within `window` before `now`.
    pub fn stats(&mut self, now: DateTime<Utc>) -> RouterStats {
        self.prune(now);
        let count = self.requests.len();
        let mut connect = Vec::with_capacity(count);
        let mut service = Vec::with_capacity(count);
        let mut latency = Vec::with_capacity(count);
        let mut errors = 0;
        for (_, request) in &self.requests {
            connect.extend(request.connect_ms.map(u64::from));
            service.extend(request.service_ms.map(u64::from));
            latency.push(request.latency_ms());
            if request.code.is_some() || request.status >= 500 {
                errors += 1;
            }
        }
        let seconds = self.window.as_secs_f64();
        RouterStats {
            window: self.window,
            requests: count as u64,
            requests_per_second: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
            connect: Quantiles::of(&mut connect),
            service: Quantiles::of(&mut service),
            latency_p95_ms: Quantiles::of(&mut latency).map(|q| q.p95_ms),
            errors,
        }
    }
}

#[cfg(test)]
mod tests;
