use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

fn pattern(length: usize) -> Vec<u8> {
    (0..length as u32).map(|n| (n % 251) as u8).collect()
}

/// client_end ⇄ [lane] ⇄ target_end: the target reads to the end, answers every byte plus
/// one, and closes; the client sees exactly that answer and the end.
async fn round_trip(copying: bool) {
    let forwarder = Forwarder::start(1, None, None).unwrap();
    let (mut client_end, proxy_client) = tcp_pair().await;
    let (proxy_target, target_end) = UnixStream::pair().unwrap();
    let forwarded = if copying {
        tokio::spawn(async move {
            let mut client = Stream::Tcp(proxy_client);
            let mut target = Stream::Unix(proxy_target);
            forward_copying(&mut client, &mut target).await
        })
    } else {
        tokio::spawn(forwarder.forward(Stream::Tcp(proxy_client), Stream::Unix(proxy_target), None))
    };
    let target = tokio::spawn(async move {
        let mut target_end = target_end;
        let mut received = Vec::new();
        target_end.read_to_end(&mut received).await.unwrap();
        let answer: Vec<u8> = received.iter().map(|byte| byte.wrapping_add(1)).collect();
        target_end.write_all(&answer).await.unwrap();
        target_end.shutdown().await.unwrap();
        received.len()
    });
    // More than a pipe's capacity, so both directions loop, splice and back-pressure.
    let payload = pattern(3_000_000);
    client_end.write_all(&payload).await.unwrap();
    client_end.shutdown().await.unwrap();
    let mut answer = Vec::new();
    client_end.read_to_end(&mut answer).await.unwrap();
    assert_eq!(target.await.unwrap(), payload.len());
    let expected: Vec<u8> = payload.iter().map(|byte| byte.wrapping_add(1)).collect();
    assert!(answer == expected, "the answer differs from what was sent");
    let (up, down) = forwarded.await.unwrap().unwrap();
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

#[tokio::test]
async fn small_messages_go_back_and_forth_on_one_connection() {
    let forwarder = Forwarder::start(1, None, None).unwrap();
    let (mut client_end, proxy_client) = tcp_pair().await;
    let (proxy_target, mut target_end) = tcp_pair().await;
    let forwarded = forwarder.forward(Stream::Tcp(proxy_client), Stream::Tcp(proxy_target), None);
    // An echo, as a keep-alive server answers request after request.
    let echo = tokio::spawn(async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = target_end.read(&mut buffer).await.unwrap();
            if read == 0 {
                return;
            }
            target_end.write_all(&buffer[..read]).await.unwrap();
        }
    });
    let mut total = 0u64;
    for size in (1..2_000)
        .step_by(7)
        .chain([16 * 1024, 16 * 1024 + 1, 40_000])
    {
        let message = pattern(size);
        client_end.write_all(&message).await.unwrap();
        let mut answer = vec![0; size];
        client_end.read_exact(&mut answer).await.unwrap();
        assert!(
            answer == message,
            "a message of {size} bytes came back changed"
        );
        total += size as u64;
    }
    client_end.shutdown().await.unwrap();
    let mut rest = Vec::new();
    client_end.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    echo.await.unwrap();
    assert_eq!(forwarded.await.unwrap(), (total, total));
}

/// Sets a socket's kernel buffers small, so that what can be in flight is known.
fn small_buffers(stream: &TcpStream) {
    let socket = socket2::SockRef::from(stream);
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
}

#[tokio::test]
async fn a_slow_reader_holds_its_writer_back() {
    let forwarder = Forwarder::start(1, None, None).unwrap();
    let (mut client_end, proxy_client) = tcp_pair().await;
    let (proxy_target, mut target_end) = tcp_pair().await;
    for stream in [&client_end, &proxy_client, &proxy_target, &target_end] {
        small_buffers(stream);
    }
    let forwarded = forwarder.forward(Stream::Tcp(proxy_client), Stream::Tcp(proxy_target), None);
    let payload = Arc::new(pattern(16 * 1024 * 1024));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (payload, written) = (payload.clone(), written.clone());
        tokio::spawn(async move {
            for chunk in payload.chunks(8 * 1024) {
                target_end.write_all(chunk).await.unwrap();
                written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            target_end.shutdown().await.unwrap();
        })
    };
    // Four socket buffers (the kernel doubles what is asked and adds its overhead), one pipe
    // and one buffer in the lane: what the writer can be ahead of the reader by, at most.
    let bound = 4 * 4 * 64 * 1024 + 1024 * 1024 + 16 * 1024;
    let mut received = Vec::with_capacity(payload.len());
    let mut sip = vec![0; 32 * 1024];
    let mut widest = 0;
    loop {
        let ahead = written.load(Ordering::SeqCst) - received.len() as u64;
        widest = widest.max(ahead);
        assert!(
            ahead <= bound as u64,
            "the writer got {ahead} bytes ahead of a slow reader"
        );
        let read = client_end.read(&mut sip).await.unwrap();
        if read == 0 {
            break;
        }
        received.extend_from_slice(&sip[..read]);
        // Slow: the reader lets the writer run ahead as far as it can.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    writer.await.unwrap();
    assert!(received == *payload, "the slow reader got other bytes");
    assert!(widest > 0);
    client_end.shutdown().await.unwrap();
    forwarded.await.unwrap();
}

#[derive(Default)]
struct Counted {
    open: AtomicU64,
    closed: AtomicU64,
}

impl Meter for Counted {
    fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
    }
    fn connection_closed(&self) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

struct Accepting {
    forwarder: Forwarder,
    address: std::net::SocketAddr,
    target: String,
    up: Arc<AtomicBool>,
    meter: Arc<Counted>,
    cold: tokio::sync::mpsc::UnboundedReceiver<Cold>,
    _bound: BoundSocket,
}

fn accepting(target: &str, lanes: usize) -> Accepting {
    let bound = super::super::bind(&Endpoint::Tcp("127.0.0.1:0".into())).unwrap();
    let address = bound.socket.local_addr().unwrap().as_socket().unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let meter = Arc::new(Counted::default());
    let (cold_sender, cold) = tokio::sync::mpsc::unbounded_channel();
    let settings = AcceptSettings {
        target: Endpoint::Tcp(target.into()),
        up: up.clone(),
        meter: meter.clone(),
        cold: cold_sender,
    };
    let forwarder = Forwarder::start(lanes, Some(&bound), Some(settings)).unwrap();
    Accepting {
        forwarder,
        address,
        target: target.to_string(),
        up,
        meter,
        cold,
        _bound: bound,
    }
}

#[tokio::test]
async fn lanes_hand_clients_over_while_the_target_is_down_and_forward_once_it_is_up() {
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut lanes = accepting(&target.local_addr().unwrap().to_string(), 2);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = target.accept().await.unwrap();
            tokio::spawn(async move {
                let mut request = [0u8; 5];
                stream.read_exact(&mut request).await.unwrap();
                stream.write_all(b"world").await.unwrap();
            });
        }
    });

    // Down: handed over, counted open, nothing read from it.
    let mut client = TcpStream::connect(lanes.address).await.unwrap();
    let cold = lanes.cold.recv().await.unwrap();
    assert!(cold.received.is_empty() && cold.lost.is_none());
    assert_eq!(lanes.meter.open.load(Ordering::SeqCst), 1);
    let (waiting, _, open) = cold.into_parts(false).unwrap();
    // The async side connects it and gives the pair back to a lane.
    let connection = Stream::Tcp(TcpStream::connect(&lanes.target).await.unwrap());
    let forwarded = lanes.forwarder.forward(waiting, connection, open);
    client.write_all(b"hello").await.unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"world");
    drop(client);
    assert_eq!(forwarded.await.unwrap(), (5, 5));

    // Up: the lanes forward by themselves.
    lanes.up.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        let mut client = TcpStream::connect(lanes.address).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"world");
    }
    assert!(lanes.cold.try_recv().is_err(), "nothing was handed over");
    let meter = lanes.meter.clone();
    wait_until(|| meter.closed.load(Ordering::SeqCst) == 21).await;
    assert_eq!(meter.open.load(Ordering::SeqCst), 21);
}

#[tokio::test]
async fn a_refused_target_hands_the_client_back_with_what_it_sent() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    // One lane: the client comes back to the lane that handed it over.
    let mut lanes = accepting(&address, 1);
    lanes.up.store(true, Ordering::SeqCst);
    let mut client = TcpStream::connect(lanes.address).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let cold = lanes.cold.recv().await.unwrap();
    let lost = cold.lost.as_ref().expect("a lost target");
    assert_eq!(lost.kind(), io::ErrorKind::ConnectionRefused, "{lost}");
    // What the lane read is handed over; the rest is still in the client's socket.
    let mut sent = cold.received.clone();
    let (mut waiting, _, _open) = cold.into_parts(false).unwrap();
    let mut first = vec![0; 5 - sent.len()];
    waiting.read_exact(&mut first).await.unwrap();
    sent.extend_from_slice(&first);
    assert_eq!(sent, b"hello");

    // Tried again on a target that answers, it is forwarded like any other (the lane that
    // handed it over must not have kept it in its epoll).
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let connection = TcpStream::connect(target.local_addr().unwrap())
        .await
        .unwrap();
    let forwarded = lanes
        .forwarder
        .forward(waiting, Stream::Tcp(connection), None);
    let (mut accepted, _) = target.accept().await.unwrap();
    client.write_all(b"again").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    accepted.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"again");
    drop(accepted);
    assert_eq!(forwarded.await.unwrap(), (5, 0));
}

async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "not within 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

use std::time::Duration;

#[tokio::test]
async fn a_burst_of_keep_alive_clients_is_spread_over_the_lanes() {
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lanes = accepting(&target.local_addr().unwrap().to_string(), 2);
    lanes.up.store(true, Ordering::SeqCst);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = target.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buffer = [0u8; 64];
                while let Ok(read) = stream.read(&mut buffer).await {
                    if read == 0 || stream.write_all(&buffer[..read]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    // Twenty clients connected at once and kept open, each answered once.
    let clients: Vec<_> = (0..20).map(|_| TcpStream::connect(lanes.address)).collect();
    let mut open = Vec::new();
    for client in clients {
        let mut client = client.await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.unwrap();
        open.push(client);
    }
    let loads: Vec<usize> = lanes
        .forwarder
        .peers
        .iter()
        .map(|peer| peer.load())
        .collect();
    assert_eq!(loads.iter().sum::<usize>(), 20);
    assert!(
        loads[0].abs_diff(loads[1]) <= 4,
        "the lanes hold {loads:?} connections"
    );
}
