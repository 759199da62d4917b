"""Client CPU of the feature store's Redis round trip, with redis-py's and with hiredis packing.

Run against the local stack (`fraud-streamer stack up`); it uses Redis databases 14 and 15 and
empties them. Each round enriches the same 300 batches of 50 events through
``RedisFeatureStore`` twice, once per client, and prints the client's CPU time per event (the
server's time is not counted). See ``streamer/redis_client.py`` for why the two differ.

    python scripts/bench_redis_packing.py [--rounds 3] [--redis redis://127.0.0.1:6379]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable

from redis.asyncio import Redis

from streamer.features.definitions import FeatureEvent
from streamer.features.store import RedisFeatureStore
from streamer.redis_client import connect

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


async def _cpu_per_event(make: Callable[[str], Redis], url: str) -> float:
    client = make(url)
    try:
        await client.flushdb()
        store = RedisFeatureStore(client)
        await store.enrich(_events(-1, 5))  # scripts loaded before timing
        batches = [_events(b, BATCH) for b in range(BATCHES)]
        started = time.process_time()
        for batch in batches:
            await store.enrich(batch)
        return (time.process_time() - started) / (BATCHES * BATCH)
    finally:
        await client.flushdb()
        await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    args = parser.parse_args()
    for round_ in range(1, args.rounds + 1):
        python = await _cpu_per_event(Redis.from_url, f"{args.redis}/14")
        hiredis = await _cpu_per_event(connect, f"{args.redis}/15")
        print(
            f"round {round_}: client CPU per event {python * 1e6:.1f} µs (redis-py packing), "
            f"{hiredis * 1e6:.1f} µs (hiredis packing), ratio {hiredis / python:.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
