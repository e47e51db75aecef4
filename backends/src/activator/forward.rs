//! Forwarding between clients and the target, off the async runtime: a few threads ("lanes"),
//! one per core, each an epoll loop that accepts on the listening socket and moves bytes both
//! ways, as nginx's workers and haproxy's threads do (Linux only: epoll, `splice(2)`).
//!
//! Why not tokio tasks: per connection a task, its wake-ups between runtime threads, and a
//! deregistration per socket cost about a third more system calls than nginx makes for the
//! same request; a lane makes about as many as nginx and fewer than haproxy (see
//! `bench/vs_proxies.py`). The async side keeps everything that waits: a client that arrives
//! while the target is down is handed over as a [`Cold`] client, waits there, and comes back
//! with its target through [`Forwarder::forward`].
//!
//! How bytes move (small reads through a buffer, bulk through pooled pipes, half closes,
//! backpressure) is in `conn.rs`; the loop is in `lane.rs`. Nothing here decides when to start
//! or stop the target, and nothing on the forwarding path takes a lock.

mod conn;
mod lane;

use super::{BoundSocket, Endpoint, Stream};
use lane::{Accepting, Job, Lane, Peer, Target};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Told of every connection the lanes accept, and when it ends.
pub trait Meter: Send + Sync + 'static {
    fn connection_opened(&self);
    fn connection_closed(&self);
}

/// One connection counted open in a [`Meter`] until this is dropped.
pub struct Open(Arc<dyn Meter>);

impl Open {
    pub fn new(meter: Arc<dyn Meter>) -> Open {
        meter.connection_opened();
        Open(meter)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// A client a lane did not forward: accepted while the target was not up (`lost` is `None`),
/// or whose connection to the target failed before the target was reached (`lost` says how).
/// `received` is what it sent that the target never got, to be sent first.
pub struct Cold {
    client: OwnedFd,
    pub received: Vec<u8>,
    pub lost: Option<io::Error>,
    pub open: Option<Open>,
}

impl Cold {
    /// The client as a tokio stream (this registers it with the runtime: call it inside one).
    pub fn into_parts(self, unix: bool) -> io::Result<(Stream, Vec<u8>, Option<Open>)> {
        let client = Stream::from_owned_fd(self.client, unix)?;
        Ok((client, self.received, self.open))
    }
}

/// What the lanes need to accept clients themselves.
pub struct AcceptSettings {
    pub target: Endpoint,
    /// The hot path's only check: the target is up, connect and forward. While it is false,
    /// every client accepted goes to `cold`.
    pub up: Arc<AtomicBool>,
    pub meter: Arc<dyn Meter>,
    pub cold: tokio::sync::mpsc::UnboundedSender<Cold>,
}

/// The running lanes. Dropping it stops them and closes every connection they hold.
pub struct Forwarder {
    peers: Arc<[Peer]>,
    threads: Vec<JoinHandle<()>>,
}

/// How many lanes to run: one per core the process may use.
pub fn default_lanes() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Forwarder {
    /// Starts `lanes` lanes (at least one). With `accept`, they accept on `listener` and
    /// forward to the target themselves; without, they only forward what [`forward`] gives.
    ///
    /// [`forward`]: Forwarder::forward
    pub fn start(
        lanes: usize,
        listener: Option<&BoundSocket>,
        accept: Option<AcceptSettings>,
    ) -> io::Result<Forwarder> {
        let target = accept.as_ref().and_then(|accept| resolve(&accept.target));
        if let Some(listener) = listener {
            listener.socket.set_nonblocking(true)?;
            if let Endpoint::Tcp(_) = listener.endpoint {
                // Accepted sockets inherit it: one call here rather than one per client.
                listener.socket.set_tcp_nodelay(true)?;
            }
        }
        let lanes = lanes.max(1);
        let mut polls = Vec::new();
        let mut peers = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..lanes {
            let poll = mio::Poll::new()?;
            let (jobs, receiver) = mpsc::channel();
            peers.push(Peer::new(
                jobs,
                mio::Waker::new(poll.registry(), lane::WAKER)?,
            ));
            polls.push(poll);
            receivers.push(receiver);
        }
        let peers: Arc<[Peer]> = peers.into();
        let mut threads = Vec::new();
        for (number, (poll, jobs)) in polls.into_iter().zip(receivers).enumerate() {
            let accepting = match (listener, &accept) {
                (Some(listener), Some(accept)) => {
                    let fd: OwnedFd = listener.socket.try_clone()?.into();
                    lane::register_listener(&poll, fd.as_raw_fd())?;
                    Some(Accepting {
                        listener: fd,
                        target: target.clone(),
                        up: accept.up.clone(),
                        meter: accept.meter.clone(),
                        cold: accept.cold.clone(),
                    })
                }
                _ => None,
            };
            let lane = Lane {
                number,
                peers: peers.clone(),
                poll,
                jobs,
                accepting,
                conns: slab::Slab::new(),
                pools: conn::Pools::new(),
                accept_paused_until: None,
            };
            let thread = std::thread::Builder::new()
                .name(format!("activator-lane-{number}"))
                .spawn(move || lane.run())?;
            threads.push(thread);
        }
        Ok(Forwarder { peers, threads })
    }

    /// Forwards a connected pair on a lane, from now on whether or not the returned future is
    /// awaited; it resolves when both directions have ended, with the bytes moved
    /// `(client → target, target → client)`. `open` is dropped when the connection ends.
    pub fn forward(
        &self,
        client: Stream,
        target: Stream,
        open: Option<Open>,
    ) -> impl Future<Output = io::Result<(u64, u64)>> + Send + 'static {
        let (done, finished) = tokio::sync::oneshot::channel();
        let sent = client.into_owned_fd().and_then(|client| {
            let target = target.into_owned_fd()?;
            let job = Job::Forward {
                client,
                target,
                open,
                done: Some(done),
            };
            lane::least_loaded(&self.peers).give(job)
        });
        async move {
            sent?;
            finished
                .await
                .unwrap_or_else(|_| Err(io::Error::other("the forwarding lane has stopped")))
        }
    }
}

impl Forwarder {
    /// Stops the lanes: no client is accepted any more, and every connection they hold is
    /// closed. Dropping the forwarder also waits for their threads.
    pub fn stop(&self) {
        for peer in self.peers.iter() {
            let _ = peer.give(Job::Stop);
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The target's address for the lanes, resolved once. `None` (a name that does not resolve
/// now): the lanes hand every client to the async side, which connects by name each time.
fn resolve(target: &Endpoint) -> Option<Target> {
    match target {
        Endpoint::Tcp(address) => {
            use std::net::ToSocketAddrs;
            match address.to_socket_addrs().map(|mut all| all.next()) {
                Ok(Some(address)) => Some(Target::new(address.into(), true)),
                Ok(None) | Err(_) => {
                    tracing::warn!(%target, "The target's name does not resolve now; every connection takes the slow path.");
                    None
                }
            }
        }
        Endpoint::Unix(path) => socket2::SockAddr::unix(path)
            .ok()
            .map(|address| Target::new(address, false)),
    }
}

/// Forwards through a user-space buffer with `tokio::io::copy_bidirectional` on the runtime:
/// the benchmark's comparison.
pub async fn forward_copying(client: &mut Stream, target: &mut Stream) -> io::Result<(u64, u64)> {
    tokio::io::copy_bidirectional(client, target).await
}

#[cfg(test)]
mod tests;
