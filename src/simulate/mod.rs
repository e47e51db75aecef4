//! `autoscalebot simulate`: replays a traffic trace through the real decision engine and shows
//! what the settings would have cost and how long the app would have been slow, beside three
//! references (the 2.1 defaults, a fixed size at `max_dynos`, and an oracle).
//!
//! Layout: [`trace`] reads the traffic, [`builtin`] makes the built-in traces, [`queue`] turns
//! rate and dynos into response times, [`replay`] drives the engine on a simulated clock, and
//! [`report`] prints the table and writes the CSV and SVG. This module only wires them. No rule
//! of scaling lives here or below: every decision comes from [`crate::decision`].

pub mod builtin;
pub mod queue;
pub mod replay;
pub mod report;
pub mod trace;

use crate::decision::bounds_at;
use crate::settings::{self, AppSettings, SettingsError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use queue::DynoModel;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use replay::{calendar_for, heartbeat_outcome, Bench, Needs, Run};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use trace::Trace;

/// Input that cannot be used: a trace with no valid line, an unknown builtin, a bad flag.
/// The message names the line or the flag. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error(transparent)]
    BadInput(#[from] BadInput),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl SimulateError {
    /// 2 for bad input of any kind, as for the worker's settings; 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            SimulateError::BadInput(_) | SimulateError::Settings(_) => 2,
            SimulateError::Failed(_) => 1,
        }
    }
}

pub const DEFAULT_SERVICE_TIME_MS: f64 = 50.0;

/// The flags of `autoscalebot simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The traffic: a CSV file of `timestamp,requests_per_second` (Unix seconds or RFC 3339;
    /// header optional), a Heroku router log (`heroku logs` output or logplex frames), or
    /// builtin:diurnal-week, builtin:flash-crowd, builtin:quiet-weekend.
    #[arg(long, value_name = "SOURCE")]
    pub trace: String,

    /// Requests one dyno serves at once (web workers × threads).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub dyno_concurrency: u32,

    /// Mean time to serve one request, exponentially distributed [default: 50, or the mean
    /// `service=` of a router log].
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub service_time_ms: Option<f64>,

    /// How long a new dyno takes before it serves ("30s", "2m").
    #[arg(long, default_value = "30s", value_parser = parse_boot_time, value_name = "DURATION")]
    pub boot_time: Duration,

    /// The price of one dyno for one hour, for the cost column.
    #[arg(
        long,
        default_value_t = 0.035,
        value_name = "DOLLARS",
        allow_negative_numbers = true
    )]
    pub dyno_cost_per_hour: f64,

    /// Multiplies every rate of the trace (real traces are rarely your app's size).
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "FACTOR",
        allow_negative_numbers = true
    )]
    pub rate_scale: f64,

    /// Seed of the heartbeat samples: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Writes the timeline, one row per heartbeat, to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Draws the timeline as an SVG: response times against the min and max, dynos as steps,
    /// scale events marked.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

fn parse_boot_time(text: &str) -> Result<Duration, String> {
    settings::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as \"30s\" or \"2m\""))
}

/// Everything one simulation produced.
pub struct Simulation {
    pub trace: Trace,
    pub model: DynoModel,
    /// Where the service time came from, for the header.
    pub service_time_origin: String,
    pub settings: AppSettings,
    pub defaults: AppSettings,
    pub needs: Needs,
    pub ours: Run,
    pub defaults_run: Run,
    pub fixed: Run,
    pub oracle: Run,
    pub ours_initial_dynos: u32,
    pub defaults_initial_dynos: u32,
    pub elapsed: Duration,
}

/// Runs `autoscalebot simulate`: loads, simulates, prints the table to stdout and warnings to
/// stderr, writes the CSV and the plot when asked.
pub fn run(
    settings_path: Option<&Path>,
    env: &HashMap<String, String>,
    args: &SimulateArgs,
) -> Result<(), SimulateError> {
    check_flags(args)?;
    let settings = load_settings(settings_path, env)?;
    let mut trace = trace::load(&args.trace, settings.thresholds.time_zone)?;
    report::print_warnings(&trace);
    trace.scale_rates(args.rate_scale);
    let simulation = simulate(settings, trace, args)?;
    let label = settings_path.and_then(Path::file_name).map_or_else(
        || "settings".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    print!("{}", report::table(&simulation, args, &label));
    if let Some(path) = &args.csv {
        report::write_csv(path, &simulation)
            .map_err(|e| anyhow::anyhow!("writing --csv {}: {e}", path.display()))?;
        println!("Timeline written to {}.", path.display());
    }
    if let Some(path) = &args.plot {
        report::write_svg(path, &simulation)
            .map_err(|e| anyhow::anyhow!("writing --plot {}: {e}", path.display()))?;
        println!("Plot written to {}.", path.display());
    }
    Ok(())
}

fn check_flags(args: &SimulateArgs) -> Result<(), BadInput> {
    if let Some(ms) = args.service_time_ms {
        if !(ms.is_finite() && ms > 0.0) {
            return Err(BadInput(format!(
                "--service-time-ms {ms}: expected a number of milliseconds above 0"
            )));
        }
    }
    if !(args.dyno_cost_per_hour.is_finite() && args.dyno_cost_per_hour >= 0.0) {
        return Err(BadInput(format!(
            "--dyno-cost-per-hour {}: expected a price, 0 or more",
            args.dyno_cost_per_hour
        )));
    }
    if !(args.rate_scale.is_finite() && args.rate_scale > 0.0) {
        return Err(BadInput(format!(
            "--rate-scale {}: expected a factor above 0",
            args.rate_scale
        )));
    }
    if let Some(plot) = &args.plot {
        if plot.extension().is_none_or(|ext| ext != "svg") {
            return Err(BadInput(format!(
                "--plot {}: expected a file name ending in .svg (the plot is SVG only)",
                plot.display()
            )));
        }
    }
    Ok(())
}

const CREDENTIALS: [&str; 2] = ["heroku_app_name", "heroku_api_key"];

/// Loads the settings as the worker does. A simulation calls no API, so when the only problem
/// is a missing app name or API key, placeholders stand in for them (the worker itself still
/// refuses to start without them).
pub fn load_settings(
    path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<AppSettings, SettingsError> {
    let error = match settings::load(path, env) {
        Ok(loaded) => return Ok(first_app(loaded)),
        Err(error) => error,
    };
    let is_missing_credential =
        |p: &settings::Problem| p.value.is_none() && CREDENTIALS.contains(&p.key.as_str());
    if !error.problems.iter().all(is_missing_credential) {
        return Err(SettingsError {
            problems: error
                .problems
                .into_iter()
                .filter(|p| !is_missing_credential(p))
                .collect(),
        });
    }
    let mut env = env.clone();
    env.entry("AUTOSCALE_HEROKU_APP_NAME".to_string())
        .or_insert_with(|| "simulated-app".to_string());
    if !env.contains_key("HEROKU_API_KEY") {
        env.entry("AUTOSCALE_HEROKU_API_KEY".to_string())
            .or_insert_with(|| "simulated".to_string());
    }
    settings::load(path, &env).map(first_app)
}

fn first_app(settings: settings::Settings) -> AppSettings {
    settings
        .apps
        .into_iter()
        .next()
        .expect("a loaded Settings holds one app")
}

/// The 2.1 defaults (which are our loader's defaults), in the same time zone as `ours`.
pub fn defaults_like(ours: &AppSettings) -> AppSettings {
    let env: HashMap<String, String> = [
        ("AUTOSCALE_HEROKU_APP_NAME", ours.app_name.as_str()),
        ("AUTOSCALE_HEROKU_API_KEY", "simulated"),
        ("AUTOSCALE_TIME_ZONE", ours.thresholds.time_zone.name()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    first_app(settings::load(None, &env).expect("the defaults are valid"))
}

/// Runs the four rows on one trace. Pure but for the progress bar on stderr.
pub fn simulate(
    settings: AppSettings,
    trace: Trace,
    args: &SimulateArgs,
) -> Result<Simulation, SimulateError> {
    let started = Instant::now();
    let (service_time_ms, service_time_origin) = match (args.service_time_ms, trace.service_times) {
        (Some(ms), _) => (ms, "--service-time-ms".to_string()),
        (None, Some(times)) => (
            times.mean_ms,
            format!("mean service= of {} router lines", times.requests),
        ),
        (None, None) => (DEFAULT_SERVICE_TIME_MS, "default".to_string()),
    };
    let model = DynoModel {
        dyno_concurrency: args.dyno_concurrency,
        service_time_ms,
    };
    let max_response_time_ms = settings.thresholds.max_response_time_ms as f64;
    let needs = Needs::compute(&trace, &model, max_response_time_ms);
    let bench = Bench {
        trace: &trace,
        model,
        boot_time: args.boot_time,
        max_response_time_ms,
        needs: &needs,
    };
    let defaults = defaults_like(&settings);
    let start = trace.start();
    let span_ms = (trace.end_ms() - trace.start_ms()) as u64;
    let beats_of = |s: &AppSettings| span_ms / (s.heartbeat.interval.as_millis() as u64).max(1);
    let mut progress = Progress::new(beats_of(&settings) + beats_of(&defaults));

    let ours_initial_dynos = bounds_at(&settings, start).min;
    let calendar = downtime_calendar(&settings);
    let mut rng = Pcg64Mcg::seed_from_u64(args.seed);
    let timeout = settings.heartbeat.timeout;
    let ours = bench.run_engine(
        &settings,
        &calendar,
        ours_initial_dynos,
        true,
        &mut |_, moment| heartbeat_outcome(moment.sample_ms(&mut rng), timeout),
        &mut || progress.tick(),
    );
    let defaults_initial_dynos = bounds_at(&defaults, start).min;
    // Its own generator with the same seed: the reference never depends on our settings, and
    // settings equal to the defaults give equal rows.
    let mut rng = Pcg64Mcg::seed_from_u64(args.seed);
    let timeout = defaults.heartbeat.timeout;
    let defaults_run = bench.run_engine(
        &defaults,
        &calendar_for(&defaults),
        defaults_initial_dynos,
        false,
        &mut |_, moment| heartbeat_outcome(moment.sample_ms(&mut rng), timeout),
        &mut || progress.tick(),
    );
    let fixed = bench.run_fixed_at_max(&settings);
    let oracle = bench.run_oracle();
    progress.finish();
    Ok(Simulation {
        model,
        service_time_origin,
        needs,
        ours,
        defaults_run,
        fixed,
        oracle,
        ours_initial_dynos,
        defaults_initial_dynos,
        settings,
        defaults,
        elapsed: started.elapsed(),
        trace,
    })
}

/// The worker's planned downtime windows: those of the settings and, when it can be read, the
/// downtime file as it is now. A heartbeat's downtime header cannot be replayed.
fn downtime_calendar(settings: &AppSettings) -> crate::downtime::Calendar {
    let mut calendar = calendar_for(settings);
    if settings.downtime.disable {
        return calendar;
    }
    if let Some(path) = &settings.downtime.file {
        match crate::bot::read_downtime_file(path) {
            Ok(text) => {
                let learned = calendar.file_read(path, text.as_deref());
                for problem in learned.new_problems {
                    eprintln!("autoscalebot: warning: ignoring a bad downtime entry: {problem}");
                }
            }
            Err(error) => eprintln!(
                "autoscalebot: warning: downtime file {}: {error}; simulating without it",
                path.display()
            ),
        }
    }
    calendar
}

/// A progress bar that shows itself only once a run has taken more than a second, so short
/// runs print nothing extra.
struct Progress {
    bar: ProgressBar,
    started: Instant,
    count: u64,
    shown: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Ok(style) =
            ProgressStyle::with_template("simulating {bar:40} {percent:>3}% {elapsed} (eta {eta})")
        {
            bar.set_style(style);
        }
        Progress {
            bar,
            started: Instant::now(),
            count: 0,
            shown: false,
        }
    }

    fn tick(&mut self) {
        self.count += 1;
        if self.count % 2048 != 0 {
            return;
        }
        if !self.shown && self.started.elapsed() > Duration::from_secs(1) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.set_position(self.count);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests;
