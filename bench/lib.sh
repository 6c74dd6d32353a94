# Shared by the bench scripts (`source "$(dirname "$0")/lib.sh"`): the
# machine-load check every benchmark runs before it measures, and starting
# VictoriaMetrics over a dataset file.
#
# A figure taken while other work holds the cores says little about either
# system, and a ratio is only fair when both systems ran in the same run on
# the same bytes. So each script, after building and before measuring, calls
#
#   bench_load_check NAME      # prints the load; warns when the machine is busy
#
# and, when the measurement is over (where the script still runs then),
#
#   bench_load_after NAME      # prints the load again, and repeats the warning
#
# Busy means a 1-minute load average above BENCH_BUSY_LOAD (default 1.5).
# BENCH_WAIT_QUIET=SECONDS makes bench_load_check wait up to that long for
# the load to fall below the threshold before going on (default 0: no wait).
# Nothing here refuses to measure: the figures of a busy run are printed all
# the same, marked as such, so that they are never quoted as quiet figures.

BENCH_BUSY_LOAD="${BENCH_BUSY_LOAD:-1.5}"
BENCH_WAIT_QUIET="${BENCH_WAIT_QUIET:-0}"
# Set by bench_load_check: 1 when the machine was busy before the measurement.
BENCH_BUSY=0

# The 1-minute load average.
bench_load_now() {
    cut -d ' ' -f 1 /proc/loadavg
}

# Succeeds when LOAD is above the busy threshold.
bench_load_is_busy() {
    awk -v load="$1" -v limit="$BENCH_BUSY_LOAD" 'BEGIN { exit !(load > limit) }'
}

bench_load_check() {
    local name="$1" waited=0 load
    load="$(bench_load_now)"
    while bench_load_is_busy "$load" && (( waited < BENCH_WAIT_QUIET )); do
        if (( waited == 0 )); then
            printf '[%s] load %s is above %s: waiting up to %s s for a quieter machine\n' \
                "$name" "$load" "$BENCH_BUSY_LOAD" "$BENCH_WAIT_QUIET" >&2
        fi
        sleep 5
        waited=$((waited + 5))
        load="$(bench_load_now)"
    done
    printf '[%s] load before measuring: %s (%s cores)\n' "$name" "$(cut -d ' ' -f 1-3 /proc/loadavg)" "$(nproc)"
    if bench_load_is_busy "$load"; then
        BENCH_BUSY=1
        printf '[%s] BUSY MACHINE: 1-minute load %s > %s; absolute figures of this run are not quiet-machine figures (ratios compare both systems within this run)\n' \
            "$name" "$load" "$BENCH_BUSY_LOAD"
    else
        BENCH_BUSY=0
    fi
}

bench_load_after() {
    local name="$1"
    printf '[%s] load after measuring: %s (includes the benchmark itself)\n' "$name" "$(cut -d ' ' -f 1-3 /proc/loadavg)"
    if (( BENCH_BUSY == 1 )); then
        printf '[%s] BUSY MACHINE: the figures above were taken with a load above %s before the run\n' \
            "$name" "$BENCH_BUSY_LOAD"
    fi
}

# Starts VictoriaMetrics (Debian `victoria-metrics`) on a free loopback port
# over DIR, importing the OpenMetrics file DATA through its Prometheus text
# import (which takes OpenMetrics's timestamps in seconds) unless a complete
# import is already in DIR. Its response cache is off and every sample is
# visible at once (no latency offset), so repeated queries are computed each
# time, as on the other systems. Sets VICTORIAMETRICS_URL and
# VICTORIAMETRICS_PID, and adds the pid to the caller's PIDS array as soon as
# the process runs (the caller's exit trap stops what PIDS holds), so that a
# failed start or import leaves nothing running.
#
#   bench_victoriametrics_start NAME DATA DIR LOG
bench_victoriametrics_start() {
    local name="$1" data="$2" dir="$3" log_file="$4" port waited=0 started
    [[ -f "${dir}/.imported" ]] || rm -rf "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    victoria-metrics \
        -storageDataPath="$dir" \
        -retentionPeriod=100y \
        -httpListenAddr="127.0.0.1:${port}" \
        -search.disableCache \
        -search.latencyOffset=0s \
        -search.maxQueryDuration=10m \
        -search.maxSamplesPerQuery=1000000000 \
        -search.maxUniqueTimeseries=10000000 \
        >"$log_file" 2>&1 &
    VICTORIAMETRICS_PID=$!
    PIDS+=("$VICTORIAMETRICS_PID")
    VICTORIAMETRICS_URL="http://127.0.0.1:${port}"
    until curl -fsS -o /dev/null --max-time 5 "${VICTORIAMETRICS_URL}/-/ready" 2>/dev/null; do
        kill -0 "$VICTORIAMETRICS_PID" 2>/dev/null || { printf '[%s] victoriametrics exited; see %s\n' "$name" "$log_file" >&2; return 1; }
        (( waited < 120 )) || { printf '[%s] victoriametrics not ready after 120 s\n' "$name" >&2; return 1; }
        sleep 1
        waited=$((waited + 1))
    done
    if [[ -f "${dir}/.imported" ]]; then
        printf '[%s] reusing the VictoriaMetrics import in %s\n' "$name" "$dir" >&2
        return 0
    fi
    printf '[%s] importing into victoriametrics through /api/v1/import/prometheus\n' "$name" >&2
    started=$(date +%s.%N)
    # -T streams the file instead of reading it into memory first.
    curl -fsS -X POST -H 'Content-Type: text/plain' -T "$data" "${VICTORIAMETRICS_URL}/api/v1/import/prometheus" \
        || { printf '[%s] victoriametrics import failed; see %s\n' "$name" "$log_file" >&2; return 1; }
    curl -fsS "${VICTORIAMETRICS_URL}/internal/force_flush" >/dev/null
    printf '[%s] victoriametrics import took %s s\n' "$name" "$(awk -v a="$(date +%s.%N)" -v b="$started" 'BEGIN { printf "%.1f", a - b }')" >&2
    touch "${dir}/.imported"
}

# A free loopback TCP port.
bench_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until URL/-/ready answers 200; fails after TIMEOUT seconds or when PID exits.
#
#   bench_wait_ready NAME SERVER URL PID TIMEOUT
bench_wait_ready() {
    local name="$1" server="$2" url="$3" pid="$4" timeout="$5" waited=0
    until curl -fsS -o /dev/null --max-time 5 "${url}/-/ready" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            printf '[%s] %s exited before becoming ready; see its log\n' "$name" "$server" >&2
            return 1
        fi
        if (( waited >= timeout )); then
            printf '[%s] %s not ready after %s s\n' "$name" "$server" "$timeout" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    printf '[%s] %s ready after %s s\n' "$name" "$server" "$waited" >&2
}

# Imports the OpenMetrics file DATA into the Prometheus data directory DIR
# with promtool (`tsdb create-blocks-from openmetrics`, or the older
# `create-blocks-from-openmetrics`), unless a complete import is there
# already (DIR/.imported). promtool's output goes to LOG.
#
#   bench_prometheus_import NAME DATA DIR LOG
bench_prometheus_import() {
    local name="$1" data="$2" dir="$3" log_file="$4" started
    local -a import
    if [[ -f "${dir}/.imported" ]]; then
        printf '[%s] reusing the Prometheus import in %s\n' "$name" "$dir" >&2
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if promtool tsdb create-blocks-from --help >/dev/null 2>&1; then
        import=(promtool tsdb create-blocks-from openmetrics)
    else
        import=(promtool tsdb create-blocks-from-openmetrics)
    fi
    printf '[%s] importing into prometheus with: %s\n' "$name" "${import[*]}" >&2
    started=$(date +%s.%N)
    "${import[@]}" "$data" "$dir" >"$log_file" 2>&1 \
        || { printf '[%s] promtool failed:\n' "$name" >&2; tail -20 "$log_file" >&2; return 1; }
    printf '[%s] promtool import took %s s\n' "$name" "$(awk -v a="$(date +%s.%N)" -v b="$started" 'BEGIN { printf "%.1f", a - b }')" >&2
    touch "${dir}/.imported"
}
