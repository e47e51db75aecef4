//! The leader lock as a PostgreSQL session-level advisory lock (`pg_try_advisory_lock`), taken
//! on a dedicated connection that does nothing else.
//!
//! PostgreSQL releases the lock the moment the session ends, whether the holder exits, is
//! killed or loses its network, so the standby (which retries every second) takes over within
//! about a second of the leader's end. The holder checks its session every second and before
//! every write; when the connection ends or a check fails it steps down at once. With the
//! database unreachable nobody leads: two leaders are worse than none for a minute.
//! TLS follows the URL's `sslmode` as libpq does (`tls.rs`); Heroku's `DATABASE_URL` works as is.

use super::Leadership;
use crate::Secret;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

pub(crate) mod tls;

/// The advisory lock's default key (`leader_lock_key`): "autosc" in ASCII, so that it is
/// recognisable in `pg_locks`.
pub const DEFAULT_LOCK_KEY: i64 = 0x6175_746f_7363;

/// How often a standby tries for the lock and a leader checks its session.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The longest a connection attempt or a check may take before it counts as lost.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Parses a PostgreSQL URL (`postgres://user:password@host:5432/db?sslmode=require`) or a
/// `key=value` connection string. The error never repeats the URL: it may hold a password.
pub fn parse_url(url: &Secret) -> Result<Config, String> {
    let config = Config::from_str(url.expose()).map_err(|error| {
        // tokio-postgres says only "invalid connection string"; its source names the option
        // ("invalid value for option `sslmode`") but may name any unknown key, so it is read
        // here, never shown.
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        if cause.is_some_and(|cause| cause.contains("`sslmode`")) {
            return "a PostgreSQL URL whose sslmode is disable, prefer or require: verify-ca and \
                    verify-full are not supported; require encrypts without checking the server's \
                    certificate"
                .to_string();
        }
        format!("a PostgreSQL URL such as \"postgres://user:password@host:5432/db\" ({error})")
    })?;
    if config.get_hosts().is_empty() {
        return Err(
            "a PostgreSQL URL with a host, such as \"postgres://user:password@host:5432/db\""
                .to_string(),
        );
    }
    Ok(config)
}

/// "user@host:port/db", for logs and `check`: never the password.
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "?".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().or(config.get_user()).unwrap_or("?")
    )
}

/// The URL's `sslmode` as a word, for logs and `check`.
pub fn describe_ssl_mode(config: &Config) -> &'static str {
    match config.get_ssl_mode() {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        // tokio-postgres's SslMode is non_exhaustive; a newer one may know more modes.
        _ => "other",
    }
}

pub struct PostgresLock {
    config: Config,
    description: String,
    key: i64,
    /// Used by `prefer` and `require`; `disable` never starts a handshake.
    tls: MakeRustlsConnect,
}

impl PostgresLock {
    pub fn new(url: &Secret) -> Result<Self, String> {
        let mut config = parse_url(url)?;
        config
            .connect_timeout(QUERY_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .application_name("autoscalebot leader lock");
        Ok(PostgresLock {
            description: describe(&config),
            config,
            key: DEFAULT_LOCK_KEY,
            tls: tls::connector(),
        })
    }

    /// Uses another advisory lock key (`leader_lock_key`: two separate fleets in one database).
    pub fn with_key(mut self, key: i64) -> Self {
        self.key = key;
        self
    }

    /// Starts the elector. It runs until `shutdown` completes, then ends the session (which
    /// releases the lock). Call it after every loop that acts has stopped.
    pub fn start(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (Leadership, JoinHandle<()>) {
        let (state, watch) = watch::channel(false);
        let (confirm, requests) = mpsc::channel(64);
        let task = tokio::spawn(self.elect(state, requests, shutdown));
        (Leadership::from_parts(watch, confirm), task)
    }

    async fn elect(
        self,
        state: watch::Sender<bool>,
        mut requests: mpsc::Receiver<oneshot::Sender<bool>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        tokio::pin!(shutdown);
        let database = &self.description;
        let sslmode = describe_ssl_mode(&self.config);
        let mut last_error: Option<String> = None;
        loop {
            let (connector, handshake_done) = tls::NotingTls::new(self.tls.clone());
            let connected = tokio::select! {
                _ = &mut shutdown => break,
                connected = tokio::time::timeout(QUERY_TIMEOUT, self.config.connect(connector)) => connected,
            };
            let (client, connection) = match connected {
                Ok(Ok(pair)) => pair,
                Ok(Err(error)) => {
                    self.unreachable(&mut last_error, explain(&error));
                    if pause(&mut shutdown, &mut requests).await {
                        break;
                    }
                    continue;
                }
                Err(_) => {
                    self.unreachable(
                        &mut last_error,
                        format!("no answer within {QUERY_TIMEOUT:?}"),
                    );
                    if pause(&mut shutdown, &mut requests).await {
                        break;
                    }
                    continue;
                }
            };
            let tls = handshake_done.load(Ordering::Relaxed);
            if last_error.take().is_some() {
                tracing::info!(%database, tls, %sslmode, "Reached the leader-lock database again.");
            }
            let mut session = tokio::spawn(connection);
            let mut held = false;
            let mut ticker = tokio::time::interval(CHECK_EVERY);
            let stop = loop {
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break true,
                    ended = &mut session => {
                        let why = match ended {
                            Ok(Ok(())) => "the database closed the session".to_string(),
                            Ok(Err(error)) => explain(&error),
                            Err(error) => error.to_string(),
                        };
                        self.step_down(&state, held, &why);
                        break false;
                    }
                    Some(reply) = requests.recv() => {
                        let alive = held && check(&client).await.is_ok();
                        let _ = reply.send(alive);
                        if held && !alive {
                            self.step_down(&state, held, "the session did not answer a check before a write");
                            break false;
                        }
                    }
                    _ = ticker.tick() => {
                        if held {
                            if let Err(why) = check(&client).await {
                                self.step_down(&state, held, &why);
                                break false;
                            }
                            continue;
                        }
                        match try_lock(&client, self.key).await {
                            Ok(true) => {
                                held = true;
                                state.send_replace(true);
                                tracing::info!(%database, key = self.key, tls, %sslmode, "Took the leader lock: this worker scales and notifies.");
                            }
                            Ok(false) => {
                                tracing::debug!(%database, "Another worker holds the leader lock; standing by.");
                            }
                            Err(why) => {
                                self.step_down(&state, held, &why);
                                break false;
                            }
                        }
                    }
                }
            };
            // Ending the session releases the lock on the server.
            drop(client);
            session.abort();
            if stop {
                break;
            }
            if pause(&mut shutdown, &mut requests).await {
                break;
            }
        }
        state.send_replace(false);
        tracing::info!(%database, "Leader lock released.");
    }

    fn unreachable(&self, last_error: &mut Option<String>, error: String) {
        // Logged when it changes, not every second of an outage.
        if last_error.as_ref() != Some(&error) {
            tracing::warn!(
                database = %self.description, %error,
                "Cannot reach the leader-lock database: no worker leads until it can, so nothing is scaled or told."
            );
            *last_error = Some(error);
        }
    }

    fn step_down(&self, state: &watch::Sender<bool>, held: bool, why: &str) {
        state.send_replace(false);
        if held {
            tracing::warn!(database = %self.description, reason = why, "Lost the leader lock: stepping down at once.");
        } else {
            tracing::warn!(database = %self.description, reason = why, "Lost the leader-lock connection.");
        }
    }
}

/// Waits a retry period, answering "not leader" to any confirmation asked meanwhile. `true`
/// when shutdown came first.
async fn pause(
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    requests: &mut mpsc::Receiver<oneshot::Sender<bool>>,
) -> bool {
    let sleep = tokio::time::sleep(CHECK_EVERY);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = shutdown.as_mut() => return true,
            _ = &mut sleep => return false,
            Some(reply) = requests.recv() => { let _ = reply.send(false); }
        }
    }
}

/// An error with its causes: tokio-postgres's own text is only "db error" or "error performing
/// TLS handshake", and the server's reason ("pg_hba.conf rejects connection … no encryption")
/// is in the source. Server messages name the user and database, never the password.
fn explain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // A server's DETAIL and HINT come on lines of their own; a log field keeps one line.
    text.replace('\n', "; ")
}

async fn try_lock(client: &Client, key: i64) -> Result<bool, String> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&key];
    let query = client.query_one("SELECT pg_try_advisory_lock($1)", &params);
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(Ok(row)) => row.try_get::<_, bool>(0).map_err(|error| explain(&error)),
        Ok(Err(error)) => Err(explain(&error)),
        Err(_) => Err(format!("no answer within {QUERY_TIMEOUT:?}")),
    }
}

/// The session is alive (and so the lock still held) when it answers a trivial query.
async fn check(client: &Client) -> Result<(), String> {
    match tokio::time::timeout(QUERY_TIMEOUT, client.simple_query("SELECT 1")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(explain(&error)),
        Err(_) => Err(format!("no answer within {QUERY_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_described_without_its_password() {
        let url = Secret::new("postgres://bot:hunter2@db.example.com:6543/locks?sslmode=disable");
        let config = parse_url(&url).unwrap();
        let described = describe(&config);
        assert_eq!(described, "bot@db.example.com:6543/locks");
        assert!(!described.contains("hunter2"));
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        for text in [
            "postgres://bot:hunter2@db.example.com:notaport/locks",
            "not a url hunter2",
        ] {
            let error = parse_url(&Secret::new(text)).unwrap_err();
            assert!(error.contains("PostgreSQL URL"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn each_sslmode_is_read_as_libpq_reads_it() {
        let mode = |url: &str| describe_ssl_mode(&parse_url(&Secret::new(url)).unwrap());
        // Heroku's DATABASE_URL names no sslmode: prefer, which takes TLS when offered.
        assert_eq!(
            mode("postgres://bot:pw@db.example.com:5432/locks"),
            "prefer"
        );
        for word in ["disable", "prefer", "require"] {
            assert_eq!(
                mode(&format!(
                    "postgres://bot:pw@db.example.com/locks?sslmode={word}"
                )),
                word
            );
            assert_eq!(
                mode(&format!("host=db.example.com user=bot sslmode={word}")),
                word
            );
        }
    }

    #[test]
    fn an_sslmode_that_checks_the_certificate_is_refused_naming_require() {
        for word in ["verify-full", "verify-ca", "allow", "bogus"] {
            for url in [
                format!("postgres://bot:hunter2@db.example.com/locks?sslmode={word}"),
                format!("host=db.example.com user=bot password=hunter2 sslmode={word}"),
            ] {
                let error = parse_url(&Secret::new(url)).unwrap_err();
                assert!(error.contains("sslmode"), "{error}");
                assert!(error.contains("require"), "{error}");
                assert!(!error.contains("hunter2"), "{error}");
            }
        }
    }
}
