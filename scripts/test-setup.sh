#!/usr/bin/env bash
# Extra, idempotent test prerequisites beyond the Python packages (e.g. Debian's chromium for the
# portal's browser tests). Each step is skipped when its work is already done.
set -euo pipefail

# Debian's chromium for the portal's Playwright tests (Playwright's own browser downloads are not used).
CHROMIUM=${EVHUB_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        echo "test-setup: installing Debian's chromium for the portal browser tests"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
            apt-get update -qq && apt-get install -y -qq chromium
        fi
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo "test-setup: installing Debian's chromium for the portal browser tests"
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    else
        echo "test-setup: $CHROMIUM is missing and apt-get is not usable here (install Debian's chromium," >&2
        echo "            or point EVHUB_CHROMIUM at a chromium binary)" >&2
        exit 1
    fi
    [ -x "$CHROMIUM" ] || { echo "test-setup: chromium did not install at $CHROMIUM" >&2; exit 1; }
fi
exit 0
