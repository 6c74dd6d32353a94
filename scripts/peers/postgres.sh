#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster with pg_cron for alertbook's integration
# tests: initdb (as the `postgres` user when run as root) in a temporary
# directory, pg_cron preloaded, listening on 127.0.0.1 only on a free port,
# password authentication over TCP.
#
#   source scripts/peers/postgres.sh   installs the Debian packages when missing,
#                                      starts a cluster for the whole test run and
#                                      exports ALERTBOOK_TEST_POSTGRES_URL (the
#                                      superuser's DSN); the cluster stops when the
#                                      sourcing shell exits
#   scripts/peers/postgres.sh start DIR   starts a cluster in the empty directory DIR
#                                         and prints its DSN (tests that stop and
#                                         restart their own server use this)
#   scripts/peers/postgres.sh stop DIR    stops it (the directory is left to the caller)
#   scripts/peers/postgres.sh restart DIR starts it again on the same port

postgres_bin=${ALERTBOOK_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}

postgres_install() {
    local package missing=()
    for package in postgresql-15 postgresql-15-cron; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    echo "installing Debian packages: ${missing[*]}" >&2
    local sudo_command=()
    [[ $(id -u) -eq 0 ]] || sudo_command=(sudo)
    "${sudo_command[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_command[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # Debian's package creates and starts a main cluster; the tests do not use it.
    if command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 \+main'; then
        "${sudo_command[@]}" pg_ctlcluster 15 main stop || true
    fi
}

# Runs a command as the cluster's owner: `postgres` when we are root.
postgres_as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

postgres_free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

postgres_start() {
    local dir=$1
    [[ -x $postgres_bin/initdb ]] || {
        echo "PostgreSQL 15 is not installed ($postgres_bin/initdb missing): run scripts/test, or apt-get install postgresql-15 postgresql-15-cron" >&2
        return 1
    }
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    chmod 700 "$dir"
    local password
    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$password" >"$dir/superuser-password"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/superuser-password"
    chmod 600 "$dir/superuser-password"
    postgres_as_owner "$postgres_bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$dir/superuser-password" --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        return 1
    }
    local port
    port=$(postgres_free_port)
    postgres_as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
CONF
    printf 'postgres://postgres:%s@127.0.0.1:%s/postgres\n' "$password" "$port" >"$dir/dsn"
    chmod 600 "$dir/dsn"
    postgres_restart "$dir" || return 1
    postgres_as_owner "$postgres_bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt \
        -c "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null || return 1
    cat "$dir/dsn"
}

postgres_restart() {
    local dir=$1
    postgres_as_owner "$postgres_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null || {
        cat "$dir/postgres.log" >&2
        return 1
    }
}

postgres_stop() {
    local dir=$1
    [[ -f $dir/data/postmaster.pid ]] || return 0
    postgres_as_owner "$postgres_bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
    # Sourced by scripts/test: one cluster for the whole run.
    postgres_install
    postgres_run_dir=$(mktemp -d /tmp/alertbook-postgres.XXXXXX)
    [[ $(id -u) -eq 0 ]] && chmod 755 "$postgres_run_dir"
    ALERTBOOK_TEST_POSTGRES_URL=$(postgres_start "$postgres_run_dir/cluster")
    export ALERTBOOK_TEST_POSTGRES_URL
    # Stop the cluster when the sourcing shell exits, without taking its EXIT trap.
    (
        while kill -0 $$ 2>/dev/null; do sleep 2; done
        postgres_stop "$postgres_run_dir/cluster" || true
        rm -rf "$postgres_run_dir"
    ) </dev/null >/dev/null 2>&1 &
    disown
    echo "PostgreSQL for the tests: ${ALERTBOOK_TEST_POSTGRES_URL%%:*}://postgres@127.0.0.1 (data in $postgres_run_dir)" >&2
else
    set -euo pipefail
    case ${1:-} in
        install) postgres_install ;;
        start) postgres_start "${2:?usage: postgres.sh start DIR}" ;;
        restart) postgres_restart "${2:?usage: postgres.sh restart DIR}" ;;
        stop) postgres_stop "${2:?usage: postgres.sh stop DIR}" ;;
        *)
            echo "usage: source scripts/peers/postgres.sh | scripts/peers/postgres.sh install|start DIR|restart DIR|stop DIR" >&2
            exit 2
            ;;
    esac
fi
