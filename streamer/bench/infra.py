"""What a run starts and must clean up: subprocesses, topics, Redis databases.

Also how a subprocess's CPU use and memory are read, which the measurements report beside the
rates.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamer.bench.config import BenchError
from streamer.kafka import client_options, make_consumer, make_producer, running
from streamer.kafka_reading import partitions
from streamer.redis_client import combined_info, connect, node_infos
from streamer.settings import Settings

__all__ = [
    "Processes",
    "Usage",
    "claim_redis_dbs",
    "delete_topics",
    "end_total",
    "flush_redis_dbs",
    "free_port",
    "memory",
    "produce",
    "redis_used_bytes",
    "timestamps",
    "usage",
    "usage_between",
    "with_db",
]


class Processes:
    """The variants' subprocesses; whatever happens, ``stop_all`` leaves none running.

    Each runs in its own session, so a Ctrl-C reaches the bench only and the bench stops them
    in order (SIGTERM, then SIGKILL after a grace period).
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start ``python <args>``, its output going to ``<log_dir>/<name>.log``."""
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


def memory(pid: int) -> tuple[float, float] | None:
    """(resident MiB now, peak resident MiB since it started) of a running process.

    Linux only (/proc), None elsewhere. The peak (``VmHWM``) is what a container's memory
    limit must allow; it includes start-up (imports, loading the model).
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:  # "VmRSS:	  123456 kB"
        rss, peak = (int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))
    except (KeyError, ValueError, IndexError):
        return None
    return round(rss, 1), round(peak, 1)


# --- Kafka ----------------------------------------------------------------------------------
async def end_total(consumer: Any, tps: list[TopicPartition]) -> int:
    """How many records the partitions hold (the sum of their end offsets)."""
    return sum((await consumer.end_offsets(tps)).values())


async def produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Send (key, value) records as fast as Kafka takes them; all acknowledged on return."""
    producer = make_producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    async with running(producer):
        for start in range(0, len(records), 10_000):
            chunk = records[start : start + 10_000]
            await asyncio.gather(*[await producer.send(topic, value=v, key=k) for k, v in chunk])


async def timestamps(settings: Settings, topic: str) -> list[int]:
    """Every record's Kafka timestamp (ms), read from the beginning to the current end."""
    async with running(make_consumer(settings, group_id=None)) as consumer:
        tps = partitions(topic, settings.partitions)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[int] = []
        while len(out) < sum(ends.values()):
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            for tp, records in batch.items():
                out.extend(r.timestamp for r in records if r.offset < ends[tp])
        return out


async def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        await admin.delete_topics(names)
    finally:
        await admin.close()


# --- Redis ----------------------------------------------------------------------------------
def with_db(url: str, db: int) -> str:
    """The Redis URL of another database on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


async def claim_redis_dbs(url: str, count: int) -> list[int]:
    """Empty databases other than the configured one, from the top (tests count from 1 up)."""
    client = connect(url)
    try:
        try:
            databases = int((await client.config_get("databases"))["databases"] or 16)
        except Exception:  # CONFIG may be disabled on a managed server
            databases = 16
        own = int(client.connection_pool.connection_kwargs.get("db", 0))
    finally:
        await client.aclose()
    free: list[int] = []
    for db in range(databases - 1, -1, -1):
        if db == own:
            continue
        probe = connect(with_db(url, db))
        try:
            if await probe.dbsize() == 0:
                free.append(db)
        finally:
            await probe.aclose()
        if len(free) == count:
            return free
    raise BenchError(f"need {count} empty Redis databases besides {url}; found {free}")


async def flush_redis_dbs(url: str, dbs: list[int]) -> None:
    for db in dbs:
        client = connect(with_db(url, db))
        try:
            await client.flushdb()
        finally:
            await client.aclose()


async def redis_used_bytes(url: str) -> int:
    """The Redis server's ``used_memory``: every database's keys, and its own overhead."""
    client = connect(url)
    try:
        return int(combined_info(await node_infos(client, "memory"))["used_memory"])
    finally:
        await client.aclose()


def free_port() -> int:
    """A TCP port free on loopback right now (for a worker's web server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
