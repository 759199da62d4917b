"""The worker's dashboard page, summary API and Prometheus metrics, served while it runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from models.registry import ModelRegistry
from streamer.settings import Settings
from tests.integration.harness import produce
from tests.prometheus import samples


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.headers.get("Content-Type", ""), response.read().decode()


def test_dashboard_and_metrics(stack: Settings, tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    from streamer.features.definitions import FEATURE_NAMES

    registry = ModelRegistry(tmp_path / "registry")
    model = DummyClassifier(strategy="prior").fit([[0.0] * len(FEATURE_NAMES)] * 2, [0, 1])
    registry.register(model, algorithm="dummy", features=FEATURE_NAMES, version="dash-1")
    registry.promote("dash-1")
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "STREAMER_MODEL_REGISTRY": str(registry.root),
        "STREAMER_DATA_DIR": str(tmp_path / "state"),
        "STREAMER_WEB_PORT": "16301",
        "STREAMER_CONSUMER_GROUP": f"dash-{suffix}",
        "STREAMER_TOPIC_TRANSACTIONS": f"tx-{suffix}",
    }
    started = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamer", "worker", "-l", "warn"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                kind, body = _get("http://127.0.0.1:16301/api/summary")
                summary = json.loads(body)
                if summary["model_version"] == "dash-1":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the worker's web server did not come up with the model loaded")
            time.sleep(0.5)
        kind, page = _get("http://127.0.0.1:16301/")
        assert "text/html" in kind and "fraud-streamer" in page and "/api/summary" in page
        assert 'id="lag"' in page and "lag_records" in summary
        assert 'id="alerts"' in page and "/api/alerts" in page
        assert json.loads(_get("http://127.0.0.1:16301/api/alerts")[1]) == []
        # a transaction over the amount limit is declined by rule: its alert is listed
        settings = stack.model_copy(update={"topic_transactions": f"tx-{suffix}"})
        tx = {
            "transaction_id": f"big-{suffix}",
            "timestamp": "2018-05-01T12:00:00Z",
            "customer_id": "c-<b>x</b>",
            "terminal_id": "t-1",
            "amount": 1e9,
        }
        asyncio.run(
            produce(settings, settings.topic_transactions, [(b"c-1", json.dumps(tx).encode())])
        )
        deadline = time.monotonic() + 60
        while not (alerts := json.loads(_get("http://127.0.0.1:16301/api/alerts")[1])):
            if time.monotonic() > deadline:
                pytest.fail("no alert reached the dashboard's API")
            time.sleep(0.5)
        (alert,) = alerts
        assert alert["transaction_id"] == f"big-{suffix}" and alert["decision"] == "decline"
        assert alert["customer_id"] == "c-<b>x</b>"  # as sent; the page shows it as text
        assert alert["reasons"][0]["code"] == "RULE_AMOUNT_LIMIT"
        # the record it read is no longer lag
        deadline = time.monotonic() + 60
        while json.loads(_get("http://127.0.0.1:16301/api/summary")[1])["lag_records"] != 0:
            if time.monotonic() > deadline:
                pytest.fail("the worker's lag did not fall to 0 once it had decided")
            time.sleep(0.5)
        kind, metrics = _get("http://127.0.0.1:16301/metrics")
        assert "text/plain" in kind
        assert 'streamer_model_info{version="dash-1"} 1.0' in metrics
        assert "streamer_partition_skew_seconds" in metrics
        # the agent was busy deciding the transaction, and not for longer than it has run
        busy = samples(metrics)[("streamer_busy_seconds_total", ())]
        assert 0 < busy < time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(timeout=30)
