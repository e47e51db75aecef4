#!/usr/bin/env bash
# How fast `autoscalebot simulate` is: a week of 30 s heartbeats (20,160 for each engine row)
# must take well under a second. Prints the wall time of each run (best of 5) as measured
# around the whole process, and the simulation's own figure from its header.
# usage: bench/simulate_speed.sh [PATH_TO_SHARED]   (default: ../shared beside the repository)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${1:-$repo/../shared}
cd "$repo"
cargo build --release --quiet
bin=$repo/target/release/autoscalebot
settings=$(mktemp --suffix=.toml)
trap 'rm -f "$settings"' EXIT
printf 'max_dynos = 40\n' >"$settings"
run() {
  local label=$1 best=""
  shift
  for _ in 1 2 3 4 5; do
    local start end ms
    start=$(date +%s%N)
    "$bin" --settings "$settings" simulate "$@" >/dev/null
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  local inner
  inner=$("$bin" --settings "$settings" simulate "$@" | sed -n 's/.*Simulated in \([0-9]*\) ms.*/\1/p')
  printf '| %s | %s ms | %s ms |\n' "$label" "$best" "$inner"
}
echo "| trace | wall time, whole process (best of 5) | simulation (its header) |"
echo "|---|---|---|"
run "builtin:diurnal-week (7 d, 20,160 heartbeats per engine row)" --trace builtin:diurnal-week
run "the same, with --plot and --csv" --trace builtin:diurnal-week --plot /tmp/simulate_speed_week.svg --csv /tmp/simulate_speed_week.csv
week="$shared/traces/worldcup98_1998-06-24_to_06-30_per_minute.csv"
all="$shared/traces/worldcup98_per_minute.csv"
[ -f "$week" ] && run "World Cup 98 week (7 d, 10,080 points)" --trace "$week" --rate-scale 0.1
[ -f "$all" ] && run "World Cup 98 whole (87 d, 125,310 points)" --trace "$all" --rate-scale 0.1
rm -f /tmp/simulate_speed_week.svg /tmp/simulate_speed_week.csv
