//! A connection to a target that has just started, for a client that waited for it, confirmed
//! before the client is given it.
//!
//! A target with a small listen backlog (5, as Python's `http.server`) drops what a herd of
//! released clients sends past it: the connect succeeds on our side, the target's kernel never
//! took the connection, and the first bytes are retransmitted with a growing back-off for tens
//! of seconds. So the client's first bytes are sent here and the connection is kept only once
//! the target's kernel has acknowledged all of them (`SIOCOUTQ` is 0, `TCP_INFO` says
//! established): it is then in the target's accept queue or accepted. Otherwise the attempt
//! fails within its patience and the connection is reset, so the target never sees the bytes
//! and the caller may try again without sending anything twice.
//!
//! It decides nothing about how often to try: that is the caller's.

use super::{Endpoint, Stream};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Bytes read from a waiting client to confirm with (the rest stays in its socket).
const FIRST_BYTES: usize = 16 * 1024;

/// TCP states (`include/net/tcp_states.h`); libc does not name them.
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;
const TCP_CLOSE_WAIT: u8 = 8;

/// Connects to `target`, sends `first` (filled first with what the client has sent by now, if
/// it is empty) and waits until the target has taken it, all within `patience`. A client that
/// has sent nothing yet gives nothing to confirm with: the connection is kept as it is.
///
/// `first` keeps its bytes whatever happens, for the next attempt. On a failure the target's
/// connection is reset rather than closed, so that bytes it never acknowledged are not
/// delivered later by a connection nobody reads.
pub async fn connect_confirmed(
    target: &Endpoint,
    client: &Stream,
    first: &mut Vec<u8>,
    patience: Duration,
) -> io::Result<Stream> {
    let mut attempt = Resetting(None);
    let outcome = tokio::time::timeout(patience, async {
        attempt.0 = Some(target.connect().await?);
        if first.is_empty() {
            read_waiting(client, first)?;
        }
        let connection = attempt.0.as_mut().expect("connected above");
        if first.is_empty() {
            return Ok(());
        }
        connection.write_all(first).await?;
        if let Stream::Tcp(_) = connection {
            let mut pause = Duration::from_millis(1);
            while !taken(connection.as_raw_fd())? {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(16));
            }
        }
        Ok(())
    })
    .await;
    match outcome {
        Ok(Ok(())) => Ok(attempt.0.take().expect("connected")),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the target did not take the connection in time",
        )),
    }
}

/// A connection reset (SO_LINGER 0) when dropped, unless taken out.
struct Resetting(Option<Stream>);

impl Drop for Resetting {
    fn drop(&mut self) {
        if let Some(stream) = &self.0 {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Reads what the client has sent so far, without waiting, up to [`FIRST_BYTES`].
fn read_waiting(client: &Stream, into: &mut Vec<u8>) -> io::Result<()> {
    let mut buffer = [0u8; 4096];
    while into.len() < FIRST_BYTES {
        let room = buffer.len().min(FIRST_BYTES - into.len());
        // SAFETY: recv(2) into a buffer we own, without waiting. tokio's readiness is not
        // consulted: the socket was registered a moment ago and has not been polled yet.
        let read = unsafe {
            libc::recv(
                client.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                room,
                libc::MSG_DONTWAIT,
            )
        };
        match read {
            0 => break,
            read if read > 0 => into.extend_from_slice(&buffer[..read as usize]),
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Whether the target's kernel has acknowledged everything sent on `fd`, and the connection is
/// established (or the target has answered and closed). A reset is an error.
fn taken(fd: RawFd) -> io::Result<bool> {
    // SAFETY: an all-zero tcp_info is valid; getsockopt(2) fills at most its size.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt(2) into a struct we own, with its length.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut length,
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    if info.tcpi_state == TCP_CLOSE {
        return Err(io::Error::from(io::ErrorKind::ConnectionReset));
    }
    let mut unacknowledged: libc::c_int = 0;
    // SAFETY: ioctl(2) SIOCOUTQ (= TIOCOUTQ) writes one int we own.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unacknowledged) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unacknowledged == 0 && matches!(info.tcpi_state, TCP_ESTABLISHED | TCP_CLOSE_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A client connected to a listener we hold, as the activator holds a waiting client.
    async fn waiting_client(sent: &[u8]) -> (tokio::net::TcpStream, Stream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        client.write_all(sent).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (client, Stream::Tcp(accepted))
    }

    #[tokio::test]
    async fn the_first_bytes_reach_a_target_that_takes_them() {
        let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(target.local_addr().unwrap().to_string());
        let (_client, waiting) = waiting_client(b"GET / HTTP/1.0\r\n\r\n").await;
        // The client's bytes are in its socket; wait until they can be read.
        waiting.readable().await.unwrap();
        let mut first = Vec::new();
        let connection =
            connect_confirmed(&endpoint, &waiting, &mut first, Duration::from_secs(30))
                .await
                .unwrap();
        assert_eq!(first, b"GET / HTTP/1.0\r\n\r\n");
        let (mut accepted, _) = target.accept().await.unwrap();
        let mut got = vec![0; first.len()];
        accepted.read_exact(&mut got).await.unwrap();
        assert_eq!(got, first);
        drop(connection);
    }

    #[tokio::test]
    async fn a_target_whose_backlog_is_full_is_not_confirmed_and_never_gets_the_bytes() {
        // A listener that never accepts, its backlog filled by connections we keep.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        socket.listen(0).unwrap();
        let address = socket.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        let endpoint = Endpoint::Tcp(address.to_string());
        let (_client, waiting) = waiting_client(b"hello").await;
        waiting.readable().await.unwrap();
        let mut first = Vec::new();
        // Fill the queue until an attempt is refused its confirmation; with a backlog of 0 it
        // holds one connection, so a handful is plenty.
        let mut refused = None;
        for _ in 0..8 {
            match connect_confirmed(&endpoint, &waiting, &mut first, Duration::from_millis(300))
                .await
            {
                Ok(connection) => fillers.push(connection),
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            }
        }
        let error = refused.expect("a full backlog refuses a confirmation");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert_eq!(first, b"hello", "the bytes are kept for the next attempt");
    }
}
