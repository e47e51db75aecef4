//! A local target process, started by the activator and stopped with a chosen signal.
//!
//! With socket handoff it gets the listening socket as fd 3 and the systemd variables
//! `LISTEN_FDS=1`, `LISTEN_PID` (its own pid: it is exec'd by `sh -c 'export LISTEN_PID=$$;
//! exec …'`, so the shell's pid becomes the app's) and `LISTEN_FDNAMES`. It runs in its own
//! process group, so stopping it also ends whatever it started: no process outlives a stop.

use std::io;
use std::os::fd::RawFd;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

/// The fd systemd's protocol starts at (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// For callers without `libc`: the signal that cannot be caught.
pub const SIGKILL: i32 = libc::SIGKILL;

/// A running target process.
#[derive(Debug)]
pub struct LocalProcess {
    child: tokio::process::Child,
    pid: u32,
}

/// Parses a signal name (`SIGTERM`, `TERM`, `sigint`) or number (`15`).
pub fn parse_signal(text: &str) -> Option<(i32, String)> {
    let text = text.trim();
    if let Ok(number) = text.parse::<i32>() {
        return (1..=64)
            .contains(&number)
            .then(|| (number, number.to_string()));
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    };
    Some((number, format!("SIG{name}")))
}

impl LocalProcess {
    /// Starts `COMMAND` (a command line that `sh` execs, so the app itself gets the signals
    /// and the pid) in a new process group. With `socket`, that fd becomes the
    /// child's fd 3 and the systemd variables are set, naming it `fd_name`.
    pub fn spawn(command: &str, socket: Option<RawFd>, fd_name: &str) -> io::Result<LocalProcess> {
        let mut builder = tokio::process::Command::new("sh");
        builder
            .arg("-c")
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        match socket {
            Some(fd) => {
                builder
                    .arg(format!("export LISTEN_PID=$$; exec {command}"))
                    .env("LISTEN_FDS", "1")
                    .env("LISTEN_FDNAMES", fd_name);
                // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) on
                // fds this process owns.
                unsafe {
                    builder.pre_exec(move || {
                        if fd == LISTEN_FDS_START {
                            // dup2 onto itself would keep close-on-exec set: clear it instead.
                            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                                return Err(io::Error::last_os_error());
                            }
                        } else if libc::dup2(fd, LISTEN_FDS_START) < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            None => {
                builder
                    .arg(format!("exec {command}"))
                    .env_remove("LISTEN_FDS")
                    .env_remove("LISTEN_PID")
                    .env_remove("LISTEN_FDNAMES");
            }
        }
        let child = builder.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the target exited before its pid was read"))?;
        Ok(LocalProcess { child, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` once the process has exited.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit.
    pub async fn exited(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Sends `signal` to the process, waits up to `grace` for it to exit, then kills its whole
    /// group with SIGKILL (also sweeping up anything it left behind). Returns how it ended.
    pub async fn stop(mut self, signal: i32, grace: Duration) -> io::Result<ExitStatus> {
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, signal);
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                tracing::warn!(
                    pid = self.pid,
                    ?grace,
                    "The target did not stop in time; killing it."
                );
                self.kill_group();
                self.child.wait().await?
            }
        };
        self.kill_group();
        Ok(status)
    }

    fn kill_group(&self) {
        // SAFETY: kill(2) on our child's process group; ESRCH (already empty) is fine.
        unsafe {
            libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL);
        }
    }
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        // A target must never outlive the activator that started it.
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill_group();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(
            parse_signal("SIGTERM"),
            Some((libc::SIGTERM, "SIGTERM".into()))
        );
        assert_eq!(parse_signal("int"), Some((libc::SIGINT, "SIGINT".into())));
        assert_eq!(parse_signal("10"), Some((10, "10".into())));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("0"), None);
    }

    #[tokio::test]
    async fn stop_sends_the_signal_and_reports_how_it_ended() {
        let process = LocalProcess::spawn("sleep 60", None, "unused").unwrap();
        let status = process
            .stop(libc::SIGUSR1, Duration::from_secs(10))
            .await
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGUSR1));
    }

    #[tokio::test]
    async fn a_process_that_ignores_the_signal_is_killed_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let command = format!(
            "sh -c \"trap '' TERM; touch {}; sleep 60 & wait\"",
            ready.display()
        );
        let process = LocalProcess::spawn(&command, None, "unused").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the trap was never set"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = process
            .stop(libc::SIGTERM, Duration::from_millis(300))
            .await
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
