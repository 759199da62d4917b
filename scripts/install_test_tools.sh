#!/usr/bin/env bash
# What the test suite needs beyond Python, Kafka and Redis, from the system's packages:
#   - Chromium, for the browser tests (tests/e2e/test_pages_in_browser.py): Playwright drives
#     it and downloads no browser of its own. Installed with apt-get (as root or with
#     password-less sudo) unless one is on PATH or named by STREAMER_TEST_CHROMIUM.
#   - promtool, for the tests of the alerting rules (stack/prometheus/): taken out of Debian's
#     prometheus package into .stack/tools/ without installing it (the package would start a
#     Prometheus server), unless one is on PATH or named by STREAMER_TEST_PROMTOOL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [[ $(id -u) == 0 ]]; then
        env DEBIAN_FRONTEND=noninteractive "$@"
    elif sudo -n true 2>/dev/null; then
        sudo -n env DEBIAN_FRONTEND=noninteractive "$@"
    else
        echo "cannot run \`$*\` without a password: run it once by hand" >&2
        return 1
    fi
}
need_apt() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$1 is not installed and there is no apt-get: install it and put it on PATH, or" \
             "name its binary in $2" >&2
        exit 1
    fi
}

if [[ -z "${STREAMER_TEST_CHROMIUM:-}" ]] && ! command -v chromium >/dev/null 2>&1 \
    && ! command -v chromium-browser >/dev/null 2>&1; then
    need_apt chromium STREAMER_TEST_CHROMIUM
    echo "test tools: installing chromium with apt-get (first run only)…"
    as_root apt-get update -qq
    as_root apt-get install -y -qq chromium >/dev/null
    command -v chromium
fi

tools=.stack/tools
if [[ -z "${STREAMER_TEST_PROMTOOL:-}" ]] && ! command -v promtool >/dev/null 2>&1 \
    && [[ ! -x $tools/promtool ]]; then
    need_apt promtool STREAMER_TEST_PROMTOOL
    echo "test tools: taking promtool out of Debian's prometheus package (first run only)…"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    if ! (cd "$work" && apt-get download -qq prometheus 2>/dev/null); then
        as_root apt-get update -qq  # no package lists yet
        (cd "$work" && apt-get download -qq prometheus)
    fi
    dpkg-deb -x "$work"/prometheus_*.deb "$work/extracted"
    mkdir -p "$tools"
    install -m 0755 "$work/extracted/usr/bin/promtool" "$tools/promtool"
    "$tools/promtool" --version | head -1
fi
