#!/usr/bin/env bash
# LogQL over a million lines in one command: 1,000,000 generated Traefik JSON
# and logfmt lines pushed into alertbook's log store, then count_over_time
# queries (instant and range) timed. See bench/README.md.
#
#   bench/logql.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
JOBS="${JOBS:-2}"

printf '[logql.sh] building logql-bench (release, -j %s)\n' "$JOBS" >&2
(cd "$ROOT" && cargo build --release --quiet -j "$JOBS" -p alertbook-bench --bin logql-bench)
bench_load_check logql.sh
"${CARGO_TARGET_DIR}/release/logql-bench" "$@"
bench_load_after logql.sh
