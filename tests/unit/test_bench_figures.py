"""The bench's arithmetic and report, without Kafka or Redis (the run itself is an integration
test)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from models.registry import Manifest, ModelRegistry
from streamer.bench import render
from streamer.bench.infra import memory, usage_between, with_db
from streamer.bench.measure import latency_summary, memory_figures, throughput
from streamer.bench.model_cost import model_cost
from streamer.bench.report import verdicts
from streamer.cli import cli
from streamer.scoring import FLAT_MAX_ROWS


def test_throughput_counts_from_the_first_output_millisecond() -> None:
    # 3 outputs in the first millisecond, then 10 more over the next second
    stamps = [1_000_000] * 3 + [1_000_100 + 100 * i for i in range(10)]
    result = throughput(stamps, started=999.5)
    assert result["events"] == 13
    assert result["seconds"] == 1.0
    assert result["events_per_s"] == 10.0
    assert result["startup_s"] == 0.5


def test_throughput_of_one_millisecond_falls_back_to_time_since_start() -> None:
    result = throughput([2_000] * 4, started=1.0)
    assert result["events_per_s"] == 4.0
    assert throughput([], started=0.0)["events_per_s"] is None


def test_usage_between_is_a_share_of_one_core() -> None:
    assert usage_between((1.0, 0.5), (3.0, 1.5), 4.0) == {
        "cpu_s": 2.0,
        "cpu_share": 0.5,
        "runqueue_wait_share": 0.25,
    }
    assert usage_between(None, (3.0, 1.5), 4.0)["cpu_share"] is None


def test_memory_reads_the_resident_size_and_its_peak() -> None:
    first = memory(os.getpid())
    assert first is not None  # the bench runs on Linux, as this test does
    rss, peak = first
    assert 0 < rss <= peak
    held = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    grown = memory(os.getpid())
    assert grown is not None and grown[0] >= rss + 60 and grown[1] >= grown[0]
    del held
    assert memory(2**22 + 12345) is None  # no such process


def test_memory_figures_are_the_peak_and_the_growth_over_the_backlog() -> None:
    assert memory_figures((100.0, 180.0), (130.5, 190.0)) == {
        "rss_mib": 130.5,
        "peak_rss_mib": 190.0,
        "rss_growth_mib": 30.5,
    }
    assert memory_figures(None, (130.5, 190.0))["peak_rss_mib"] is None


def test_with_db_changes_only_the_database() -> None:
    assert with_db("redis://h:6379/0", 14) == "redis://h:6379/14"
    assert with_db("rediss://u:p@h:6380", 3) == "rediss://u:p@h:6380/3"


def _results(a: float, b: float, c: float, p99: float) -> dict[str, Any]:
    def variant(rate: float, peak_mib: float) -> dict[str, Any]:
        return {
            "events": 1000,
            "seconds": 1.0,
            "events_per_s": rate,
            "startup_s": 2.0,
            "events_per_cpu_s": rate * 2,
            "cpu_share": 0.5,
            "runqueue_wait_share": None,
            "peak_rss_mib": peak_mib,
            "rss_mib": peak_mib - 10,
            "rss_growth_mib": 4.0,
        }

    throughput = {
        "passthrough": variant(a, 100.0),
        "naive": variant(b, 200.0),
        "worker": variant(c, 250.0),
    }
    latency = {
        "rate": 1000.0,
        "achieved_rate": 999.0,
        "sent": 100,
        "received": 100,
        "p50_ms": 5.0,
        "p95_ms": 9.0,
        "p99_ms": p99,
        "max_ms": p99 + 1,
        "stages_ms": {"pipeline": {"p50": 1.0, "p99": 2.0}},
        "process": {"cpu_share": 0.3, "runqueue_wait_share": 0.0},
        "p50_ms_per_second": [5.0],
        "producer_ack_ms": {"p50": 1.0, "p99": 4.0},
        "agent_busy_share": 0.5,
        "producer_ack_p50_ms_per_second": [1.0],
    }
    floor = latency | {"p50_ms": 3.0, "p99_ms": 12.0, "stages_ms": None}
    return {
        "machine": {"cpu_count": 2, "python": "3.11.0"},
        "load": {
            "events": 1000,
            "naive_events": 100,
            "model_version": "m1",
            "warm_transactions": 4096,
            "warm_redis_bytes": 2 * 2**20,
        },
        "throughput": throughput,
        "latency": latency,
        "latency_passthrough": floor,
    } | verdicts(throughput, latency)


def test_verdicts_mark_each_target_and_render_shows_them() -> None:
    results = _results(a=1000, b=40, c=600, p99=30.0)
    assert results["ratios"] == {"c/a": 0.6, "c/b": 15.0}
    assert [(t["metric"], t["met"]) for t in results["targets"]] == [
        ("c/a", True),
        ("c/b", True),
        ("p99_ms", False),
    ]
    table = render(results)
    assert "(c) worker" in table and "MISS" in table and "pass" in table
    assert "first 100 events" in table
    # the passthrough's latency at the same rate, and what the worker adds to it
    assert "through (a) passthrough" in table
    assert "the worker's own share: p50 +2.0 ms, p99 +18.0 ms" in table
    # memory: each variant's peak and growth, the ratios, and Redis's share per transaction
    assert results["ratios_peak_rss"] == {"c/a": 2.5, "c/b": 1.25}
    assert "peak RSS: c/a 2.50x, c/b 1.25x" in table
    assert "(c) worker                       250.0                       +4.0" in table
    assert "take 2.0 MiB (512 bytes per transaction)" in table


def test_model_cost_is_timed_on_both_paths_and_rendered(
    add_version: Callable[..., Manifest], registry: ModelRegistry, small_history: pd.DataFrame
) -> None:
    add_version("v1")
    cost = model_cost(registry.root, "v1", small_history, sizes=(1, 7), budget_s=0.01)
    assert cost["version"] == "v1" and cost["flat_max_rows"] == FLAT_MAX_ROWS
    assert [row["rows"] for row in cost["batches"]] == [1, 7]
    assert all(row["sklearn_ms"] > 0 and row["flat_ms"] > 0 for row in cost["batches"])

    table = render(_results(a=1000, b=40, c=600, p99=30.0) | {"model_cost": cost})
    assert f"flat path up to {FLAT_MAX_ROWS} rows" in table
    assert "scikit-learn" in table.split("one model call")[1]


def test_help_says_what_is_measured() -> None:
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0
    for words in (
        "passthrough",
        "naive",
        "Kafka timestamp",
        "p99",
        "--naive-events",
        "peak resident",
    ):
        assert words in result.output


def test_the_latency_figures_split_each_output_into_its_stages() -> None:
    """Sent at t, stamped by the worker's producer at t + 8 ms after 5 ms of pipeline, read
    here at t + 10 ms: 3 ms to be consumed and batched, 5 in the pipeline, 2 to publish and
    deliver; the per-second line has one median per second of sending."""
    ids = [f"t{i}" for i in range(4)]
    sent = {tid: 1_000.0 + i * 0.6 for i, tid in enumerate(ids)}  # seconds 0, 0, 1, 1
    received = {tid: (sent[tid] + 0.010 * (1 + i), sent[tid] + 0.008, 5.0)
                for i, tid in enumerate(ids)}  # fmt: skip
    acked = {tid: sent[tid] + 0.002 for tid in ids[:3]}  # one acknowledgement never timed
    figures = latency_summary(ids, sent, received, acked)
    assert figures["received"] == 4
    assert figures["max_ms"] == pytest.approx(40.0)
    stages = figures["stages_ms"]
    assert stages["pipeline"] == {"p50": 5.0, "p99": 5.0}
    assert stages["consume_and_batch"]["p50"] == pytest.approx(3.0, abs=0.1)
    assert stages["publish_and_deliver"]["p50"] == pytest.approx(17.0, abs=0.1)  # 2, 12, 22, 32
    assert figures["p50_ms_per_second"] == pytest.approx([15.0, 35.0], abs=0.1)
    assert figures["producer_ack_ms"]["p50"] == pytest.approx(2.0, abs=0.1)
    # the passthrough publishes no processing_ms: no stages then
    plain = {tid: (got, stamped, float("nan")) for tid, (got, stamped, _) in received.items()}
    assert latency_summary(ids, sent, plain, acked)["stages_ms"] is None
