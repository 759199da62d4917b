"""One bench run, from the simulated load to the clean-up."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamer.bench.config import VARIANTS, BenchConfig, Log
from streamer.bench.infra import (
    Processes,
    claim_redis_dbs,
    delete_topics,
    flush_redis_dbs,
    produce,
)
from streamer.bench.load import Load, Warmed, ensure_model, make_load, warm_state
from streamer.bench.measure import Run, latency, measure, passthrough_latency
from streamer.bench.model_cost import model_cost
from streamer.bench.report import verdicts
from streamer.kafka_topics import ensure_topics
from streamer.settings import Settings

__all__ = ["Prepared", "prepare_bench", "run_bench"]


@dataclass(frozen=True)
class Prepared:
    """What a run needs before it touches Kafka: its load, the model the worker serves, and
    that model's cost per call."""

    config: BenchConfig
    load: Load
    model: dict[str, str]
    cost: dict[str, Any]


def prepare_bench(settings: Settings, config: BenchConfig, *, log: Log) -> Prepared:
    """Simulate the load, find or train the model, time its calls: the minutes of CPU work.

    Why apart from :func:`run_bench`: it is synchronous, and inside the event loop Ctrl-C is
    only acted on at the next ``await`` — after the training. Called before the loop starts, it
    is interrupted at once.
    """
    config = replace(config, naive_events=min(config.naive_events, config.events))
    log(f"simulating {config.customers:,} customers, {config.terminals:,} terminals")
    load = make_load(config)
    model = ensure_model(settings, config, load, log)
    log(f"model {model['version']} ({model['source']} registry)")
    log("timing one model call per batch size")
    cost = model_cost(Path(model["registry"]), model["version"], load.history)
    return Prepared(config, load, model, cost)


async def run_bench(
    settings: Settings, prepared: Prepared, *, env: Mapping[str, str], log: Log
) -> dict[str, Any]:
    """Run all variants and the latency phase; returns the results (also meant for JSON).

    ``env`` is the environment the subprocesses start from (the bench adds its overrides).
    Topics and Redis databases the run creates are removed again, even on errors or Ctrl-C.
    """
    config, load, cost = prepared.config, prepared.load, prepared.cost
    processes = Processes(config.workdir / "logs")
    run = Run(settings, config, env, log, processes, live=load.live)
    run.model = prepared.model
    machine = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    created: list[str] = []
    claimed: list[int] = []
    warmed = Warmed(0, 0)
    throughput: dict[str, dict[str, Any]] = {}
    try:
        created = await ensure_topics(settings, run.topics())
        claimed = await claim_redis_dbs(settings.redis_url, 2)
        run.redis_dbs = {"naive": claimed[0], "worker": claimed[1]}
        warmed = await warm_state(settings.redis_url, claimed, load.history,
                                  run.model["version"], log)  # fmt: skip
        log(f"producing {config.events:,} transactions to {run.inputs[0]}")
        await produce(settings, run.inputs[0], load.backlog)

        throughput["passthrough"] = await measure(run, "passthrough", config.events)
        processes.stop("passthrough")
        throughput["worker"] = await measure(run, "worker", config.events)
        live = await latency(run)
        processes.stop("worker")
        throughput["naive"] = await measure(run, "naive", config.naive_events)
        processes.stop("naive")
        floor = await passthrough_latency(run)
    finally:
        processes.stop_all()
        try:
            if claimed:
                await flush_redis_dbs(settings.redis_url, claimed)
            if created:
                await delete_topics(settings, created)
        except Exception as exc:  # cleanup must not hide the error that got us here
            log(f"cleanup incomplete: {exc}")

    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "run": run.prefix,  # the prefix of the topics and consumer groups of this run
        "machine": machine,
        "settings": {
            "batch_max": settings.batch_max,
            "batch_within_ms": settings.batch_within_ms,
            "partitions": settings.partitions,
            "omp_num_threads": env.get("OMP_NUM_THREADS", "1"),
        },
        "load": {
            "events": config.events,
            "naive_events": config.naive_events,
            "customers": config.customers,
            "terminals": config.terminals,
            "seed": config.seed,
            "warm_transactions": warmed.transactions,
            # Redis memory one worker's copy of those windows takes (used_memory's growth)
            "warm_redis_bytes": warmed.bytes_per_db,
            "model_version": run.model["version"],
            "model_source": run.model["source"],
        },
        "throughput": {name: throughput[name] for name in VARIANTS},
        "latency": live,
        "latency_passthrough": floor,
        "model_cost": cost,
    } | verdicts(throughput, live)
