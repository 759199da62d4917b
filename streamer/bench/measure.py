"""Measuring one variant: its sustained throughput, and the worker's latency at a fixed rate."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from streamer.bench.config import VARIANTS, BenchConfig, BenchError, Log
from streamer.bench.infra import (
    Processes,
    Usage,
    end_total,
    free_port,
    memory,
    produce,
    timestamps,
    usage,
    usage_between,
    with_db,
)
from streamer.kafka import make_consumer, make_producer, running
from streamer.kafka_reading import partitions
from streamer.settings import Settings

__all__ = ["Run", "latency", "measure", "memory_figures", "passthrough_latency", "throughput"]

PROGRESS_EVERY_S = 5.0
STALL_TIMEOUT_S = 120.0


@dataclass
class Run:
    """Names and handles of one bench run."""

    settings: Settings
    config: BenchConfig
    env: Mapping[str, str]
    log: Log
    processes: Processes
    live: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    model: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    redis_dbs: dict[str, int] = field(default_factory=dict)
    #: the web port each variant's own process (on the shared input) serves /metrics on
    web_ports: dict[str, int] = field(default_factory=dict)

    @property
    def inputs(self) -> tuple[str, str]:
        """(transactions, labels): shared by all variants, each in its own consumer group."""
        return f"{self.prefix}-transactions", f"{self.prefix}-labels"

    @property
    def passthrough_live(self) -> str:
        """The input of the passthrough's latency phase: its own, so the worker never sees it."""
        return f"{self.prefix}-passthrough-live"

    def outputs(self, variant: str) -> tuple[str, str, str]:
        """(decisions, alerts, dead letters) of one variant."""
        base = f"{self.prefix}-{variant}"
        return f"{base}-decisions", f"{base}-alerts", f"{base}-dead-letters"

    def topics(self) -> list[str]:
        return [
            *self.inputs,
            self.passthrough_live,
            *(t for v in VARIANTS for t in self.outputs(v)),
        ]

    def variant_env(self, variant: str, transactions: str | None = None) -> dict[str, str]:
        """The environment of a variant's process: the bench's, with its own names.

        ``transactions`` gives it another input topic (and a consumer group of its own).
        """
        decisions, alerts, dead = self.outputs(variant)
        db = self.redis_dbs.get(variant)
        group = f"{self.prefix}-{variant}" + (f"-{transactions}" if transactions else "")
        port = free_port()
        if transactions is None:
            self.web_ports[variant] = port
        overrides = {
            "STREAMER_TOPIC_TRANSACTIONS": transactions or self.inputs[0],
            "STREAMER_TOPIC_LABELS": self.inputs[1],
            "STREAMER_TOPIC_DECISIONS": decisions,
            "STREAMER_TOPIC_ALERTS": alerts,
            "STREAMER_TOPIC_DEAD_LETTERS": dead,
            "STREAMER_CONSUMER_GROUP": group,
            "STREAMER_REDIS_URL": (
                self.settings.redis_url if db is None else with_db(self.settings.redis_url, db)
            ),
            "STREAMER_MODEL_REGISTRY": self.model["registry"],
            "STREAMER_WEB_PORT": str(port),
            "STREAMER_DATA_DIR": str((self.config.workdir / "data" / variant).resolve()),
        }
        # one scoring thread, as `fraud-streamer worker` sets it, unless the caller chose
        return {"OMP_NUM_THREADS": "1", **self.env, **overrides}


def throughput(timestamps_ms: list[int], started: float) -> dict[str, Any]:
    """Sustained rate from output timestamps; ``started`` is the process start (epoch s)."""
    if not timestamps_ms:
        return {"events": 0, "seconds": None, "events_per_s": None, "startup_s": None}
    first, last = min(timestamps_ms), max(timestamps_ms)
    after_first = sum(1 for t in timestamps_ms if t > first)
    span = (last - first) / 1000
    if after_first and span > 0:
        rate = after_first / span
    else:  # everything landed in one millisecond: fall back to the time since start
        rate = len(timestamps_ms) / max(last / 1000 - started, 1e-3)
    return {
        "events": len(timestamps_ms),
        "seconds": round(span, 3),
        "events_per_s": round(rate, 1),
        "startup_s": round(first / 1000 - started, 2),
    }


async def _await_outputs(
    run: Run, variant: str, proc: subprocess.Popen[bytes], n: int, name: str | None = None
) -> dict[str, Any]:
    """Wait until ``variant`` has written ``n`` decisions; fail if it dies or stalls.

    ``name`` is the process's, when it is not the variant's. Returns the variant's CPU use
    from its first output to the last, and its memory (:func:`memory_figures`).
    """
    name = name or variant
    tps = partitions(run.outputs(variant)[0], run.settings.partitions)
    first: tuple[float, Usage, int] | None = None
    started_rss: tuple[float, float] | None = None
    async with running(make_consumer(run.settings, group_id=None)) as consumer:
        done, changed, next_report = 0, time.monotonic(), time.monotonic() + PROGRESS_EVERY_S
        while done < n:
            if proc.poll() is not None:
                raise BenchError(
                    f"{name} exited with code {proc.returncode} after {done:,} outputs:\n"
                    f"{run.processes.tail(name)}"
                )
            total = await end_total(consumer, tps)
            now = time.monotonic()
            if total != done:
                done, changed = total, now
                if first is None:
                    first = (now, usage(proc.pid), done)
                    started_rss = memory(proc.pid)
            elif now - changed > STALL_TIMEOUT_S:
                raise BenchError(
                    f"{name} wrote nothing for {STALL_TIMEOUT_S:.0f} s ({done:,}/{n:,}):\n"
                    f"{run.processes.tail(name)}"
                )
            if now >= next_report:
                run.log(f"{name}: {done:,}/{n:,} outputs")
                next_report = now + PROGRESS_EVERY_S
            await asyncio.sleep(0.25)
    assert first is not None
    t0, before, n0 = first
    used = usage_between(before, usage(proc.pid), time.monotonic() - t0)
    cpu = used["cpu_s"]
    return (
        used
        | {"events_per_cpu_s": round((done - n0) / cpu, 1) if cpu else None}
        | memory_figures(started_rss, memory(proc.pid))
    )


def memory_figures(
    first: tuple[float, float] | None, last: tuple[float, float] | None
) -> dict[str, float | None]:
    """A variant's memory through the backlog, from :func:`memory` read at its first output
    (started, model loaded) and after its last: its peak resident size so far, and how much
    its resident size grew while it drained the backlog (what the backlog made it hold:
    buffers, held records; Python seldom gives memory back, so growth stays counted)."""
    if first is None or last is None:
        return {"rss_mib": None, "peak_rss_mib": None, "rss_growth_mib": None}
    return {
        "rss_mib": last[0],
        "peak_rss_mib": last[1],
        "rss_growth_mib": round(last[0] - first[0], 1),
    }


async def measure(run: Run, variant: str, n: int) -> dict[str, Any]:
    """Start ``variant`` on the backlog, wait for ``n`` outputs, return its figures.

    The process is left running (the worker goes on to the latency phase); the caller stops it.
    """
    run.log(f"{variant}: started, waiting for {n:,} outputs")
    started = time.time()
    proc = run.processes.start(variant, VARIANTS[variant][1], run.variant_env(variant))
    cpu = await _await_outputs(run, variant, proc, n)
    decisions, alerts, _ = run.outputs(variant)
    result = throughput(await timestamps(run.settings, decisions), started) | cpu
    async with running(make_consumer(run.settings, group_id=None)) as consumer:
        result["alerts"] = await end_total(consumer, partitions(alerts, run.settings.partitions))
    run.log(f"{variant}: {result['events_per_s']:,.0f} events/s over {result['events']:,}")
    return result


def busy_seconds(run: Run, variant: str) -> float | None:
    """The variant's ``streamer_busy_seconds_total`` (how long its agent has been busy), or
    None when it exports none (the baselines) or does not answer."""
    port = run.web_ports.get(variant)
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "streamer_busy_seconds_total":
                return float(sample.value)
    return None


async def latency(
    run: Run, variant: str = "worker", *, process: str | None = None, topic: str | None = None
) -> dict[str, Any]:
    """Send the live events at a fixed rate to a caught-up variant; time each output.

    ``topic`` is where they go (the shared input unless given), ``process`` the name of the
    process whose CPU use is reported (the variant's unless given). The worker's latencies are
    also split in three with each decision's own ``processing_ms`` and its Kafka timestamp (set
    when the worker handed it to its producer): waiting to be consumed and batched, the
    pipeline, then publishing until this consumer has it. When the broker acknowledged each
    send is timed too (this process's producer: the load's own share of the first stage, and
    of any slow second, on a busy machine).
    """
    settings, config = run.settings, run.config
    # transaction id -> (consumed here, output's Kafka timestamp, its processing_ms or NaN)
    received: dict[str, tuple[float, float, float]] = {}
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}

    def ack_timer(tid: str) -> Callable[[asyncio.Future[Any]], None]:
        return lambda future: acked.__setitem__(tid, time.time())

    def busy() -> float | None:
        # the variant's own process only: one on another topic is another process
        return busy_seconds(run, variant) if topic is None else None

    consumer = make_consumer(settings, group_id=None, fetch_max_wait_ms=100)
    # no linger: the producer's batching would count as the worker's latency
    producer = make_producer(settings, linger_ms=0)

    async def drain() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for r in records:
                    output = json.loads(r.value)
                    ms = float(output.get("processing_ms", "nan"))  # the passthrough has none
                    received[output["transaction_id"]] = (now, r.timestamp / 1000, ms)

    pid = run.processes.pid(process or variant)
    async with running(consumer), running(producer):
        tps = partitions(run.outputs(variant)[0], settings.partitions)
        consumer.assign(tps)
        for tp, end in (await consumer.end_offsets(tps)).items():
            consumer.seek(tp, end)
        reader = asyncio.create_task(drain())
        try:
            run.log(
                f"latency ({variant}): {len(run.live):,} events at {config.latency_rate:,.0f}/s"
            )
            pending = []
            busy_before = await asyncio.to_thread(busy)
            began = time.perf_counter()
            before = usage(pid)
            for i, (tid, key, value) in enumerate(run.live):
                ahead = i / config.latency_rate - (time.perf_counter() - began)
                if ahead > 0.001:
                    await asyncio.sleep(ahead)
                sent[tid] = time.time()
                future = await producer.send(topic or run.inputs[0], value=value, key=key)
                future.add_done_callback(ack_timer(tid))
                pending.append(future)
            send_seconds = time.perf_counter() - began
            await asyncio.gather(*pending)
            deadline = time.monotonic() + 30
            while len(received.keys() & sent.keys()) < len(sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            cpu = usage_between(before, usage(pid), time.perf_counter() - began)
            busy_after = await asyncio.to_thread(busy)
            elapsed = time.perf_counter() - began
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    matched = [t for t in sent if t in received]  # in send order
    if not matched:
        raise BenchError(
            f"no outputs for the latency phase of {variant}:\n"
            f"{run.processes.tail(process or variant)}"
        )
    busy_share = (
        round((busy_after - busy_before) / elapsed, 3)
        if busy_before is not None and busy_after is not None
        else None
    )
    return {
        "rate": config.latency_rate,
        "sent": len(sent),
        "achieved_rate": round(len(sent) / send_seconds, 1),
        **latency_summary(matched, sent, received, acked),
        # cpu_share ~1.0: the process used a whole core and could not have gone faster;
        # runqueue_wait_share: how long it was ready to run but had no CPU (other processes)
        "process": cpu,
        # how much of the phase the worker's agent was busy: near 1, bursts queue before it
        "agent_busy_share": busy_share,
    }


def latency_summary(
    matched: list[str],
    sent: dict[str, float],
    received: dict[str, tuple[float, float, float]],
    acked: dict[str, float],
) -> dict[str, Any]:
    """The latency phase's figures for the outputs ``matched`` (in send order): when each was
    sent, ``received`` (consumed here, the output's Kafka timestamp, its processing_ms or NaN)
    and ``acked`` by the broker, all in seconds since the epoch."""
    sent_at = np.array([sent[t] for t in matched])
    got_at, stamped, pipeline = np.array([received[t] for t in matched]).T
    latencies = (got_at - sent_at) * 1000
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    stages = {
        "consume_and_batch": (stamped - sent_at) * 1000 - pipeline,
        "pipeline": pipeline,
        "publish_and_deliver": (got_at - stamped) * 1000,
    }
    split = not np.isnan(pipeline).any()
    ack_ms = np.array([acked.get(t, np.nan) - sent[t] for t in matched]) * 1000
    # p50 per second of sending: a worker that cannot keep up shows a rising line
    second = (sent_at - sent_at[0]).astype(int)
    seconds = np.unique(second)
    timeline = [round(float(np.median(latencies[second == s])), 1) for s in seconds]
    ack_timeline = [round(float(np.nanmedian(ack_ms[second == s])), 1) for s in seconds]
    return {
        "received": len(latencies),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(latencies.max()), 2),
        # Kafka timestamps have millisecond resolution: stages are +-1 ms
        "stages_ms": {
            name: {q: round(float(np.percentile(v, int(q[1:]))), 1) for q in ("p50", "p99")}
            for name, v in stages.items()
        }
        if split
        else None,
        "p50_ms_per_second": timeline,
        # sent -> acknowledged by the broker (acks=all): the load's own producer and the broker
        "producer_ack_ms": {
            q: round(float(np.nanpercentile(ack_ms, int(q[1:]))), 1) for q in ("p50", "p99")
        },
        "producer_ack_p50_ms_per_second": ack_timeline,
    }


async def passthrough_latency(run: Run) -> dict[str, Any]:
    """The latency phase again, through the passthrough: what Kafka, Faust and this machine
    take of the worker's latency before it does any work, measured in the same run.

    A new passthrough process reads an input topic of its own, so that the worker never sees
    these events; it counts as ready once a first record has come through it.
    """
    name = "passthrough-latency"
    env = run.variant_env("passthrough", transactions=run.passthrough_live)
    run.log(f"{name}: started, waiting for a first record through it")
    proc = run.processes.start(name, VARIANTS["passthrough"][1], env)
    try:
        tps = partitions(run.outputs("passthrough")[0], run.settings.partitions)
        async with running(make_consumer(run.settings, group_id=None)) as consumer:
            before = await end_total(consumer, tps)
        _, key, value = run.live[0]  # a warm-up copy: the phase reads only what comes after it
        await produce(run.settings, run.passthrough_live, [(key, value)])
        await _await_outputs(run, "passthrough", proc, before + 1, name=name)
        return await latency(run, "passthrough", process=name, topic=run.passthrough_live)
    finally:
        run.processes.stop(name)
