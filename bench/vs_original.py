#!/usr/bin/env python3
"""Side by side, in one run, on one local heartbeat target (bench/target.py on 127.0.0.1):
our worker, the original autoscalebot 2.1, and the floor (bench/floor.c: one kept-alive GET
per beat in C, nothing else).

1. Cost: all three run at a 0.2 s interval against a 10 ms heartbeat for WINDOW_S seconds
   (after a warm-up); CPU time per heartbeat from /proc/PID/stat (utime + stime over the hits
   the target counted from each), requests per heartbeat (ours also reads the formation; the
   original keeps its count in memory), peak RSS from VmHWM in /proc/PID/status. The original
   runs through ../shared/bench/original/run_original.sh, exactly as published.
2. Accuracy: the target answers 5 ms above and below max (1000 ms) and min (200 ms); each
   heartbeat's class is read from our debug log and from the original's own ping_and_store
   (bench/original_classify.py, Python 2.7, the published package's code).
Usage: vs_original.py AUTOSCALEBOT_BINARY RUN_ORIGINAL_SH FLOOR_BINARY   (a few minutes at most)
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", "60"))
WARMUP_S = 5.0
INTERVAL_S = 0.2
MAX_MS, MIN_MS = 1000, 200
PINGS_PER_LEVEL = int(os.environ.get("BENCH_PINGS", "10"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def cpu_seconds(pid):
    """CPU time of every live thread of `pid`, from the scheduler in ns
    (/proc/PID/task/*/schedstat): /proc/PID/stat counts whole clock ticks (10 ms), too coarse
    for the floor's 20 ms a minute. A thread that exits within the window is not counted (ours
    only lets an idle blocking-pool thread go, which spends microseconds)."""
    total = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # exited between the listing and the read
    return total / 1e9


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def wait_for(what, condition, deadline_s):
    started = time.time()
    while not condition():
        if time.time() - started > deadline_s:
            raise SystemExit("timed out waiting for " + what)
        time.sleep(0.2)


def settings_file(base, directory):
    path = os.path.join(directory, "bench.toml")
    with open(path, "w") as f:
        f.write(
            'heroku_app_name = "bench-app"\nheroku_api_key = "bench-key"\n'
            'heroku_api_url = "%s"\napp_url = "%s"\nheartbeat_url = "/heartbeat"\n'
            "heartbeat_interval_in_seconds = %s\nmax_response_time_in_ms = %d\n"
            "min_response_time_in_ms = %d\n" % (base, base, INTERVAL_S, MAX_MS, MIN_MS))
    return path


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main():
    ours_bin, run_original, floor_bin = sys.argv[1], sys.argv[2], sys.argv[3]
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    heartbeat = base + "/heartbeat"
    work = tempfile.mkdtemp(prefix="bench-vs-original-")
    settings = settings_file(base, work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALE_") and k != "RUST_LOG"}
    processes = []
    try:
        target = subprocess.Popen([sys.executable, os.path.join(HERE, "target.py"), str(port)])
        processes.append(target)
        wait_for("the target", lambda: _answers(base + "/stats"), 10)
        get(base + "/control?latency_ms=10")
        hits = lambda: json.loads(get(base + "/stats"))["hits"]

        # 1. Cost, side by side.
        original = subprocess.Popen(
            [run_original, heartbeat, str(INTERVAL_S), str(MAX_MS), str(MIN_MS)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        processes.append(original)
        # The first run downloads the package with pip before it starts pinging.
        wait_for("the original's first heartbeat", lambda: hits()["original"] > 0, 300)
        ours = subprocess.Popen([ours_bin, "--settings", settings], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(ours)
        floor = subprocess.Popen([floor_bin, "127.0.0.1", str(port), "/heartbeat", str(INTERVAL_S)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(floor)
        wait_for("our first heartbeat", lambda: hits()["ours"] > 0, 30)
        wait_for("the floor's first heartbeat", lambda: hits()["floor"] > 0, 30)
        time.sleep(WARMUP_S)
        stats = lambda: json.loads(get(base + "/stats"))
        before = stats()
        contenders = (("original", original), ("ours", ours), ("floor", floor))
        cpu_before = {name: cpu_seconds(process.pid) for name, process in contenders}
        time.sleep(WINDOW_S)
        after = stats()
        cost = {}
        for name, process in contenders:
            beats = after["hits"][name] - before["hits"][name]
            cpu = cpu_seconds(process.pid) - cpu_before[name]
            # Only ours reads the formation (the target's API); the others send the heartbeat.
            reads = after["formation_reads"] - before["formation_reads"] if name == "ours" else 0
            cost[name] = {
                "heartbeats": beats,
                "cpu_ms_per_heartbeat": 1000.0 * cpu / max(beats, 1),
                "requests_per_heartbeat": (beats + reads) / max(beats, 1),
                "peak_rss_mib": status_kib(process.pid, "VmHWM") / 1024.0,
            }
        stop(floor)
        stop(ours)
        stop(original)

        # 2. Accuracy at 5 ms either side of max and min.
        log_path = os.path.join(work, "ours.log")
        log = open(log_path, "w")
        ours = subprocess.Popen([ours_bin, "--settings", settings],
                                env=dict(env, RUST_LOG="autoscalebot=debug"),
                                stdout=subprocess.DEVNULL, stderr=log)
        processes.append(ours)
        py2 = os.path.join(subprocess.check_output(["pyenv", "root"]).decode().strip(),
                           "versions", "2.7.18", "bin", "python")
        original_work = os.path.join(tempfile.gettempdir(), "bench-original")
        classify = subprocess.Popen(
            [py2, os.path.join(HERE, "original_classify.py"), heartbeat, str(MAX_MS), str(MIN_MS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(env, PYTHONPATH=os.path.dirname(os.path.abspath(run_original)) + ":" + original_work))
        processes.append(classify)
        levels = [(MAX_MS + 5, "fail"), (MAX_MS - 5, "in_band"),
                  (MIN_MS + 5, "in_band"), (MIN_MS - 5, "pass")]
        accuracy = []
        for latency, expected in levels:
            get(base + "/control?latency_ms=%d" % latency)
            time.sleep(1.5)  # let any heartbeat begun at the old latency finish
            mark = os.path.getsize(log_path)
            classify.stdin.write("%d\n" % PINGS_PER_LEVEL)
            classify.stdin.flush()
            theirs = json.loads(classify.stdout.readline())
            with open(log_path) as f:
                f.seek(mark)
                lines = [l for l in f.read().splitlines() if "observation=" in l]
            names = {"Fail": "fail", "Pass": "pass", "InBand": "in_band"}
            our_classes = [names.get(re.search(r"observation=(\w+)", l).group(1), "other") for l in lines]
            our_ms = [int(m.group(1)) for m in (re.search(r"heartbeat=(\d+) ms", l) for l in lines) if m]
            accuracy.append({
                "latency_ms": latency, "expected": expected,
                "ours": (our_classes.count(expected), len(our_classes)),
                "ours_median_ms": sorted(our_ms)[len(our_ms) // 2] if our_ms else None,
                "original": (theirs["results"].count(expected), len(theirs["results"])),
                "original_median_ms": sorted(theirs["ms"])[len(theirs["ms"]) // 2],
            })
        report(cost, accuracy)
    finally:
        for process in reversed(processes):
            stop(process)


def _answers(url):
    try:
        get(url)
        return True
    except OSError:
        return False


def report(cost, accuracy):
    o, r, f = cost["original"], cost["ours"], cost["floor"]
    load = os.getloadavg()
    print("| | autoscalebot 2.1 (Python 2.7) | ours (Rust) | floor (C, bench/floor.c) |")
    print("|---|---|---|---|")
    print("| heartbeats in the %.0f s window (0.2 s interval, 10 ms target) | %d | %d | %d |"
          % (WINDOW_S, o["heartbeats"], r["heartbeats"], f["heartbeats"]))
    print("| requests per heartbeat | %.3f | %.3f | %.3f |"
          % (o["requests_per_heartbeat"], r["requests_per_heartbeat"], f["requests_per_heartbeat"]))
    print("| CPU time per heartbeat | %.3f ms | %.3f ms | %.3f ms |"
          % (o["cpu_ms_per_heartbeat"], r["cpu_ms_per_heartbeat"], f["cpu_ms_per_heartbeat"]))
    floor_ms = max(f["cpu_ms_per_heartbeat"], 1e-9)
    print("| CPU per heartbeat / the floor's | %.2f x | %.2f x | 1 x |"
          % (o["cpu_ms_per_heartbeat"] / floor_ms, r["cpu_ms_per_heartbeat"] / floor_ms))
    print("| CPU per request / the floor's | %.2f x | %.2f x | 1 x |"
          % (o["cpu_ms_per_heartbeat"] / o["requests_per_heartbeat"] / floor_ms,
             r["cpu_ms_per_heartbeat"] / r["requests_per_heartbeat"] / floor_ms))
    print("| peak RSS (VmHWM) | %.1f MiB | %.1f MiB | %.1f MiB |"
          % (o["peak_rss_mib"], r["peak_rss_mib"], f["peak_rss_mib"]))
    for level in accuracy:
        print("| target answers in %d ms (expected: %s) | %d/%d right (median %.0f ms) | %d/%d right (median %s ms) | |"
              % (level["latency_ms"], level["expected"],
                 level["original"][0], level["original"][1], level["original_median_ms"],
                 level["ours"][0], level["ours"][1], level["ours_median_ms"]))
    print("load average at the end (1, 5, 15 min): %.2f %.2f %.2f on %d cores"
          % (load[0], load[1], load[2], os.cpu_count()))


if __name__ == "__main__":
    main()
