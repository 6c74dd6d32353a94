#!/usr/bin/env bash
# Triage cost in one command: one alert with metric and log checks over the
# ~100k-series Busflow dataset (p50/p99), then 100 alerts firing at once while
# rule groups keep evaluating (how late evaluations start). See bench/README.md.
#
#   bench/triage.sh [--series-scale F] [--hours H] [--step S] [--runs N] [--alerts N] [--work DIR]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
SERIES_SCALE=1
HOURS=0.5
STEP=30
RUNS=50
ALERTS=100
WORK="${ROOT}/target/bench-triage"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --series-scale) SERIES_SCALE="$2"; shift 2 ;;
        --hours) HOURS="$2"; shift 2 ;;
        --step) STEP="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --alerts) ALERTS="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"
log() { printf '[triage.sh] %s\n' "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p alertbook-bench --bin gen-busflow --bin triage-bench)

DATA="${WORK}/busflow-scale${SERIES_SCALE}-${HOURS}h.om"
if [[ -f "${DATA}.meta.json" ]]; then
    log "reusing dataset ${DATA}"
else
    log "generating dataset ${DATA}"
    "${BIN}/gen-busflow" --series-scale "$SERIES_SCALE" --hours "$HOURS" --step "$STEP" --out "$DATA"
fi

bench_load_check triage.sh
(cd "$ROOT" && "${BIN}/triage-bench" --dataset "$DATA" --runs "$RUNS" --alerts "$ALERTS")
bench_load_after triage.sh
