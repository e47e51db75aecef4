#!/usr/bin/env bash
# The goals of issue 14, measured side by side: on each real trace of ../shared/traces, at a
# rate scale where the app needs 2 to 20 dynos, the target policy on the drain against the
# reactive limit, the HPA and KPA reconstructions and the streaks at 2.1's defaults (same
# bounds), and the target policy on the heartbeat alone against the streaks.
#
# Usage: bench/policies.sh [extra simulate flags…]   (builds the release binary once)
# Prints one table per trace and which goals are reached. Needs python3 for the table.
set -euo pipefail
cd "$(dirname "$0")/.."
traces="${TRACES:-../shared/traces}"
cargo build --release --quiet --bin autoscalebot
bin=target/release/autoscalebot
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# name, file, rate scale
runs=(
  "nasa|$traces/nasa_jul95_per_minute.csv|200"
  "worldcup98-week|$traces/worldcup98_1998-06-24_to_06-30_per_minute.csv|0.4"
  "wikipedia|$traces/wikipedia_en_2016-01_hourly.csv|0.5"
)
for run in "${runs[@]}"; do
  IFS='|' read -r name file scale <<<"$run"
  for signal in drain heartbeat; do
    echo "+ autoscalebot --settings bench/policies/$signal.toml simulate --trace $file --rate-scale $scale --policy target --json $*" >&2
    "$bin" --settings "bench/policies/$signal.toml" simulate --trace "$file" \
      --rate-scale "$scale" --policy target --json "$@" >"$out/$name-$signal.json"
  done
done

python3 - "$out" "${runs[@]}" <<'PY'
import json, sys
out, runs = sys.argv[1], sys.argv[2:]
def row(data, key):
    return next(r for r in data["rows"] if r["row"] == key)
def fmt(r):
    reaction = r["median_reaction_s"]
    reaction = "-" if reaction is None else f"{reaction:.0f}s"
    return f'{r["dyno_hours"]:>10.1f} {r["slow_minutes"]:>10.1f} {r["scales"]:>7} {reaction:>8}'
for run in runs:
    name = run.split("|")[0]
    drain = json.load(open(f"{out}/{name}-drain.json"))
    beat = json.load(open(f"{out}/{name}-heartbeat.json"))
    minutes = drain["minutes"]
    print(f'\n## {name}: {drain["trace"]} × {drain["rate_scale"]}, {minutes:.0f} minutes')
    print(f'{"row":<34} {"dyno-h":>10} {"slow min":>10} {"scales":>7} {"reaction":>8}')
    target, limit, hpa, kpa, streaks = (row(drain, k) for k in
        ("ours", "reactive_limit", "hpa", "kpa", "defaults_2_1"))
    target_beat = row(beat, "ours")
    shown = [("target, drain", target), ("reactive limit", limit), ("HPA (reconstructed)", hpa),
             ("KPA (reconstructed)", kpa), ("streaks, 2.1 defaults", streaks),
             ("target, heartbeat alone", target_beat), ("oracle", row(drain, "oracle")),
             ("fixed at max_dynos", row(drain, "fixed_at_max"))]
    for label, r in shown:
        print(f"{label:<34} {fmt(r)}")
    slow_cap = (1.25 * limit["slow_minutes"]) if limit["slow_minutes"] > 0 else 0.002 * minutes
    goals = [
        ("target/drain slow ≤ 1.25× limit (or 0.2 % of minutes)",
         target["slow_minutes"] <= slow_cap, f'{target["slow_minutes"]:.1f} vs {slow_cap:.1f}'),
        ("target/drain dyno-hours ≤ 1.15× limit",
         target["dyno_hours"] <= 1.15 * limit["dyno_hours"],
         f'{target["dyno_hours"] / limit["dyno_hours"]:.3f}×'),
        ("target/drain fewer scales than the streaks",
         target["scales"] < streaks["scales"], f'{target["scales"]} vs {streaks["scales"]}'),
    ]
    for other, r in (("HPA", hpa), ("KPA", kpa)):
        goals.append((f"target/drain better than {other}: fewer slow minutes at no more dyno-hours",
                      target["slow_minutes"] < r["slow_minutes"] and target["dyno_hours"] <= r["dyno_hours"],
                      f'{target["slow_minutes"]:.1f} vs {r["slow_minutes"]:.1f} slow, '
                      f'{target["dyno_hours"]:.1f} vs {r["dyno_hours"]:.1f} dyno-h'))
    goals += [
        ("target/heartbeat slow ≤ ½ the streaks'",
         target_beat["slow_minutes"] <= 0.5 * streaks["slow_minutes"],
         f'{target_beat["slow_minutes"]:.1f} vs {0.5 * streaks["slow_minutes"]:.1f}'),
        ("target/heartbeat dyno-hours ≤ 1.2× the streaks'",
         target_beat["dyno_hours"] <= 1.2 * streaks["dyno_hours"],
         f'{target_beat["dyno_hours"] / streaks["dyno_hours"]:.3f}×'),
    ]
    for goal, ok, numbers in goals:
        print(f'  {"✓" if ok else "✗"} {goal}: {numbers}')
PY
