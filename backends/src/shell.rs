//! Runs one of the user's hook commands (`scale_command`, `start_command`, …) through `sh -c`,
//! with a timeout, the exit code checked and the output logged.
//!
//! Each command gets its own process group, so a timeout kills the whole tree it started and
//! leaves no process behind. A hook that starts a server in the background (`server &`) may
//! keep our output pipes open for ever: we wait for the shell to exit, not for the pipes to
//! close. Nothing here decides when to run a hook.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// At most this much of a hook's output is kept for logs and errors.
const OUTPUT_LIMIT_BYTES: usize = 16 * 1024;
/// After the shell exits, how long a background child may keep the pipes before we stop
/// reading them.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Why a hook did not succeed. Messages name the setting, never its environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("{name} could not be started: {message}")]
    Spawn { name: String, message: String },
    #[error("{name} ran longer than {timeout:?} and was killed with its process group")]
    Timeout { name: String, timeout: Duration },
    #[error("{name} failed ({status}){}", tail(.output))]
    Failed {
        name: String,
        status: String,
        output: String,
    },
}

fn tail(output: &str) -> String {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    let last: Vec<&str> = trimmed.lines().rev().take(3).collect();
    let last: Vec<&str> = last.into_iter().rev().collect();
    format!(": {}", last.join(" | "))
}

/// What a hook printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookOutput {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `COMMAND ARGS…` through `sh -c` (so `scale_command = "./scale.sh"` runs
/// `./scale.sh 4`) with `env` added, and waits at most `timeout`. `name` is the setting the
/// command came from, for logs and errors.
pub async fn run_hook(
    name: &str,
    command: &str,
    args: &[String],
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<HookOutput, HookError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(if args.is_empty() {
            command.to_string()
        } else {
            format!("{command} \"$@\"")
        })
        .arg(name)
        .args(args)
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| HookError::Spawn {
            name: name.to_string(),
            message: error.to_string(),
        })?;
    let pid = child.id();
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => {
            kill_group(pid);
            return Err(HookError::Spawn {
                name: name.to_string(),
                message: error.to_string(),
            });
        }
        Err(_) => {
            kill_group(pid);
            // Reap the shell so it does not linger as a zombie.
            let _ = child.wait().await;
            let output = HookOutput {
                stdout: stdout.finish().await,
                stderr: stderr.finish().await,
            };
            log_output(name, &output);
            return Err(HookError::Timeout {
                name: name.to_string(),
                timeout,
            });
        }
    };
    let output = HookOutput {
        stdout: stdout.finish().await,
        stderr: stderr.finish().await,
    };
    log_output(name, &output);
    if status.success() {
        tracing::info!(hook = name, %status, "Hook succeeded.");
        Ok(output)
    } else {
        let combined = format!("{}\n{}", output.stdout, output.stderr);
        Err(HookError::Failed {
            name: name.to_string(),
            status: status.to_string(),
            output: combined,
        })
    }
}

fn log_output(name: &str, output: &HookOutput) {
    for line in output.stdout.lines().filter(|line| !line.trim().is_empty()) {
        tracing::info!(hook = name, stream = "stdout", "{line}");
    }
    for line in output.stderr.lines().filter(|line| !line.trim().is_empty()) {
        tracing::warn!(hook = name, stream = "stderr", "{line}");
    }
}

/// Sends SIGKILL to the process group `pid` leads (the hook and everything it started).
pub fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) has no memory effects; a negative pid names the process group.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
}

/// Output read in the background, so that the shell's exit, not the pipes' end, ends the wait.
struct Collector {
    text: Arc<Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn collect(source: Option<impl AsyncRead + Unpin + Send + 'static>) -> Collector {
    let text = Arc::new(Mutex::new(Vec::new()));
    let task = source.map(|mut source| {
        let sink = text.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = source.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
                let mut sink = sink.lock().expect("output lock");
                let room = OUTPUT_LIMIT_BYTES.saturating_sub(sink.len());
                sink.extend_from_slice(&buffer[..read.min(room)]);
            }
        })
    });
    Collector { text, task }
}

impl Collector {
    async fn finish(mut self) -> String {
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(OUTPUT_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
        let bytes = self.text.lock().expect("output lock").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_arguments_and_environment_and_returns_output() {
        let output = run_hook(
            "scale_command",
            "echo oops >&2; echo to via $AUTOSCALEBOT_QUANTITY",
            &["4".to_string()],
            &[("AUTOSCALEBOT_QUANTITY", "4".to_string())],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            output.stdout.trim(),
            "to via 4 4",
            "the quantity is the last argument"
        );
        assert_eq!(output.stderr.trim(), "oops");
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_an_error_naming_the_hook_and_its_output() {
        let error = run_hook(
            "start_command",
            "echo cannot start; exit 3",
            &[],
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("start_command failed"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("cannot start"), "{message}");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let command = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let error = run_hook(
            "stop_command",
            &command,
            &[],
            &[],
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, HookError::Timeout { .. }), "{error}");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep was in the hook's group: it must be gone (or a reaped zombie).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let gone = state.is_empty() || state.contains(") Z ");
            if gone {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "sleep {pid} survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_background_child_holding_the_pipes_does_not_hold_the_hook() {
        // The hook exits at once but leaves `sleep` holding its stdout: the run must end when
        // the shell does, well before the sleep or the timeout.
        let output = run_hook(
            "start_command",
            "sleep 120 & echo $!",
            &[],
            &[],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let pid: i32 = output.stdout.trim().parse().unwrap();
        // SAFETY: kill(2) on the pid of the sleep this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}
