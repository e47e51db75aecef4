//! `autoscalebot demo` as a newcomer runs it: no account, no network, no settings. It must end
//! by itself with exit code 0, and its timeline must show dynos added during the surge and
//! removed after it.

use crate::support::*;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary with `args` to its end, failing after `deadline`.
async fn run_to_the_end(args: &[&str], env: &[(&str, &str)], deadline: Duration) -> Output {
    let mut child = command()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("autoscalebot {args:?} still running after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.wait_with_output().unwrap()
}

/// The timeline's rows as (phase, whole line).
fn timeline(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let time = fields.next()?;
            let phase = fields.next()?;
            let is_time = time.split_once(':').is_some_and(|(m, s)| {
                m.parse::<u32>().is_ok() && s.len() == 2 && s.parse::<u32>().is_ok()
            });
            is_time.then(|| (phase.to_string(), line.to_string()))
        })
        .collect()
}

/// The number after `label` in the summary.
fn summary_count(stdout: &str, label: &str) -> usize {
    let rest = stdout
        .split(label)
        .nth(1)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{stdout}"));
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_scales_up_during_the_surge_and_down_after_it_and_exits_0() {
    // A real key in the environment must neither change the demo nor show anywhere.
    let output = run_to_the_end(
        &["demo"],
        &[("HEROKU_API_KEY", "real-key-must-not-show-4242")],
        Duration::from_secs(180),
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");

    let rows = timeline(&stdout);
    assert!(rows.len() >= 60, "a row a second: {stdout}");
    let first_surge = rows.iter().position(|(phase, _)| phase == "surge").unwrap();
    let last_surge = rows
        .iter()
        .rposition(|(phase, _)| phase == "surge")
        .unwrap();
    assert!(
        rows[first_surge..=last_surge]
            .iter()
            .any(|(_, line)| line.contains("scaled up")),
        "no scale-up during the surge:\n{stdout}"
    );
    assert!(
        rows[last_surge + 1..]
            .iter()
            .any(|(phase, line)| phase == "quiet" && line.contains("scaled down")),
        "no scale-down after the surge:\n{stdout}"
    );
    assert!(
        !rows[..first_surge]
            .iter()
            .any(|(_, line)| line.contains("scaled up")),
        "scaled up before the surge:\n{stdout}"
    );
    assert!(summary_count(&stdout, "scale-ups during the surge:") >= 1);
    assert!(summary_count(&stdout, "scale-downs after it:") >= 1);
    let seconds = summary_count(&stdout, "Summary after");
    assert!(seconds < 120, "the demo ran {seconds} s");
    assert!(
        !stdout.contains("real-key-must-not-show-4242")
            && !stderr.contains("real-key-must-not-show-4242")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_takes_your_settings_and_duration() {
    let (_dir, path) = settings_file(
        "heartbeat_interval_in_seconds = 0.5\nmax_response_time_in_ms = 300\nmax_dynos = 2\n",
    );
    let settings = format!("--settings={}", path.display());
    let output = run_to_the_end(
        &["demo", "--duration", "12s", &settings],
        &[],
        Duration::from_secs(60),
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("for 12 s"), "{stdout}");
    assert!(stdout.contains(&format!("settings from {}", path.display())));
    assert!(stdout.contains("a heartbeat every 0.5 s"), "{stdout}");
    assert!(stdout.contains("1 to 2 dynos"), "{stdout}");
    assert!(timeline(&stdout).len() >= 10);

    let (_dir, bad) = settings_file("max_dynoz = 5\n");
    let output = run_to_the_end(
        &["demo", &format!("--settings={}", bad.display())],
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("did you mean max_dynos"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_on_fly_and_on_render_too() {
    for (platform, name, api) in [
        ("fly", "Fly.io", "Machines API"),
        ("render", "Render", "Render API"),
    ] {
        let output = run_to_the_end(
            &["demo", "--duration", "12s", "--platform", platform],
            &[],
            Duration::from_secs(60),
        )
        .await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!("a sandbox {name} platform")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("platform: {api} at")), "{stdout}");
        assert!(
            summary_count(&stdout, "scale-ups during the surge:") >= 1,
            "{stdout}"
        );
        assert!(stdout.contains("platform errors: 0"), "{stdout}");
    }
}
