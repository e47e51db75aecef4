#!/usr/bin/env python3
"""The activator against the TCP proxies people put in front of a web app, side by side in one
run on this machine, every proxy in front of the same targets with the same clients:

  activator              `autoscalebot activate` (a command scaler whose hooks do nothing: the
                         target is already up, so this is the forwarding path alone)
  haproxy                `mode tcp`, its defaults (one thread per CPU)
  nginx-stream           nginx's stream module, `worker_processes auto`
  socat                  `TCP-LISTEN:...,fork` (a process per connection)
  systemd-socket-proxyd  started by systemd-socket-activate, as systemd would
  direct                 no proxy: the target itself, for scale

Measures (every address is on loopback):
  bulk        iperf3, one stream for BULK_S seconds through the proxy to an iperf3 server: Gbit/s
  keep-alive  wrk -t2 -cCONNS -dWRK_S against an nginx HTTP target (a 100-byte answer):
              requests/s, p50, p99
  new-conn    the same with `Connection: close`: a new connection for every request
  syscalls    the proxy run under `perf stat -e raw_syscalls:sys_enter,task-clock` (all its
              processes and threads) for a wrk run of SYSCALL_S seconds: system calls and CPU
              time (user and kernel) per request, keep-alive and new-connection. On a machine
              other processes load, CPU per request says more about a proxy than its rate,
              which also follows how much CPU the scheduler gave it.

Every proxy is started afresh for each measure and warmed by WARM_S seconds of the same
load first. Each measure is taken for every proxy in turn before the next measure, ROUNDS times (default
3), the order turned by one each round; the best round of each figure is reported, so that a
burst of load from other processes on the machine costs a proxy one round, not its figure.

Usage: vs_proxies.py AUTOSCALEBOT_BINARY     (bounded: about ten minutes with the defaults)
Needs haproxy, nginx, libnginx-mod-stream, socat, systemd, wrk, iperf3 and perf.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BULK_S = int(os.environ.get("BENCH_BULK_S", "5"))
WRK_S = int(os.environ.get("BENCH_WRK_S", "6"))
SYSCALL_S = int(os.environ.get("BENCH_SYSCALL_S", "4"))
WARM_S = 1
CONNS = int(os.environ.get("BENCH_CONNS", "50"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ONLY = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
BODY = "x" * 100
NGINX_MODULES = "/usr/lib/nginx/modules"
PROXYD = "/lib/systemd/systemd-socket-proxyd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, deadline_s=20.0):
    started = time.time()
    while time.time() - started < deadline_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("nothing listens on port %d after %.0f s" % (port, deadline_s))


def http_get(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return answer
            answer += chunk


def stop(process, timeout_s=10.0):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Proxy:
    """One proxy's command line, for a listen port and a target port."""

    def __init__(self, name, command, env=None):
        self.name = name
        self.command = command  # (listen, target, dir) -> argv
        self.env = env

    def start(self, listen, target, dir, perf_out=None):
        argv = self.command(listen, target, dir)
        if perf_out:
            argv = ["perf", "stat", "-x,", "-o", perf_out, "-e", "raw_syscalls:sys_enter,task-clock", "--"] + argv
        env = dict(os.environ, **(self.env or {}))
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(dir, self.name + ".log"), "a"),
            start_new_session=True,
        )
        wait_listening(listen)
        return process


def activator_command(binary):
    def command(listen, target, dir):
        settings = os.path.join(dir, "activator-%d.toml" % listen)
        with open(settings, "w") as f:
            f.write(
                'scaler = "command"\nstart_command = "true"\nstop_command = "true"\n'
                "min_dynos = 0\nmax_dynos = 1\n"
                '[activator]\nlisten = "127.0.0.1:%d"\ntarget = "127.0.0.1:%d"\n' % (listen, target)
            )
        return [binary, "--settings=" + settings, "activate"]

    return command


def haproxy_command(listen, target, dir):
    config = os.path.join(dir, "haproxy-%d.cfg" % listen)
    with open(config, "w") as f:
        f.write(
            "global\n  maxconn 4000\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
            "frontend in\n  bind 127.0.0.1:%d\n  default_backend out\n"
            "backend out\n  server target 127.0.0.1:%d\n" % (listen, target)
        )
    return ["haproxy", "-db", "-f", config]


def nginx_stream_command(listen, target, dir):
    config = os.path.join(dir, "nginx-stream-%d.conf" % listen)
    with open(config, "w") as f:
        f.write(
            "load_module %s/ngx_stream_module.so;\n"
            "daemon off;\nworker_processes auto;\npid %s/nginx-stream-%d.pid;\n"
            "error_log %s/nginx-stream.error.log warn;\n"
            "events { worker_connections 4000; }\n"
            "stream { server { listen 127.0.0.1:%d backlog=4096; proxy_pass 127.0.0.1:%d; } }\n"
            % (NGINX_MODULES, dir, listen, dir, listen, target)
        )
    return ["nginx", "-p", dir, "-c", config]


def socat_command(listen, target, dir):
    return ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,backlog=4096" % listen, "TCP:127.0.0.1:%d" % target]


def proxyd_command(listen, target, dir):
    return ["systemd-socket-activate", "-l", "127.0.0.1:%d" % listen, PROXYD, "--connections-max=4096", "127.0.0.1:%d" % target]


def nginx_target(dir):
    port = free_port()
    config = os.path.join(dir, "target.conf")
    with open(config, "w") as f:
        f.write(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid %s/target.pid;\n"
            "error_log %s/target.error.log warn;\n"
            "events { worker_connections 4000; }\n"
            "http { access_log off; keepalive_requests 100000000; keepalive_timeout 120s;\n"
            "  server { listen 127.0.0.1:%d backlog=4096; location / { return 200 '%s'; } } }\n"
            % (dir, dir, port, BODY)
        )
    process = subprocess.Popen(["nginx", "-p", dir, "-c", config], stderr=subprocess.DEVNULL)
    wait_listening(port)
    return process, port


def wrk(port, seconds, close):
    argv = ["wrk", "-t2", "-c%d" % CONNS, "-d%ds" % seconds, "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    output = subprocess.run(argv + ["http://127.0.0.1:%d/" % port], capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Socket errors: (.*)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)

    def percentile(label):
        value, unit = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, output, re.M).groups()
        return float(value) * {"us": 1, "ms": 1000, "s": 1e6}[unit]

    return {
        "rate": rate,
        "requests": requests,
        "p50_us": percentile("50"),
        "p99_us": percentile("99"),
        "errors": (errors.group(1) if errors else "") + (" non-2xx %s" % non2xx.group(1) if non2xx else ""),
    }


def iperf(port, seconds):
    output = subprocess.run(
        ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    result = json.loads(output)
    if "error" in result:
        raise RuntimeError(result["error"])
    return result["end"]["sum_received"]["bits_per_second"] / 1e9


def perf_counts(perf_out):
    """(system calls, CPU seconds) of the proxy's whole life under perf."""
    counts = {}
    with open(perf_out) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) > 2 and not line.startswith("#"):
                counts[fields[2]] = float(fields[0])
    if "raw_syscalls:sys_enter" not in counts or "task-clock" not in counts:
        raise SystemExit("no counts in " + perf_out)
    return counts["raw_syscalls:sys_enter"], counts["task-clock"] / 1000


def main():
    binary = os.path.abspath(sys.argv[1])
    for tool in ["haproxy", "nginx", "socat", "systemd-socket-activate", "wrk", "iperf3", "perf"]:
        if not shutil.which(tool):
            raise SystemExit("%s is missing: apt-get install haproxy nginx libnginx-mod-stream socat systemd wrk iperf3 linux-perf" % tool)
    proxies = [
        Proxy("activator", activator_command(binary), {"RUST_LOG": "warn"}),
        Proxy("haproxy", haproxy_command),
        Proxy("nginx-stream", nginx_stream_command),
        Proxy("socat", socat_command),
        Proxy("systemd-socket-proxyd", proxyd_command),
    ]
    if ONLY:
        proxies = [p for p in proxies if p.name in ONLY]
    names = [p.name for p in proxies] + ["direct"]
    load_at_start = open("/proc/loadavg").read().split()[:3]
    dir = tempfile.mkdtemp(prefix="vs-proxies-")
    target, http_port = nginx_target(dir)
    iperf_port = free_port()
    iperf_server = subprocess.Popen(["iperf3", "-s", "-p", str(iperf_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(iperf_port)
    best = {name: {} for name in names}

    def keep(name, key, value, better):
        if key not in best[name] or better(value, best[name][key]):
            best[name][key] = value

    try:
        assert http_get(http_port).endswith(BODY.encode()), "the target answers"
        def started(proxy, target_port, perf_out=None):
            """(port, process) of `proxy` in front of `target_port`; the target itself for none."""
            if not proxy:
                return target_port, None
            port = free_port()
            return port, proxy.start(port, target_port, dir, perf_out)

        def bulk(proxy, name):
            port, process = started(proxy, iperf_port)
            try:
                # The first connection wakes the activator's target, and its check connection
                # reaches iperf3's server as a client that went away at once: one throwaway
                # test first, for every proxy alike.
                try:
                    iperf(port, 1)
                except RuntimeError:
                    pass
                keep(name, "bulk_gbps", iperf(port, BULK_S), lambda a, b: a > b)
            finally:
                if process:
                    stop(process)

        def requests(key, close):
            def measure(proxy, name):
                port, process = started(proxy, http_port)
                try:
                    answer = http_get(port)
                    assert answer.endswith(BODY.encode()), "%s answers: %r" % (name, answer[:200])
                    wrk(port, WARM_S, close)
                    result = wrk(port, WRK_S, close)
                    keep(name, key, result, lambda a, b: a["rate"] > b["rate"])
                    for quantile in ["p50_us", "p99_us"]:
                        keep(name, key + "_" + quantile, result[quantile], lambda a, b: a < b)
                finally:
                    if process:
                        stop(process)
            return measure

        def system_calls(proxy, name):
            if not proxy:
                return
            for key, close in [("keepalive", False), ("newconn", True)]:
                perf_out = os.path.join(dir, "perf-%s-%s.txt" % (name, key))
                port, process = started(proxy, http_port, perf_out)
                try:
                    warm = wrk(port, WARM_S, close)
                    result = wrk(port, SYSCALL_S, close)
                    result["requests"] += warm["requests"]
                finally:
                    # perf stat ends when the proxy does: stop the proxy, not perf.
                    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
                    for child in children:
                        os.kill(int(child), signal.SIGTERM)
                    process.wait(timeout=30)
                calls, cpu_s = perf_counts(perf_out)
                requests = max(result["requests"], 1)
                keep(name, "syscalls_" + key, calls / requests, lambda a, b: a < b)
                keep(name, "cpu_us_" + key, cpu_s * 1e6 / requests, lambda a, b: a < b)

        # Each measure for every proxy in turn, the order turned by one each round, so that
        # load that rises or falls during a run favours no proxy.
        everyone = proxies + [None]
        for round in range(ROUNDS):
            shift = round % len(everyone)
            order = everyone[shift:] + everyone[:shift]
            for phase in [bulk, requests("keepalive", False), requests("newconn", True), system_calls]:
                for proxy in order:
                    phase(proxy, proxy.name if proxy else "direct")
            print("round %d of %d done" % (round + 1, ROUNDS), file=sys.stderr, flush=True)
    finally:
        stop(iperf_server)
        stop(target)
        shutil.rmtree(dir, ignore_errors=True)

    load = open("/proc/loadavg").read().split()[:3]
    print("bulk %d s (iperf3, one stream); wrk -t2 -c%d -d%ds against nginx (100-byte answer); "
          "syscalls and CPU over %d s of wrk; best of %d rounds; load average at the end %s "
          "(at the start %s); %d CPUs"
          % (BULK_S, CONNS, WRK_S, SYSCALL_S, ROUNDS, " ".join(load), " ".join(load_at_start), os.cpu_count()))
    print()
    print("| proxy | bulk Gbit/s | keep-alive req/s | p50 µs | p99 µs | new-conn req/s | p50 µs | p99 µs "
          "| syscalls/req keep-alive | new-conn | CPU µs/req keep-alive | new-conn |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        row = best[name]
        ka, nc = row["keepalive"], row["newconn"]
        extra = ["%.1f" % row[key] if key in row else "–"
                 for key in ["syscalls_keepalive", "syscalls_newconn", "cpu_us_keepalive", "cpu_us_newconn"]]
        print("| %s | %.1f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s |" % (
            name, row["bulk_gbps"], ka["rate"], row["keepalive_p50_us"], row["keepalive_p99_us"],
            nc["rate"], row["newconn_p50_us"], row["newconn_p99_us"], " | ".join(extra)))
    errors = ["%s %s: %s" % (name, key, best[name][key]["errors"]) for name in names
              for key in ["keepalive", "newconn"] if best[name][key]["errors"]]
    if errors:
        print()
        print("wrk errors: " + "; ".join(errors))
    peers = [n for n in names if n not in ("activator", "direct")]
    if "activator" in best and peers:
        us = best["activator"]
        print()
        for label, get in [
            ("bulk Gbit/s", lambda r: r["bulk_gbps"]),
            ("keep-alive req/s", lambda r: r["keepalive"]["rate"]),
            ("new-conn req/s", lambda r: r["newconn"]["rate"]),
        ]:
            top = max(peers, key=lambda n: get(best[n]))
            print("activator / best peer (%s), %s: %.2fx" % (top, label, get(us) / get(best[top])))
        # Latency and system calls: against the lowest of any peer, each on its own.
        for key, label in [("keepalive", "keep-alive"), ("newconn", "new-conn")]:
            for quantile in ["p50_us", "p99_us"]:
                figure = key + "_" + quantile
                top = min(peers, key=lambda n: best[n][figure])
                print("activator / lowest peer (%s), %s %s: %.2fx" % (
                    top, label, quantile[:3], us[figure] / best[top][figure]))
            for measure, what in [("syscalls_", "syscalls"), ("cpu_us_", "CPU")]:
                top = min(peers, key=lambda n: best[n][measure + key])
                print("activator / lowest peer (%s), %s %s per request: %.2fx" % (
                    top, label, what, us[measure + key] / best[top][measure + key]))

if __name__ == "__main__":
    main()
