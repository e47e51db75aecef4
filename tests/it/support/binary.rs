//! The `autoscalebot` binary as a child process: a clean environment, a settings file, its
//! output captured, SIGTERM with a deadline.

use super::formation::FormationApi;
use super::heartbeat::HeartbeatServer;
use super::wait::{wait_until, DEADLINE};
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `autoscalebot` binary running as a child process, its output captured.
pub struct Bot {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// A command for the binary with a clean environment: no AUTOSCALE_* or HEROKU_API_KEY from
/// the machine running the tests.
pub fn command() -> Command {
    clean_command(env!("CARGO_BIN_EXE_autoscalebot"))
}

/// `program` (an `autoscalebot` installed elsewhere, say) with the same clean environment as
/// [`command`].
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars() {
        if name.starts_with("AUTOSCALE_") || name == "HEROKU_API_KEY" || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `command` to its end and returns its output; panics with the output when it fails.
pub fn run_ok(command: &mut Command) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?} did not start: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Writes `settings` to a temporary file and returns its directory and path.
pub fn settings_file(settings: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, settings).unwrap();
    (dir, path)
}

/// Runs the binary to its end with `settings` as its settings file, then `args`, and `env`
/// added to its clean environment; stdout and stderr captured.
pub fn run_with_settings(
    settings: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let (_dir, path) = settings_file(settings);
    command()
        .arg(format!("--settings={}", path.display()))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

pub(super) fn capture(mut source: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let sink = Arc::new(Mutex::new(String::new()));
    let writer = sink.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = source.read(&mut buffer) {
            if read == 0 {
                break;
            }
            writer
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    });
    sink
}

impl Bot {
    /// Starts `autoscalebot --settings FILE ARGS…` with `env` added.
    pub fn start(settings: &str, args: &[&str], env: &[(&str, &str)]) -> Bot {
        let (dir, path) = settings_file(settings);
        let mut command = command();
        command
            .arg(format!("--settings={}", path.display()))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the autoscalebot binary starts");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Bot {
            child,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// The folder holding the settings file (where a `downtime.txt` beside it goes).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills the worker with SIGKILL (no shutdown, no goodbye) and waits for it to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit, within the deadline.
    pub async fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.child).await
    }
}

/// Sends SIGTERM to `child` and waits for its exit, within the deadline.
pub async fn terminate(child: &mut Child) -> ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            // Let the capture threads drain the pipes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the process did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings for a worker pointed at local servers, with short intervals.
pub fn local_settings(api: &FormationApi, heartbeat: &HeartbeatServer, extra: &str) -> String {
    format!(
        r#"heroku_app_name = "test-app"
heroku_api_key = "test-key-0123456789"
heroku_api_url = "{api}"
heartbeat_url = "{heartbeat}"
heartbeat_interval_in_seconds = 0.2
{extra}
"#,
        api = api.url,
        heartbeat = heartbeat.url
    )
}

impl Bot {
    /// The base URL of the worker's HTTP server (settings with `http_port = 0`), read from its
    /// "HTTP server listening" log line.
    pub async fn http_url(&self) -> String {
        let mut url = None;
        wait_until("the HTTP server is listening", || {
            url = self.stderr().lines().find_map(|line| {
                let at = line.find("address=")?;
                let address = line[at + "address=".len()..].split_whitespace().next()?;
                let port = address.rsplit(':').next()?.trim_matches('"');
                Some(format!("http://127.0.0.1:{port}"))
            });
            url.is_some()
        })
        .await;
        url.unwrap()
    }
}
