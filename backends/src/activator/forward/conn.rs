//! One forwarded connection: the client's socket, the target's, and a flow each way, moved by
//! non-blocking system calls whenever the lane's events say a socket is ready.
//!
//! Small transfers go through the lane's one scratch buffer: `recv` then `send` at once, so a
//! request or an answer of a few hundred bytes costs two calls and holds no memory. A read that
//! fills the scratch buffer means a bulk transfer: the flow switches to `splice(2)` through a
//! pipe from the lane's pool (socket → pipe → socket inside the kernel), and back when a read
//! is small again. Bytes a sink cannot take yet are held (a buffer or the pipe) and the source
//! is not read again until they are gone: at most one buffer or one pipe per direction, so a
//! slow reader slows its writer and nothing grows without bound.
//!
//! An end of input is passed on as a half close (`shutdown(SHUT_WR)` of the other socket);
//! when both directions have ended the two sockets are closed. Nothing here blocks, sleeps or
//! takes a lock.

use super::super::forward::Open;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Bytes one `recv` asks for, and the size of a held buffer. A read that fills it switches its
/// flow to `splice(2)`. 16 KiB, as haproxy's buffers.
pub(super) const BUFFER_BYTES: usize = 16 * 1024;

/// The pipe size asked for, and the bytes one `splice` asks for. Pipes count against a per-user
/// quota (`fs.pipe-user-pages-soft`, 64 MiB by default) whatever they hold; pooled, a lane
/// keeps at most [`POOLED_PIPES`] of them.
const PIPE_BYTES: usize = 256 * 1024;

/// Empty pipes and buffers a lane keeps for the next flow that needs one.
const POOLED_PIPES: usize = 32;
const POOLED_BUFFERS: usize = 64;

/// The lane's scratch buffer and its pools of held buffers and pipes.
pub(super) struct Pools {
    scratch: Box<[u8]>,
    buffers: Vec<Box<[u8]>>,
    pipes: Vec<Pipe>,
}

impl Pools {
    pub fn new() -> Pools {
        Pools {
            scratch: vec![0; BUFFER_BYTES].into_boxed_slice(),
            buffers: Vec::new(),
            pipes: Vec::new(),
        }
    }

    fn take_buffer(&mut self) -> Box<[u8]> {
        self.buffers
            .pop()
            .unwrap_or_else(|| vec![0; BUFFER_BYTES].into_boxed_slice())
    }

    fn give_buffer(&mut self, buffer: Box<[u8]>) {
        if self.buffers.len() < POOLED_BUFFERS {
            self.buffers.push(buffer);
        }
    }

    fn take_pipe(&mut self) -> io::Result<Pipe> {
        match self.pipes.pop() {
            Some(pipe) => Ok(pipe),
            None => Pipe::new(),
        }
    }

    /// Only an empty pipe comes back here.
    fn give_pipe(&mut self, pipe: Pipe) {
        if self.pipes.len() < POOLED_PIPES {
            self.pipes.push(pipe);
        }
    }
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
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just returned by pipe2 and belong to nobody else.
        let pipe = unsafe {
            Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        };
        // A bigger pipe moves a bulk transfer in fewer calls. Best effort: past the user's pipe
        // quota the kernel refuses and the default 64 KiB stays.
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

fn result(returned: isize) -> io::Result<usize> {
    if returned < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(returned as usize)
    }
}

fn recv(fd: RawFd, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: recv(2) into a buffer we own, of its length.
    result(unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), 0) })
}

fn send(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: send(2) from a buffer we own, of its length; no SIGPIPE for a closed peer.
    result(unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) })
}

fn splice(from: RawFd, to: RawFd, length: usize) -> io::Result<usize> {
    // SAFETY: splice(2) between two fds we hold open; null offsets mean "current position".
    result(unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            length,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    })
}

fn would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock || error.kind() == io::ErrorKind::Interrupted
}

/// One socket and what the lane knows of it. `readable`/`writable` are set by events and
/// cleared when a call would block (or a read came back short, which drained the socket).
pub(super) struct Side {
    pub fd: OwnedFd,
    readable: bool,
    writable: bool,
    /// The peer's end (RDHUP) was seen: once the socket is drained, its input has ended.
    read_closed: bool,
    /// An error event: no end is inferred, the next call reports the error.
    failed: bool,
    /// A call on it succeeded or it reported writable without error: it is connected.
    proven: bool,
}

impl Side {
    /// A socket not yet heard from. `writable` is a guess: a new socket has room, and a TCP
    /// connect to a local target is usually complete when `connect` returns; a wrong guess
    /// costs one call that would block.
    pub fn new(fd: OwnedFd, proven: bool) -> Side {
        Side {
            fd,
            readable: false,
            writable: true,
            read_closed: false,
            failed: false,
            proven,
        }
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What a flow holds that its sink has not taken yet.
enum Held {
    Nothing,
    Buffer {
        bytes: Box<[u8]>,
        start: usize,
        end: usize,
    },
    Pipe {
        pipe: Pipe,
        bytes: usize,
    },
}

/// Which socket a failing call was on.
enum Fault {
    Source(io::Error),
    Sink(io::Error),
}

/// One direction: from a source socket to a sink socket.
struct Flow {
    held: Held,
    /// The source's input ended.
    eof: bool,
    /// The sink's output was shut down.
    shut: bool,
    /// The last read filled the scratch buffer: read the next through a pipe.
    splicing: bool,
    moved: u64,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            held: Held::Nothing,
            eof: false,
            shut: false,
            splicing: false,
            moved: 0,
        }
    }

    fn finished(&self) -> bool {
        self.eof && matches!(self.held, Held::Nothing)
    }

    /// Moves what `source` has to `sink` until one of them would block or the input ended.
    fn pump(&mut self, source: &mut Side, sink: &mut Side, pools: &mut Pools) -> Result<(), Fault> {
        loop {
            if !self.flush(sink, pools).map_err(Fault::Sink)? {
                return Ok(());
            }
            if self.eof || !source.readable {
                return Ok(());
            }
            if self.splicing {
                self.splice_in(source, pools)?;
            } else {
                self.read_in(source, sink, pools)?;
            }
        }
    }

    /// Writes what is held; `true` when nothing is held any more.
    fn flush(&mut self, sink: &mut Side, pools: &mut Pools) -> io::Result<bool> {
        loop {
            let written = match &mut self.held {
                Held::Nothing => return Ok(true),
                Held::Buffer { start, end, .. } if start == end => None,
                Held::Pipe { bytes: 0, .. } => None,
                _ if !sink.writable => return Ok(false),
                Held::Buffer { bytes, start, end } => {
                    let wanted = *end - *start;
                    match send(sink.raw(), &bytes[*start..*end]) {
                        Ok(sent) => {
                            *start += sent;
                            Some((sent, wanted))
                        }
                        Err(error) if would_block(&error) => Some((0, wanted)),
                        Err(error) => return Err(error),
                    }
                }
                Held::Pipe { pipe, bytes } => {
                    let wanted = *bytes;
                    match splice(pipe.read.as_raw_fd(), sink.raw(), wanted) {
                        Ok(sent) => {
                            *bytes -= sent;
                            Some((sent, wanted))
                        }
                        Err(error) if would_block(&error) => Some((0, wanted)),
                        Err(error) => return Err(error),
                    }
                }
            };
            match written {
                // The sink's buffer is full: wait for it to be writable again.
                Some((sent, wanted)) if sent < wanted => {
                    if sent > 0 {
                        sink.proven = true;
                    }
                    sink.writable = false;
                    return Ok(false);
                }
                Some(_) => sink.proven = true,
                None => match std::mem::replace(&mut self.held, Held::Nothing) {
                    Held::Buffer { bytes, .. } => pools.give_buffer(bytes),
                    Held::Pipe { pipe, .. } => pools.give_pipe(pipe),
                    Held::Nothing => {}
                },
            }
        }
    }

    /// One `recv` into the scratch buffer, sent on at once; what the sink cannot take is held.
    fn read_in(
        &mut self,
        source: &mut Side,
        sink: &mut Side,
        pools: &mut Pools,
    ) -> Result<(), Fault> {
        let read = match recv(source.raw(), &mut pools.scratch) {
            Ok(0) => {
                self.eof = true;
                return Ok(());
            }
            Ok(read) => read,
            Err(error) if would_block(&error) => {
                source.readable = false;
                return Ok(());
            }
            Err(error) => return Err(Fault::Source(error)),
        };
        source.proven = true;
        self.moved += read as u64;
        if read < pools.scratch.len() {
            // A short read drained the socket: wait for its next event rather than ask again
            // (what nginx does with epoll). If its end was seen already, nothing can follow.
            source.readable = false;
            if source.read_closed && !source.failed {
                self.eof = true;
            }
        } else {
            self.splicing = true;
        }
        let mut sent = 0;
        let mut failure = None;
        if sink.writable {
            match send(sink.raw(), &pools.scratch[..read]) {
                Ok(count) => {
                    sent = count;
                    sink.proven = true;
                }
                Err(error) if would_block(&error) => {}
                Err(error) => failure = Some(error),
            }
            if sent < read {
                sink.writable = false;
            }
        }
        if sent < read {
            // Held even on a failure: a client handed back for another try takes it along.
            let mut bytes = pools.take_buffer();
            bytes[..read - sent].copy_from_slice(&pools.scratch[sent..read]);
            self.held = Held::Buffer {
                bytes,
                start: 0,
                end: read - sent,
            };
        }
        match failure {
            Some(error) => Err(Fault::Sink(error)),
            None => Ok(()),
        }
    }

    /// One `splice` from the source into an empty pipe; `flush` moves it on.
    fn splice_in(&mut self, source: &mut Side, pools: &mut Pools) -> Result<(), Fault> {
        let pipe = pools.take_pipe().map_err(Fault::Source)?;
        match splice(source.raw(), pipe.write.as_raw_fd(), PIPE_BYTES) {
            Ok(0) => {
                self.eof = true;
                pools.give_pipe(pipe);
            }
            Ok(moved) => {
                source.proven = true;
                self.moved += moved as u64;
                // A small read: the transfer is not bulk (any more), use the buffer again.
                if moved < BUFFER_BYTES {
                    self.splicing = false;
                }
                self.held = Held::Pipe { pipe, bytes: moved };
            }
            Err(error) if would_block(&error) => {
                source.readable = false;
                pools.give_pipe(pipe);
            }
            Err(error) => return Err(Fault::Source(error)),
        }
        Ok(())
    }

    /// What is held, as bytes (a client handed back takes them along).
    fn take_held(&mut self, pools: &mut Pools) -> Vec<u8> {
        match std::mem::replace(&mut self.held, Held::Nothing) {
            Held::Nothing => Vec::new(),
            Held::Buffer { bytes, start, end } => {
                let held = bytes[start..end].to_vec();
                pools.give_buffer(bytes);
                held
            }
            Held::Pipe { pipe, bytes } => {
                let mut held = vec![0; bytes];
                let mut filled = 0;
                while filled < bytes {
                    // SAFETY: read(2) from a pipe we own into the rest of a buffer we own.
                    let read = unsafe {
                        libc::read(
                            pipe.read.as_raw_fd(),
                            held[filled..].as_mut_ptr().cast(),
                            bytes - filled,
                        )
                    };
                    if read <= 0 {
                        break;
                    }
                    filled += read as usize;
                }
                held.truncate(filled);
                if filled == bytes {
                    pools.give_pipe(pipe);
                }
                held
            }
        }
    }
}

/// What a connection's progress came to.
pub(super) enum Outcome {
    Open,
    /// Both directions ended, with the bytes moved `(client → target, target → client)`, or a
    /// socket failed.
    Ended(io::Result<(u64, u64)>),
    /// The target's connection failed before it was ever established: the client is handed
    /// back, with what it had sent, to be tried again.
    Lost(io::Error),
}

/// Told when a forwarded connection ends: both directions' bytes, or the error.
pub(super) type Done = tokio::sync::oneshot::Sender<io::Result<(u64, u64)>>;

pub(super) struct Conn {
    pub client: Side,
    pub target: Side,
    /// Client → target.
    up: Flow,
    /// Target → client.
    down: Flow,
    /// Counted open until the connection is dropped.
    pub open: Option<Open>,
    pub done: Option<Done>,
}

impl Conn {
    pub fn new(client: Side, target: Side, open: Option<Open>, done: Option<Done>) -> Conn {
        Conn {
            client,
            target,
            up: Flow::new(),
            down: Flow::new(),
            open,
            done,
        }
    }

    /// Reads the client before its first event says so: a guess that costs one call that would
    /// block when wrong.
    pub fn client_has_input(&mut self) {
        self.client.readable = true;
    }

    /// Takes in an event for one of the two sockets.
    pub fn note(&mut self, target: bool, event: &mio::event::Event) {
        let side = if target {
            &mut self.target
        } else {
            &mut self.client
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            side.readable = true;
        }
        if event.is_read_closed() {
            side.read_closed = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            side.writable = true;
        }
        if event.is_error() {
            side.failed = true;
        } else if event.is_writable() {
            side.proven = true;
        }
    }

    /// Moves everything that can move now, both ways.
    pub fn progress(&mut self, pools: &mut Pools) -> Outcome {
        // Which failed, and whether it was the target: a target that was never connected and
        // never sent a byte was not reached at all.
        let fault = match self.up.pump(&mut self.client, &mut self.target, pools) {
            Err(Fault::Source(error)) => Some((false, error)),
            Err(Fault::Sink(error)) => Some((true, error)),
            Ok(()) => match self.down.pump(&mut self.target, &mut self.client, pools) {
                Err(Fault::Source(error)) => Some((true, error)),
                Err(Fault::Sink(error)) => Some((false, error)),
                Ok(()) => None,
            },
        };
        if let Some((on_target, error)) = fault {
            if on_target && !self.target.proven && is_connect_failure(&error) {
                return Outcome::Lost(error);
            }
            return Outcome::Ended(Err(error));
        }
        let (up_done, down_done) = (self.up.finished(), self.down.finished());
        if up_done && down_done {
            // Closing both sockets ends both; no half close is needed first.
            return Outcome::Ended(Ok((self.up.moved, self.down.moved)));
        }
        if up_done && !self.up.shut {
            shutdown_write(&self.target);
            self.up.shut = true;
        }
        if down_done && !self.down.shut {
            shutdown_write(&self.client);
            self.down.shut = true;
        }
        Outcome::Open
    }

    /// The client's socket and what it sent that the target never got.
    pub fn into_client(mut self, pools: &mut Pools) -> (OwnedFd, Vec<u8>, Option<Open>) {
        let held = self.up.take_held(pools);
        (self.client.fd, held, self.open.take())
    }
}

fn shutdown_write(side: &Side) {
    // SAFETY: shutdown(2) on a socket we hold; an error (the peer is gone) shows on the next
    // call, which ends the connection.
    unsafe {
        libc::shutdown(side.raw(), libc::SHUT_WR);
    }
}

/// The errors of a connection attempt that never reached the target: worth another try.
pub(super) fn is_connect_failure(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::ENOENT
                | libc::EAGAIN
                | libc::ETIMEDOUT
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::ECONNRESET
        )
    )
}
