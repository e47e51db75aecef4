//! Logplex, as far as the router's lines go: every request the router answers becomes one
//! Heroku router line, and the lines are delivered to every log drain added with
//! `POST /apps/{app}/log-drains`, batched in octet-counted RFC 5424 frames over HTTP with
//! logplex's headers and the basic auth of the drain URL, as Heroku's HTTPS drains receive
//! them (devcenter.heroku.com/articles/log-drains, …/http-routing, …/error-codes).
//!
//! It only formats and delivers; it decides nothing, and a drain that fails or is slow loses
//! its batch (logged), never the router's request. With no drain, lines are dropped unformatted.

use crate::api::Platform;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often pending lines are delivered, at most: logplex flushes a drain's buffer about this
/// often under load.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// A batch holds at most this many lines (logplex's HTTPS drains send a few hundred at most).
const MAX_BATCH: usize = 500;
/// A drain that answers slower than this loses the batch.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// One request as the router saw it.
#[derive(Debug, Clone)]
pub struct RouterLog {
    pub at: chrono::DateTime<chrono::Utc>,
    pub method: String,
    pub path: String,
    /// The dyno that served it; `None` when none did (H12 before a dyno took it, H14).
    pub dyno: Option<String>,
    /// Time waiting for a dyno; `None` when none took the request.
    pub connect_ms: Option<u64>,
    /// Time from handing the request to the dyno to its answer (a dyno's own queue included,
    /// as on Heroku); the router's 30 s on an H12.
    pub service_ms: Option<u64>,
    pub status: u16,
    pub bytes: u64,
    /// `(code, description)` of a router error.
    pub error: Option<(&'static str, &'static str)>,
}

impl RouterLog {
    /// The syslog message as logplex frames it: `<158>1 TIMESTAMP host heroku router - …`.
    pub fn message(&self, app: &str) -> String {
        let ms = |value: Option<u64>| value.map(|ms| format!("{ms}ms")).unwrap_or_default();
        let head = match self.error {
            Some((code, desc)) => format!("at=error code={code} desc=\"{desc}\""),
            None => "at=info".to_string(),
        };
        format!(
            "<158>1 {} host heroku router - {head} method={} path=\"{}\" host={app}.herokuapp.com request_id={} fwd=\"127.0.0.1\" dyno={} connect={} service={} status={} bytes={} protocol=http",
            self.at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
            self.method,
            self.path.replace('"', "%22"),
            uuid::Uuid::new_v4(),
            self.dyno.as_deref().unwrap_or_default(),
            ms(self.connect_ms),
            ms(self.service_ms),
            self.status,
            self.bytes,
        )
    }
}

/// The router's handle: lines go to the delivery task.
#[derive(Clone)]
pub struct Logplex {
    lines: mpsc::UnboundedSender<RouterLog>,
    platform: Arc<Platform>,
}

impl Logplex {
    /// Starts delivering the router's lines to `platform`'s drains until `shutdown`.
    pub fn start(platform: Arc<Platform>, shutdown: CancellationToken) -> Logplex {
        let (lines, receiver) = mpsc::unbounded_channel();
        tokio::spawn(deliver(platform.clone(), receiver, shutdown));
        Logplex { lines, platform }
    }

    /// Logs one request, if any drain wants it.
    pub fn log(&self, line: RouterLog) {
        if !self.platform.drains.lock().unwrap().is_empty() {
            let _ = self.lines.send(line);
        }
    }
}

/// Gathers lines and posts them to every drain every [`FLUSH_EVERY`].
async fn deliver(
    platform: Arc<Platform>,
    mut lines: mpsc::UnboundedReceiver<RouterLog>,
    shutdown: CancellationToken,
) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(POST_TIMEOUT)
        .build()
        .expect("the HTTP client initialises");
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    let mut pending = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            line = lines.recv() => match line {
                Some(line) => {
                    pending.push(line);
                    if pending.len() < MAX_BATCH {
                        continue;
                    }
                }
                None => break,
            },
            _ = ticker.tick() => {}
        }
        if pending.is_empty() {
            continue;
        }
        let batch = std::mem::take(&mut pending);
        let body: String = batch
            .iter()
            .map(|line| {
                let message = line.message(&platform.app);
                // The count covers the message and its newline.
                format!("{} {message}\n", message.len() + 1)
            })
            .collect();
        let drains = platform.drains.lock().unwrap().clone();
        for drain in drains {
            let client = client.clone();
            let body = body.clone();
            let count = batch.len();
            tokio::spawn(async move {
                if let Err(error) = post(&client, &drain, count, body).await {
                    tracing::debug!(url = %redact(&drain.url), %error, "A drain lost a batch.");
                }
            });
        }
    }
}

/// One batch to one drain, as logplex posts it.
async fn post(
    client: &reqwest::Client,
    drain: &crate::resources::LogDrain,
    count: usize,
    body: String,
) -> Result<(), String> {
    let mut url = reqwest::Url::parse(&drain.url).map_err(|e| e.to_string())?;
    let user = url.username().to_string();
    let password = url.password().map(str::to_string);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut request = client
        .post(url)
        .header("content-type", "application/logplex-1")
        .header("logplex-msg-count", count.to_string())
        .header("logplex-frame-id", uuid::Uuid::new_v4().to_string())
        .header("logplex-drain-token", &drain.token)
        .header("user-agent", "Logplex/v72")
        .body(body);
    if !user.is_empty() || password.is_some() {
        request = request.basic_auth(user, password);
    }
    let response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

/// A drain URL without its password, for the log.
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(a drain)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_as_herokus_router_line() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T09:00:00.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let served = RouterLog {
            at,
            method: "GET".into(),
            path: "/a b".into(),
            dyno: Some("web.2".into()),
            connect_ms: Some(0),
            service_ms: Some(187),
            status: 200,
            bytes: 20,
            error: None,
        };
        let text = served.message("my-app");
        assert!(text.starts_with("<158>1 2026-11-24T09:00:00.500000+00:00 host heroku router - at=info method=GET path=\"/a b\" host=my-app.herokuapp.com request_id="), "{text}");
        assert!(
            text.ends_with(
                "dyno=web.2 connect=0ms service=187ms status=200 bytes=20 protocol=http"
            ),
            "{text}"
        );
        let timeout = RouterLog {
            dyno: None,
            connect_ms: None,
            service_ms: Some(30_000),
            status: 503,
            bytes: 0,
            error: Some(("H12", "Request timeout")),
            ..served
        };
        let text = timeout.message("my-app");
        assert!(
            text.contains("at=error code=H12 desc=\"Request timeout\" method=GET"),
            "{text}"
        );
        assert!(
            text.contains("dyno= connect= service=30000ms status=503"),
            "{text}"
        );
        assert_eq!(redact("http://u:secret@h/logs"), "http://u:***@h/logs");
    }
}
