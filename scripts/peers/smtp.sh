#!/usr/bin/env bash
# Installs the SMTP server the smtp prober's tests start on loopback
# (crates/probe/tests/it/smtp.rs runs scripts/peers/smtp-server.py):
# Debian's python3-aiosmtpd, for /usr/bin/python3. Idempotent.
set -euo pipefail

if /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
    exit 0
fi
sudo_command=()
[[ $(id -u) -eq 0 ]] || sudo_command=(sudo)
echo "installing Debian packages: python3-aiosmtpd"
"${sudo_command[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_command[@]}" apt-get install -y -qq --no-install-recommends python3-aiosmtpd
