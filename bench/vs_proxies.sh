#!/usr/bin/env bash
# The activator against haproxy, nginx (stream), socat and systemd-socket-proxyd, side by side in
# one run on this machine: bulk throughput (iperf3), keep-alive and new-connection request rates
# with p50/p99 (wrk against an nginx HTTP target), and system calls per request (perf). Every
# address is on loopback; about ten minutes with the defaults (see bench/vs_proxies.py for the
# BENCH_* knobs). The tools come from Debian's packages:
#   apt-get install -y haproxy nginx libnginx-mod-stream socat systemd wrk iperf3 linux-perf
# usage: bench/vs_proxies.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cargo build --release --quiet --bin autoscalebot
exec python3 "$repo/bench/vs_proxies.py" "$repo/target/release/autoscalebot"
