"""``fraud-streamer dashboard`` on real Kafka: one page for every worker's output, read back
from the window when it starts late, then followed."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamer.bench.infra import free_port
from streamer.kafka_reading import read_to_end
from streamer.settings import Settings
from tests.integration.harness import WorkerEnv, consume_until, produce, wait_for


def _tx(tx_id: str, customer: str, amount: float) -> bytes:
    return json.dumps({
        "transaction_id": tx_id, "timestamp": "2018-05-01T12:00:00+02:00",
        "customer_id": customer, "terminal_id": "t-1", "amount": amount,
    }).encode()  # fmt: skip


def _fleet(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/fleet", timeout=2) as page:
            return dict(json.loads(page.read()))
    except OSError:
        return None


@contextlib.contextmanager
def _dashboard(worker: WorkerEnv, port: int, log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``fraud-streamer dashboard`` on ``port`` with the worker's settings; stopped with
    SIGTERM (a container's stop) at the end, which must be a clean exit."""
    path = log_dir / "dashboard.log"
    with path.open("wb") as log:
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "streamer", "dashboard", "--port", str(port)],
            env=worker.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield dashboard
        finally:
            dashboard.terminate()
            dashboard.wait(10)
    assert dashboard.returncode == 0, path.read_text()


async def _produce_and_decide(
    worker: WorkerEnv, prefix: str, n: int, poison: int
) -> list[dict[str, Any]]:
    """n transactions over many cards (every fifth over the amount limit: an alert) and
    ``poison`` unreadable records; returns the decisions, once all are made, one per transaction
    (a worker joining the group may have some decided again, and the page counts those once)."""
    settings = worker.settings
    records: list[tuple[bytes | None, bytes]] = [
        (card.encode(), _tx(f"{prefix}{i}", card, 20_000 if i % 5 == 0 else 12))
        for i, card in ((i, f"{prefix}c{i}") for i in range(n))
    ]
    records += [(f"{prefix}bad{i}".encode(), b"not json") for i in range(poison)]
    await produce(settings, settings.topic_transactions, records)
    ids = {f"{prefix}{i}" for i in range(n)}
    decided = await consume_until(settings, settings.topic_decisions, ids=ids, worker=worker)
    each = {d["transaction_id"]: d for d in map(json.loads, (r.value for r in decided))}
    return [d for tx_id, d in each.items() if tx_id in ids]


async def test_the_fleet_page_shows_every_worker_s_output(
    worker_env: WorkerEnv, tmp_path: Path
) -> None:
    worker_env.start_worker()
    worker_env.start_worker(
        STREAMER_WEB_PORT=str(free_port()), STREAMER_DATA_DIR=str(tmp_path / "second")
    )
    before = await _produce_and_decide(worker_env, "a", 60, poison=2)

    port = free_port()
    with _dashboard(worker_env, port, tmp_path):
        # started late: what happened before is read back from the window
        alerts_before = sum(d["decision"] != "approve" for d in before)
        assert alerts_before >= 12  # the over-limit ones at least

        def shows(total: int, alerts: int, letters: int) -> bool:
            fleet = _fleet(port)
            return fleet is not None and (
                fleet["decisions"]["total"],
                fleet["alerts"]["count"],
                fleet["dead_letters"]["count"],
                fleet["workers"],
                fleet["lag"],
            ) == (total, alerts, letters, 2, {
                worker_env.settings.topic_transactions: 0, worker_env.settings.topic_labels: 0
            })  # fmt: skip

        wait_for(lambda: shows(60, alerts_before, 2), timeout=60, what="the fleet page",
                 worker=worker_env)  # fmt: skip
        fleet = _fleet(port)
        assert fleet is not None
        flagged = {d["transaction_id"] for d in before if d["decision"] != "approve"}
        assert {a["transaction_id"] for a in fleet["alerts"]["latest"]} == flagged
        assert fleet["unreadable"] == 0

        # then followed as it happens
        after = await _produce_and_decide(worker_env, "b", 20, poison=1)
        alerts_after = alerts_before + sum(d["decision"] != "approve" for d in after)
        wait_for(lambda: shows(80, alerts_after, 3), timeout=60, what="the new records",
                 worker=worker_env)  # fmt: skip
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
            html = page.read().decode()
        assert "all workers" in html and "renderAlerts" in html and "/* style.css */" not in html
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as page:
            assert json.loads(page.read()) == {"status": "ok"}


async def _ids(settings: Settings, topic: str, field: str) -> list[Any]:
    """``field`` of every record on ``topic``, in the order read."""
    got: list[Any] = []
    await read_to_end(settings, topic, lambda record: got.append(json.loads(record.value)[field]))
    return got


async def test_records_a_killed_worker_publishes_again_are_counted_once(
    worker_env: WorkerEnv, tmp_path: Path
) -> None:
    """SIGKILL a worker mid-stream and start it again: it publishes again the decisions,
    alerts and dead letters of the batches it had not committed; the page counts each once."""
    worker_env.env["STREAMER_COMMIT_INTERVAL_S"] = "15"  # the kill lands on uncommitted work
    settings = worker_env.settings
    n = 6_000
    records: list[tuple[bytes | None, bytes]] = [
        (f"k{i % 600}".encode(), _tx(f"k{i}", f"k{i % 600}", 20_000 if i % 7 == 0 else 12))
        for i in range(n)
    ]
    records[1_000:1_000] = [(b"bad", b"not json")] * 3  # early, so they are surely re-read
    await produce(settings, settings.topic_transactions, records)
    port = free_port()
    with _dashboard(worker_env, port, tmp_path):
        first = worker_env.start_worker()
        wait_for(
            lambda: (
                (worker_env.summary() or {}).get("totals", {}).get("consumed_transactions", 0)
                >= n // 3
            ),
            timeout=120,
            what="a third of the stream",
            worker=worker_env,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        worker_env.start_worker()
        ids = {f"k{i}" for i in range(n)}
        await consume_until(settings, settings.topic_decisions, ids=ids, worker=worker_env)

        # what the worker published, repeats included: the id of each record
        decisions = await _ids(settings, settings.topic_decisions, "transaction_id")
        alerts = await _ids(settings, settings.topic_alerts, "alert_id")
        letters = await _ids(settings, settings.topic_dead_letters, "offset")
        assert len(decisions) > n, "the kill should have forced re-publications"
        assert len(set(decisions)) == n and len(set(letters)) == 3
        repeats = sum(len(got) - len(set(got)) for got in (decisions, alerts, letters))

        def counted_once() -> bool:
            fleet = _fleet(port)
            return fleet is not None and (
                fleet["decisions"]["total"], fleet["alerts"]["count"],
                fleet["dead_letters"]["count"], fleet["repeats"],
            ) == (n, len(set(alerts)), 3, repeats)  # fmt: skip

        wait_for(counted_once, timeout=60, what="each record counted once", worker=worker_env)
