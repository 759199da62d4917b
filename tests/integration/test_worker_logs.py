"""``STREAMER_LOG_FORMAT=json``: every line a worker writes is one JSON object, from its first
line to its clean stop, a multi-line message (the task dump) included."""

from __future__ import annotations

import json
import signal
from datetime import datetime

from tests.integration.harness import WorkerEnv, wait_for


def test_a_json_logging_worker_writes_one_object_per_line(worker_env: WorkerEnv) -> None:
    worker = worker_env.start_worker(loglevel="info", STREAMER_LOG_FORMAT="json")
    wait_for(lambda: worker_env.summary() is not None, timeout=90, what="the worker's page",
             worker=worker_env)  # fmt: skip
    worker.send_signal(signal.SIGUSR1)  # what each task waits on: a message of many lines
    wait_for(lambda: "task dump (SIGUSR1)" in worker_env.log(), timeout=30, what="the dump",
             worker=worker_env)  # fmt: skip
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0

    records = []
    for number, line in enumerate(worker_env.log().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert datetime.fromisoformat(record["time"]).utcoffset() is not None, record
    by_message = {r["message"].split("\n", 1)[0]: r for r in records}
    start = next(r for m, r in by_message.items() if m.startswith("worker: model test-model-a"))
    assert (start["level"], start["logger"]) == ("INFO", "streamer.worker")
    dump = by_message["task dump (SIGUSR1):"]
    assert dump["level"] == "WARNING" and dump["message"].count("\n") > 3
    assert any(r["logger"].startswith("faust") for r in records), "Faust's own lines"
