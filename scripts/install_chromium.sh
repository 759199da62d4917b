#!/usr/bin/env bash
# Chromium for the browser tests (tests/e2e/test_pages_in_browser.py), from the system's
# packages: Playwright's own browser download is not needed (and not reachable everywhere).
# Does nothing when a Chromium is already on PATH or named by STREAMER_TEST_CHROMIUM.
set -euo pipefail

if [[ -n "${STREAMER_TEST_CHROMIUM:-}" ]] || command -v chromium >/dev/null 2>&1 \
    || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is not installed and there is no apt-get: install Chromium and put it on" \
         "PATH, or name its binary in STREAMER_TEST_CHROMIUM" >&2
    exit 1
fi
if [[ $(id -u) == 0 ]]; then
    sudo=(env)
elif sudo -n true 2>/dev/null; then
    sudo=(sudo -n env)
else
    echo "chromium is not installed and packages cannot be installed without a password:" \
         "run \`sudo apt-get install chromium\` once" >&2
    exit 1
fi
echo "browser tests: installing chromium with apt-get (first run only)…"
"${sudo[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
command -v chromium
