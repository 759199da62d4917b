"""``fraud-streamer status`` against the real services: each part's line, and an exit status
that is 1 exactly when some part is unusable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from redis.asyncio import Redis

from streamer.bench.infra import free_port
from streamer.kafka import client_options
from tests.integration.harness import WorkerEnv, produce, run_cli, run_cli_streams, wait_for


def _status(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "status", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stderr == "" or result.returncode != 0, result.stderr
    return result.returncode, result.stdout


def _checks(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    code, out = _status(env, "--json")
    return code, json.loads(out)


async def test_status_of_a_running_system_and_of_each_broken_part(
    worker_env: WorkerEnv, tmp_path: Path
) -> None:
    settings = worker_env.settings
    # no worker yet: everything else is fine, the missing workers are the problem
    code, out = _status(worker_env.env)
    lines = {line.split()[0]: line for line in out.splitlines() if not line.startswith(" ")}
    assert code == 1, out
    assert lines["kafka"].split()[1] == "ok" and f"{settings.topic_transactions} 4" in out
    assert f"no worker in group {settings.consumer_group!r}" in lines["workers"]
    assert lines["redis"].split()[1] == "ok" and settings.redis_url in lines["redis"]
    assert "test-model-a promoted (hist_gb" in lines["model"]
    assert lines["rates"].split()[1] == "ok" and "none (transactions not in EUR" in lines["rates"]
    assert "rebuild-state" not in out  # an empty Redis beside empty topics: nothing lost

    # a transaction waits in Kafka while Redis holds nothing: status points at the rebuild
    tx = {"transaction_id": "s1", "timestamp": "2018-05-01T12:00:00Z", "customer_id": "c1",
          "terminal_id": "t1", "amount": 12.0}  # fmt: skip
    await produce(settings, settings.topic_transactions, [(b"c1", json.dumps(tx).encode())])
    code, out = _status(worker_env.env)
    assert code == 1 and "holds 1 records: if it lost its state, run" in out, out
    # a Redis that may evict is warned of, and the hint to rebuild is still given beside it
    redis = Redis.from_url(settings.redis_url)
    before = await redis.config_get("maxmemory*")
    try:  # far above what the tests use: nothing is evicted, even if this were left set
        await redis.config_set("maxmemory", str(8 * 2**30))
        await redis.config_set("maxmemory-policy", "volatile-lru")
        code, report = _checks(worker_env.env)
    finally:
        await redis.config_set("maxmemory", before["maxmemory"])
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"])
        await redis.aclose()
    warnings = report["checks"]["redis"]["warnings"]
    assert len(warnings) == 2, warnings
    assert "evicts keys when it reaches its memory limit (maxmemory 8.00G" in warnings[0]
    assert "holds 1 records: if it lost its state, run" in warnings[1]

    worker_env.start_worker()

    def joined() -> bool:
        return _checks(worker_env.env)[1]["checks"]["workers"]["data"]["members"] == 1

    wait_for(joined, timeout=90, what="the worker in the group", worker=worker_env)
    # a rate set with `rates`, and one written by hand that the workers leave out: a warning
    run_cli(worker_env, "rates", "set", "USD=0.86")
    client = Redis.from_url(settings.redis_url)
    await client.hset("fs:rates", "gbp", "1.14")
    await client.aclose()
    code, report = _checks(worker_env.env)
    assert code == 0 and report["ok"], report
    rates = report["checks"]["rates"]
    assert rates["detail"] == "1 USD = 0.86 EUR (1 set with `fraud-streamer rates`)", rates
    assert rates["warnings"] == [
        "left out of fs:rates: gbp: 'gbp' is not a currency code (three upper-case letters)"
    ], rates
    assert rates["data"]["rates"] == {"USD": 0.86} and rates["data"]["from_redis"] == ["USD"]
    # Redis loses them: the rates recorded in Kafka say what to set again
    client = Redis.from_url(settings.redis_url)
    await client.delete("fs:rates")
    await client.aclose()
    code, report = _checks(worker_env.env)
    rates = report["checks"]["rates"]
    assert code == 0 and rates["warnings"] == [
        "Redis holds none of the 1 rate(s) last set with `fraud-streamer rates` (recorded on "
        f"{settings.topic_rates}: USD): if it lost them, run `fraud-streamer rates restore` "
        "(rebuild-state does it too)"
    ], rates
    assert rates["data"]["recorded_not_held"] == ["USD"]

    def all_read() -> bool:  # once the worker has committed past the waiting transaction
        lag = _checks(worker_env.env)[1]["checks"]["workers"]["data"]["not_yet_read"]
        return bool(lag == {settings.topic_transactions: 0, settings.topic_labels: 0})

    wait_for(all_read, timeout=60, what="the worker to read what waited", worker=worker_env)
    checks = _checks(worker_env.env)[1]["checks"]
    assert checks["model"]["data"]["version"] == "test-model-a"
    wait_for(lambda: _checks(worker_env.env)[1]["checks"]["redis"]["data"]["keys"] > 0,
             timeout=60, what="the transaction's state in Redis", worker=worker_env)  # fmt: skip
    assert _checks(worker_env.env)[1]["checks"]["redis"]["warnings"] == []

    # a blocklist lost by Redis (recorded in Kafka): status points at the restore
    run_cli(worker_env, "blocklist", "add", "customer", "c-stolen")
    assert _checks(worker_env.env)[1]["checks"]["redis"]["warnings"] == []
    async with Redis.from_url(settings.redis_url) as client:
        await client.delete("fs:blocklist:customer")
    assert _checks(worker_env.env)[1]["checks"]["redis"]["warnings"] == [
        f"Redis lacks 1 customer(s), 0 terminal(s) of the blocked ids {settings.topic_blocklists}"
        " records: if it lost them, run `fraud-streamer blocklist restore` (rebuild-state does "
        "it too)"
    ]
    run_cli(worker_env, "blocklist", "restore")
    assert _checks(worker_env.env)[1]["checks"]["redis"]["warnings"] == []

    # the input topics the worker made keep 60 days; one kept for Kafka's default 7 days
    # cannot give `rebuild-state` the 44 days the windows hold: status and the rebuild say so
    assert _checks(worker_env.env)[1]["checks"]["kafka"]["warnings"] == []
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        week = {"retention.ms": str(7 * 86_400_000)}
        await admin.alter_configs([
            ConfigResource(ConfigResourceType.TOPIC, name, week)
            for name in (settings.topic_labels, settings.topic_decisions)
        ])  # fmt: skip
    finally:
        await admin.close()
    short = (
        f"{settings.topic_labels} keeps records for 7 days (retention.ms), less than the 44 "
        "days of history the feature windows hold: `rebuild-state` can replay only what it "
        "keeps. Raise its retention.ms (e.g. kafka-configs.sh --alter --entity-type topics "
        f"--entity-name {settings.topic_labels} --add-config retention.ms=5184000000)"
    )
    assert _checks(worker_env.env)[1]["checks"]["kafka"]["warnings"] == [short]
    rebuilt, warned = run_cli_streams(worker_env, "rebuild-state")
    assert "warning" not in rebuilt  # warnings go to stderr, the report to stdout
    assert f"warning: {short}" in warned.splitlines()
    # the decisions topic matters to the rebuild only: it pins the verdicts again from there
    assert (
        f"warning: {settings.topic_decisions} keeps records for 7 days (retention.ms), less "
        "than the 44 days of history the feature windows hold: `rebuild-state` pins again only "
        "the verdicts it keeps (a transaction decided before and delivered again is decided "
        "anew). Raise its retention.ms"
    ) in warned

    # a tampered artifact is what a worker would refuse: so does status
    registry = tmp_path / "tampered"
    shutil.copytree(settings.model_registry, registry)
    with (registry / "test-model-a" / "model.joblib").open("ab") as artifact:
        artifact.write(b"\0")
    code, out = _status({**worker_env.env, "STREAMER_MODEL_REGISTRY": str(registry)})
    model_line = next(line for line in out.splitlines() if line.startswith("model"))
    assert code == 1 and "PROBLEM" in model_line and "does not match its manifest" in model_line, (
        out
    )

    # Kafka and Redis where nothing listens: each named, the workers unknown
    kafka, redis = free_port(), free_port()
    code, report = _checks({
        **worker_env.env,
        "STREAMER_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "STREAMER_REDIS_URL": f"redis://127.0.0.1:{redis}/0",
    })  # fmt: skip
    checks = report["checks"]
    assert code == 1 and not report["ok"]
    assert not checks["kafka"]["ok"] and f"127.0.0.1:{kafka}" in checks["kafka"]["detail"]
    assert checks["workers"]["detail"] == "unknown: Kafka does not answer"
    assert not checks["redis"]["ok"] and f"127.0.0.1:{redis}" in checks["redis"]["detail"]
    assert checks["rates"]["detail"] == "unknown: Redis does not answer"
    assert checks["model"]["ok"]
