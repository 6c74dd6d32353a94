#!/usr/bin/env bash
# Remote-write ingest benchmark in one command: alertbook and Prometheus
# (--web.enable-remote-write-receiver) on loopback, the same samples to each.
#
#   bench/remote-write.sh [--series N] [--rounds N] [--senders N] [--wal-fsync always|never|DURATION]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SERIES=100000
ROUNDS=20
SENDERS=4
WAL_FSYNC=always
while [[ $# -gt 0 ]]; do
    case "$1" in
        --series) SERIES="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --senders) SENDERS="$2"; shift 2 ;;
        --wal-fsync) WAL_FSYNC="$2"; shift 2 ;;
        -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"
WORK="$(mktemp -d)"
log() { printf '[remote-write.sh] %s\n' "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p alertbook-bench -p cli)
command -v prometheus >/dev/null || { log "installing prometheus"; apt-get install -y prometheus >/dev/null; }

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
        curl -fsS -o /dev/null --max-time 2 "$1/-/ready" 2>/dev/null && return 0
        sleep 0.5
    done
    log "$1 did not become ready"; return 1
}

PROMETHEUS_PORT=$(free_port)
printf 'global:\n  scrape_interval: 1h\n' > "${WORK}/prometheus.yml"
prometheus --config.file="${WORK}/prometheus.yml" --storage.tsdb.path="${WORK}/prometheus" \
    --web.listen-address="127.0.0.1:${PROMETHEUS_PORT}" --web.enable-remote-write-receiver \
    >"${WORK}/prometheus.log" 2>&1 &
PIDS+=($!); PROMETHEUS_PID=$!

ALERTBOOK_PORT=$(free_port)
(cd "$ROOT" && "${BIN}/alertbook" run --listen "127.0.0.1:${ALERTBOOK_PORT}" --data "${WORK}/alertbook" \
    --storage.wal-fsync "$WAL_FSYNC" --no-probes >"${WORK}/alertbook.log" 2>&1) &
PIDS+=($!)
wait_ready "http://127.0.0.1:${PROMETHEUS_PORT}"
wait_ready "http://127.0.0.1:${ALERTBOOK_PORT}"
ALERTBOOK_PID=$(pgrep -f "alertbook run --listen 127.0.0.1:${ALERTBOOK_PORT}" | head -1)

log "alertbook WAL fsync policy: ${WAL_FSYNC}; Prometheus fsyncs its WAL per segment"
"${BIN}/remote-write-bench" --alertbook "http://127.0.0.1:${ALERTBOOK_PORT}" \
    --prometheus "http://127.0.0.1:${PROMETHEUS_PORT}" \
    --alertbook-pid "$ALERTBOOK_PID" --prometheus-pid "$PROMETHEUS_PID" \
    --series "$SERIES" --rounds "$ROUNDS" --senders "$SENDERS"
