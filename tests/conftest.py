"""Test tiers and the fixture that connects tests to the local stack.

The tier follows the directory: tests under ``tests/integration`` are marked ``integration`` and
those under ``tests/e2e`` ``e2e``, so ``-m "not integration and not e2e"`` runs what needs no
services. Tests that need Kafka and Redis take the ``stack`` fixture.

A test that needs the stack FAILS when the stack is down, it never skips: a skipped
integration test looks green, and the suite would then pass on a machine that tested nothing.
With ``STREAMER_REQUIRE_STACK=1`` (``make test`` sets it) the stack is checked once before any
test runs and the whole run stops at once, with the reason, when it does not answer.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from streamer.kafka import fetch_broker_ids
from streamer.settings import Settings, SettingsError, load_settings

TESTS = Path(__file__).resolve().parent
TIERS = {"integration": TESTS / "integration", "e2e": TESTS / "e2e"}
HOW_TO_START = "start it with `fraud-streamer stack up` (or `make stack-up`)"

# the real worker's fixtures (``worker_env`` and what it needs), shared by integration and e2e
pytest_plugins = ["tests.workers"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker, directory in TIERS.items():
            if item.path.is_relative_to(directory):
                item.add_marker(getattr(pytest.mark, marker))


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("STREAMER_REQUIRE_STACK") != "1":
        return
    problem = asyncio.run(_stack_problem())
    if problem is not None:
        pytest.exit(f"STREAMER_REQUIRE_STACK=1 but {problem}", returncode=1)


async def _stack_problem() -> str | None:
    """Why the configured Kafka and Redis cannot be used, or None when both answer."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        return str(exc)
    try:
        brokers = await fetch_broker_ids(settings, timeout=5.0)
    except Exception as exc:
        brokers, error = [], f": {type(exc).__name__}: {exc}"
    else:
        error = ""
    if not brokers:
        servers = settings.kafka_bootstrap_servers
        return f"Kafka at {servers} does not answer{error}; {HOW_TO_START}"
    client = aioredis.from_url(settings.redis_url, socket_timeout=5.0)
    try:
        await client.ping()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return f"Redis at {settings.redis_url} does not answer: {reason}; {HOW_TO_START}"
    finally:
        await client.aclose()
    return None


@pytest.fixture(scope="session")
async def stack() -> Settings:
    """The settings of a running Kafka and Redis; fails the test when they do not answer."""
    problem = await _stack_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    return load_settings()
