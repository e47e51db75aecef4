//! Each command needs only its own settings: seed 003's setup, a proxy in front of a start and
//! a stop hook, is configured by its `[activator]` table and the hooks alone. The built
//! binary's `check` accepts the file and `activate` runs it against a real target started and
//! stopped by real scripts; `run`, which needs a heartbeat, still refuses it, saying why.

use crate::support::*;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY: &str = "hello from the target\n";

/// A folder with start.sh and stop.sh that start and stop a Python web server on `port`,
/// writing "start N" and "stop" to `events` and the server's pid to `pid`.
struct Target {
    dir: tempfile::TempDir,
    port: u16,
}

impl Target {
    fn new() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path();
        std::fs::create_dir(path.join("www")).unwrap();
        std::fs::write(path.join("www/hello.txt"), BODY).unwrap();
        let d = path.display();
        std::fs::write(
            path.join("start.sh"),
            format!(
                "set -e\ncd {d}\necho \"start $1\" >> events\n\
                 python3 -m http.server {port} --bind 127.0.0.1 --directory www > server.log 2>&1 &\n\
                 echo $! > pid\n"
            ),
        )
        .unwrap();
        std::fs::write(
            path.join("stop.sh"),
            format!("cd {d}\necho stop >> events\nkill $(cat pid) && rm pid\n"),
        )
        .unwrap();
        Target { dir, port }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Seed 003's settings: the hooks and the `[activator]` table, nothing else.
    fn settings(&self, listen: u16) -> String {
        let d = self.path().display();
        format!(
            "scaler = \"command\"\nstart_command = \"sh {d}/start.sh\"\nstop_command = \"sh {d}/stop.sh\"\n\n\
             [activator]\nlisten = \"127.0.0.1:{listen}\"\ntarget = \"127.0.0.1:{port}\"\nidle_after = \"1s\"\n",
            port = self.port
        )
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Never leave a server behind, even when a test fails half-way.
        if let Ok(pid) = std::fs::read_to_string(self.path().join("pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn check_accepts_a_file_activate_runs_and_says_what_run_would_want() {
    let target = Target::new();
    let (_dir, path) = settings_file(&target.settings(free_port()));
    let output = command()
        .args(["check", "--settings"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for line in [
        "activator.listen = \"127.0.0.1:",
        "start_command = \"sh ",
        "min_dynos = 0",
        "max_dynos = 1",
        "# settings are valid for `autoscalebot activate`; `autoscalebot run` would refuse them",
        "#   - app_url is not set: expected your app's base URL",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("heroku_api_key"),
        "no Heroku key for a file without Heroku:\n{stdout}"
    );

    // `run` needs a heartbeat: it stops with exit 2, and never blames a default.
    let output = command().arg("--settings").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("app_url is not set"), "{stderr}");
    assert!(!stderr.contains("max_dynos"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn activate_starts_the_target_on_demand_and_stops_it_when_idle_with_the_hooks_alone() {
    let target = Target::new();
    let listen = free_port();
    let mut bot = Bot::start(&target.settings(listen), &["activate"], &[]);
    wait_until("the activator listens", || {
        bot.stderr().contains("Activator listening.")
    })
    .await;
    assert!(target.events().is_empty(), "nothing starts before a client");

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", listen))
        .await
        .unwrap();
    stream
        .write_all(b"GET /hello.txt HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer within the deadline")
        .unwrap();
    // Closed, so that nothing holds the target up.
    drop(stream);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.ends_with(BODY), "{answer}");
    assert_eq!(target.events(), ["start 1"]);

    wait_until("the target is stopped after idle_after", || {
        target.events().len() >= 2
    })
    .await;
    assert_eq!(target.events(), ["start 1", "stop"]);
    assert!(bot.terminate().await.success(), "{}", bot.stderr());
}
