//! Heroku's own CLI (the npm package `heroku`, pinned) against the sandbox, as a Heroku team
//! would point it there: `HEROKU_HOST=http://127.0.0.1:PORT` (the CLI takes a full http URL
//! for a loopback host) and `HEROKU_API_KEY`. It scales by `ps:scale web=3` and `web+1`, lists
//! with `ps`, resizes with `ps:type`, reads `apps:info`, adds, lists and removes `drains`,
//! and is refused what Heroku refuses; a running worker sees the CLI's scale on its next read.
//!
//! The CLI is installed once with npm into a folder under `target/` and reused. Without npm
//! the test fails and says how to get it: a CLI never run must not pass.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The CLI's version the test installs; its source (heroku/cli) says which endpoints each
/// command calls.
const HEROKU_CLI_VERSION: &str = "11.10.0";
/// An npm install takes about a minute; a slow mirror more.
const INSTALL_DEADLINE: Duration = Duration::from_secs(600);

/// Runs `command` with a deadline; its status, stdout and stderr.
fn run(mut command: Command, deadline: Duration) -> (bool, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {command:?}: {error}"));
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The installed CLI's entry point, installing it first if this target folder has none.
fn heroku_cli() -> PathBuf {
    let cache =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("heroku-cli-{HEROKU_CLI_VERSION}"));
    let bin = cache.join("node_modules/.bin/heroku");
    let done = cache.join("installed");
    if done.is_file() && bin.exists() {
        return bin;
    }
    let npm_missing = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |status| !status.success());
    assert!(
        !npm_missing,
        "npm is not installed, so Heroku's CLI cannot be installed and run against the \
         sandbox. Install Node.js and npm (Debian: apt-get install -y nodejs npm; the CLI \
         needs Node 20 or later), then run the test again."
    );
    // Into a fresh folder, renamed into place once complete, so a half install is never used.
    let partial = cache.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).unwrap();
    let mut install = Command::new("npm");
    install
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--prefix",
        ])
        .arg(&partial)
        .arg(format!("heroku@{HEROKU_CLI_VERSION}"));
    let (ok, stdout, stderr) = run(install, INSTALL_DEADLINE);
    assert!(
        ok,
        "npm install heroku@{HEROKU_CLI_VERSION} failed (the npm registry must be reachable):\n\
         {stdout}\n{stderr}"
    );
    std::fs::write(partial.join("installed"), HEROKU_CLI_VERSION).unwrap();
    let _ = std::fs::remove_dir_all(&cache);
    if std::fs::rename(&partial, &cache).is_err() {
        // Another run installed it meanwhile.
        let _ = std::fs::remove_dir_all(&partial);
    }
    assert!(
        bin.exists(),
        "npm installed no heroku binary at {}",
        bin.display()
    );
    bin
}

/// The CLI pointed at one sandbox, with a home of its own: nothing from the machine's
/// `~/.netrc`, git config or `HEROKU_*` variables, and nothing sent anywhere but the sandbox.
struct Cli {
    bin: PathBuf,
    home: tempfile::TempDir,
    api_url: String,
    key: String,
}

impl Cli {
    fn new(api_url: &str, key: &str) -> Cli {
        Cli {
            bin: heroku_cli(),
            home: tempfile::tempdir().unwrap(),
            api_url: api_url.to_string(),
            key: key.to_string(),
        }
    }

    /// `heroku ARGS… -a sandbox-app`: success, stdout, stderr.
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let home = self.home.path();
        let mut command = Command::new(&self.bin);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("HEROKU_HOST", &self.api_url)
            .env("HEROKU_API_KEY", &self.key)
            // The delinquency check goes to "particleboard", a host of its own: here too.
            .env("HEROKU_PARTICLEBOARD_URL", &self.api_url)
            .env("DISABLE_TELEMETRY", "true")
            .env("HEROKU_SKIP_NEW_VERSION_CHECK", "true")
            .env("HEROKU_DISABLE_AUTOUPDATE", "1")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "120")
            .args(args)
            .args(["--app", "sandbox-app"]);
        run(command, DEADLINE)
    }

    /// Runs and expects success; the whole output, stdout then stderr.
    fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "heroku {args:?} failed:\n{stdout}\n{stderr}");
        format!("{stdout}{stderr}")
    }

    /// Runs and expects a refusal; the whole output.
    fn refused(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(!ok, "heroku {args:?} succeeded:\n{stdout}\n{stderr}");
        format!("{stdout}{stderr}")
    }
}

async fn formation(sandbox: &SandboxProcess) -> Value {
    reqwest::Client::new()
        .get(format!(
            "{}/apps/sandbox-app/formation/web",
            sandbox.api_url
        ))
        .header("accept", "application/vnd.heroku+json; version=3")
        .bearer_auth(SANDBOX_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The dynos the worker last read, from its `/metrics`.
async fn worker_dynos(base: &str) -> Option<f64> {
    let (status, text) = get_text(base, "/metrics").await;
    if status != 200 {
        return None;
    }
    metric_value(&parse_metrics(&text), "autoscalebot_dynos", &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn herokus_cli_drives_the_sandbox_and_the_worker_sees_its_scale() {
    let sandbox = SandboxProcess::start(&["--dynos", "1", "--max-quantity", "6"]).await;
    // Every heartbeat in band, so the worker itself never scales; it only reads.
    let settings = sandbox_settings(
        &sandbox,
        "http_port = 0\nmin_response_time_in_ms = 1\nmax_response_time_in_ms = 5000\n\
         min_dynos = 1\nmax_dynos = 6",
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    let base = bot.http_url().await;
    wait_until_async("the worker reads 1 dyno", || async {
        worker_dynos(&base).await == Some(1.0)
    })
    .await;
    let cli = tokio::task::spawn_blocking({
        let api_url = sandbox.api_url.clone();
        move || Cli::new(&api_url, SANDBOX_KEY)
    })
    .await
    .unwrap();
    // The CLI blocks; each call runs off the test's runtime.
    let heroku = |args: &'static [&'static str]| {
        let cli = &cli;
        tokio::task::block_in_place(move || cli.ok(args))
    };

    let out = heroku(&["ps:scale", "web=3"]);
    assert!(out.contains("now running web at 3:Standard-1X"), "{out}");
    assert_eq!(sandbox.quantity().await, 3);
    wait_until_async("the worker reads the CLI's 3", || async {
        worker_dynos(&base).await == Some(3.0)
    })
    .await;

    let out = heroku(&["ps:scale", "web+1"]);
    assert!(out.contains("now running web at 4:Standard-1X"), "{out}");
    wait_until_async("the worker reads the CLI's 4", || async {
        worker_dynos(&base).await == Some(4.0)
    })
    .await;
    wait_until_async("four dynos run", || async {
        sandbox.state().await["running"] == 4
    })
    .await;

    let out = heroku(&["ps"]);
    assert!(out.contains("=== web (Standard-1X): bin/web (4)"), "{out}");
    for dyno in ["web.1: up", "web.2: up", "web.3: up", "web.4: up"] {
        assert!(out.contains(dyno), "{dyno} in {out}");
    }

    let out = heroku(&["ps:type"]);
    assert!(
        out.lines().any(|line| line.contains("web")
            && line.contains("Standard-1X")
            && line.contains(" 4 ")),
        "{out}"
    );
    let out = heroku(&["ps:type", "standard-2x"]);
    assert!(out.contains("Standard-2X"), "{out}");
    let now = formation(&sandbox).await;
    assert_eq!(now["size"], "Standard-2X");
    assert_eq!(now["dyno_size"]["name"], "Standard-2X");
    assert_eq!(now["quantity"], 4, "a resize keeps the quantity");
    assert_eq!(heroku(&["ps:scale"]).trim(), "web=4:Standard-2X");

    let out = heroku(&["apps:info"]);
    assert!(out.contains("=== sandbox-app"), "{out}");
    assert!(
        out.contains(&format!("{}/", sandbox.app_url)),
        "web URL in {out}"
    );
    assert!(out.contains("web: 4"), "{out}");

    let drain = "https://drain:secret@autoscaler.example/logs/sandbox-app";
    let out = tokio::task::block_in_place(|| cli.ok(&["drains:add", drain]));
    assert!(out.contains("Successfully added drain"), "{out}");
    let out = heroku(&["drains"]);
    assert!(out.contains(drain) && out.contains("(d."), "{out}");
    tokio::task::block_in_place(|| cli.ok(&["drains:remove", drain]));
    assert!(!heroku(&["drains"]).contains(drain));

    // What Heroku refuses, refused with its error id; nothing changes.
    let refusals: [(&[&str], &str); 4] = [
        (&["ps:scale", "web-9"], "Cannot remove 9 dynos from 4"),
        (&["ps:scale", "web=7"], "Cannot update to more than 6"),
        (&["ps:type", "eco"], "Cannot update to more than 1 Eco"),
        (&["ps:type", "huge-9x"], "No such dyno size"),
    ];
    for (args, why) in refusals {
        let out = tokio::task::block_in_place(|| cli.refused(args));
        assert!(
            out.contains(why) && out.contains("invalid_params"),
            "{args:?}: {out}"
        );
    }
    let wrong_key =
        tokio::task::block_in_place(|| Cli::new(&sandbox.api_url, "not-the-key").refused(&["ps"]));
    assert!(
        wrong_key.contains("HEROKU_API_KEY is invalid"),
        "{wrong_key}"
    );
    assert_eq!(formation(&sandbox).await["quantity"], 4);
    assert_eq!(worker_dynos(&base).await, Some(4.0));

    // No call of the CLI hit an endpoint the sandbox lacks (the pipeline coupling's 404 is
    // Heroku's own answer for an app in no pipeline), and none failed on the server's side.
    for call in sandbox.calls().await {
        let status = call["status"].as_u64().unwrap();
        let path = call["path"].as_str().unwrap();
        assert!(status < 500, "{call}");
        if status == 404 {
            assert!(path.ends_with("/pipeline-couplings"), "{call}");
        }
    }
    assert!(bot.terminate().await.success());
}
