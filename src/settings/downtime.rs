//! The planned downtime section (seed 004): windows in the settings and `AUTOSCALE_DOWNTIME`,
//! the file and the header that announce more, the size held during a window, and the switch
//! that turns all of it off. The windows are parsed by `crate::downtime`; this module only
//! checks the section's keys, in the time zone the thresholds give it.

use super::{LoadContext, ENV_DOWNTIME};
use crate::downtime::{self, BadEntry, Source, Window};
use autoscalebot_backends::settings::{fields, rows, Check, Raw, Table};
use chrono_tz::Tz;
use config::ValueKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const DEFAULT_FILE: &str = "downtime.txt";
const DEFAULT_HEADER: &str = "X-Downtime";

/// The section as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDowntime {
    downtime: Raw,
    downtime_file: Raw,
    downtime_header: Raw,
    downtime_dynos: Raw,
    downtime_disable: Raw,
}

/// The checked downtime settings.
#[derive(Debug, Clone)]
pub struct DowntimeSettings {
    /// Windows from `downtime` in the settings and `AUTOSCALE_DOWNTIME`. Empty when
    /// `downtime_disable` is on.
    pub windows: Vec<Window>,
    /// Bad entries of `AUTOSCALE_DOWNTIME`: reported and ignored, never fatal.
    pub warnings: Vec<BadEntry>,
    /// The file of windows, re-read on every heartbeat; `None` when set to "".
    pub file: Option<PathBuf>,
    /// The heartbeat response header that announces downtime; `None` when set to "".
    pub header: Option<String>,
    /// During a window, hold the formation at this size.
    pub dynos: Option<u32>,
    /// `AUTOSCALE_DOWNTIME_DISABLE=1`: ignore every downtime source.
    pub disable: bool,
}

impl RawDowntime {
    pub(super) fn take(table: &mut Table, check: &Check) -> Self {
        check.section(table, "")
    }

    pub(super) fn keys() -> &'static [&'static str] {
        fields::<RawDowntime>()
    }

    /// `zone`: the thresholds' `time_zone`, when readable (windows are not read without it).
    pub(super) fn check(
        &self,
        check: &mut Check,
        context: &LoadContext,
        zone: Option<Tz>,
    ) -> Option<DowntimeSettings> {
        let mark = check.mark();
        let disable = self.downtime_disable.flag_or(check, false);
        let (windows, warnings) = match (disable, zone) {
            (false, Some(zone)) => self.windows(check, context, zone),
            _ => (Vec::new(), Vec::new()),
        };
        let file = match self.downtime_file.text(check) {
            Some(path) if path.trim().is_empty() => None,
            Some(path) => Some(check.beside_settings(&path)),
            None => Some(check.beside_settings(DEFAULT_FILE)),
        };
        let header_text = self.downtime_header.text_or(check, DEFAULT_HEADER);
        let header = match header_text.trim() {
            "" => None,
            name if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                Some(name.to_string())
            }
            _ => {
                self.downtime_header.bad_text(
                    check,
                    &header_text,
                    "an HTTP header name such as \"X-Downtime\", or \"\" for none",
                );
                None
            }
        };
        let dynos = self
            .downtime_dynos
            .whole(check, 0, "a whole number of dynos (0 or more)");
        (!check.failed_since(mark)).then_some(DowntimeSettings {
            windows,
            warnings,
            file,
            header,
            dynos,
            disable,
        })
    }

    /// `downtime` from the settings (a bad entry is a bad setting: exit 2, as for any other)
    /// and `AUTOSCALE_DOWNTIME` (a bad item is reported and ignored, as for the file and the
    /// header).
    fn windows(
        &self,
        check: &mut Check,
        context: &LoadContext,
        zone: Tz,
    ) -> (Vec<Window>, Vec<BadEntry>) {
        let expected = "a list of ISO 8601 intervals such as [\"2026-11-25T01:00/2026-11-25T04:00\", \"2026-11-26T01:00/PT3H\"]";
        let raw = &self.downtime;
        let items = match raw.value().map(|value| &value.kind) {
            None => Vec::new(),
            Some(ValueKind::Array(items)) => items.clone(),
            Some(ValueKind::String(_)) => raw.value().cloned().into_iter().collect(),
            Some(_) => {
                raw.bad(check, expected);
                Vec::new()
            }
        };
        let mut windows = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let entry = Raw::new(raw.key(), Some(item.clone()));
            let ValueKind::String(text) = &item.kind else {
                entry.bad(check, expected);
                continue;
            };
            match downtime::parse_interval(text, zone) {
                Ok((start, end)) => windows.push(Window {
                    start,
                    end,
                    source: Source::Settings { index },
                }),
                Err(error) => entry.bad(
                    check,
                    format!("an ISO 8601 interval such as \"2026-11-25T01:00/2026-11-25T04:00\" or \"2026-11-25T01:00/PT3H\", but {error}"),
                ),
            }
        }
        let mut warnings = Vec::new();
        if let Some(text) = &context.env_downtime {
            let source = Source::Env {
                variable: ENV_DOWNTIME.to_string(),
            };
            let (env_windows, bad) = downtime::parse_list(text, zone, &source);
            windows.extend(env_windows);
            warnings = bad;
        }
        (windows, warnings)
    }
}

impl DowntimeSettings {
    /// The rows of `check`: the settings' own windows (not the environment's) in `zone`.
    pub(super) fn rows(&self, zone: Tz) -> Vec<(&'static str, String)> {
        let windows: Vec<String> = self
            .windows
            .iter()
            .filter(|window| matches!(window.source, Source::Settings { .. }))
            .map(|window| format!("{:?}", window.to_iso(zone)))
            .collect();
        let shown = RawDowntime {
            downtime: Raw::shown(format!("[{}]", windows.join(", "))),
            downtime_file: Raw::optional(self.file.as_ref(), |path| {
                Raw::quoted(&path.display().to_string())
            }),
            downtime_header: Raw::optional(self.header.as_deref(), Raw::quoted),
            downtime_dynos: Raw::optional(self.dynos, |dynos| Raw::shown(dynos.to_string())),
            downtime_disable: Raw::shown(self.disable.to_string()),
        };
        rows("", &shown)
    }
}
