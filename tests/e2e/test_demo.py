"""The whole system through its own commands, as a user runs it: train, then the demo."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd

from models.files import DATA_DIR
from models.simulate import SimulationConfig, read_dataset, simulate
from streamer.kafka import make_consumer, running
from streamer.kafka_reading import partitions
from streamer.kafka_topics import contract_topics
from streamer.replay import encode_transactions, replay
from streamer.settings import Settings


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _backlog(days: int) -> pd.DataFrame:
    """Traffic an earlier, interrupted demo left in Kafka: a month before the demo's own days,
    under ids of its own, so the worker decides all of it before any of this run's."""
    frame = simulate(SimulationConfig(n_customers=300, n_terminals=600, n_days=days,
                                      start_date="2018-03-01", seed=9))
    return frame.assign(transaction_id="backlog-" + frame["transaction_id"])


async def _decided_ids(settings: Settings) -> set[str]:
    """Every transaction id on the decisions topic, from its beginning to its current end."""
    async with running(make_consumer(settings, group_id=None)) as consumer:
        tps = partitions(settings.topic_decisions, settings.partitions)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        ids: set[str] = set()
        read = 0
        while read < sum(ends.values()):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                ids.update(json.loads(r.value)["transaction_id"] for r in records)
                read += len(records)
        return ids


def test_train_then_demo_decides_every_transaction(stack: Settings, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "STREAMER_MODEL_REGISTRY": str(tmp_path / "registry"),
        "STREAMER_DATA_DIR": str(tmp_path / "state"),
        "STREAMER_REDIS_URL": stack.redis_url.rsplit("/", 1)[0] + "/12",
        "STREAMER_WEB_PORT": "16300",
        "STREAMER_DASHBOARD_PORT": "16302",
        "STREAMER_CONSUMER_GROUP": f"demo-{suffix}",
        **{
            f"STREAMER_TOPIC_{t.upper()}": f"{t}-{suffix}"
            for t in ("transactions", "labels", "decisions", "alerts", "dead_letters")
        },
    }
    # a worker refuses to start without a model, naming the command that makes one
    refused = subprocess.run(
        [sys.executable, "-m", "streamer", "worker"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "fraud-streamer train" in refused.stderr

    out = _run(
        [
            "train",
            "--customers",
            "400",
            "--terminals",
            "800",
            "--days",
            "80",
            "--train-days",
            "14",
            "--candidates",
            "hist_gb,logreg",
        ],
        tmp_path,
        env,
        600,
    )
    assert "promoted" in out
    # what the thresholds flag on the validation week, to choose them from, and in the manifest
    table = out[out.index("  threshold   flagged") :].splitlines()
    assert re.search(r"^\s+0\.50 .*<- STREAMER_REVIEW_THRESHOLD$", "\n".join(table), re.M), out
    assert re.search(r"^\s+0\.90 .*<- STREAMER_DECLINE_THRESHOLD$", "\n".join(table), re.M), out
    (manifest,) = (tmp_path / "registry").glob("*/manifest.json")
    points = json.loads(manifest.read_text())["metrics"]["operating_points"]
    assert [p["threshold"] for p in points] == [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]
    shares = [p["flagged_share"] for p in points]
    assert shares == sorted(shares, reverse=True) and 0 < shares[-1] < shares[0] < 1

    # a backlog twice the demo's size waits in Kafka, earlier in event time: the worker's totals
    # pass the demo's count before any of the demo's own transactions is decided
    topics = {k[len("STREAMER_TOPIC_"):].lower(): v for k, v in env.items()
              if k.startswith("STREAMER_TOPIC_")}
    settings = stack.model_copy(update={f"topic_{k}": v for k, v in topics.items()})
    backlog = _backlog(days=20)
    asyncio.run(contract_topics(settings))
    asyncio.run(replay(settings, (("transactions", k, v) for _, k, v in
                                  encode_transactions(backlog))))

    out = _run(
        ["demo", "--customers", "300", "--terminals", "600", "--days", "8", "--exit-when-done"],
        tmp_path,
        env,
        600,
    )
    match = re.search(r"all ([\d,]+) transactions decided", out)
    assert match, out
    ran = read_dataset(tmp_path / DATA_DIR / "demo-300x600-8d-seed2026.parquet")
    assert int(match.group(1).replace(",", "")) == len(ran) > 1000
    assert len(backlog) > 2 * len(ran)
    # "all decided" means this run's transactions, each of them, whatever else the worker did
    decided = asyncio.run(_decided_ids(settings))
    assert set(ran["transaction_id"]) <= decided
    assert f"decided {len(ran):,} of {len(ran):,}" in out
    assert "dead letters 3" in out  # the demo's three malformed messages
    # the fleet's page ran beside the worker, and stopped cleanly with it
    assert "the fleet's page: http://127.0.0.1:16302/" in out
    fleet_log = (tmp_path / "state" / "demo-dashboard.log").read_text()
    assert "dashboard: http://127.0.0.1:16302/" in fleet_log and "Traceback" not in fleet_log
    # the run's scores, read back from the decisions, rank the simulator's frauds of a
    # population the model never saw far above chance (from empty windows: see the demo)
    quality = re.search(
        r"all days: AUC ROC (\d\.\d+) · Average Precision (\d\.\d+) · Card Precision@100 "
        r"\d\.\d+ \(([\d,]+) transactions, ([\d,]+) frauds\)",
        out,
    )
    assert quality, out
    auc, ap = float(quality.group(1)), float(quality.group(2))
    n, frauds = (int(quality.group(i).replace(",", "")) for i in (3, 4))
    assert n == len(ran) and frauds == int(ran["is_fraud"].sum()), out
    assert auc > 0.6 and ap > 3 * frauds / n, out  # chance: 0.5, and the fraud rate
    assert "on its validation week (offline): AUC ROC" in out, out
