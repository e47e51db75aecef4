//! `webhook`: one HTTP request per event to a URL of the user's, with their method, headers
//! and body template (the shape of seed 000's shutdown hook; Slack-style incoming hooks too).
//!
//! Header values, and the URL's path and query (Slack keeps its token there), are secrets:
//! they go on the wire and nowhere else, never into a log, an error or `check`. Redirects are
//! not followed, so the headers never travel to a host the user did not name. This module
//! decides nothing; the dispatcher retries what [`NotifyError::retriable`] allows.

use super::template::{Escape, Template, DEFAULT_BODY};
use super::{
    delivery_policy, BuildContext, Delivered, DeliveryPolicy, Event, Notifier, NotifierEntry,
    NotifierSettings, NotifyError, SettingsKind,
};
use crate::settings::{fields, hidden_from, named, variable_for, Check, Raw, SecretRaw, HIDDEN};
use crate::Secret;
use async_trait::async_trait;
use config::ValueKind;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use url::Url;

const NAME: &str = "webhook";

/// The registry's entry.
pub const ENTRY: NotifierEntry = NotifierEntry {
    name: NAME,
    settings: SettingsKind::Table {
        keys: fields::<RawWebhook>,
        read,
    },
};

/// The `[webhook]` table as written: its keys.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    /// Its path and query may hold a token.
    url: SecretRaw,
    method: Raw,
    /// A table whose values are secrets.
    headers: SecretRaw,
    body: Raw,
    timeout: Raw,
    give_up_after: Raw,
}

fn prefix() -> String {
    format!("{NAME}.")
}

/// `[webhook]`: the request made for each event.
fn read(table: &Raw, is_named: bool, check: &mut Check) -> Option<Arc<dyn NotifierSettings>> {
    let Some(raw) = table.section::<RawWebhook>(check) else {
        if is_named && !table.is_set() {
            named::<RawWebhook>(&prefix()).url.missing(
                check,
                "a [webhook] table with at least url, since notification_backends names \"webhook\"",
            );
        }
        return None;
    };
    let mark = check.mark();
    if !raw.url.is_set() {
        let variable = raw.url.variable();
        raw.url.missing(
            check,
            format!("the URL to call, such as \"https://hooks.example.com/…\" (or {variable})"),
        );
    }
    let url = raw.url.parsed(check, parse_url);
    let method = if raw.method.is_set() {
        raw.method.parsed(check, parse_method)
    } else {
        Some(Method::POST)
    };
    let headers = read_headers(&raw.headers, check);
    let body = raw.body.parsed(check, |text| {
        Template::parse(text).map_err(|error| format!("a body template: {error}"))
    });
    let policy = delivery_policy(&raw.timeout, &raw.give_up_after, check);
    if check.failed_since(mark) {
        return None;
    }
    Some(Arc::new(WebhookConfig {
        url: url?,
        method: method?,
        headers,
        body,
        policy: policy?,
    }))
}

/// `headers`: names and secret values. One header given in the file and by a variable is one
/// header (names ignore case), and the variable wins, as it does for every setting.
fn read_headers(raw: &SecretRaw, check: &mut Check) -> Vec<(HeaderName, Secret)> {
    let mut headers: Vec<(HeaderName, Secret)> = Vec::new();
    let expected = "a table: a [headers] section, or headers.name = value lines";
    for (name, entry) in raw.entries(check, expected).unwrap_or_default() {
        // Variable names cannot hold a dash: AUTOSCALE_WEBHOOK__HEADERS__X_API_KEY means the
        // header X-Api-Key.
        let from_env = check.origin(entry.key()).is_some();
        let (name, entry) = if from_env {
            let name = name.replace('_', "-");
            let entry = entry.renamed(format!("{}.{name}", raw.key()));
            (name, entry)
        } else {
            (name, entry)
        };
        // A number or a flag is a header value as it is written.
        let entry = match entry.value().map(|value| &value.kind) {
            Some(ValueKind::Table(_) | ValueKind::Array(_) | ValueKind::Nil) | None => {
                entry.bad(check, "a header value (a string)");
                continue;
            }
            Some(kind @ (ValueKind::Float(_) | ValueKind::Boolean(_))) => {
                entry.with_text(kind.to_string())
            }
            Some(_) => entry,
        };
        let header = entry.parsed(check, |text| parse_header(&name, text));
        if let Some(header) = header {
            match headers.iter().position(|(known, _)| *known == header.0) {
                Some(at) if from_env => headers[at] = header,
                Some(_) => {}
                None => headers.push(header),
            }
        }
    }
    headers
}

impl NotifierSettings for WebhookConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn build(&self, _context: &BuildContext) -> Result<Arc<dyn Notifier>, String> {
        Ok(Arc::new(WebhookNotifier::new(self)?))
    }

    fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        let keys = named::<RawWebhook>(&prefix());
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, _)| {
                let key = format!("{}.{name}", keys.headers.key());
                let shown = hidden_from(HIDDEN.to_string(), variable_for(variables, &key));
                format!("{:?} = {shown}", name.as_str())
            })
            .collect();
        let shown = RawWebhook {
            url: SecretRaw::shown(
                format!("{:?}", redact_url(&self.url)),
                variable_for(variables, keys.url.key()),
            ),
            method: Raw::quoted(self.method.as_str()),
            headers: SecretRaw::shown(format!("{{ {} }}", headers.join(", ")), None),
            body: match &self.body {
                Some(body) => Raw::quoted(body.source()),
                None => Raw::shown("(default: a JSON object with every field)"),
            },
            timeout: Raw::duration(self.policy.timeout),
            give_up_after: Raw::duration(self.policy.give_up_after),
        };
        crate::settings::rows(&prefix(), &shown)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The validated `[webhook]` table.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: Url,
    pub method: Method,
    /// Header names, lower case, with their secret values.
    pub headers: Vec<(HeaderName, Secret)>,
    /// `None` sends [`DEFAULT_BODY`] (and nothing for GET and HEAD).
    pub body: Option<Template>,
    pub policy: DeliveryPolicy,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("method", &self.method)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value))
                    .collect::<Vec<_>>(),
            )
            .field("body", &self.body.as_ref().map(Template::source))
            .field("policy", &self.policy)
            .finish()
    }
}

/// An absolute http(s) URL with a host. The error never repeats the text (it may hold a token).
pub fn parse_url(text: &str) -> Result<Url, String> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        Ok(url) => Err(format!(
            "an absolute http(s) URL such as \"https://hooks.example.com/…\" (the scheme is {:?})",
            url.scheme()
        )),
        Err(error) => Err(format!(
            "an absolute http(s) URL such as \"https://hooks.example.com/…\" ({error})"
        )),
    }
}

/// `POST`, `put`, `GET`…: any HTTP method token, upper-cased.
pub fn parse_method(text: &str) -> Result<Method, String> {
    let upper = text.trim().to_ascii_uppercase();
    match Method::from_bytes(upper.as_bytes()) {
        Ok(method) if !upper.is_empty() => Ok(method),
        _ => Err("an HTTP method such as \"POST\", \"PUT\" or \"GET\"".to_string()),
    }
}

/// A header name and its value; the error names the header, never the value.
pub fn parse_header(name: &str, value: &str) -> Result<(HeaderName, Secret), String> {
    let header = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("a header name (letters, digits and dashes), not {name:?}"))?;
    HeaderValue::from_str(value).map_err(|_| {
        format!("a header value of visible ASCII characters for {header} (the value is not shown)")
    })?;
    Ok((header, Secret::new(value)))
}

/// `https://hooks.example.com/***`: where a hook goes, without what makes it secret.
pub fn redact_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if url.path() != "/" || url.query().is_some() {
        shown.push_str("/***");
    }
    shown
}

impl WebhookConfig {
    /// How values are escaped, and the Content-Type to add when the user set none: the
    /// user's Content-Type decides; without one, a body starting with `{` or `[` is JSON.
    pub fn escape(&self) -> (Escape, Option<&'static str>) {
        let user_type = self
            .headers
            .iter()
            .find(|(name, _)| *name == CONTENT_TYPE)
            .map(|(_, value)| value.expose().to_ascii_lowercase());
        match user_type {
            Some(kind) if kind.contains("json") => (Escape::Json, None),
            Some(kind) if kind.contains("x-www-form-urlencoded") => (Escape::Form, None),
            Some(_) => (Escape::Plain, None),
            None => {
                let json = self.body.as_ref().is_none_or(Template::looks_like_json);
                if json {
                    (Escape::Json, Some("application/json"))
                } else {
                    (Escape::Plain, Some("text/plain; charset=utf-8"))
                }
            }
        }
    }
}

pub struct WebhookNotifier {
    client: reqwest::Client,
    url: Url,
    shown_url: String,
    method: Method,
    headers: HeaderMap,
    body: Option<Template>,
    escape: Escape,
    secrets: Vec<Secret>,
    policy: DeliveryPolicy,
}

impl WebhookNotifier {
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let client = super::http::client()?;
        let (escape, content_type) = config.escape();
        let mut headers = HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        for (name, value) in &config.headers {
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("the value of header {name} is not valid"))?;
            value.set_sensitive(true);
            headers.append(name.clone(), value);
        }
        let sends_body =
            config.body.is_some() || !matches!(config.method, Method::GET | Method::HEAD);
        let body = sends_body.then(|| {
            config
                .body
                .clone()
                .unwrap_or_else(|| Template::parse(DEFAULT_BODY).expect("the default body parses"))
        });
        let mut secrets: Vec<Secret> = config
            .headers
            .iter()
            .map(|(_, value)| value.clone())
            .collect();
        secrets.push(Secret::new(config.url.as_str()));
        Ok(WebhookNotifier {
            client,
            url: config.url.clone(),
            shown_url: redact_url(&config.url),
            method: config.method.clone(),
            headers,
            body,
            escape,
            secrets,
            policy: config.policy,
        })
    }

    /// What the hook would receive for `event`: the body, if one is sent.
    pub fn body_for(&self, event: &Event) -> Option<String> {
        self.body
            .as_ref()
            .map(|template| template.render(event, self.escape))
    }

    /// Removes anything secret from text that came back from the server.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if secret.expose().len() >= 4 {
                text = text.replace(secret.expose(), "***");
            }
        }
        text
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn policy(&self) -> DeliveryPolicy {
        self.policy
    }

    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError> {
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some(body) = self.body_for(event) {
            request = request.body(body);
        }
        let target = format!("{} {}", self.method, self.shown_url);
        let advice = |status: reqwest::StatusCode| {
            status
                .is_redirection()
                .then_some("redirects are not followed: set webhook.url to the final URL")
        };
        super::http::send(
            request,
            &target,
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

    fn config(headers: &[(&str, &str)], body: Option<&str>, method: &str) -> WebhookConfig {
        WebhookConfig {
            url: parse_url("https://hooks.example.com/services/T0/B0/secret-token").unwrap(),
            method: parse_method(method).unwrap(),
            headers: headers
                .iter()
                .map(|(name, value)| parse_header(name, value).unwrap())
                .collect(),
            body: body.map(|text| Template::parse(text).unwrap()),
            policy: DeliveryPolicy::default(),
        }
    }

    #[test]
    fn the_content_type_decides_the_escaping() {
        assert_eq!(
            config(&[], None, "POST").escape(),
            (Escape::Json, Some("application/json"))
        );
        assert_eq!(
            config(&[], Some("{app} scaled"), "POST").escape(),
            (Escape::Plain, Some("text/plain; charset=utf-8"))
        );
        assert_eq!(
            config(
                &[("Content-Type", "application/x-www-form-urlencoded")],
                Some("t={app}"),
                "POST"
            )
            .escape(),
            (Escape::Form, None)
        );
        assert_eq!(
            config(
                &[("content-type", "application/vnd.api+json")],
                Some("x"),
                "POST"
            )
            .escape(),
            (Escape::Json, None)
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_the_shown_url() {
        let config = config(&[("Authorization", "Bearer hook-secret-1")], None, "put");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hook-secret-1"), "{shown}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("https://hooks.example.com/***"), "{shown}");
        assert_eq!(config.method, Method::PUT);
        assert_eq!(
            redact_url(&parse_url("http://127.0.0.1:8080/").unwrap()),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn bad_input_is_named_without_echoing_secrets() {
        let error = parse_url("ftp://hooks.example.com/secret-token").unwrap_err();
        assert!(
            error.contains("\"ftp\"") && !error.contains("secret-token"),
            "{error}"
        );
        let error = parse_header("Bad Name", "v").unwrap_err();
        assert!(error.contains("Bad Name"), "{error}");
        let error = parse_header("X-Key", "line\nbreak-secret").unwrap_err();
        assert!(
            error.contains("x-key") && !error.contains("break-secret"),
            "{error}"
        );
        assert!(parse_method("NOT A METHOD").is_err());
    }

    #[test]
    fn get_sends_no_default_body() {
        let notifier = WebhookNotifier::new(&config(&[], None, "GET")).unwrap();
        let event = Event::new(
            chrono::Utc::now(),
            "a",
            crate::notify::EventKind::Test,
            "hi",
        );
        assert_eq!(notifier.body_for(&event), None);
        let notifier = WebhookNotifier::new(&config(&[], Some("{app}"), "GET")).unwrap();
        assert_eq!(notifier.body_for(&event).as_deref(), Some("a"));
    }
}
