//! The `autoscalebot` command: parse arguments, set up logging, load settings, run.
//!
//! Errors reach the user here and only here: settings problems exit 2, everything else 1.
//! `sandbox` and `demo` need no worker settings: they run the local stand-in platform.

use anyhow::Result;
use autoscalebot::settings::{self, Settings, SettingsError};
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Keeps a web app fast at busy times and cheap at quiet ones: times a heartbeat URL and scales
/// the app through the Heroku Platform API.
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
    Check,
    /// Run a local stand-in for Heroku on loopback: the Platform API's formation endpoints and
    /// an app of real local dynos behind one router port. Runs until SIGTERM or SIGINT.
    Sandbox(SandboxArgs),
    /// Show the whole loop with no account and no network: a sandbox platform, a traffic surge
    /// and the worker in one process, with a live timeline and a summary.
    Demo(DemoArgs),
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
    /// Milliseconds one dyno takes to serve one request.
    #[arg(long, default_value_t = 100)]
    service_time_ms: u64,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// How long the demo runs, e.g. "75s" or "2m"; the traffic profile stretches to fit.
    #[arg(long, default_value = "75s", value_parser = parse_duration_arg)]
    duration: Duration,
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
    // The demo's story is its timeline on stdout; its logs show warnings only, unless RUST_LOG.
    let default_level = match &cli.command {
        Some(Command::Demo(_)) => "warn",
        _ => "info",
    };
    init_logging(default_level);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("autoscalebot: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(mut cli: Cli) -> Result<ExitCode> {
    match cli.command.take() {
        Some(Command::Sandbox(args)) => return run_sandbox(args),
        Some(Command::Demo(args)) => return run_demo(args, cli.settings.as_deref()),
        command => cli.command = command,
    }
    let settings = match load_settings(&cli) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("autoscalebot: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            print_check(&settings);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(_) | Command::Demo(_) => unreachable!("handled above"),
        Command::Run => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(run_worker(settings, cli.dry_run))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_settings(cli: &Cli) -> Result<Settings, SettingsError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    settings::load(cli.settings.as_deref(), &env)
}

fn print_check(settings: &Settings) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut write = || -> std::io::Result<()> {
        for app in &settings.apps {
            writeln!(out, "# app {} ({})", app.heroku_app_name, app.process_type)?;
            for (key, value) in app.effective() {
                writeln!(out, "{key} = {value}")?;
            }
        }
        writeln!(out, "# settings are valid")
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = write();
}

async fn run_worker(settings: Settings, dry_run: bool) -> Result<()> {
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(autoscalebot::run(settings, dry_run, shutdown.clone()));
    wait_for_signal().await?;
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

fn run_sandbox(args: SandboxArgs) -> Result<ExitCode> {
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
        app: args.app,
        api_key: autoscalebot_backends::Secret::new(args.api_key),
        dynos: args.dynos,
        max_quantity: args.max_quantity,
        dyno_concurrency: args.dyno_concurrency,
        service_time: Duration::from_millis(args.service_time_ms),
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

fn run_demo(args: DemoArgs, settings_path: Option<&std::path::Path>) -> Result<ExitCode> {
    use autoscalebot::demo;
    // Bad settings stop the demo before anything starts, as they stop the worker.
    if let Err(error) = demo::load_settings(settings_path, &demo::Wiring::placeholder()) {
        eprintln!("autoscalebot: {error}");
        return Ok(ExitCode::from(2));
    }
    let options = demo::DemoOptions {
        duration: args.duration,
        settings: settings_path.map(std::path::Path::to_path_buf),
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

fn init_logging(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
