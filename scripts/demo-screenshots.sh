#!/usr/bin/env bash
# Takes the README's demo tour screenshots (docs/screenshots/demo-*.png) from a running `alertbook demo`:
# starts the demo at its default speed (the 12-hour day in 15 minutes), waits until the first incidents have paged,
# acknowledges and closes A9 through the API as the demo's responder would in the UI, and has headless Chromium
# (through chromedriver's WebDriver API, logged in as the banner's `demo` responder) photograph the alert list, A1's
# page with its triage, the runbook entry and the journal.
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
"$binary" demo --listen "127.0.0.1:$port" --data "$work/data" >"$work/demo.log" 2>&1 &
demo=$!
driver=$(scripts/peers/chromium.sh start)
trap 'kill $demo "$(cat "${TMPDIR:-/tmp}/alertbook-chromedriver.pid")" 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$work"' EXIT

json() { curl -fsS "$url$1"; }
# Two firing alerts: A1 (HighApiErrorRate), whose page the tour shows, and A9 to acknowledge and close.
firing() {
    json /api/v1/alerts | python3 -c '
import json, sys
alerts = [a for a in json.load(sys.stdin)["data"]["alerts"] if a["state"] == "firing"]
a1 = next((a["fingerprint"] for a in alerts if a["labels"]["alertname"] == "HighApiErrorRate"), "")
# A9 fires early and for hours (a certificate is not renewed); A6 resolves within the first virtual hour.
other = next((a["fingerprint"] for a in alerts if a["labels"]["alertname"] == "TlsCertExpiringSoon"), "")
print(a1, other)'
}
a1=""; other=""
for _ in $(seq 1 300); do
    read -r a1 other < <(firing 2>/dev/null || echo) || true
    [[ -n $a1 && -n $other ]] && break
    sleep 1
done
[[ -n $a1 && -n $other ]] || { echo "A1 and A9 did not fire together within 5 minutes; see $work/demo.log" >&2; exit 1; }

mkdir -p docs/screenshots
password=$(sed -n 's/^ *log in as *demo \/ \([^ ]*\).*/\1/p' "$work/demo.log")
# `shot FILE PATH HEIGHT`: a WebDriver session logs in as the demo responder and photographs the page.
webdriver='
import base64, json, sys, urllib.request
driver, base, password, name, path, height = sys.argv[1:]
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(driver + path, data=data, method=method, headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request))["value"]
args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]
session = "/session/" + call("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": args}}}})["sessionId"]
def element(css):
    found = call("POST", session + "/element", {"using": "css selector", "value": css})
    return session + "/element/" + next(iter(found.values()))
call("POST", session + "/url", {"url": base + "/login"})
call("POST", element("input[name=user]") + "/value", {"text": "demo"})
call("POST", element("input[name=password]") + "/value", {"text": password})
call("POST", element("form button, form input[type=submit]") + "/click", {})
call("POST", session + "/window/rect", {"width": 1280, "height": int(height)})
call("POST", session + "/url", {"url": base + path})
with open("docs/screenshots/" + name, "wb") as out:
    out.write(base64.b64decode(call("GET", session + "/screenshot")))
call("DELETE", session)
'
shot() { python3 -c "$webdriver" "$driver" "$url" "$password" "$1" "$2" "$3"; }
# Acknowledge and close A9 as the demo responder (the UI's buttons call the same API).
token=$("$binary" token create demo --data "$work/data")
curl -fsS -X POST -H "Authorization: Bearer $token" "$url/api/v1/alerts/$other/ack" >/dev/null
curl -fsS -X POST -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"root_cause":"the DNS challenge token was revoked (simulated)","remediation":"no-op, transient","contract_changed":"no"}' \
    "$url/api/v1/alerts/$other/close" >/dev/null
sleep 3
shot demo-alert.png "/alerts/$a1" 1500
sleep 20
shot demo-alerts.png /alerts 900
shot demo-runbook.png /runbook/A1 1100
shot demo-journal.png /journal 700
ls -l docs/screenshots/demo-*.png
