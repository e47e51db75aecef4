//! One lane: a thread with its own epoll, accepting on the shared listening socket and moving
//! the bytes of the connections it accepted (or was handed), as one nginx worker does.
//!
//! The listening socket is in every lane's epoll with `EPOLLEXCLUSIVE`, so a new connection
//! wakes one idle lane, not all of them. A lane accepts one connection per turn of its loop
//! (the listener is level-triggered: a queue of them is reported again at once), connects to
//! the target without waiting, reads the client's request at once (it has usually arrived) and
//! registers both sockets edge-triggered. The lane already running wins most races to accept,
//! so a lane holding [`SLACK`] connections more than the least loaded one hands the new client
//! over to it: a burst of keep-alive connections ends up spread over the cores. A socket is deregistered only when it is handed on
//! alive; otherwise closing it removes it from epoll.
//!
//! It never waits for the target to start: a client accepted while the target is not up, or
//! whose target connection failed before the target was reached, is handed to the async side
//! ([`Cold`]) with what it had sent.

use super::conn::{Conn, Done, Outcome, Pools, Side};
use super::{Cold, Meter, Open};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) const LISTENER: Token = Token(usize::MAX - 1);
pub(super) const WAKER: Token = Token(usize::MAX);

/// How long accepting pauses when the process is out of file descriptors (or memory), so that
/// a level-triggered listener does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How many connections more than the least loaded lane a lane may take before it hands new
/// clients over.
const SLACK: usize = 2;

/// Work handed to a lane from outside its thread.
pub(super) enum Job {
    /// Forward an already connected pair.
    Forward {
        client: OwnedFd,
        target: OwnedFd,
        open: Option<Open>,
        done: Option<Done>,
    },
    /// A client another lane accepted while the target was up: connect it and forward.
    Accepted {
        client: OwnedFd,
        open: Open,
    },
    Stop,
}

/// A lane as the other lanes and the forwarder reach it.
pub(super) struct Peer {
    jobs: mpsc::Sender<Job>,
    waker: mio::Waker,
    /// Connections it holds or has been given: a cache line of its own, as every lane writes
    /// its own on every connection.
    load: Load,
}

#[repr(align(64))]
struct Load(AtomicUsize);

impl Peer {
    pub fn new(jobs: mpsc::Sender<Job>, waker: mio::Waker) -> Peer {
        Peer {
            jobs,
            waker,
            load: Load(AtomicUsize::new(0)),
        }
    }

    pub(super) fn load(&self) -> usize {
        self.load.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.load.0.fetch_add(1, Ordering::Relaxed);
    }

    fn remove(&self) {
        self.load.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Hands it a job and wakes it; a connection it carries is counted in its load.
    pub fn give(&self, job: Job) -> io::Result<()> {
        let counted = matches!(job, Job::Forward { .. } | Job::Accepted { .. });
        if counted {
            self.add();
        }
        if self.jobs.send(job).is_err() {
            if counted {
                self.remove();
            }
            return Err(io::Error::other("the forwarding lane has stopped"));
        }
        self.waker.wake()
    }
}

/// The lane with the fewest connections.
pub(super) fn least_loaded(peers: &[Peer]) -> &Peer {
    peers
        .iter()
        .min_by_key(|peer| peer.load())
        .expect("at least one lane")
}

/// The target's address, resolved once, and how to connect to it without waiting.
#[derive(Clone)]
pub(super) struct Target {
    address: socket2::SockAddr,
    tcp: bool,
}

impl Target {
    pub fn new(address: socket2::SockAddr, tcp: bool) -> Target {
        Target { address, tcp }
    }

    /// A non-blocking connect: for TCP it is under way (or done) when this returns; a unix
    /// connect is done or refused.
    fn connect(&self) -> io::Result<OwnedFd> {
        let socket = socket2::Socket::new(
            self.address.domain(),
            socket2::Type::STREAM.nonblocking().cloexec(),
            None,
        )?;
        if self.tcp {
            socket.set_tcp_nodelay(true)?;
        }
        match socket.connect(&self.address) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(error) => return Err(error),
        }
        Ok(socket.into())
    }
}

/// What a lane needs to accept clients itself.
pub(super) struct Accepting {
    pub listener: OwnedFd,
    /// `None` when the target's address could not be resolved: every client goes the slow way.
    pub target: Option<Target>,
    pub up: Arc<AtomicBool>,
    pub meter: Arc<dyn Meter>,
    pub cold: tokio::sync::mpsc::UnboundedSender<Cold>,
}

pub(super) struct Lane {
    /// This lane's place in `peers`.
    pub number: usize,
    pub peers: Arc<[Peer]>,
    pub poll: Poll,
    pub jobs: mpsc::Receiver<Job>,
    pub accepting: Option<Accepting>,
    pub conns: Slab<Conn>,
    pub pools: Pools,
    /// Accepting is paused until then (out of file descriptors).
    pub accept_paused_until: Option<Instant>,
}

/// Adds the listening socket to a lane's epoll, level-triggered and exclusive: mio registers
/// edge-triggered only and has no `EPOLLEXCLUSIVE`, so this one call is made by hand.
pub(super) fn register_listener(poll: &Poll, listener: RawFd) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
        u64: LISTENER.0 as u64,
    };
    // SAFETY: epoll_ctl(2) on mio's epoll fd and our listening socket, with an event we own.
    let added =
        unsafe { libc::epoll_ctl(poll.as_raw_fd(), libc::EPOLL_CTL_ADD, listener, &mut event) };
    if added < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn deregister_listener(poll: &Poll, listener: RawFd) {
    // SAFETY: epoll_ctl(2) removing our listening socket from mio's epoll fd.
    unsafe {
        libc::epoll_ctl(
            poll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            listener,
            std::ptr::null_mut(),
        );
    }
}

fn accept(listener: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: accept4(2) on our listening socket; the peer address is not asked for.
    let fd = unsafe {
        libc::accept4(
            listener,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 just returned this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Lane {
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self
                .accept_paused_until
                .map(|until| until.saturating_duration_since(Instant::now()));
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(%error, "A forwarding lane's epoll failed; the lane stops.");
                return;
            }
            let (mut accept, mut jobs) = (false, false);
            for event in events.iter() {
                match event.token() {
                    LISTENER => accept = true,
                    WAKER => jobs = true,
                    Token(token) => {
                        let key = token >> 1;
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.note(token & 1 == 1, event);
                            self.advance(key);
                        }
                    }
                }
            }
            // New connections only after the events: a slot freed above is not reused while
            // a stale event for it could still be in this batch.
            if jobs && !self.take_jobs() {
                return;
            }
            self.resume_accepting();
            if accept {
                self.accept_one();
            }
        }
    }

    fn advance(&mut self, key: usize) {
        let outcome = self.conns[key].progress(&mut self.pools);
        match outcome {
            Outcome::Open => {}
            Outcome::Ended(result) => {
                let mut conn = self.conns.remove(key);
                self.peers[self.number].remove();
                if let Some(done) = conn.done.take() {
                    let _ = done.send(result);
                }
            }
            Outcome::Lost(error) => {
                let conn = self.conns.remove(key);
                self.peers[self.number].remove();
                let (client, received, open) = conn.into_client(&mut self.pools);
                // The socket lives on elsewhere, so closing will not remove it from this epoll:
                // it must be taken out here, or its events would reach whoever gets the slot.
                let _ = self
                    .poll
                    .registry()
                    .deregister(&mut SourceFd(&client.as_raw_fd()));
                self.hand_back(client, received, Some(error), open);
            }
        }
    }

    /// Gives a client to the async side, which waits for the target and tries again.
    fn hand_back(
        &self,
        client: OwnedFd,
        received: Vec<u8>,
        lost: Option<io::Error>,
        open: Option<Open>,
    ) {
        if let Some(accepting) = &self.accepting {
            let _ = accepting.cold.send(Cold {
                client,
                received,
                lost,
                open,
            });
        }
    }

    /// `false`: stop the lane.
    fn take_jobs(&mut self) -> bool {
        while let Ok(job) = self.jobs.try_recv() {
            match job {
                Job::Forward {
                    client,
                    target,
                    open,
                    done,
                } => {
                    self.insert(client, target, true, open, done);
                }
                Job::Accepted { client, open } => self.connect(client, open),
                Job::Stop => return false,
            }
        }
        true
    }

    fn resume_accepting(&mut self) {
        let (Some(until), Some(accepting)) = (self.accept_paused_until, &self.accepting) else {
            return;
        };
        if Instant::now() < until {
            return;
        }
        self.accept_paused_until = None;
        if let Err(error) = register_listener(&self.poll, accepting.listener.as_raw_fd()) {
            tracing::error!(%error, "A forwarding lane could not listen again.");
        }
    }

    fn accept_one(&mut self) {
        let Some(accepting) = &self.accepting else {
            return;
        };
        let client = match accept(accepting.listener.as_raw_fd()) {
            Ok(client) => client,
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::EAGAIN | libc::ECONNABORTED | libc::EINTR | libc::EPROTO)
                ) =>
            {
                return
            }
            Err(error) => {
                tracing::warn!(%error, "Accepting a connection failed; pausing accepts.");
                deregister_listener(&self.poll, accepting.listener.as_raw_fd());
                self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                return;
            }
        };
        // Counted open before `up` is read, both SeqCst: a stop that closes the door and then
        // counts open connections never misses this one.
        let open = Open::new(accepting.meter.clone());
        if accepting.target.is_none() || !accepting.up.load(Ordering::SeqCst) {
            return self.hand_back(client, Vec::new(), None, Some(open));
        }
        let least = least_loaded(&self.peers);
        let mine = &self.peers[self.number];
        if least.load() + SLACK < mine.load() {
            // Should that lane have stopped, the client is closed with the job.
            let _ = least.give(Job::Accepted { client, open });
            return;
        }
        mine.add();
        self.connect(client, open);
    }

    /// Connects a client accepted while the target was up (and counted in this lane's load)
    /// to the target, and forwards.
    fn connect(&mut self, client: OwnedFd, open: Open) {
        let Some(target) = self.accepting.as_ref().and_then(|a| a.target.clone()) else {
            self.peers[self.number].remove();
            return self.hand_back(client, Vec::new(), None, Some(open));
        };
        match target.connect() {
            Ok(connection) => {
                let unix = !target.tcp;
                if let Some(key) = self.insert(client, connection, unix, Some(open), None) {
                    // The client's request has usually arrived by the time it is accepted:
                    // read it now rather than after another turn of the loop.
                    self.conns[key].client_has_input();
                    self.advance(key);
                }
            }
            Err(error) => {
                self.peers[self.number].remove();
                self.hand_back(client, Vec::new(), Some(error), Some(open));
            }
        }
    }

    /// Registers both sockets and starts forwarding; `proven`: the target is connected.
    /// `None`: they could not be registered, and are closed.
    fn insert(
        &mut self,
        client: OwnedFd,
        target: OwnedFd,
        proven: bool,
        open: Option<Open>,
        done: Option<Done>,
    ) -> Option<usize> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let registry = self.poll.registry();
        let both = Interest::READABLE | Interest::WRITABLE;
        let registered = registry
            .register(&mut SourceFd(&client.as_raw_fd()), Token(key << 1), both)
            .and_then(|()| {
                registry.register(
                    &mut SourceFd(&target.as_raw_fd()),
                    Token(key << 1 | 1),
                    both,
                )
            });
        if let Err(error) = registered {
            tracing::warn!(%error, "A forwarded connection could not be registered; closing it.");
            self.peers[self.number].remove();
            if let Some(done) = done {
                let _ = done.send(Err(error));
            }
            return None;
        }
        entry.insert(Conn::new(
            Side::new(client, true),
            Side::new(target, proven),
            open,
            done,
        ));
        Some(key)
    }
}
