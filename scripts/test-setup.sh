#!/usr/bin/env bash
# Extra, idempotent prerequisites beyond the Python packages: Debian's chromium for the portal's browser
# tests (Playwright's own browser downloads are not used) and Pango, which WeasyPrint needs to print invoices
# as PDF (billing). Each step is skipped when its work is already done. `--demo`: only what `make demo` needs
# (Pango).
set -euo pipefail

CHROMIUM=${EVHUB_CHROMIUM:-/usr/bin/chromium}
missing=()
if [ "${1:-}" != "--demo" ] && [ ! -x "$CHROMIUM" ]; then
    missing+=(chromium)
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0'; then
    missing+=(libpango-1.0-0 libpangoft2-1.0-0)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "test-setup: installing Debian's ${missing[*]} (portal browser tests, invoice PDFs)"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq "${missing[@]}"
    fi
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
    echo "test-setup: ${missing[*]} missing and apt-get is not usable here (install them from Debian," >&2
    echo "            or point EVHUB_CHROMIUM at a chromium binary)" >&2
    exit 1
fi
if [ "${1:-}" != "--demo" ] && [ ! -x "$CHROMIUM" ]; then
    echo "test-setup: chromium did not install at $CHROMIUM" >&2
    exit 1
fi
exit 0
