"""``fraud-streamer blocklist`` and the worker's start-up check against the real Redis,
with and without a password."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from click.testing import CliRunner

from models.registry import ModelRegistry
from streamer.cli import cli
from streamer.settings import Settings
from tests.integration.harness import cli_without_kafka, refused_start


@pytest.fixture
def redis_user(stack: Settings) -> Iterator[tuple[str, str]]:
    """An ACL user with a password on the stack's Redis (removed afterwards)."""
    admin = redis.Redis.from_url(stack.redis_url)
    name, password = f"test-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    admin.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"],
                      commands=["+@all"])  # fmt: skip
    try:
        yield name, password
    finally:
        admin.acl_deluser(name)
        admin.close()


def _url(stack: Settings, user: str, password: str, db: int) -> str:
    parts = urlsplit(stack.redis_url)
    return f"redis://{user}:{password}@{parts.hostname}:{parts.port or 6379}/{db}"


def test_add_list_remove(stack: Settings) -> None:
    env = {"STREAMER_REDIS_URL": stack.redis_url.rsplit("/", 1)[0] + "/13"}
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    run("blocklist", "remove", "terminal", "t-1", "t-2", "t-3")
    assert "2 terminal(s) added" in run("blocklist", "add", "terminal", "t-1", "t-2")
    assert "0 terminal(s) added (1 already blocked)" in run("blocklist", "add", "terminal", "t-1")
    assert run("blocklist", "list", "terminal").split() == ["t-1", "t-2"]
    assert "1 terminal(s) removed" in run("blocklist", "remove", "terminal", "t-1")
    assert run("blocklist", "list", "terminal").split() == ["t-2"]
    # an id given twice is one id: Redis counts it once, and so does the message
    assert "1 terminal(s) added (0 already blocked)" in run(
        "blocklist", "add", "terminal", "t-3", "t-3"
    )
    assert "1 terminal(s) removed (0 were not blocked)" in run(
        "blocklist", "remove", "terminal", "t-3", "t-3"
    )
    run("blocklist", "remove", "terminal", "t-2")


def test_the_lists_are_recorded_in_kafka_and_restored_in_a_redis_that_lost_them(
    stack: Settings,
) -> None:
    """A Redis restarted without persistence would otherwise unblock every card, silently."""
    url = stack.redis_url.rsplit("/", 1)[0] + "/14"
    env = {"STREAMER_REDIS_URL": url, "STREAMER_TOPIC_BLOCKLISTS": f"bl-{uuid.uuid4().hex[:8]}"}
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    topic = env["STREAMER_TOPIC_BLOCKLISTS"]
    nothing = f"nothing restored: Redis holds every id {topic} records\n"
    assert run("blocklist", "restore") == nothing
    run("blocklist", "add", "customer", "c-1", "c-2", "c-3")
    run("blocklist", "add", "terminal", "t-1")
    run("blocklist", "remove", "customer", "c-2")
    admin = redis.Redis.from_url(url)
    try:
        admin.flushdb()
        assert run("blocklist", "restore") == (
            f"restored from {topic}: 2 customer(s), 1 terminal(s) Redis lacked\n"
        )
        assert run("blocklist", "list", "customer").split() == ["c-1", "c-3"]
        assert run("blocklist", "list", "terminal").split() == ["t-1"]
        # lost again, and a card blocked before the restore: the others are set again too
        admin.flushdb()
        run("blocklist", "add", "customer", "c-9")
        assert run("blocklist", "restore") == (
            f"restored from {topic}: 2 customer(s), 1 terminal(s) Redis lacked\n"
        )
        assert run("blocklist", "list", "customer").split() == ["c-1", "c-3", "c-9"]
        # a removal is recorded: it is not undone
        run("blocklist", "remove", "customer", "c-1", "c-3", "c-9")
        assert run("blocklist", "restore").startswith("nothing restored")
        assert run("blocklist", "list", "customer").split() == []
        assert run("blocklist", "list", "terminal").split() == ["t-1"]
    finally:
        admin.flushdb()
        admin.close()


def test_unreachable_redis_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        cli, ["blocklist", "list", "customer"], env={"STREAMER_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert result.exit_code == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.output


def test_a_password_in_the_url_is_used_and_never_shown(
    stack: Settings, redis_user: tuple[str, str]
) -> None:
    user, password = redis_user
    runner = CliRunner()
    good = {"STREAMER_REDIS_URL": _url(stack, user, password, 13)}
    result = runner.invoke(cli, ["blocklist", "add", "customer", "c-acl"], env=good)
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["blocklist", "remove", "customer", "c-acl"], env=good)
    assert "1 customer(s) removed" in result.output

    bad = {"STREAMER_REDIS_URL": _url(stack, user, "not-" + password, 13)}
    result = runner.invoke(cli, ["blocklist", "list", "customer"], env=bad)
    assert result.exit_code == 1
    assert f"Redis at redis://{user}:***@" in result.output
    assert "refused the user name or password" in result.output
    assert password not in result.output


def test_a_worker_that_cannot_use_redis_says_so_at_start(
    stack: Settings, redis_user: tuple[str, str], registry: ModelRegistry
) -> None:
    user, password = redis_user
    for url, named in (
        (_url(stack, user, "not-" + password, 13), "refused the user name or password"),
        ("redis://127.0.0.1:1/0", "cannot reach Redis at redis://127.0.0.1:1/0"),
    ):
        last, stderr = refused_start(
            {**os.environ, "STREAMER_REDIS_URL": url, "STREAMER_MODEL_REGISTRY": str(registry.root)}
        )
        assert named in last, stderr
        assert password not in stderr


def test_a_change_kafka_does_not_take_is_made_and_said_so(stack: Settings) -> None:
    """Redis first (the workers apply it at once), then Kafka: when Kafka does not answer, the
    command fails saying what was done and what was not."""
    result, url = cli_without_kafka(stack, "blocklist", "add", "customer", "c-9")
    admin = redis.Redis.from_url(url)
    try:
        assert result.exit_code == 1, result.output
        said = (
            "the blocklist is changed in Redis, and the workers apply it, but the change could "
            "not be recorded on blocklists at 127.0.0.1:1: nothing listens at 127.0.0.1:1"
        )
        assert said in " ".join(result.output.split()), result.output
        assert admin.smembers("fs:blocklist:customer") == {b"c-9"}
    finally:
        admin.flushdb()
        admin.close()
