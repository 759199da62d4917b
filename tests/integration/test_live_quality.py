"""``fraud-streamer quality`` on what a running worker published, against its labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from models.metrics import quality
from models.registry import ModelRegistry
from streamer.replay import encode_labels, encode_transactions, merged_records, replay
from tests.integration.harness import WorkerEnv, consume_until, private_registry, run_cli


async def test_quality_measures_the_published_decisions_against_the_labels(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame, registry: ModelRegistry, tmp_path: Path
) -> None:
    """A history and its labels replayed into a worker; `quality` must give the metrics of the
    decisions it published over the transactions a label delay older than the latest report,
    computed here from the two topics read back on their own. The worker also scores with a
    shadow — the live model registered again under another name — so `quality --shadow` must
    give the shadow the live model's own figures."""
    settings = worker_env.settings
    private = private_registry(worker_env, registry, tmp_path / "registry")
    twin = private.load("test-model-a")
    private.register(twin.estimator, algorithm=twin.manifest.algorithm,
                     features=twin.manifest.features, baseline=twin.manifest.baseline,
                     version="test-model-twin")  # fmt: skip
    private.set_shadow("test-model-twin")
    frame = replay_slice.head(20_000)
    stats = await replay(settings, merged_records(encode_transactions(frame), encode_labels(frame)))
    worker_env.start_worker()
    decided = await consume_until(
        settings, settings.topic_decisions, ids=set(frame["transaction_id"]), timeout=240,
        worker=worker_env,
    )  # fmt: skip
    labels = await consume_until(settings, settings.topic_labels, count=stats.labels)

    report = json.loads(run_cli(worker_env, "quality", "--json"))

    sent = [json.loads(r.value) for r in labels]
    cutoff = max(pd.Timestamp(label["reported_at"]) for label in sent) - pd.Timedelta(days=7)
    frauds = {label["transaction_id"] for label in sent}  # the replay sends fraud marks only
    first = {}
    for record in decided:
        decision = json.loads(record.value)
        first.setdefault(decision["transaction_id"], decision)
    rows = pd.DataFrame(
        [d for d in first.values() if pd.Timestamp(d["timestamp"]) <= cutoff]
    ).assign(is_fraud=lambda d: d["transaction_id"].isin(frauds))
    expected = quality(rows, rows["score"].to_numpy(dtype=float))

    assert pd.Timestamp(report["cutoff"]) == cutoff
    everything, *versions = report["report"]
    assert everything["group"] == "all"
    assert (everything["transactions"], everything["frauds"]) == (len(rows), rows["is_fraud"].sum())
    assert 0 < everything["frauds"] < everything["transactions"] < len(frame)
    for name, value in expected.items():
        assert np.isclose(everything["metrics"][name], value, rtol=0, atol=1e-12), name
    assert [v["group"] for v in versions] == ["test-model-a"]
    assert everything["metrics"]["auc_roc"] > 0.7  # the worker's scores rank its frauds
    # by week: the same transactions, split
    _, *weeks = json.loads(run_cli(worker_env, "quality", "--json", "--by", "week"))["report"]
    assert len(weeks) >= 3 and all(w["group"].startswith("week of ") for w in weeks)
    assert sum(w["transactions"] for w in weeks) == everything["transactions"]
    assert sum(w["frauds"] for w in weeks) == everything["frauds"]

    # the shadow, on the same transactions (all of them: it was set before the worker started)
    await consume_until(settings, settings.topic_shadow_decisions,
                        ids=set(frame["transaction_id"]), worker=worker_env)  # fmt: skip
    both = {row["group"]: row for row in
            json.loads(run_cli(worker_env, "quality", "--json", "--shadow"))["report"]}  # fmt: skip
    assert list(both) == ["live: all", "live: test-model-a", "shadow: all",
                          "shadow: test-model-twin"]  # fmt: skip
    for group in ("live: all", "shadow: all"):
        assert both[group]["transactions"] == everything["transactions"], group
        for name, value in expected.items():
            assert np.isclose(both[group]["metrics"][name], value, rtol=0, atol=1e-12), group
