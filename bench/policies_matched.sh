#!/usr/bin/env bash
# The HPA and KPA reconstructions at the target policy's cost: on each trace of
# bench/policies.sh, the load per dyno they keep (`--reference-busy-per-dyno`) is searched until
# their dyno-hours match the target policy's (drain), and their slow minutes are compared with
# ours at that cost. A reference that needs more dyno-hours than ours to be as fast is worse.
#
# Usage: bench/policies_matched.sh     (builds the release binary once; about 20 minutes)
# Prints one line per trace and reference. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
traces="${TRACES:-../shared/traces}"
cargo build --release --quiet --bin autoscalebot
exec python3 - "$traces" <<'PY'
import json, subprocess, sys
traces = sys.argv[1]
runs = [
    ("nasa", f"{traces}/nasa_jul95_per_minute.csv", "200"),
    ("worldcup98-week", f"{traces}/worldcup98_1998-06-24_to_06-30_per_minute.csv", "0.4"),
    ("wikipedia", f"{traces}/wikipedia_en_2016-01_hourly.csv", "0.5"),
]

def simulate(file, scale, busy=None):
    command = ["target/release/autoscalebot", "--settings", "bench/policies/drain.toml",
               "simulate", "--trace", file, "--rate-scale", scale, "--policy", "target", "--json"]
    if busy is not None:
        command += ["--reference-busy-per-dyno", f"{busy:.4f}"]
    data = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return {row["row"]: row for row in data["rows"]}

def matched(file, scale, key, cost, low, high):
    """Bisects the load per dyno until the reference's dyno-hours are within 1 % of `cost`."""
    rows = None
    for _ in range(8):
        busy = (low + high) / 2
        rows = simulate(file, scale, busy)
        hours = rows[key]["dyno_hours"]
        if abs(hours - cost) <= 0.01 * cost:
            break
        # More load per dyno, fewer dynos.
        if hours > cost:
            low = busy
        else:
            high = busy
    return busy, rows[key]

print(f'{"trace":<17} {"row":<22} {"busy/dyno":>9} {"dyno-h":>9} {"slow min":>9}')
for name, file, scale in runs:
    rows = simulate(file, scale)
    ours = rows["ours"]
    print(f'{name:<17} {"target, drain":<22} {"":>9} {ours["dyno_hours"]:>9.1f} {ours["slow_minutes"]:>9.1f}')
    for key, label in (("hpa", "HPA at our cost"), ("kpa", "KPA at our cost")):
        busy, row = matched(file, scale, key, ours["dyno_hours"], 3.6, 16.0)
        verdict = "ours fewer slow" if ours["slow_minutes"] < row["slow_minutes"] else "theirs fewer slow"
        print(f'{"":<17} {label:<22} {busy:>9.2f} {row["dyno_hours"]:>9.1f} {row["slow_minutes"]:>9.1f}  {verdict}', flush=True)
PY
