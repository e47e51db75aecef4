//! The heartbeat's own HTTP/1.1 connection to the app, kept alive between beats and driven
//! inside the probing task with hyper's connection API. A beat is then one request on a socket
//! already open and nothing else: no pool to check out from, no redirect layer, no URL parsed
//! again, no second task to wake (reqwest does all four on every request, which the worker's
//! profile showed cost more than the request itself).
//!
//! It speaks plain HTTP and HTTPS (rustls, the webpki roots reqwest uses) and only GET. A dead
//! kept connection (the app closed it while idle) is replaced and the request sent once more.
//! Whatever it does not do (a proxy from the environment, following a redirect) the heartbeat
//! leaves to reqwest ([`super::Heartbeat`]). It decides nothing about the answer.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

/// What a kept connection reads and writes: a TCP stream, with TLS or without.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Io = TokioIo<Box<dyn Stream>>;
/// hyper's side of a kept connection, polled by whichever GET is under way.
type Driven = Pin<Box<Connection<Io, Empty<Bytes>>>>;

struct Open {
    sender: SendRequest<Empty<Bytes>>,
    /// `None` once it ended (the app closed it): it is polled no more, and not kept.
    connection: Option<Driven>,
}

/// One origin's kept connection, and the request a heartbeat sends on it, made once.
pub struct KeptConnection {
    host: String,
    port: u16,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    request: hyper::Request<Empty<Bytes>>,
    open: Mutex<Option<Open>>,
}

/// What one GET came back with: the status, the response's headers, and whether the body was
/// read to its end.
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
}

/// Why a GET got no answer, worded without the URL (it may carry credentials).
#[derive(Debug)]
pub enum Failure {
    Connect(String),
    /// Nothing listens at the URL's host and port: the connection was refused.
    Refused(String),
    Request(String),
    Body(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(why) | Failure::Refused(why) => {
                write!(f, "connection failed: {why}")
            }
            Failure::Request(why) => write!(f, "the request failed: {why}"),
            Failure::Body(why) => write!(f, "the answer broke off: {why}"),
        }
    }
}

impl KeptConnection {
    /// `None` for a URL this connection cannot serve (not http or https, no host): reqwest
    /// does.
    pub fn new(url: &Url, headers: &[(hyper::header::HeaderName, &str)]) -> Option<Self> {
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = url.port_or_known_default()?;
        let tls = match url.scheme() {
            "http" => None,
            "https" => {
                let name = rustls::pki_types::ServerName::try_from(host.to_string()).ok()?;
                Some((tls_config(), name))
            }
            _ => return None,
        };
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let mut request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .body(Empty::new())
            .ok()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                name.clone(),
                hyper::header::HeaderValue::from_str(value).ok()?,
            );
        }
        Some(KeptConnection {
            host: host.to_string(),
            port,
            tls,
            request,
            open: Mutex::new(None),
        })
    }

    /// Whether a connection is kept for the next GET.
    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.open.lock().expect("not poisoned").is_some()
    }

    /// One GET and its whole body. On a kept connection that turns out dead before an answer
    /// began, once more on a new one (a GET may be repeated).
    pub async fn get(&self) -> Result<Answer, Failure> {
        let kept = self.open.lock().expect("not poisoned").take();
        let reused = kept.is_some();
        let open = match kept {
            Some(open) => open,
            None => self.connect().await?,
        };
        match self.exchange(open).await {
            Err(Tried::Unanswered(_)) if reused => {
                let open = self.connect().await?;
                self.exchange(open).await.map_err(Tried::into_failure)
            }
            result => result.map_err(Tried::into_failure),
        }
    }

    async fn connect(&self) -> Result<Open, Failure> {
        let connect = |error: std::io::Error| Failure::Connect(error.to_string());
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::ConnectionRefused => Failure::Refused(error.to_string()),
                _ => connect(error),
            })?;
        tcp.set_nodelay(true).map_err(connect)?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(connect)?;
                Box::new(tls)
            }
        };
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| Failure::Connect(error.to_string()))?;
        Ok(Open {
            sender,
            connection: Some(Box::pin(connection)),
        })
    }

    /// Sends the request on `open` and reads the answer, polling the connection meanwhile;
    /// keeps `open` for the next beat when it can carry another request.
    async fn exchange(&self, mut open: Open) -> Result<Answer, Tried> {
        let Open { sender, connection } = &mut open;
        drive(connection, sender.ready())
            .await
            .map_err(|error| Tried::Unanswered(error.to_string()))?;
        let request = clone_request(&self.request);
        let response = drive(connection, sender.send_request(request))
            .await
            .map_err(|error| {
                // Closed before any of the answer came: the kept connection was dead.
                if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
                    Tried::Unanswered(error.to_string())
                } else {
                    Tried::Failed(Failure::Request(error.to_string()))
                }
            })?;
        let (parts, mut body) = response.into_parts();
        loop {
            match drive(connection, async { Ok(body.frame().await) }).await {
                Ok(Some(Ok(_))) => {}
                Ok(None) => break,
                Ok(Some(Err(error))) | Err(error) => {
                    return Err(Tried::Failed(Failure::Body(error.to_string())))
                }
            }
        }
        if open.connection.is_some() && !open.sender.is_closed() {
            *self.open.lock().expect("not poisoned") = Some(open);
        }
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
        })
    }
}

/// How a try went wrong: before any answer (worth one more try on a new connection), or after.
enum Tried {
    Unanswered(String),
    Failed(Failure),
}

impl Tried {
    fn into_failure(self) -> Failure {
        match self {
            Tried::Unanswered(why) => Failure::Request(why),
            Tried::Failed(failure) => failure,
        }
    }
}

/// Awaits `future` while polling the connection that serves it, until the connection ends; a
/// connection that failed fails the future.
async fn drive<F, T>(connection: &mut Option<Driven>, future: F) -> Result<T, hyper::Error>
where
    F: Future<Output = Result<T, hyper::Error>>,
{
    use std::task::Poll;
    tokio::pin!(future);
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(result) = future.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        let Some(driven) = connection else {
            return Poll::Pending;
        };
        match driven.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(ended) => {
                *connection = None;
                if let Err(error) = ended {
                    return Poll::Ready(Err(error));
                }
                // Closed cleanly: what it delivered is there for the future to see.
            }
        }
    })
    .await
}

fn clone_request(request: &hyper::Request<Empty<Bytes>>) -> hyper::Request<Empty<Bytes>> {
    let mut copy = hyper::Request::new(Empty::new());
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// One TLS client setup for every kept connection of the worker: rustls with ring and the
/// webpki roots, HTTP/1.1 only.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}
