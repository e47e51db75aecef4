//! Forwarding both ways between a client and the target.
//!
//! On Linux, [`forward`] moves bytes with `splice(2)` through a pipe: socket → pipe → socket
//! inside the kernel, no copy into user space and no per-byte work here. No crate does exactly
//! this on tokio's own sockets (tokio-splice exists but is small and little used), so it is
//! written by hand on `libc`, with tokio's readiness (`readable`/`writable`/`try_io`) so that a
//! `WouldBlock` clears the right readiness. Elsewhere, and as the benchmark's comparison,
//! [`forward_copying`] uses `tokio::io::copy_bidirectional` (a buffer in user space).
//!
//! When one side ends its writing, the other side's writing is shut down (a half close), so
//! request/response protocols that rely on it keep working. Each function returns the bytes
//! moved `(client → target, target → client)`.

use super::Stream;
use std::io;

/// Forwards with the fastest method this platform has.
pub async fn forward(client: &mut Stream, target: &mut Stream) -> io::Result<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        splice::forward(client, target).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        forward_copying(client, target).await
    }
}

/// Forwards through a user-space buffer (`tokio::io::copy_bidirectional`).
pub async fn forward_copying(client: &mut Stream, target: &mut Stream) -> io::Result<(u64, u64)> {
    tokio::io::copy_bidirectional(client, target).await
}

#[cfg(target_os = "linux")]
mod splice {
    use super::Stream;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use tokio::io::Interest;

    /// The pipe size asked for, and the bytes asked of one `splice` call. If the kernel keeps
    /// the pipe smaller, `splice` simply moves less per call. 256 KiB, not more: pipes count
    /// against a per-user quota (`fs.pipe-user-pages-soft`, 64 MiB by default), and past it the
    /// kernel gives new pipes two pages, which would slow every later connection.
    const PIPE_BYTES: usize = 256 * 1024;
    const CHUNK_BYTES: usize = PIPE_BYTES;

    pub async fn forward(client: &Stream, target: &Stream) -> io::Result<(u64, u64)> {
        let upstream = Pipe::new()?;
        let downstream = Pipe::new()?;
        tokio::try_join!(
            one_way(client, target, &upstream),
            one_way(target, client, &downstream)
        )
    }

    /// A pipe whose ends are non-blocking and closed on exec.
    struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Pipe {
        fn new() -> io::Result<Pipe> {
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: pipe2 writes two fds into the array we own; we take ownership of both.
            let result =
                unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
            if result < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: both fds were just returned by pipe2 and belong to nobody else.
            let pipe = unsafe {
                Pipe {
                    read: OwnedFd::from_raw_fd(fds[0]),
                    write: OwnedFd::from_raw_fd(fds[1]),
                }
            };
            // A bigger pipe moves a bulk transfer in fewer calls. Best effort: past the
            // user's pipe quota the kernel refuses and the default 64 KiB stays.
            // SAFETY: fcntl(2) on a pipe fd we own.
            unsafe {
                libc::fcntl(
                    pipe.write.as_raw_fd(),
                    libc::F_SETPIPE_SZ,
                    PIPE_BYTES as libc::c_int,
                );
            }
            Ok(pipe)
        }
    }

    fn splice(from: RawFd, to: RawFd, length: usize) -> io::Result<usize> {
        // SAFETY: splice(2) between two fds we hold open; null offsets mean "current position".
        let moved = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                length,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if moved < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(moved as usize)
        }
    }

    /// Moves everything from `source` to `sink` until `source` ends, then half-closes `sink`.
    /// The pipe is always drained before it is filled again, so a `WouldBlock` while filling
    /// means the source is empty and one while draining means the sink is full.
    async fn one_way(source: &Stream, sink: &Stream, pipe: &Pipe) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            let filled = loop {
                source.readable().await?;
                match source.try_io(Interest::READABLE, || {
                    splice(source.as_raw_fd(), pipe.write.as_raw_fd(), CHUNK_BYTES)
                }) {
                    Ok(filled) => break filled,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(error) => return Err(error),
                }
            };
            if filled == 0 {
                // SAFETY: shutdown(2) on a socket fd we hold; errors (already closed) are moot.
                unsafe {
                    libc::shutdown(sink.as_raw_fd(), libc::SHUT_WR);
                }
                return Ok(total);
            }
            let mut left = filled;
            while left > 0 {
                sink.writable().await?;
                match sink.try_io(Interest::WRITABLE, || {
                    splice(pipe.read.as_raw_fd(), sink.as_raw_fd(), left)
                }) {
                    Ok(drained) => left -= drained,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(error) => return Err(error),
                }
            }
            total += filled as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream, UnixStream};

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    /// client_end ⇄ [forward] ⇄ target_end: the target reads to the end, answers every byte
    /// plus one, and closes; the client sees exactly that answer and the end.
    async fn round_trip(copying: bool) {
        let (mut client_end, proxy_client) = tcp_pair().await;
        let (proxy_target, target_end) = UnixStream::pair().unwrap();
        let forwarder = tokio::spawn(async move {
            let mut client = Stream::Tcp(proxy_client);
            let mut target = Stream::Unix(proxy_target);
            if copying {
                forward_copying(&mut client, &mut target).await
            } else {
                forward(&mut client, &mut target).await
            }
        });
        let target = tokio::spawn(async move {
            let mut target_end = target_end;
            let mut received = Vec::new();
            target_end.read_to_end(&mut received).await.unwrap();
            let answer: Vec<u8> = received.iter().map(|byte| byte.wrapping_add(1)).collect();
            target_end.write_all(&answer).await.unwrap();
            target_end.shutdown().await.unwrap();
            received.len()
        });
        // More than a pipe's capacity, so both directions loop and back-pressure.
        let payload: Vec<u8> = (0..3_000_000u32).map(|n| (n % 251) as u8).collect();
        client_end.write_all(&payload).await.unwrap();
        client_end.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client_end.read_to_end(&mut answer).await.unwrap();
        assert_eq!(target.await.unwrap(), payload.len());
        let expected: Vec<u8> = payload.iter().map(|byte| byte.wrapping_add(1)).collect();
        assert!(answer == expected, "the answer differs from what was sent");
        let (up, down) = forwarder.await.unwrap().unwrap();
        assert_eq!((up, down), (payload.len() as u64, payload.len() as u64));
    }

    #[tokio::test]
    async fn forward_moves_every_byte_both_ways_and_passes_half_closes() {
        round_trip(false).await;
    }

    #[tokio::test]
    async fn forward_copying_does_the_same() {
        round_trip(true).await;
    }
}
