//! `autoscalebot simulate`: replays a traffic trace through the real decision engine (or the
//! target policy) and shows what the settings would have cost and how long the app would have
//! been slow, beside references: the 2.1 defaults within the same bounds, a fixed size at
//! `max_dynos`, the reactive limit, reconstructions of Kubernetes' HPA and Knative's KPA, and
//! the oracle.
//!
//! Layout: [`trace`] reads the traffic, [`builtin`] makes the built-in traces, [`queue`] turns
//! rate and dynos into response times, [`signal`] turns requests into the router lines the
//! drain would see, [`policies`] holds the target policy's adapter and the HPA and KPA
//! reconstructions, [`replay`] drives them on a simulated clock, and [`report`] prints the
//! table (or JSON) and writes the CSV and SVG. This module only wires them. No rule of our
//! scaling lives here or below: decisions come from [`crate::decision`] and
//! [`crate::policy`].

pub mod builtin;
pub mod policies;
pub mod queue;
pub mod replay;
pub mod report;
pub mod signal;
pub mod trace;

use crate::decision::{Config, PolicyConfig};
use crate::policy::target::TargetConfig;
use crate::settings::{self, AppSettings, PolicyKind, SettingsError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use policies::{Hpa, Kpa};
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

    /// Requests one dyno serves at once (web workers × threads) [default: the settings'
    /// dyno_concurrency, 4].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub dyno_concurrency: Option<u32>,

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

    /// How "ours" decides: "streaks" (2.1's algorithm) or "target" (scale to the size the
    /// measured load needs) [default: the settings' policy, "streaks"].
    #[arg(long, value_parser = ["streaks", "target", "queue"], value_name = "POLICY")]
    pub policy: Option<String>,

    /// The target policy's share of each dyno's workers kept busy, in (0, 1] [default: the
    /// settings' target_utilisation, 0.9].
    #[arg(long, value_name = "SHARE", allow_negative_numbers = true)]
    pub target_utilisation: Option<f64>,

    /// The target policy's scale-down delay [default: the settings' scale_down_delay, "3m"].
    #[arg(long, value_parser = parse_boot_time, value_name = "DURATION")]
    pub scale_down_delay: Option<Duration>,

    /// Observations in a row the target policy needs before it scales up.
    #[arg(long, default_value_t = crate::policy::target::DEFAULT_CONFIRMATIONS, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub confirmations: u32,

    /// The mean time one job takes, for a job worker type (`policy = "queue"`): the trace's
    /// second column is then jobs a second [default: the settings' queue_job_duration, "1s"].
    #[arg(long, value_parser = parse_boot_time, value_name = "DURATION")]
    pub job_duration: Option<Duration>,

    /// Prints the table as JSON: the trace, the model and one object per row.
    #[arg(long)]
    pub json: bool,
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
    /// What the service time means for the max, when a router log's says something worth
    /// knowing (timeouts dominate it, or it is over the max by itself).
    pub service_time_note: Option<String>,
    pub settings: AppSettings,
    pub defaults: AppSettings,
    pub needs: Needs,
    pub ours: Run,
    pub defaults_run: Run,
    pub fixed: Run,
    pub oracle: Run,
    pub reactive: Run,
    pub hpa: Run,
    pub kpa: Run,
    /// The target policy's knobs, when "ours" ran it.
    pub target: Option<TargetConfig>,
    pub ours_initial_dynos: u32,
    pub defaults_initial_dynos: u32,
    /// The latency every row is judged by: `max_response_time_in_ms`, or for a job worker
    /// type `queue_target_latency` plus the job duration.
    pub max_response_time_ms: f64,
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
    let settings = with_flags(load_settings(settings_path, env)?, args);
    let mut trace = trace::load(&args.trace, settings.thresholds.time_zone)?;
    report::print_warnings(&trace);
    trace.scale_rates(args.rate_scale);
    let simulation = simulate(settings, trace, args)?;
    let label = settings_path.and_then(Path::file_name).map_or_else(
        || "settings".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    if let Some(note) = &simulation.service_time_note {
        eprintln!("autoscalebot: note: {note}");
    }
    if args.json {
        println!("{}", report::json(&simulation, args, &label));
    } else {
        print!("{}", report::table(&simulation, args, &label));
    }
    if let Some(path) = &args.csv {
        report::write_csv(path, &simulation)
            .map_err(|e| anyhow::anyhow!("writing --csv {}: {e}", path.display()))?;
        // With --json, stdout is the JSON alone, for pipelines.
        if args.json {
            eprintln!("Timeline written to {}.", path.display());
        } else {
            println!("Timeline written to {}.", path.display());
        }
    }
    if let Some(path) = &args.plot {
        report::write_svg(path, &simulation)
            .map_err(|e| anyhow::anyhow!("writing --plot {}: {e}", path.display()))?;
        if args.json {
            eprintln!("Plot written to {}.", path.display());
        } else {
            println!("Plot written to {}.", path.display());
        }
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
    if let Some(share) = args.target_utilisation.filter(|s| !(*s > 0.0 && *s <= 1.0)) {
        return Err(BadInput(format!(
            "--target-utilisation {share}: expected a share of each dyno's workers above 0 and at most 1, such as 0.85"
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

/// What a simulation does without: it calls no API, listens on no port and reads no queue.
const CREDENTIALS: [&str; 5] = [
    "heroku_app_name",
    "heroku_api_key",
    "log_drain_password",
    "http_port",
    "queue_url",
];

/// Loads the settings as the worker does. A simulation calls no API and runs no drain, so when
/// the only problems are a missing app name, API key, drain password or port, placeholders
/// stand in for them (the worker itself still refuses to start without them).
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
    // The queue policy with no source: the trace is the queue, so any source stands in.
    if error.problems.iter().any(|p| p.key == "queue_url") {
        env.entry("AUTOSCALE_QUEUE_METRIC".to_string())
            .or_insert_with(|| "simulated".to_string());
    }
    env.entry("AUTOSCALE_HEROKU_APP_NAME".to_string())
        .or_insert_with(|| "simulated-app".to_string());
    if !env.contains_key("HEROKU_API_KEY") {
        env.entry("AUTOSCALE_HEROKU_API_KEY".to_string())
            .or_insert_with(|| "simulated".to_string());
    }
    env.entry("AUTOSCALE_LOG_DRAIN_PASSWORD".to_string())
        .or_insert_with(|| "simulated".to_string());
    env.entry("AUTOSCALE_HTTP_PORT".to_string())
        .or_insert_with(|| "0".to_string());
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

/// The 2.1 defaults within the user's own `min_dynos` and `max_dynos`: 2.1's algorithm on the
/// same bounds, so that the row means something on a trace that needs more than 3 dynos.
pub fn defaults_within(ours: &AppSettings) -> AppSettings {
    let mut defaults = defaults_like(ours);
    defaults.thresholds.min_dynos = ours.thresholds.min_dynos.clone();
    defaults.thresholds.max_dynos = ours.thresholds.max_dynos.clone();
    defaults
}

/// The service time of the model, where it came from, and a note when a router log's mean is
/// dominated by 30 s timeouts (then the model takes the mean of the other requests: no number
/// of dynos serves a request the app itself takes 30 s on) or is over the max by itself.
fn service_time(
    args: &SimulateArgs,
    trace: &Trace,
    max_response_time_ms: f64,
) -> (f64, String, Option<String>) {
    if let Some(ms) = args.service_time_ms {
        return (ms, "--service-time-ms".to_string(), None);
    }
    let Some(times) = trace.service_times else {
        return (DEFAULT_SERVICE_TIME_MS, "default".to_string(), None);
    };
    let timed_out_ms = times.timeouts as f64 * queue::ROUTER_TIMEOUT.as_secs_f64() * 1000.0;
    let total_ms = times.mean_ms * times.requests as f64;
    let others = times.requests.saturating_sub(times.timeouts);
    if times.timeouts > 0 && timed_out_ms > 0.5 * total_ms && others > 0 {
        let mean_ms = (total_ms - timed_out_ms) / others as f64;
        let note = format!(
            "{:.0} % of the service time in this router log is {} requests that hit the router's 30 s timeout (H12), {:.1} % of the requests; their mean service= of {:.0} ms is over max_response_time_in_ms ({max_response_time_ms} ms) whatever the number of dynos. Simulating with the mean of the other {others} requests ({mean_ms:.1} ms); look at what times out first.",
            100.0 * timed_out_ms / total_ms,
            times.timeouts,
            100.0 * times.timeouts as f64 / times.requests as f64,
            times.mean_ms,
        );
        return (
            mean_ms,
            format!("mean service= of {others} router lines, timeouts left out"),
            Some(note),
        );
    }
    let origin = format!("mean service= of {} router lines", times.requests);
    let note = (times.mean_ms >= max_response_time_ms).then(|| {
        format!(
            "the mean service= of this router log ({:.0} ms) is at or over max_response_time_in_ms ({max_response_time_ms} ms): no number of dynos makes the app fast; every row will be slow",
            times.mean_ms
        )
    });
    (times.mean_ms, origin, note)
}

/// The settings with the policy flags in their place: a flag overrides the settings' key.
pub fn with_flags(mut settings: AppSettings, args: &SimulateArgs) -> AppSettings {
    let policy = &mut settings.thresholds.policy;
    match args.policy.as_deref() {
        Some("target") => policy.kind = PolicyKind::Target,
        Some("queue") => {
            policy.kind = PolicyKind::Queue;
            // No source to read in a simulation: the queue is the trace's.
            settings.queue.get_or_insert(settings::QueueSettings {
                source: settings::QueueFrom::Drain {
                    depth: None,
                    latency: None,
                },
                target_latency: crate::policy::queue::DEFAULT_TARGET_LATENCY,
                job_duration: crate::policy::queue::DEFAULT_JOB_DURATION,
                worker_concurrency: crate::policy::queue::DEFAULT_WORKER_CONCURRENCY,
            });
        }
        Some(_) => policy.kind = PolicyKind::Streaks,
        None => {}
    }
    if let (Some(duration), Some(queue)) = (args.job_duration, settings.queue.as_mut()) {
        queue.job_duration = duration;
    }
    let policy = &mut settings.thresholds.policy;
    if let Some(share) = args.target_utilisation {
        policy.target_utilisation = share;
    }
    if let Some(delay) = args.scale_down_delay {
        policy.scale_down_delay = delay;
    }
    if let Some(concurrency) = args.dyno_concurrency {
        policy.dyno_concurrency = concurrency;
    }
    settings
}

/// The engine's config for "ours": the settings' (flags already in them), with the target
/// policy's confirmations from `--confirmations`.
pub fn engine_config(settings: &AppSettings, args: &SimulateArgs) -> Config {
    let mut config = settings.engine_config();
    if let PolicyConfig::Target(target) = &mut config.policy {
        target.confirmations = args.confirmations;
    }
    config
}

/// Runs every row on one trace, "ours" with `settings` as [`with_flags`] made them. Pure but
/// for the progress bar on stderr.
pub fn simulate(
    settings: AppSettings,
    trace: Trace,
    args: &SimulateArgs,
) -> Result<Simulation, SimulateError> {
    let started = Instant::now();
    let jobs = settings
        .queue
        .as_ref()
        .filter(|_| settings.thresholds.policy.kind == PolicyKind::Queue);
    let (model, max_response_time_ms, service_time_origin, service_time_note) = match jobs {
        // A job worker type: the trace is jobs a second, each taking the job duration, and a
        // job is late when it waits past the target latency before it runs.
        Some(queue) => {
            let (duration, origin) = match args.job_duration {
                Some(duration) => (duration, "--job-duration"),
                None => (queue.job_duration, "queue_job_duration"),
            };
            let model = DynoModel::jobs(queue.worker_concurrency, duration);
            let max_ms = (queue.target_latency + duration).as_secs_f64() * 1000.0;
            (model, max_ms, origin.to_string(), None)
        }
        None => {
            let max_ms = settings.thresholds.max_response_time_ms as f64;
            let (service_time_ms, origin, note) = service_time(args, &trace, max_ms);
            let model =
                DynoModel::web(settings.thresholds.policy.dyno_concurrency, service_time_ms);
            (model, max_ms, origin, note)
        }
    };
    let needs = Needs::compute(&trace, &model, max_response_time_ms);
    let bench = Bench {
        trace: &trace,
        model,
        boot_time: args.boot_time,
        max_response_time_ms,
        needs: &needs,
    };
    let defaults = defaults_within(&settings);
    let start = trace.start();
    let span_ms = (trace.end_ms() - trace.start_ms()) as u64;
    let beats_of = |s: &AppSettings| span_ms / (s.heartbeat.interval.as_millis() as u64).max(1);
    let ticks_of = |every: Duration| span_ms / (every.as_millis() as u64).max(1);
    let mut progress = Progress::new(
        beats_of(&settings) + beats_of(&defaults) + ticks_of(Hpa::SYNC) + ticks_of(Kpa::TICK),
    );

    // A stopped app stays stopped under the streaks until the min starts it; the target
    // policy and the sizers start from one dyno, as an app they scale would be running (no
    // policy starts a stopped app: the min or the activator does).
    let sizer_initial_dynos = settings.engine_config().bounds_at(start).min.max(1);
    let config = engine_config(&settings, args);
    let target = match &config.policy {
        PolicyConfig::Target(target) => Some(target.clone()),
        PolicyConfig::Streaks(_) | PolicyConfig::Queue(_) => None,
    };
    let ours_initial_dynos = match target {
        Some(_) => sizer_initial_dynos,
        None => config.bounds_at(start).min,
    };
    let calendar = downtime_calendar(&settings);
    // The engine's own step, whatever the policy, on the signal the settings name: the
    // heartbeat sampled from the queue, the router window from the simulated drain.
    let mut rng = Pcg64Mcg::seed_from_u64(args.seed);
    let timeout = settings.heartbeat.timeout;
    let mut feed = settings
        .drain
        .signal
        .uses_router()
        .then(|| bench.feed(settings.drain.router_window, args.seed));
    let ours = bench.run_engine_on(
        &settings,
        &config,
        &calendar,
        ours_initial_dynos,
        true,
        &mut |_, moment| heartbeat_outcome(moment.sample_ms(&mut rng), timeout),
        feed.as_mut(),
        &mut || progress.tick(),
    );
    let defaults_initial_dynos = defaults.engine_config().bounds_at(start).min;
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
    let reactive = bench.run_reactive_limit(&settings);
    // The same metric and target as the target policy: busy workers per dyno (job slots per
    // worker dyno for a job worker type).
    let target_per_dyno =
        f64::from(model.dyno_concurrency) * settings.thresholds.policy.target_utilisation;
    let hpa = bench.run_sizer(
        &mut Hpa::new(target_per_dyno),
        &settings,
        sizer_initial_dynos,
        false,
        args.seed,
        &mut || progress.tick(),
    );
    let kpa = bench.run_sizer(
        &mut Kpa::new(target_per_dyno),
        &settings,
        sizer_initial_dynos,
        false,
        args.seed,
        &mut || progress.tick(),
    );
    progress.finish();
    Ok(Simulation {
        model,
        service_time_origin,
        service_time_note,
        needs,
        ours,
        defaults_run,
        fixed,
        oracle,
        reactive,
        hpa,
        kpa,
        target,
        ours_initial_dynos,
        defaults_initial_dynos,
        max_response_time_ms,
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
