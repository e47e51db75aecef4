#!/usr/bin/env bash
# Instructions per heartbeat of one app's worker, counted by valgrind's callgrind: unlike CPU
# time, the count does not depend on what else runs on the machine. The worker beats every
# 0.2 s against bench/target.py (10 ms answers, a formation API); after a warm-up the counters
# are zeroed, and after WINDOW_S dumped; instructions are divided by the heartbeats the target
# counted, and the formation reads by the same. The profile is kept for callgrind_annotate.
#
#   bench/callgrind_worker.sh [BINARY] [WINDOW_S] [OUT_DIR]
#
# BINARY defaults to target/release/autoscalebot (build it first), WINDOW_S to 30, OUT_DIR to
# a fresh temporary directory (printed). Needs valgrind and python3.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$repo/target/release/autoscalebot}
window=${2:-30}
out=${3:-$(mktemp -d -t callgrind-worker-XXXX)}
mkdir -p "$out"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
cat > "$out/settings.toml" <<TOML
heroku_app_name = "bench-app"
heroku_api_key = "bench-key"
heroku_api_url = "$base"
app_url = "$base"
heartbeat_url = "/heartbeat"
heartbeat_interval_in_seconds = 0.2
max_response_time_in_ms = 1000
min_response_time_in_ms = 1
TOML
python3 "$repo/bench/target.py" "$port" &
target=$!
trap 'kill $target ${worker:-} 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "$base/stats" >/dev/null && break; sleep 0.1; done
stat() { curl -sf "$base/stats" | python3 -c "import json, sys; s = json.load(sys.stdin); print(s['hits']['ours'], s['formation_reads'])"; }

env -u RUST_LOG valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
  "$binary" --settings "$out/settings.toml" > /dev/null 2> "$out/worker.log" &
worker=$!
for _ in $(seq 600); do [ "$(stat | cut -d' ' -f1)" -gt 0 ] && break; sleep 0.1; done
sleep 10
callgrind_control -z "$worker" > /dev/null
read -r hits_before reads_before < <(stat)
sleep "$window"
read -r hits_after reads_after < <(stat)
callgrind_control -d "$worker" > /dev/null
kill -TERM "$worker"; wait "$worker" 2>/dev/null || true
worker=
dump=$(ls -t "$out"/callgrind.out.*.1 | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
beats=$((hits_after - hits_before))
reads=$((reads_after - reads_before))
python3 - "$total" "$beats" "$reads" "$dump" <<'PY'
import sys
total, beats, reads, dump = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"heartbeats: {beats}; formation reads: {reads} ({reads / max(beats, 1):.3f} a beat); "
      f"requests a beat: {(beats + reads) / max(beats, 1):.3f}")
print(f"instructions: {total:,} in all, {total / max(beats, 1):,.0f} a heartbeat")
print(f"profile: {dump}  (callgrind_annotate --inclusive=yes {dump} | head -60)")
PY
