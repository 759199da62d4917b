"""Workers of one group exchange their event-time limits through a real Redis (single server
and cluster): each sees the earliest of the others', a stopped worker's entry is gone, and a
killed worker's stops counting once stale."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from streamer.features.keys import fleet_frontier_key
from streamer.fleet_frontier import REFRESH_S, FleetFrontier
from streamer.local_redis_cluster import LocalCluster
from streamer.redis_client import RedisClient, connect
from streamer.settings import Settings


@pytest.fixture(params=["server", "cluster"])
async def client(request: pytest.FixtureRequest, stack: Settings) -> AsyncIterator[RedisClient]:
    if request.param == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        redis = connect(cluster.url(), cluster=True)
    else:
        redis = connect(stack.redis_url)
    yield redis
    await redis.aclose()


async def _exchange(worker: FleetFrontier, frontier: int | None) -> int | None:
    await asyncio.sleep(REFRESH_S)  # past the last exchange: this one goes to Redis
    return await worker.exchange(lambda: frontier)


async def test_each_worker_is_bound_by_the_earliest_of_the_others(client: RedisClient) -> None:
    group = f"test-{uuid.uuid4().hex}"
    a, b, c = (FleetFrontier(client, group, name, stale_s=5.0, timeout_s=5.0) for name in "abc")
    try:
        assert await _exchange(a, 100) is None  # alone so far
        assert await _exchange(b, 300) == 100
        # a's last round trip is older than REFRESH_S: this one goes to Redis
        assert await a.exchange(lambda: 150) == 300
        # between two round trips a worker keeps the view it last read
        assert await b.exchange(lambda: 400) == 100
        assert await _exchange(c, None) == 150  # c holds nothing: it binds nobody
        assert await _exchange(b, 400) == 150
        await a.leave()  # a clean stop: gone at once
        assert await _exchange(b, 400) is None
        assert await _exchange(c, None) == 400
        assert 0 < await client.ttl(fleet_frontier_key(group)) <= 7 * 24 * 3600
    finally:
        await client.delete(fleet_frontier_key(group))


async def test_a_worker_that_stops_writing_stops_counting(client: RedisClient) -> None:
    group = f"test-{uuid.uuid4().hex}"
    killed = FleetFrontier(client, group, "killed", stale_s=0.5, timeout_s=5.0)
    alive = FleetFrontier(client, group, "alive", stale_s=0.5, timeout_s=5.0)
    try:
        await _exchange(killed, 100)
        assert await _exchange(alive, 900) == 100
        await asyncio.sleep(0.6)  # killed writes no more
        assert await _exchange(alive, 900) is None
        # ...and its entry is deleted with alive's next write
        await _exchange(alive, 900)
        assert set(await client.hkeys(fleet_frontier_key(group))) == {b"alive"}
    finally:
        await client.delete(fleet_frontier_key(group))
