"""The browser for the end-to-end tests of the ops pages: the system's Chromium, driven by
Playwright (``make test`` installs Chromium with ``scripts/install_test_tools.sh`` when it is
missing). No browser fails the test, it never skips."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

# Headless, and quiet on the network: the browser only talks to the pages under test.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The Chromium binary: ``STREAMER_TEST_CHROMIUM``, else ``chromium`` on PATH."""
    path = (
        os.environ.get("STREAMER_TEST_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if path is None:
        pytest.fail(
            "no Chromium for the browser tests: run scripts/install_test_tools.sh (make test "
            "does), or name one in STREAMER_TEST_CHROMIUM",
            pytrace=False,
        )
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
