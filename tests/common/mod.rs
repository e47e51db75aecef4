//! Shared helpers for the black-box tests: a real heartbeat server, a real Heroku-shaped
//! formation API that records what it was sent, the real `autoscalebot` binary run as a
//! child process, and the real `autoscalebot sandbox` platform driven through its admin API.
//! Every wait has a generous deadline and polls for an outcome; no fixed sleeps.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any test waits for an outcome before failing. Generous: CI machines are slow.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `condition` every 50 ms until it holds or `DEADLINE` passes; panics with `what`.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the async `condition` every 50 ms until it holds or `DEADLINE` passes; panics with
/// `what`.
pub async fn wait_until_async<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        if started.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{address}")
}

/// A response header the heartbeat sends: `(name, value)`.
type SentHeader = Arc<Mutex<Option<(String, String)>>>;
/// What the heartbeat handler shares with the test: latency, status, hits, header.
type HeartbeatState = (Arc<AtomicU64>, Arc<AtomicU16>, Arc<AtomicU64>, SentHeader);

/// An app whose heartbeat answers after a latency the test sets, with a status and a response
/// header the test can set too.
#[derive(Clone)]
pub struct HeartbeatServer {
    pub url: String,
    latency_ms: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicU64>,
    header: SentHeader,
}

impl HeartbeatServer {
    pub async fn start(latency_ms: u64) -> Self {
        let latency = Arc::new(AtomicU64::new(latency_ms));
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicU64::new(0));
        let header: SentHeader = Arc::new(Mutex::new(None));
        let state = (
            latency.clone(),
            status.clone(),
            hits.clone(),
            header.clone(),
        );
        let router = Router::new()
            .fallback(
                |State((latency, status, hits, header)): State<HeartbeatState>| async move {
                    tokio::time::sleep(Duration::from_millis(latency.load(Ordering::SeqCst))).await;
                    hits.fetch_add(1, Ordering::SeqCst);
                    let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                    let mut headers = HeaderMap::new();
                    if let Some((name, value)) = header.lock().unwrap().clone() {
                        headers.insert(
                            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                            value.parse().unwrap(),
                        );
                    }
                    (code, headers, "ok")
                },
            )
            .with_state(state);
        let base = serve(router).await;
        HeartbeatServer {
            url: format!("{base}/autoscalebot/heartbeat/"),
            latency_ms: latency,
            status,
            hits,
            header,
        }
    }

    /// Sends `name: value` with every answer from now on.
    pub fn set_header(&self, name: &str, value: &str) {
        *self.header.lock().unwrap() = Some((name.to_string(), value.to_string()));
    }

    /// Stops sending the header.
    pub fn clear_header(&self) {
        *self.header.lock().unwrap() = None;
    }

    pub fn set_latency_ms(&self, latency_ms: u64) {
        self.latency_ms.store(latency_ms, Ordering::SeqCst);
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits until `count` more heartbeats than so far have been served.
    pub async fn wait_for_more(&self, count: u64) {
        let hits = self.hits();
        wait_until(&format!("{count} more heartbeats"), || {
            self.hits() >= hits + count
        })
        .await;
    }
}

/// One request the formation API received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The API key it carried.
    pub fn api_key(&self) -> String {
        self.headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string()
    }

    /// The quantities this request set, by process type (an Update or a Batch Update).
    pub fn quantities(&self, process_type_of_path: &str) -> Vec<(String, u32)> {
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&self.body) else {
            return Vec::new();
        };
        if let Some(updates) = body["updates"].as_array() {
            return updates
                .iter()
                .filter_map(|update| {
                    Some((
                        update["type"].as_str()?.to_string(),
                        update["quantity"].as_u64()? as u32,
                    ))
                })
                .collect();
        }
        body["quantity"]
            .as_u64()
            .map(|quantity| vec![(process_type_of_path.to_string(), quantity as u32)])
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct FormationState {
    /// The first formation, for the one-app helpers.
    first: (String, String),
    /// (app, process type) → quantity.
    quantities: Mutex<std::collections::BTreeMap<(String, String), u32>>,
    /// app → the API keys accepted for it.
    keys: Mutex<std::collections::HashMap<String, Vec<String>>>,
    /// app → a version that changes with every write, for the ETag.
    versions: Mutex<std::collections::HashMap<String, u64>>,
    requests: Mutex<Vec<Recorded>>,
    /// The next N calls answer this status with a Heroku error body.
    failures: Mutex<Option<(u16, u32)>>,
}

/// A local HTTP server that answers the formation endpoints (Info, List, Update, Batch
/// Update) as Heroku documents them, with ETags and conditional GETs, for any number of apps,
/// and records every request.
#[derive(Clone)]
pub struct FormationApi {
    pub url: String,
    state: Arc<FormationState>,
}

impl FormationApi {
    pub async fn start(app: &str, process_type: &str, api_key: &str, quantity: u32) -> Self {
        let state = Arc::new(FormationState {
            first: (app.into(), process_type.into()),
            ..Default::default()
        });
        let router = Router::new()
            .route(
                "/apps/{app}/formation/{process_type}",
                get(formation).patch(formation),
            )
            .route("/apps/{app}/formation", get(formations).patch(formations))
            .with_state(state.clone());
        let url = serve(router).await;
        let api = FormationApi { url, state };
        api.add(app, process_type, api_key, quantity);
        api
    }

    /// Adds a formation, and `api_key` to the keys accepted for its app.
    pub fn add(&self, app: &str, process_type: &str, api_key: &str, quantity: u32) {
        self.state
            .quantities
            .lock()
            .unwrap()
            .insert((app.into(), process_type.into()), quantity);
        let mut keys = self.state.keys.lock().unwrap();
        let accepted = keys.entry(app.into()).or_default();
        if !accepted.iter().any(|key| key == api_key) {
            accepted.push(api_key.into());
        }
    }

    /// The first formation's quantity.
    pub fn quantity(&self) -> u32 {
        let (app, process_type) = self.state.first.clone();
        self.quantity_of(&app, &process_type)
    }

    pub fn quantity_of(&self, app: &str, process_type: &str) -> u32 {
        self.state.quantities.lock().unwrap()[&(app.to_string(), process_type.to_string())]
    }

    pub fn set_quantity(&self, quantity: u32) {
        let (app, process_type) = self.state.first.clone();
        self.state
            .quantities
            .lock()
            .unwrap()
            .insert((app.clone(), process_type), quantity);
        *self.state.versions.lock().unwrap().entry(app).or_default() += 1;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The quantities sent for the first formation, in order.
    pub fn patches(&self) -> Vec<u32> {
        let (app, process_type) = self.state.first.clone();
        self.patches_of(&app, &process_type)
    }

    /// The quantities sent for one formation (Update or Batch Update), in order.
    pub fn patches_of(&self, app: &str, process_type: &str) -> Vec<u32> {
        self.writes_of(app, process_type)
            .into_iter()
            .map(|(quantity, _)| quantity)
            .collect()
    }

    /// The quantities sent for one formation with the request that sent each, in order.
    pub fn writes_of(&self, app: &str, process_type: &str) -> Vec<(u32, Recorded)> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == "PATCH")
            .filter(|request| {
                request.path == format!("/apps/{app}/formation/{process_type}")
                    || request.path == format!("/apps/{app}/formation")
            })
            .flat_map(|request| {
                request
                    .quantities(process_type)
                    .into_iter()
                    .filter(|(kind, _)| kind == process_type)
                    .map(move |(_, quantity)| (quantity, request.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn fail_next(&self, status: u16, count: u32) {
        *self.state.failures.lock().unwrap() = Some((status, count));
    }
}

fn heroku_error(status: u16, id: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(serde_json::json!({ "id": id, "message": message })),
    )
        .into_response()
}

fn formation_json(app: &str, process_type: &str, quantity: u32) -> serde_json::Value {
    serde_json::json!({
        "app": { "id": "01234567-89ab-cdef-0123-456789abcdef", "name": app },
        "command": "bin/web",
        "created_at": "2026-01-01T00:00:00Z",
        "dyno_size": { "id": "01234567-89ab-cdef-0123-456789abcde0", "name": "standard-1X" },
        "id": "01234567-89ab-cdef-0123-456789abcde1",
        "quantity": quantity,
        "size": "standard-1X",
        "type": process_type,
        "updated_at": "2026-01-01T00:00:00Z"
    })
}

async fn formation(
    State(state): State<Arc<FormationState>>,
    method: Method,
    Path((app, process_type)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state, method, app, Some(process_type), headers, body)
}

async fn formations(
    State(state): State<Arc<FormationState>>,
    method: Method,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state, method, app, None, headers, body)
}

/// Answers one call and records it with its status.
fn answer(
    state: Arc<FormationState>,
    method: Method,
    app: String,
    process_type: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let body = String::from_utf8_lossy(&body).to_string();
    let path = match &process_type {
        Some(process_type) => format!("/apps/{app}/formation/{process_type}"),
        None => format!("/apps/{app}/formation"),
    };
    let response = respond(
        &state,
        &method,
        &app,
        process_type.as_deref(),
        &headers,
        &body,
    );
    state.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path,
        headers,
        body,
        status: response.status().as_u16(),
        at,
    });
    response
}

fn respond(
    state: &FormationState,
    method: &Method,
    app: &str,
    process_type: Option<&str>,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    if headers.get("accept").and_then(|v| v.to_str().ok())
        != Some("application/vnd.heroku+json; version=3")
    {
        return heroku_error(406, "not_acceptable", "Accept header must name version=3.");
    }
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let accepted = state
        .keys
        .lock()
        .unwrap()
        .get(app)
        .is_some_and(|keys| keys.iter().any(|known| known == key));
    // An unknown app with a key known for another app is a 404, as on Heroku.
    let known_key = state
        .keys
        .lock()
        .unwrap()
        .values()
        .any(|keys| keys.iter().any(|known| known == key));
    if !accepted && !known_key {
        return heroku_error(401, "unauthorized", "Invalid credentials provided.");
    }
    {
        let mut failures = state.failures.lock().unwrap();
        if let Some((status, remaining)) = *failures {
            *failures = (remaining > 1).then(|| (status, remaining - 1));
            return heroku_error(status, "unavailable", "Injected failure.");
        }
    }
    let mut quantities = state.quantities.lock().unwrap();
    let types: Vec<String> = quantities
        .keys()
        .filter(|(name, _)| name == app)
        .map(|(_, kind)| kind.clone())
        .collect();
    if !accepted
        || types.is_empty()
        || process_type.is_some_and(|kind| !types.iter().any(|t| t == kind))
    {
        return heroku_error(404, "not_found", "Couldn't find that formation.");
    }
    if *method == Method::PATCH {
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let updates: Vec<(String, Option<u64>)> = match process_type {
            Some(kind) => vec![(kind.to_string(), parsed["quantity"].as_u64())],
            None => parsed["updates"]
                .as_array()
                .map(|updates| {
                    updates
                        .iter()
                        .map(|update| {
                            (
                                update["type"].as_str().unwrap_or_default().to_string(),
                                update["quantity"].as_u64(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        if updates.is_empty()
            || updates
                .iter()
                .any(|(kind, quantity)| quantity.is_none() || !types.contains(kind))
        {
            return heroku_error(422, "invalid_params", "quantity must be an integer.");
        }
        for (kind, quantity) in updates {
            quantities.insert((app.to_string(), kind), quantity.unwrap() as u32);
        }
        *state
            .versions
            .lock()
            .unwrap()
            .entry(app.to_string())
            .or_default() += 1;
    }
    let version = state
        .versions
        .lock()
        .unwrap()
        .get(app)
        .copied()
        .unwrap_or(0);
    let etag = format!("\"{app}-{}-{version}\"", process_type.unwrap_or("all"));
    if *method == Method::GET
        && headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    let json = match process_type {
        Some(kind) => formation_json(app, kind, quantities[&(app.to_string(), kind.to_string())]),
        None => serde_json::Value::Array(
            types
                .iter()
                .map(|kind| formation_json(app, kind, quantities[&(app.to_string(), kind.clone())]))
                .collect(),
        ),
    };
    ([("etag", etag)], Json(json)).into_response()
}

/// The `autoscalebot` binary running as a child process, its output captured.
pub struct Bot {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// A command for the binary with a clean environment: no AUTOSCALE_* or HEROKU_API_KEY from
/// the machine running the tests.
pub fn command() -> Command {
    clean_command(env!("CARGO_BIN_EXE_autoscalebot"))
}

/// `program` (an `autoscalebot` installed elsewhere, say) with the same clean environment as
/// [`command`].
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars() {
        if name.starts_with("AUTOSCALE_") || name == "HEROKU_API_KEY" || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `command` to its end and returns its output; panics with the output when it fails.
pub fn run_ok(command: &mut Command) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?} did not start: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Writes `settings` to a temporary file and returns its directory and path.
pub fn settings_file(settings: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, settings).unwrap();
    (dir, path)
}

fn capture(mut source: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let sink = Arc::new(Mutex::new(String::new()));
    let writer = sink.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = source.read(&mut buffer) {
            if read == 0 {
                break;
            }
            writer
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    });
    sink
}

impl Bot {
    /// Starts `autoscalebot --settings FILE ARGS…` with `env` added.
    pub fn start(settings: &str, args: &[&str], env: &[(&str, &str)]) -> Bot {
        let (dir, path) = settings_file(settings);
        let mut command = command();
        command
            .arg(format!("--settings={}", path.display()))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the autoscalebot binary starts");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Bot {
            child,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// The folder holding the settings file (where a `downtime.txt` beside it goes).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills the worker with SIGKILL (no shutdown, no goodbye) and waits for it to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit, within the deadline.
    pub async fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.child).await
    }
}

/// Sends SIGTERM to `child` and waits for its exit, within the deadline.
pub async fn terminate(child: &mut Child) -> ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            // Let the capture threads drain the pipes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the process did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings for a worker pointed at local servers, with short intervals.
pub fn local_settings(api: &FormationApi, heartbeat: &HeartbeatServer, extra: &str) -> String {
    format!(
        r#"heroku_app_name = "test-app"
heroku_api_key = "test-key-0123456789"
heroku_api_url = "{api}"
heartbeat_url = "{heartbeat}"
heartbeat_interval_in_seconds = 0.2
{extra}
"#,
        api = api.url,
        heartbeat = heartbeat.url
    )
}

// ---- notification receivers: a real SMTP server, a web hook server, a silent server ----

/// A free loopback port: bound, then released for a server that starts later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One message the SMTP server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub raw: String,
    pub login: Option<String>,
    /// The TLS version the session ran over ("TLSv1.3"); `None` for plain SMTP.
    #[serde(default)]
    pub tls: Option<String>,
}

/// One AUTH attempt the SMTP server saw, whether or not it succeeded.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LoginTried {
    pub login: Option<String>,
    /// The TLS version the password crossed; `None`: it crossed in the clear.
    pub tls: Option<String>,
}

/// How the SMTP server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte, as on port 465 (`smtps://`).
    Implicit,
    /// STARTTLS offered, and MAIL and AUTH refused before it.
    Starttls,
}

/// A private CA made for one test and a server certificate it signed, as PEM files: what a
/// company mail relay has. The CA is in no trust store.
pub struct PrivateCa {
    /// The CA's certificate: what `email.tls_ca_file` names.
    pub ca_file: std::path::PathBuf,
    pub server_cert_file: std::path::PathBuf,
    pub server_key_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl PrivateCa {
    /// A CA, and a server certificate for `names` (host names or IP addresses) signed by it.
    pub fn new(names: &[&str]) -> PrivateCa {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "autoscalebot test relay CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut server_params = CertificateParams::new(names).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "test relay");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        PrivateCa {
            ca_file: write("ca.pem", ca_cert.pem()),
            server_cert_file: write("server.pem", server_cert.pem()),
            server_key_file: write("server.key", server_key.serialize_pem()),
            _dir: dir,
        }
    }
}

/// A real SMTP server (aiosmtpd, `tests/support/smtp_server.py`) as a child process.
pub struct SmtpServer {
    pub port: u16,
    child: Child,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts on `port`; with `login`, AUTH with that user and password is required. Each of
    /// `reject` is refused at RCPT with a 550.
    pub fn start(port: u16, login: Option<(&str, &str)>, reject: &[&str]) -> SmtpServer {
        SmtpServer::spawn(port, login, reject, None)
    }

    /// Starts on `port` speaking TLS as `mode` says, with a certificate `ca` signed.
    pub fn start_tls(
        port: u16,
        login: Option<(&str, &str)>,
        mode: SmtpTls,
        ca: &PrivateCa,
    ) -> SmtpServer {
        SmtpServer::spawn(port, login, &[], Some((mode, ca)))
    }

    fn spawn(
        port: u16,
        login: Option<(&str, &str)>,
        reject: &[&str],
        tls: Option<(SmtpTls, &PrivateCa)>,
    ) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mail.jsonl");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg(format!("--port={port}"))
            .arg(format!("--out={}", out.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((user, password)) = login {
            command
                .arg(format!("--user={user}"))
                .arg(format!("--password={password}"));
        }
        for address in reject {
            command.arg(format!("--reject={address}"));
        }
        if let Some((mode, ca)) = tls {
            let mode = match mode {
                SmtpTls::Implicit => "implicit",
                SmtpTls::Starttls => "starttls",
            };
            command
                .arg(format!("--tls={mode}"))
                .arg(format!("--cert={}", ca.server_cert_file.display()))
                .arg(format!("--key={}", ca.server_key_file.display()));
        }
        let mut child = command
            .spawn()
            .expect("python3 runs (aiosmtpd is installed by .ci/run)");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(
            line.trim(),
            "READY",
            "the SMTP server did not start (is aiosmtpd installed? `pip install aiosmtpd`)"
        );
        SmtpServer {
            port,
            child,
            out,
            _dir: dir,
        }
    }

    /// Every message received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    pub fn subjects(&self) -> Vec<String> {
        self.mails().into_iter().map(|mail| mail.subject).collect()
    }

    /// Every AUTH attempt so far, oldest first.
    pub fn logins_tried(&self) -> Vec<LoginTried> {
        std::fs::read_to_string(self.out.with_extension("jsonl.logins"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the hook server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookMode {
    Status(u16),
    /// Accepts the request and never answers.
    Hang,
}

struct HookState {
    mode: Mutex<HookMode>,
    requests: Mutex<Vec<Recorded>>,
}

/// A local HTTP server that records every request (method, path, headers, body) and answers
/// as the test says.
#[derive(Clone)]
pub struct HookServer {
    /// The base URL; hooks go to any path on it.
    pub url: String,
    state: Arc<HookState>,
}

impl HookServer {
    pub async fn start(mode: HookMode) -> Self {
        let state = Arc::new(HookState {
            mode: Mutex::new(mode),
            requests: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .fallback(
                |State(state): State<Arc<HookState>>,
                 method: Method,
                 uri: axum::http::Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let mode = *state.mode.lock().unwrap();
                    state.requests.lock().unwrap().push(Recorded {
                        method: method.to_string(),
                        path: uri.to_string(),
                        headers,
                        body: String::from_utf8_lossy(&body).to_string(),
                        status: match mode {
                            HookMode::Status(code) => code,
                            HookMode::Hang => 0,
                        },
                        at: Instant::now(),
                    });
                    match mode {
                        HookMode::Status(code) => {
                            (StatusCode::from_u16(code).unwrap(), "hook says hi").into_response()
                        }
                        HookMode::Hang => std::future::pending().await,
                    }
                },
            )
            .with_state(state.clone());
        let url = serve(router).await;
        HookServer { url, state }
    }

    pub fn set_mode(&self, mode: HookMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The bodies received, parsed as JSON (the default body is a JSON object).
    pub fn json_bodies(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter_map(|request| serde_json::from_str(&request.body).ok())
            .collect()
    }

    /// The `event` field of every JSON body received.
    pub fn events(&self) -> Vec<String> {
        self.json_bodies()
            .iter()
            .filter_map(|body| body["event"].as_str().map(str::to_string))
            .collect()
    }
}

/// A server that accepts connections and never says a word: a mail server that hangs.
pub struct SilentServer {
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        SilentServer { task }
    }

    /// Closes the port and every connection it held.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

// ---- The HTTP server and the log drain (issue 7) ----

impl Bot {
    /// The base URL of the worker's HTTP server (settings with `http_port = 0`), read from its
    /// "HTTP server listening" log line.
    pub async fn http_url(&self) -> String {
        let mut url = None;
        wait_until("the HTTP server is listening", || {
            url = self.stderr().lines().find_map(|line| {
                let at = line.find("address=")?;
                let address = line[at + "address=".len()..].split_whitespace().next()?;
                let port = address.rsplit(':').next()?.trim_matches('"');
                Some(format!("http://127.0.0.1:{port}"))
            });
            url.is_some()
        })
        .await;
        url.unwrap()
    }
}

/// A router line as Heroku logs it, with the given service time and status.
pub fn router_line(service_ms: u64, status: u16) -> String {
    router_line_for("/", service_ms, status)
}

/// A router line for a request to `path`.
pub fn router_line_for(path: &str, service_ms: u64, status: u16) -> String {
    format!(
        "<158>1 2026-11-24T09:00:00.000000+00:00 host heroku router - at=info method=GET path=\"{path}\" \
         host=test-app.herokuapp.com request_id=59da6323-2bc4-4143-8677-cc66ccfb115f \
         fwd=\"181.167.87.140\" dyno=web.1 connect=1ms service={service_ms}ms status={status} \
         bytes=6979 protocol=https"
    )
}

/// A logplex body: each message octet-counted, the count including the trailing newline.
pub fn logplex_body(messages: &[String]) -> String {
    messages
        .iter()
        .map(|message| format!("{} {message}\n", message.len() + 1))
        .collect()
}

/// POSTs a batch to the drain as logplex does; `password` None sends no credentials.
pub async fn post_drain(
    base: &str,
    password: Option<&str>,
    frame_id: &str,
    message_count: usize,
    body: String,
) -> u16 {
    post_drain_at(
        &format!("{base}/logs"),
        password,
        frame_id,
        message_count,
        body,
    )
    .await
}

/// POSTs a batch to the drain URL `url` (such as `{base}/logs/my-app`) as logplex does.
pub async fn post_drain_at(
    url: &str,
    password: Option<&str>,
    frame_id: &str,
    message_count: usize,
    body: String,
) -> u16 {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/logplex-1")
        .header("logplex-msg-count", message_count.to_string())
        .header("logplex-frame-id", frame_id)
        .header(
            "logplex-drain-token",
            "d.01234567-89ab-cdef-0123-456789abcdef",
        )
        .header("user-agent", "Logplex/v123")
        .body(body);
    if let Some(password) = password {
        request = request.basic_auth("token", Some(password));
    }
    request.send().await.unwrap().status().as_u16()
}

/// GETs a path of the worker's server: status and body.
pub async fn get_text(base: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Parses `/metrics` with a Prometheus text parser.
pub fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("/metrics is Prometheus text")
}

/// The value of the sample named `metric` whose labels include `labels`, if any.
pub fn metric_value(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .find(|sample| {
            labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
        .and_then(|sample| match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(*v),
            _ => None,
        })
}

/// A throwaway PostgreSQL server: `initdb` into a temporary folder and `pg_ctl start` on a free
/// loopback port, trusting local connections; stopped and removed when dropped. As root (CI),
/// it runs as the `postgres` user, since PostgreSQL refuses to run as root.
pub struct Postgres {
    pub port: u16,
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A cluster that takes TLS only, as Heroku Postgres does: `ssl = on` with a self-signed
    /// certificate made here, and `pg_hba.conf` accepting `hostssl` and rejecting `hostnossl`.
    pub fn start_tls_only() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls_only: bool) -> Postgres {
        let bin = postgres_bin().expect(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql package, as .ci/run does",
        );
        let dir = tempfile::tempdir().unwrap();
        let as_root =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
        if as_root {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let run = |program: &str, args: &[&str]| {
            let mut command = if as_root {
                let mut command = Command::new("runuser");
                command
                    .args(["-u", "postgres", "--"])
                    .arg(bin.join(program));
                command
            } else {
                Command::new(bin.join(program))
            };
            let output = command
                .args(args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|error| panic!("{program} did not start: {error}"));
            assert!(
                output.status.success(),
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let data_arg = data.display().to_string();
        run(
            "initdb",
            &[
                "-D",
                &data_arg,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        if tls_only {
            let certified = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])
            .unwrap();
            // The server refuses a key file that others can read or that it does not own.
            let write = |name: &str, text: &str| {
                let path = data.join(name);
                std::fs::write(&path, text).unwrap();
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
                if as_root {
                    let (uid, gid) = postgres_user();
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
                }
            };
            write("server.crt", &certified.cert.pem());
            write("server.key", &certified.signing_key.serialize_pem());
            write(
                "pg_hba.conf",
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostnossl all all all reject\n",
            );
            // server.crt and server.key in the data folder are the defaults' names.
            options.push_str(" -c ssl=on");
        }
        let log = dir.path().join("postgres.log").display().to_string();
        run(
            "pg_ctl",
            &[
                "-D", &data_arg, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        );
        Postgres {
            port,
            bin,
            data,
            _dir: dir,
        }
    }

    /// A URL for the leader lock.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let as_root =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
        let mut command = if as_root {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            command
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = command
            .args([
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The folder of `initdb` and `pg_ctl`: Debian's newest `/usr/lib/postgresql/N/bin`, else PATH.
fn postgres_bin() -> Option<std::path::PathBuf> {
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "there is no postgres user: install the postgresql package, as .ci/run does"
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

// ---- the sandbox platform ----

/// The key the sandbox accepts in the sandbox tests.
pub const SANDBOX_KEY: &str = "sandbox-test-key-5f3a9c";

/// `autoscalebot sandbox` running as a child process on free ports, driven through its admin
/// API (`/__sandbox/…`) over real HTTP.
pub struct SandboxProcess {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    pub api_url: String,
    pub app_url: String,
    pub app: String,
    client: reqwest::Client,
}

impl SandboxProcess {
    /// Starts `autoscalebot sandbox --port 0 --app-port 0 --api-key SANDBOX_KEY ARGS…` and
    /// waits until it prints its URLs.
    pub async fn start(args: &[&str]) -> SandboxProcess {
        let mut command = command();
        command
            .args([
                "sandbox",
                "--port",
                "0",
                "--app-port",
                "0",
                "--app",
                "sandbox-app",
            ])
            .env("HEROKU_API_KEY", SANDBOX_KEY)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the autoscalebot binary starts");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        let setting = |text: &str, key: &str| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix(&format!("{key} = \"")))
                .map(|rest| rest.trim_end_matches('"').to_string())
        };
        let started = Instant::now();
        let (api_url, app_url) = loop {
            let text = stdout.lock().unwrap().clone();
            if let (Some(api), Some(app)) =
                (setting(&text, "heroku_api_url"), setting(&text, "app_url"))
            {
                break (api, app);
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the sandbox exited with {status}: {}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the sandbox printed no URLs: {text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        SandboxProcess {
            child,
            stdout,
            stderr,
            api_url,
            app_url,
            app: "sandbox-app".into(),
            client: reqwest::Client::new(),
        }
    }

    pub fn output(&self) -> String {
        format!(
            "{}{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    pub async fn state(&self) -> serde_json::Value {
        self.client
            .get(format!("{}/__sandbox/state", self.api_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn quantity(&self) -> u32 {
        self.state().await["quantity"].as_u64().unwrap() as u32
    }

    /// Requests the dynos have served, heartbeats included.
    pub async fn served(&self) -> u64 {
        self.state().await["dynos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|dyno| dyno["served"].as_u64().unwrap())
            .sum()
    }

    /// Every API call the sandbox recorded, oldest first.
    pub async fn calls(&self) -> Vec<serde_json::Value> {
        self.client
            .get(format!("{}/__sandbox/calls", self.api_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The quantities of the PATCHes the sandbox accepted, in order.
    pub async fn accepted_patches(&self) -> Vec<u32> {
        self.calls()
            .await
            .iter()
            .filter(|call| call["method"] == "PATCH" && call["status"] == 200)
            .map(|call| {
                let body: serde_json::Value =
                    serde_json::from_str(call["request_body"].as_str().unwrap()).unwrap();
                body["quantity"].as_u64().unwrap() as u32
            })
            .collect()
    }

    /// Every quantity any PATCH asked for, accepted or not.
    pub async fn requested_quantities(&self) -> Vec<u32> {
        self.calls()
            .await
            .iter()
            .filter(|call| call["method"] == "PATCH")
            .filter_map(|call| {
                let body: serde_json::Value =
                    serde_json::from_str(call["request_body"].as_str()?).ok()?;
                body["quantity"].as_u64().map(|n| n as u32)
            })
            .collect()
    }

    /// Injects a fault through `POST /__sandbox/faults`.
    pub async fn inject(&self, fault: serde_json::Value) {
        let response = self
            .client
            .post(format!("{}/__sandbox/faults", self.api_url))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{fault} was refused");
    }

    pub async fn clear_faults(&self) {
        let response = self
            .client
            .delete(format!("{}/__sandbox/faults", self.api_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }

    pub async fn set_rate_limit_remaining(&self, remaining: u32) {
        let response = self
            .client
            .put(format!("{}/__sandbox/rate-limit", self.api_url))
            .json(&serde_json::json!({ "remaining": remaining }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    pub async fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.child).await
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings for a worker pointed at a sandbox, with short intervals. The key goes in through
/// `HEROKU_API_KEY` (see [`sandbox_env`]), as it would in production.
pub fn sandbox_settings(sandbox: &SandboxProcess, extra: &str) -> String {
    format!(
        r#"heroku_app_name = "{app}"
heroku_api_url = "{api}"
app_url = "{app_url}"
heartbeat_interval_in_seconds = 0.2
{extra}
"#,
        app = sandbox.app,
        api = sandbox.api_url,
        app_url = sandbox.app_url,
    )
}

pub fn sandbox_env() -> [(&'static str, &'static str); 1] {
    [("HEROKU_API_KEY", SANDBOX_KEY)]
}
