//! The `autoscalebot` command: parse arguments, set up logging, load settings, run.
//!
//! Errors reach the user here and only here: settings problems exit 2, everything else 1.
//! `sandbox` and `demo` need no worker settings: they run the local stand-in platform.

use anyhow::Result;
use autoscalebot::settings::{self, LogFormat, Settings, SettingsError};
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Keeps a web app fast at busy times and cheap at quiet ones: reads a heartbeat URL, the
/// router's log lines or the job queues, and scales the app through its platform's API.
#[derive(Parser)]
#[command(name = "autoscalebot", version, about)]
struct Cli {
    /// The settings file (TOML). Without it, settings come from AUTOSCALE_* variables only.
    #[arg(long, global = true, value_name = "PATH")]
    settings: Option<PathBuf>,

    /// Decide and notify, but never change the formation.
    #[arg(long, global = true)]
    dry_run: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker until SIGTERM or SIGINT (the default).
    Run,
    /// Load and validate the settings, print the values in force (secrets as ***), and exit.
    Check(CheckArgs),
    /// Listen in front of the app ([activator] table): start it on the first connection, hold
    /// the connections until it accepts, forward them, and stop it after idle_after.
    Activate,
    /// Send one test notification through every backend in notification_backends and report,
    /// per backend, delivered or the error. Exits 1 when any failed.
    NotifyTest,
    /// Replay a traffic trace through the decision engine and show what the settings would
    /// have cost and how long the app would have been slow, beside the references: 2.1's
    /// defaults, a fixed size, the oracle, the reactive limit, Kubernetes HPA and Knative KPA.
    Simulate(autoscalebot::simulate::SimulateArgs),
    /// Run a local stand-in for Heroku on loopback: the Platform API (the formation, and the
    /// app, dynos and log drains Heroku's CLI reads) and an app of real local dynos behind one
    /// router port. Runs until SIGTERM or SIGINT.
    Sandbox(SandboxArgs),
    /// Turn an autoscalebot 2.1 settings module (autoscale_settings.py, or Django's settings.py
    /// with AUTOSCALE_ names) into this version's TOML on stdout. What cannot be carried over
    /// (code, names that are not 2.1's, backends with no counterpart) is listed on stderr line
    /// by line, and then the exit code is 2 unless --allow-dropped. The API key is never
    /// written: give it as the config var HEROKU_API_KEY.
    ImportSettings(ImportArgs),
    /// Show the whole loop with no account and no network: a sandbox platform, a traffic surge
    /// and the worker in one process, with a live timeline and a summary.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The 2.1 settings module, such as autoscale_settings.py.
    #[arg(value_name = "FILE.py")]
    module: PathBuf,
    /// Exit 0 although some lines were not carried over (they are still listed on stderr).
    #[arg(long)]
    allow_dropped: bool,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Then ask the platform and the app: the API key, the app, the process type, the
    /// heartbeat, the log drain (when signal reads one) and the API budget, one line each.
    /// Exits 1 when any check fails.
    #[arg(long)]
    online: bool,
}

#[derive(clap::Args)]
struct SandboxArgs {
    /// Port of the Platform API (0: any free port).
    #[arg(long, default_value_t = 5001)]
    port: u16,
    /// Port of the app's router (0: any free port).
    #[arg(long, default_value_t = 5000)]
    app_port: u16,
    /// The app's name (use it as heroku_app_name).
    #[arg(long, default_value = "sandbox-app")]
    app: String,
    /// The one key the API accepts as `Authorization: Bearer KEY` (never printed).
    #[arg(
        long,
        env = "HEROKU_API_KEY",
        hide_env_values = true,
        default_value = "sandbox-api-key"
    )]
    api_key: String,
    /// Dynos running at the start.
    #[arg(long, default_value_t = 1)]
    dynos: u32,
    /// The most dynos the API lets the formation ask for (more: 422 invalid_params).
    #[arg(long, default_value_t = 10)]
    max_quantity: u32,
    /// Requests one dyno serves at a time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    dyno_concurrency: u32,
    /// Milliseconds one dyno takes to serve one request (the mean, with exponential times).
    #[arg(long, default_value_t = 100)]
    service_time_ms: u64,
    /// "fixed": every request takes --service-time-ms; "exponential": drawn around it, as a
    /// real app's requests vary (and as `simulate` models them).
    #[arg(long, default_value = "fixed", value_parser = ["fixed", "exponential"])]
    service_times: String,
    /// "pooled": one queue to the least busy dyno; "random": each request to a booted dyno at
    /// random, which queues it, as Heroku's router does.
    #[arg(long, default_value = "pooled", value_parser = ["pooled", "random"])]
    routing: String,
    /// How long a dyno started by a scale up takes before it serves, e.g. "1s".
    #[arg(long, default_value = "0s", value_parser = parse_boot_time_arg)]
    boot_time: Duration,
}

fn parse_boot_time_arg(text: &str) -> Result<Duration, String> {
    settings::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as \"1s\" or \"30s\""))
}

#[derive(clap::Args)]
struct DemoArgs {
    /// How long the demo runs, e.g. "75s" or "2m"; the traffic profile stretches to fit.
    #[arg(long, default_value = "75s", value_parser = parse_duration_arg)]
    duration: Duration,
    /// Whose API the worker scales the sandbox through.
    #[arg(long, value_enum, default_value_t = autoscalebot::demo::DemoPlatform::Heroku)]
    platform: autoscalebot::demo::DemoPlatform,
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    match settings::parse_duration(text) {
        Some(duration) if duration >= Duration::from_secs(10) => Ok(duration),
        Some(_) => Err("expected at least 10s, so the surge has room".into()),
        None => Err("expected a duration such as \"75s\" or \"2m\"".into()),
    }
}

/// How long running heartbeats and notifications get to finish after SIGTERM; Heroku sends
/// SIGKILL 30 s after SIGTERM.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("autoscalebot: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let on_dyno = std::env::var_os("DYNO").is_some();
    match &cli.command {
        Some(Command::Sandbox(args)) => {
            init_logging(LogFormat::Auto.resolve(on_dyno), "info");
            return run_sandbox(args);
        }
        Some(Command::Demo(args)) => {
            // The demo's story is its timeline on stdout; its logs show warnings only.
            init_logging(LogFormat::Auto.resolve(on_dyno), "warn");
            return run_demo(args, cli.settings.as_deref());
        }
        _ => {}
    }
    if let Some(Command::Simulate(args)) = &cli.command {
        init_logging(LogFormat::Auto.resolve(on_dyno), "info");
        let env: HashMap<String, String> = std::env::vars().collect();
        return Ok(
            match autoscalebot::simulate::run(cli.settings.as_deref(), &env, args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("autoscalebot simulate: {error}");
                    ExitCode::from(error.exit_code())
                }
            },
        );
    }
    if let Some(Command::ImportSettings(args)) = &cli.command {
        return Ok(import_settings(args));
    }
    if matches!(cli.command, Some(Command::Activate)) {
        return activate(&cli, on_dyno);
    }
    let settings = match load_settings(&cli) {
        Ok(settings) => settings,
        Err(error) => {
            // Each command needs only its own settings: a file `activate` runs is valid for
            // `check`, which says that `run` would want more.
            if let Some(Command::Check(args)) = &cli.command {
                if let Ok(settings) = load_settings_for(&cli, settings::Purpose::Activator) {
                    print_check(&settings, Some(&error));
                    if args.online {
                        println!("# online checks: not made, since `autoscalebot run` would refuse these settings");
                        return Ok(ExitCode::from(1));
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            }
            eprintln!("autoscalebot: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let log_format = settings
        .apps
        .first()
        .map_or(LogFormat::Auto, |app| app.log_format);
    // After loading, so that log_format applies; settings problems go to stderr as text.
    init_logging(log_format.resolve(on_dyno), "info");
    match cli.command.unwrap_or(Command::Run) {
        Command::Check(args) => {
            print_check(&settings, None);
            if !args.online {
                return Ok(ExitCode::SUCCESS);
            }
            let runtime = tokio::runtime::Runtime::new()?;
            Ok(all_or_1(runtime.block_on(print_online_check(&settings))))
        }
        Command::NotifyTest => {
            let runtime = tokio::runtime::Runtime::new()?;
            Ok(all_or_1(runtime.block_on(notify_test(&settings))))
        }
        Command::Simulate(_)
        | Command::Sandbox(_)
        | Command::Demo(_)
        | Command::ImportSettings(_) => {
            unreachable!("handled before the settings are loaded")
        }
        Command::Run => {
            let runtime = worker_runtime(settings.apps.len())?;
            match runtime.block_on(run_worker(settings, cli.dry_run)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                // A setting the platform refused at start (the app's web_url could not be read).
                Err(error) => match error.downcast_ref::<SettingsError>() {
                    Some(problems) => {
                        eprintln!("autoscalebot: {problems}");
                        Ok(ExitCode::from(2))
                    }
                    None => Err(error),
                },
            }
        }
        Command::Activate => unreachable!("handled above"),
    }
}

/// The exit code of a command that tries several things: 0 when all of them worked, else 1.
fn all_or_1(all_worked: bool) -> ExitCode {
    if all_worked {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `autoscalebot import-settings`: the TOML on stdout, what was not carried over on stderr.
/// Exit 2 when the module cannot be read, the TOML would not load, or (without
/// `--allow-dropped`) anything was not carried over.
fn import_settings(args: &ImportArgs) -> ExitCode {
    let shown = args.module.display().to_string();
    let source = match std::fs::read_to_string(&args.module) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("autoscalebot import-settings: {shown}: {error}: expected a readable Python settings module (UTF-8)");
            return ExitCode::from(2);
        }
    };
    let name = args
        .module
        .file_name()
        .map_or(shown.clone(), |name| name.to_string_lossy().into_owned());
    let imported = autoscalebot::import_settings::import(&source, &name);
    print!("{}", imported.toml);
    for line in imported.note_lines(&shown) {
        eprintln!("{line}");
    }
    let plural = |count: usize| if count == 1 { "" } else { "s" };
    let mut failed = false;
    if !imported.problems.is_empty() {
        let count = imported.problems.len();
        eprintln!(
            "autoscalebot import-settings: the TOML does not load yet ({count} problem{}); fix {} by hand:",
            plural(count),
            if count == 1 { "it" } else { "them" },
        );
        for problem in &imported.problems {
            eprintln!("  - {problem}");
        }
        failed = true;
    }
    let dropped = imported.dropped();
    if dropped > 0 {
        let accept = if args.allow_dropped {
            "accepted with --allow-dropped"
        } else {
            failed = true;
            "carry them over by hand, or run again with --allow-dropped to accept the file without them"
        };
        eprintln!(
            "autoscalebot import-settings: {dropped} part{} of {shown} not carried over (listed above): {accept}",
            plural(dropped),
        );
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// `autoscalebot activate`: settings and the listening socket are checked before anything
/// runs; either being wrong is exit 2.
fn activate(cli: &Cli, on_dyno: bool) -> Result<ExitCode> {
    let settings = match load_settings_for(cli, settings::Purpose::Activator) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("autoscalebot: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let app = settings.apps.into_iter().next().expect("one app");
    init_logging(app.log_format.resolve(on_dyno), "info");
    let bound = match autoscalebot::activator::bind_listen(&app) {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("autoscalebot: activator.listen = {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let client = autoscalebot::http_client();
        let mut task = tokio::spawn(autoscalebot::activator::run(
            app,
            bound,
            client,
            shutdown.clone(),
        ));
        tokio::select! {
            ended = &mut task => {
                return match ended {
                    Ok(result) => result.map_err(anyhow::Error::from),
                    Err(error) => Err(anyhow::anyhow!("the activator task failed: {error}")),
                };
            }
            signal = wait_for_signal() => signal?,
        }
        tracing::info!("Shutdown signal received; stopping the activator.");
        shutdown.cancel();
        match tokio::time::timeout(SHUTDOWN_DEADLINE, task).await {
            Ok(Ok(result)) => result.map_err(anyhow::Error::from),
            Ok(Err(error)) => Err(anyhow::anyhow!("the activator task failed: {error}")),
            Err(_) => {
                tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "The activator did not stop in time; exiting anyway.");
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn load_settings(cli: &Cli) -> Result<Settings, SettingsError> {
    load_settings_for(cli, settings::Purpose::Worker)
}

fn load_settings_for(cli: &Cli, purpose: settings::Purpose) -> Result<Settings, SettingsError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    settings::load_for(cli.settings.as_deref(), &env, purpose)
}

/// Prints the settings in force. `not_for_run`: the settings were loaded for `activate`,
/// since `run` refuses them for these problems.
fn print_check(settings: &Settings, not_for_run: Option<&SettingsError>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "# the worker")?;
        for (key, value) in settings.effective() {
            writeln!(out, "{key} = {value}")?;
        }
        for app in &settings.apps {
            writeln!(out, "# app {} ({})", app.app_name, app.process_type)?;
            for (key, value) in app.effective() {
                writeln!(out, "{key} = {value}")?;
            }
            for line in downtime_lines(app, chrono::Utc::now()) {
                writeln!(out, "{line}")?;
            }
        }
        for line in budget_lines(settings) {
            writeln!(out, "{line}")?;
        }
        match not_for_run {
            None => writeln!(out, "# settings are valid"),
            Some(error) => {
                writeln!(
                    out,
                    "# settings are valid for `autoscalebot activate`; `autoscalebot run` would refuse them ({}):",
                    error.to_string().lines().next().unwrap_or_default()
                )?;
                for problem in &error.problems {
                    writeln!(out, "#   - {problem}")?;
                }
                Ok(())
            }
        }
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = write();
}

/// `check --online`: one line per check and app; true when none failed.
async fn print_online_check(settings: &Settings) -> bool {
    use autoscalebot::online_check::{check, Status};
    println!("# online checks");
    let sections = check(settings, &autoscalebot::http_client()).await;
    let mut failed = 0;
    let mut total = 0;
    for section in &sections {
        println!("# app {}", section.app);
        for line in &section.lines {
            println!("{line}");
            total += 1;
            if line.status == Status::Fail {
                failed += 1;
            }
        }
    }
    println!("# {failed} of {total} online checks failed");
    failed == 0
}

/// The most Platform API calls an hour the settings can cost, per API key (keys are numbered,
/// never shown), and how often each app's size is re-read.
fn budget_lines(settings: &Settings) -> Vec<String> {
    use autoscalebot::budget::REFRESH_EVERY_BEATS;
    let plans = autoscalebot::budget::plan(settings);
    let mut lines = vec![format!(
        "# Platform API calls, per API key (heroku_api_calls_per_hour = {} each; Heroku allows 4500 per account):",
        settings.heroku_api_calls_per_hour
    )];
    for (index, plan) in plans.iter().enumerate() {
        let mut names = plan.formations.iter().take(5).cloned().collect::<Vec<_>>();
        if plan.formations.len() > 5 {
            names.push(format!("and {} more", plan.formations.len() - 5));
        }
        lines.push(format!(
            "#   key {} ({} app{}: {}): at most {:.0} calls an hour (reading every heartbeat: {:.0}; scaling, one read and one write per streak: up to {:.0})",
            index + 1,
            plan.formations.len(),
            if plan.formations.len() == 1 { "" } else { "s" },
            names.join(", "),
            plan.at_most_per_hour,
            plan.reads_every_beat_per_hour,
            plan.scaling_per_hour,
        ));
        let refresh = REFRESH_EVERY_BEATS;
        lines.push(match plan.refresh_every_beats {
            _ if !plan.budgeted => format!("#     one app on this key: its size is read just before a scale and re-read every {refresh} heartbeats (a scale made by hand is seen within that); the client spaces its calls when Heroku's RateLimit-Remaining runs low"),
            Some(beats) if beats <= refresh => format!(
                "#     each size is read just before a scale and re-read every {refresh} heartbeats (a scale made by hand is seen within that)"
            ),
            Some(beats) => format!(
                "#     each size is read just before a scale and re-read every {beats} heartbeats, the budget's pace, sooner (after {refresh}) while the budget has room"
            ),
            None => format!(
                "#     warning: scaling alone may need {:.0} calls an hour, more than the budget: sizes are re-read only while the budget has room, and some scales may wait",
                plan.scaling_per_hour
            ),
        });
    }
    lines
}

/// Prints one line per backend; true when every backend delivered.
async fn notify_test(settings: &Settings) -> bool {
    let mut all_delivered = true;
    for app in &settings.apps {
        if app.notify.backends.is_empty() {
            println!(
                "{}: no notification backends: set notification_backends",
                app.app_name
            );
            all_delivered = false;
        }
        let outcomes = autoscalebot::bot::send_test_notifications(app, chrono::Utc::now()).await;
        for (backend, outcome) in outcomes {
            match outcome {
                Ok(delivered) if delivered.refused.is_empty() => {
                    println!("{backend}: delivered")
                }
                // The others got it, but an address in the settings is wrong: worth a fix.
                Ok(delivered) => {
                    all_delivered = false;
                    println!(
                        "{backend}: delivered, but refused for {}",
                        delivered.refused.join("; ")
                    );
                }
                Err(error) => {
                    all_delivered = false;
                    println!("{backend}: failed: {error}");
                }
            }
        }
    }
    all_delivered
}

/// The planned downtime windows `check` can see (settings, environment, file), each with its
/// source and its times in `time_zone`, and the bad entries the worker will ignore.
fn downtime_lines(
    app: &autoscalebot::AppSettings,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    use autoscalebot::downtime::{parse_file, Window};
    let zone = app.thresholds.time_zone;
    if app.downtime.disable {
        return vec![
            "# planned downtime: disabled (downtime_disable): every source is ignored".into(),
        ];
    }
    let mut windows: Vec<Window> = app.downtime.windows.clone();
    let mut bad = app.downtime.warnings.clone();
    let mut notes = Vec::new();
    if let Some(path) = &app.downtime.file {
        match autoscalebot::bot::read_downtime_file(path) {
            Ok(Some(text)) => {
                let (found, problems) = parse_file(&text, path, zone);
                windows.extend(found);
                bad.extend(problems);
            }
            Ok(None) => notes.push(format!(
                "# downtime file {}: not there now; the worker watches for it while it runs",
                path.display()
            )),
            Err(error) => notes.push(format!(
                "# downtime file {}: cannot be read: {error}",
                path.display()
            )),
        }
    }
    if let Some(name) = &app.downtime.header {
        notes.push(format!(
            "# downtime header {name}: read from each heartbeat response while the worker runs"
        ));
    }
    windows.sort_by_key(|window| (window.start, window.end));
    let mut lines = vec![format!(
        "# planned downtime windows ({}, times in {}):",
        windows.len(),
        zone.name()
    )];
    for window in &windows {
        let state = if window.contains(now) {
            "in force now"
        } else if window.end <= now {
            "over"
        } else {
            "to come"
        };
        lines.push(format!(
            "#   {} ({state}), from {}",
            window.local_span(zone),
            window.source
        ));
    }
    for problem in &bad {
        lines.push(format!("# ignored: {problem}"));
    }
    lines.extend(notes);
    lines
}

/// A runtime sized for the work: one thread for one app, whose beat is a request or two every
/// interval (a second worker thread would only add wake-ups between the two, and memory); a
/// thread per core for many apps.
fn worker_runtime(apps: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if apps == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
}

async fn run_worker(settings: Settings, dry_run: bool) -> Result<()> {
    let shutdown = CancellationToken::new();
    let mut worker = tokio::spawn(autoscalebot::run(settings, dry_run, shutdown.clone()));
    tokio::select! {
        signal = wait_for_signal() => signal?,
        // The workers only end on their own when they cannot start (a port in use).
        ended = &mut worker => return ended?,
    }
    tracing::info!("Shutdown signal received; finishing the heartbeat in progress.");
    shutdown.cancel();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, worker)
        .await
        .is_err()
    {
        tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "Workers did not stop in time; exiting anyway.");
    }
    Ok(())
}

/// Waits for SIGTERM (what Heroku sends) or SIGINT (Ctrl-C).
async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

fn run_sandbox(args: &SandboxArgs) -> Result<ExitCode> {
    use anyhow::Context;
    use autoscalebot_sandbox::{Sandbox, SandboxConfig};
    if args.dynos > args.max_quantity {
        eprintln!(
            "autoscalebot: --dynos {} is more than --max-quantity {}",
            args.dynos, args.max_quantity
        );
        return Ok(ExitCode::from(2));
    }
    let config = SandboxConfig {
        api_port: args.port,
        app_port: args.app_port,
        app: args.app.clone(),
        api_key: autoscalebot_backends::Secret::new(args.api_key.clone()),
        dynos: args.dynos,
        max_quantity: args.max_quantity,
        dyno_concurrency: args.dyno_concurrency,
        service_time: Duration::from_millis(args.service_time_ms),
        service_times: match args.service_times.as_str() {
            "exponential" => autoscalebot_sandbox::ServiceTimes::Exponential,
            _ => autoscalebot_sandbox::ServiceTimes::Fixed,
        },
        routing: match args.routing.as_str() {
            "random" => autoscalebot_sandbox::Routing::Random,
            _ => autoscalebot_sandbox::Routing::Pooled,
        },
        boot_time: args.boot_time,
        ..SandboxConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let sandbox = Sandbox::start(config.clone()).await.with_context(|| {
            format!(
                "starting the sandbox on 127.0.0.1 ports {} (API) and {} (app)",
                config.api_port, config.app_port
            )
        })?;
        println!(
            "Sandbox platform: app {}, {} {} dyno{} at the start (at most {}), each serving {} request{} at a time in {} ms.",
            sandbox.app(),
            config.dynos,
            sandbox.process_type(),
            if config.dynos == 1 { "" } else { "s" },
            config.max_quantity,
            config.dyno_concurrency,
            if config.dyno_concurrency == 1 { "" } else { "s" },
            config.service_time.as_millis(),
        );
        println!("Point the worker at it with these settings (the key: your --api-key or HEROKU_API_KEY):");
        println!("  heroku_api_url = \"{}\"", sandbox.api_url);
        println!("  app_url = \"{}\"", sandbox.app_url);
        println!("  heroku_app_name = \"{}\"", sandbox.app());
        println!(
            "Or scale it as Fly.io Machines: scaler = \"fly\", fly_api_url = \"{}\", fly_app_name = \"{}\", fly_api_token = <the key>",
            sandbox.api_url,
            sandbox.app()
        );
        println!(
            "Or as a Render service: scaler = \"render\", render_api_url = \"{}\", render_service_id = \"{}\", render_api_key = <the key>",
            sandbox.api_url,
            sandbox.render_service_id()
        );
        println!(
            "Drive it with Heroku's CLI: HEROKU_HOST={} HEROKU_API_KEY=<the key> heroku ps:scale web=2 -a {}",
            sandbox.api_url,
            sandbox.app()
        );
        println!(
            "The router's lines go to every log drain added: heroku drains:add http://token:PASSWORD@127.0.0.1:PORT/logs -a {} (with HEROKU_HOST as above)",
            sandbox.app()
        );
        println!(
            "Inject faults: curl -X POST {}/__sandbox/faults -d '{{\"fault\": \"status\", \"status\": 503, \"count\": 3}}'",
            sandbox.api_url
        );
        println!("Stop with Ctrl-C or SIGTERM.");
        wait_for_signal().await?;
        tracing::info!("Shutdown signal received; stopping the sandbox.");
        sandbox.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn run_demo(args: &DemoArgs, settings_path: Option<&std::path::Path>) -> Result<ExitCode> {
    use autoscalebot::demo;
    // Bad settings stop the demo before anything starts, as they stop the worker.
    let wiring = demo::Wiring {
        platform: args.platform,
        ..demo::Wiring::placeholder()
    };
    if let Err(error) = demo::load_settings(settings_path, &wiring) {
        eprintln!("autoscalebot: {error}");
        return Ok(ExitCode::from(2));
    }
    let options = demo::DemoOptions {
        duration: args.duration,
        settings: settings_path.map(std::path::Path::to_path_buf),
        platform: args.platform,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let shutdown = CancellationToken::new();
    runtime.spawn({
        let shutdown = shutdown.clone();
        async move {
            if wait_for_signal().await.is_ok() {
                shutdown.cancel();
            }
        }
    });
    let mut out = std::io::stdout();
    runtime.block_on(demo::run(options, &mut out, shutdown))?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr in the chosen format (already resolved from `auto`), filtered by `RUST_LOG`
/// (default `default_level`).
fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let layer = match format {
        LogFormat::Logfmt => tracing_logfmt::builder()
            .layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text | LogFormat::Auto => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .init();
}
