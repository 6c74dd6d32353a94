#!/usr/bin/env bash
# Takes the README's screenshots of the web UI (docs/screenshots/alerts.png,
# alert.png, health.png, alert-close-refused.png, journal.png) from the browser test: headless Chromium opens the
# pages of an `alertbook run` whose data fires A6 and A9 and walks the closing workflow, exactly as
# `cargo test -p cli --test it browser` does, and saves what it sees.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/peers/chromium.sh
ALERTBOOK_SCREENSHOTS_DIR=docs/screenshots cargo test --locked -p cli --test it browser -- --nocapture
ls -l docs/screenshots/*.png
