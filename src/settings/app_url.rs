//! Where `app_url` comes from: the settings, an absolute `heartbeat_url`, or, on Heroku with
//! neither given, the app's `web_url`, which the worker reads from the Platform API once at
//! start (apps made since mid-2023 answer at `NAME-<random>.herokuapp.com`, so no default
//! built from the name can be right).
//!
//! Pure: this module reads nothing from the network. It says what is pending, takes the
//! `web_url` once the worker (or `check --online`) has read it, and words `check`'s rows.

use super::{AppSettings, Heartbeat, Signal};
use url::Url;

/// Where `app_url` (and so a relative `heartbeat_url`) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppUrlFrom {
    /// `app_url` as the settings give it (or its default off Heroku).
    Settings,
    /// Not set: the base of the absolute `heartbeat_url`.
    HeartbeatUrl,
    /// Not set, on Heroku: the app's `web_url`, read once at start. Until then `app_url` and
    /// `heartbeat_url` hold a placeholder that nothing may use. `heartbeat_url`: the setting
    /// as written, to resolve against the `web_url`.
    PlatformWebUrl { heartbeat_url: String },
    /// The app's `web_url`, as read from the Platform API.
    WebUrlRead,
}

/// Where `app_url` will come from, given whether it was set, the `heartbeat_url` as written,
/// and whether the app is scaled on Heroku under a known name.
pub(super) fn app_url_from(given: bool, heartbeat_url: &str, heroku_app: bool) -> AppUrlFrom {
    if given {
        AppUrlFrom::Settings
    } else if Url::parse(heartbeat_url).is_ok() {
        AppUrlFrom::HeartbeatUrl
    } else if heroku_app {
        AppUrlFrom::PlatformWebUrl {
            heartbeat_url: heartbeat_url.to_string(),
        }
    } else {
        AppUrlFrom::Settings
    }
}

impl AppSettings {
    /// Whether `app_url` still waits for the app's `web_url`, and the worker needs it (it
    /// sends heartbeats).
    pub fn needs_web_url(&self) -> bool {
        matches!(
            self.heartbeat.app_url_from,
            AppUrlFrom::PlatformWebUrl { .. }
        ) && self.drain.signal.uses_heartbeat()
    }

    /// Takes the app's `web_url` as `app_url`, and resolves `heartbeat_url` against it. An
    /// error, in words, when the platform's URL is not an http(s) URL.
    pub fn use_web_url(&mut self, web_url: &str) -> Result<(), String> {
        let heartbeat = &mut self.heartbeat;
        let AppUrlFrom::PlatformWebUrl { heartbeat_url } = &heartbeat.app_url_from else {
            return Ok(());
        };
        let base = Url::parse(web_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| format!("the app's web_url {web_url:?} is not an http(s) URL"))?;
        let url = base
            .join(heartbeat_url)
            .map_err(|error| format!("heartbeat_url {heartbeat_url:?} on {base}: {error}"))?;
        heartbeat.app_url = base;
        heartbeat.url = url;
        heartbeat.app_url_from = AppUrlFrom::WebUrlRead;
        Ok(())
    }
}

impl Heartbeat {
    /// `app_url` and `heartbeat_url` as `check` shows them, saying where they came from;
    /// `signal` says whether a heartbeat is sent at all.
    pub(super) fn urls_shown(&self, signal: Signal) -> (String, String) {
        let quoted = |url: &Url| format!("{:?}", url.as_str());
        match &self.app_url_from {
            AppUrlFrom::Settings => (quoted(&self.app_url), quoted(&self.url)),
            AppUrlFrom::HeartbeatUrl => (
                format!("{} (from heartbeat_url)", quoted(&self.app_url)),
                quoted(&self.url),
            ),
            AppUrlFrom::PlatformWebUrl { heartbeat_url } => (
                if signal.uses_heartbeat() {
                    "(not set: from the Platform API's web_url, read when the worker starts; `check --online` reads it now)".to_string()
                } else {
                    format!(
                        "(not set, and not needed: signal = {:?} sends no heartbeat)",
                        signal.as_str()
                    )
                },
                format!("{heartbeat_url:?} on the app's web_url"),
            ),
            AppUrlFrom::WebUrlRead => (
                format!(
                    "{} (from the Platform API's web_url)",
                    quoted(&self.app_url)
                ),
                quoted(&self.url),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::from_toml_str;
    use std::collections::HashMap;

    fn app(text: &str) -> AppSettings {
        let text = format!("heroku_api_key = \"k-0123456789\"\n{text}");
        from_toml_str(&text, &HashMap::new())
            .unwrap_or_else(|error| panic!("{error}"))
            .apps
            .remove(0)
    }

    fn shown(app: &AppSettings) -> (String, String) {
        app.heartbeat.urls_shown(app.drain.signal)
    }

    #[test]
    fn on_heroku_without_app_url_the_web_url_is_read_at_start() {
        let mut app = app("heroku_app_name = \"my-app\"\nheartbeat_url = \"/health/\"");
        assert!(app.needs_web_url());
        let (app_url, heartbeat_url) = shown(&app);
        assert!(
            app_url.contains("from the Platform API's web_url"),
            "{app_url}"
        );
        assert_eq!(heartbeat_url, "\"/health/\" on the app's web_url");
        app.use_web_url("https://my-app-1a2b3c4d5e6f.herokuapp.com/")
            .unwrap();
        assert!(!app.needs_web_url());
        assert_eq!(
            app.heartbeat.url.as_str(),
            "https://my-app-1a2b3c4d5e6f.herokuapp.com/health/"
        );
        assert_eq!(
            shown(&app).0,
            "\"https://my-app-1a2b3c4d5e6f.herokuapp.com/\" (from the Platform API's web_url)"
        );
    }

    #[test]
    fn an_app_url_or_an_absolute_heartbeat_url_is_kept_as_it_is() {
        let mut given = app("heroku_app_name = \"my-app\"\napp_url = \"https://example.com\"");
        assert_eq!(given.heartbeat.app_url_from, AppUrlFrom::Settings);
        assert!(!given.needs_web_url());
        given.use_web_url("https://elsewhere.example/").unwrap();
        assert_eq!(given.heartbeat.app_url.as_str(), "https://example.com/");
        let absolute =
            app("heroku_app_name = \"my-app\"\nheartbeat_url = \"https://example.com/beat\"");
        assert_eq!(absolute.heartbeat.app_url_from, AppUrlFrom::HeartbeatUrl);
        assert_eq!(absolute.heartbeat.url.as_str(), "https://example.com/beat");
        assert_eq!(
            shown(&absolute).0,
            "\"https://example.com/\" (from heartbeat_url)"
        );
    }

    #[test]
    fn off_heroku_no_web_url_is_read() {
        let app = app(
            "heroku_app_name = \"my-app\"\nscaler = \"command\"\nscale_command = \"./scale.sh\"",
        );
        assert!(!app.needs_web_url());
    }

    #[test]
    fn without_a_heartbeat_no_web_url_is_needed() {
        let app = app(
            "heroku_app_name = \"my-app\"\nsignal = \"router\"\nlog_drain_password = \"pw\"\nhttp_port = 0",
        );
        assert!(!app.needs_web_url());
        assert!(shown(&app).0.contains("not needed"));
    }

    #[test]
    fn a_web_url_that_is_not_http_is_refused() {
        let mut app = app("heroku_app_name = \"my-app\"");
        let error = app.use_web_url("ftp://my-app.example").unwrap_err();
        assert!(error.contains("not an http(s) URL"), "{error}");
        assert!(app.needs_web_url());
    }
}
