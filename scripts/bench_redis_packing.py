"""Client CPU of the feature store's Redis round trip, with redis-py's and with hiredis packing;
with ``--cluster``, on the single server and on a local three-node Redis Cluster.

Run against the local stack (`fraud-streamer stack up`); it uses Redis databases 14 and 15 and
empties them. Each round enriches the same 300 batches of 50 events through
``RedisFeatureStore`` twice, once per client, and prints the client's CPU time per event (the
server's time is not counted). See ``streamer/redis_client.py`` for why the two differ.

With ``--cluster`` it starts a throwaway cluster (``streamer/local_redis_cluster.py``) and
compares, at ``--batch`` events per batch, the single server (hiredis packing) with the cluster
client: client CPU per event, and wall time per event (which includes the servers' work, spread
over three processes on the cluster).

    python scripts/bench_redis_packing.py [--rounds 3] [--redis redis://127.0.0.1:6379]
    python scripts/bench_redis_packing.py --cluster [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis

from streamer.features.definitions import FeatureEvent
from streamer.features.store import RedisFeatureStore
from streamer.local_redis_cluster import start_cluster
from streamer.redis_client import RedisClient, connect

BATCHES, BATCH = 300, 50


def _events(seed: int, n: int) -> list[FeatureEvent]:
    rnd = random.Random(seed)
    start = 1_533_081_600_000
    return [
        FeatureEvent(
            f"tx-{seed}-{i}",
            f"c-{rnd.randrange(500)}",
            f"t-{rnd.randrange(1000)}",
            start + i * 8_000,
            round(rnd.uniform(1, 200), 2),
            False,
            False,
        )
        for i in range(n)
    ]


async def _per_event(
    make: Callable[[str], RedisClient], url: str, batch: int = BATCH
) -> tuple[float, float]:
    """(client CPU, wall time) per event of enriching ``BATCHES`` batches of ``batch``."""
    client = make(url)
    try:
        await client.flushdb()
        store = RedisFeatureStore(client)
        await store.enrich(_events(-1, 5))  # scripts loaded before timing
        batches = [_events(b, batch) for b in range(BATCHES)]
        cpu, wall = time.process_time(), time.perf_counter()
        for events in batches:
            await store.enrich(events)
        n = BATCHES * batch
        return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n
    finally:
        await client.flushdb()
        await client.aclose()


async def _cpu_per_event(make: Callable[[str], Redis], url: str) -> float:
    return (await _per_event(make, url))[0]


async def _cluster_rounds(rounds: int, single: str, batch: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        cluster = start_cluster(Path(root))
        try:
            for round_ in range(1, rounds + 1):
                cpu_1, wall_1 = await _per_event(connect, single, batch)
                cpu_c, wall_c = await _per_event(
                    lambda url: connect(url, cluster=True), cluster.url(), batch
                )
                print(
                    f"round {round_}, batches of {batch}: client CPU per event "
                    f"{cpu_1 * 1e6:.1f} µs (single server), {cpu_c * 1e6:.1f} µs (3-node "
                    f"cluster), ratio {cpu_c / cpu_1:.2f}; wall per event {wall_1 * 1e6:.1f} "
                    f"/ {wall_c * 1e6:.1f} µs, ratio {wall_c / wall_1:.2f}"
                )
        finally:
            cluster.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--cluster", action="store_true", help="single server against a cluster")
    parser.add_argument("--batch", type=int, default=500, help="events per batch (--cluster)")
    args = parser.parse_args()
    if args.cluster:
        await _cluster_rounds(args.rounds, f"{args.redis}/15", args.batch)
        return
    for round_ in range(1, args.rounds + 1):
        python = await _cpu_per_event(Redis.from_url, f"{args.redis}/14")
        hiredis = await _cpu_per_event(connect, f"{args.redis}/15")
        print(
            f"round {round_}: client CPU per event {python * 1e6:.1f} µs (redis-py packing), "
            f"{hiredis * 1e6:.1f} µs (hiredis packing), ratio {hiredis / python:.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
