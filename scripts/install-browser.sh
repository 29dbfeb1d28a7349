#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the console's browser tests (examples/platform/tests/
# console.rs runs this when /usr/bin/chromedriver is missing). Needs root or passwordless sudo.
set -euo pipefail
if [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version
/usr/bin/chromedriver --version
