//! The downtime sources in the shell: the downtime file and the heartbeat's downtime header,
//! read into the worker's [`Calendar`](crate::downtime::Calendar) before each decision, and
//! logged once when something new or wrong is found. The file is watched ([`FileWatch`]) and
//! read off the runtime only after a change: no file is opened on the runtime's threads.
//!
//! It only feeds the calendar: which window is in force, and what that means for scaling, is
//! the loop's and the engine's business. Parsing the entries belongs to [`crate::downtime`].

use super::Worker;
use crate::downtime::Learned;
use autoscalebot_backends::file_watch::FileWatch;
use autoscalebot_backends::probe::ProbeOutcome;
use std::io::Read;
use std::path::Path;

impl Worker {
    /// Logs, once at start, where downtime can come from and what is already known.
    pub(super) fn log_downtime_sources(&self) {
        let app = &self.settings.app_name;
        if self.settings.downtime.disable {
            tracing::info!(%app, "Planned downtime is disabled (downtime_disable).");
            return;
        }
        for problem in &self.settings.downtime.warnings {
            tracing::warn!(%app, source = %problem.source, entry = ?problem.text, error = %problem.error, "Ignoring a bad downtime entry.");
        }
        for window in self.calendar.windows() {
            tracing::info!(%app, window = %window.local_span(self.settings.thresholds.time_zone), source = %window.source, "Planned downtime window.");
        }
        if let Some(path) = &self.settings.downtime.file {
            tracing::info!(%app, file = %path.display(), present = path.exists(), "Watching the downtime file.");
        }
    }

    /// Reads the downtime header of this heartbeat (when one was sent) and the downtime file
    /// into the calendar. The file is read (off the runtime) only when the watch says it may
    /// have changed since the last read. A bad entry or an unreadable file is logged once and
    /// ignored; the worker goes on.
    pub(super) async fn refresh_downtime(&mut self, outcome: Option<&ProbeOutcome>) {
        if self.settings.downtime.disable {
            return;
        }
        if let (
            Some(name),
            Some(ProbeOutcome::Response {
                downtime_header, ..
            }),
        ) = (&self.settings.downtime.header, outcome)
        {
            let learned = self.calendar.header_seen(name, downtime_header.as_deref());
            self.log_learned(learned);
        }
        let Some(path) = &self.settings.downtime.file else {
            return;
        };
        let watch = self.file_watch.get_or_insert_with(FileWatch::new).clone();
        let mut watched = match self.downtime_watched.take() {
            Some(watched) => watched,
            None => watch.watch(path).await,
        };
        if !watch.may_have_changed(&watched) {
            self.downtime_watched = Some(watched);
            return;
        }
        let read = watch.read(&mut watched, read_downtime_file).await;
        self.downtime_watched = Some(watched);
        let path = self.settings.downtime.file.clone().unwrap_or_default();
        match read {
            Ok(text) => {
                self.downtime_file_error = None;
                let learned = self.calendar.file_read(&path, text.as_deref());
                self.log_learned(learned);
            }
            Err(error) => {
                // The windows read before stay in force.
                if self.downtime_file_error.as_ref() != Some(&error) {
                    tracing::warn!(app = %self.settings.app_name, file = %path.display(), %error, "Could not read the downtime file; keeping the windows read before.");
                    self.downtime_file_error = Some(error);
                }
            }
        }
    }

    fn log_learned(&self, learned: Learned) {
        let app = &self.settings.app_name;
        for problem in learned.new_problems {
            tracing::warn!(%app, source = %problem.source, entry = ?problem.text, error = %problem.error, "Ignoring a bad downtime entry.");
        }
        for window in learned.new_windows {
            tracing::info!(%app, window = %window.local_span(self.settings.thresholds.time_zone), source = %window.source, "Planned downtime window found.");
        }
    }
}

/// The most of a downtime file that is read: a few lines are expected, so a huge file is a
/// mistake (a log pointed at by accident) and is refused rather than parsed.
const DOWNTIME_FILE_MAX_BYTES: u64 = 64 * 1024;

/// The downtime file's text, `None` when it does not exist. Blocking: the loop calls it on
/// tokio's blocking pool (see [`FileWatch::read`]), and only after the file may have changed.
pub fn read_downtime_file(path: &Path) -> Result<Option<String>, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(DOWNTIME_FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > DOWNTIME_FILE_MAX_BYTES {
        return Err(format!(
            "larger than {} KiB; expected a few lines",
            DOWNTIME_FILE_MAX_BYTES / 1024
        ));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "not UTF-8 text".to_string())
}
