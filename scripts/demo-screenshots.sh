#!/usr/bin/env bash
# Takes the README's demo tour screenshots (docs/screenshots/demo-*.png) from a running `alertbook demo`:
# starts the demo at --speed 120 (the 12-hour day in 6 minutes), waits until the first incidents have paged,
# acknowledges and closes one alert through the API as the demo's responder would in the UI, and has headless
# Chromium photograph the alert list, an alert's page with its triage, the runbook entry and the journal.
#
#   scripts/demo-screenshots.sh            uses target/release/alertbook (built when missing)
#   ALERTBOOK=path/to/alertbook scripts/demo-screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/peers/chromium.sh install
binary=${ALERTBOOK:-target/release/alertbook}
[[ -x $binary ]] || cargo build --locked --release --bin alertbook
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
"$binary" demo --speed 120 --listen "127.0.0.1:$port" --data "$work/data" >"$work/demo.log" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$work"' EXIT

json() { curl -fsS "$url$1"; }
# The first alerts whose triage the tour shows: A1 (HighApiErrorRate) and A6 (LokiCompactorBehind).
fingerprint_of() {
    json '/api/v1/triage?limit=1000' | python3 -c '
import json, sys
runs = json.load(sys.stdin)["data"]["runs"]
print(next((run["fingerprint"] for run in runs if run["alertname"] == sys.argv[1]), ""))' "$1"
}
for _ in $(seq 1 300); do
    a1=$(fingerprint_of HighApiErrorRate 2>/dev/null || true)
    a6=$(fingerprint_of LokiCompactorBehind 2>/dev/null || true)
    [[ -n $a1 && -n $a6 ]] && break
    sleep 1
done
[[ -n $a1 && -n $a6 ]] || { echo "A1 and A6 did not page within 5 minutes; see $work/demo.log" >&2; exit 1; }
sleep 5

# Acknowledge and close A6 as the demo responder (the UI's buttons call the same API).
token=$("$binary" token create demo --data "$work/data")
curl -fsS -X POST -H "Authorization: Bearer $token" "$url/api/v1/alerts/$a6/ack" >/dev/null
curl -fsS -X POST -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"root_cause":"compactor stuck on a corrupt table; restarted","remediation":"no-op, transient","contract_changed":"no"}' \
    "$url/api/v1/alerts/$a6/close" >/dev/null

shot() { # FILE PATH HEIGHT
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="1280,$3" \
        --screenshot="docs/screenshots/$1" "$url$2" 2>/dev/null
}
mkdir -p docs/screenshots
shot demo-alerts.png /alerts 900
shot demo-alert.png "/alerts/$a1" 1500
shot demo-runbook.png /runbook/A1 1100
shot demo-journal.png /journal 700
ls -l docs/screenshots/demo-*.png
