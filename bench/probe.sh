#!/usr/bin/env bash
# Prober benchmark in one command: N HTTP targets on one loopback target
# server at a short interval, checked first by `alertbook run` (the targets
# in a `kind: probes` contract of a copy of the Busflow catalog; samples
# through its write-ahead log and store) and then by blackbox_exporter
# scraped by Prometheus at the same interval and timeout. After a warm-up
# (every target reporting, and for Prometheus every scrape target `up`),
# both are measured over the same window length and read back through their
# own Prometheus query API by the same code: checks, missed intervals, check
# duration p50/p99, CPU seconds and RSS of the processes, the ratios, and
# /proc/loadavg before and after each.
#
#   bench/probe.sh [--targets 1000] [--interval 1s] [--duration 30s]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
TARGETS=1000
INTERVAL=1s
DURATION=30s
while [[ $# -gt 0 ]]; do
    case "$1" in
        --targets) TARGETS="$2"; shift 2 ;;
        --interval) INTERVAL="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$INTERVAL" =~ ^[0-9]+s$ && "$DURATION" =~ ^[0-9]+s$ ]] || { echo "--interval and --duration are whole seconds (1s, 30s)" >&2; exit 2; }
INTERVAL_SECONDS="${INTERVAL%s}"
SECONDS_RUN="${DURATION%s}"
# The check timeout of both: alertbook's default for a short interval (90 % of it).
TIMEOUT_MS=$((INTERVAL_SECONDS * 900))

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"
WORK="$(mktemp -d)"
log() { printf '[probe.sh] %s\n' "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release --locked --quiet -p cli --bin alertbook -p alertbook-bench --bin probe-bench)
sudo_command=()
[[ $(id -u) -eq 0 ]] || sudo_command=(sudo)
for package in prometheus prometheus-blackbox-exporter; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || {
        log "installing $package"
        DEBIAN_FRONTEND=noninteractive "${sudo_command[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    }
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
# CPU seconds (user + system) of a process, and its resident set in kB.
cpu_of() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }
rss_of() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
now() { date +%s.%N; }
PIDS=()
stop() {
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
    stop "${PIDS[@]}"
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
wait_http() {
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    log "$1 did not answer; see ${WORK}"; return 1
}

TARGET_PORT=$(free_port)
"${BIN}/probe-bench" serve --listen "127.0.0.1:${TARGET_PORT}" &
PIDS+=($!)
target_url() { echo "http://127.0.0.1:${TARGET_PORT}/t/$1"; }

# alertbook: the Busflow catalog with the studio probes replaced by the N
# targets; the other probe contracts point at a closed loopback port at 5m.
ALERTBOOK_PORT=$(free_port)
CLOSED_PORT=$(free_port)
cp -r "${ROOT}/catalog/busflow" "${WORK}/catalog"
{
    printf 'kind: probes\ndescription: bench targets\nspec:\n  interval: %s\n  failures: 3\n  targets:\n' "$INTERVAL"
    for ((index = 0; index < TARGETS; index++)); do
        printf '    - {name: t%d, prober: http, target: "%s"}\n' "$index" "$(target_url "$index")"
    done
} >"${WORK}/catalog/contracts/studio-service-probes.yaml"
for file in external-dependency-probes tls-certificates; do
    prober=http target="http://127.0.0.1:${CLOSED_PORT}/"
    [[ $file == tls-certificates ]] && prober=tls target="127.0.0.1:${CLOSED_PORT}"
    printf 'kind: probes\ndescription: bench\nspec:\n  interval: 5m\n  failures: 3\n  targets:\n    - {name: x, prober: %s, target: "%s"}\n' \
        "$prober" "$target" >"${WORK}/catalog/contracts/${file}.yaml"
done
printf 'catalog: %s\nscrape_self: false\n' "${WORK}/catalog" >"${WORK}/alertbook.yaml"
GROUP='probe_group="studio-service-probes"'

bench_load_check "probe.sh: alertbook"
log "alertbook: ${TARGETS} targets every ${INTERVAL} for ${DURATION}"
"${BIN}/alertbook" run --config "${WORK}/alertbook.yaml" --listen "127.0.0.1:${ALERTBOOK_PORT}" \
    --data "${WORK}/alertbook-data" >"${WORK}/alertbook.log" 2>&1 &
ALERTBOOK_PID=$!
PIDS+=("$ALERTBOOK_PID")
ALERTBOOK_URL="http://127.0.0.1:${ALERTBOOK_PORT}"
wait_http "${ALERTBOOK_URL}/-/ready"
"${BIN}/probe-bench" ready --url "$ALERTBOOK_URL" --selector "probe_success{${GROUP}}" --count "$TARGETS"
sleep "$INTERVAL_SECONDS"
missed_counter() { curl -fsS "${ALERTBOOK_URL}/metrics" | awk -v g="$GROUP" 'index($0, "alertbook_probe_missed_intervals_total{" g "}") == 1 { print $2 }'; }
SKIPPED_START=$(missed_counter)
CPU_START=$(cpu_of "$ALERTBOOK_PID")
START=$(now)
sleep "$SECONDS_RUN"
END=$(now)
CPU=$(awk -v a="$(cpu_of "$ALERTBOOK_PID")" -v b="$CPU_START" 'BEGIN { print a - b }')
RSS=$(rss_of "$ALERTBOOK_PID")
SKIPPED=$(awk -v a="$(missed_counter)" -v b="$SKIPPED_START" 'BEGIN { print a - b }')
bench_load_after "probe.sh: alertbook"
"${BIN}/probe-bench" report --name alertbook --url "$ALERTBOOK_URL" \
    --success "probe_success{${GROUP}}" --duration "probe_duration_seconds{${GROUP}}" \
    --count "$TARGETS" --interval "$INTERVAL" --start "$START" --end "$END" --cpu "$CPU" --rss-kb "$RSS" \
    | tee "${WORK}/alertbook.txt"
echo "alertbook: ticks skipped behind a running check (alertbook_probe_missed_intervals_total): ${SKIPPED}"
stop "$ALERTBOOK_PID"

log "blackbox_exporter scraped by Prometheus: ${TARGETS} targets every ${INTERVAL} for ${DURATION}"
BLACKBOX_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
cat >"${WORK}/blackbox.yml" <<YAML
modules:
  http_2xx:
    prober: http
    timeout: ${TIMEOUT_MS}ms
    http:
      preferred_ip_protocol: ip4
YAML
{
    # The scrape may take the whole interval; blackbox_exporter takes
    # --timeout-offset (0.1 s) off the scrape timeout Prometheus sends, and
    # the module's timeout caps it, so each check has alertbook's timeout.
    echo "global: {scrape_interval: ${INTERVAL}, scrape_timeout: ${INTERVAL}}"
    echo "scrape_configs:"
    echo "  - job_name: blackbox"
    echo "    metrics_path: /probe"
    echo "    params: {module: [http_2xx]}"
    echo "    static_configs:"
    echo "      - targets:"
    for ((index = 0; index < TARGETS; index++)); do
        echo "          - $(target_url "$index")"
    done
    echo "    relabel_configs:"
    echo "      - {source_labels: [__address__], target_label: __param_target}"
    echo "      - {source_labels: [__param_target], target_label: target}"
    echo "      - {target_label: __address__, replacement: 127.0.0.1:${BLACKBOX_PORT}}"
} >"${WORK}/prometheus.yml"
bench_load_check "probe.sh: blackbox_exporter"
prometheus-blackbox-exporter --config.file "${WORK}/blackbox.yml" --timeout-offset=0.1 \
    --web.listen-address "127.0.0.1:${BLACKBOX_PORT}" >"${WORK}/blackbox.log" 2>&1 &
BLACKBOX_PID=$!
PIDS+=("$BLACKBOX_PID")
prometheus --config.file "${WORK}/prometheus.yml" --storage.tsdb.path "${WORK}/prometheus" \
    --web.listen-address "127.0.0.1:${PROMETHEUS_PORT}" >"${WORK}/prometheus.log" 2>&1 &
PROMETHEUS_PID=$!
PIDS+=("$PROMETHEUS_PID")
PROMETHEUS_URL="http://127.0.0.1:${PROMETHEUS_PORT}"
wait_http "${PROMETHEUS_URL}/-/ready"
"${BIN}/probe-bench" ready --url "$PROMETHEUS_URL" --selector 'probe_success{job="blackbox"}' \
    --up 'up{job="blackbox"}' --count "$TARGETS" || log "warm-up incomplete: the report counts the missing targets"
sleep "$INTERVAL_SECONDS"
BLACKBOX_CPU_START=$(cpu_of "$BLACKBOX_PID")
PROMETHEUS_CPU_START=$(cpu_of "$PROMETHEUS_PID")
START=$(now)
sleep "$SECONDS_RUN"
END=$(now)
BLACKBOX_CPU=$(awk -v a="$(cpu_of "$BLACKBOX_PID")" -v b="$BLACKBOX_CPU_START" 'BEGIN { print a - b }')
PROMETHEUS_CPU=$(awk -v a="$(cpu_of "$PROMETHEUS_PID")" -v b="$PROMETHEUS_CPU_START" 'BEGIN { print a - b }')
BLACKBOX_RSS=$(rss_of "$BLACKBOX_PID")
PROMETHEUS_RSS=$(rss_of "$PROMETHEUS_PID")
bench_load_after "probe.sh: blackbox_exporter"
"${BIN}/probe-bench" report --name "blackbox_exporter+prometheus" --url "$PROMETHEUS_URL" \
    --success 'probe_success{job="blackbox"}' --duration 'probe_duration_seconds{job="blackbox"}' \
    --up 'up{job="blackbox"}' --count "$TARGETS" --interval "$INTERVAL" --start "$START" --end "$END" \
    --cpu "$(awk -v a="$BLACKBOX_CPU" -v b="$PROMETHEUS_CPU" 'BEGIN { print a + b }')" \
    --rss-kb "$((BLACKBOX_RSS + PROMETHEUS_RSS))" | tee "${WORK}/blackbox.txt"
printf 'blackbox_exporter alone: cpu_seconds=%s rss_mb=%s; prometheus: cpu_seconds=%s rss_mb=%s\n' \
    "$BLACKBOX_CPU" "$((BLACKBOX_RSS / 1024))" "$PROMETHEUS_CPU" "$((PROMETHEUS_RSS / 1024))"

field() { sed -n "s/^$1: .* $2=\([0-9.]*\).*/\1/p" "$3" | head -1; }
awk -v ac="$(field alertbook cpu_ms_per_check "${WORK}/alertbook.txt")" \
    -v bc="$(field 'blackbox_exporter+prometheus' cpu_ms_per_check "${WORK}/blackbox.txt")" \
    -v ar="$(field alertbook rss_mb "${WORK}/alertbook.txt")" \
    -v br="$(field 'blackbox_exporter+prometheus' rss_mb "${WORK}/blackbox.txt")" \
    -v bbc="$BLACKBOX_CPU" -v checks="$(field 'blackbox_exporter+prometheus' checks "${WORK}/blackbox.txt")" 'BEGIN {
    printf "ratio (CPU per check, blackbox_exporter+prometheus / alertbook): %.2f\n", bc / ac
    printf "ratio (CPU per check, blackbox_exporter alone / alertbook): %.2f\n", (bbc * 1000 / (checks > 0 ? checks : 1)) / ac
    printf "ratio (RSS, blackbox_exporter+prometheus / alertbook): %.2f\n", br / ar
}'
