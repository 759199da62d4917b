"""``fraud-streamer bench`` end to end at a tiny size: every figure is reported, nothing is left.

Only behaviour is checked. Timings depend on the machine and on what else runs on it, so the
targets are reported by the bench and never asserted here.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from models.registry import ModelRegistry
from streamer.kafka import client_options
from streamer.settings import Settings

VARIANTS = ("passthrough", "naive", "worker")


async def _topics_with_prefix(settings: Settings, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith(prefix)]
    finally:
        await admin.close()


@pytest.mark.timeout(480)
async def test_bench_reports_every_figure_and_cleans_up(
    stack: Settings, registry: ModelRegistry, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "STREAMER_MODEL_REGISTRY": str(registry.root)}
    command = [
        *(sys.executable, "-m", "streamer", "bench"),
        *("--events", "3000", "--naive-events", "300", "--latency-seconds", "3"),
        *("--out", str(out)),
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=450
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())

    throughput = results["throughput"]
    assert throughput["passthrough"]["events"] == 3000
    assert throughput["worker"]["events"] == 3000
    assert throughput["naive"]["events"] >= 300
    for name in VARIANTS:
        assert throughput[name]["events_per_s"] > 0, name
        assert throughput[name]["startup_s"] is not None, name
    assert results["ratios"]["c/a"] > 0
    assert results["ratios"]["c/b"] > 0

    latency = results["latency"]
    assert latency["sent"] == 3000
    assert latency["received"] == latency["sent"]
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert set(latency["stages_ms"]) == {"consume_and_batch", "pipeline", "publish_and_deliver"}
    floor = results["latency_passthrough"]  # the same events through the passthrough
    assert floor["sent"] == 3000
    assert floor["received"] == floor["sent"]
    assert 0 < floor["p50_ms"] <= floor["p99_ms"] <= floor["max_ms"]
    assert floor["stages_ms"] is None  # forwarded transactions carry no processing_ms
    assert 0 < latency["agent_busy_share"] < 1  # the worker reports how busy its agent was
    assert floor["agent_busy_share"] is None  # the passthrough has no such metric
    for lat in (latency, floor):  # when the broker acknowledged the load's own sends
        assert 0 < lat["producer_ack_ms"]["p50"] <= lat["producer_ack_ms"]["p99"]
        assert len(lat["producer_ack_p50_ms_per_second"]) == len(lat["p50_ms_per_second"])

    assert [t["metric"] for t in results["targets"]] == ["c/a", "c/b", "p99_ms"]
    assert all(isinstance(t["met"], bool) for t in results["targets"])
    assert results["machine"]["cpu_count"] >= 1
    assert results["machine"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert results["load"]["model_source"] == "configured"
    # (b) and (c) start on the state a worker in service has: the history's last weeks
    assert results["load"]["warm_transactions"] > 100_000
    assert "earlier transactions, as a worker in service does" in done.stdout
    # memory: each process's peak and its growth over the backlog, the worker's ratio to each
    # baseline, and what one worker's copy of the warm windows takes in Redis (334 bytes per
    # transaction in a run of the README's quicker command)
    for name in VARIANTS:
        assert throughput[name]["peak_rss_mib"] >= throughput[name]["rss_mib"] > 0, name
        assert throughput[name]["rss_growth_mib"] is not None, name
    assert results["ratios_peak_rss"]["c/a"] > 0 and results["ratios_peak_rss"]["c/b"] > 0
    per_transaction = results["load"]["warm_redis_bytes"] / results["load"]["warm_transactions"]
    assert 50 < per_transaction < 5_000, per_transaction
    assert "bytes per transaction" in done.stdout and "peak RSS: c/a" in done.stdout

    for label in ("(a) passthrough", "(b) naive", "(c) worker", "p99_ms"):
        assert label in done.stdout
    assert any(line.startswith("bench: ") for line in done.stderr.splitlines())
    assert not any(line.startswith("bench: ") for line in done.stdout.splitlines())

    # the run's topics are deleted (Kafka deletes asynchronously, so allow it a moment)
    deadline = time.monotonic() + 20
    while left := await _topics_with_prefix(stack, results["run"]):
        assert time.monotonic() < deadline, f"topics left behind: {left}"
        await asyncio.sleep(0.5)
