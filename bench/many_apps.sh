#!/usr/bin/env bash
# Many apps in one worker: APPS apps (default 10,000) at INTERVAL_S (30) on one core, against
# local heartbeat targets and a local formation API on one port (examples/bench_target.rs, on
# the other core). Reports beats missed, CPU, peak RSS (VmHWM) and API calls an hour.
#
#   [WORKER=path/to/autoscalebot] bench/many_apps.sh [APPS] [DURATION_S] [KEYS]
#
# APPS apps spread over KEYS API keys (default 100: an agency's client accounts); every 100th
# app answers in 1.5 s, so that some apps scale. DURATION_S (default 240) bounds the run.
# Each key's budget (3600 calls an hour) starts full; a size is re-read once it is 10
# heartbeats old (at once while the key has 90 % of its budget left, else at the budget's
# pace) and just before every scale: the last minute shows the pace.
set -euo pipefail
cd "$(dirname "$0")/.."
APPS=${1:-10000}
DURATION=${2:-240}
KEYS=${3:-100}
INTERVAL=${INTERVAL:-30}
PORT=${PORT:-18931}
# Another build of the worker to measure (say, one from before a change); default this one.
WORKER=${WORKER:-target/release/autoscalebot}
WORKER_CORE=${WORKER_CORE:-0}
TARGET_CORE=${TARGET_CORE:-1}

cargo build --release --quiet --bin autoscalebot --example bench_target
dir=$(mktemp -d)
trap 'kill $worker $target 2>/dev/null || true; rm -rf "$dir"' EXIT

{
  echo "heroku_api_url = \"http://127.0.0.1:$PORT\""
  echo "heartbeat_interval_in_seconds = $INTERVAL"
  echo "heroku_api_key = \"bench-key-0\""
  echo "downtime_file = \"\""
  for ((n = 0; n < APPS; n++)); do
    printf '[[apps]]\nheroku_app_name = "app-%d"\nheroku_api_key = "bench-key-%d"\nheartbeat_url = "http://127.0.0.1:%d/hb/%d"\n' \
      "$n" $((n % KEYS)) "$PORT" "$n"
  done
} > "$dir/settings.toml"

taskset -c "$TARGET_CORE" target/release/examples/bench_target "$PORT" "$APPS" "$INTERVAL" 100 &
target=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/stats" >/dev/null && break; sleep 0.1; done

started=$(date +%s.%N)
RUST_LOG=warn taskset -c "$WORKER_CORE" "$WORKER" --settings "$dir/settings.toml" \
  2> "$dir/worker.log" &
worker=$!
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$worker/stat"; }

# The first interval spreads the apps' first heartbeats; measure after it.
sleep "$INTERVAL"
cpu_start=$(cpu); wall_start=$(date +%s.%N)
sleep $((DURATION - INTERVAL))
cpu_end=$(cpu); wall_end=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2, $3}' "/proc/$worker/status")
threads=$(awk '/Threads/ {print $2}' "/proc/$worker/status")
stats=$(curl -sf "http://127.0.0.1:$PORT/stats?window_s=60")
kill -TERM $worker; wait $worker || true

python3 - "$stats" "$cpu_start" "$cpu_end" "$wall_start" "$wall_end" "$ticks" "$hwm" "$APPS" "$KEYS" "$INTERVAL" "$threads" <<'PY'
import json, sys
stats = json.loads(sys.argv[1])
cpu_s = (float(sys.argv[3]) - float(sys.argv[2])) / float(sys.argv[6])
wall_s = float(sys.argv[5]) - float(sys.argv[4])
apps, keys, interval = int(sys.argv[8]), int(sys.argv[9]), float(sys.argv[10])
window = stats["window_s"]
per_hour = stats["window_api_calls"] * 3600 / window
print(f"apps {apps} at {interval:g} s over {keys} API keys, measured for {wall_s:.0f} s after the first interval")
print(f"heartbeats served: {stats['heartbeats']} in {stats['seconds']:.0f} s; apps that never beat: {stats['apps_never_beat']}")
print(f"beats missed: {stats['beats_missed']}; longest gap between two beats of one app: {stats['max_gap_ms'] / 1000:.1f} s")
print(f"worker CPU: {100 * cpu_s / wall_s:.1f} % of one core ({1e6 * cpu_s / max(1, apps * wall_s / interval):.0f} us per heartbeat); peak RSS (VmHWM): {sys.argv[7]}; threads: {sys.argv[11]}")
print(f"API calls: {stats['api_calls']} in {stats['seconds']:.0f} s ({stats['api_patches']} writes, {stats['api_304']} answered 304): {stats['api_calls'] * 3600 / stats['seconds']:.0f} an hour on average")
print(f"API calls in the last {window} s: {per_hour:.0f} an hour in all, {stats['window_api_calls_max_per_key'] * 3600 / window:.0f} an hour for the busiest key (reading every heartbeat would cost {apps * 3600 / interval / keys:.0f} per key)")
PY
grep -c -i "warn\|error" "$dir/worker.log" | sed 's/^/worker log lines at warn or error: /' || true
