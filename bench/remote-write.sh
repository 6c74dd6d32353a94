#!/usr/bin/env bash
# Remote-write ingest benchmark in one command: alertbook, Prometheus
# (--web.enable-remote-write-receiver) and VictoriaMetrics (single node) on
# loopback, the same encoded samples sent to each in one run.
#
#   bench/remote-write.sh [--series N] [--rounds N] [--senders N] [--wal-fsync always|never|DURATION] [--no-victoriametrics]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source "${ROOT}/bench/lib.sh"
SERIES=100000
ROUNDS=30
SENDERS=4
WAL_FSYNC=always
VICTORIAMETRICS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --series) SERIES="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --senders) SENDERS="$2"; shift 2 ;;
        --wal-fsync) WAL_FSYNC="$2"; shift 2 ;;
        --no-victoriametrics) VICTORIAMETRICS=0; shift ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"
WORK="$(mktemp -d)"
log() { printf '[remote-write.sh] %s\n' "$*" >&2; }

log "building release binaries"
cargo build --release --quiet -p alertbook-bench -p cli
command -v prometheus >/dev/null || { log "installing prometheus"; apt-get install -y prometheus >/dev/null; }
if [[ "$VICTORIAMETRICS" == 1 ]] && ! command -v victoria-metrics >/dev/null; then
    log "installing victoria-metrics"
    apt-get install -y victoria-metrics >/dev/null || { log "victoria-metrics could not be installed: left out"; VICTORIAMETRICS=0; }
fi

# The figures compare CPU-bound servers: on a busy machine they measure the other load too.
bench_load_check remote-write.sh

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
wait_ready() {
    for _ in $(seq 1 120); do
        curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
        sleep 0.5
    done
    log "$1 did not answer"; return 1
}

PROMETHEUS_PORT=$(free_port)
printf 'global:\n  scrape_interval: 1h\n' > "${WORK}/prometheus.yml"
prometheus --config.file="${WORK}/prometheus.yml" --storage.tsdb.path="${WORK}/prometheus" \
    --web.listen-address="127.0.0.1:${PROMETHEUS_PORT}" --web.enable-remote-write-receiver \
    >"${WORK}/prometheus.log" 2>&1 &
PIDS+=($!); PROMETHEUS_PID=$!

ALERTBOOK_PORT=$(free_port)
"${BIN}/alertbook" run --listen "127.0.0.1:${ALERTBOOK_PORT}" --data "${WORK}/alertbook" \
    --storage.wal-fsync "$WAL_FSYNC" --no-probes >"${WORK}/alertbook.log" 2>&1 &
PIDS+=($!); ALERTBOOK_PID=$!

PEER_ARGUMENTS=()
if [[ "$VICTORIAMETRICS" == 1 ]]; then
    VICTORIAMETRICS_PORT=$(free_port)
    victoria-metrics -storageDataPath="${WORK}/victoriametrics" -httpListenAddr="127.0.0.1:${VICTORIAMETRICS_PORT}" \
        >"${WORK}/victoriametrics.log" 2>&1 &
    PIDS+=($!)
    PEER_ARGUMENTS=(--victoriametrics "http://127.0.0.1:${VICTORIAMETRICS_PORT}" --victoriametrics-pid "$!")
    wait_ready "http://127.0.0.1:${VICTORIAMETRICS_PORT}/health"
    log "VictoriaMetrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo '(version unknown)')"
fi
wait_ready "http://127.0.0.1:${PROMETHEUS_PORT}/-/ready"
wait_ready "http://127.0.0.1:${ALERTBOOK_PORT}/-/ready"
log "Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}')"

log "alertbook WAL fsync policy: ${WAL_FSYNC}; Prometheus fsyncs its WAL per segment; VictoriaMetrics flushes every second"
"${BIN}/remote-write-bench" --alertbook "http://127.0.0.1:${ALERTBOOK_PORT}" \
    --prometheus "http://127.0.0.1:${PROMETHEUS_PORT}" \
    --alertbook-pid "$ALERTBOOK_PID" --prometheus-pid "$PROMETHEUS_PID" "${PEER_ARGUMENTS[@]}" \
    --series "$SERIES" --rounds "$ROUNDS" --senders "$SENDERS"

echo
bench_load_after remote-write.sh
