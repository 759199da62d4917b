"""The Redis store sends a batch's pipeline again while the connection fails, for a bounded
time (the failover itself is tested against a real Redis Cluster in the integration tier)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from redis.exceptions import ConnectionError, ResponseError

from streamer.features.store import RedisFeatureStore


class _Script:
    def __init__(self, script: str) -> None:
        self.script = script
        self.sha = "sha"


class _Pipeline:
    def __init__(self, client: _FlakyClient) -> None:
        self.client = client

    def execute_command(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def execute(self) -> list[Any]:
        self.client.sent += 1
        if self.client.hangs:  # a server that stopped answering mid-batch
            self.client.hangs -= 1
            await asyncio.sleep(60)
        if self.client.failures:
            self.client.failures -= 1
            raise self.client.error
        return [1]


class _FlakyClient:
    """Just what the store calls; each pipeline fails while ``failures`` lasts."""

    def __init__(self, failures: int, error: Exception | None = None, hangs: int = 0) -> None:
        self.failures = failures
        self.hangs = hangs
        self.error = error or ConnectionError("Error 111 connecting to 127.0.0.1:7001.")
        self.sent = 0

    def register_script(self, script: str) -> _Script:
        return _Script(script)

    async def script_load(self, script: str) -> str:
        return "sha"

    def pipeline(self, transaction: bool) -> _Pipeline:
        return _Pipeline(self)


async def test_a_failing_connection_is_retried_until_the_calls_go_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _FlakyClient(failures=3)
    store = RedisFeatureStore(client, retry_s=30)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        assert await store._execute(lambda pipe: None) == [1]
    assert client.sent == 4
    assert "Redis failed (ConnectionError: Error 111" in caplog.text
    assert "Redis answered again after" in caplog.text


async def test_the_error_is_raised_once_the_retry_time_is_spent() -> None:
    client = _FlakyClient(failures=1_000)
    store = RedisFeatureStore(client, retry_s=0.3)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await store._execute(lambda pipe: None)
    assert 2 <= client.sent < 1_000


async def test_no_retry_when_it_is_off() -> None:
    client = _FlakyClient(failures=1)
    store = RedisFeatureStore(client, retry_s=0)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await store._execute(lambda pipe: None)
    assert client.sent == 1


async def test_a_command_s_own_error_is_not_sent_again() -> None:
    client = _FlakyClient(failures=1, error=ResponseError("ERR Error running script"))
    store = RedisFeatureStore(client, retry_s=30)  # type: ignore[arg-type]
    with pytest.raises(ResponseError):
        await store._execute(lambda pipe: None)
    assert client.sent == 1


async def test_a_batch_that_outlasts_its_deadline_is_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One deadline per batch (the worker's client sets no timer per reply): a round trip
    that does not end within it is a transient failure, sent again like a lost connection."""
    client = _FlakyClient(failures=0, hangs=1)
    store = RedisFeatureStore(client, retry_s=30, timeout_s=0.2)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        assert await store._execute(lambda pipe: None) == [1]
    assert client.sent == 2  # the hung round trip (its reply would come after 60 s) sent again
    assert "Redis failed (TimeoutError: the batch's Redis calls took more than 0.2 s)" in (
        caplog.text
    )
