//! The `autoscalebot sandbox` platform as a child process, driven through its admin API, and
//! settings for a worker pointed at it.

use super::binary::{capture, command, terminate, Bot};
use super::wait::{wait_until_async, DEADLINE};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key the sandbox accepts in the sandbox tests.
pub const SANDBOX_KEY: &str = "sandbox-test-key-5f3a9c";

/// `autoscalebot sandbox` running as a child process on free ports, driven through its admin
/// API (`/__sandbox/…`) over real HTTP.
pub struct SandboxProcess {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    pub api_url: String,
    pub app_url: String,
    pub app: String,
    client: reqwest::Client,
}

impl SandboxProcess {
    /// Starts `autoscalebot sandbox --port 0 --app-port 0 --api-key SANDBOX_KEY ARGS…` and
    /// waits until it prints its URLs.
    pub async fn start(args: &[&str]) -> SandboxProcess {
        let mut command = command();
        command
            .args([
                "sandbox",
                "--port",
                "0",
                "--app-port",
                "0",
                "--app",
                "sandbox-app",
            ])
            .env("HEROKU_API_KEY", SANDBOX_KEY)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the autoscalebot binary starts");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        let setting = |text: &str, key: &str| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix(&format!("{key} = \"")))
                .map(|rest| rest.trim_end_matches('"').to_string())
        };
        let started = Instant::now();
        let (api_url, app_url) = loop {
            let text = stdout.lock().unwrap().clone();
            if let (Some(api), Some(app)) =
                (setting(&text, "heroku_api_url"), setting(&text, "app_url"))
            {
                break (api, app);
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the sandbox exited with {status}: {}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the sandbox printed no URLs: {text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        SandboxProcess {
            child,
            stdout,
            stderr,
            api_url,
            app_url,
            app: "sandbox-app".into(),
            client: reqwest::Client::new(),
        }
    }

    pub fn output(&self) -> String {
        format!(
            "{}{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    pub async fn state(&self) -> serde_json::Value {
        self.client
            .get(format!("{}/__sandbox/state", self.api_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn quantity(&self) -> u32 {
        self.state().await["quantity"].as_u64().unwrap() as u32
    }

    /// Requests the dynos have served, heartbeats included.
    pub async fn served(&self) -> u64 {
        self.state().await["dynos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|dyno| dyno["served"].as_u64().unwrap())
            .sum()
    }

    /// Every API call the sandbox recorded, oldest first.
    pub async fn calls(&self) -> Vec<serde_json::Value> {
        self.client
            .get(format!("{}/__sandbox/calls", self.api_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The quantities of the PATCHes the sandbox accepted, in order.
    pub async fn accepted_patches(&self) -> Vec<u32> {
        self.calls()
            .await
            .iter()
            .filter(|call| call["method"] == "PATCH" && call["status"] == 200)
            .map(|call| {
                let body: serde_json::Value =
                    serde_json::from_str(call["request_body"].as_str().unwrap()).unwrap();
                body["quantity"].as_u64().unwrap() as u32
            })
            .collect()
    }

    /// Every quantity any PATCH asked for, accepted or not.
    pub async fn requested_quantities(&self) -> Vec<u32> {
        self.calls()
            .await
            .iter()
            .filter(|call| call["method"] == "PATCH")
            .filter_map(|call| {
                let body: serde_json::Value =
                    serde_json::from_str(call["request_body"].as_str()?).ok()?;
                body["quantity"].as_u64().map(|n| n as u32)
            })
            .collect()
    }

    /// Injects a fault through `POST /__sandbox/faults`.
    pub async fn inject(&self, fault: serde_json::Value) {
        let response = self
            .client
            .post(format!("{}/__sandbox/faults", self.api_url))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{fault} was refused");
    }

    pub async fn clear_faults(&self) {
        let response = self
            .client
            .delete(format!("{}/__sandbox/faults", self.api_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }

    pub async fn set_rate_limit_remaining(&self, remaining: u32) {
        let response = self
            .client
            .put(format!("{}/__sandbox/rate-limit", self.api_url))
            .json(&serde_json::json!({ "remaining": remaining }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    pub async fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.child).await
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings for a worker pointed at a sandbox, with short intervals. The key goes in through
/// `HEROKU_API_KEY` (see [`sandbox_env`]), as it would in production.
pub fn sandbox_settings(sandbox: &SandboxProcess, extra: &str) -> String {
    format!(
        r#"heroku_app_name = "{app}"
heroku_api_url = "{api}"
app_url = "{app_url}"
heartbeat_interval_in_seconds = 0.2
{extra}
"#,
        app = sandbox.app,
        api = sandbox.api_url,
        app_url = sandbox.app_url,
    )
}

pub fn sandbox_env() -> [(&'static str, &'static str); 1] {
    [("HEROKU_API_KEY", SANDBOX_KEY)]
}

/// Starts the worker with `settings` and `env`, waits until it took the sandbox to 2 dynos and
/// five more heartbeats were served, and checks it still runs at that size; the running worker.
pub async fn worker_at_two(sandbox: &SandboxProcess, settings: &str, env: &[(&str, &str)]) -> Bot {
    let mut bot = Bot::start(settings, &[], env);
    wait_until_async("the platform reaches 2", || async {
        sandbox.quantity().await == 2
    })
    .await;
    let served = sandbox.served().await;
    wait_until_async("five more heartbeats", || async {
        sandbox.served().await >= served + 5
    })
    .await;
    assert!(bot.is_running(), "the worker died: {}", bot.stderr());
    assert_eq!(sandbox.quantity().await, 2, "still at the right size");
    bot
}
