//! The `autoscalebot` command: parse arguments, set up logging, load settings, run.
//!
//! Errors reach the user here and only here: settings problems exit 2, everything else 1.

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
    /// Listen in front of the app ([activator] table): start it on the first connection, hold
    /// the connections until it accepts, forward them, and stop it after idle_after.
    Activate,
}

/// How long running heartbeats and notifications get to finish after SIGTERM; Heroku sends
/// SIGKILL 30 s after SIGTERM.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("autoscalebot: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if matches!(cli.command, Some(Command::Activate)) {
        return activate(&cli);
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
        Command::Run => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(run_worker(settings, cli.dry_run))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Activate => unreachable!("handled above"),
    }
}

/// `autoscalebot activate`: settings and the listening socket are checked before anything
/// runs; either being wrong is exit 2.
fn activate(cli: &Cli) -> Result<ExitCode> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let settings =
        match settings::load_for(cli.settings.as_deref(), &env, settings::Purpose::Activator) {
            Ok(settings) => settings,
            Err(error) => {
                eprintln!("autoscalebot: {error}");
                return Ok(ExitCode::from(2));
            }
        };
    let app = settings.apps.into_iter().next().expect("one app");
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

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
