//! The heartbeat section: what the worker times (seed 001's `heartbeat_url` on the app's URL),
//! how often, and how long it waits. What it needs from other parts (the app's name and
//! platform for the app's URL, the slow threshold for the default timeout, what the settings
//! are for) comes in as arguments; it must not read keys outside its section. Where the app's
//! URL comes from, the app's `web_url` included, is `app_url.rs`'s.

use super::app_url::{app_url_from, AppUrlFrom};
use super::{Purpose, Signal};
use autoscalebot_backends::settings::{fields, rows, Check, Raw, Table};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

const DEFAULT_HEARTBEAT_URL: &str = "/autoscalebot/heartbeat/";

/// The section as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeartbeat {
    app_url: Raw,
    heartbeat_url: Raw,
    heartbeat_interval_in_seconds: Raw,
    heartbeat_timeout_in_ms: Raw,
}

/// The checked heartbeat.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub app_url: Url,
    /// Absolute: a relative `heartbeat_url` is resolved against `app_url`.
    pub url: Url,
    pub interval: Duration,
    pub timeout: Duration,
    /// Where `app_url` comes from; on Heroku without `app_url` nor an absolute
    /// `heartbeat_url`, the app's `web_url`, read when the worker starts.
    pub app_url_from: AppUrlFrom,
}

/// What the heartbeat's checks need from the other parts.
pub(super) struct Needs<'a> {
    pub purpose: Purpose,
    /// `heroku_app_name`, when given: the app's URL defaults to `https://{name}.herokuapp.com`
    /// (on Heroku, a placeholder until the app's `web_url` is read).
    pub app_name: Option<&'a str>,
    /// Whether the app is scaled through the Platform API, which knows its `web_url`.
    pub on_heroku: bool,
    /// Whether the app's name has a problem already: the URL follows from it once it is given.
    pub app_name_missing: bool,
    /// `max_response_time_in_ms`, when readable: the timeout defaults to twice it.
    pub max_response_time_ms: Option<u32>,
}

impl RawHeartbeat {
    pub(super) fn take(table: &mut Table, check: &Check) -> Self {
        check.section(table, "")
    }

    pub(super) fn keys() -> &'static [&'static str] {
        fields::<RawHeartbeat>()
    }

    /// `heartbeat_interval_in_seconds`: the drain's window defaults to it.
    pub(super) fn interval(&self, check: &mut Check) -> Option<Duration> {
        const EXPECTED: &str = "a number of seconds above 0, such as 30 or 0.5";
        let number = self
            .heartbeat_interval_in_seconds
            .positive_float_or(check, 30.0, EXPECTED)?;
        let interval = autoscalebot_backends::settings::seconds(number);
        if interval.is_none() {
            self.heartbeat_interval_in_seconds.bad(check, EXPECTED);
        }
        interval
    }

    pub(super) fn check(
        &self,
        check: &mut Check,
        interval: Option<Duration>,
        needs: &Needs,
    ) -> Option<Heartbeat> {
        let mark = check.mark();
        let heartbeat_text = self.heartbeat_url.text_or(check, DEFAULT_HEARTBEAT_URL);
        let app_url = self.app_url(check, &heartbeat_text, needs);
        let app_url_from = app_url_from(
            self.app_url.is_set(),
            &heartbeat_text,
            needs.on_heroku && needs.app_name.is_some(),
        );
        let url = app_url
            .as_ref()
            .and_then(|base| match base.join(&heartbeat_text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    self.heartbeat_url.bad_text(
                        check,
                        &heartbeat_text,
                        "an http(s) URL, or a path such as \"/autoscalebot/heartbeat/\" on app_url",
                    );
                    None
                }
            });
        let default_timeout = needs
            .max_response_time_ms
            .map_or(5000, |max| (max * 2).max(5000));
        let timeout_ms = self.heartbeat_timeout_in_ms.whole_or(
            check,
            default_timeout,
            1,
            "a whole number of milliseconds above 0",
        );
        if check.failed_since(mark) {
            return None;
        }
        Some(Heartbeat {
            app_url: app_url?,
            url: url?,
            interval: interval?,
            timeout: Duration::from_millis(u64::from(timeout_ms?)),
            app_url_from,
        })
    }

    /// `app_url`, else the base of an absolute `heartbeat_url`, else
    /// `https://{heroku_app_name}.herokuapp.com` (on Heroku, a placeholder for the app's
    /// `web_url`). `activate`, which sends no heartbeat, needs none.
    fn app_url(&self, check: &mut Check, heartbeat_text: &str, needs: &Needs) -> Option<Url> {
        let text = self.app_url.text(check);
        if self.app_url.is_set() && text.is_none() {
            return None;
        }
        let absolute_base = Url::parse(heartbeat_text)
            .and_then(|absolute| absolute.join("/"))
            .ok();
        if let (None, Some(base)) = (&text, absolute_base) {
            return Some(base);
        }
        let default = needs
            .app_name
            .map(|name| format!("https://{name}.herokuapp.com"));
        if let Some(text) = text.or(default) {
            return match Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
                _ => {
                    self.app_url.bad_text(
                        check,
                        &text,
                        "an absolute http(s) URL such as \"https://example.com\"",
                    );
                    None
                }
            };
        }
        if needs.app_name_missing {
            None
        } else if needs.purpose == Purpose::Activator {
            Url::parse("http://localhost/").ok()
        } else {
            self.app_url.missing(
                check,
                "your app's base URL such as \"https://app.example.com\", for the heartbeat (or an absolute heartbeat_url)",
            );
            None
        }
    }
}

impl Heartbeat {
    /// `check`'s rows; `signal` says whether a heartbeat is sent at all.
    pub(super) fn rows(&self, signal: Signal) -> Vec<(&'static str, String)> {
        let (app_url, heartbeat_url) = self.urls_shown(signal);
        let shown = RawHeartbeat {
            app_url: Raw::shown(app_url),
            heartbeat_url: Raw::shown(heartbeat_url),
            heartbeat_interval_in_seconds: Raw::shown(self.interval.as_secs_f64().to_string()),
            heartbeat_timeout_in_ms: Raw::shown(self.timeout.as_millis().to_string()),
        };
        rows("", &shown)
    }
}
