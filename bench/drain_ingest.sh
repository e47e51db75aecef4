#!/usr/bin/env bash
# Drain ingestion on one core: router lines per second through the parser and the window,
# then end to end through the HTTP server. BATCHES=N sets the size (100 lines per batch).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench drain_ingest --no-run          # build on every core
if command -v taskset >/dev/null 2>&1; then pin=(taskset -c 0); else pin=(); fi
"${pin[@]}" cargo bench --bench drain_ingest       # run on core 0 only
