"""The benchmark behind ``fraud-streamer bench``: same-run ratios, not absolute numbers.

One run produces ONE backlog of simulated transactions into a fresh input topic and lets three
consumers, one after the other and each in its own consumer group (so each starts with the full
backlog) and, where it keeps state, its own empty Redis database, work through it:

(a) passthrough — consume in the worker's batches and forward, no work (``streamer.bench_agents``);
(b) naive — one event at a time, awaiting every send (``streamer.bench_agents``);
(c) the real worker (``python -m streamer worker``).

Throughput is read from Kafka, not from the processes: the outputs a variant wrote after its
first output millisecond, divided by the time from its first to its last output record's
timestamp (set by the variant's producer at send time). That leaves out start-up — process,
imports, group join, model load — which differs between variants and says nothing about
sustained speed; the start-up time is reported beside it. Absolute rates depend on the machine
and on what else runs on it, which is why the targets are ratios measured in the same run.

Latency is measured on the worker once it has drained the backlog: new transactions are sent at
a fixed rate, and each one's latency is the time its decision is consumed here minus the time it
was handed to the producer (both ``time.time()`` on this machine).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from streamer.kafka import client_options, ensure_topics, make_consumer, make_producer
from streamer.settings import Settings

__all__ = ["TARGETS", "BenchConfig", "BenchError", "Target", "render", "run_bench"]

Log = Callable[[str], object]

#: fit_best with 14 training days needs 14 + 2 x 7 (label delay) + 7 (validation) + 31 days
TRAIN_DAYS, HISTORY_DAYS = 14, 66
PROGRESS_EVERY_S = 5.0
STALL_TIMEOUT_S = 120.0


class BenchError(Exception):
    """The bench could not measure; the message says what went wrong."""


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """Size of one run; the output folder also holds logs, a private registry and Faust data."""

    events: int = 100_000
    naive_events: int = 5_000
    latency_rate: float = 1_000.0
    latency_seconds: float = 20.0
    out: Path = Path("bench-results/bench.json")
    customers: int = 5_000
    terminals: int = 10_000
    seed: int = 0

    @property
    def workdir(self) -> Path:
        return self.out.parent

    @property
    def live_events(self) -> int:
        return max(1, round(self.latency_rate * self.latency_seconds))


@dataclass(frozen=True)
class Target:
    """A goal the design sets; reported as met or missed, never asserted."""

    metric: str
    op: str  # ">=" or "<="
    threshold: float

    def met(self, value: float | None) -> bool | None:
        if value is None or math.isnan(value):
            return None
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


TARGETS = (Target("c/a", ">=", 0.5), Target("c/b", ">=", 10.0), Target("p99_ms", "<=", 25.0))

VARIANTS = {
    "passthrough": ("(a) passthrough", ["-m", "streamer.bench_agents", "passthrough"]),
    "naive": ("(b) naive, 1 at a time", ["-m", "streamer.bench_agents", "naive"]),
    "worker": ("(c) worker", ["-m", "streamer", "worker", "-l", "info"]),
}
# Log level "info" on purpose: at "warn" and above Faust's worker keeps its start-up spinner and
# sets the root logger to DEBUG, so every debug() call on the hot path builds a LogRecord.


# --- the load -------------------------------------------------------------------------------
@dataclass
class Load:
    """Training history, the backlog every variant consumes, and the latency phase's events."""

    history: Any  # pandas DataFrame of the days before the load
    backlog: list[tuple[bytes, bytes]]
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


def ensure_model(settings: Settings, config: BenchConfig, load: Load, log: Log) -> dict[str, str]:
    """The registry the worker will serve from, and its promoted version.

    The configured registry's promoted model when it computes this worker's features; else the
    bench's own registry, where a small model is trained on first use and reused afterwards.
    """
    from models.registry import ModelRegistry
    from streamer.features.definitions import FEATURE_NAMES

    candidates = ((settings.model_registry, "configured"), (config.workdir / "registry", "bench"))
    for root, source in candidates:
        registry = ModelRegistry(root)
        version = registry.current_version()
        if version and tuple(registry.manifest(version).features) == FEATURE_NAMES:
            registry.verify(version)
            return {"registry": str(root.resolve()), "version": version, "source": source}

    from models.dataset import build_features
    from models.train import fit_best

    root = config.workdir / "registry"
    log(f"no usable promoted model: training one on {len(load.history):,} transactions")
    features = build_features(load.history)
    result = fit_best(features, train_days=TRAIN_DAYS, candidates=["hist_gb"], log=log)
    manifest = ModelRegistry(root).register(
        result.estimator,
        algorithm=result.candidate,
        features=FEATURE_NAMES,
        training_data={"purpose": "bench", "rows": len(load.history), "seed": config.seed},
        metrics={"validation": result.validation, "params": result.params},
        baseline=result.baseline,
    )
    ModelRegistry(root).promote(manifest.version)
    return {"registry": str(root.resolve()), "version": manifest.version, "source": "bench"}


# --- processes ------------------------------------------------------------------------------
class Processes:
    """The variants' subprocesses; whatever happens, ``stop_all`` leaves none running.

    Each runs in its own session, so a Ctrl-C reaches the bench only and the bench stops them
    in order (SIGTERM, then SIGKILL after a grace period).
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *args],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._running[name] = (proc, log)
        return proc

    def pid(self, name: str) -> int:
        return self._running[name][0].pid

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, name: str, grace_s: float = 20.0) -> None:
        entry = self._running.pop(name, None)
        if entry is None:
            return
        proc, log = entry
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name)


# --- Kafka and Redis helpers ----------------------------------------------------------------
def _partitions(topic: str, count: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(count)]


async def _end_total(consumer: Any, tps: list[TopicPartition]) -> int:
    return sum((await consumer.end_offsets(tps)).values())


async def _produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for start in range(0, len(records), 10_000):
            chunk = records[start : start + 10_000]
            await asyncio.gather(*[await producer.send(topic, value=v, key=k) for k, v in chunk])
    finally:
        await producer.stop()


async def _timestamps(settings: Settings, topic: str) -> list[int]:
    """Every record's Kafka timestamp (ms), read from the beginning to the current end."""
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = _partitions(topic, settings.partitions)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[int] = []
        while len(out) < sum(ends.values()):
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            for tp, records in batch.items():
                out.extend(r.timestamp for r in records if r.offset < ends[tp])
        return out
    finally:
        await consumer.stop()


async def _delete_topics(settings: Settings, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


async def _claim_redis_dbs(url: str, count: int) -> list[int]:
    """Empty databases other than the configured one, from the top (tests count from 1 up)."""
    client = Redis.from_url(url)
    try:
        try:
            databases = int((await client.config_get("databases"))["databases"] or 16)
        except Exception:
            databases = 16
        own = int(client.connection_pool.connection_kwargs.get("db", 0))
    finally:
        await client.aclose()
    free: list[int] = []
    for db in range(databases - 1, -1, -1):
        if db == own:
            continue
        probe = Redis.from_url(_with_db(url, db))
        try:
            if await probe.dbsize() == 0:
                free.append(db)
        finally:
            await probe.aclose()
        if len(free) == count:
            return free
    raise BenchError(f"need {count} empty Redis databases besides {url}; found {free}")


async def _flush(url: str, dbs: list[int]) -> None:
    for db in dbs:
        client = Redis.from_url(_with_db(url, db))
        try:
            await client.flushdb()
        finally:
            await client.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- measuring ------------------------------------------------------------------------------
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

    @property
    def inputs(self) -> tuple[str, str]:
        return f"{self.prefix}-transactions", f"{self.prefix}-labels"

    def outputs(self, variant: str) -> tuple[str, str, str]:
        """(decisions, alerts, dead letters) of one variant."""
        base = f"{self.prefix}-{variant}"
        return f"{base}-decisions", f"{base}-alerts", f"{base}-dead-letters"

    def topics(self) -> list[str]:
        return [*self.inputs, *(t for v in VARIANTS for t in self.outputs(v))]

    def variant_env(self, variant: str) -> dict[str, str]:
        decisions, alerts, dead = self.outputs(variant)
        db = self.redis_dbs.get(variant, 0)
        overrides = {
            "STREAMER_TOPIC_TRANSACTIONS": self.inputs[0],
            "STREAMER_TOPIC_LABELS": self.inputs[1],
            "STREAMER_TOPIC_DECISIONS": decisions,
            "STREAMER_TOPIC_ALERTS": alerts,
            "STREAMER_TOPIC_DEAD_LETTERS": dead,
            "STREAMER_CONSUMER_GROUP": f"{self.prefix}-{variant}",
            "STREAMER_REDIS_URL": _with_db(self.settings.redis_url, db),
            "STREAMER_MODEL_REGISTRY": self.model["registry"],
            "STREAMER_WEB_PORT": str(_free_port()),
            "STREAMER_DATA_DIR": str((self.config.workdir / "data" / variant).resolve()),
        }
        return {"OMP_NUM_THREADS": "1", **self.env, **overrides}


Usage = tuple[float, float] | None


def usage(pid: int) -> Usage:
    """(CPU seconds, seconds runnable but waiting for a CPU) of a running process so far.

    Linux only (/proc), None elsewhere. The wait is the main thread's, where the event loop
    runs: on a shared machine it is the part of the latency that no code change removes.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        schedstat = Path(f"/proc/{pid}/schedstat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu, int(schedstat.split()[1]) / 1e9


def usage_between(before: Usage, after: Usage, seconds: float) -> dict[str, float | None]:
    """CPU used and run-queue wait between two snapshots, as shares of one core's time."""
    if before is None or after is None or after[0] <= before[0] or seconds <= 0:
        return {"cpu_s": None, "cpu_share": None, "runqueue_wait_share": None}
    return {
        "cpu_s": round(after[0] - before[0], 2),
        "cpu_share": round((after[0] - before[0]) / seconds, 2),
        "runqueue_wait_share": round((after[1] - before[1]) / seconds, 2),
    }


async def _await_outputs(
    run: Run, variant: str, proc: subprocess.Popen[bytes], n: int
) -> dict[str, Any]:
    """Wait until ``variant`` has written ``n`` decisions; fail if it dies or stalls.

    Returns the variant's CPU use from its first output to the last: on a shared machine,
    events per CPU-second moves less with the neighbours' load than events per second does.
    """
    tps = _partitions(run.outputs(variant)[0], run.settings.partitions)
    consumer = make_consumer(run.settings, group_id=None)
    await consumer.start()
    first: tuple[float, Usage, int] | None = None
    try:
        done, changed, next_report = 0, time.monotonic(), time.monotonic() + PROGRESS_EVERY_S
        while done < n:
            if proc.poll() is not None:
                raise BenchError(
                    f"{variant} exited with code {proc.returncode} after {done:,} outputs:\n"
                    f"{run.processes.tail(variant)}"
                )
            total = await _end_total(consumer, tps)
            now = time.monotonic()
            if total != done:
                done, changed = total, now
                if first is None:
                    first = (now, usage(proc.pid), done)
            elif now - changed > STALL_TIMEOUT_S:
                raise BenchError(
                    f"{variant} wrote nothing for {STALL_TIMEOUT_S:.0f} s ({done:,}/{n:,}):\n"
                    f"{run.processes.tail(variant)}"
                )
            if now >= next_report:
                run.log(f"{variant}: {done:,}/{n:,} outputs")
                next_report = now + PROGRESS_EVERY_S
            await asyncio.sleep(0.25)
    finally:
        await consumer.stop()
    assert first is not None
    t0, before, n0 = first
    used = usage_between(before, usage(proc.pid), time.monotonic() - t0)
    cpu = used["cpu_s"]
    return used | {"events_per_cpu_s": round((done - n0) / cpu, 1) if cpu else None}


async def _measure(run: Run, variant: str, n: int) -> dict[str, Any]:
    """Start ``variant`` on the backlog, wait for ``n`` outputs, return its figures.

    The process is left running (the worker goes on to the latency phase); the caller stops it.
    """
    run.log(f"{variant}: started, waiting for {n:,} outputs")
    started = time.time()
    proc = run.processes.start(variant, VARIANTS[variant][1], run.variant_env(variant))
    cpu = await _await_outputs(run, variant, proc, n)
    decisions, alerts, _ = run.outputs(variant)
    result = throughput(await _timestamps(run.settings, decisions), started) | cpu
    consumer = make_consumer(run.settings, group_id=None)
    await consumer.start()
    try:
        result["alerts"] = await _end_total(consumer, _partitions(alerts, run.settings.partitions))
    finally:
        await consumer.stop()
    run.log(f"{variant}: {result['events_per_s']:,.0f} events/s over {result['events']:,}")
    return result


async def _latency(run: Run) -> dict[str, Any]:
    """Send the live events at a fixed rate to the caught-up worker; time each decision.

    Each latency is also split in three with the decision's own ``processing_ms`` and its Kafka
    timestamp (set when the worker handed it to its producer): waiting to be consumed and
    batched, the pipeline, then publishing until this consumer has it.
    """
    settings, config = run.settings, run.config
    tps = _partitions(run.outputs("worker")[0], settings.partitions)
    consumer = make_consumer(settings, group_id=None, fetch_max_wait_ms=100)
    await consumer.start()
    consumer.assign(tps)
    for tp, end in (await consumer.end_offsets(tps)).items():
        consumer.seek(tp, end)
    # transaction id -> (consumed here, decision's Kafka timestamp, its processing_ms)
    received: dict[str, tuple[float, float, float]] = {}

    async def drain() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for r in records:
                    decision = json.loads(r.value)
                    tid, ms = decision["transaction_id"], float(decision["processing_ms"])
                    received[tid] = (now, r.timestamp / 1000, ms)

    reader = asyncio.create_task(drain())
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    sent: dict[str, float] = {}
    try:
        load = run.live
        run.log(f"latency: {len(load):,} events at {config.latency_rate:,.0f}/s")
        pending = []
        began = time.perf_counter()
        before = usage(run.processes.pid("worker"))
        for i, (tid, key, value) in enumerate(load):
            ahead = i / config.latency_rate - (time.perf_counter() - began)
            if ahead > 0.001:
                await asyncio.sleep(ahead)
            sent[tid] = time.time()
            pending.append(await producer.send(run.inputs[0], value=value, key=key))
        send_seconds = time.perf_counter() - began
        await asyncio.gather(*pending)
        deadline = time.monotonic() + 30
        while len(received.keys() & sent.keys()) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        worker = usage_between(
            before, usage(run.processes.pid("worker")), time.perf_counter() - began
        )
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
        await consumer.stop()
    matched = [t for t in sent if t in received]  # in send order
    if not matched:
        raise BenchError(f"no decisions for the latency phase:\n{run.processes.tail('worker')}")
    sent_at = np.array([sent[t] for t in matched])
    got_at, stamped, pipeline = np.array([received[t] for t in matched]).T
    latencies = (got_at - sent_at) * 1000
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    stages = {
        "consume_and_batch": (stamped - sent_at) * 1000 - pipeline,
        "pipeline": pipeline,
        "publish_and_deliver": (got_at - stamped) * 1000,
    }
    # p50 per second of sending: a worker that cannot keep up shows a rising line
    second = (sent_at - sent_at[0]).astype(int)
    timeline = [round(float(np.median(latencies[second == s])), 1) for s in np.unique(second)]
    return {
        "rate": config.latency_rate,
        "sent": len(sent),
        "received": len(latencies),
        "achieved_rate": round(len(sent) / send_seconds, 1),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(latencies.max()), 2),
        # Kafka timestamps have millisecond resolution: stages are +-1 ms
        "stages_ms": {
            name: {q: round(float(np.percentile(v, int(q[1:]))), 1) for q in ("p50", "p99")}
            for name, v in stages.items()
        },
        # cpu_share ~1.0: the worker used a whole core and could not have gone faster;
        # runqueue_wait_share: how long it was ready to run but had no CPU (other processes)
        "worker": worker,
        "p50_ms_per_second": timeline,
    }


async def run_bench(
    settings: Settings, config: BenchConfig, *, env: Mapping[str, str], log: Log
) -> dict[str, Any]:
    """Run all variants and the latency phase; returns the results (also meant for JSON).

    ``env`` is the environment the subprocesses start from (the bench adds its overrides).
    Topics and Redis databases the run creates are removed again, even on errors or Ctrl-C.
    """
    config = replace(config, naive_events=min(config.naive_events, config.events))
    log(f"simulating {config.customers:,} customers, {config.terminals:,} terminals")
    load = make_load(config)
    processes = Processes(config.workdir / "logs")
    run = Run(settings, config, env, log, processes, live=load.live)
    run.model = ensure_model(settings, config, load, log)
    log(f"model {run.model['version']} ({run.model['source']} registry)")
    machine = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    created_topics: list[str] = []
    claimed: list[int] = []
    results: dict[str, Any] = {}
    try:
        created_topics = await ensure_topics(settings, run.topics())
        claimed = await _claim_redis_dbs(settings.redis_url, 2)
        run.redis_dbs = {"naive": claimed[0], "worker": claimed[1]}
        log(f"producing {config.events:,} transactions to {run.inputs[0]}")
        await _produce(settings, run.inputs[0], load.backlog)

        results["passthrough"] = await _measure(run, "passthrough", config.events)
        processes.stop("passthrough")
        results["worker"] = await _measure(run, "worker", config.events)
        latency = await _latency(run)
        processes.stop("worker")
        results["naive"] = await _measure(run, "naive", config.naive_events)
        processes.stop("naive")
    finally:
        processes.stop_all()
        try:
            if claimed:
                await _flush(settings.redis_url, claimed)
            if created_topics:
                await _delete_topics(settings, created_topics)
        except Exception as exc:  # cleanup must not hide the error that got us here
            log(f"cleanup incomplete: {exc}")

    rate = {k: v["events_per_s"] for k, v in results.items()}
    values = {
        "c/a": rate["worker"] / rate["passthrough"],
        "c/b": rate["worker"] / rate["naive"],
        "p99_ms": latency["p99_ms"],
    }
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
            "model_version": run.model["version"],
            "model_source": run.model["source"],
        },
        "throughput": {name: results[name] for name in VARIANTS},
        "ratios": {"c/a": round(values["c/a"], 3), "c/b": round(values["c/b"], 2)},
        # the same ratios per CPU-second of each variant: less sensitive to neighbours' load
        "ratios_per_cpu_s": {
            "c/a": _ratio(results["worker"], results["passthrough"]),
            "c/b": _ratio(results["worker"], results["naive"]),
        },
        "latency": latency,
        "targets": [
            {
                "metric": t.metric,
                "op": t.op,
                "threshold": t.threshold,
                "value": round(values[t.metric], 3),
                "met": t.met(values[t.metric]),
            }
            for t in TARGETS
        ],
    }


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    x, y = a.get("events_per_cpu_s"), b.get("events_per_cpu_s")
    return round(x / y, 3) if x and y else None


# --- report ---------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "-"


def _num(value: float | None, spec: str, width: int) -> str:
    return f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}"


def _mark(met: bool | None) -> str:
    return {True: "pass", False: "MISS", None: "n/a"}[met]


def render(results: dict[str, Any]) -> str:
    """The human-readable table of one run's results."""
    machine, load = results["machine"], results["load"]
    lines = [
        f"fraud-streamer bench: {load['events']:,} transactions, model {load['model_version']}, "
        f"{machine['cpu_count']} CPUs, Python {machine['python']}",
        "",
        f"{'variant':<24}{'events':>9}{'seconds':>9}{'events/s':>10}{'per CPU-s':>11}"
        f"{'CPU used':>10}{'CPU wait':>10}{'start-up s':>12}",
    ]
    for name, (label, _) in VARIANTS.items():
        r = results["throughput"][name]
        lines.append(
            f"{label:<24}{r['events']:>9,}{_num(r['seconds'], '.2f', 9)}"
            f"{_num(r['events_per_s'], ',.0f', 10)}{_num(r.get('events_per_cpu_s'), ',.0f', 11)}"
            f"{_pct(r.get('cpu_share')):>10}{_pct(r.get('runqueue_wait_share')):>10}"
            f"{_num(r['startup_s'], '.1f', 12)}"
        )
    per_cpu = results["ratios_per_cpu_s"]
    lines += [
        f"per CPU-second: c/a {_num(per_cpu['c/a'], '.2f', 0)}, "
        f"c/b {_num(per_cpu['c/b'], '.1f', 0)}",
        "CPU used / CPU wait: share of one core's time the process ran / was ready to run but "
        "had no CPU",
    ]
    if load["naive_events"] < load["events"]:
        lines.append(
            f"(b) ran on the first {load['naive_events']:,} events of the same backlog: "
            f"the rates compare, not the counts"
        )
    lat = results["latency"]
    lines += [
        "",
        f"latency at {lat['rate']:,.0f}/s (achieved {lat['achieved_rate']:,.0f}/s), "
        f"{lat['received']:,}/{lat['sent']:,} decisions:",
        f"  p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, "
        f"max {lat['max_ms']:.1f} ms",
        "  stages p50/p99: "
        + ", ".join(
            f"{name.replace('_', ' ')} {v['p50']:.1f}/{v['p99']:.1f} ms"
            for name, v in lat["stages_ms"].items()
        ),
        f"  worker CPU used {_pct(lat['worker']['cpu_share'])}, "
        f"CPU wait {_pct(lat['worker']['runqueue_wait_share'])}",
        "  median latency per second of sending: "
        + " ".join(f"{v:.0f}" for v in lat["p50_ms_per_second"])
        + " ms",
        "",
        f"{'target':<10}{'value':>10}{'goal':>10}  result",
    ]
    for t in results["targets"]:
        lines.append(
            f"{t['metric']:<10}{t['value']:>10.2f}{t['op'] + ' ' + format(t['threshold'], 'g'):>10}"
            f"  {_mark(t['met'])}"
        )
    return "\n".join(lines)
