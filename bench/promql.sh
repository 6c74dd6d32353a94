#!/usr/bin/env bash
# The PromQL benchmark in one command: alertbook, Prometheus and
# VictoriaMetrics side by side on the same generated Busflow data, queried over
# loopback (VictoriaMetrics's latency only: MetricsQL answers differ from
# PromQL's in places). See bench/README.md.
#
#   bench/promql.sh [--series-scale F] [--hours H] [--repeat N] [--work DIR] [--prometheus-only] [--no-victoriametrics]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
SERIES_SCALE=1
HOURS=2
REPEAT=10
WORK="${ROOT}/target/bench-promql"
PROMETHEUS_ONLY=0
VICTORIAMETRICS=1
READY_TIMEOUT="${READY_TIMEOUT:-1800}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --series-scale) SERIES_SCALE="$2"; shift 2 ;;
        --hours) HOURS="$2"; shift 2 ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --prometheus-only) PROMETHEUS_ONLY=1; VICTORIAMETRICS=0; shift ;;
        --no-victoriametrics) VICTORIAMETRICS=0; shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"

log() { printf '[promql.sh] %s\n' "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p alertbook-bench)
if (( PROMETHEUS_ONLY == 0 )) && ! (cd "$ROOT" && cargo build --release --quiet -p cli); then
    log "alertbook did not build: measuring Prometheus alone"
    PROMETHEUS_ONLY=1
fi

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    log "installing prometheus (Debian package)"
    apt-get install -y prometheus >/dev/null
fi
if (( VICTORIAMETRICS == 1 )) && ! command -v victoria-metrics >/dev/null; then
    log "installing victoria-metrics (Debian package)"
    apt-get install -y victoria-metrics >/dev/null || { log "victoria-metrics not installable: leaving it out"; VICTORIAMETRICS=0; }
fi

DATA="${WORK}/busflow-scale${SERIES_SCALE}-${HOURS}h.om"
if [[ -f "${DATA}.meta.json" ]]; then
    log "reusing dataset ${DATA}"
else
    log "generating dataset ${DATA}"
    "${BIN}/gen-busflow" --series-scale "$SERIES_SCALE" --hours "$HOURS" --out "$DATA"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

# Waits until URL/-/ready answers 200, or fails after READY_TIMEOUT seconds or when PID exits.
wait_ready() {
    local name="$1" url="$2" pid="$3" waited=0
    until curl -fsS -o /dev/null --max-time 5 "${url}/-/ready" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "${name} exited before becoming ready; see its log in ${WORK}"
            return 1
        fi
        if (( waited >= READY_TIMEOUT )); then
            log "${name} not ready after ${READY_TIMEOUT} s"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "${name} ready after ${waited} s"
}

# Prometheus: import the dataset into a data directory of its own (reused when
# a complete import of the same dataset is there), then serve it.
PROMETHEUS_DATA="${WORK}/prometheus-data-scale${SERIES_SCALE}-${HOURS}h"
if [[ -f "${PROMETHEUS_DATA}/.imported" ]]; then
    log "reusing the Prometheus import in ${PROMETHEUS_DATA}"
else
    rm -rf "$PROMETHEUS_DATA"
    mkdir -p "$PROMETHEUS_DATA"
    if promtool tsdb create-blocks-from --help >/dev/null 2>&1; then
        IMPORT=(promtool tsdb create-blocks-from openmetrics)
    else
        IMPORT=(promtool tsdb create-blocks-from-openmetrics)
    fi
    log "importing into prometheus with: ${IMPORT[*]}"
    import_started=$(date +%s.%N)
    "${IMPORT[@]}" "$DATA" "$PROMETHEUS_DATA" >"${WORK}/promtool.log" 2>&1 \
        || { log "promtool failed:"; tail -20 "${WORK}/promtool.log" >&2; exit 1; }
    log "promtool import took $(python3 -c "print(round($(date +%s.%N) - ${import_started}, 1))") s"
    touch "${PROMETHEUS_DATA}/.imported"
fi

cat >"${WORK}/prometheus.yml" <<'CONFIG'
global:
  scrape_interval: 1h
  evaluation_interval: 1h
scrape_configs: []
CONFIG

PROMETHEUS_PORT=$(free_port)
prometheus \
    --config.file="${WORK}/prometheus.yml" \
    --storage.tsdb.path="$PROMETHEUS_DATA" \
    --storage.tsdb.retention.time=100y \
    --web.listen-address="127.0.0.1:${PROMETHEUS_PORT}" \
    --query.max-samples=500000000 \
    >"${WORK}/prometheus.log" 2>&1 &
PROMETHEUS_PID=$!
PIDS+=("$PROMETHEUS_PID")

BENCH_ARGS=(--prometheus "http://127.0.0.1:${PROMETHEUS_PORT}" --prometheus-pid "$PROMETHEUS_PID")

if (( PROMETHEUS_ONLY == 0 )); then
    if ! "${BIN}/alertbook" run --help | grep -q -- '--backfill'; then
        log "this alertbook has no 'run --backfill': measuring Prometheus alone"
    else
        ALERTBOOK_PORT=$(free_port)
        ALERTBOOK_DATA="${WORK}/alertbook-data"
        rm -rf "$ALERTBOOK_DATA"
        (cd "$ROOT" && exec "${BIN}/alertbook" run \
            --listen "127.0.0.1:${ALERTBOOK_PORT}" \
            --data "$ALERTBOOK_DATA" \
            --backfill "$DATA" --no-probes) >"${WORK}/alertbook.log" 2>&1 &
        ALERTBOOK_PID=$!
        PIDS+=("$ALERTBOOK_PID")
        BENCH_ARGS+=(--alertbook "http://127.0.0.1:${ALERTBOOK_PORT}" --alertbook-pid "$ALERTBOOK_PID")
    fi
fi

if (( VICTORIAMETRICS == 1 )); then
    bench_victoriametrics_start promql.sh "$DATA" "${WORK}/victoriametrics-data-scale${SERIES_SCALE}-${HOURS}h" \
        "${WORK}/victoriametrics.log"
    BENCH_ARGS+=(--victoriametrics "$VICTORIAMETRICS_URL" --victoriametrics-pid "$VICTORIAMETRICS_PID")
fi

wait_ready prometheus "http://127.0.0.1:${PROMETHEUS_PORT}" "$PROMETHEUS_PID"
if [[ -n "${ALERTBOOK_PID:-}" ]]; then
    wait_ready alertbook "http://127.0.0.1:${ALERTBOOK_PORT}" "$ALERTBOOK_PID"
fi

bench_load_check promql.sh
"${BIN}/promql-bench" "${BENCH_ARGS[@]}" --dataset "$DATA" --repeat "$REPEAT"
bench_load_after promql.sh
