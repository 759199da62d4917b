"""The load every variant consumes, and the model the worker serves while consuming it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from streamer.bench.config import BenchConfig, Log
from streamer.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HISTORY_DAYS", "Load", "Warmed", "ensure_model", "make_load", "warm_state"]

#: fit_best with 14 training days needs 14 + 2 x 7 (label delay) + 7 (validation) + 31 days
TRAIN_DAYS, HISTORY_DAYS = 14, 66


@dataclass
class Load:
    """Training history, the backlog every variant consumes, and the latency phase's events."""

    history: pd.DataFrame
    backlog: list[tuple[bytes, bytes]]  # (key, value)
    live: list[tuple[str, bytes, bytes]]  # (transaction id, key, value)


def make_load(config: BenchConfig) -> Load:
    """Simulate a population; its first HISTORY_DAYS train a model, the days after are the load.

    The load follows the history in event time, so a model trained on the history scores data
    it has not seen, as in production.
    """
    import pandas as pd

    from models.simulate import SimulationConfig, simulate
    from streamer.replay import encode_transactions

    needed = config.events + config.live_events
    days = math.ceil(needed / config.customers) + 1  # about two transactions per customer-day
    while True:
        frame = simulate(
            SimulationConfig(
                n_customers=config.customers,
                n_terminals=config.terminals,
                n_days=HISTORY_DAYS + days,
                seed=config.seed,
            )
        )
        start = frame["timestamp"].min().floor("D") + pd.Timedelta(days=HISTORY_DAYS)
        later = frame[frame["timestamp"] >= start]
        if len(later) >= needed:
            break
        days *= 2
    later = later.sort_values(["timestamp", "transaction_id"], kind="stable").head(needed)
    encoded = [(key, value) for _, key, value in encode_transactions(later)]
    ids = later["transaction_id"].tolist()
    n = config.events
    return Load(
        history=frame[frame["timestamp"] < start],
        backlog=encoded[:n],
        live=[(tid, k, v) for tid, (k, v) in zip(ids[n:], encoded[n:], strict=True)],
    )


class Warmed(NamedTuple):
    """What :func:`warm_state` put in Redis: the transactions replayed, and the memory one
    database's copy of their windows takes (Redis's ``used_memory`` before and after, divided
    by the databases filled)."""

    transactions: int
    bytes_per_db: int


async def warm_state(
    url: str, dbs: list[int], history: pd.DataFrame, model_version: str, log: Log
) -> Warmed:
    """Fill the variants' Redis databases with the windows the history leaves.

    In production each script call finds its card's and its terminal's last weeks in Redis
    (about 60 transactions in a card's 30-day window at the book's rates), and the customer
    script's cost grows with them: on empty databases the backlog would be scored on windows of
    a few days, cheaper than any worker in service ever sees. So the history's last
    ``RETENTION_DAYS`` (what the store keeps) are replayed through the workers' own store,
    labels from their report time as ``rebuild-state`` does, into the first database, whose
    keys are then copied (``COPY``) into the others. What one copy takes is what a worker in
    service needs of Redis for that traffic, reported beside the rates.

    A worker in service has also pinned each transaction's verdict (``pin.lua``), and so are
    these, at their usual size (:func:`streamer.verdicts.sizing_verdicts`).
    """
    import pandas as pd

    from models.dataset import feature_events, fraud_marks, labels_from_simulation
    from streamer.bench.infra import redis_used_bytes, with_db
    from streamer.features.definitions import RETENTION_DAYS
    from streamer.features.store import RedisFeatureStore, pin_keys
    from streamer.rebuild import replay_into
    from streamer.redis_client import connect
    from streamer.verdicts import sizing_verdicts

    since = history["timestamp"].max() - pd.Timedelta(days=RETENTION_DAYS)
    recent = history[history["timestamp"] >= since]
    events = feature_events(recent)
    marks = fraud_marks(labels_from_simulation(recent))
    log(f"warming Redis: the history's last {RETENTION_DAYS} days, {len(events):,} transactions")
    before = await redis_used_bytes(url)
    source = connect(with_db(url, dbs[0]))
    try:
        store = RedisFeatureStore(source)
        await replay_into(store, events, marks)
        verdicts = sizing_verdicts(recent["is_fraud"].astype(bool).tolist(), model_version)
        for start in range(0, len(events), 10_000):
            chunk = slice(start, start + 10_000)
            await store.pin(pin_keys(events[chunk]), verdicts[chunk])
        keys = [key async for key in source.scan_iter(count=1_000)]
        for db in dbs[1:]:
            for start in range(0, len(keys), 1_000):
                pipe = source.pipeline(transaction=False)
                for key in keys[start : start + 1_000]:
                    pipe.copy(key, key, destination_db=str(db))
                await pipe.execute()
    finally:
        await source.aclose()
    grown = await redis_used_bytes(url) - before
    return Warmed(len(events), max(grown, 0) // len(dbs))


def ensure_model(settings: Settings, config: BenchConfig, load: Load, log: Log) -> dict[str, str]:
    """The registry the worker will serve from, and its promoted version.

    The configured registry's promoted model when it computes this worker's features; else the
    bench's own registry, where a small model is trained on first use and reused afterwards.
    """
    from models.registry import ModelRegistry
    from streamer.features.definitions import FEATURE_NAMES

    own = config.workdir / "registry"
    for root, source in ((settings.model_registry, "configured"), (own, "bench")):
        registry = ModelRegistry(root)
        version = registry.current_for(FEATURE_NAMES)
        if version:
            registry.verify(version)
            return {"registry": str(root.resolve()), "version": version, "source": source}

    from models.dataset import build_features
    from models.train import fit_best

    log(f"no usable promoted model: training one on {len(load.history):,} transactions")
    features = build_features(load.history)
    result = fit_best(features, train_days=TRAIN_DAYS, candidates=["hist_gb"], log=log)
    registry = ModelRegistry(own)
    manifest = result.register(
        registry,
        training_data={"purpose": "bench", "rows": len(load.history), "seed": config.seed},
    )
    registry.promote(manifest.version)
    return {"registry": str(own.resolve()), "version": manifest.version, "source": "bench"}
