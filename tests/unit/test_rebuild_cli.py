"""``rebuild-state`` says what failed, as one line, when Redis fails partway."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from redis.exceptions import ConnectionError as RedisConnectionError

import streamer.rebuild
import streamer.redis_client
from streamer.cli import cli


def test_a_redis_that_fails_during_the_rebuild_is_one_line_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def reachable(*_: object, **__: object) -> None:
        return None  # the start-up check passed: Redis answered then

    async def fails(*_: object) -> None:
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(streamer.redis_client, "redis_problem", reachable)
    monkeypatch.setattr(streamer.rebuild, "rebuild", fails)
    result = CliRunner().invoke(cli, ["rebuild-state"])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        "Error: Redis failed during the rebuild (ConnectionError: Connection closed by server.); "
        "every update is idempotent per transaction: run `fraud-streamer rebuild-state` again"
    )
    assert "Traceback" not in result.output
