#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the web UI's browser tests
# (crates/cli/tests/it/browser.rs): Debian's `chromium` and `chromium-driver`,
# with chromedriver listening on a free loopback port.
#
#   source scripts/peers/chromium.sh   installs the packages when missing, starts
#                                      chromedriver for the whole test run and
#                                      exports ALERTBOOK_TEST_WEBDRIVER_URL; the
#                                      driver stops when the sourcing shell exits
#   scripts/peers/chromium.sh install  installs the packages only
#   scripts/peers/chromium.sh start    starts chromedriver in the foreground's
#                                      background and prints its URL (the caller
#                                      stops it: its pid is in $TMPDIR/alertbook-chromedriver.pid)

chromium_install() {
    local package missing=()
    for package in chromium chromium-driver fonts-dejavu-core; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    echo "installing Debian packages: ${missing[*]}" >&2
    local sudo_command=()
    [[ $(id -u) -eq 0 ]] || sudo_command=(sudo)
    "${sudo_command[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_command[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

chromium_free_port() {
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

# Starts chromedriver on a free loopback port; sets chromium_driver_pid and
# chromium_driver_url once it answers /status.
chromium_start() {
    command -v chromedriver >/dev/null || {
        echo "chromedriver is not installed: run scripts/test, or apt-get install chromium chromium-driver" >&2
        return 1
    }
    local port log
    port=$(chromium_free_port) || return 1
    log=$(mktemp /tmp/alertbook-chromedriver.XXXXXX.log)
    chromedriver --port="$port" --allowed-ips=127.0.0.1 --log-level=WARNING >"$log" 2>&1 </dev/null &
    chromium_driver_pid=$!
    chromium_driver_url="http://127.0.0.1:$port"
    for _ in $(seq 1 100); do
        if (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "chromedriver for the tests: $chromium_driver_url (pid $chromium_driver_pid, log $log)" >&2
            return 0
        fi
        kill -0 "$chromium_driver_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "chromedriver did not start:" >&2
    cat "$log" >&2
    return 1
}

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
    # Sourced by scripts/test: one driver for the whole run.
    chromium_install
    chromium_start
    export ALERTBOOK_TEST_WEBDRIVER_URL=$chromium_driver_url
    # Stop the driver when the sourcing shell exits, without taking its EXIT trap.
    (
        while kill -0 $$ 2>/dev/null; do sleep 2; done
        kill "$chromium_driver_pid" 2>/dev/null || true
    ) </dev/null >/dev/null 2>&1 &
    disown
else
    set -euo pipefail
    case ${1:-} in
        install) chromium_install ;;
        start)
            chromium_start
            echo "$chromium_driver_pid" >"${TMPDIR:-/tmp}/alertbook-chromedriver.pid"
            echo "$chromium_driver_url"
            ;;
        *)
            echo "usage: source scripts/peers/chromium.sh | scripts/peers/chromium.sh install|start" >&2
            exit 2
            ;;
    esac
fi
