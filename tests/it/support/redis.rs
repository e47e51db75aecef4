//! A throwaway `redis-server` on a free loopback port, with a password, and `redis-cli` to
//! push jobs into it; killed when dropped (or by `stop`, to play a dead queue).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    pub password: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start(password: &str) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                password,
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts: install the redis-server package, as scripts/test does");
        let server = RedisServer {
            port,
            password: password.to_string(),
            child: Some(child),
            _dir: dir,
        };
        let started = Instant::now();
        while server.cli(&["PING"]).trim() != "PONG" {
            assert!(
                started.elapsed() < super::DEADLINE,
                "redis-server did not answer"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The URL the worker reads the queue at (it holds the password).
    pub fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}/0", self.password, self.port)
    }

    /// `redis-cli ARGS…` against the server; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "--no-auth-warning",
            ])
            .args(["-a", &self.password])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Pushes `count` Sidekiq jobs enqueued at `enqueued_at` (epoch seconds) onto `list`, as
    /// Sidekiq does (LPUSH: the oldest is last).
    pub fn push_sidekiq_jobs(&self, list: &str, count: usize, enqueued_at: f64) {
        let jobs: Vec<String> = (0..count)
            .map(|n| {
                format!(
                    r#"{{"class":"HardJob","args":[{n}],"retry":true,"queue":"default","jid":"{n:024x}","created_at":{enqueued_at},"enqueued_at":{enqueued_at}}}"#
                )
            })
            .collect();
        for chunk in jobs.chunks(100) {
            let mut args = vec!["LPUSH", list];
            args.extend(chunk.iter().map(String::as_str));
            self.cli(&args);
        }
    }

    /// Kills the server: the queue source is dead.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Now as epoch seconds.
pub fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
