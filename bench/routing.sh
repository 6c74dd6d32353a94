#!/usr/bin/env bash
# Routing dispatch latency: 10k alerts through an alertmanager.yml of 1k
# routes, posted through API v2 to alertbook and to the real Alertmanager
# (Debian prometheus-alertmanager) in turn; prints p50/p99 per system, the
# ratio, alertbook's routing engine alone, and the machine load.
#
#   bench/routing.sh [--alerts N] [--routes N] [--batch N]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
command -v prometheus-alertmanager >/dev/null || { echo "prometheus-alertmanager is missing (scripts/test installs it)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --quiet -p cli --bin alertbook && cargo build --release --quiet -p alertbook-bench --bin routing-bench)
bench_load_check routing.sh
"$CARGO_TARGET_DIR/release/routing-bench" --alertbook "$CARGO_TARGET_DIR/release/alertbook" "$@"
bench_load_after routing.sh
