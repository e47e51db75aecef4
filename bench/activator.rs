//! Throughput and added latency through `autoscalebot activate`, against a direct connection to
//! the same target, side by side in one run:
//!
//!     cargo bench --bench activator            # or: ... -- --megabytes 2048 --round-trips 50000
//!
//! The target is an in-process tokio server (a sink that acknowledges bulk uploads, and an echo
//! for round trips). The activator is the real release binary in its own process, started by
//! this bench with a command scaler whose hooks do nothing (the target is already up), so the
//! numbers are the forwarding path alone. A third row runs a bare in-process proxy using
//! `tokio::io::copy_bidirectional`, to show what the forwarding lanes buy. The activator against
//! haproxy, nginx and others is `bench/vs_proxies.sh`.

use autoscalebot_backends::activator::forward::forward_copying;
use autoscalebot_backends::activator::Stream;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 256 * 1024;
const MESSAGE: usize = 64;

struct Options {
    megabytes: usize,
    round_trips: usize,
    connections: usize,
}

fn options() -> Options {
    let mut options = Options {
        megabytes: 1024,
        round_trips: 20_000,
        connections: 2_000,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = pair[1].parse().ok();
        match (pair[0].as_str(), value) {
            ("--megabytes", Some(v)) => options.megabytes = v,
            ("--round-trips", Some(v)) => options.round_trips = v,
            ("--connections", Some(v)) => options.connections = v,
            _ => {}
        }
    }
    options
}

/// The target: on each connection, the first byte says what to do. `b`: read the 8-byte
/// length, swallow that many bytes, answer one byte. `e`: echo MESSAGE-byte messages until EOF.
async fn target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut kind = [0u8; 1];
                if stream.read_exact(&mut kind).await.is_err() {
                    return;
                }
                if kind[0] == b'b' {
                    let mut length = [0u8; 8];
                    stream.read_exact(&mut length).await.unwrap();
                    let mut left = u64::from_le_bytes(length);
                    let mut buffer = vec![0u8; CHUNK];
                    while left > 0 {
                        let read = stream.read(&mut buffer).await.unwrap();
                        assert!(read > 0, "upload ended early");
                        left -= read as u64;
                    }
                    stream.write_all(b"k").await.unwrap();
                } else {
                    let mut message = [0u8; MESSAGE];
                    while stream.read_exact(&mut message).await.is_ok() {
                        stream.write_all(&message).await.unwrap();
                    }
                }
            });
        }
    });
    address
}

/// A bare proxy with `copy_bidirectional`, for comparison.
async fn copying_proxy(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            client.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let upstream = TcpStream::connect(target).await.unwrap();
                upstream.set_nodelay(true).unwrap();
                let _ = forward_copying(&mut Stream::Tcp(client), &mut Stream::Tcp(upstream)).await;
            });
        }
    });
    address
}

async fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// MB/s of one upload of `megabytes` MiB.
async fn throughput(address: SocketAddr, megabytes: usize) -> f64 {
    let total = (megabytes * 1024 * 1024) as u64;
    let mut stream = connect(address).await;
    let buffer = vec![7u8; CHUNK];
    let started = Instant::now();
    stream.write_all(b"b").await.unwrap();
    stream.write_all(&total.to_le_bytes()).await.unwrap();
    let mut left = total;
    while left > 0 {
        let size = (left as usize).min(CHUNK);
        stream.write_all(&buffer[..size]).await.unwrap();
        left -= size as u64;
    }
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack).await.unwrap();
    total as f64 / (1024.0 * 1024.0) / started.elapsed().as_secs_f64()
}

/// Round trips of MESSAGE bytes on one connection: (p50, p99) in microseconds.
async fn round_trips(address: SocketAddr, count: usize) -> (f64, f64) {
    let mut stream = connect(address).await;
    stream.write_all(b"e").await.unwrap();
    let message = [1u8; MESSAGE];
    let mut answer = [0u8; MESSAGE];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        stream.write_all(&message).await.unwrap();
        stream.read_exact(&mut answer).await.unwrap();
        samples.push(started.elapsed());
    }
    percentiles(samples)
}

/// A new connection and one round trip each: (p50, p99) in microseconds.
async fn connect_round_trips(address: SocketAddr, count: usize) -> (f64, f64) {
    let message = [1u8; MESSAGE];
    let mut answer = [0u8; MESSAGE];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let mut stream = connect(address).await;
        stream.write_all(b"e").await.unwrap();
        stream.write_all(&message).await.unwrap();
        stream.read_exact(&mut answer).await.unwrap();
        samples.push(started.elapsed());
    }
    percentiles(samples)
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

struct Row {
    name: &'static str,
    mb_per_s: f64,
    rtt: (f64, f64),
    connect_rtt: (f64, f64),
}

async fn measure(name: &'static str, address: SocketAddr, options: &Options) -> Row {
    // Warm up: the activator's first connection starts the (already running) target.
    round_trips(address, 100).await;
    Row {
        name,
        mb_per_s: throughput(address, options.megabytes).await,
        rtt: round_trips(address, options.round_trips).await,
        connect_rtt: connect_round_trips(address, options.connections).await,
    }
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let target = target().await;
        let listen = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let dir = std::env::temp_dir().join(format!("activator-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = dir.join("settings.toml");
        std::fs::write(
            &settings,
            format!(
                "scaler = \"command\"\nstart_command = \"true\"\nstop_command = \"true\"\nmin_dynos = 0\nmax_dynos = 1\n\
                 [activator]\nlisten = \"{listen}\"\ntarget = \"{target}\"\n"
            ),
        )
        .unwrap();
        let mut activator = Command::new(env!("CARGO_BIN_EXE_autoscalebot"))
            .arg(format!("--settings={}", settings.display()))
            .arg("activate")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("the autoscalebot binary starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(listen).await.is_err() {
            assert!(Instant::now() < deadline, "the activator did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let copying = copying_proxy(target).await;

        let rows = vec![
            measure("direct", target, &options).await,
            measure("activator", listen, &options).await,
            measure("copy_bidirectional proxy", copying, &options).await,
        ];
        let _ = activator.kill();
        let _ = activator.wait();
        let _ = std::fs::remove_dir_all(&dir);

        println!(
            "bulk upload {} MiB, {} round trips of {MESSAGE} B on one connection, {} new connections with one round trip each",
            options.megabytes, options.round_trips, options.connections
        );
        println!(
            "| path | throughput MB/s | round trip p50 µs | p99 µs | connect + round trip p50 µs | p99 µs |"
        );
        println!("|---|---|---|---|---|---|");
        for row in &rows {
            println!(
                "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
                row.name, row.mb_per_s, row.rtt.0, row.rtt.1, row.connect_rtt.0, row.connect_rtt.1
            );
        }
        let direct = &rows[0];
        let activator = &rows[1];
        println!(
            "activator / direct: throughput {:.2}x, round trip p50 +{:.1} µs (p99 +{:.1} µs), connect + round trip p50 +{:.1} µs",
            activator.mb_per_s / direct.mb_per_s,
            activator.rtt.0 - direct.rtt.0,
            activator.rtt.1 - direct.rtt.1,
            activator.connect_rtt.0 - direct.connect_rtt.0,
        );
    });
}
