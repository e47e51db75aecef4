//! `autoscalebot activate` as a user runs it: the built binary in front of real targets
//! (Python servers started by real start/stop scripts or handed the socket as fd 3), real
//! clients over TCP and unix sockets, and a real HTTP server receiving the shutdown hook.

use crate::support::*;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use axum::routing::any;
use axum::Router;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY: &str = "hello from the target\n";

/// `python3 -m http.server` with the listen backlog given (its own is 5).
const SERVER: &str = r#"
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = int(sys.argv[3])
    daemon_threads = True
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"#;

/// A directory with start.sh/stop.sh that run that server on `port`, log
/// "start"/"stop" to `events`, and keep the server's pid in `pid`. `start_delay` makes a slow
/// cold start; a file named `fail` makes start.sh fail.
struct Target {
    dir: tempfile::TempDir,
    port: u16,
}

impl Target {
    /// With a listen backlog that holds any burst.
    fn new(start_delay_s: f64) -> Target {
        Target::with_backlog(start_delay_s, 1024)
    }

    fn with_backlog(start_delay_s: f64, backlog: u32) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path();
        std::fs::create_dir(path.join("www")).unwrap();
        std::fs::write(path.join("www/hello.txt"), BODY).unwrap();
        std::fs::write(path.join("server.py"), SERVER).unwrap();
        let d = path.display();
        std::fs::write(
            path.join("start.sh"),
            format!(
                "set -e\ncd {d}\nif [ -e fail ]; then echo 'no capacity left' >&2; exit 1; fi\n\
                 echo \"start $1\" >> events\nsleep {start_delay_s}\n\
                 python3 server.py {port} www {backlog} > server.log 2>&1 &\n\
                 echo $! > pid\n"
            ),
        )
        .unwrap();
        std::fs::write(
            path.join("stop.sh"),
            format!("cd {d}\necho stop >> events\nkill $(cat pid) && rm pid\n"),
        )
        .unwrap();
        Target { dir, port }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn hooks(&self) -> String {
        let d = self.path().display();
        format!(
            "scaler = \"command\"\nstart_command = \"sh {d}/start.sh\"\nstop_command = \"sh {d}/stop.sh\"\nmin_dynos = 0\nmax_dynos = 1\n"
        )
    }

    fn running_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.path().join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Never leave a server behind, even when a test fails half-way.
        if let Some(pid) = self.running_pid() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

async fn listening(bot: &Bot) {
    wait_until("the activator listens", || {
        bot.stderr().contains("Activator listening.")
    })
    .await;
}

/// One HTTP/1.0 GET through `stream`, answered in full.
async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S) -> String {
    stream
        .write_all(b"GET /hello.txt HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer within the deadline")
        .expect("a clean end, not a reset");
    String::from_utf8_lossy(&answer).into_owned()
}

async fn get_tcp(port: u16) -> String {
    get(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap())
    .await
}

/// A local server that records every request it gets, and writes "hook" to `events`.
#[derive(Clone, Default)]
struct HookServer {
    requests: Arc<Mutex<Vec<(Method, HeaderMap, String)>>>,
}

async fn hook_server(events: PathBuf) -> (HookServer, String) {
    let server = HookServer::default();
    let recorded = server.requests.clone();
    let router = Router::new().route(
        "/bye",
        any(move |method: Method, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            let events = events.clone();
            async move {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&events)
                    .unwrap();
                writeln!(file, "hook").unwrap();
                recorded.lock().unwrap().push((
                    method,
                    headers,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (server, format!("http://{address}/bye"))
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_start_on_demand_stop_after_idle_with_the_shutdown_hook_and_start_again() {
    let target = Target::new(0.0);
    let (hook, hook_url) = hook_server(target.path().join("events")).await;
    let listen = free_port();
    let settings = format!(
        "{hooks}idle_after = \"1s\"\n\
         [shutdown_hook]\nurl = \"{hook_url}\"\nmethod = \"POST\"\nbody = '{{\"message\": \"shutting down\"}}'\n\
         headers = {{ Authorization = \"Bearer hook-secret-77\", Content-Type = \"application/json\" }}\n\
         [activator]\nlisten = \"127.0.0.1:{listen}\"\ntarget = \"127.0.0.1:{port}\"\nwake_timeout = \"30s\"\n",
        hooks = target.hooks(),
        port = target.port,
    );
    let mut bot = Bot::start(&settings, &["activate"], &[]);
    listening(&bot).await;
    assert!(target.events().is_empty(), "nothing starts before a client");

    let answer = get_tcp(listen).await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.ends_with(BODY), "{answer}");
    assert_eq!(target.events(), vec!["start 1"]);
    let first_pid = target.running_pid().expect("start.sh started the server");

    wait_until("the target is stopped after idle_after", || {
        target.events().len() >= 3
    })
    .await;
    assert_eq!(
        target.events(),
        vec!["start 1", "hook", "stop"],
        "the hook comes before the stop"
    );
    wait_until("the server is gone", || !alive(first_pid)).await;
    {
        let requests = hook.requests.lock().unwrap();
        assert_eq!(requests.len(), 1);
        let (method, headers, body) = &requests[0];
        assert_eq!(method, Method::POST);
        assert_eq!(headers["authorization"], "Bearer hook-secret-77");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, "{\"message\": \"shutting down\"}");
    }

    let answer = get_tcp(listen).await;
    assert!(answer.ends_with(BODY), "{answer}");
    assert_eq!(
        &target.events()[3..],
        ["start 1"],
        "the next client starts it again"
    );
    assert!(bot.terminate().await.success());
    assert!(
        !bot.stderr().contains("hook-secret-77"),
        "a hook header reached the log"
    );
}

/// 100 clients at once, each giving up after `client_timeout`: how many got the body.
async fn herd(listen: u16, client_timeout: Duration) -> usize {
    let clients: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", listen))
                    .await
                    .unwrap();
                tokio::time::timeout(client_timeout, get(stream)).await
            })
        })
        .collect();
    let mut answered = 0;
    for client in clients {
        match client.await.unwrap() {
            Ok(answer) if answer.ends_with(BODY) => answered += 1,
            Ok(answer) => panic!("a client got {answer:?}"),
            Err(_) => {}
        }
    }
    answered
}

/// A herd of 100 clients arrives during a 1.5 s cold start; every one gets its answer within
/// `client_timeout` (each client's own), and the target is started once. Then the target dies
/// under the activator and a second herd arrives: it is answered in full too, by one restart.
async fn herds_during_cold_starts(target: Target, client_timeout: Duration) {
    let listen = free_port();
    let settings = format!(
        "{hooks}[activator]\nlisten = \"127.0.0.1:{listen}\"\ntarget = \"127.0.0.1:{port}\"\nwake_timeout = \"60s\"\n",
        hooks = target.hooks(),
        port = target.port,
    );
    let mut bot = Bot::start(&settings, &["activate"], &[]);
    listening(&bot).await;
    let answered = herd(listen, client_timeout).await;
    assert_eq!(answered, 100, "clients answered within {client_timeout:?}");
    assert_eq!(
        target.events(),
        vec!["start 1"],
        "one start for all of them"
    );

    let pid = target.running_pid().expect("start.sh started the server");
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    wait_until("the server is gone", || !alive(pid)).await;
    let answered = herd(listen, client_timeout).await;
    assert_eq!(
        answered, 100,
        "after the target died, clients answered within {client_timeout:?}"
    );
    assert_eq!(target.events(), vec!["start 1", "stop", "start 1"]);
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_clients_during_a_slow_cold_start_all_get_their_answers() {
    herds_during_cold_starts(Target::new(1.5), DEADLINE).await;
}

/// Python's own backlog of 5: released at once, most of the herd would be dropped by the
/// target's kernel and wait on retransmissions for tens of seconds (20 s is when the clients
/// of the issue gave up).
#[tokio::test(flavor = "multi_thread")]
async fn a_herd_released_onto_a_backlog_of_5_is_answered_in_full() {
    herds_during_cold_starts(Target::with_backlog(1.5, 5), Duration::from_secs(20)).await;
}

/// A target for the forwarding tests: the first byte of a connection says what it does.
/// `u`: read to the end, answer every byte plus one, close. `e`: echo until the end. `s`: send
/// [`STREAMED`] bytes and close.
async fn forwarding_target() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut kind = [0u8; 1];
                // The activator's own check that the target is up sends nothing.
                if stream.read_exact(&mut kind).await.is_err() {
                    return;
                }
                match kind[0] {
                    b'u' => {
                        let mut received = Vec::new();
                        stream.read_to_end(&mut received).await.unwrap();
                        let answer: Vec<u8> = received.iter().map(|b| b.wrapping_add(1)).collect();
                        stream.write_all(&answer).await.unwrap();
                    }
                    b'e' => {
                        let mut buffer = vec![0; 64 * 1024];
                        loop {
                            let read = stream.read(&mut buffer).await.unwrap();
                            if read == 0 {
                                break;
                            }
                            stream.write_all(&buffer[..read]).await.unwrap();
                        }
                    }
                    _ => stream.write_all(&pattern(STREAMED)).await.unwrap(),
                }
                stream.shutdown().await.unwrap();
            });
        }
    });
    port
}

const STREAMED: usize = 8 * 1024 * 1024;

fn pattern(length: usize) -> Vec<u8> {
    (0..length as u32).map(|n| (n % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn forwards_small_and_large_transfers_half_closes_and_slow_readers() {
    let port = forwarding_target().await;
    let listen = free_port();
    let settings = format!(
        "scaler = \"command\"\nstart_command = \"true\"\nstop_command = \"true\"\nmin_dynos = 0\nmax_dynos = 1\n\
         [activator]\nlisten = \"127.0.0.1:{listen}\"\ntarget = \"127.0.0.1:{port}\"\n"
    );
    let mut bot = Bot::start(&settings, &["activate"], &[]);
    listening(&bot).await;
    let connect = || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", listen))
            .await
            .unwrap()
    };

    // Large both ways, ended by the client's half close: the answer still comes back.
    let mut client = connect().await;
    let payload = pattern(3_000_000);
    client.write_all(b"u").await.unwrap();
    client.write_all(&payload).await.unwrap();
    client.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, client.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let expected: Vec<u8> = payload.iter().map(|b| b.wrapping_add(1)).collect();
    assert!(answer == expected, "the large answer differs");

    // Small messages back and forth on one connection, then the end passed both ways.
    let mut client = connect().await;
    client.write_all(b"e").await.unwrap();
    for size in (1..3_000).step_by(97) {
        let message = pattern(size);
        client.write_all(&message).await.unwrap();
        let mut echoed = vec![0; size];
        tokio::time::timeout(DEADLINE, client.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert!(
            echoed == message,
            "a message of {size} bytes came back changed"
        );
    }
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());

    // A slow reader gets every byte of a stream sent faster than it reads.
    let mut client = connect().await;
    client.write_all(b"s").await.unwrap();
    let mut received = Vec::new();
    let mut sip = vec![0; 64 * 1024];
    loop {
        let read = tokio::time::timeout(DEADLINE, client.read(&mut sip))
            .await
            .unwrap()
            .unwrap();
        if read == 0 {
            break;
        }
        received.extend_from_slice(&sip[..read]);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        received == pattern(STREAMED),
        "the slow reader got other bytes"
    );
    assert!(bot.terminate().await.success());
}

/// Clients keep coming from before the target is up until the lanes forward on their own: the
/// slow way that paces the herd of a cold start must not hold a steady stream for ever.
#[tokio::test(flavor = "multi_thread")]
async fn a_steady_stream_of_clients_after_a_cold_start_soon_goes_straight_to_the_target() {
    let port = forwarding_target().await;
    let listen = free_port();
    let settings = format!(
        "scaler = \"command\"\nstart_command = \"true\"\nstop_command = \"true\"\nmin_dynos = 0\nmax_dynos = 1\n\
         [activator]\nlisten = \"127.0.0.1:{listen}\"\ntarget = \"127.0.0.1:{port}\"\n"
    );
    let mut bot = Bot::start(&settings, &["activate"], &[]);
    listening(&bot).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", listen))
                        .await
                        .unwrap();
                    client.write_all(b"eping").await.unwrap();
                    client.shutdown().await.unwrap();
                    let mut answer = Vec::new();
                    tokio::time::timeout(DEADLINE, client.read_to_end(&mut answer))
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(answer, b"ping");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    wait_until("the lanes forward on their own", || {
        bot.stderr()
            .contains("new clients go straight to the target")
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        assert!(client.await.unwrap() > 0);
    }
    assert!(bot.terminate().await.success());
}

const HANDOFF_TARGET: &str = r#"
import json, os, signal, socket, sys
out = sys.argv[1]
def stop(number, frame):
    with open(os.path.join(out, "signal"), "w") as f:
        f.write(str(number))
    sys.exit(0)
signal.signal(signal.SIGUSR1, stop)
signal.signal(signal.SIGTERM, stop)
with open(os.path.join(out, "env.json"), "w") as f:
    json.dump({"pid": os.getpid(), "LISTEN_FDS": os.environ.get("LISTEN_FDS"),
               "LISTEN_PID": os.environ.get("LISTEN_PID"),
               "LISTEN_FDNAMES": os.environ.get("LISTEN_FDNAMES")}, f)
listener = socket.socket(fileno=3)
while True:
    connection, _ = listener.accept()
    request = connection.recv(1024)
    connection.sendall(b"handoff: " + request)
    connection.close()
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_command_gets_the_socket_as_fd_3_and_is_stopped_with_the_chosen_signal() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("target.py");
    std::fs::write(&script, HANDOFF_TARGET).unwrap();
    let listen = free_port();
    let settings = format!(
        "[activator]\nlisten = \"127.0.0.1:{listen}\"\ncommand = \"python3 {script} {dir}\"\nidle_after = \"1s\"\nstop_signal = \"SIGUSR1\"\n",
        script = script.display(),
        dir = dir.path().display(),
    );
    let mut bot = Bot::start(&settings, &["activate"], &[]);
    listening(&bot).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", listen))
        .await
        .unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, "handoff: ping");

    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("env.json")).unwrap())
            .unwrap();
    assert_eq!(env["LISTEN_FDS"], "1");
    assert_eq!(env["LISTEN_FDNAMES"], "activator");
    assert_eq!(
        env["LISTEN_PID"].as_str().unwrap(),
        env["pid"].to_string(),
        "LISTEN_PID is the target's own pid"
    );
    let pid = env["pid"].as_i64().unwrap() as i32;

    wait_until("the target got the stop signal", || {
        dir.path().join("signal").exists()
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("signal")).unwrap(),
        "10",
        "SIGUSR1"
    );
    wait_until("the target is gone", || !alive(pid)).await;
    assert!(bot.is_running(), "the activator keeps serving");
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unix_socket_listen_replaces_a_stale_socket_and_refuses_a_live_one_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), BODY).unwrap();
    let socket = dir.path().join("front.sock");
    // A stale socket left by a crashed process.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let port = free_port();
    let settings = format!(
        "[activator]\nlisten = \"unix:{socket}\"\ntarget = \"127.0.0.1:{port}\"\n\
         command = \"python3 -m http.server {port} --bind 127.0.0.1 --directory {dir}\"\n",
        socket = socket.display(),
        dir = dir.path().display(),
    );
    let mut bot = Bot::start(&settings, &["activate"], &[]);
    listening(&bot).await;
    let answer = get(tokio::net::UnixStream::connect(&socket).await.unwrap()).await;
    assert!(answer.ends_with(BODY), "{answer}");

    // A second activator on the live socket: exit 2, a clear error.
    let mut second = Bot::start(&settings, &["activate"], &[]);
    wait_until("the second activator exits", || !second.is_running()).await;
    assert!(
        second.stderr().contains("another server is listening"),
        "{}",
        second.stderr()
    );

    assert!(bot.terminate().await.success());
    assert!(!socket.exists(), "the activator removes its socket file");
    std::fs::write(&socket, "not a socket").unwrap();
    let (_dir, file) = settings_file(&settings);
    let output = command()
        .arg(format!("--settings={}", file.display()))
        .arg("activate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_start_hook_is_answered_cleanly_and_the_activator_keeps_serving() {
    let target = Target::new(0.0);
    std::fs::write(target.path().join("fail"), "").unwrap();
    let listen = free_port();
    let settings = format!(
        "{hooks}[activator]\nlisten = \"127.0.0.1:{listen}\"\ntarget = \"127.0.0.1:{port}\"\nwake_timeout = \"60s\"\n",
        hooks = target.hooks(),
        port = target.port,
    );
    let mut bot = Bot::start(&settings, &["activate"], &[]);
    listening(&bot).await;
    // The hook fails: the client is closed cleanly (an end, not a reset) long before the
    // wake timeout, and the failure is logged with the hook's own words.
    let answer = get_tcp(listen).await;
    assert_eq!(answer, "");
    wait_until("the failure is logged", || {
        bot.stderr().contains("Starting the target failed")
    })
    .await;
    assert!(
        bot.stderr().contains("no capacity left"),
        "{}",
        bot.stderr()
    );

    std::fs::remove_file(target.path().join("fail")).unwrap();
    let answer = get_tcp(listen).await;
    assert!(answer.ends_with(BODY), "{answer}");
    assert!(bot.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_never_comes_up_closes_the_client_at_wake_timeout_and_is_stopped() {
    let target = Target::new(0.0);
    // start.sh "succeeds" but the server it starts listens elsewhere.
    let wrong_port = free_port();
    let listen = free_port();
    let settings = format!(
        "{hooks}[activator]\nlisten = \"127.0.0.1:{listen}\"\ntarget = \"127.0.0.1:{wrong_port}\"\nwake_timeout = \"1s\"\n",
        hooks = target.hooks(),
    );
    let mut bot = Bot::start(&settings, &["activate"], &[]);
    listening(&bot).await;
    let answer = get_tcp(listen).await;
    assert_eq!(answer, "", "closed cleanly");
    wait_until("what was started is stopped again", || {
        target.events() == ["start 1", "stop"]
    })
    .await;
    assert!(bot.stderr().contains("wake_timeout"), "{}", bot.stderr());
    assert!(bot.is_running());
    assert!(bot.terminate().await.success());
}
