#!/usr/bin/env bash
# The parsers of outside text under a million generated inputs each, on one core: counts,
# panics (must be 0), time and the most heap one input took. INPUTS=N sets the count.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench parsers --no-run          # build on every core
if command -v taskset >/dev/null 2>&1; then pin=(taskset -c 0); else pin=(); fi
"${pin[@]}" cargo bench --bench parsers       # run on core 0 only
