#!/usr/bin/env bash
# A Docker datasource snapshot of 200 services against `docker service ls` +
# `docker service inspect` on the same swarm, in one run. See bench/README.md.
#
#   bench/docker-snapshot.sh [--services N] [--repeat N]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"

"${ROOT}/scripts/peers/docker.sh"
echo "[docker-snapshot.sh] building the release binary" >&2
(cd "$ROOT" && cargo build --release --quiet --locked -p alertbook-bench --bin docker-snapshot-bench)
bench_load_check docker-snapshot.sh
"${CARGO_TARGET_DIR}/release/docker-snapshot-bench" "$@"
bench_load_after docker-snapshot.sh
