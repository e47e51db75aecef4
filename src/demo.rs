//! `autoscalebot demo`: the whole loop on one machine, with no account and no network. It
//! starts the sandbox platform, a load generator with a built-in traffic profile (quiet, a
//! surge, quiet again) and the real [`Worker`] with a built-in settings profile, all in this
//! process; prints a live timeline (time, requests per second, heartbeat latency, dynos,
//! decisions) from the worker's [`Beat`]s; and ends by itself with a summary.
//!
//! This module only wires and reports. The worker decides exactly as it does in production;
//! the sandbox is the platform; nothing here touches the engine.

pub mod load;

use crate::settings::{self, AppSettings, SettingsError};
use crate::telemetry::Beat;
use crate::Worker;
use autoscalebot_backends::Secret;
use autoscalebot_sandbox::{Sandbox, SandboxConfig};
use load::{phase_at, Phase, Tally};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The worker's settings profile, built into the binary.
pub const BUILTIN_SETTINGS: &str = include_str!("demo/settings.toml");
pub const DEFAULT_DURATION: Duration = Duration::from_secs(75);
/// Requests a second in the quiet phases and in the surge.
pub const QUIET_REQUESTS_PER_SECOND: f64 = 12.0;
pub const SURGE_REQUESTS_PER_SECOND: f64 = 100.0;
/// Each sandbox dyno serves this many requests at a time, each taking `SERVICE_TIME`.
pub const DYNO_CONCURRENCY: u32 = 2;
pub const SERVICE_TIME: Duration = Duration::from_millis(50);
/// The phases of the profile, by index.
const SURGE: usize = 1;
const AFTER: usize = 2;

pub struct DemoOptions {
    /// The profile stretches to fit: a quarter quiet, a third surge, the rest quiet.
    pub duration: Duration,
    /// Worker settings to try instead of the built-in profile.
    pub settings: Option<PathBuf>,
    /// Whose API the worker scales the sandbox through.
    pub platform: DemoPlatform,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: DEFAULT_DURATION,
            settings: None,
            platform: DemoPlatform::Heroku,
        }
    }
}

/// The platform the demo's worker scales on: the sandbox answers each one's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DemoPlatform {
    /// Heroku's Platform API (the formation).
    #[default]
    Heroku,
    /// Fly.io's Machines API (starting and stopping Machines).
    Fly,
    /// Render's API (a service's instance count).
    Render,
}

impl DemoPlatform {
    /// Its `scaler` name.
    pub fn name(self) -> &'static str {
        match self {
            DemoPlatform::Heroku => "heroku",
            DemoPlatform::Fly => "fly",
            DemoPlatform::Render => "render",
        }
    }
}

/// Where the worker finds the sandbox: these settings always point at it, whatever the
/// settings file says.
pub struct Wiring {
    pub platform: DemoPlatform,
    pub app: String,
    pub api_key: Secret,
    pub api_url: String,
    pub app_url: String,
    pub process_type: String,
    /// The app's id as a Render service.
    pub service_id: String,
}

impl Wiring {
    /// Stand-in values for checking a settings file before the sandbox starts.
    pub fn placeholder() -> Self {
        Wiring {
            platform: DemoPlatform::Heroku,
            app: "demo-app".into(),
            api_key: Secret::new("placeholder"),
            api_url: "http://127.0.0.1:1".into(),
            app_url: "http://127.0.0.1:2".into(),
            process_type: "web".into(),
            service_id: "srv-placeholder".into(),
        }
    }

    /// As `AUTOSCALE_*` variables, which win over the file. The real environment is left out,
    /// so that a shell set up for the real worker cannot change the demo.
    fn overrides(&self) -> HashMap<String, String> {
        let key = self.api_key.expose().to_string();
        let mut overrides = HashMap::from([
            ("AUTOSCALE_SCALER".into(), self.platform.name().to_string()),
            ("AUTOSCALE_HEROKU_APP_NAME".into(), self.app.clone()),
            ("AUTOSCALE_APP_URL".into(), self.app_url.clone()),
            ("AUTOSCALE_PROCESS_TYPE".into(), self.process_type.clone()),
        ]);
        let platform: [(&str, String); 3] = match self.platform {
            DemoPlatform::Heroku => [
                ("AUTOSCALE_HEROKU_API_KEY", key),
                ("AUTOSCALE_HEROKU_API_URL", self.api_url.clone()),
                ("AUTOSCALE_HEROKU_APP_NAME", self.app.clone()),
            ],
            DemoPlatform::Fly => [
                ("AUTOSCALE_FLY_API_TOKEN", key),
                ("AUTOSCALE_FLY_API_URL", self.api_url.clone()),
                ("AUTOSCALE_FLY_PROCESS_GROUP", self.process_type.clone()),
            ],
            DemoPlatform::Render => [
                ("AUTOSCALE_RENDER_API_KEY", key),
                ("AUTOSCALE_RENDER_API_URL", self.api_url.clone()),
                ("AUTOSCALE_RENDER_SERVICE_ID", self.service_id.clone()),
            ],
        };
        overrides.extend(platform.map(|(name, value)| (name.to_string(), value)));
        overrides
    }
}

/// The worker's settings for the demo: the file at `path`, or the built-in profile.
pub fn load_settings(path: Option<&Path>, wiring: &Wiring) -> Result<AppSettings, SettingsError> {
    let env = wiring.overrides();
    let mut settings = match path {
        Some(path) => settings::load(Some(path), &env)?,
        None => settings::from_toml_str(BUILTIN_SETTINGS, &env)?,
    };
    Ok(settings.apps.remove(0))
}

/// Quiet, a surge, quiet again, stretched to `duration`.
pub fn profile(duration: Duration) -> Vec<Phase> {
    let before = duration.mul_f64(0.25);
    let surge = duration.mul_f64(0.35);
    vec![
        Phase {
            name: "quiet",
            duration: before,
            requests_per_second: QUIET_REQUESTS_PER_SECOND,
        },
        Phase {
            name: "surge",
            duration: surge,
            requests_per_second: SURGE_REQUESTS_PER_SECOND,
        },
        Phase {
            name: "quiet",
            duration: duration.saturating_sub(before + surge),
            requests_per_second: QUIET_REQUESTS_PER_SECOND,
        },
    ]
}

/// One scale the worker made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub at: Duration,
    pub phase: usize,
    pub from: u32,
    pub to: u32,
}

/// What the demo showed.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub scales: Vec<Scale>,
    pub dynos_at_start: u32,
    pub dynos_at_most: u32,
    pub dynos_at_end: u32,
    /// Running dynos, sampled each second, summed.
    pub dyno_seconds: u64,
    /// Heartbeat times in ms, by phase.
    pub heartbeats_ms: Vec<Vec<u64>>,
    pub requests: Tally,
    pub api_errors: u32,
}

impl Summary {
    pub fn scale_ups_during_surge(&self) -> usize {
        self.scales
            .iter()
            .filter(|scale| scale.phase == SURGE && scale.to > scale.from)
            .count()
    }

    pub fn scale_downs_after_surge(&self) -> usize {
        self.scales
            .iter()
            .filter(|scale| scale.phase == AFTER && scale.to < scale.from)
            .count()
    }
}

fn median(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

fn minutes_seconds(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// Runs the demo for `options.duration` (or until `shutdown`), writing the timeline and the
/// summary to `out`.
pub async fn run(
    options: DemoOptions,
    out: &mut dyn Write,
    shutdown: CancellationToken,
) -> anyhow::Result<Summary> {
    let phases = profile(options.duration);
    // A fresh random key: the sandbox accepts only it, and it is never printed.
    let api_key = Secret::new(format!(
        "demo-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    ));
    let sandbox = Sandbox::start(SandboxConfig {
        api_port: 0,
        app_port: 0,
        app: "demo-app".into(),
        api_key: api_key.clone(),
        dynos: 1,
        max_quantity: 10,
        dyno_concurrency: DYNO_CONCURRENCY,
        service_time: SERVICE_TIME,
        ..SandboxConfig::default()
    })
    .await?;
    let wiring = Wiring {
        platform: options.platform,
        app: sandbox.app().to_string(),
        api_key,
        api_url: sandbox.api_url.clone(),
        app_url: sandbox.app_url.clone(),
        process_type: sandbox.process_type().to_string(),
        service_id: sandbox.render_service_id().to_string(),
    };
    let settings = load_settings(options.settings.as_deref(), &wiring)?;
    write_header(out, &options, &phases, &settings, &sandbox)?;

    let stop = shutdown.child_token();
    let (beats_tx, mut beats) = mpsc::unbounded_channel::<Beat>();
    let worker = Worker::from_settings(
        settings.clone(),
        crate::http_client(),
        false,
        None,
        crate::bot::HeartbeatConnection::Own,
        &stop,
    )
    .with_beats(beats_tx);
    let worker_task = tokio::spawn(worker.run(stop.clone()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let load_task = tokio::spawn(load::generate(
        reqwest::Client::new(),
        format!("{}/", sandbox.app_url),
        phases.clone(),
        tally.clone(),
        stop.clone(),
    ));

    let started = Instant::now();
    let end = started + options.duration;
    let mut ticker =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let mut summary = Summary {
        dynos_at_start: sandbox.running_dynos(),
        dynos_at_most: sandbox.running_dynos(),
        heartbeats_ms: vec![Vec::new(); phases.len()],
        ..Summary::default()
    };
    let mut window: Vec<Beat> = Vec::new();
    let mut last_tally = Tally::default();
    let mut window_start = started;
    let mut finished = false;
    while !finished {
        tokio::select! {
            biased;
            _ = stop.cancelled() => finished = true,
            _ = tokio::time::sleep_until(end) => finished = true,
            _ = ticker.tick() => {}
            Some(beat) = beats.recv() => {
                window.push(beat);
                continue;
            }
        }
        let now = Instant::now();
        if finished && now.duration_since(window_start) < Duration::from_millis(200) {
            break;
        }
        let phase =
            phase_at(&phases, window_start - started).map_or(phases.len() - 1, |(index, _)| index);
        let tally_now = *tally.lock().unwrap();
        let line = timeline_line(
            &mut summary,
            &phases,
            phase,
            now - started,
            std::mem::take(&mut window),
            tally_now,
            last_tally,
            now.duration_since(window_start),
            sandbox.running_dynos(),
        );
        writeln!(out, "{line}")?;
        out.flush()?;
        last_tally = tally_now;
        window_start = now;
    }

    stop.cancel();
    if tokio::time::timeout(Duration::from_secs(10), worker_task)
        .await
        .is_err()
    {
        tracing::warn!("The demo's worker did not stop in time.");
    }
    let _ = load_task.await;
    summary.dynos_at_end = sandbox.running_dynos();
    summary.requests = *tally.lock().unwrap();
    sandbox.stop().await;
    write_summary(out, &summary, started.elapsed())?;
    out.flush()?;
    Ok(summary)
}

fn write_header(
    out: &mut dyn Write,
    options: &DemoOptions,
    phases: &[Phase],
    settings: &AppSettings,
    sandbox: &Sandbox,
) -> std::io::Result<()> {
    writeln!(
        out,
        "autoscalebot demo: the worker, a sandbox {} platform and a load generator in one process, for {} s.",
        match options.platform {
            DemoPlatform::Heroku => "Heroku",
            DemoPlatform::Fly => "Fly.io",
            DemoPlatform::Render => "Render",
        },
        options.duration.as_secs()
    )?;
    let api = match options.platform {
        DemoPlatform::Heroku => "Platform API",
        DemoPlatform::Fly => "Machines API",
        DemoPlatform::Render => "Render API",
    };
    writeln!(
        out,
        "  platform: {api} at {}, app at {}; each dyno serves {} requests at a time in {} ms",
        sandbox.api_url,
        sandbox.app_url,
        DYNO_CONCURRENCY,
        SERVICE_TIME.as_millis()
    )?;
    let traffic: Vec<String> = phases
        .iter()
        .map(|phase| {
            format!(
                "{} {} req/s for {} s",
                phase.name,
                phase.requests_per_second,
                phase.duration.as_secs()
            )
        })
        .collect();
    writeln!(out, "  traffic:  {}", traffic.join(", then "))?;
    writeln!(
        out,
        "  worker:   {}: a heartbeat every {} s; {} over {} ms add {} dyno(s), {} under {} ms remove {}; {} to {} dynos",
        match &options.settings {
            Some(path) => format!("settings from {}", path.display()),
            None => "built-in settings".to_string(),
        },
        settings.heartbeat.interval.as_secs_f64(),
        settings.thresholds.number_of_fails_to_scale_up_after,
        settings.thresholds.max_response_time_ms,
        settings.thresholds.increment,
        settings.thresholds.number_of_passes_to_scale_down_after,
        settings.thresholds.min_response_time_ms,
        settings.thresholds.increment,
        settings.thresholds.min_dynos,
        settings.thresholds.max_dynos,
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "  time  phase  served/s  heartbeat median/max  dynos  decisions"
    )
}

#[allow(clippy::too_many_arguments)]
fn timeline_line(
    summary: &mut Summary,
    phases: &[Phase],
    phase: usize,
    elapsed: Duration,
    beats: Vec<Beat>,
    tally: Tally,
    last_tally: Tally,
    window: Duration,
    dynos: u32,
) -> String {
    let answered = (tally.served + tally.failed) - (last_tally.served + last_tally.failed);
    let per_second = answered as f64 / window.as_secs_f64().max(0.001);
    let times: Vec<u64> = beats
        .iter()
        .filter_map(|beat| beat.heartbeat.response_time_ms)
        .collect();
    summary.heartbeats_ms[phase].extend(&times);
    let heartbeat = match (median(&times), times.iter().max()) {
        (Some(median), Some(max)) => format!("{median:>6} / {max:>5} ms"),
        _ if beats.is_empty() => "         (waiting)".to_string(),
        _ => "          (failed)".to_string(),
    };
    summary.dynos_at_most = summary.dynos_at_most.max(dynos);
    summary.dyno_seconds += dynos as u64;
    let mut decisions = Vec::new();
    for beat in &beats {
        if let (Some(to), Some(scale)) = (
            beat.scaled_to,
            beat.output.as_ref().and_then(|output| output.scale),
        ) {
            let direction = if to > scale.from { "up" } else { "down" };
            decisions.push(format!(
                "scaled {direction} {} -> {to} ({})",
                scale.from,
                crate::notices::describe(&scale.reason)
            ));
            summary.scales.push(Scale {
                at: elapsed,
                phase,
                from: scale.from,
                to,
            });
        }
        if let Some(error) = &beat.error {
            summary.api_errors += 1;
            decisions.push(format!("platform: {error}"));
        }
    }
    decisions.dedup();
    let failed = tally.failed - last_tally.failed;
    let failed = if failed > 0 {
        format!(" ({failed} failed)")
    } else {
        String::new()
    };
    format!(
        "  {:>4}  {:<5}  {:>8.0}  {}  {:>8}  {}{}",
        minutes_seconds(elapsed),
        phases[phase].name,
        per_second,
        heartbeat,
        dynos,
        decisions.join("; "),
        failed,
    )
}

fn write_summary(out: &mut dyn Write, summary: &Summary, elapsed: Duration) -> std::io::Result<()> {
    let ups = summary
        .scales
        .iter()
        .filter(|scale| scale.to > scale.from)
        .count();
    let downs = summary.scales.len() - ups;
    writeln!(out)?;
    writeln!(out, "Summary after {} s:", elapsed.as_secs())?;
    writeln!(
        out,
        "  scale-ups during the surge: {}; scale-downs after it: {} ({} up and {} down in all)",
        summary.scale_ups_during_surge(),
        summary.scale_downs_after_surge(),
        ups,
        downs
    )?;
    writeln!(
        out,
        "  dynos: {} at the start, {} at most, {} at the end; {} dyno-seconds ({} at the most all along)",
        summary.dynos_at_start,
        summary.dynos_at_most,
        summary.dynos_at_end,
        summary.dyno_seconds,
        summary.dynos_at_most as u64 * elapsed.as_secs(),
    )?;
    let labels = ["before the surge", "during it", "after it"];
    let medians: Vec<String> = summary
        .heartbeats_ms
        .iter()
        .zip(labels)
        .map(|(times, label)| match (median(times), times.iter().max()) {
            (Some(median), Some(max)) => format!("{median}/{max} ms {label}"),
            _ => format!("none {label}"),
        })
        .collect();
    writeln!(out, "  heartbeat median/slowest: {}", medians.join(", "))?;
    writeln!(
        out,
        "  requests: {} served, {} failed, {} not sent (too many in flight); platform errors: {}",
        summary.requests.served,
        summary.requests.failed,
        summary.requests.skipped,
        summary.api_errors
    )?;
    if summary.scale_ups_during_surge() > 0 && summary.scale_downs_after_surge() > 0 {
        writeln!(
            out,
            "The worker added dynos when the surge made the app slow, and removed them when it was quiet again."
        )
    } else {
        writeln!(
            out,
            "The worker did not both scale up during the surge and down after it: try other settings with --settings."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's wiring on `platform`, at fixed loopback addresses.
    fn wiring(platform: DemoPlatform) -> Wiring {
        Wiring {
            platform,
            app: "demo-app".into(),
            api_key: Secret::new("k-123"),
            api_url: "http://127.0.0.1:4001".into(),
            app_url: "http://127.0.0.1:4000".into(),
            process_type: "web".into(),
            service_id: "srv-x".into(),
        }
    }

    #[test]
    fn the_built_in_settings_load_and_point_at_the_sandbox() {
        let settings = load_settings(None, &wiring(DemoPlatform::Heroku)).unwrap();
        assert_eq!(
            settings.heroku().unwrap().api_url.as_str(),
            "http://127.0.0.1:4001/"
        );
        assert_eq!(
            settings.heartbeat.url.as_str(),
            "http://127.0.0.1:4000/autoscalebot/heartbeat/"
        );
        assert_eq!(settings.heroku().unwrap().api_key.expose(), "k-123");
        assert_eq!(settings.heartbeat.interval, Duration::from_millis(250));
    }

    #[test]
    fn the_built_in_settings_point_at_the_sandbox_on_fly_and_render_too() {
        use autoscalebot_backends::scaler::Platform;
        let fly = load_settings(None, &wiring(DemoPlatform::Fly)).unwrap();
        match fly.platform() {
            Platform::Fly(fly) => {
                assert_eq!(fly.app_name, "demo-app");
                assert_eq!(fly.process_group.as_deref(), Some("web"));
                assert_eq!(fly.api_token.expose(), "k-123");
                assert_eq!(fly.api_url.as_str(), "http://127.0.0.1:4001/");
            }
            other => panic!("{other:?}"),
        }
        let render = load_settings(None, &wiring(DemoPlatform::Render)).unwrap();
        match render.platform() {
            Platform::Render(render) => {
                assert_eq!(render.service_id, "srv-x");
                assert_eq!(render.api_key.expose(), "k-123");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_profile_is_quiet_then_a_surge_then_quiet_and_fills_the_duration() {
        let phases = profile(Duration::from_secs(80));
        let rates: Vec<f64> = phases.iter().map(|p| p.requests_per_second).collect();
        assert_eq!(
            rates,
            vec![
                QUIET_REQUESTS_PER_SECOND,
                SURGE_REQUESTS_PER_SECOND,
                QUIET_REQUESTS_PER_SECOND
            ]
        );
        let total: Duration = phases.iter().map(|p| p.duration).sum();
        assert_eq!(total, Duration::from_secs(80));
        assert_eq!(phases[SURGE].duration, Duration::from_secs(28));
    }

    #[test]
    fn the_surge_needs_more_than_one_dyno_and_the_quiet_needs_no_more() {
        let per_dyno = DYNO_CONCURRENCY as f64 / SERVICE_TIME.as_secs_f64();
        assert!(SURGE_REQUESTS_PER_SECOND > 2.0 * per_dyno);
        assert!(QUIET_REQUESTS_PER_SECOND < 0.5 * per_dyno);
    }
}
