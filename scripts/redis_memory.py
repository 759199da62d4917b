"""How much Redis memory the worker's window state takes, for sizing a Redis.

Run against the local stack (`fraud-streamer stack up`); it uses Redis database 13 and empties
it. It simulates a population (the handbook's size by default), writes its history through
``RedisFeatureStore`` — the worker's own scripts, with each day's fraud labels applied as they
are reported, and each transaction's verdict pinned as the worker pins it (at the usual size:
``streamer.verdicts.sizing_verdicts``) — and prints the memory Redis reports for it once the
state has reached its steady size (longer than the retention, past which old entries are
trimmed), per customer and per terminal. The state grows with the population and its
traffic, not with time.

    python scripts/redis_memory.py [--days 50] [--customers 5000] [--terminals 10000]
"""

from __future__ import annotations

import argparse
import asyncio

import pandas as pd
from redis.asyncio import Redis
from tqdm import tqdm

from models.dataset import feature_events, fraud_marks, labels_from_simulation
from models.simulate import SimulationConfig, simulate
from streamer.features.definitions import RETENTION_DAYS
from streamer.features.store import RedisFeatureStore, pin_keys
from streamer.redis_client import connect
from streamer.verdicts import sizing_verdicts

BATCH = 500
VERSION = "20261203-161658-hist_gb"  # a model version of the usual length


async def _memory_by_kind(client: Redis, sample: int = 400) -> dict[str, tuple[int, int]]:
    """(keys, bytes) per kind of entity, bytes extrapolated from ``MEMORY USAGE`` samples."""
    kinds = {"customer": "fs:{c:*", "terminal": "fs:{t:*"}
    out = {}
    for kind, pattern in kinds.items():
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        sampled = keys[:: max(1, len(keys) // sample)]
        used = [await client.memory_usage(key) or 0 for key in sampled]
        out[kind] = (len(keys), int(sum(used) / max(1, len(used)) * len(keys)))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=RETENTION_DAYS + 6)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    args = parser.parse_args()
    frame = simulate(
        SimulationConfig(n_customers=args.customers, n_terminals=args.terminals, n_days=args.days)
    )
    labels = labels_from_simulation(frame)
    client = connect(f"{args.redis}/13")
    try:
        await client.flushdb()
        before = (await client.info("memory"))["used_memory"]
        store = RedisFeatureStore(client)
        days = frame["timestamp"].dt.floor("D")
        reported = pd.to_datetime(labels["reported_at"]).dt.floor("D")
        with tqdm(total=len(frame), unit="tx", desc="writing history") as bar:
            for day, rows in frame.groupby(days, sort=True):
                events = feature_events(rows)
                verdicts = sizing_verdicts(rows["is_fraud"].astype(bool).tolist(), VERSION)
                for start in range(0, len(events), BATCH):
                    chunk = slice(start, start + BATCH)
                    await store.enrich(events[chunk])
                    await store.pin(pin_keys(events[chunk]), verdicts[chunk])
                await store.apply_labels(fraud_marks(labels[reported == day]))
                bar.update(len(rows))
        after = (await client.info("memory"))["used_memory"]
        by_kind = await _memory_by_kind(client)
        customers, terminals = frame["customer_id"].nunique(), frame["terminal_id"].nunique()
        print(
            f"{len(frame):,} transactions over {args.days} days, {customers:,} customers, "
            f"{terminals:,} terminals: Redis used {(after - before) / 2**20:.1f} MiB more"
        )
        for kind, count in (("customer", customers), ("terminal", terminals)):
            keys, used = by_kind[kind]
            print(
                f"  {kind} state: {keys:,} keys, {used / 2**20:.1f} MiB, "
                f"{used / max(1, count) / 1024:.1f} KiB per {kind} "
                f"({len(frame) / max(1, count) / args.days:.1f} transactions a day each)"
            )
    finally:
        await client.flushdb()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
