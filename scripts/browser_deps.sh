#!/usr/bin/env bash
# The real-browser test's browser (tests/e2e/test_real_browser.py): Debian's
# Chromium and its ChromeDriver, installed with apt when missing.
# Run by scripts/test.sh in the background before pytest, and again by the test's
# fixture, which waits here (one lock) while an install is under way.
# DOCS_CHROMIUM / DOCS_CHROMEDRIVER name a browser and driver installed elsewhere.
# Needs root (as CI runs) to install; exits 0 once both are there, non-zero with the
# reason otherwise.
set -euo pipefail
CHROMIUM="${DOCS_CHROMIUM:-/usr/bin/chromium}"
DRIVER="${DOCS_CHROMEDRIVER:-/usr/bin/chromedriver}"
present() { [ -x "$CHROMIUM" ] && [ -x "$DRIVER" ]; }
present && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "error: $CHROMIUM or $DRIVER is missing and only root can install them:" \
    "apt-get install chromium chromium-driver (or set DOCS_CHROMIUM and DOCS_CHROMEDRIVER," \
    "or DOCS_BROWSER_TESTS=0 to skip the real-browser test)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: $CHROMIUM is missing and there is no apt-get to install it" \
    "(set DOCS_CHROMIUM and DOCS_CHROMEDRIVER, or DOCS_BROWSER_TESTS=0)" >&2
  exit 1
fi
# one install at a time on this machine (test.sh's and the fixture's, other checkouts')
exec 9>"${TMPDIR:-/tmp}/docs-browser-deps.lock"
flock 9
present && exit 0

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  # wait a while for another apt or dpkg run rather than fail at once
  apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 chromium chromium-driver
}
started=$(date +%s)
echo "[browser] installing chromium chromium-driver (apt)"
if ! apt_install; then
  echo "[browser] install failed: apt-get update, then once more"
  apt-get update -o DPkg::Lock::Timeout=300
  apt_install
fi
present || { echo "error: installed, yet $CHROMIUM or $DRIVER is missing" >&2; exit 1; }
echo "[browser] installed in $(($(date +%s) - started)) s: $("$CHROMIUM" --version 2>/dev/null)"
