#!/usr/bin/env bash
# Does the simulator tell the truth? Runs the real worker against `autoscalebot sandbox` (real
# dynos behind Heroku's random routing, exponential service times, a boot time, the router's
# lines posted to the worker's log drain) under open-loop traffic replaying a compressed
# segment of a real trace, for each policy, and compares the slow time and the dyno-seconds it
# measures with what `autoscalebot simulate` predicts for the same segment and settings.
#
# Usage: bench/sim_vs_real.sh            (builds the release binary and the load example once)
# Environment (defaults in brackets):
#   TRACE [World Cup 98 week]  START [898782000: 1998-06-25 13:40 UTC]  MINUTES [180]
#   COMPRESSION [30]  RATE_SCALE [0.044: 2 to 8 dynos]  SERVICE_MS [200]  BOOT [1s]
#   POLICIES ["target streaks"]  RUNS [1]  OUT [a temporary folder, kept]
#   WARMUP [36: seconds left out of the second dyno-seconds column; both start at 1 dyno]
# Time is compressed: a trace minute lasts 60/COMPRESSION s, and so do the worker's
# intervals (a 30 s heartbeat is 1 s at 30×; the 3 m scale-down delay 6 s; a 30 s boot 1 s).
# Request times are not: a request still takes SERVICE_MS. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
trace="${TRACE:-../shared/traces/worldcup98_1998-06-24_to_06-30_per_minute.csv}"
start="${START:-898782000}"
minutes="${MINUTES:-180}"
compression="${COMPRESSION:-30}"
rate_scale="${RATE_SCALE:-0.044}"
service_ms="${SERVICE_MS:-200}"
boot="${BOOT:-1s}"
policies="${POLICIES:-target streaks}"
runs="${RUNS:-1}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
key="sim-vs-real-key"
password="sim-vs-real-drain"

cargo build --release --quiet --bin autoscalebot --example sim_vs_real_load
bin=target/release/autoscalebot
load=target/release/examples/sim_vs_real_load

# The segment, compressed in time, rates scaled: what both the load and `simulate` replay.
python3 - "$trace" "$start" "$minutes" "$compression" "$rate_scale" >"$out/segment.csv" <<'PY'
import csv, sys
path, start, minutes, compression, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rows = [r for r in csv.reader(open(path)) if r and r[0].isdigit()]
points = [(int(t), float(rate)) for t, rate in rows if start <= int(t) < start + minutes * 60]
assert points, "no point of the trace in the segment"
print("timestamp,requests_per_second")
for t, rate in points:
    print(f"{start + (t - start) / compression:.3f},{rate * scale:.4f}")
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 200); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    sleep 0.05
  done
  echo "nothing answers at $1" >&2
  return 1
}

seconds=$(python3 -c "print(1 / $compression * 30)")    # a 30 s heartbeat, compressed
delay=$(python3 -c "print(f'{180 / $compression:g}s')")  # the 3 m scale-down delay, compressed
for run in $(seq 1 "$runs"); do
for policy in $policies; do
  dir="$out/$policy-$run"
  mkdir -p "$dir"
  case "$policy" in
    target) signal="router" ;;
    streaks) signal="heartbeat" ;;
    *) echo "unknown policy $policy" >&2; exit 2 ;;
  esac
  api_port=$(free_port); app_port=$(free_port); http_port=$(free_port)
  cat >"$dir/settings.toml" <<EOF
heroku_app_name = "sandbox-app"
heroku_api_url = "http://127.0.0.1:$api_port"
app_url = "http://127.0.0.1:$app_port"
heartbeat_interval_in_seconds = $seconds
router_window = "${seconds}s"
max_response_time_in_ms = 1000
min_dynos = 1
max_dynos = 10
policy = "$policy"
signal = "$signal"
scale_down_delay = "$delay"
dyno_concurrency = 4
http_port = $http_port
log_drain_password = "$password"
log_format = "text"
EOF
  HEROKU_API_KEY="$key" "$bin" sandbox --port "$api_port" --app-port "$app_port" \
    --api-key "$key" --dynos 1 --max-quantity 10 --dyno-concurrency 4 \
    --service-time-ms "$service_ms" --service-times exponential --routing random \
    --boot-time "$boot" >"$dir/sandbox.log" 2>&1 &
  sandbox_pid=$!
  wait_http "http://127.0.0.1:$api_port/__sandbox/state"
  HEROKU_API_KEY="$key" "$bin" --settings "$dir/settings.toml" run >"$dir/worker.log" 2>&1 &
  worker_pid=$!
  wait_http "http://127.0.0.1:$http_port/healthz"
  if [ "$signal" != "heartbeat" ]; then
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$api_port/apps/sandbox-app/log-drains" \
      -H "Authorization: Bearer $key" -H "Accept: application/vnd.heroku+json; version=3" \
      -H "Content-Type: application/json" \
      -d "{\"url\": \"http://token:$password@127.0.0.1:$http_port/logs\"}"
  fi
  echo "+ $policy (run $run): replaying $minutes minutes at ${compression}× in $dir" >&2
  "$load" "$out/segment.csv" "http://127.0.0.1:$app_port/" "http://127.0.0.1:$api_port" "$dir"
  kill -TERM "$worker_pid"; wait "$worker_pid" || true
  kill -TERM "$sandbox_pid"; wait "$sandbox_pid" || true
  "$bin" --settings "$dir/settings.toml" simulate --trace "$out/segment.csv" \
    --service-time-ms "$service_ms" --boot-time "$boot" --seed "$run" --json \
    --csv "$dir/simulated.csv" >"$dir/simulated.json" 2>/dev/null
done
done

python3 - "$out" "$compression" "$policies" "$runs" "${WARMUP:-36}" <<'PY'
import csv, json, sys
from datetime import datetime
out, compression, policies, runs = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4])
warmup = float(sys.argv[5])
max_ms = 1000.0
# A trace minute, compressed: the unit of the simulator's "slow minutes".
bucket_ms = int(60_000 / compression)

def dyno_seconds(points, start, end):
    total = 0.0
    for (at, quantity), (after, _) in zip(points, points[1:] + [(end, 0)]):
        low, high = max(at, start), min(after, end)
        if high > low:
            total += quantity * (high - low)
    return total

def p95(values):
    values = sorted(values)
    rank = max(1, -(-len(values) * 95 // 100))
    return values[rank - 1]

def real(dir):
    requests = [(int(r["sent_ms"]), int(r["took_ms"]), int(r["status"]))
                for r in csv.DictReader(open(f"{dir}/requests.csv"))]
    # Slow time: each trace minute whose requests' p95 (no answer counts as endless) is over
    # the max.
    buckets = {}
    for sent, took, status in requests:
        buckets.setdefault(sent // bucket_ms, []).append(took if status else float("inf"))
    end_s = (max(buckets) + 1) * bucket_ms / 1000
    slow_s = sum(bucket_ms / 1000 for values in buckets.values() if p95(values) > max_ms)
    formation = [(int(r["at_ms"]) / 1000, int(r["quantity"])) for r in csv.DictReader(open(f"{dir}/formation.csv"))]
    scales = sum(1 for (_, a), (_, b) in zip(formation, formation[1:]) if a != b)
    return {"slow_s": slow_s, "dyno_s": dyno_seconds(formation, 0, end_s),
            "dyno_s_after": dyno_seconds(formation, warmup, end_s), "scales": scales,
            "seconds": end_s, "requests": len(requests),
            "failed": sum(1 for r in requests if r[2] == 0 or r[2] >= 500)}

def simulated(dir, end_s):
    data = json.load(open(f"{dir}/simulated.json"))
    ours = next(r for r in data["rows"] if r["row"] == "ours")
    rows = list(csv.DictReader(open(f"{dir}/simulated.csv")))
    stamp = lambda row: datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")).timestamp()
    start = stamp(rows[0])
    timeline = [(stamp(row) - start, int(row["dynos"])) for row in rows]
    return {"slow_s": ours["slow_minutes"] * 60, "dyno_s": ours["dyno_hours"] * 3600,
            "dyno_s_after": dyno_seconds(timeline, warmup, end_s), "scales": ours["scales"]}

print(f"\n{'policy':<22} {'':>10} {'slow s':>8} {'dyno-s':>9} {f'after {warmup:g} s':>11} {'scales':>7}  (compressed {compression:g}×)")
for policy in policies:
    for run in range(1, runs + 1):
        dir = f"{out}/{policy}-{run}"
        r = real(dir)
        s = simulated(dir, r["seconds"])
        print(f"{policy + f' (run {run})':<22} {'real':>10} {r['slow_s']:>8.0f} {r['dyno_s']:>9.0f} {r['dyno_s_after']:>11.0f} {r['scales']:>7}   {r['requests']} requests, {r['failed']} failed, {r['seconds']:.0f} s")
        print(f"{'':<22} {'simulated':>10} {s['slow_s']:>8.0f} {s['dyno_s']:>9.0f} {s['dyno_s_after']:>11.0f} {s['scales']:>7}")
        ratio = lambda a, b: f"{a / b:.2f}×" if b else "-"
        print(f"{'':<22} {'real/sim':>10} {ratio(r['slow_s'], s['slow_s']):>8} {ratio(r['dyno_s'], s['dyno_s']):>9} {ratio(r['dyno_s_after'], s['dyno_s_after']):>11} {ratio(r['scales'], s['scales']):>7}")
print(f"\nRaw runs kept in {out}")
PY
