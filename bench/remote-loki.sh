#!/usr/bin/env bash
# A log rule group (the catalog's busflow-grafana-sso, A7) evaluated over the
# embedded log store and through the remote Loki datasource against a peer
# serving the same lines: alertbook's own Loki API on loopback, and a real
# Loki when one is given (--loki URL [--loki-tenant T]; none is installable
# from Debian). Prints each side's median and p90, the overhead ratio and
# /proc/loadavg. See bench/README.md.
#
#   bench/remote-loki.sh [--debug] [--lines N] [--rounds R] [--loki URL] [--loki-tenant T]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
JOBS="${JOBS:-2}"

PROFILE=release
case "${1:-}" in
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    --debug) PROFILE=debug; shift ;;
esac
if [[ " $* " != *" --loki "* ]]; then
    printf '[remote-loki.sh] no Grafana Loki here (apt-cache policy loki: Debian'"'"'s loki is an unrelated genetics program); comparing with alertbook'"'"'s own Loki API only\n' >&2
fi
printf '[remote-loki.sh] building remote-loki-bench (%s, -j %s)\n' "$PROFILE" "$JOBS" >&2
if [[ $PROFILE == release ]]; then
    (cd "$ROOT" && nice -n 10 cargo build --release --quiet -j "$JOBS" -p alertbook-bench --bin remote-loki-bench)
else
    (cd "$ROOT" && nice -n 10 cargo build --quiet -j "$JOBS" -p alertbook-bench --bin remote-loki-bench)
fi
bench_load_check remote-loki.sh
"${CARGO_TARGET_DIR}/${PROFILE}/remote-loki-bench" "$@"
bench_load_after remote-loki.sh
