#!/usr/bin/env bash
# What one SQL rule evaluation adds to its query's own time: a throwaway
# PostgreSQL 15 with pg_cron (scripts/peers/postgres.sh), seeded with pg_cron
# jobs and their run history, then sql-rule-bench runs the catalog's A4 query
# through psql, raw sqlx, alertbook's datasource and alertbook's rule
# evaluation, interleaved. See bench/README.md.
#
#   bench/sql.sh [--jobs N] [--runs R] [--repeat N] [--debug]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "${ROOT}/bench/lib.sh"
JOBS=50
RUNS=20
REPEAT=300
PROFILE=release

while [[ $# -gt 0 ]]; do
    case "$1" in
        --jobs) JOBS="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf '[sql.sh] %s\n' "$*" >&2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"

log "building sql-rule-bench ($PROFILE)"
if [[ $PROFILE == release ]]; then
    (cd "$ROOT" && cargo build --release --quiet -p alertbook-bench --bin sql-rule-bench)
else
    (cd "$ROOT" && cargo build --quiet -p alertbook-bench --bin sql-rule-bench)
fi

"$ROOT/scripts/peers/postgres.sh" install
WORK="$(mktemp -d /tmp/alertbook-sql-bench.XXXXXX)"
chmod 755 "$WORK"
cleanup() {
    "$ROOT/scripts/peers/postgres.sh" stop "$WORK/cluster" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
log "starting PostgreSQL in $WORK"
"$ROOT/scripts/peers/postgres.sh" start "$WORK/cluster" >/dev/null

# JOBS jobs with RUNS finished runs each, a minute apart; every tenth job is a
# tenant_scrub_* job whose last two runs failed (A4 fires for those).
log "seeding $JOBS pg_cron jobs x $RUNS runs"
/usr/lib/postgresql/15/bin/psql "$(cat "$WORK/cluster/dsn")" -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT cron.schedule(CASE WHEN g % 10 = 0 THEN 'tenant_scrub_' ELSE 'refresh_' END || g, '0 0 31 2 *', 'SELECT 1')
FROM generate_series(1, $JOBS) AS g;
INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message, start_time, end_time)
SELECT j.jobid, 1000 + r, 'postgres', 'postgres', 'SELECT 1',
       CASE WHEN j.jobname LIKE 'tenant\_scrub\_%' AND r > $RUNS - 2 THEN 'failed' ELSE 'succeeded' END,
       'done', now() - make_interval(mins => $RUNS - r), now() - make_interval(mins => $RUNS - r) + interval '2 seconds'
FROM cron.job AS j CROSS JOIN generate_series(1, $RUNS) AS r;
ANALYZE cron.job, cron.job_run_details;
SQL

bench_load_check sql.sh
"$CARGO_TARGET_DIR/$PROFILE/sql-rule-bench" --url-file "$WORK/cluster/dsn" \
    --rules "$ROOT/catalog/busflow/rules/sql.rules.yaml" --repeat "$REPEAT"
bench_load_after sql.sh
