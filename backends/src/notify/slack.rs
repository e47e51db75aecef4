//! `slack`: one message per event to a Slack incoming webhook, in Slack's message format: a
//! `text` (what the notification and the channel list show) and `blocks` (the message laid
//! out: the app and the event, what happened, then why and the numbers, in small print).
//!
//! The webhook URL is the secret (Slack keeps the token in its path): it travels as a
//! [`Secret`], goes on the wire and nowhere else, never into a log, an error or `check`, which
//! shows `https://hooks.slack.com/***`. Redirects are not followed. This module decides
//! nothing; the dispatcher retries what [`NotifyError::retriable`] allows.

use super::{
    delivery_policy, BuildContext, Delivered, DeliveryPolicy, Event, Notifier, NotifierEntry,
    NotifierSettings, NotifyError, SettingsKind,
};
use crate::settings::{fields, named, rows, variable_for, Check, Raw, SecretRaw};
use crate::Secret;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use url::Url;

const NAME: &str = "slack";

/// The registry's entry.
pub const ENTRY: NotifierEntry = NotifierEntry {
    name: NAME,
    settings: SettingsKind::Table {
        keys: fields::<RawSlack>,
        read,
    },
};

/// The `[slack]` table as written: its keys.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    /// The incoming webhook's URL, token and all.
    webhook_url: SecretRaw,
    timeout: Raw,
    give_up_after: Raw,
}

/// The checked `[slack]` table.
#[derive(Clone)]
pub struct SlackConfig {
    pub webhook_url: Secret,
    pub policy: DeliveryPolicy,
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("webhook_url", &shown_url(&self.webhook_url))
            .field("policy", &self.policy)
            .finish()
    }
}

fn prefix() -> String {
    format!("{NAME}.")
}

const URL_EXAMPLE: &str =
    "a Slack incoming webhook URL such as \"https://hooks.slack.com/services/T000/B000/XXXX\"";

/// An absolute http(s) URL with a host. The error never repeats the text: it holds a token.
fn parse_webhook_url(text: &str) -> Result<Secret, String> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
            Ok(Secret::new(text.trim()))
        }
        Ok(url) => Err(format!("{URL_EXAMPLE} (the scheme is {:?})", url.scheme())),
        Err(error) => Err(format!("{URL_EXAMPLE} ({error})")),
    }
}

/// `https://hooks.slack.com/***`: where the messages go, without the token.
fn shown_url(url: &Secret) -> String {
    match Url::parse(url.expose()) {
        Ok(url) => super::webhook::redact_url(&url),
        Err(_) => "***".to_string(),
    }
}

/// `[slack]`: the incoming webhook the `slack` backend posts to.
fn read(table: &Raw, is_named: bool, check: &mut Check) -> Option<Arc<dyn NotifierSettings>> {
    let Some(raw) = table.section::<RawSlack>(check) else {
        if is_named && !table.is_set() {
            named::<RawSlack>(&prefix()).webhook_url.missing(
                check,
                "a [slack] table with webhook_url, since notification_backends names \"slack\"",
            );
        }
        return None;
    };
    let mark = check.mark();
    if !raw.webhook_url.is_set() {
        let variable = raw.webhook_url.variable();
        raw.webhook_url
            .missing(check, format!("{URL_EXAMPLE} (or {variable})"));
    }
    let webhook_url = raw.webhook_url.parsed(check, parse_webhook_url);
    let policy = delivery_policy(&raw.timeout, &raw.give_up_after, check);
    if check.failed_since(mark) {
        return None;
    }
    Some(Arc::new(SlackConfig {
        webhook_url: webhook_url?,
        policy: policy?,
    }))
}

impl NotifierSettings for SlackConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn build(&self, _context: &BuildContext) -> Result<Arc<dyn Notifier>, String> {
        Ok(Arc::new(SlackNotifier::new(self)?))
    }

    fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        let keys = named::<RawSlack>(&prefix());
        let shown = RawSlack {
            webhook_url: SecretRaw::shown(
                format!("{:?}", shown_url(&self.webhook_url)),
                variable_for(variables, keys.webhook_url.key()),
            ),
            timeout: Raw::duration(self.policy.timeout),
            give_up_after: Raw::duration(self.policy.give_up_after),
        };
        rows(&prefix(), &shown)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub struct SlackNotifier {
    client: reqwest::Client,
    url: Url,
    shown_url: String,
    token: Secret,
    policy: DeliveryPolicy,
}

impl SlackNotifier {
    pub fn new(config: &SlackConfig) -> Result<Self, String> {
        let url = Url::parse(config.webhook_url.expose())
            .map_err(|_| "slack.webhook_url is not a URL".to_string())?;
        let client = super::http::client()?;
        Ok(SlackNotifier {
            token: Secret::new(url.path().trim_matches('/')),
            shown_url: shown_url(&config.webhook_url),
            client,
            url,
            policy: config.policy,
        })
    }

    /// Removes the URL's token from text that came back from the server.
    fn scrub(&self, text: &str) -> String {
        let token = self.token.expose();
        if token.len() >= 4 {
            text.replace(token, "***")
        } else {
            text.to_string()
        }
    }
}

/// Slack's `mrkdwn` and plain text both read `&`, `<` and `>` as markup: these are escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message for `event`, in Slack's format: `text` for notifications and `blocks` for the
/// channel.
pub fn message(event: &Event) -> serde_json::Value {
    let app = escape(&event.app);
    let what = escape(&event.message);
    let mut text = format!("{app}: {what}");
    if !event.reason.is_empty() {
        text.push_str(&format!(" ({})", escape(&event.reason)));
    }
    let mut facts = Vec::new();
    if !event.reason.is_empty() {
        facts.push(escape(&event.reason));
    }
    match (event.from_quantity, event.to_quantity) {
        (Some(from), Some(to)) => facts.push(format!("{from} → {to} dynos")),
        (None, Some(to)) => facts.push(format!("{to} dynos")),
        _ => {}
    }
    if let (Some(min), Some(max)) = (event.min_dynos, event.max_dynos) {
        facts.push(format!("min {min}, max {max}"));
    }
    if let Some(ms) = event.response_time_ms {
        facts.push(format!("{ms} ms"));
    }
    facts.push(event.at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    json!({
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": format!("*{app}* · {}\n{what}", event.kind.as_str()),
                },
            },
            {
                "type": "context",
                "elements": [{ "type": "mrkdwn", "text": facts.join(" · ") }],
            },
        ],
    })
}

#[async_trait]
impl Notifier for SlackNotifier {
    fn name(&self) -> &'static str {
        NAME
    }

    fn policy(&self) -> DeliveryPolicy {
        self.policy
    }

    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError> {
        let request = self.client.post(self.url.clone()).json(&message(event));
        // Slack names what is wrong in a word: "invalid_payload", "no_service", "channel_is_archived".
        let advice = |status: reqwest::StatusCode| {
            matches!(status.as_u16(), 403 | 404 | 410).then_some(
                "the webhook is gone or its channel is: make a new one and set slack.webhook_url",
            )
        };
        super::http::send(
            request,
            &format!("POST {}", self.shown_url),
            self.policy.timeout,
            |text| self.scrub(text),
            advice,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::EventKind;
    use chrono::TimeZone;

    fn event() -> Event {
        let mut event = Event::new(
            chrono::Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
            "shop <prod> & co",
            EventKind::Scaled,
            "Scaled to (3) dynos.",
        );
        event.reason = "3 consecutive heartbeats slower than 1000 ms".to_string();
        event.from_quantity = Some(2);
        event.to_quantity = Some(3);
        event.min_dynos = Some(1);
        event.max_dynos = Some(5);
        event
    }

    #[test]
    fn a_message_has_a_text_and_blocks_with_markup_escaped() {
        let message = message(&event());
        assert_eq!(
            message["text"],
            "shop &lt;prod&gt; &amp; co: Scaled to (3) dynos. (3 consecutive heartbeats slower than 1000 ms)"
        );
        assert_eq!(message["blocks"][0]["type"], "section");
        assert_eq!(
            message["blocks"][0]["text"]["text"],
            "*shop &lt;prod&gt; &amp; co* · scaled\nScaled to (3) dynos."
        );
        assert_eq!(message["blocks"][1]["type"], "context");
        assert_eq!(
            message["blocks"][1]["elements"][0]["text"],
            "3 consecutive heartbeats slower than 1000 ms · 2 → 3 dynos · min 1, max 5 · 2026-11-24 09:00:00 UTC"
        );
    }

    #[test]
    fn the_token_stays_out_of_debug_and_bad_values() {
        let config = SlackConfig {
            webhook_url: parse_webhook_url("https://hooks.slack.com/services/T0/B0/tok-3141")
                .unwrap(),
            policy: DeliveryPolicy::default(),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("tok-3141"), "{shown}");
        assert!(shown.contains("https://hooks.slack.com/***"), "{shown}");
        let error = parse_webhook_url("ftp://hooks.slack.com/services/tok-3141").unwrap_err();
        assert!(!error.contains("tok-3141"), "{error}");
        assert!(error.contains("\"ftp\""), "{error}");
    }
}
