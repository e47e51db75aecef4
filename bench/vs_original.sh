#!/usr/bin/env bash
# Our worker against the original autoscalebot 2.1, side by side in one run on one local
# heartbeat target: CPU time per heartbeat, peak RSS, and classification 5 ms either side of
# max and min. Needs Python 3, and Python 2.7 for the original (pyenv's 2.7.18; the original's
# package is fetched with pip on first use). Takes about two minutes; BENCH_WINDOW_S sets the
# cost window (default 60 s), BENCH_PINGS the heartbeats per accuracy level (default 10).
# usage: bench/vs_original.sh [PATH_TO_SHARED]   (default: ../shared beside the repository)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${1:-$repo/../shared}
cd "$repo"
cargo build --release --quiet
exec python3 "$repo/bench/vs_original.py" "$repo/target/release/autoscalebot" \
  "$shared/bench/original/run_original.sh"
