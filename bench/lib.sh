# Shared by the bench scripts (`source "$(dirname "$0")/lib.sh"`): the
# machine-load check every benchmark runs before it measures.
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
