#!/usr/bin/env bash
# Rule evaluation cost in one command: 1,000 and 10,000 Busflow rules evaluated
# by alertbook, by Prometheus and by VictoriaMetrics (the queries vmalert sends)
# on the same generated data, with each process's CPU seconds. See bench/README.md.
#
#   bench/rules.sh [--series-scale F] [--hours H] [--sizes "1000 10000"] [--repeat N] [--work DIR] [--no-victoriametrics]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
SERIES_SCALE=1
HOURS=2
SIZES="1000 10000"
REPEAT=3
WORK="${ROOT}/target/bench-promql"
READY_TIMEOUT="${READY_TIMEOUT:-1800}"
VICTORIAMETRICS=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --series-scale) SERIES_SCALE="$2"; shift 2 ;;
        --hours) HOURS="$2"; shift 2 ;;
        --sizes) SIZES="$2"; shift 2 ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --no-victoriametrics) VICTORIAMETRICS=0; shift ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"

log() { printf '[rules.sh] %s\n' "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p alertbook-bench)

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    log "installing prometheus (Debian package)"
    apt-get install -y prometheus >/dev/null
fi

# The dataset and its Prometheus import are shared with promql.sh.
DATA="${WORK}/busflow-scale${SERIES_SCALE}-${HOURS}h.om"
if [[ -f "${DATA}.meta.json" ]]; then
    log "reusing dataset ${DATA}"
else
    log "generating dataset ${DATA}"
    "${BIN}/gen-busflow" --series-scale "$SERIES_SCALE" --hours "$HOURS" --out "$DATA"
fi

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
    "${IMPORT[@]}" "$DATA" "$PROMETHEUS_DATA" >"${WORK}/promtool.log" 2>&1 \
        || { log "promtool failed:"; tail -20 "${WORK}/promtool.log" >&2; exit 1; }
    touch "${PROMETHEUS_DATA}/.imported"
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

# Prometheus serves the imported data; it loads no rule file (its rule manager
# evaluates at the wall clock, after the data), the rules go through its query API.
cat >"${WORK}/prometheus-rules-bench.yml" <<'CONFIG'
global:
  scrape_interval: 1h
  evaluation_interval: 1h
scrape_configs: []
CONFIG
PROMETHEUS_PORT=$(free_port)
prometheus \
    --config.file="${WORK}/prometheus-rules-bench.yml" \
    --storage.tsdb.path="$PROMETHEUS_DATA" \
    --storage.tsdb.retention.time=100y \
    --web.listen-address="127.0.0.1:${PROMETHEUS_PORT}" \
    --query.max-samples=500000000 \
    --query.timeout=10m \
    >"${WORK}/prometheus-rules.log" 2>&1 &
PROMETHEUS_PID=$!
PIDS+=("$PROMETHEUS_PID")

waited=0
until curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:${PROMETHEUS_PORT}/-/ready" 2>/dev/null; do
    kill -0 "$PROMETHEUS_PID" 2>/dev/null || { log "prometheus exited; see ${WORK}/prometheus-rules.log"; exit 1; }
    (( waited < READY_TIMEOUT )) || { log "prometheus not ready after ${READY_TIMEOUT} s"; exit 1; }
    sleep 1
    waited=$((waited + 1))
done
log "prometheus ready after ${waited} s"

PEER_ARGS=(--prometheus "http://127.0.0.1:${PROMETHEUS_PORT}" --prometheus-pid "$PROMETHEUS_PID")
if (( VICTORIAMETRICS == 1 )) && ! command -v victoria-metrics >/dev/null; then
    log "installing victoria-metrics (Debian package)"
    apt-get install -y victoria-metrics >/dev/null || { log "victoria-metrics not installable: leaving it out"; VICTORIAMETRICS=0; }
fi
if (( VICTORIAMETRICS == 1 )); then
    # The import is shared with promql.sh.
    bench_victoriametrics_start rules.sh "$DATA" "${WORK}/victoriametrics-data-scale${SERIES_SCALE}-${HOURS}h" \
        "${WORK}/victoriametrics-rules.log"
    PEER_ARGS+=(--victoriametrics "$VICTORIAMETRICS_URL" --victoriametrics-pid "$VICTORIAMETRICS_PID")
fi

bench_load_check rules.sh
TENANTS=$(python3 -c "print(max(1, round(100 * ${SERIES_SCALE})))")
printf '%8s %8s %12s %12s %12s %8s %14s %14s %10s %10s\n' rules groups alertbook_s alertbook_q_s prometheus_s ratio \
    alertbook_cpu_s prometheus_cpu_s vm_cpu_s cpu_ratio
for size in $SIZES; do
    RULES="${WORK}/rules-${size}.yaml"
    "${BIN}/rule-bench" generate --rules "$size" --tenants "$TENANTS" --out "$RULES"
    log "measuring ${size} rules (${REPEAT} full evaluations per engine)"
    line=$("${BIN}/rule-bench" measure --rules "$RULES" --dataset "$DATA" "${PEER_ARGS[@]}" --repeat "$REPEAT")
    echo "$line" >>"${WORK}/rules-results.txt"
    python3 - "$line" <<'PY'
import sys
fields = dict(item.split("=", 1) for item in sys.argv[1].split())
print("%8s %8s %12s %12s %12s %8s %14s %14s %10s %10s" % (fields["rules"], fields["groups"], fields["alertbook_full_s"],
      fields["alertbook_query_s"], fields["prometheus_exec_s"], fields["ratio_exec_over_full"],
      fields["alertbook_cpu_s"], fields["prometheus_cpu_s"], fields.get("victoriametrics_cpu_s", "-"), fields["ratio_cpu"]))
PY
done
log "columns: seconds per full evaluation of every group; alertbook_q_s is the part spent in queries;"
log "prometheus_s is Prometheus's engine time (execTotalTime) for the same queries at the same time;"
log "ratio = prometheus_s / alertbook_s (above 1: alertbook is faster)."
log "*_cpu_s: CPU seconds (user + system, /proc) of each process over one full evaluation: alertbook in process,"
log "Prometheus and VictoriaMetrics serving the same expressions through their query API (HTTP and JSON included);"
log "cpu_ratio = prometheus_cpu_s / alertbook_cpu_s (the target is at least 2). Raw lines: ${WORK}/rules-results.txt"
bench_load_after rules.sh
