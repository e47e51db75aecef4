//! The status page: server-rendered HTML with an inline SVG chart of the last hours (latency
//! against the min and max lines, dynos as steps, scale events marked, and beats that timed
//! out or lie above the chart's ceiling marked as such, so a flat line at the top never
//! passes for a measured time), the settings in force
//! (secrets as `***`, from `AppSettings::effective`) and the recent notifications. And, for a
//! worker of several apps, the index: one plain table row per app, no chart, so that it stays
//! light with thousands.
//!
//! Pure: a [`Snapshot`] (or the apps' [`Summary`]s) in, a page out. maud escapes every interpolated value, so nothing a
//! drain, a platform or a notification carries can inject markup. No JavaScript.

use crate::decision::Observation;
use crate::telemetry::{BeatPoint, Snapshot, Summary};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup, DOCTYPE};

/// The chart's colours; the screenshot test looks for `LATENCY_COLOUR`'s pixels.
pub const LATENCY_COLOUR: &str = "#1f6fd1";
pub const DYNOS_COLOUR: &str = "#ef6c00";
pub const MAX_COLOUR: &str = "#c62828";
pub const MIN_COLOUR: &str = "#2e7d32";
pub const SCALE_COLOUR: &str = "#8e24aa";
/// A heartbeat that timed out: a cross, in a colour no other mark uses.
pub const TIMEOUT_COLOUR: &str = "#e91e63";
/// A beat slower than the chart's ceiling, drawn at the ceiling: a triangle pointing up.
pub const CLIPPED_COLOUR: &str = "#00897b";

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 56.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 32.0;

/// The chart's geometry, computed apart from the markup so it can be tested.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// `M x y L x y …`; a beat without a time (a connection error) starts a new segment.
    pub latency_path: String,
    pub latency_points: usize,
    /// The y of the max and min response time lines.
    pub max_y: f64,
    pub min_y: f64,
    /// Dynos as steps: `M x y H x V y …`.
    pub dynos_path: String,
    /// One marker per scale: x, y and a caption.
    pub scale_marks: Vec<(f64, f64, String)>,
    /// Beats that timed out: x, y (at their time, or the ceiling) and a caption.
    pub timeout_marks: Vec<(f64, f64, String)>,
    /// Beats (answered) slower than the ceiling, drawn at it: x, y and a caption.
    pub clipped_marks: Vec<(f64, f64, String)>,
    /// The response time at the top of the chart.
    pub ceiling_ms: u64,
    /// Latency axis ticks: y and label.
    pub latency_ticks: Vec<(f64, String)>,
    /// Dyno axis ticks.
    pub dyno_ticks: Vec<(f64, String)>,
    /// Time axis ticks: x and label.
    pub time_ticks: Vec<(f64, String)>,
}

impl Chart {
    pub fn build(beats: &[BeatPoint], min_ms: u64, max_ms: u64, zone: Tz) -> Chart {
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let (first, last) = match (beats.first(), beats.last()) {
            (Some(first), Some(last)) => (first.at, last.at),
            _ => {
                let now = Utc::now();
                (now, now)
            }
        };
        let span_ms = ((last - first).num_milliseconds() as f64).max(1000.0);
        let x =
            |at: DateTime<Utc>| LEFT + plot_w * ((at - first).num_milliseconds() as f64 / span_ms);

        // The latency axis shows the max line with room above; far slower beats are clipped.
        let highest = beats
            .iter()
            .filter_map(|beat| beat.response_time_ms.map(u64::from))
            .max()
            .unwrap_or(0)
            .min(max_ms.saturating_mul(3));
        let top_ms = (max_ms as f64 * 1.25).max(highest as f64 * 1.05).max(1.0);
        let y_latency = |ms: u64| TOP + plot_h * (1.0 - (ms as f64).min(top_ms) / top_ms);

        let max_dynos = beats
            .iter()
            .filter_map(|beat| beat.dynos)
            .max()
            .unwrap_or(1);
        let top_dynos = (max_dynos + 1) as f64;
        let y_dynos = |dynos: u32| TOP + plot_h * (1.0 - dynos as f64 / top_dynos);

        let mut latency_path = String::new();
        let mut latency_points = 0;
        let mut pen_down = false;
        let mut timeout_marks = Vec::new();
        let mut clipped_marks = Vec::new();
        for beat in beats {
            match beat.response_time_ms.map(u64::from) {
                Some(ms) => {
                    let when = beat.at.with_timezone(&zone).format("%H:%M:%S");
                    let above = ms as f64 > top_ms;
                    let mark = (x(beat.at), y_latency(ms));
                    if beat.timed_out {
                        let place = if above { ", above the chart" } else { "" };
                        timeout_marks.push((
                            mark.0,
                            mark.1,
                            format!("{when}: timed out after {ms} ms{place}"),
                        ));
                    } else if above {
                        clipped_marks.push((
                            mark.0,
                            mark.1,
                            format!("{when}: {ms} ms, above the chart's {} ms", top_ms.round()),
                        ));
                    }
                    let command = if pen_down { 'L' } else { 'M' };
                    latency_path.push_str(&format!(
                        "{command}{:.1} {:.1} ",
                        x(beat.at),
                        y_latency(ms)
                    ));
                    latency_points += 1;
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }

        let mut dynos_path = String::new();
        let mut scale_marks = Vec::new();
        for beat in beats {
            let Some(dynos) = beat.dynos else { continue };
            let (bx, by) = (x(beat.at), y_dynos(dynos));
            if dynos_path.is_empty() {
                dynos_path.push_str(&format!("M{bx:.1} {by:.1} "));
            } else {
                dynos_path.push_str(&format!("H{bx:.1} V{by:.1} "));
            }
            if let Some((from, to)) = beat.scale {
                let when = beat.at.with_timezone(&zone).format("%H:%M:%S");
                scale_marks.push((bx, by, format!("{when}: scaled from {from} to {to}")));
            }
        }

        let latency_ticks = (0..=4)
            .map(|i| {
                let ms = top_ms * i as f64 / 4.0;
                (y_latency(ms as u64), format!("{} ms", ms.round()))
            })
            .collect();
        let step = (max_dynos / 4).max(1);
        let dyno_ticks = (0..=max_dynos + 1)
            .step_by(step as usize)
            .map(|d| (y_dynos(d), d.to_string()))
            .collect();
        let time_ticks = (0..=4)
            .map(|i| {
                let at = first + chrono::Duration::milliseconds((span_ms * i as f64 / 4.0) as i64);
                (
                    x(at),
                    at.with_timezone(&zone).format("%H:%M:%S").to_string(),
                )
            })
            .collect();
        Chart {
            latency_path: latency_path.trim_end().to_string(),
            latency_points,
            max_y: y_latency(max_ms),
            min_y: y_latency(min_ms),
            dynos_path: dynos_path.trim_end().to_string(),
            scale_marks,
            timeout_marks,
            clipped_marks,
            ceiling_ms: top_ms.round() as u64,
            latency_ticks,
            dyno_ticks,
            time_ticks,
        }
    }

    fn svg(&self) -> Markup {
        let x_end = WIDTH - RIGHT;
        let y_end = HEIGHT - BOTTOM;
        html! {
            svg id="chart" xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT)
                style="max-width:100%;height:auto"
                viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
                aria-label="Response time, dynos and scale events over the last hours" {
                rect x=(LEFT) y=(TOP) width=(x_end - LEFT) height=(y_end - TOP) fill="#fafafa" stroke="#ccc" {}
                @for (y, label) in &self.latency_ticks {
                    line x1=(LEFT) x2=(x_end) y1=(y) y2=(y) stroke="#e6e6e6" {}
                    text x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" font-size="11" fill="#555" { (label) }
                }
                @for (y, label) in &self.dyno_ticks {
                    text x=(x_end + 6.0) y=(y + 4.0) font-size="11" fill=(DYNOS_COLOUR) { (label) }
                }
                @for (x, label) in &self.time_ticks {
                    text x=(x) y=(y_end + 18.0) text-anchor="middle" font-size="11" fill="#555" { (label) }
                }
                line class="max-line" x1=(LEFT) x2=(x_end) y1=(self.max_y) y2=(self.max_y)
                    stroke=(MAX_COLOUR) stroke-width="1.5" stroke-dasharray="6 4" {}
                text x=(LEFT + 4.0) y=(self.max_y - 4.0) font-size="11" fill=(MAX_COLOUR) { "max" }
                line class="min-line" x1=(LEFT) x2=(x_end) y1=(self.min_y) y2=(self.min_y)
                    stroke=(MIN_COLOUR) stroke-width="1.5" stroke-dasharray="6 4" {}
                text x=(LEFT + 4.0) y=(self.min_y - 4.0) font-size="11" fill=(MIN_COLOUR) { "min" }
                path class="dynos" d=(self.dynos_path) fill="none" stroke=(DYNOS_COLOUR) stroke-width="2" {}
                path class="latency" d=(self.latency_path) fill="none" stroke=(LATENCY_COLOUR)
                    stroke-width="3" stroke-linejoin="round" {}
                @for (x, y, caption) in &self.clipped_marks {
                    path class="clipped" d=(format!("M{:.1} {:.1} l-6 10 h12 z", x, y - 2.0))
                        fill=(CLIPPED_COLOUR) { title { (caption) } }
                }
                @for (x, y, caption) in &self.timeout_marks {
                    path class="timed-out" d=(format!("M{:.1} {:.1} l12 12 m0 -12 l-12 12", x - 6.0, y - 6.0))
                        stroke=(TIMEOUT_COLOUR) stroke-width="3.5" stroke-linecap="round" fill="none"
                        { title { (caption) } }
                }
                @if !self.timeout_marks.is_empty() || !self.clipped_marks.is_empty() {
                    text class="ceiling-note" x=(x_end - 4.0) y=(TOP + 12.0) text-anchor="end" font-size="11" fill="#555" {
                        "drawn at most " (self.ceiling_ms) " ms"
                        @if !self.timeout_marks.is_empty() { " · ✕ " (self.timeout_marks.len()) " timed out" }
                        @if !self.clipped_marks.is_empty() { " · ▲ " (self.clipped_marks.len()) " slower" }
                    }
                }
                @for (x, y, caption) in &self.scale_marks {
                    circle class="scale-event" cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="6"
                        fill=(SCALE_COLOUR) { title { (caption) } }
                }
            }
        }
    }
}

/// "280 jobs waiting, the oldest for 4.5 s", or as much of it as the source tells.
fn queue_words(signal: &crate::decision::QueueSignal) -> String {
    let jobs = signal.jobs.map(|jobs| match jobs {
        1 => "1 job waiting".to_string(),
        jobs => format!("{jobs} jobs waiting"),
    });
    let oldest = signal.oldest_age.map(|age| {
        if age.as_secs() < 60 {
            format!("the oldest for {:.1} s", age.as_secs_f64())
        } else {
            let whole = std::time::Duration::from_secs(age.as_secs());
            format!("the oldest for {}", crate::settings::format_duration(whole))
        }
    });
    match (jobs, oldest) {
        (Some(jobs), Some(oldest)) => format!("{jobs}, {oldest}"),
        (Some(jobs), None) => jobs,
        (None, Some(oldest)) => format!("{oldest} waiting"),
        (None, None) => "no job waiting".to_string(),
    }
}

fn observation_word(observation: Observation) -> &'static str {
    match observation {
        Observation::Fail => "fail",
        Observation::Pass => "pass",
        Observation::InBand => "in band",
        Observation::Misconfigured { .. } => "misconfigured",
    }
}

/// The whole page of one app; `in_index` adds a link back to the worker's index of apps.
pub fn render(snapshot: &Snapshot, in_index: bool) -> String {
    let settings = &snapshot.settings;
    let zone = settings.thresholds.time_zone;
    let chart = Chart::build(
        &snapshot.beats,
        settings.thresholds.min_response_time_ms,
        settings.thresholds.max_response_time_ms,
        zone,
    );
    let last = snapshot.beats.last();
    let local = |at: DateTime<Utc>| {
        at.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    let alive = snapshot.since_last_beat <= snapshot.stall_limit;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "autoscalebot: " (settings.app_name) }
                style { (STYLE) }
            }
            body {
                @if in_index { p.note { a href="/" { "← all apps" } } }
                h1 { "autoscalebot: " (settings.app_name) " (" (settings.process_type) ")" }
                p.summary {
                    @if alive { span.ok { "running" } } @else { span.bad { "stalled" } }
                    " · signal " b { (settings.drain.signal.as_str()) }
                    @if let Some(beat) = last {
                        " · dynos " b { (beat.dynos.map_or("?".to_string(), |d| d.to_string())) }
                        " · last beat " (local(beat.at)) ": " (snapshot.last_summary) " (" (observation_word(beat.observation)) ")"
                    } @else {
                        " · no beat yet"
                    }
                    @if let Some(since) = snapshot.holding_since {
                        " · " span.bad.holding { (crate::notices::holding(since, zone)) }
                    }
                }
                @if let Some(router) = &snapshot.router {
                    p.router {
                        "Router, last " (crate::settings::format_duration(router.window)) ": "
                        (format!("{:.1}", router.requests_per_second)) " requests/s"
                        @if let Some(q) = router.service {
                            " · service p50/p95/p99 " (q.p50_ms) "/" (q.p95_ms) "/" (q.p99_ms) " ms"
                        }
                        @if let Some(q) = router.connect {
                            " · connect p50/p95/p99 " (q.p50_ms) "/" (q.p95_ms) "/" (q.p99_ms) " ms"
                        }
                        " · errors " (router.errors)
                        @if let Some(at) = snapshot.last_router_request_at {
                            " · last request " (local(at))
                        }
                    }
                }
                @if let Some(queue) = &snapshot.queue {
                    p.queue {
                        "Job queues, read " (local(queue.at)) ": "
                        @match &queue.read {
                            Ok(signal) => { (queue_words(signal)) }
                            Err(error) => { span.bad { "could not be read: " (error) " (the size holds)" } }
                        }
                    }
                }
                h2 { "The last hours" }
                p.legend {
                    span style=(format!("color:{LATENCY_COLOUR}")) { "━ response time" } " "
                    span style=(format!("color:{MAX_COLOUR}")) { "┅ max " (settings.thresholds.max_response_time_ms) " ms" } " "
                    span style=(format!("color:{MIN_COLOUR}")) { "┅ min " (settings.thresholds.min_response_time_ms) " ms" } " "
                    span style=(format!("color:{DYNOS_COLOUR}")) { "━ dynos (right axis)" } " "
                    span style=(format!("color:{SCALE_COLOUR}")) { "● scale" }
                    @if !chart.timeout_marks.is_empty() {
                        " " span.timed-out style=(format!("color:{TIMEOUT_COLOUR}")) {
                            "✕ timed out (" (settings.heartbeat.timeout.as_millis()) " ms, no answer)"
                        }
                    }
                    @if !chart.clipped_marks.is_empty() {
                        " " span.clipped style=(format!("color:{CLIPPED_COLOUR}")) {
                            "▲ slower than the chart's top (" (chart.ceiling_ms) " ms): drawn at the top"
                        }
                    }
                }
                (chart.svg())
                p.note { (snapshot.beats.len()) " beats shown, times in " (zone.name()) "." }
                h2 { "Recent notifications" }
                @if snapshot.notifications.is_empty() {
                    p { "None yet." }
                } @else {
                    table {
                        tr { th { "when" } th { "event" } th { "message" } th { "reason" } }
                        @for event in &snapshot.notifications {
                            tr {
                                td { (local(event.at)) }
                                td { (event.kind.as_str()) }
                                td { (event.message) }
                                td { (event.reason) }
                            }
                        }
                    }
                }
                h2 { "Settings in force" }
                table.settings {
                    @for (key, value) in settings.effective() {
                        tr { td { code { (key) } } td { code { (value) } } }
                    }
                }
                p.note { "Generated " (local(snapshot.now)) ". " a href="/metrics" { "Metrics" } " · " a href="/healthz" { "Health" } }
            }
        }
    };
    page.into_string()
}

/// The index of a worker's apps: one row each (app, process type, dynos, bounds, the last
/// beat and its observation, state and alerts, a link to the app's page). `now` dates it.
pub fn render_index(rows: &[Summary], now: DateTime<Utc>) -> String {
    let stalled = rows.iter().filter(|row| !row.alive).count();
    let alerting = rows
        .iter()
        .filter(|row| !row.open_alerts.is_empty() || row.last_error.is_some())
        .count();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "autoscalebot: " (rows.len()) " apps" }
                style { (STYLE) }
            }
            body {
                h1 { "autoscalebot: " (rows.len()) " apps" }
                p.summary {
                    @if stalled == 0 { span.ok { "every loop running" } }
                    @else { span.bad { (stalled) " stalled" } }
                    " · " (alerting) " with alerts or errors"
                }
                table.apps {
                    tr {
                        th { "app" } th { "process type" } th { "dynos" } th { "bounds" }
                        th { "last beat" } th { "observation" } th { "state and alerts" } th {}
                    }
                    @for row in rows { (index_row(row)) }
                }
                p.note {
                    "Generated " (now.format("%Y-%m-%d %H:%M:%S UTC")) ". "
                    a href="/metrics" { "Metrics" } " · " a href="/healthz" { "Health" }
                }
            }
        }
    };
    page.into_string()
}

fn index_row(row: &Summary) -> Markup {
    let settings = &row.settings;
    let last = row.last_beat.as_ref();
    let dynos = last
        .and_then(|beat| beat.dynos)
        .map_or("?".to_string(), |dynos| dynos.to_string());
    let bounds = row
        .bounds
        .map_or("?".to_string(), |(min, max)| format!("{min}–{max}"));
    let link = super::app_page_path(&settings.app_name, &settings.process_type);
    html! {
        tr {
            td { (settings.app_name) }
            td { (settings.process_type) }
            td { (dynos) }
            td { (bounds) }
            @if let Some(beat) = last {
                td { (beat.at.with_timezone(&settings.thresholds.time_zone).format("%H:%M:%S %Z")) }
                td {
                    (observation_word(beat.observation))
                    @if let Some(ms) = beat.response_time_ms { " (" (ms) " ms)" }
                }
            } @else {
                td { "none yet" } td {}
            }
            td {
                @if row.alive { span.ok { "running" } } @else { span.bad { "stalled" } }
                @for alert in &row.open_alerts { " · " span.bad { (alert) } }
                @if row.holding_since.is_some() { " · " span.bad { "holding: no signal" } }
                @if let Some(error) = &row.last_error { " · " span.bad { (error) } }
            }
            td { a href=(link) { "page" } }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}\
td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left;vertical-align:top}\
.ok{color:#2e7d32;font-weight:bold}.bad{color:#c62828;font-weight:bold}.note{color:#777;font-size:12px}\
.legend span{margin-right:12px;font-size:13px}";
