"""Fixtures of the integration tier beyond the shared worker fixtures (``tests/workers.py``):
Redis Clusters (one behind TLS), a Redis primary with Sentinels, a client on a single server or
a cluster, and slices of the shared history."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pandas as pd
import pytest

from streamer.local_redis_cluster import LocalCluster, start_cluster
from streamer.local_redis_sentinel import LocalSentinel, start_sentinel
from streamer.redis_client import RedisClient, connect
from streamer.redis_tls import PeerTls
from streamer.settings import Settings
from streamer.stack import LocalStack
from tests.integration.harness import WorkerEnv


@pytest.fixture(scope="session")
def redis_cluster(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """A Redis Cluster of three primaries on free ports, for the tests of cluster mode (after
    ``stack``, which has made sure redis-server is installed)."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_worker_env(worker_env: WorkerEnv, redis_cluster: LocalCluster) -> WorkerEnv:
    """``worker_env`` with its state on the test Redis Cluster (``STREAMER_REDIS_CLUSTER``),
    emptied first: the cluster has one database, shared by the tests that use it."""
    redis_cluster.flush()
    return on_cluster(worker_env, redis_cluster)


def on_cluster(worker_env: WorkerEnv, cluster: LocalCluster) -> WorkerEnv:
    """``worker_env`` with its state on ``cluster``; its workers stop with ``worker_env``."""
    return on_redis(worker_env, cluster.url(), cluster=True)


def on_redis(worker_env: WorkerEnv, url: str, *, cluster: bool = False) -> WorkerEnv:
    """``worker_env`` with its state at ``url`` (a cluster's, with ``cluster``)."""
    flag = "true" if cluster else "false"
    env = {**worker_env.env, "STREAMER_REDIS_URL": url, "STREAMER_REDIS_CLUSTER": flag}
    settings = worker_env.settings.model_copy(update={"redis_url": url, "redis_cluster": cluster})
    return dataclasses.replace(worker_env, settings=settings, env=env)


@pytest.fixture(params=["plain", "tls"])
def sentinel_redis(
    request: pytest.FixtureRequest, stack: Settings, tmp_path: Path
) -> Iterator[LocalSentinel]:
    """A Redis primary with a replica and three Sentinels, for one test (that may kill the
    primary): on plain TCP, then every server behind TLS only (``rediss+sentinel://``)."""
    tls = peer_tls(stack) if request.param == "tls" else None
    sentinel = start_sentinel(tmp_path / "sentinel", tls=tls)
    try:
        yield sentinel
    finally:
        sentinel.stop()


@pytest.fixture(params=["plain", "tls"])
def replicated_cluster(
    request: pytest.FixtureRequest, stack: Settings, tmp_path: Path
) -> Iterator[LocalCluster]:
    """A Redis Cluster of three primaries with a replica each, for one test (that may kill a
    node of it): on plain TCP, then behind TLS only — clients, the cluster bus and replication
    — as a managed cluster with in-transit encryption is."""
    tls = peer_tls(stack) if request.param == "tls" else None
    root = tmp_path / "replicated-cluster"
    cluster = start_cluster(root, replicas=1, first_port=17800, tls=tls)
    try:
        yield cluster
    finally:
        cluster.stop()


def peer_tls(stack: Settings) -> PeerTls:
    """The stack's certificates for Redis servers behind TLS that connect to each other (a
    cluster, Sentinels); fails (never skips) without them."""
    local = LocalStack(stack)
    server, listener = local.redis_tls(), local.secure_listener()
    if server is None or listener is None or not listener.client_keyfile.is_file():
        pytest.fail(
            "the stack has no Redis TLS certificate or no client certificate (`stack up` makes "
            "both, with keytool and openssl): `fraud-streamer stack down` and `stack up`.",
            pytrace=False,
        )
    return PeerTls(server, listener.client_certfile, listener.client_keyfile)


@pytest.fixture
def replay_slice(history: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """40 days of the history (inside the stores' retention, so nothing is trimmed)."""
    start = history["timestamp"].min() + pd.Timedelta(days=20)
    yield history[
        (history["timestamp"] >= start) & (history["timestamp"] < start + pd.Timedelta(days=40))
    ]


@pytest.fixture(params=["server", "cluster"])
async def redis(request: pytest.FixtureRequest, stack: Settings) -> AsyncIterator[RedisClient]:
    """A client on the stack's Redis, database 15, or on the test Redis Cluster (whose only
    database is 0), emptied before and after the test."""
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        client: RedisClient = connect(cluster.url(), cluster=True)
    else:
        client = connect(stack.redis_url.rsplit("/", 1)[0] + "/15")
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()
