//! Body templates for web hooks: text with `{placeholder}`s filled from an [`Event`].
//!
//! Written by hand because the job is small and the crates don't fit it: tera, handlebars and
//! minijinja use `{{ }}`, which clashes with the JSON bodies people write here, and none
//! escapes each value for the body's content type. Rules: `{name}` is a placeholder and must be
//! one of [`PLACEHOLDERS`]; `{{` is a literal `{`; any other `{` or `}` is literal text, so
//! `{"text": "{app}: {message}"}` needs no escaping. Parsing happens once, at start, so a
//! misspelt placeholder stops the worker there instead of sending broken hooks later.

use super::Event;
use std::fmt;

/// The names a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "event",
    "app",
    "at",
    "message",
    "reason",
    "from",
    "to",
    "min",
    "max",
    "response_time_ms",
];

/// The body sent when `webhook.body` is not set: a JSON object with every field.
pub const DEFAULT_BODY: &str = r#"{"event": "{event}", "app": "{app}", "at": "{at}", "message": "{message}", "reason": "{reason}", "from": {from}, "to": {to}, "min": {min}, "max": {max}, "response_time_ms": {response_time_ms}}"#;

/// How values are written into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Text is escaped for a JSON string (without the quotes, which the template has);
    /// a missing number is `null`.
    Json,
    /// `application/x-www-form-urlencoded`: values are percent-encoded.
    Form,
    /// As is; a missing number is empty.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(&'static str),
}

/// A parsed body template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// What is wrong with a template; the message names the placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{name}}}: the placeholders are {}", known())]
    Unknown { name: String },
    #[error("placeholder {{{name} has no closing }}: write {{{name}}}, or {{{{ for a literal {{")]
    Unclosed { name: String },
}

fn known() -> String {
    PLACEHOLDERS
        .iter()
        .map(|name| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            if let Some(stripped) = after.strip_prefix('{') {
                text.push('{');
                rest = stripped;
                continue;
            }
            let name_len = after
                .find(|c: char| !is_name_char(c))
                .unwrap_or(after.len());
            if name_len == 0 {
                // `{"`, `{ `, `{}`: JSON or prose, not a placeholder.
                text.push('{');
                rest = after;
                continue;
            }
            let name = &after[..name_len];
            if !after[name_len..].starts_with('}') {
                return Err(TemplateError::Unclosed {
                    name: name.to_string(),
                });
            }
            let Some(field) = PLACEHOLDERS.iter().find(|known| **known == name) else {
                return Err(TemplateError::Unknown {
                    name: name.to_string(),
                });
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Field(field));
            rest = &after[name_len + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Starts with literal `{` or `[`: a JSON body unless a Content-Type says otherwise.
    pub fn looks_like_json(&self) -> bool {
        matches!(self.parts.first(), Some(Part::Text(text)) if text.trim_start().starts_with(['{', '[']))
    }

    /// The body for one event.
    pub fn render(&self, event: &Event, escape: Escape) -> String {
        let mut body = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => body.push_str(text),
                Part::Field(name) => body.push_str(&value(event, name, escape)),
            }
        }
        body
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn value(event: &Event, name: &str, escape: Escape) -> String {
    let number = |n: Option<u64>| match (n, escape) {
        (Some(n), _) => n.to_string(),
        (None, Escape::Json) => "null".to_string(),
        (None, _) => String::new(),
    };
    let text = match name {
        "event" => event.kind.as_str().to_string(),
        "app" => event.app.clone(),
        "at" => event.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "message" => event.message.clone(),
        "reason" => event.reason.clone(),
        "from" => return number(event.from_quantity.map(u64::from)),
        "to" => return number(event.to_quantity.map(u64::from)),
        "min" => return number(event.min_dynos.map(u64::from)),
        "max" => return number(event.max_dynos.map(u64::from)),
        "response_time_ms" => return number(event.response_time_ms),
        _ => String::new(),
    };
    match escape {
        Escape::Json => {
            let quoted = serde_json::to_string(&text).unwrap_or_default();
            quoted[1..quoted.len() - 1].to_string()
        }
        Escape::Form => url::form_urlencoded::byte_serialize(text.as_bytes()).collect(),
        Escape::Plain => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::EventKind;
    use chrono::TimeZone;

    fn event() -> Event {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
        let mut event = Event::new(at, "my-app", EventKind::Scaled, "Scaled to (3) dynos.");
        event.reason = "from 2 to 3: \"slow\"\n".to_string();
        event.from_quantity = Some(2);
        event.to_quantity = Some(3);
        event
    }

    #[test]
    fn the_default_body_is_json_with_every_field() {
        let body = Template::parse(DEFAULT_BODY)
            .unwrap()
            .render(&event(), Escape::Json);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["event"], "scaled");
        assert_eq!(json["app"], "my-app");
        assert_eq!(json["at"], "2026-11-24T09:00:00Z");
        assert_eq!(json["from"], 2);
        assert_eq!(json["to"], 3);
        assert_eq!(json["min"], serde_json::Value::Null);
        assert_eq!(json["reason"], "from 2 to 3: \"slow\"\n");
        assert_eq!(json["message"], "Scaled to (3) dynos.");
        for name in PLACEHOLDERS {
            assert!(json.get(name).is_some(), "{name} missing");
        }
    }

    #[test]
    fn a_slack_style_template_stays_valid_json() {
        let template = Template::parse(r#"{"text": "{app}: {message} ({reason})"}"#).unwrap();
        let body = template.render(&event(), Escape::Json);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json["text"],
            "my-app: Scaled to (3) dynos. (from 2 to 3: \"slow\"\n)"
        );
    }

    #[test]
    fn nested_json_and_literal_braces() {
        let template = Template::parse(r#"{"a": {"b": [{}]}, "c": "{{x} {to}"}"#).unwrap();
        assert_eq!(
            template.render(&event(), Escape::Plain),
            r#"{"a": {"b": [{}]}, "c": "{x} 3"}"#
        );
    }

    #[test]
    fn form_and_plain_bodies() {
        let template = Template::parse("text={message}&n={min}").unwrap();
        assert_eq!(
            template.render(&event(), Escape::Form),
            "text=Scaled+to+%283%29+dynos.&n="
        );
        let template = Template::parse("{app} went {from} -> {to}").unwrap();
        assert_eq!(
            template.render(&event(), Escape::Plain),
            "my-app went 2 -> 3"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let error = Template::parse(r#"{"text": "{mesage}"}"#).unwrap_err();
        assert_eq!(
            error,
            TemplateError::Unknown {
                name: "mesage".into()
            }
        );
        let text = error.to_string();
        assert!(text.contains("{mesage}"), "{text}");
        assert!(text.contains("{message}"), "{text}");
    }

    #[test]
    fn an_unclosed_placeholder_is_named() {
        let error = Template::parse("Hello {app").unwrap_err();
        assert_eq!(error, TemplateError::Unclosed { name: "app".into() });
        assert!(
            error.to_string().contains("{app has no closing }"),
            "{error}"
        );
    }
}

/// Generated templates: any text parses to a template or an error naming the problem, never
/// a panic, and a rendered body is bounded by the template and the event's values.
#[cfg(test)]
mod generated {
    use super::*;
    use crate::notify::EventKind;
    use proptest::prelude::*;

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(PLACEHOLDERS).prop_map(|name| format!("{{{name}}}")),
            Just("{{".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("\"".to_string()),
            "[a-z_]{0,12}",
            any::<char>().prop_map(String::from),
        ]
    }

    fn event(text: &str) -> Event {
        let at = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        let mut event = Event::new(at, text, EventKind::Scaled, text);
        event.reason = text.to_string();
        event.from_quantity = Some(u32::MAX);
        event.response_time_ms = Some(u64::MAX);
        event
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_template_parses_or_is_refused_and_renders_bounded(
            pieces in proptest::collection::vec(piece(), 0..40),
            value in "\\PC{0,40}",
        ) {
            let source: String = pieces.concat();
            match Template::parse(&source) {
                Ok(template) => {
                    let event = event(&value);
                    // The longest value a placeholder takes, escaped (JSON's \\u00XX, the
                    // form's %XX at most six bytes for one of the input).
                    let longest = 6 * value.len().max(40);
                    let fields = template.parts.iter().filter(|part| matches!(part, Part::Field(_))).count();
                    for escape in [Escape::Json, Escape::Form, Escape::Plain] {
                        let body = template.render(&event, escape);
                        prop_assert!(body.len() <= source.len() + fields * longest, "{} > bound", body.len());
                    }
                }
                Err(error) => {
                    prop_assert!(error.to_string().len() <= 400 + source.len());
                }
            }
        }
    }
}
