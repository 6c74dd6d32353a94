#!/usr/bin/env bash
# Resident memory serving blocks: alertbook and Prometheus 2.42 each serving
# only the blocks imported from the same generated Busflow file (no backfill,
# no scrape, no rules), measured after ready, after promql.sh's query set and
# after an idle pause. See bench/README.md.
#
#   bench/blocks-memory.sh [--series-scale F] [--hours H] [--repeat N] [--idle S] [--work DIR] [--out DIR]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
SERIES_SCALE=1
HOURS=2
REPEAT=3
IDLE=30
WORK="${ROOT}/target/bench-promql"
OUT=""
READY_TIMEOUT="${READY_TIMEOUT:-600}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --series-scale) SERIES_SCALE="$2"; shift 2 ;;
        --hours) HOURS="$2"; shift 2 ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --idle) IDLE="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

# WORK holds the dataset and the Prometheus import promql.sh makes (made here
# when missing, and never changed once there); OUT what this script writes:
# alertbook's import, a copy of the Prometheus data directory for Prometheus
# to serve (it writes into the directory it serves), configurations and logs.
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
OUT="${OUT:-${WORK}/blocks-memory}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"
NAME=blocks-memory.sh

log() { printf '[%s] %s\n' "$NAME" "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p cli -p alertbook-bench)
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    log "installing prometheus (Debian package)"
    apt-get install -y prometheus >/dev/null
fi

DATA="${WORK}/busflow-scale${SERIES_SCALE}-${HOURS}h.om"
if [[ -f "${DATA}.meta.json" ]]; then
    log "reusing dataset ${DATA}"
else
    log "generating dataset ${DATA}"
    "${BIN}/gen-busflow" --series-scale "$SERIES_SCALE" --hours "$HOURS" --out "$DATA"
fi
PROMETHEUS_IMPORT="${WORK}/prometheus-data-scale${SERIES_SCALE}-${HOURS}h"
bench_prometheus_import "$NAME" "$DATA" "$PROMETHEUS_IMPORT" "${WORK}/promtool.log"

ALERTBOOK_DATA="${OUT}/alertbook-data-scale${SERIES_SCALE}-${HOURS}h"
if [[ -f "${ALERTBOOK_DATA}/.imported" ]]; then
    log "reusing the alertbook import in ${ALERTBOOK_DATA}"
else
    rm -rf "$ALERTBOOK_DATA"
    log "importing into alertbook with: alertbook tsdb create-blocks-from openmetrics"
    /usr/bin/time -f '%e s elapsed, %M KiB peak resident' \
        "${BIN}/alertbook" tsdb create-blocks-from openmetrics "$DATA" "$ALERTBOOK_DATA" >&2
    touch "${ALERTBOOK_DATA}/.imported"
fi
PROMETHEUS_DATA="${OUT}/prometheus-data"
rm -rf "$PROMETHEUS_DATA"
cp -a "$PROMETHEUS_IMPORT" "$PROMETHEUS_DATA"
log "on disk: alertbook blocks $(du -sh "${ALERTBOOK_DATA}/blocks" | cut -f1), Prometheus blocks $(du -sh --exclude=wal --exclude=chunks_head "$PROMETHEUS_DATA" | cut -f1), the text $(du -sh "$DATA" | cut -f1)"

# A catalog with one alerting rule that reads no series, so that alertbook
# evaluates nothing over the blocks (a catalog needs at least one entry).
CATALOG="${OUT}/catalog"
rm -rf "$CATALOG"
mkdir -p "${CATALOG}/runbook" "${CATALOG}/rules"
cp "${ROOT}/catalog/busflow/catalog.yaml" "${ROOT}/catalog/busflow/contacts.yaml" "${ROOT}/catalog/busflow/pii-rules.yaml" "$CATALOG/"
cp "${ROOT}/catalog/busflow/runbook/S1.yaml" "${CATALOG}/runbook/"
cat >"${CATALOG}/rules/none.rules.yaml" <<'RULES'
groups:
  - name: alertbook-self
    interval: 1h
    rules:
      - alert: AlertbookDatasourceDown
        expr: vector(1) < 0
        labels:
          severity: page
          route: ops-oncall
        annotations:
          summary: never fires and reads no series
          runbook_id: S1
          runbook_url: "{{ $externalURL }}/runbook/S1"
RULES
"${BIN}/alertbook" runbook --markdown --catalog "$CATALOG" >"${CATALOG}/runbook.md"
printf 'scrape_self: false\n' >"${OUT}/alertbook.yaml"
cat >"${OUT}/prometheus.yml" <<'CONFIG'
global:
  scrape_interval: 1h
  evaluation_interval: 1h
scrape_configs: []
CONFIG

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

PROMETHEUS_PORT=$(bench_free_port)
prometheus \
    --config.file="${OUT}/prometheus.yml" \
    --storage.tsdb.path="$PROMETHEUS_DATA" \
    --storage.tsdb.retention.time=100y \
    --web.listen-address="127.0.0.1:${PROMETHEUS_PORT}" \
    --query.max-samples=500000000 \
    >"${OUT}/prometheus.log" 2>&1 &
PROMETHEUS_PID=$!
PIDS+=("$PROMETHEUS_PID")

ALERTBOOK_PORT=$(bench_free_port)
"${BIN}/alertbook" run \
    --config "${OUT}/alertbook.yaml" \
    --catalog "$CATALOG" \
    --listen "127.0.0.1:${ALERTBOOK_PORT}" \
    --data "$ALERTBOOK_DATA" \
    --storage.retention.time 0 \
    --no-probes \
    ${ALERTBOOK_FLAGS:-} \
    >"${OUT}/alertbook.log" 2>&1 &
ALERTBOOK_PID=$!
PIDS+=("$ALERTBOOK_PID")

bench_wait_ready "$NAME" prometheus "http://127.0.0.1:${PROMETHEUS_PORT}" "$PROMETHEUS_PID" "$READY_TIMEOUT"
bench_wait_ready "$NAME" alertbook "http://127.0.0.1:${ALERTBOOK_PORT}" "$ALERTBOOK_PID" "$READY_TIMEOUT"

# "VmRSS VmHWM RssAnon RssFile" of PID, in KiB.
memory_of() {
    awk '/^(VmRSS|VmHWM|RssAnon|RssFile):/ { value[$1] = $2 }
         END { print value["VmRSS:"], value["VmHWM:"], value["RssAnon:"], value["RssFile:"] }' "/proc/$1/status"
}

PHASES=()
declare -A MEMORY
record() {
    PHASES+=("$1")
    MEMORY["$1 alertbook"]="$(memory_of "$ALERTBOOK_PID")"
    MEMORY["$1 prometheus"]="$(memory_of "$PROMETHEUS_PID")"
}

sleep 5
bench_load_check "$NAME"
record "after ready"
"${BIN}/promql-bench" --alertbook "http://127.0.0.1:${ALERTBOOK_PORT}" --alertbook-pid "$ALERTBOOK_PID" \
    --prometheus "http://127.0.0.1:${PROMETHEUS_PORT}" --prometheus-pid "$PROMETHEUS_PID" \
    --dataset "$DATA" --repeat "$REPEAT" >"${OUT}/promql-bench.txt"
log "query latencies: ${OUT}/promql-bench.txt"
record "after queries"
sleep "$IDLE"
record "after ${IDLE} s idle"

echo
echo "Resident memory serving $(jq -r '"\(.series) series, \(.samples) samples"' "${DATA}.meta.json" 2>/dev/null || echo "$DATA") of blocks (MiB; ratio = alertbook / Prometheus)"
printf '%-18s | %-32s | %-32s | %-15s\n' "" "alertbook RSS  HWM  anon  file" "Prometheus RSS  HWM  anon  file" "ratio RSS  HWM"
for phase in "${PHASES[@]}"; do
    read -r a_rss a_hwm a_anon a_file <<<"${MEMORY["$phase alertbook"]}"
    read -r p_rss p_hwm p_anon p_file <<<"${MEMORY["$phase prometheus"]}"
    awk -v phase="$phase" -v ar="$a_rss" -v ah="$a_hwm" -v aa="$a_anon" -v af="$a_file" \
        -v pr="$p_rss" -v ph="$p_hwm" -v pa="$p_anon" -v pf="$p_file" 'BEGIN {
        m = 1024
        printf "%-18s | %7.0f %5.0f %5.0f %5.0f       | %7.0f %5.0f %5.0f %5.0f        | %5.2f %5.2f\n",
            phase, ar/m, ah/m, aa/m, af/m, pr/m, ph/m, pa/m, pf/m, ar/pr, ah/ph }'
done
echo
grep -E '^(median|geometric|query|  )' "${OUT}/promql-bench.txt" | tail -5 || true
bench_load_after "$NAME"
