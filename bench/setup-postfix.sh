#!/usr/bin/env bash
# Preseed debconf so the Debian `postfix` package installs without prompting and without a system config:
# the benchmark runs its own private Postfix instance (bench/ingest.py), never the system one.
set -euo pipefail
dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed" && exit 0
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections
