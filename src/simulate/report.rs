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

/// The labels of the four rows, in order.
pub const ROW_LABELS: [&str; 4] = ["ours", "2.1 defaults", "fixed at max_dynos", "oracle"];

/// The header lines and the four rows.
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
    let _ = writeln!(
        out,
        "Model: M/M/c, {} requests at once per dyno, {:.1} ms mean service ({}), boot {}, ${} per dyno-hour, seed {}",
        sim.model.dyno_concurrency,
        sim.model.service_time_ms,
        sim.service_time_origin,
        format_duration_s(args.boot_time.as_secs_f64()),
        args.dyno_cost_per_hour,
        args.seed
    );
    let _ = writeln!(
        out,
        "Slow = p95 above max_response_time_in_ms ({} ms). Simulated in {} ms.",
        sim.settings.thresholds.max_response_time_ms,
        sim.elapsed.as_millis()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<32} {:>10} {:>10} {:>12} {:>7}  surge → first scale-up (median)",
        "policy", "dyno-hours", "cost", "slow minutes", "scales"
    );
    let rows: [(String, &Run, Option<&str>); 4] = [
        (
            format!("{} ({settings_label})", ROW_LABELS[0]),
            &sim.ours,
            None,
        ),
        (ROW_LABELS[1].to_string(), &sim.defaults_run, None),
        (
            format!("{} ({})", ROW_LABELS[2], sim.settings.thresholds.max_dynos),
            &sim.fixed,
            None,
        ),
        (
            format!("{} (per minute)", ROW_LABELS[3]),
            &sim.oracle,
            Some("0s (by definition)"),
        ),
    ];
    for (label, run, reaction) in rows {
        let totals = &run.totals;
        let reaction = reaction.map(str::to_string).unwrap_or_else(|| {
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
            "{:<32} {:>10.1} {:>10} {:>12.1} {:>7}  {}",
            label,
            totals.dyno_hours(),
            format!("${:.2}", totals.dyno_hours() * args.dyno_cost_per_hour),
            totals.slow_seconds / 60.0,
            totals.scale_events,
            reaction
        );
    }
    out
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
            crate::decision::Observation::Fail => "fail",
            crate::decision::Observation::Pass => "pass",
            crate::decision::Observation::InBand => "in_band",
            crate::decision::Observation::Misconfigured { .. } => "misconfigured",
        };
        writeln!(
            out,
            "{},{:.4},{},{},{:.1},{},{},{},{},{},{}",
            utc(beat.at_ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            beat.requests_per_second,
            beat.heartbeat_ms
                .map_or("timeout".to_string(), |ms| format!("{ms:.1}")),
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

/// Response times against the min and max lines above, dynos as steps below, scale events
/// marked with triangles.
pub fn write_svg(path: &Path, sim: &Simulation) -> Result<(), Box<dyn std::error::Error>> {
    let start_ms = sim.trace.start_ms();
    let hours = |at_ms: i64| (at_ms - start_ms) as f64 / 3_600_000.0;
    let x_end = hours(sim.trace.end_ms());
    let settings = &sim.settings;
    let root = SVGBackend::new(path, (1400, 820)).into_drawing_area();
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
        .build_cartesian_2d(0f64..x_end, PLOT_MS.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("hours since start")
        .y_desc("response time (ms)")
        .draw()?;
    let clamp = |ms: f64| ms.clamp(PLOT_MS.start, PLOT_MS.end);
    let beats = &sim.ours.beats;
    let per_bucket = beats.len().div_ceil(PLOT_POINTS).max(1);
    let thinned: Vec<(f64, f64, f64)> = beats
        .chunks(per_bucket)
        .map(|chunk| {
            let heartbeat = chunk
                .iter()
                .map(|b| {
                    b.heartbeat_ms
                        .unwrap_or(settings.heartbeat.timeout.as_millis() as f64)
                })
                .fold(0.0, f64::max);
            // The median, so that one bad minute does not paint a whole bucket slow.
            let mut p95s: Vec<f64> = chunk.iter().map(|b| b.p95_ms).collect();
            p95s.sort_by(f64::total_cmp);
            let p95 = p95s[p95s.len() / 2];
            (hours(chunk[0].at_ms), clamp(heartbeat), clamp(p95))
        })
        .collect();
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(
            thinned
                .iter()
                .map(|&(x, heartbeat, _)| Circle::new((x, heartbeat), 2, grey.filled())),
        )?
        .label("heartbeat")
        .legend(move |(x, y)| Circle::new((x + 10, y), 3, grey.filled()));
    chart
        .draw_series(LineSeries::new(
            thinned.iter().map(|&(x, _, p95)| (x, p95)),
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
                vec![(0.0, clamp(ms)), (x_end, clamp(ms))],
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
        .build_cartesian_2d(0f64..x_end, 0f64..f64::from(top))?;
    chart
        .configure_mesh()
        .x_desc("hours since start")
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
                step_points(initial, decisions, &hours, x_end),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    let up = RGBColor(0, 150, 0);
    chart.draw_series(sim.ours.decisions.iter().map(|d| {
        let (color, size) = if d.to > d.from { (up, 6) } else { (RED, 5) };
        TriangleMarker::new(
            (hours(d.at.timestamp_millis()), f64::from(d.to)),
            size,
            color.filled(),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A step function as a polyline: flat until each decision, then up or down.
fn step_points(
    initial: u32,
    decisions: &[Decision],
    hours: &dyn Fn(i64) -> f64,
    x_end: f64,
) -> Vec<(f64, f64)> {
    let mut points = vec![(0.0, f64::from(initial))];
    let mut level = f64::from(initial);
    for decision in decisions {
        let x = hours(decision.at.timestamp_millis());
        points.push((x, level));
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
        let points = step_points(1, &decisions, &|ms| ms as f64 / 1000.0, 30.0);
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
