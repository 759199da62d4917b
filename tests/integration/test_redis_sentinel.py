"""A Redis primary found through its Sentinels (``redis+sentinel://``), against real Sentinels:
the clients reach the primary they name, and each wrong URL is named at start. (A worker
rides out the primary's loss in ``test_worker_delivery.py``.)"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from models.registry import ModelRegistry
from streamer.cli import cli
from streamer.features.keys import blocklist_key
from streamer.local_redis_sentinel import LocalSentinel, start_sentinel
from streamer.redis_client import HiredisPackingSentinelConnection, connect, redis_problem
from streamer.settings import Settings
from tests.integration.harness import refused_start


@pytest.fixture(scope="module")
def sentinels(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    """A primary with a replica and three Sentinels, shared by this module (nothing kills
    a node of it here)."""
    local = start_sentinel(tmp_path_factory.mktemp("sentinel"), first_port=18700)
    try:
        yield local
    finally:
        local.stop()


async def test_the_client_reaches_the_primary_the_sentinels_name(
    sentinels: LocalSentinel,
) -> None:
    assert await redis_problem(sentinels.url(3), "R") is None
    client = connect(sentinels.url(3))
    try:
        await client.set("sentinel-probe", "1")
        assert client.connection_pool.connection_class is HiredisPackingSentinelConnection
    finally:
        await client.aclose()
    with sentinels.node(sentinels.primary(), db=3) as node:  # the URL's database, there
        assert node.get("sentinel-probe") == b"1"
        node.delete("sentinel-probe")


async def test_each_wrong_sentinel_url_is_named(sentinels: LocalSentinel) -> None:
    url = sentinels.url()
    wrong_name = url.replace("/fraud-streamer/", "/no-such-primary/")
    for bad, named in (
        (wrong_name, "monitor no primary named 'no-such-primary' (they monitor 'fraud-streamer')"),
        ("redis+sentinel://127.0.0.1:1/fraud-streamer", "no Sentinel answers for R"),
        ("redis+sentinel://127.0.0.1:1/", "is /<service>[/<db>]"),
        ("redis+sentinel://127.0.0.1:1/fraud-streamer/x", "is a number, not 'x'"),
    ):
        problem = await redis_problem(bad, "R", timeout=2)
        assert problem is not None and named in problem, (bad, problem)
    problem = await redis_problem(url, "R", cluster=True)
    assert problem is not None and "unset STREAMER_REDIS_CLUSTER" in problem, problem


def test_a_worker_with_a_wrong_primary_name_refuses_to_start(
    sentinels: LocalSentinel, registry: ModelRegistry
) -> None:
    env = {
        **os.environ,
        "STREAMER_REDIS_URL": sentinels.url().replace("/fraud-streamer/", "/typo/")
        + "?sentinel_password=s3cret",
        "STREAMER_MODEL_REGISTRY": str(registry.root),
    }
    env.pop("STREAMER_REDIS_CLUSTER", None)
    last, stderr = refused_start(env)
    assert "monitor no primary named 'typo'" in last, stderr
    assert "s3cret" not in stderr  # the Sentinels' password is masked in messages


def test_the_blocklist_and_status_work_through_the_sentinels(sentinels: LocalSentinel) -> None:
    env = {"STREAMER_REDIS_URL": sentinels.url(4)}
    runner = CliRunner()
    result = runner.invoke(cli, ["blocklist", "add", "customer", "c-sentinel"], env=env)
    assert result.exit_code == 0, result.output
    with sentinels.node(sentinels.primary(), db=4) as node:
        assert node.sismember(blocklist_key("customer"), "c-sentinel")
        node.delete(blocklist_key("customer"))
    result = runner.invoke(cli, ["status", "--json"], env=env)
    redis = json.loads(result.output)["checks"]["redis"]
    assert redis["ok"] and redis["detail"].startswith(sentinels.url(4)), redis
    where = f"127.0.0.1:{sentinels.ports[sentinels.primary()]}"  # which server it is now
    assert redis["data"]["primary"] == where, redis
    assert f"primary at {where} (as the Sentinels say)" in redis["detail"], redis
