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
from redis import Redis

from models.registry import ModelRegistry
from streamer.settings import Settings
from tests.integration.harness import produce
from tests.prometheus import samples
from tests.workers import private_env, settings_of


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
    # its own topics, group, Redis database and port: it reads and writes nothing of others'
    overrides = private_env(stack, registry, tmp_path / "state")
    settings = settings_of(stack, overrides)
    web = f"http://127.0.0.1:{settings.web_port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **overrides}
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
                kind, body = _get(f"{web}/api/summary")
                summary = json.loads(body)
                if summary["model_version"] == "dash-1":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the worker's web server did not come up with the model loaded")
            time.sleep(0.5)
        kind, page = _get(f"{web}/")
        assert "text/html" in kind and "fraud-streamer" in page and "/api/summary" in page
        assert 'id="lag"' in page and "lag_records" in summary
        assert 'id="alerts"' in page and "/api/alerts" in page
        assert json.loads(_get(f"{web}/api/alerts")[1]) == []
        # a transaction over the amount limit is declined by rule: its alert is listed
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
        while not (alerts := json.loads(_get(f"{web}/api/alerts")[1])):
            if time.monotonic() > deadline:
                pytest.fail("no alert reached the dashboard's API")
            time.sleep(0.5)
        (alert,) = alerts
        assert alert["transaction_id"] == f"big-{suffix}" and alert["decision"] == "decline"
        assert alert["customer_id"] == "c-<b>x</b>"  # as sent; the page shows it as text
        assert alert["reasons"][0]["code"] == "RULE_AMOUNT_LIMIT"
        # the record it read is no longer lag
        deadline = time.monotonic() + 60
        while json.loads(_get(f"{web}/api/summary")[1])["lag_records"] != 0:
            if time.monotonic() > deadline:
                pytest.fail("the worker's lag did not fall to 0 once it had decided")
            time.sleep(0.5)
        kind, metrics = _get(f"{web}/metrics")
        assert "text/plain" in kind
        assert 'streamer_model_info{version="dash-1"} 1.0' in metrics
        assert "streamer_partition_skew_seconds" in metrics
        # the agent was busy deciding the transaction, and not for longer than it has run
        busy = samples(metrics)[("streamer_busy_seconds_total", ())]
        assert 0 < busy < time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        Redis.from_url(settings.redis_url).flushdb()  # leave the shared Redis as found
