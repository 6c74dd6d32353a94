#!/usr/bin/env bash
# Prober benchmark in one command: N HTTP targets on loopback at a short
# interval, checked by alertbook's prober (probe-bench alertbook, in-process
# schedule and durable store) and then by blackbox_exporter scraped by
# Prometheus at the same interval, against the same target server. Prints
# checks, missed intervals, check latency and CPU per check for each, the
# ratio, and /proc/loadavg.
#
#   bench/probe.sh [--targets N] [--interval 1s] [--duration 30s]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGETS=1000
INTERVAL=1s
DURATION=30s
while [[ $# -gt 0 ]]; do
    case "$1" in
        --targets) TARGETS="$2"; shift 2 ;;
        --interval) INTERVAL="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
SECONDS_RUN="${DURATION%s}"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"
WORK="$(mktemp -d)"
log() { printf '[probe.sh] %s\n' "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p alertbook-bench --bin probe-bench)
sudo_command=()
[[ $(id -u) -eq 0 ]] || sudo_command=(sudo)
for package in prometheus prometheus-blackbox-exporter; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || {
        log "installing $package"
        DEBIAN_FRONTEND=noninteractive "${sudo_command[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    }
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
cpu_of() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

TARGET_PORT=$(free_port)
"${BIN}/probe-bench" serve --listen "127.0.0.1:${TARGET_PORT}" &
PIDS+=($!)
sleep 0.5
echo "load before: $(cat /proc/loadavg)"

log "alertbook: ${TARGETS} targets every ${INTERVAL} for ${DURATION}"
"${BIN}/probe-bench" alertbook --base "http://127.0.0.1:${TARGET_PORT}" --count "$TARGETS" \
    --interval "$INTERVAL" --duration "$DURATION" | tee "${WORK}/alertbook.txt"
echo "load after alertbook: $(cat /proc/loadavg)"

log "blackbox_exporter scraped by Prometheus: ${TARGETS} targets every ${INTERVAL} for ${DURATION}"
BLACKBOX_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
cat >"${WORK}/blackbox.yml" <<YAML
modules:
  http_2xx:
    prober: http
    timeout: 900ms
    http:
      preferred_ip_protocol: ip4
YAML
{
    echo "global: {scrape_interval: ${INTERVAL}, scrape_timeout: 900ms}"
    echo "scrape_configs:"
    echo "  - job_name: blackbox"
    echo "    metrics_path: /probe"
    echo "    params: {module: [http_2xx]}"
    echo "    static_configs:"
    echo "      - targets:"
    for ((index = 0; index < TARGETS; index++)); do
        echo "          - http://127.0.0.1:${TARGET_PORT}/t/${index}"
    done
    echo "    relabel_configs:"
    echo "      - {source_labels: [__address__], target_label: __param_target}"
    echo "      - {source_labels: [__param_target], target_label: target}"
    echo "      - {target_label: __address__, replacement: 127.0.0.1:${BLACKBOX_PORT}}"
} >"${WORK}/prometheus.yml"
prometheus-blackbox-exporter --config.file "${WORK}/blackbox.yml" \
    --web.listen-address "127.0.0.1:${BLACKBOX_PORT}" >"${WORK}/blackbox.log" 2>&1 &
BLACKBOX_PID=$!
PIDS+=("$BLACKBOX_PID")
prometheus --config.file "${WORK}/prometheus.yml" --storage.tsdb.path "${WORK}/prometheus" \
    --web.listen-address "127.0.0.1:${PROMETHEUS_PORT}" >"${WORK}/prometheus.log" 2>&1 &
PROMETHEUS_PID=$!
PIDS+=("$PROMETHEUS_PID")
# One interval to spread the targets, plus start-up.
sleep 5
BLACKBOX_CPU_START=$(cpu_of "$BLACKBOX_PID")
PROMETHEUS_CPU_START=$(cpu_of "$PROMETHEUS_PID")
sleep "$SECONDS_RUN"
BLACKBOX_CPU=$(awk -v a="$(cpu_of "$BLACKBOX_PID")" -v b="$BLACKBOX_CPU_START" 'BEGIN { print a - b }')
PROMETHEUS_CPU=$(awk -v a="$(cpu_of "$PROMETHEUS_PID")" -v b="$PROMETHEUS_CPU_START" 'BEGIN { print a - b }')
"${BIN}/probe-bench" prometheus --url "http://127.0.0.1:${PROMETHEUS_PORT}" --count "$TARGETS" \
    --interval "$INTERVAL" --duration "$DURATION" --blackbox-cpu "$BLACKBOX_CPU" \
    --prometheus-cpu "$PROMETHEUS_CPU" | tee "${WORK}/blackbox.txt"
echo "load after blackbox_exporter: $(cat /proc/loadavg)"

rate() { sed -n "s/^$1: .*checks_per_cpu_second=\([0-9]*\).*/\1/p" "$2" | head -1; }
ALERTBOOK_RATE=$(rate alertbook "${WORK}/alertbook.txt")
BLACKBOX_RATE=$(rate blackbox_exporter "${WORK}/blackbox.txt")
BOTH_RATE=$(sed -n 's/^blackbox_exporter + prometheus: .*checks_per_cpu_second=\([0-9]*\).*/\1/p' "${WORK}/blackbox.txt")
awk -v a="$ALERTBOOK_RATE" -v b="$BLACKBOX_RATE" -v c="$BOTH_RATE" 'BEGIN {
    printf "ratio (checks per CPU second, alertbook / blackbox_exporter): %.2f\n", a / b
    printf "ratio (checks per CPU second, alertbook / blackbox_exporter + prometheus): %.2f\n", a / c
}'
