#!/usr/bin/env bash
# Our worker against the original autoscalebot 2.1 and against the floor (bench/floor.c, one
# kept-alive GET per beat in C), side by side in one run on one local heartbeat target: CPU
# time per heartbeat, requests per heartbeat, peak RSS, and classification 5 ms either side of
# max and min. Needs Python 3, gcc, and Python 2.7 for the original (pyenv's 2.7.18; the
# original's package is fetched with pip on first use). Takes about two minutes;
# BENCH_WINDOW_S sets the cost window (default 60 s), BENCH_PINGS the heartbeats per accuracy
# level (default 10).
# usage: bench/vs_original.sh [PATH_TO_SHARED]   (default: ../shared beside the repository)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${1:-$repo/../shared}
cd "$repo"
# The same build as bench/many_apps.sh, so the two share one set of release artifacts.
cargo build --release --quiet --bin autoscalebot --example bench_target
gcc -O2 -o "$repo/target/release/floor" "$repo/bench/floor.c"
exec python3 "$repo/bench/vs_original.py" "$repo/target/release/autoscalebot" \
  "$shared/bench/original/run_original.sh" "$repo/target/release/floor"
