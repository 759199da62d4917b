"""Helpers for tests that run the real worker: a worker subprocess handle, produce, consume."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from models.registry import ModelRegistry
from streamer.kafka import make_consumer, make_producer
from streamer.kafka_reading import consumer_group_state, read_to_end, topics_partitions
from streamer.replay import encode_transactions
from streamer.settings import Settings
from tests.prometheus import Samples, samples

__all__ = [
    "WorkerEnv",
    "consume_until",
    "decide_each_once",
    "produce",
    "refused_start",
    "run_cli",
    "wait_for",
    "wait_until_committed",
]


@dataclass
class WorkerEnv:
    """Settings of one test's isolated worker, and handles to what it starts."""

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # each worker's dashboard port

    def start_worker(self, loglevel: str = "warn", **overrides: str) -> subprocess.Popen[bytes]:
        """Start a worker; ``overrides`` (STREAMER_* variables) make a second one beside it."""
        log = (self.log_dir / f"worker-{len(self.processes)}.log").open("wb")
        env = {**self.env, **overrides}
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "worker", "-l", loglevel],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(proc)
        self.ports.append(int(env.get("STREAMER_WEB_PORT", self.settings.web_port)))
        return proc

    def summary(self, port: int | None = None) -> dict[str, Any] | None:
        """The dashboard summary of the worker on ``port`` (default: the first worker's)."""
        url = f"http://127.0.0.1:{port or self.settings.web_port}/api/summary"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except OSError:
            return None

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """The first worker's ``/healthz`` answer (status, body); None when it does not answer."""
        url = f"http://127.0.0.1:{self.settings.web_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:  # 503: its body says why
            return error.code, json.loads(error.read())
        except OSError:
            return None

    def metrics(self, port: int | None = None) -> Samples:
        """The Prometheus samples of the worker on ``port`` (default: the first worker's), by
        (name, sorted labels); {} when down."""
        url = f"http://127.0.0.1:{port or self.settings.web_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        return samples(text)

    def log(self, index: int = 0) -> str:
        """The whole log of the ``index``-th worker started."""
        return (self.log_dir / f"worker-{index}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.log_dir.glob("worker-*.log"))
        )

    def stalled(self) -> str:
        """The logs of a wait that timed out, with what each live worker is waiting on: its
        task dump (SIGUSR1, answered by its event loop) and its threads' stacks (SIGUSR2,
        answered even when that loop is stuck); a worker that writes no task dump within a few
        seconds has a blocked event loop."""
        paths = sorted(self.log_dir.glob("worker-*.log"))
        sizes = {p: p.stat().st_size for p in paths}
        live = [p for p in self.processes if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGUSR1)
        time.sleep(1)  # the thread dump after the task dump, not through it
        for proc in live:
            proc.send_signal(signal.SIGUSR2)
        time.sleep(2)
        parts = [f"{len(live)} of {len(self.processes)} workers still running"]
        for proc, port in zip(self.processes, self.ports, strict=True):
            if proc.poll() is None:  # lag 0, nothing held: what the test lacks was read
                parts.append(f"worker on port {port}: {self.summary(port)}")
        for path in paths:
            text = path.read_bytes().decode(errors="replace")
            before, dump = text[: sizes[path]], text[sizes[path] :]
            parts.append(f"--- {path.name}\n{before[-4000:]}\n--- dumps after the timeout:\n{dump}")
        return "\n".join(parts)

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cli_without_kafka(stack: Settings, *args: str) -> tuple[Result, str]:
    """Run ``fraud-streamer ARGS`` on database 14 of the stack's Redis with a Kafka nobody
    listens on (127.0.0.1:1), as a change Kafka does not take; returns its result and that
    database's URL (the caller empties it)."""
    from streamer.cli import cli

    url = stack.redis_url.rsplit("/", 1)[0] + "/14"
    env = {"STREAMER_REDIS_URL": url, "STREAMER_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    return CliRunner().invoke(cli, list(args), env=env), url


async def produce(
    settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]
) -> None:
    """Send (key, value) records and wait until Kafka has acknowledged all of them."""
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_until(
    settings: Settings,
    topic: str,
    *,
    ids: set[str] | None = None,
    count: int | None = None,
    field: str = "transaction_id",
    timeout: float = 120.0,
    worker: WorkerEnv | None = None,
    settled: bool = False,
) -> list[Any]:
    """Read a topic from the start until every id in ``ids`` (the value's ``field``) has
    been seen, or ``count`` records have; fail with the worker's logs on timeout.

    With ``settled``, then wait until the workers' group has committed all of its input and
    return every record of the topic up to its end at that point: what a worker published
    twice shows there however late it came (an output is acknowledged before the offset of
    the input that caused it is committed), where the first read stops at the last id."""
    consumer = make_consumer(settings, topic, group_id=None)
    await consumer.start()
    records: list[Any] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout

    def done() -> bool:
        if ids is not None and not seen >= ids:
            return False
        return count is None or len(records) >= count

    try:
        while not done():
            if time.monotonic() > deadline:
                logs = worker.stalled() if worker else ""
                pytest.fail(f"timed out reading {topic}: {len(records)} records\n{logs}")
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(messages)
                if ids is not None:
                    seen.update(json.loads(m.value).get(field) for m in messages)
    finally:
        await consumer.stop()
    if not settled:
        return records
    await wait_until_committed(settings, timeout=max(0.0, deadline - time.monotonic()) + 30,
                               worker=worker)  # fmt: skip
    everything: list[Any] = []
    await read_to_end(settings, topic, everything.append)
    return everything


async def wait_until_committed(
    settings: Settings, *, timeout: float, worker: WorkerEnv | None = None
) -> None:
    """Wait until the group of ``settings`` has committed every record of both input topics
    (what ``status`` reports as nothing left to read); fail with the workers' state if not."""
    topics = [settings.topic_transactions, settings.topic_labels]
    found = await topics_partitions(settings, topics)
    tps = [tp for t in topics for tp in found[t] or []]
    assert tps, f"neither {topics[0]} nor {topics[1]} exists: nothing can be committed"
    deadline = time.monotonic() + timeout
    while True:
        _, lag = await consumer_group_state(settings, settings.consumer_group, tps)
        if not any(lag.values()):
            return
        if time.monotonic() > deadline:
            logs = worker.stalled() if worker else ""
            pytest.fail(f"the group's uncommitted records stay at {lag}\n{logs}")
        await asyncio.sleep(0.5)


def private_registry(worker: WorkerEnv, registry: ModelRegistry, root: Path) -> ModelRegistry:
    """A copy of ``registry`` at ``root`` that the worker reads and follows closely (every
    half second), for a test that promotes, shadows or tampers without touching the others."""
    shutil.copytree(registry.root, root)
    worker.env["STREAMER_MODEL_REGISTRY"] = str(root)
    worker.env["STREAMER_MODEL_POLL_SECONDS"] = "0.5"
    return ModelRegistry(root)


def run_cli(worker: WorkerEnv, *args: str) -> str:
    """The output of a ``fraud-streamer`` command run with the worker's settings; it must
    succeed."""
    return run_cli_streams(worker, *args)[0]


def run_cli_streams(worker: WorkerEnv, *args: str) -> tuple[str, str]:
    """What a ``fraud-streamer`` command run with the worker's settings wrote to stdout and to
    stderr (where warnings go); it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def refused_start(env: dict[str, str]) -> tuple[str, str]:
    """Start ``fraud-streamer worker`` with ``env``, expecting it to refuse (status 1) before
    it runs; returns its one-line reason (click's ``Error:`` line) and all it wrote to stderr.

    The reason is looked for, not taken as the last line: when a TLS handshake was refused,
    aiokafka's failed connection may report an unretrieved future at interpreter exit, after
    it."""
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    reason = next((line for line in reversed(lines) if line.startswith("Error: ")), lines[-1])
    return reason, result.stderr


def wait_for(predicate: Any, *, timeout: float, what: str, worker: WorkerEnv) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{worker.stalled()}")
        time.sleep(0.2)


async def decide_each_once(
    worker: WorkerEnv, frame: pd.DataFrame, settings: Settings, **env: str
) -> None:
    """Produce the frame's transactions, start a worker with ``env`` (STREAMER_* overrides),
    and check it decides each of them exactly once and keeps running. ``settings`` are those
    of a client that reaches the same topics (with the same security settings)."""
    txs = [(k, v) for _, k, v in encode_transactions(frame)]
    await produce(settings, settings.topic_transactions, list(txs))
    worker.start_worker(**env)
    ids = set(frame["transaction_id"])
    records = await consume_until(
        settings, settings.topic_decisions, ids=ids, timeout=120, worker=worker, settled=True
    )
    decided = [json.loads(r.value)["transaction_id"] for r in records]
    assert sorted(decided) == sorted(ids)  # each one, once
    assert worker.processes[0].poll() is None, worker.logs()
