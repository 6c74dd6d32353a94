#!/usr/bin/env bash
# PII redaction throughput in one command: alertbook's pii::Redactor against a
# naive regex-per-rule scanner, one thread, on generated Faro log lines.
# See bench/README.md.
#
#   bench/pii.sh [--mb 256] [--pii-rate 0.001] [--seed 1] [--repeat 1] [--skip-naive]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
JOBS="${JOBS:-1}"

printf '[pii.sh] building pii-bench (release, -j %s)\n' "$JOBS" >&2
(cd "$ROOT" && cargo build --release --quiet -j "$JOBS" -p alertbook-bench --bin pii-bench)
bench_load_check pii.sh
"${CARGO_TARGET_DIR}/release/pii-bench" --rules "${ROOT}/catalog/busflow/pii-rules.yaml" "$@"
bench_load_after pii.sh
