//! The activator's edges to the operating system: endpoints (`host:port` or `unix:/path`), the
//! listening socket (with the stale-unix-socket rule), client and target streams, the
//! forwarding lanes (`forward.rs`), a connection to a target that has just started, confirmed
//! before a waiting client is given it (`confirm.rs`), and a local target process handed the
//! socket the systemd way (`process.rs`).
//!
//! Nothing here decides when to start or stop a target: that is the brain in the
//! `autoscalebot` crate (`src/activator/`). Nothing here holds a lock on the forwarding path.

pub mod confirm;
pub mod forward;
pub mod process;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Connections waiting to be accepted. Large, so that a flood during a cold start waits in the
/// kernel rather than being refused.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Where to listen or connect: `host:port` or `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`; the host may be a name, an IPv4 address or a bracketed IPv6 address.
    Tcp(String),
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses `host:port` or `unix:/path`; the error says what was expected.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("a socket path after unix:, such as unix:/run/app.sock".into());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let expected = "host:port (such as 127.0.0.1:8080) or unix:/path/to.sock";
        let (host, port) = text.rsplit_once(':').ok_or(expected)?;
        let host_ok = !host.is_empty()
            && !host.contains(['/', ' '])
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        if !host_ok || port.parse::<u16>().is_err() {
            return Err(expected.into());
        }
        Ok(Endpoint::Tcp(text.to_string()))
    }

    /// Connects to this endpoint, with `TCP_NODELAY` so forwarded small writes are not held.
    pub async fn connect(&self) -> io::Result<Stream> {
        match self {
            Endpoint::Tcp(address) => {
                let stream = TcpStream::connect(address.as_str()).await?;
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(address) => f.write_str(address),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Why the listening socket could not be made. Each names the endpoint and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{endpoint}: another server is listening on this unix socket; stop it or choose another path")]
    UnixInUse { endpoint: String },
    #[error("{endpoint}: the path exists and is not a socket; refusing to remove it")]
    NotASocket { endpoint: String },
    #[error("{endpoint}: {source}")]
    Io {
        endpoint: String,
        #[source]
        source: io::Error,
    },
}

/// A bound, listening socket. A unix socket's file is removed when this is dropped.
pub struct BoundSocket {
    pub socket: socket2::Socket,
    pub endpoint: Endpoint,
    unix_path: Option<PathBuf>,
}

impl BoundSocket {
    /// The address actually bound (a TCP port 0 becomes the real port), for logs and tests.
    pub fn local_description(&self) -> String {
        match (&self.endpoint, self.socket.local_addr()) {
            (Endpoint::Tcp(_), Ok(address)) => address
                .as_socket()
                .map(|address| address.to_string())
                .unwrap_or_else(|| self.endpoint.to_string()),
            _ => self.endpoint.to_string(),
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsRawFd for BoundSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl BoundSocket {
    /// Whether a connection waits to be accepted, without waiting or accepting.
    pub fn has_waiting_connection(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one pollfd we own, with a zero timeout.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready > 0 && poll.revents & libc::POLLIN != 0
    }

    /// Accepts every waiting connection and closes it cleanly (what it sent is read and
    /// dropped, then a FIN, so the client sees an end rather than a reset). Returns how many.
    pub fn close_waiting_connections(&self) -> usize {
        let mut closed = 0;
        while self.has_waiting_connection() {
            match self.socket.accept() {
                Ok((connection, _)) => {
                    let _ = connection.set_nonblocking(true);
                    discard_unread(&connection);
                    let _ = connection.shutdown(std::net::Shutdown::Both);
                    closed += 1;
                }
                Err(_) => break,
            }
        }
        closed
    }
}

/// Reads and drops what a socket received (at most 1 MiB), so that closing it sends a FIN and
/// not a reset.
fn discard_unread(socket: &impl AsRawFd) {
    let mut buffer = [0u8; 16 * 1024];
    for _ in 0..64 {
        // SAFETY: recv(2) into a buffer we own, non-blocking.
        let read = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if read <= 0 {
            break;
        }
    }
}

/// Ends a client's connection cleanly: drops what it sent, then closes our side with a FIN.
pub async fn close_cleanly(mut stream: Stream) {
    use tokio::io::AsyncWriteExt;
    discard_unread(&stream);
    let _ = stream.shutdown().await;
    discard_unread(&stream);
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds and listens on `endpoint`. For a unix path that already exists: a stale socket (one
/// nobody answers on) is removed and replaced; a live socket or any other file is an error.
/// The socket is left blocking: a target handed it as fd 3 expects what systemd gives.
pub fn bind(endpoint: &Endpoint) -> Result<BoundSocket, BindError> {
    let io_error = |source: io::Error| BindError::Io {
        endpoint: endpoint.to_string(),
        source,
    };
    match endpoint {
        Endpoint::Tcp(address) => {
            use std::net::ToSocketAddrs;
            let address = address
                .to_socket_addrs()
                .map_err(io_error)?
                .next()
                .ok_or_else(|| io_error(io::Error::other("the host has no address")))?;
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(address),
                socket2::Type::STREAM,
                None,
            )
            .map_err(io_error)?;
            socket.set_reuse_address(true).map_err(io_error)?;
            socket.bind(&address.into()).map_err(io_error)?;
            socket.listen(LISTEN_BACKLOG).map_err(io_error)?;
            Ok(BoundSocket {
                socket,
                endpoint: endpoint.clone(),
                unix_path: None,
            })
        }
        Endpoint::Unix(path) => {
            clear_stale_unix_socket(endpoint, path)?;
            let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
                .map_err(io_error)?;
            let address = socket2::SockAddr::unix(path).map_err(io_error)?;
            socket.bind(&address).map_err(io_error)?;
            let bound = BoundSocket {
                socket,
                endpoint: endpoint.clone(),
                unix_path: Some(path.clone()),
            };
            bound.socket.listen(LISTEN_BACKLOG).map_err(io_error)?;
            Ok(bound)
        }
    }
}

fn clear_stale_unix_socket(endpoint: &Endpoint, path: &Path) -> Result<(), BindError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        return Err(BindError::NotASocket {
            endpoint: endpoint.to_string(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(BindError::UnixInUse {
            endpoint: endpoint.to_string(),
        }),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(%endpoint, "Removing a stale unix socket nobody listens on.");
            std::fs::remove_file(path).map_err(|source| BindError::Io {
                endpoint: endpoint.to_string(),
                source,
            })
        }
        Err(source) => Err(BindError::Io {
            endpoint: endpoint.to_string(),
            source,
        }),
    }
}

/// A connected stream, TCP or unix.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.readable().await,
            Stream::Unix(stream) => stream.readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.writable().await,
            Stream::Unix(stream) => stream.writable().await,
        }
    }

    /// Runs a non-blocking syscall on the socket; a `WouldBlock` clears tokio's readiness.
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        match self {
            Stream::Tcp(stream) => stream.try_io(interest, f),
            Stream::Unix(stream) => stream.try_io(interest, f),
        }
    }
}

impl Stream {
    /// A socket from the forwarding lanes (non-blocking already) as a tokio stream; this
    /// registers it with the runtime, so call it inside one.
    pub fn from_owned_fd(fd: OwnedFd, unix: bool) -> io::Result<Stream> {
        Ok(if unix {
            Stream::Unix(UnixStream::from_std(fd.into())?)
        } else {
            Stream::Tcp(TcpStream::from_std(fd.into())?)
        })
    }

    /// The socket out of the runtime, for a forwarding lane.
    pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
        Ok(match self {
            Stream::Tcp(stream) => stream.into_std()?.into(),
            Stream::Unix(stream) => stream.into_std()?.into(),
        })
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(stream) => stream.as_fd(),
            Stream::Unix(stream) => stream.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(stream) => stream.as_raw_fd(),
            Stream::Unix(stream) => stream.as_raw_fd(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_or_say_what_was_expected() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:8080").unwrap(),
            Endpoint::Tcp("127.0.0.1:8080".into())
        );
        assert_eq!(
            Endpoint::parse("[::1]:80").unwrap(),
            Endpoint::Tcp("[::1]:80".into())
        );
        assert_eq!(
            Endpoint::parse("localhost:0").unwrap(),
            Endpoint::Tcp("localhost:0".into())
        );
        assert_eq!(
            Endpoint::parse("unix:/run/app.sock").unwrap(),
            Endpoint::Unix("/run/app.sock".into())
        );
        for bad in ["8080", "host:http", "::1:80", "unix:", "host:70000", ":80"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn a_stale_unix_socket_is_replaced_but_a_live_one_or_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let endpoint = Endpoint::Unix(path.clone());
        // Stale: bound once, then its listener dropped without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let bound = bind(&endpoint).expect("a stale socket is replaced");
        // Live: our own listener answers on it now.
        let error = bind(&endpoint).err().expect("a live socket is refused");
        assert!(matches!(error, BindError::UnixInUse { .. }), "{error}");
        drop(bound);
        assert!(!path.exists(), "the socket file is removed on drop");
        std::fs::write(&path, "data").unwrap();
        let error = bind(&endpoint).err().expect("a regular file is refused");
        assert!(error.to_string().contains("not a socket"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }
}
