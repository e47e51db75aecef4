//! Heroku router logs, as a log drain delivers them: the logplex frame splitter, the router
//! line parser and a time window of requests with their percentiles.
//!
//! Everything here is pure: bytes and `now` in, values out; no I/O, no clock, no locks. The
//! HTTP edge (`server.rs`) feeds batches in; the loop (`bot.rs`) reads [`RouterStats`] for its
//! decision and the metrics. Bad input never fails a whole batch: a malformed frame or a router
//! line with garbage is skipped and counted in [`IngestCounts`], and the rest is used. The
//! app's own l2met metrics and Heroku's runtime metrics in the same batches are [`l2met`]'s.
//! Hand-written because no maintained crate parses logplex octet counting or Heroku's
//! `key=value` router lines; both formats are small and documented (`../shared/heroku/`).

pub mod l2met;

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

/// What a router line says about the app, decided from Heroku's error-code documentation
/// (devcenter.heroku.com/articles/error-codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// The app answered (`at=info`, or an error the app itself caused, such as H17 or H18):
    /// its times measure the app's speed and its work.
    Served,
    /// The app could not keep up: H11 "Backlog too deep" (Heroku: "increase your app's
    /// throughput by adding more dynos"), H12 "Request timeout" (30 s), H13 "Connection
    /// closed without response" (typically a worker killed by the server's own timeout).
    /// Slow; without times, endlessly slow.
    Overloaded,
    /// The app is down, not slow: H10 "App crashed", H14 "No web dynos running", H19 "Backend
    /// connection timeout", H20 "App boot timeout", H21 "Backend connection refused". More
    /// dynos do not fix these, and they are no reason to remove any either.
    Down,
    /// Nothing about the app's speed or load: H80 "Maintenance mode" (the router answers,
    /// `at=info`, no times), H81 "Blank app", H82 "Dyno hour pool used up", H83 "Planned
    /// service degradation", H99 "Platform error"; the client's doing: H27 "Client request
    /// interrupted", H28 "Client connection idle", any 499, H25/H26 (a restricted or
    /// malformed request), H31/H32 (a misdirected request, a TLS mismatch); H15 "Idle
    /// connection" (a connection held open 55 s, as streams and websockets do); H16, H22,
    /// H23, H24 (redirects, connection limits, misconfigured endpoints, forced closes).
    Silent,
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
    pub fn meaning(&self) -> Meaning {
        match self.code {
            Some(11..=13) => Meaning::Overloaded,
            Some(10 | 14 | 19..=21) => Meaning::Down,
            Some(17 | 18) => Meaning::Served,
            Some(_) => Meaning::Silent,
            None if self.status == 499 => Meaning::Silent,
            None => Meaning::Served,
        }
    }

    /// What the request cost the user at the router: queue plus service, for the lines that
    /// measure the app's speed. An overload error without times (H11) counts as endlessly
    /// slow; lines that say nothing of the speed ([`Meaning::Down`], [`Meaning::Silent`])
    /// have none.
    pub fn latency_ms(&self) -> Option<u64> {
        match (self.meaning(), self.connect_ms, self.service_ms) {
            (Meaning::Down | Meaning::Silent, ..) => None,
            (Meaning::Overloaded, None, None) => Some(u64::MAX),
            (_, connect, service) => {
                Some(connect.unwrap_or(0) as u64 + service.unwrap_or(0) as u64)
            }
        }
    }
}

impl Request {
    /// Whether the line shows someone using the app, for `idle_after`: any request but those
    /// the platform answers in the app's place (H80 maintenance mode, H81 blank app, H82 dyno
    /// hours used up, H83 planned degradation), which say nothing of whether the app is used.
    /// A client that gave up (H27, 499) or an idle websocket (H15) is still someone.
    pub fn is_traffic(&self) -> bool {
        !matches!(self.code, Some(80..=83))
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
    /// Router lines (among `router_lines`) of someone using the app: not the worker's own
    /// heartbeats, and not lines the platform answers for the app ([`Request::is_traffic`]).
    pub traffic_lines: u64,
    /// Lines with l2met metrics used (when the caller collects them).
    pub l2met_lines: u64,
    /// Lines with l2met metrics skipped for a value that is not a number.
    pub bad_l2met_lines: u64,
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
    parse_batch_with_samples(body, heartbeat_path, into, None, problems)
}

/// [`parse_batch`], also collecting the l2met samples of the other lines into `samples`
/// (the app's `sample#…`, Heroku's runtime metrics); a line with a bad value is skipped and
/// counted in `bad_l2met_lines`. Without `samples`, such lines are other lines.
pub fn parse_batch_with_samples(
    body: &[u8],
    heartbeat_path: Option<&str>,
    into: &mut Vec<Request>,
    mut samples: Option<&mut Vec<l2met::Sample>>,
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
            match samples.as_deref_mut() {
                Some(samples) if l2met::mentions_metrics(syslog.message) => {
                    match l2met::parse(&syslog) {
                        Ok(found) => {
                            counts.l2met_lines += 1;
                            samples.extend(found);
                        }
                        Err(error) => {
                            counts.bad_l2met_lines += 1;
                            if problems.len() < KEEP_PROBLEMS {
                                problems.push(format!("an l2met line where {error}"));
                            }
                        }
                    }
                }
                _ => counts.other_lines += 1,
            }
            continue;
        }
        match parse_router_line(syslog.message) {
            Ok(line) => {
                counts.router_lines += 1;
                let path = line.path.split('?').next().unwrap_or_default();
                let request = Request::from(&line);
                if heartbeat_path.is_some_and(|heartbeat| heartbeat == path) {
                    counts.heartbeat_lines += 1;
                } else if request.is_traffic() {
                    counts.traffic_lines += 1;
                }
                into.push(request);
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
    /// Requests that reached the app ([`Meaning::Served`] and [`Meaning::Overloaded`]): the
    /// load. Lines that say nothing of the app are counted apart below.
    pub requests: u64,
    pub requests_per_second: f64,
    pub connect: Option<Quantiles>,
    pub service: Option<Quantiles>,
    /// The mean `service=` of those requests, H12 timeouts counted at their 30 s: with the
    /// rate, the work the app did (Little's law).
    pub mean_service_ms: Option<f64>,
    /// p95 of [`Request::latency_ms`]: what the decision uses. `u64::MAX` when more than 5%
    /// of the requests were overload errors without times (H11).
    pub latency_p95_ms: Option<u64>,
    /// Requests answered with a 5xx or a router error code, whatever it means.
    pub errors: u64,
    /// [`Meaning::Overloaded`] lines: H11, H12, H13.
    pub timeouts: u64,
    /// [`Meaning::Down`] lines: H10, H14, H19, H20, H21. The app is down, not slow.
    pub unavailable: u64,
    /// [`Meaning::Silent`] lines: maintenance (H80), the client's doing (H27, H28, 499), idle
    /// connections (H15)…
    pub silent: u64,
    /// Since the newest line of any kind arrived: how stale the window is. `None` before the
    /// first line.
    pub since_last_line: Option<Duration>,
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

    /// Lines each with its own time, oldest first: what [`RouterWindow::push`] of each in turn
    /// keeps, pruned once at the newest instead of after every push (a simulated drain hands
    /// over thousands of lines a beat).
    pub fn push_each(&mut self, lines: impl IntoIterator<Item = (DateTime<Utc>, Request)>) {
        let before = self.requests.len();
        self.requests.extend(lines);
        if self.requests.len() == before {
            return;
        }
        let newest = self.requests.back().map(|(at, _)| *at);
        self.last_request_at = newest;
        while self.requests.len() > self.capacity {
            self.requests.pop_front();
        }
        if let Some(newest) = newest {
            self.prune(newest);
        }
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
        let mut stats = window_stats(
            self.window,
            self.requests.iter().map(|(_, request)| request),
        );
        stats.since_last_line = self
            .last_request_at
            .map(|at| (now - at).to_std().unwrap_or(Duration::ZERO));
        stats
    }
}

/// The statistics of `requests`, as logged over `window`: what [`RouterWindow::stats`]
/// reports, for any set of requests (the simulator's too).
pub fn window_stats<'a>(
    window: Duration,
    requests: impl IntoIterator<Item = &'a Request>,
) -> RouterStats {
    let mut connect = Vec::new();
    let mut service = Vec::new();
    let mut latency = Vec::new();
    let mut stats = RouterStats {
        window,
        ..RouterStats::default()
    };
    let mut service_sum_ms = 0.0;
    for request in requests {
        if request.code.is_some() || request.status >= 500 {
            stats.errors += 1;
        }
        match request.meaning() {
            Meaning::Down => {
                stats.unavailable += 1;
                continue;
            }
            Meaning::Silent => {
                stats.silent += 1;
                continue;
            }
            Meaning::Overloaded => stats.timeouts += 1,
            Meaning::Served => {}
        }
        stats.requests += 1;
        connect.extend(request.connect_ms.map(u64::from));
        if let Some(ms) = request.service_ms {
            service.push(u64::from(ms));
            service_sum_ms += f64::from(ms);
        }
        latency.extend(request.latency_ms());
    }
    let seconds = window.as_secs_f64();
    if seconds > 0.0 {
        stats.requests_per_second = stats.requests as f64 / seconds;
    }
    if !service.is_empty() {
        stats.mean_service_ms = Some(service_sum_ms / service.len() as f64);
    }
    stats.connect = Quantiles::of(&mut connect);
    stats.service = Quantiles::of(&mut service);
    stats.latency_p95_ms = Quantiles::of(&mut latency).map(|q| q.p95_ms);
    stats
}

#[cfg(test)]
mod generated;
#[cfg(test)]
mod tests;
