#!/usr/bin/env bash
# The web UI's alerts page with N alerts firing (default 1000): `alertbook run`
# fires TlsCertExpiringSoon once per remote-written certificate, then
# /alerts is timed over HTTP beside /api/v1/alerts. See bench/README.md.
#
#   bench/ui.sh [--alerts N] [--requests N] [--work DIR]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
BIN="${CARGO_TARGET_DIR}/release"

echo "[ui.sh] building release binaries" >&2
(cd "$ROOT" && cargo build --release --quiet --bin alertbook -p cli && cargo build --release --quiet -p alertbook-bench --bin ui-bench)
cd "$ROOT"
bench_load_check ui.sh
"${BIN}/ui-bench" --alertbook "${BIN}/alertbook" "$@"
bench_load_after ui.sh
