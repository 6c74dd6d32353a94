#!/usr/bin/env bash
# A Docker datasource snapshot of 200 services against `docker service ls` +
# `docker service inspect` on the same swarm, in one run. See bench/README.md.
#
#   bench/docker-snapshot.sh [--services N] [--repeat N]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"

"${ROOT}/scripts/peers/docker.sh"
echo "[docker-snapshot.sh] building the release binary" >&2
(cd "$ROOT" && cargo build --release --quiet --locked -p alertbook-bench --bin docker-snapshot-bench)
"${CARGO_TARGET_DIR}/release/docker-snapshot-bench" "$@"
