//! A string that must never be shown (API keys, SMTP passwords, hook header values), and a
//! URL as it may be shown.

use serde::Deserialize;
use std::fmt;

/// A secret value. `Debug` and `Display` print `***`; only [`Secret::expose`] gives the text,
/// and it should be called at the one place that puts the value on the wire.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret text, for the request that needs it. Never format it into a message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL as people may be shown it: scheme, host, port and path, never its user, password,
/// query or fragment (which may hold a token).
pub fn shown_url(url: &url::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let key = Secret::new("hunter2-key");
        assert_eq!(format!("{key}"), "***");
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(key.expose(), "hunter2-key");
    }

    #[test]
    fn a_shown_url_has_no_user_password_or_query() {
        let url =
            url::Url::parse("https://drain:pw-123@worker.example.com:8443/logs/app?token=t#f")
                .unwrap();
        assert_eq!(shown_url(&url), "https://worker.example.com:8443/logs/app");
    }
}
