//! What a simulation shows: the table on stdout, warnings on stderr, the timeline as CSV and
//! as an SVG plot.
//!
//! Formatting only: every number shown was computed in `replay`; nothing here simulates or
//! decides. The plot uses plotters' SVG backend alone, whose text needs no system font.

use super::replay::{Decision, Run};
use super::trace::{utc, Trace};
use super::{SimulateArgs, Simulation};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// At most this many warnings are printed; the rest are counted.
const SHOWN_WARNINGS: usize = 20;

pub fn print_warnings(trace: &Trace) {
    for warning in trace.warnings.iter().take(SHOWN_WARNINGS) {
        eprintln!("autoscalebot: warning: --trace {}: {warning}", trace.name);
    }
    if trace.warnings.len() > SHOWN_WARNINGS {
        eprintln!(
            "autoscalebot: warning: --trace {}: … and {} more lines skipped or repaired",
            trace.name,
            trace.warnings.len() - SHOWN_WARNINGS
        );
    }
}

/// "45s", "2m 30s", "3h 5m", "2d 4h".
pub fn format_duration_s(seconds: f64) -> String {
    let s = seconds.round() as i64;
    match s {
        _ if s < 60 => format!("{s}s"),
        _ if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ if s < 86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The labels of the rows, in order (the first is followed by the settings' name).
pub const ROW_LABELS: [&str; 7] = [
    "ours",
    "2.1 defaults",
    "fixed at max_dynos",
    "reactive limit",
    "Kubernetes HPA",
    "Knative KPA",
    "oracle",
];

/// One row of the table: its stable key (for JSON), its label, its run, and its reaction
/// when that is known by definition.
struct Row<'a> {
    key: &'static str,
    label: String,
    run: &'a Run,
    reaction: Option<&'static str>,
}

fn rows<'a>(sim: &'a Simulation, settings_label: &str) -> Vec<Row<'a>> {
    let policy = sim.settings.thresholds.policy.kind.as_str();
    vec![
        Row {
            key: "ours",
            label: format!("{} ({settings_label}, {policy})", ROW_LABELS[0]),
            run: &sim.ours,
            reaction: None,
        },
        Row {
            key: "defaults_2_1",
            label: format!("{} (same min/max)", ROW_LABELS[1]),
            run: &sim.defaults_run,
            reaction: None,
        },
        Row {
            key: "fixed_at_max",
            label: format!("{} ({})", ROW_LABELS[2], sim.settings.thresholds.max_dynos),
            run: &sim.fixed,
            reaction: None,
        },
        Row {
            key: "reactive_limit",
            label: format!("{} (needs, after boot)", ROW_LABELS[3]),
            run: &sim.reactive,
            reaction: Some("0s (by definition)"),
        },
        Row {
            key: "hpa",
            label: format!("{} (reconstructed)", ROW_LABELS[4]),
            run: &sim.hpa,
            reaction: None,
        },
        Row {
            key: "kpa",
            label: format!("{} (reconstructed)", ROW_LABELS[5]),
            run: &sim.kpa,
            reaction: None,
        },
        Row {
            key: "oracle",
            label: format!("{} (per minute)", ROW_LABELS[6]),
            run: &sim.oracle,
            reaction: Some("0s (by definition)"),
        },
    ]
}

/// The header lines and the rows.
pub fn table(sim: &Simulation, args: &SimulateArgs, settings_label: &str) -> String {
    let trace = &sim.trace;
    let span_s = (trace.end_ms() - trace.start_ms()) as f64 / 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Trace {}: {} to {} ({}), {} points{}",
        trace.name,
        utc(trace.start_ms()).format("%Y-%m-%d %H:%M UTC"),
        utc(trace.end_ms()).format("%Y-%m-%d %H:%M UTC"),
        format_duration_s(span_s),
        trace.points().len(),
        if args.rate_scale == 1.0 {
            String::new()
        } else {
            format!(", rates × {}", args.rate_scale)
        }
    );
    let jobs = sim.model.timeout.is_none();
    let _ = writeln!(
        out,
        "Model: {} {} {} at once, {:.1} ms mean {} ({}), boot {}, ${} per dyno-hour, seed {}",
        if jobs {
            "job workers (the trace is jobs a second; none is ever dropped), each an M/M/c of"
        } else {
            "a random dyno per request (Heroku's router), each an M/M/c of"
        },
        sim.model.dyno_concurrency,
        if jobs { "jobs" } else { "requests" },
        sim.model.service_time_ms,
        if jobs { "job" } else { "service" },
        sim.service_time_origin,
        format_duration_s(args.boot_time.as_secs_f64()),
        args.dyno_cost_per_hour,
        args.seed
    );
    if let Some(target) = &sim.target {
        let _ = writeln!(
            out,
            "Target policy: {:.0} % of {} workers per dyno, scale-down delay {}, {} confirmations, on the {} signal",
            target.target_utilisation * 100.0,
            target.dyno_concurrency,
            format_duration_s(target.scale_down_delay.as_secs_f64()),
            target.confirmations,
            sim.settings.drain.signal.as_str(),
        );
    }
    let slow = if jobs {
        "Slow = p95 of a job's wait and run above queue_target_latency + the job duration"
    } else {
        "Slow = p95 above max_response_time_in_ms"
    };
    let _ = writeln!(
        out,
        "{slow} ({} ms). Simulated in {} ms.",
        sim.max_response_time_ms,
        sim.elapsed.as_millis()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<38} {:>10} {:>10} {:>12} {:>7}  surge → first scale-up (median)",
        "policy", "dyno-hours", "cost", "slow minutes", "scales"
    );
    for row in rows(sim, settings_label) {
        let totals = &row.run.totals;
        let reaction = row.reaction.map(str::to_string).unwrap_or_else(|| {
            match (totals.surges, totals.median_reaction_s()) {
                (0, _) => "no surge".to_string(),
                (n, None) => format!("— (none of {n} surges answered)"),
                (n, Some(median)) => format!(
                    "{} ({} of {n} surges answered)",
                    format_duration_s(median),
                    totals.reactions_s.len()
                ),
            }
        });
        let _ = writeln!(
            out,
            "{:<38} {:>10.1} {:>10} {:>12.1} {:>7}  {}",
            row.label,
            totals.dyno_hours(),
            format!("${:.2}", totals.dyno_hours() * args.dyno_cost_per_hour),
            totals.slow_seconds / 60.0,
            totals.scale_events,
            reaction
        );
    }
    out
}

/// The whole table as JSON: the trace, the model and one object per row, for pipelines.
pub fn json(sim: &Simulation, args: &SimulateArgs, settings_label: &str) -> String {
    let rows: Vec<serde_json::Value> = rows(sim, settings_label)
        .into_iter()
        .map(|row| {
            let totals = &row.run.totals;
            let median = match row.reaction {
                Some(_) => Some(0.0),
                None => totals.median_reaction_s(),
            };
            serde_json::json!({
                "row": row.key,
                "label": row.label,
                "dyno_hours": totals.dyno_hours(),
                "cost": totals.dyno_hours() * args.dyno_cost_per_hour,
                "slow_minutes": totals.slow_seconds / 60.0,
                "scales": totals.scale_events,
                "median_reaction_s": median,
                "surges": totals.surges,
                "surges_answered": totals.reactions_s.len(),
            })
        })
        .collect();
    let trace = &sim.trace;
    let value = serde_json::json!({
        "trace": trace.name,
        "start": utc(trace.start_ms()).to_rfc3339(),
        "end": utc(trace.end_ms()).to_rfc3339(),
        "minutes": (trace.end_ms() - trace.start_ms()) as f64 / 60_000.0,
        "rate_scale": args.rate_scale,
        "max_response_time_ms": sim.max_response_time_ms.round() as u64,
        "model": {
            "dyno_concurrency": sim.model.dyno_concurrency,
            "service_time_ms": sim.model.service_time_ms,
            "service_time_origin": sim.service_time_origin,
            "boot_time_s": args.boot_time.as_secs_f64(),
            "dyno_cost_per_hour": args.dyno_cost_per_hour,
            "seed": args.seed,
        },
        "service_time_note": sim.service_time_note,
        "rows": rows,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// The quantity a run had at increasing times, from its decisions.
struct Steps<'a> {
    current: u32,
    decisions: &'a [Decision],
    next: usize,
}

impl<'a> Steps<'a> {
    fn new(initial: u32, decisions: &'a [Decision]) -> Self {
        Steps {
            current: initial,
            decisions,
            next: 0,
        }
    }

    /// The quantity after every decision at or before `at_ms` (call with increasing times).
    fn at(&mut self, at_ms: i64) -> u32 {
        while let Some(decision) = self.decisions.get(self.next) {
            if decision.at.timestamp_millis() > at_ms {
                break;
            }
            self.current = decision.to;
            self.next += 1;
        }
        self.current
    }
}

/// One row per heartbeat of our settings, with the references' sizes at the same moment.
pub fn write_csv(path: &Path, sim: &Simulation) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "timestamp,requests_per_second,heartbeat_ms,observation,p95_ms,dynos,serving_dynos,scaled_to,defaults_dynos,fixed_dynos,oracle_dynos"
    )?;
    let mut defaults = Steps::new(sim.defaults_initial_dynos, &sim.defaults_run.decisions);
    let fixed_initial = sim.fixed.decisions.first().map_or_else(
        || {
            sim.settings
                .thresholds
                .max_dynos
                .at(sim.trace.start(), sim.settings.thresholds.time_zone)
        },
        |d| d.from,
    );
    let mut fixed = Steps::new(fixed_initial, &sim.fixed.decisions);
    for beat in &sim.ours.beats {
        let observation = match beat.observation {
            Some(crate::decision::Observation::Fail) => "fail",
            Some(crate::decision::Observation::Pass) => "pass",
            Some(crate::decision::Observation::InBand) => "in_band",
            Some(crate::decision::Observation::Misconfigured { .. }) => "misconfigured",
            None => "",
        };
        writeln!(
            out,
            "{},{:.4},{},{},{:.1},{},{},{},{},{},{}",
            utc(beat.at_ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            beat.requests_per_second,
            match (beat.heartbeat_ms, beat.observation) {
                (Some(ms), _) => format!("{ms:.1}"),
                // A sizer sends no heartbeat.
                (None, None) => String::new(),
                (None, Some(_)) => "timeout".to_string(),
            },
            observation,
            beat.p95_ms,
            beat.dynos,
            beat.serving_dynos,
            beat.scaled.map_or(String::new(), |d| d.to.to_string()),
            defaults.at(beat.at_ms),
            fixed.at(beat.at_ms),
            sim.needs.at(beat.at_ms),
        )?;
    }
    out.flush()
}

/// The response-time axis: log scale from a few ms to past the router's timeout.
const PLOT_MS: std::ops::Range<f64> = 5.0..40_000.0;
/// More heartbeats than this are thinned to one point per bucket: its slowest heartbeat and
/// its median p95.
const PLOT_POINTS: usize = 2400;
/// The plot's drawing size; the file scales to the window's width (see [`responsive`]).
const PLOT_SIZE: (u32, u32) = (1400, 820);
/// Marker colours: distinct, and named for the screenshot test.
pub const SCALE_UP_RGB: (u8, u8, u8) = (0, 150, 0);
pub const SCALE_DOWN_RGB: (u8, u8, u8) = (214, 40, 40);
pub const TIMEOUT_RGB: (u8, u8, u8) = (233, 30, 99);

type Local = chrono::DateTime<chrono_tz::Tz>;

/// The clock-time label of an x tick: the time of day, with the date once the plot spans
/// more than a day.
fn tick_label(at: &Local, span: chrono::Duration) -> String {
    if span <= chrono::Duration::days(1) {
        at.format("%H:%M").to_string()
    } else if span <= chrono::Duration::days(7) {
        at.format("%a %d %H:%M").to_string()
    } else {
        at.format("%b %d").to_string()
    }
}

/// Makes plotters' fixed-size SVG scale to its container: the width becomes 100% and the
/// height follows the viewBox's proportions, so a narrow window shows the whole plot, smaller.
pub fn responsive(svg: &str) -> String {
    let (width, height) = PLOT_SIZE;
    svg.replacen(
        &format!("<svg width=\"{width}\" height=\"{height}\""),
        "<svg width=\"100%\" style=\"height:auto\" preserveAspectRatio=\"xMidYMin meet\"",
        1,
    )
}

/// Response times against the min and max lines above, dynos as steps below, scale-ups and
/// scale-downs marked with triangles pointing their way; x on clock time in the settings'
/// time zone; a legend for every kind of mark.
pub fn write_svg(path: &Path, sim: &Simulation) -> Result<(), Box<dyn std::error::Error>> {
    let settings = &sim.settings;
    let zone = settings.thresholds.time_zone;
    let local = |at_ms: i64| utc(at_ms).with_timezone(&zone);
    let (x_start, x_end) = (local(sim.trace.start_ms()), local(sim.trace.end_ms()));
    let span = x_end - x_start;
    let x_desc = format!("time ({})", zone.name());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(
            &format!(
                "autoscalebot simulate: {} (max {} ms, min {} ms)",
                sim.trace.name,
                settings.thresholds.max_response_time_ms,
                settings.thresholds.min_response_time_ms
            ),
            ("sans-serif", 22),
        )?;
        let (upper, lower) = root.split_vertically(440);

        let mut chart = ChartBuilder::on(&upper)
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(70)
            .build_cartesian_2d(x_start..x_end, PLOT_MS.log_scale())?;
        chart
            .configure_mesh()
            .x_desc(x_desc.as_str())
            .x_label_formatter(&|at| tick_label(at, span))
            .y_desc("response time (ms)")
            .draw()?;
        let clamp = |ms: f64| ms.clamp(PLOT_MS.start, PLOT_MS.end);
        let timeout_ms = settings.heartbeat.timeout.as_millis() as f64;
        let beats = &sim.ours.beats;
        let per_bucket = beats.len().div_ceil(PLOT_POINTS).max(1);
        // (time, slowest heartbeat, median p95, a heartbeat timed out)
        let thinned: Vec<(Local, f64, f64, bool)> = beats
            .chunks(per_bucket)
            .map(|chunk| {
                let heartbeat = chunk
                    .iter()
                    .map(|b| match b.heartbeat_ms {
                        Some(ms) => ms,
                        None if b.heartbeat_timed_out => timeout_ms,
                        // No heartbeat sent (a sizer, or the router signal alone): the
                        // point is the p95 it left.
                        None => b.p95_ms,
                    })
                    .fold(0.0, f64::max);
                let timed_out = chunk.iter().any(|b| b.heartbeat_timed_out);
                // The median, so that one bad minute does not paint a whole bucket slow.
                let mut p95s: Vec<f64> = chunk.iter().map(|b| b.p95_ms).collect();
                p95s.sort_by(f64::total_cmp);
                let p95 = p95s[p95s.len() / 2];
                (
                    local(chunk[0].at_ms),
                    clamp(heartbeat),
                    clamp(p95),
                    timed_out,
                )
            })
            .collect();
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(
                thinned
                    .iter()
                    .filter(|point| !point.3)
                    .map(|(x, heartbeat, _, _)| Circle::new((*x, *heartbeat), 2, grey.filled())),
            )?
            .label("heartbeat")
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, grey.filled()));
        let timeout = RGBColor(TIMEOUT_RGB.0, TIMEOUT_RGB.1, TIMEOUT_RGB.2);
        let timeouts = chart.draw_series(thinned.iter().filter(|point| point.3).map(
            |(x, heartbeat, _, _)| Cross::new((*x, *heartbeat), 5, timeout.stroke_width(2)),
        ))?;
        // The legend names what is drawn, and only that.
        if thinned.iter().any(|point| point.3) {
            timeouts
                .label(format!("heartbeat timed out ({timeout_ms} ms)"))
                .legend(move |(x, y)| Cross::new((x + 10, y), 5, timeout.stroke_width(2)));
        }
        chart
            .draw_series(LineSeries::new(
                thinned.iter().map(|(x, _, p95, _)| (*x, *p95)),
                BLUE.stroke_width(2),
            ))?
            .label("p95 (model, median per bucket)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        for (ms, color, label) in [
            (
                settings.thresholds.max_response_time_ms as f64,
                RED,
                "max_response_time_in_ms",
            ),
            (
                settings.thresholds.min_response_time_ms as f64,
                GREEN,
                "min_response_time_in_ms",
            ),
        ] {
            chart
                .draw_series(LineSeries::new(
                    vec![(x_start, clamp(ms)), (x_end, clamp(ms))],
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;

        let top = [
            sim.oracle.decisions.iter().map(|d| d.to).max().unwrap_or(1),
            sim.needs.dynos.iter().copied().max().unwrap_or(1),
            beats.iter().map(|b| b.dynos).max().unwrap_or(1),
            settings.thresholds.max_dynos.highest(),
        ]
        .into_iter()
        .max()
        .unwrap_or(1)
            + 1;
        let mut chart = ChartBuilder::on(&lower)
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(70)
            .build_cartesian_2d(x_start..x_end, 0f64..f64::from(top))?;
        chart
            .configure_mesh()
            .x_desc(x_desc.as_str())
            .x_label_formatter(&|at| tick_label(at, span))
            .y_desc("dynos")
            .draw()?;
        let oracle_initial = sim.needs.dynos.first().copied().unwrap_or(1);
        let purple = RGBColor(150, 60, 170);
        for (initial, decisions, color, label) in [
            (oracle_initial, &sim.oracle.decisions, purple, "oracle"),
            (sim.ours_initial_dynos, &sim.ours.decisions, BLACK, "ours"),
        ] {
            chart
                .draw_series(LineSeries::new(
                    step_points(initial, decisions, &local, x_start, x_end),
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        let up = RGBColor(SCALE_UP_RGB.0, SCALE_UP_RGB.1, SCALE_UP_RGB.2);
        let down = RGBColor(SCALE_DOWN_RGB.0, SCALE_DOWN_RGB.1, SCALE_DOWN_RGB.2);
        // Triangles pointing the way the size went, in pixels around the point.
        let up_marker = move |at: (Local, f64)| {
            EmptyElement::at(at) + Polygon::new(vec![(0, -7), (7, 5), (-7, 5)], up.filled())
        };
        let down_marker = move |at: (Local, f64)| {
            EmptyElement::at(at) + Polygon::new(vec![(0, 7), (7, -5), (-7, -5)], down.filled())
        };
        let point = |d: &Decision| (local(d.at.timestamp_millis()), f64::from(d.to));
        let ups = sim.ours.decisions.iter().filter(|d| d.to > d.from);
        let downs = sim.ours.decisions.iter().filter(|d| d.to < d.from);
        let (any_up, any_down) = (ups.clone().next().is_some(), downs.clone().next().is_some());
        let drawn = chart.draw_series(ups.map(|d| up_marker(point(d))))?;
        if any_up {
            drawn.label("ours scaled up").legend(move |(x, y)| {
                EmptyElement::at((x + 10, y))
                    + Polygon::new(vec![(0, -6), (6, 4), (-6, 4)], up.filled())
            });
        }
        let drawn = chart.draw_series(downs.map(|d| down_marker(point(d))))?;
        if any_down {
            drawn.label("ours scaled down").legend(move |(x, y)| {
                EmptyElement::at((x + 10, y))
                    + Polygon::new(vec![(0, 6), (6, -4), (-6, -4)], down.filled())
            });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    std::fs::write(path, responsive(&svg))?;
    Ok(())
}

/// A step function as a polyline from `x_start` to `x_end`: flat until each decision, then
/// up or down.
fn step_points<X: Clone>(
    initial: u32,
    decisions: &[Decision],
    x_of: &dyn Fn(i64) -> X,
    x_start: X,
    x_end: X,
) -> Vec<(X, f64)> {
    let mut points = vec![(x_start, f64::from(initial))];
    let mut level = f64::from(initial);
    for decision in decisions {
        let x = x_of(decision.at.timestamp_millis());
        points.push((x.clone(), level));
        level = f64::from(decision.to);
        points.push((x, level));
    }
    points.push((x_end, level));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(format_duration_s(45.0), "45s");
        assert_eq!(format_duration_s(150.0), "2m 30s");
        assert_eq!(format_duration_s(3.0 * 3600.0 + 300.0), "3h 05m");
        assert_eq!(format_duration_s(2.0 * 86_400.0 + 4.0 * 3600.0), "2d 04h");
    }

    #[test]
    fn steps_follow_the_decisions_in_time() {
        let at = |s: i64| utc(s * 1000);
        let decisions = [
            Decision {
                at: at(10),
                from: 1,
                to: 2,
                reason: None,
            },
            Decision {
                at: at(20),
                from: 2,
                to: 4,
                reason: None,
            },
        ];
        let mut steps = Steps::new(1, &decisions);
        assert_eq!(steps.at(5_000), 1);
        assert_eq!(steps.at(10_000), 2);
        assert_eq!(steps.at(19_999), 2);
        assert_eq!(steps.at(60_000), 4);
        let points = step_points(1, &decisions, &|ms| ms as f64 / 1000.0, 0.0, 30.0);
        assert_eq!(
            points,
            vec![
                (0.0, 1.0),
                (10.0, 1.0),
                (10.0, 2.0),
                (20.0, 2.0),
                (20.0, 4.0),
                (30.0, 4.0)
            ]
        );
    }
}
