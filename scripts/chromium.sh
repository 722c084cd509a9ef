#!/usr/bin/env bash
# Installs Debian's chromium when it is missing, and prints its path: the
# headless browser that tests/cli/report.rs opens `curate report`'s HTML in.
#
#   chromium=$(scripts/chromium.sh)
set -euo pipefail
if command -v chromium >/dev/null; then
    command -v chromium
    exit 0
fi
echo "installing Debian's chromium (once) for the report tests" >&2
sudo=""
if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
command -v chromium
