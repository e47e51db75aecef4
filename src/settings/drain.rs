//! The real-traffic section: what counts as a fail or a pass (`signal`), the span of router
//! requests one decision looks at, the port of the worker's HTTP server (the drain, metrics,
//! the status page) and the drain's password. It must not read keys outside its section.

use super::LoadContext;
use autoscalebot_backends::settings::{
    fields, named, rows, variable_for, Check, Raw, SecretRaw, Table, HIDDEN,
};
use autoscalebot_backends::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The section as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrain {
    signal: Raw,
    router_window: Raw,
    http_port: Raw,
    log_drain_password: SecretRaw,
}

/// The checked section.
#[derive(Debug, Clone)]
pub struct Drain {
    /// What the decision counts: heartbeats, router windows from the log drain, or both.
    pub signal: Signal,
    /// The span of router requests one decision looks at.
    pub router_window: Duration,
    /// The port of the HTTP server (drain, metrics, health, status page): `http_port`, else
    /// `$PORT`; `None` runs no server. 0 picks a free port (it is logged).
    pub http_port: Option<u16>,
    /// The port came from `$PORT` (a platform's router is in front: Heroku's web dyno), not
    /// from `http_port`: the server then listens on every interface unless `http_host` says.
    pub http_port_from_env: bool,
    /// The basic-auth password a log drain must send; `POST /logs` is off without it.
    pub log_drain_password: Option<Secret>,
}

/// Which measurements count as fails and passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The heartbeat alone (2.1's behaviour).
    Heartbeat,
    /// The p95 of each router window from the log drain; no heartbeat is sent.
    Router,
    /// Both: a fail from either is a fail.
    Both,
}

impl Signal {
    const ALL: [Signal; 3] = [Signal::Heartbeat, Signal::Router, Signal::Both];

    pub fn as_str(&self) -> &'static str {
        match self {
            Signal::Heartbeat => "heartbeat",
            Signal::Router => "router",
            Signal::Both => "both",
        }
    }

    pub fn uses_heartbeat(&self) -> bool {
        matches!(self, Signal::Heartbeat | Signal::Both)
    }

    pub fn uses_router(&self) -> bool {
        matches!(self, Signal::Router | Signal::Both)
    }
}

const PORT_EXPECTED: &str = "a TCP port from 0 to 65535";

impl RawDrain {
    pub(super) fn take(table: &mut Table, check: &Check) -> Self {
        check.section(table, "")
    }

    pub(super) fn keys() -> &'static [&'static str] {
        fields::<RawDrain>()
    }

    /// `heartbeat_interval`: the router window's default, when readable.
    pub(super) fn check(
        &self,
        check: &mut Check,
        context: &LoadContext,
        heartbeat_interval: Option<Duration>,
    ) -> Option<Drain> {
        let mark = check.mark();
        let signal_text = self.signal.text_or(check, Signal::Heartbeat.as_str());
        let signal = Signal::ALL
            .into_iter()
            .find(|signal| signal.as_str() == signal_text);
        if signal.is_none() {
            self.signal.bad_text(
                check,
                &signal_text,
                "one of \"heartbeat\", \"router\", \"both\"",
            );
        }
        let default_window = heartbeat_interval.unwrap_or(Duration::from_secs(30));
        let router_window = self.router_window.timeout_or(
            check,
            default_window,
            "a duration above 0, such as \"30s\"",
        );
        let http_port = self.http_port(check, context);
        let password = self
            .log_drain_password
            .secret(check)
            .filter(|password| !password.is_empty());
        if signal.is_some_and(|signal| signal.uses_router()) {
            if password.is_none() && !check.has_problem(self.log_drain_password.key()) {
                self.log_drain_password.missing(
                    check,
                    format!("a password for the log drain's basic auth, since signal = \"{signal_text}\""),
                );
            }
            if http_port == Some(None) {
                self.http_port.missing(
                    check,
                    format!("a port for the log drain (or PORT), since signal = \"{signal_text}\""),
                );
            }
        }
        if check.failed_since(mark) {
            return None;
        }
        Some(Drain {
            signal: signal?,
            router_window: router_window?,
            http_port_from_env: !self.http_port.is_set()
                && http_port.is_some_and(|port| port.is_some()),
            http_port: http_port?,
            log_drain_password: password,
        })
    }

    /// `http_port`, else `$PORT` (Heroku's convention: the web process listens on it).
    /// `Some(None)`: no server; `None`: bad.
    fn http_port(&self, check: &mut Check, context: &LoadContext) -> Option<Option<u16>> {
        if self.http_port.is_set() {
            let port = self.http_port.whole(check, 0, PORT_EXPECTED)?;
            let port = u16::try_from(port).ok();
            if port.is_none() {
                self.http_port.bad(check, PORT_EXPECTED);
            }
            return port.map(Some);
        }
        let Some(text) = &context.env_port else {
            return Some(None);
        };
        match text.trim().parse::<u16>() {
            Ok(port) => Some(Some(port)),
            Err(_) => {
                check.problem(
                    self.http_port.key(),
                    Some(format!("{text:?}")),
                    Some("PORT"),
                    format!("{PORT_EXPECTED} in PORT"),
                );
                None
            }
        }
    }
}

impl Drain {
    pub(super) fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        let keys = named::<RawDrain>("");
        let shown = RawDrain {
            signal: Raw::quoted(self.signal.as_str()),
            router_window: Raw::duration(self.router_window),
            http_port: Raw::optional(self.http_port, |port| Raw::shown(port.to_string())),
            log_drain_password: match &self.log_drain_password {
                Some(_) => SecretRaw::shown(
                    HIDDEN.to_string(),
                    variable_for(variables, keys.log_drain_password.key()),
                ),
                None => SecretRaw::default(),
            },
        };
        rows("", &shown)
    }
}
