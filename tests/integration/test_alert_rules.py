"""The operators' alerting rules (``stack/prometheus/alerts.yml``): valid, each alert raised and
left quiet as its promtool tests expect, loaded by the compose file's Prometheus config, and
every metric they name one a running worker exports, so a renamed metric cannot leave an alert
silently watching nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import WorkerEnv, wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "stack" / "prometheus" / "alerts.yml"
RULE_TESTS = RULES.with_name("alerts.test.yml")
# the sample names each kind of metric family is exported under
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _promtool() -> str:
    path = (
        os.environ.get("STREAMER_TEST_PROMTOOL")
        or shutil.which("promtool")
        or next((str(p) for p in [ROOT / ".stack" / "tools" / "promtool"] if p.is_file()), None)
    )
    if path is None:
        pytest.fail(
            "no promtool for the alerting rules' tests: run scripts/install_test_tools.sh "
            "(make test does), or name one in STREAMER_TEST_PROMTOOL",
            pytrace=False,
        )
    return path


def _run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_promtool_checks_the_rules_and_runs_their_tests() -> None:
    promtool = _promtool()
    assert "SUCCESS: 19 rules found" in _run(promtool, "check", "rules", RULES.name)
    assert "SUCCESS" in _run(promtool, "test", "rules", RULE_TESTS.name)
    # the compose file's Prometheus: its scrape config, and the rules it loads
    assert "SUCCESS: 1 rule files found" in _run(promtool, "check", "config", "prometheus.yml")
    # every alert has tests
    alerts = re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), flags=re.MULTILINE)
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert len(alerts) == 19 and set(alerts) <= tested, set(alerts) - tested


def test_every_metric_the_rules_name_is_exported_by_a_worker(worker_env: WorkerEnv) -> None:
    worker_env.start_worker()
    url = f"http://127.0.0.1:{worker_env.settings.web_port}/metrics"
    wait_for(lambda: bool(worker_env.metrics()), timeout=90, what="the worker's /metrics",
             worker=worker_env)  # fmt: skip
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    exported = {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ())
    }
    named = set(re.findall(r"\bstreamer_[a-z_]+", RULES.read_text()))
    assert len(named) >= 8
    assert named <= exported, f"not exported by a worker: {sorted(named - exported)}"
