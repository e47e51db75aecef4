#!/usr/bin/env bash
# The target policy at the HPA's and the KPA's cost: on each trace of bench/policies.sh, the
# target policy's `--target-utilisation` is searched until its dyno-hours (drain) match the
# reference's, and the slow minutes are compared at that cost. Fewer slow minutes at the same
# dyno-hours is better. (Searching the references' own target instead does not work: past the
# dyno's workers their metric, requests in the app, grows with the queue it causes, so they
# spend more, not less.)
#
# Usage: bench/policies_matched.sh     (builds the release binary once; about 15 minutes)
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

def simulate(file, scale, share=None):
    command = ["target/release/autoscalebot", "--settings", "bench/policies/drain.toml",
               "simulate", "--trace", file, "--rate-scale", scale, "--policy", "target", "--json"]
    if share is not None:
        command += ["--target-utilisation", f"{share:.4f}"]
    data = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return {row["row"]: row for row in data["rows"]}

def ours_at(file, scale, cost):
    """Bisects the target utilisation until ours spends within 1.5 % of `cost` dyno-hours."""
    low, high = 0.2, 1.0
    for _ in range(7):
        share = (low + high) / 2
        ours = simulate(file, scale, share)["ours"]
        if abs(ours["dyno_hours"] - cost) <= 0.015 * cost:
            break
        # A lower share, more dynos.
        if ours["dyno_hours"] > cost:
            low = share
        else:
            high = share
    return share, ours

print(f'{"trace":<17} {"row":<26} {"dyno-h":>9} {"slow min":>9}')
for name, file, scale in runs:
    rows = simulate(file, scale)
    print(f'{name:<17} {"target, drain, 0.90":<26} {rows["ours"]["dyno_hours"]:>9.1f} {rows["ours"]["slow_minutes"]:>9.1f}')
    for key, label in (("hpa", "HPA"), ("kpa", "KPA")):
        reference = rows[key]
        share, ours = ours_at(file, scale, reference["dyno_hours"])
        verdict = "ours fewer slow" if ours["slow_minutes"] < reference["slow_minutes"] else "theirs fewer slow"
        print(f'{"":<17} {label + " (reconstructed)":<26} {reference["dyno_hours"]:>9.1f} {reference["slow_minutes"]:>9.1f}')
        print(f'{"":<17} {f"target at its cost, {share:.2f}":<26} {ours["dyno_hours"]:>9.1f} {ours["slow_minutes"]:>9.1f}  {verdict}', flush=True)
PY
