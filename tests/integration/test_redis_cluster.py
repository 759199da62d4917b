"""Cluster mode (``STREAMER_REDIS_CLUSTER``) against a real Redis Cluster: the state follows a
hash slot that moves between nodes, and a wrong setting or an unreachable node is named at
start. (The feature-store tests run on the cluster too, and a worker on it is SIGKILLed in
``test_worker_delivery.py``.)"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from models.registry import ModelRegistry
from streamer.features.keys import customer_window_key
from streamer.features.memory import InMemoryFeatureStore
from streamer.features.store import RedisFeatureStore
from streamer.local_redis_cluster import LocalCluster, slot_ranges, start_cluster
from streamer.redis_client import HiredisPackingConnection, connect, redis_problem
from streamer.settings import Settings
from tests.integration.harness import refused_start
from tests.integration.test_feature_store_parity import history_events


@pytest.fixture
async def cluster_client(redis_cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    redis_cluster.flush()
    client = connect(redis_cluster.url(), cluster=True)
    try:
        yield client
    finally:
        await client.aclose()
        redis_cluster.flush()


def _owner(slot: int, nodes: int) -> int:
    return next(i for i, (low, high) in enumerate(slot_ranges(nodes)) if low <= slot <= high)


def _move_slot(cluster: LocalCluster, slot: int, source: int, target: int) -> int:
    """Reshard one slot as ``redis-cli --cluster reshard`` does; returns how many keys moved."""
    source_id, target_id = cluster.node_id(source), cluster.node_id(target)
    with cluster.node(source) as src, cluster.node(target) as dst:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10_000)
        src.execute_command(
            "MIGRATE", "127.0.0.1", cluster.ports[target], "", 0, 5000, "KEYS", *keys
        )
    for i in range(len(cluster.ports)):
        with cluster.node(i) as node:
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    return len(keys)


async def test_the_state_follows_a_slot_that_moves_to_another_node(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    """A resharding between two batches: the client is told MOVED, follows the slot, and the
    features stay those of the in-memory twin, bit for bit."""
    online, offline = RedisFeatureStore(cluster_client), InMemoryFeatureStore()
    events, _ = history_events(11)
    got, want = [], []
    for k in range(0, len(events), 250):
        if k == 1000:
            slot = key_slot(customer_window_key("c1").encode())
            source = _owner(slot, len(redis_cluster.ports))
            target = (source + 1) % len(redis_cluster.ports)
            assert _move_slot(redis_cluster, slot, source, target) >= 2  # c1's keys, at least
        batch = events[k : k + 250]
        got.append((await online.enrich(batch)).features)
        want.append((await offline.enrich(batch)).features)
    np.testing.assert_array_equal(np.vstack(got), np.vstack(want))
    assert len(events) > 1250  # the move came mid-way
    with redis_cluster.node(target) as node:
        assert node.exists(customer_window_key("c1")) == 1  # it lives on the new node
    # every node holds state, and the nodes' connections pack commands with hiredis
    for i in range(len(redis_cluster.ports)):
        with redis_cluster.node(i) as node:
            assert node.dbsize() > 0
    assert {n.connection_class for n in cluster_client.get_nodes()} == {HiredisPackingConnection}


async def test_the_cluster_setting_must_match_the_server(
    stack: Settings, redis_cluster: LocalCluster
) -> None:
    cluster, single = redis_cluster.url(), stack.redis_url
    assert await redis_problem(cluster, cluster, cluster=True) is None
    for url in (cluster, redis_cluster.url(db=3)):
        problem = await redis_problem(url, url)
        assert problem is not None and "is a node of a Redis Cluster" in problem, problem
        assert "set STREAMER_REDIS_CLUSTER=true" in problem
    problem = await redis_problem(single, single, cluster=True)
    assert problem is not None and "is a single server" in problem, problem
    assert "unset STREAMER_REDIS_CLUSTER" in problem
    url = redis_cluster.url(db=3)
    problem = await redis_problem(url, url, cluster=True)
    assert problem is not None and "has only database 0" in problem, problem


def test_a_worker_pointed_at_a_cluster_node_without_the_setting_refuses_to_start(
    redis_cluster: LocalCluster, registry: ModelRegistry
) -> None:
    env = {
        **os.environ,
        "STREAMER_REDIS_URL": redis_cluster.url(),
        "STREAMER_MODEL_REGISTRY": str(registry.root),
    }
    env.pop("STREAMER_REDIS_CLUSTER", None)
    last, stderr = refused_start(env)
    assert "is a node of a Redis Cluster: set STREAMER_REDIS_CLUSTER=true" in last, stderr


async def test_a_cluster_node_that_does_not_answer_is_named(
    stack: Settings, tmp_path: Path
) -> None:
    cluster = start_cluster(tmp_path, first_port=17600)
    try:
        url = cluster.url()
        assert await redis_problem(url, url, cluster=True) is None
        down = cluster.ports[2]
        cluster.processes[2].terminate()
        cluster.processes[2].wait(10)
        problem = await redis_problem(url, url, timeout=2, cluster=True)
        assert problem is not None and str(down) in problem, problem
    finally:
        cluster.stop()
