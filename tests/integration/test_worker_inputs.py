"""The worker on real Kafka and Redis: poison input, rules, and model promotion without restart."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from redis.asyncio import Redis
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from models.dataset import build_features
from models.registry import ModelRegistry
from schemas import Alert, DeadLetter, Decision
from streamer.bench.infra import free_port
from streamer.features.definitions import FEATURE_NAMES
from streamer.features.store import RedisFeatureStore
from streamer.kafka import client_options, make_consumer, make_producer, running
from streamer.kafka_reading import consumer_group_state, partitions, topics_partitions
from streamer.replay import encode_transactions, replay
from streamer.settings import Settings
from streamer.stack import LocalStack
from tests.integration.harness import (
    WorkerEnv,
    consume_until,
    private_registry,
    produce,
    refused_start,
    run_cli,
    wait_for,
    wait_until_committed,
)

#: the worker's consumer lag gauge, one sample per owned partition
LAG_METRIC = "streamer_consumer_lag_records"

GOOD = {
    "timestamp": "2018-05-01T12:00:00+02:00",
    "customer_id": "c-good",
    "terminal_id": "t-good",
    "amount": 42.5,
}


def _tx(tx_id: str, **fields: object) -> bytes:
    return json.dumps({"transaction_id": tx_id, **GOOD, **fields}).encode()


POISON: dict[str, bytes | None] = {
    "not json": b"this is not json",
    "not an object": b'["transaction_id", "p2"]',
    "wrong type": _tx("p3", amount="12.50"),
    "negative amount": _tx("p4", amount=-1),
    "NaN amount": _tx("p5").replace(b"42.5", b"NaN"),
    "no offset": _tx("p6", timestamp="2018-05-01T12:00:00"),
    "1 MB": _tx("p7", note="x" * 1_000_000),
    "binary garbage": b"\xff\xfe\x00\x01\x80garbage",
    "missing field": json.dumps({"transaction_id": "p9", "amount": 1}).encode(),
    "tombstone": None,
    # valid, but stamped long after its record was sent: it would trim its card's windows
    "from the future": _tx("p11", timestamp="2099-01-01T00:00:00Z"),
}


async def test_poison_messages_are_dead_lettered_and_good_ones_decided(
    worker_env: WorkerEnv,
) -> None:
    settings = worker_env.settings
    redis = Redis.from_url(settings.redis_url)
    await RedisFeatureStore(redis).blocklist_add("customer", ["c-blocked"])
    await redis.aclose()
    records: list[tuple[bytes | None, bytes | None]] = []
    good_ids = []
    for i, (name, value) in enumerate(POISON.items()):
        good_ids.append(f"g{i}")
        records.append((b"c-good", _tx(f"g{i}")))  # a good message before each bad one
        records.append((name.encode(), value))
    records.append((b"c-blocked", _tx("blocked", customer_id="c-blocked")))
    records.append((b"c-good", _tx("huge", amount=1e9)))
    records.append((b"not the card", _tx("miskeyed")))  # decided, and reported
    # valid, but beyond what the model's float32 trees and a reason's length take, and a card's
    # sum of the two is infinite
    for name, at in (("enormous1", "12:00:00"), ("enormous2", "12:00:01")):
        records.append((b"c-enormous", _tx(name, amount=1e308, customer_id="c-enormous",
                                           timestamp=f"2018-05-01T{at}+02:00")))  # fmt: skip
    bad_label = json.dumps({"transaction_id": "g0", "is_fraud": "yes"}).encode()
    future_label = json.dumps({"transaction_id": "g0", "customer_id": "c-good",
                               "terminal_id": "t-good", "tx_timestamp": GOOD["timestamp"],
                               "is_fraud": True, "reported_at": "2099-01-01T00:00:00Z"})
    await produce(settings, settings.topic_transactions, records)  # type: ignore[arg-type]
    await produce(settings, settings.topic_labels, [(b"c-good", bad_label),
                                                    (b"label ahead", future_label.encode())])
    worker_env.start_worker()

    letters_raw = await consume_until(
        settings, settings.topic_dead_letters, count=len(POISON) + 2, worker=worker_env
    )
    wanted = {*good_ids, "blocked", "huge", "enormous1", "enormous2", "miskeyed"}
    decided = await consume_until(settings, settings.topic_decisions, ids=wanted, worker=worker_env)

    letters = {
        (d.key or ""): d for d in (DeadLetter.model_validate_json(r.value) for r in letters_raw)
    }
    # a dead letter keeps its input's Kafka key (the tombstone had one too), as the contract says
    for r in letters_raw:
        assert r.key == (json.loads(r.value)["key"] or "").encode(), r
    for name in POISON:
        letter = letters[name]
        assert letter.source_topic == settings.topic_transactions
        assert letter.errors, name
    assert letters["binary garbage"].raw_encoding == "base64"
    assert base64.b64decode(letters["binary garbage"].raw) == POISON["binary garbage"]
    assert letters["1 MB"].errors[0].type == "value_too_large"
    assert len(letters["1 MB"].raw) <= 2048
    assert letters["no offset"].errors[0].loc == ["timestamp"]
    assert letters["c-good"].source_topic == settings.topic_labels  # the bad label
    for name, field in (("from the future", "timestamp"), ("label ahead", "reported_at")):
        (error,) = letters[name].errors
        assert (error.type, error.loc) == ("event_after_record", [field]), error
        assert re.match(rf"{field} 2099-01-01T00:00:00\+00:00 is [\d,.]+ days after its Kafka "
                        r"record's time \(20\d\d-", error.msg), error.msg  # fmt: skip

    decisions = {
        d.transaction_id: d for d in (Decision.model_validate_json(r.value) for r in decided)
    }
    assert set(decisions) == wanted
    for r in decided:  # keyed by card, so a card's decisions keep their order
        assert r.key == json.loads(r.value)["customer_id"].encode(), r
    # one alert for each review or decline, keyed by card too, and none for an approval
    flagged = {t for t, d in decisions.items() if d.decision != "approve"}
    assert {"blocked", "huge", "enormous1", "enormous2"} <= flagged
    raised = await consume_until(settings, settings.topic_alerts, ids=flagged, worker=worker_env,
                                 settled=True)  # fmt: skip
    alerts = [Alert.model_validate_json(r.value) for r in raised]
    assert sorted(a.transaction_id for a in alerts) == sorted(flagged)
    for r, alert in zip(raised, alerts, strict=True):
        assert r.key == alert.customer_id.encode(), r
        assert alert.decision == decisions[alert.transaction_id].decision
    blocked, huge = decisions["blocked"], decisions["huge"]
    assert blocked.decision == "decline"
    assert blocked.reasons[0].code == "RULE_CUSTOMER_BLOCKED"
    assert huge.decision == "decline" and huge.reasons[0].code == "RULE_AMOUNT_LIMIT"
    for name in ("enormous1", "enormous2"):
        assert decisions[name].decision == "decline"
        assert decisions[name].reasons[0].description.startswith("amount 1e+308 EUR is over")
    # the producer's offset is kept in the echo: same instant, calendar features at +02:00
    assert decisions["g0"].timestamp.utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert worker_env.processes[0].poll() is None, "the worker must carry on"
    # the record keyed other than by its card; not the label keyed "label ahead", refused for
    # its time: only accepted records are counted
    mismatches = ("streamer_input_key_mismatches_total", (("topic", "transactions"),))
    wait_for(lambda: worker_env.metrics().get(mismatches) == 1, timeout=30,
             what="one record counted as keyed wrongly", worker=worker_env)  # fmt: skip
    assert re.search(r"1 input record\(s\) not keyed by their customer_id \(e\.g\. "
                     rf"{settings.topic_transactions}\[\d+\]@\d+ has key 'not the card', "
                     r"customer_id 'c-good'\)", worker_env.log()), worker_env.log()  # fmt: skip

    # what an operator reads: each letter on a line, where from and why, and a tally
    shown = run_cli(worker_env, "dead-letters", "--last", "50").splitlines()
    assert len(shown) == len(letters) + 1, shown
    assert any(
        re.search(rf"{settings.topic_transactions}\[\d+\]@\d+ key \"negative amount\": "
                  r"amount: Input should be greater than or equal to 0", line)
        for line in shown
    ), shown  # fmt: skip
    assert shown[-1].startswith(f"{len(letters)} dead letters; problems: ")
    assert "value_too_large ×1" in shown[-1] and "json_invalid" in shown[-1], shown[-1]
    assert len(run_cli(worker_env, "dead-letters", "--last", "3", "--json").splitlines()) == 3

    # valid, but under the id of g0, decided above (its card and terminal, another amount)
    await produce(settings, settings.topic_transactions,
                  [(b"c-good", _tx("g0", amount=99.0)), (b"c-good", _tx("g-last"))])  # fmt: skip
    more = await consume_until(settings, settings.topic_dead_letters, count=len(letters) + 1,
                               worker=worker_env)  # fmt: skip
    (reused,) = (d for d in (DeadLetter.model_validate_json(r.value) for r in more)
                 if '"amount": 99.0' in d.raw)  # fmt: skip
    (error,) = reused.errors
    assert (error.type, error.loc) == ("transaction_id_reused", ["transaction_id"]), error
    shown = run_cli(worker_env, "dead-letters", "--last", "1", "--type", "transaction_id_reused",
                    "--type", "not_a_type").splitlines()  # fmt: skip
    assert len(shown) == 2 and "'g0' was already used" in shown[0], shown
    assert shown[1] == "1 dead letters; problems: transaction_id_reused ×1", shown
    assert run_cli(worker_env, "dead-letters", "--type", "not_a_type").strip() == (
        f"no dead letters with a problem of type not_a_type on {settings.topic_dead_letters}"
    )
    again = await consume_until(settings, settings.topic_decisions, ids={"g-last"},
                                worker=worker_env, settled=True)  # fmt: skip
    g0 = [Decision.model_validate_json(r.value) for r in again if b'"g0"' in r.value]
    assert [d.amount for d in g0] == [42.5], g0  # the first, once


async def test_a_running_worker_says_what_it_is_waiting_on(worker_env: WorkerEnv) -> None:
    """SIGUSR1 logs each task's await chain (the agent's included) and SIGUSR2 every thread's
    stack; the worker carries on. The harness asks for both when a wait times out."""
    settings = worker_env.settings
    await produce(settings, settings.topic_transactions, [(b"c-1", _tx("t1"))])
    worker_env.start_worker()
    await consume_until(settings, settings.topic_decisions, ids={"t1"}, worker=worker_env)
    report = worker_env.stalled()
    assert "1 of 1 workers still running" in report
    assert re.search(r"worker on port \d+: \{'model_version'", report), report
    dump = report.partition("dumps after the timeout:")[2]
    assert "task dump (SIGUSR1)" in dump
    # and for each partition it owns, whether it is read: t1's is read to its end
    assert re.search(
        rf"  {settings.topic_transactions}\[\d+\]: 0 to read \(next 1, end 1, aiokafka at 1\), "
        r"0 held by the merge; asked for\s",  # the line's end, or the log line's
        dump,
    ), dump
    # the chain goes through Faust's actor into the agent and on to where it waits: for input
    # (Stream.take_events) or, if a producer acknowledgement is still on its way, in publish
    chain = r"_execute_actor .* -> EventFlow\.take \(event_flow\.py:\d+\) -> \S+"
    assert re.search(chain, dump), dump
    # faulthandler's, from whichever thread the kernel gave the signal to ("Current thread"
    # only when that one runs Python)
    assert re.search(r"Thread 0x[0-9a-f]+ \(most recent call first\):\n  File ", dump), dump
    assert worker_env.processes[0].poll() is None, "the worker must carry on"


def _register_model_b(registry: ModelRegistry, history: pd.DataFrame) -> Pipeline:
    """A second model, a logistic regression (scaled, as `train` fits them: unscaled, lbfgs
    does not converge), registered as ``test-model-b``; returns the estimator."""
    features = build_features(history.head(20_000))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        features.X, features.frame["is_fraud"].astype(int)
    )
    registry.register(model, algorithm="logreg", features=FEATURE_NAMES,
                      version="test-model-b", baseline=[0.0] * len(FEATURE_NAMES))  # fmt: skip
    return model


async def test_a_promotion_mid_stream_loses_nothing_and_switches_each_card_once(
    worker_env: WorkerEnv, registry: ModelRegistry, history: pd.DataFrame, tmp_path: Path
) -> None:
    """Promoted while a paced stream is being decided: every transaction is decided once, by
    one model or the other, and no card goes back to the old model after the new one decided
    one of its transactions (the switch is between two batches, in order)."""
    settings = worker_env.settings
    private = private_registry(worker_env, registry, tmp_path / "registry")
    _register_model_b(private, history)
    frame = history[
        history["timestamp"] >= history["timestamp"].min() + pd.Timedelta(days=40)
    ].sort_values(["timestamp", "transaction_id"]).head(6000)  # fmt: skip
    worker_env.start_worker()
    records = iter([("transactions", k, v) for _, k, v in encode_transactions(frame)])
    sending = asyncio.create_task(replay(settings, records, rate=500))
    deadline = time.monotonic() + 60
    while (worker_env.summary() or {}).get("totals", {}).get("consumed_transactions", 0) < 1500:
        if time.monotonic() > deadline:  # the replay goes on while this waits (no wait_for)
            pytest.fail(f"a quarter of the stream was not consumed\n{worker_env.stalled()}")
        await asyncio.sleep(0.1)
    assert not sending.done(), "the stream should still be coming"
    private.promote("test-model-b")
    await sending
    wanted = set(frame["transaction_id"])
    records_out = await consume_until(settings, settings.topic_decisions, ids=wanted,
                                      worker=worker_env, settled=True)  # fmt: skip
    decisions = [json.loads(r.value) for r in records_out]
    assert {d["transaction_id"] for d in decisions} == wanted
    assert len(decisions) == len(wanted)  # nothing was re-delivered: each decided once
    versions = [d["model_version"] for d in decisions]
    assert set(versions) == {"test-model-a", "test-model-b"}, set(versions)
    by_card: dict[str, list[str]] = {}
    for d in decisions:  # in topic order: a card's partition keeps its decisions in order
        by_card.setdefault(d["customer_id"], []).append(d["model_version"])
    for card, seen in by_card.items():
        switched = seen.index("test-model-b") if "test-model-b" in seen else len(seen)
        assert set(seen[switched:]) <= {"test-model-b"}, (card, seen)


async def test_promotion_reaches_a_running_worker_without_losing_events(
    worker_env: WorkerEnv, registry: ModelRegistry, history: pd.DataFrame, tmp_path: Path
) -> None:
    settings = worker_env.settings
    private = private_registry(worker_env, registry, tmp_path / "registry")  # it promotes

    frame = history[
        history["timestamp"] >= history["timestamp"].min() + pd.Timedelta(days=40)
    ].sort_values(["timestamp", "transaction_id"])
    txs = encode_transactions(frame.head(6000))
    first, second, third = txs[:2000], txs[2000:4000], txs[4000:]
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in first])
    worker_env.start_worker()
    ids = lambda part: {json.loads(v)["transaction_id"] for _, _, v in part}  # noqa: E731
    await consume_until(settings, settings.topic_decisions, ids=ids(first), worker=worker_env)

    _register_model_b(private, history)
    private.promote("test-model-b")
    wait_for(
        lambda: (worker_env.summary() or {}).get("model_version") == "test-model-b",
        timeout=30,
        what="the worker to load test-model-b",
        worker=worker_env,
    )
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in second])
    await consume_until(settings, settings.topic_decisions, ids=ids(second), worker=worker_env)
    # transactions decided by model a, sent again (a producer's retry, as a re-delivery
    # after a crash would bring them): published again as model a decided them
    again = first[:500]
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in again])
    repeated = await consume_until(settings, settings.topic_decisions, ids=ids(again),
                                   worker=worker_env, settled=True)  # fmt: skip
    copies: dict[str, list[dict[str, object]]] = {}
    for r in repeated:
        d = json.loads(r.value)
        if d["transaction_id"] in ids(again):
            del d["decided_at"], d["processing_ms"]
            copies.setdefault(d["transaction_id"], []).append(d)
    assert {len(c) for c in copies.values()} == {2} and len(copies) == len(again)
    assert all(c[0] == c[1] for c in copies.values())
    assert {c[1]["model_version"] for c in copies.values()} == {"test-model-a"}
    changed = worker_env.metrics().get(("streamer_repeated_decisions_total",
                                        (("changed", "true"),)), 0)  # fmt: skip
    unchanged = worker_env.metrics().get(("streamer_repeated_decisions_total",
                                          (("changed", "false"),)), 0)  # fmt: skip
    assert changed + unchanged == len(again) and changed > 0  # model b scores otherwise

    private.rollback()
    wait_for(
        lambda: (worker_env.summary() or {}).get("model_version") == "test-model-a",
        timeout=30,
        what="the worker to roll back",
        worker=worker_env,
    )
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in third])

    records = await consume_until(
        settings, settings.topic_decisions, ids=ids(txs), worker=worker_env
    )
    version = {}
    for r in records:
        d = json.loads(r.value)
        version[d["transaction_id"]] = d["model_version"]
    assert {version[t] for t in ids(first)} == {"test-model-a"}
    assert {version[t] for t in ids(second)} == {"test-model-b"}
    assert {version[t] for t in ids(third)} == {"test-model-a"}
    assert len(worker_env.processes) == 1 and worker_env.processes[0].poll() is None


async def test_a_shadow_model_is_scored_beside_the_live_one_until_turned_off(
    worker_env: WorkerEnv, registry: ModelRegistry, history: pd.DataFrame, tmp_path: Path
) -> None:
    """`models shadow` makes a running worker score every transaction with a second model
    too: one shadow decision per decision, on the same features, by that model, while the
    published decisions stay the live model's; `--off` stops it, without a restart."""
    settings = worker_env.settings
    private = private_registry(worker_env, registry, tmp_path / "registry")
    features_topic = f"{settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    model_b = _register_model_b(private, history)
    assert "shadowing the live model with test-model-b" in run_cli(
        worker_env, "models", "shadow", "test-model-b"
    )
    txs = encode_transactions(history.tail(3000))
    first, second = txs[:2000], txs[2000:]
    ids = lambda part: {json.loads(v)["transaction_id"] for _, _, v in part}  # noqa: E731
    worker_env.start_worker()
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in first])
    shadow = await consume_until(settings, settings.topic_shadow_decisions, ids=ids(first),
                                 worker=worker_env, settled=True)  # fmt: skip
    decided = await consume_until(settings, settings.topic_decisions, ids=ids(first),
                                  worker=worker_env, settled=True)  # fmt: skip
    logged = await consume_until(settings, features_topic, ids=ids(first), worker=worker_env,
                                 settled=True)  # fmt: skip

    seen = {d.transaction_id: d for d in (Decision.model_validate_json(r.value) for r in shadow)}
    assert len(shadow) == len(decided) == len(first) and set(seen) == ids(first)
    assert {json.loads(r.value)["model_version"] for r in decided} == {"test-model-a"}
    assert {d.model_version for d in seen.values()} == {"test-model-b"}
    vectors = {}
    for record in logged:
        value = json.loads(record.value)
        vectors[value["transaction_id"]] = [value["features"][n] for n in FEATURE_NAMES]
    order = sorted(vectors)
    expected = model_b.predict_proba(np.array([vectors[t] for t in order]))[:, 1]
    got = np.array([seen[t].score for t in order])
    rules = np.array([bool(seen[t].reasons and seen[t].reasons[0].code.startswith("RULE"))
                      for t in order])  # fmt: skip
    np.testing.assert_allclose(got[~rules], expected[~rules], rtol=0, atol=1e-9)
    counted = sum(v for (name, _), v in worker_env.metrics().items()
                  if name == "streamer_shadow_decisions_total")  # fmt: skip
    assert counted == len(first)
    assert (worker_env.summary() or {}).get("shadow_version") == "test-model-b"

    off = run_cli(worker_env, "models", "shadow", "--off")
    assert "shadow scoring off (was test-model-b)" in off

    def stopped() -> bool:
        summary = worker_env.summary() or {}
        return "shadow_version" in summary and summary["shadow_version"] is None

    wait_for(stopped, timeout=30, what="the shadow to stop", worker=worker_env)
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in second])
    await consume_until(settings, settings.topic_decisions, ids=ids(txs), worker=worker_env)
    tps = partitions(settings.topic_shadow_decisions, settings.partitions)
    async with running(make_consumer(settings, group_id=None)) as consumer:
        written = sum((await consumer.end_offsets(tps)).values())
    assert written == len(first), "no shadow decision once the shadow is off"
    assert len(worker_env.processes) == 1 and worker_env.processes[0].poll() is None


class _Unloadable:
    """An estimator pickled under a module the worker cannot import (as after an upgrade that
    removed a class): its artifact passes the hash check, and fails to load."""


async def test_a_model_that_fails_to_load_stops_the_worker_with_nothing_committed(
    worker_env: WorkerEnv, registry: ModelRegistry, tmp_path: Path
) -> None:
    """The start check reads the manifest (hash, features), not the pickle: the worker finds
    out at its first batch. Faust acks a batch whose body raises, so the worker must exit
    before it does; with a model that loads, the next worker decides every transaction."""
    settings = worker_env.settings
    private = private_registry(worker_env, registry, tmp_path / "registry")
    gone = types.ModuleType("a_module_the_worker_lacks")
    _Unloadable.__module__ = gone.__name__
    gone._Unloadable = _Unloadable  # type: ignore[attr-defined]
    sys.modules[gone.__name__] = gone
    try:
        private.register(
            _Unloadable(), algorithm="gone", features=FEATURE_NAMES, version="test-model-gone"
        )
    finally:
        del sys.modules[gone.__name__]
        _Unloadable.__module__ = __name__
    private.promote("test-model-gone")

    records = [(b"c-good", _tx(f"u{i}", timestamp=f"2018-05-01T12:00:{i:02d}+02:00"))
               for i in range(20)]  # fmt: skip
    await produce(settings, settings.topic_transactions, records)  # type: ignore[arg-type]
    first = worker_env.start_worker()
    wait_for(lambda: first.poll() is not None, timeout=90, what="the worker to exit",
             worker=worker_env)  # fmt: skip
    log = worker_env.log()
    assert first.returncode == 70, log
    assert "failed before it could be decided; exiting so it is replayed" in log, log
    assert "ModuleNotFoundError: No module named 'a_module_the_worker_lacks'" in log, log
    topics = await topics_partitions(settings, [settings.topic_transactions])
    _, lag = await consumer_group_state(
        settings, settings.consumer_group, topics[settings.topic_transactions] or []
    )
    assert lag == {settings.topic_transactions: 20}, lag  # not one of them committed

    private.rollback()  # test-model-a again
    worker_env.start_worker()
    decided = await consume_until(settings, settings.topic_decisions,
                                  ids={f"u{i}" for i in range(20)}, worker=worker_env)  # fmt: skip
    assert {json.loads(r.value)["model_version"] for r in decided} == {"test-model-a"}
    await wait_until_committed(settings, timeout=60, worker=worker_env)


def test_a_model_of_other_features_is_refused_before_the_worker_starts(
    worker_env: WorkerEnv, registry: ModelRegistry, tmp_path: Path
) -> None:
    """A model trained before a feature was added (the README's upgrade note) cannot serve:
    the worker says so and does not start, rather than fail at its first batch."""
    root = private_registry(worker_env, registry, tmp_path / "registry").root
    shutil.copytree(root / "test-model-a", root / "older")
    manifest = json.loads((root / "older" / "manifest.json").read_text())
    manifest["version"], manifest["features"] = "older", manifest["features"][:-1]
    manifest["baseline"] = manifest["baseline"][:-1]  # one value per feature, as registered
    (root / "older" / "manifest.json").write_text(json.dumps(manifest))
    (root / "promotions.json").write_text(json.dumps({"history": ["test-model-a", "older"]}))
    reason, _ = refused_start(worker_env.env)
    assert reason.startswith("Error: model older expects features ['"), reason
    assert reason.endswith("retrain with `fraud-streamer train`"), reason


async def test_a_tampered_promotion_is_refused_and_the_worker_keeps_serving(
    worker_env: WorkerEnv, registry: ModelRegistry, tmp_path: Path
) -> None:
    root = private_registry(worker_env, registry, tmp_path / "registry").root
    settings = worker_env.settings
    await produce(settings, settings.topic_transactions, [(b"c-good", _tx("before"))])
    worker_env.start_worker()
    await consume_until(settings, settings.topic_decisions, ids={"before"}, worker=worker_env)

    # a version whose artifact was swapped after registration
    shutil.copytree(root / "test-model-a", root / "evil")
    manifest = json.loads((root / "evil" / "manifest.json").read_text())
    manifest["version"] = "evil"
    (root / "evil" / "manifest.json").write_text(json.dumps(manifest))
    with (root / "evil" / "model.joblib").open("ab") as fh:
        fh.write(b"tampered")
    (root / "promotions.json").write_text(json.dumps({"history": ["test-model-a", "evil"]}))
    wait_for(
        lambda: "not switching to model evil" in worker_env.logs(),
        timeout=30,
        what="the worker to refuse the tampered model",
        worker=worker_env,
    )

    await produce(settings, settings.topic_transactions, [(b"c-good", _tx("after"))])
    records = await consume_until(
        settings, settings.topic_decisions, ids={"after"}, worker=worker_env
    )
    after = [json.loads(r.value) for r in records if b'"after"' in r.value]
    assert after[0]["model_version"] == "test-model-a"


def _label(tx_id: str, reported_at: str, is_fraud: bool) -> bytes:
    return json.dumps(
        {
            "transaction_id": tx_id,
            "customer_id": "c-good",
            "terminal_id": "t-good",
            "tx_timestamp": "2018-05-01T00:00:00Z",
            "is_fraud": is_fraud,
            "reported_at": reported_at,
        }
    ).encode()


async def test_a_withdrawn_label_counts_until_its_withdrawal_is_reported(
    worker_env: WorkerEnv,
) -> None:
    """A fraud reported on day 7 and withdrawn two hours later: a transaction at the terminal
    between the two sees it, one after the withdrawal does not, though all five records reach
    the worker as one backlog (and can be released in one batch)."""
    features_topic = f"{worker_env.settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    settings = worker_env.settings
    records = [
        ("transactions", _tx("w0", timestamp="2018-05-01T00:00:00Z")),
        ("labels", _label("w0", "2018-05-08T00:00:00Z", True)),
        ("transactions", _tx("w1", timestamp="2018-05-08T01:00:00Z")),
        ("labels", _label("w0", "2018-05-08T02:00:00Z", False)),
        ("transactions", _tx("w2", timestamp="2018-05-08T03:00:00Z")),
    ]
    await replay(settings, iter([(kind, b"c-good", value) for kind, value in records]))
    worker_env.start_worker()
    logged = await consume_until(
        settings, features_topic, ids={"w0", "w1", "w2"}, worker=worker_env
    )
    risk = {
        record["transaction_id"]: record["features"]["TERMINAL_ID_RISK_1DAY_WINDOW"]
        for record in (json.loads(r.value) for r in logged)
    }
    assert risk == {"w0": 0.0, "w1": 1.0, "w2": 0.0}


async def test_amounts_in_other_currencies_are_converted_and_one_without_a_rate_reviewed(
    worker_env: WorkerEnv, registry: ModelRegistry
) -> None:
    """A card paying in dollars gets, from Redis, the features of the same payments in euros
    at the configured rate, and its decisions echo the dollars; a currency without a rate is
    reviewed with the reason (not declined on its amount read as euros), counted in the metrics
    and warned of once in the log, and its amount does not weigh in its card's later amount
    features as if it were in euros."""
    features_topic = f"{worker_env.settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    worker_env.env["STREAMER_EXCHANGE_RATES"] = '{"USD": 0.5}'
    settings = worker_env.settings
    day = "2018-05-0{}T12:00:00Z"
    paid = [  # (id, card, amount, currency): the dollar card pays twice the euro card's numbers
        *((f"eur{i}", "c-eur", 40.0 * i, "EUR") for i in (1, 2, 3)),
        *((f"usd{i}", "c-usd", 80.0 * i, "USD") for i in (1, 2, 3)),
        *((f"yen{i}", "c-yen", 6000.0, "JPY") for i in (1, 2)),
        ("mix1", "c-mix", 40.0, "EUR"),
        ("mix2", "c-mix", 6000.0, "JPY"),
        ("mix3", "c-mix", 60.0, "EUR"),
    ]
    records = [
        (card.encode(), _tx(tx_id, customer_id=card, amount=amount, currency=currency,
                            timestamp=day.format(tx_id[-1])))
        for tx_id, card, amount, currency in paid
    ]  # fmt: skip
    await produce(settings, settings.topic_transactions, records)  # type: ignore[arg-type]
    worker_env.start_worker()
    ids = {tx_id for tx_id, *_ in paid}
    decided = await consume_until(settings, settings.topic_decisions, ids=ids, worker=worker_env)
    logged = await consume_until(settings, features_topic, ids=ids, worker=worker_env)

    decisions = {
        d.transaction_id: d for d in (Decision.model_validate_json(r.value) for r in decided)
    }
    features = {
        f["transaction_id"]: f["features"] for f in (json.loads(r.value) for r in logged)
    }
    for i in (1, 2, 3):
        euros, dollars = features[f"eur{i}"], features[f"usd{i}"]
        assert dollars == euros, i  # the card's windows hold the converted amounts
        assert dollars["TX_AMOUNT"] == 40.0 * i
        assert decisions[f"usd{i}"].score == decisions[f"eur{i}"].score
        assert (decisions[f"usd{i}"].amount, decisions[f"usd{i}"].currency) == (80.0 * i, "USD")
    typical = dict(zip(FEATURE_NAMES, registry.load().manifest.baseline, strict=True))
    for tx_id in ("yen1", "yen2", "mix2"):
        # 6,000 yen read as euros would be declined; the amount is not known, so the model is
        # given its typical value, and the transaction is reviewed for want of a rate
        assert decisions[tx_id].decision == "review", decisions[tx_id]
        assert decisions[tx_id].reasons[0].code == "CURRENCY_NOT_CONVERTED"
        assert features[tx_id]["TX_AMOUNT"] == typical["TX_AMOUNT"]
    # a card paying in euros, then in yen: the yen amount is counted, not added as 6,000 EUR
    mixed = features["mix3"]
    assert mixed["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == 3
    assert mixed["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"] == 50.0  # the mean of 40 and 60
    assert mixed["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"] == 1.5  # 60 over 40, the readable other
    counted = ("streamer_unconverted_transactions_total", (("currency", "JPY"),))
    wait_for(lambda: worker_env.metrics().get(counted) == 3, timeout=30,
             what="the three yen transactions counted", worker=worker_env)  # fmt: skip
    warned = [line for line in worker_env.log().splitlines() if "no rate from JPY" in line]
    assert len(warned) == 1, worker_env.log()[-3000:]


async def test_rates_set_while_the_worker_runs_are_taken_up_without_a_restart(
    worker_env: WorkerEnv,
) -> None:
    """``fraud-streamer rates set`` changes a rate and gives one to a currency that had none:
    the running worker converts what comes next at the new rates, logs the change and exports
    them; an entry it cannot use is left out with an error naming it; ``rates unset`` takes a
    rate back, and that currency is reviewed again; ``rates restore`` sets the rates recorded
    in Kafka again in a Redis that lost them."""
    features_topic = f"{worker_env.settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    worker_env.env["STREAMER_EXCHANGE_RATES"] = '{"USD": 0.5}'
    worker_env.env["STREAMER_MODEL_POLL_SECONDS"] = "0.5"
    settings = worker_env.settings
    worker_env.start_worker(loglevel="info")

    async def decide(paid: list[tuple[str, str, float, str]]) -> dict[str, tuple[Decision, dict]]:
        """(decision, features) of each (id, card, amount, currency) sent, on its own day."""
        records = [
            (card.encode(), _tx(tx_id, customer_id=card, amount=amount, currency=currency,
                                timestamp=f"2018-05-{int(tx_id[-1]) + 1:02d}T12:00:00Z"))
            for tx_id, card, amount, currency in paid
        ]  # fmt: skip
        await produce(settings, settings.topic_transactions, records)  # type: ignore[arg-type]
        ids = {tx_id for tx_id, *_ in paid}
        got = await consume_until(settings, settings.topic_decisions, ids=ids, worker=worker_env)
        logged = await consume_until(settings, features_topic, ids=ids, worker=worker_env)
        features = {f["transaction_id"]: f["features"] for f in map(json.loads,
                                                                    (r.value for r in logged))}
        return {d.transaction_id: (d, features[d.transaction_id])
                for d in (Decision.model_validate_json(r.value) for r in got)}  # fmt: skip

    def rate(code: str) -> float | None:
        return worker_env.metrics().get(("streamer_exchange_rate",
                                         (("base", "EUR"), ("currency", code))))  # fmt: skip

    before = await decide([("usd1", "c-usd", 80.0, "USD"), ("yen1", "c-yen", 6000.0, "JPY")])
    assert before["usd1"][1]["TX_AMOUNT"] == 40.0
    assert before["yen1"][0].reasons[0].code == "CURRENCY_NOT_CONVERTED"
    assert rate("USD") == 0.5 and rate("JPY") is None

    said = run_cli(worker_env, "rates", "set", "USD=0.25", "JPY=0.006")
    assert "1 USD = 0.25 EUR, 1 JPY = 0.006 EUR" in said, said
    wait_for(lambda: rate("JPY") == 0.006, timeout=30, what="the new rates taken up",
             worker=worker_env)  # fmt: skip
    assert rate("USD") == 0.25
    assert "JPY 0.006 (new), USD 0.5 -> 0.25" in worker_env.log()
    after = await decide([("usd2", "c-usd", 80.0, "USD"), ("yen2", "c-yen", 6000.0, "JPY")])
    assert after["usd2"][1]["TX_AMOUNT"] == 20.0
    assert after["yen2"][1]["TX_AMOUNT"] == 36.0
    assert all(r.code != "CURRENCY_NOT_CONVERTED" for r in after["yen2"][0].reasons)
    shown = run_cli(worker_env, "rates", "show")
    assert re.search(r"JPY\s+0\.006\s+fraud-streamer rates", shown), shown
    assert re.search(r"USD\s+0\.25\s+fraud-streamer rates", shown), shown

    client = Redis.from_url(settings.redis_url)
    await client.hset("fs:rates", "GBP", "-3")  # by hand, past the command's checks
    await client.aclose()
    wait_for(lambda: "exchange rate for GBP in Redis (fs:rates) left out" in worker_env.log(),
             timeout=30, what="the bad entry reported", worker=worker_env)  # fmt: skip
    wait_for(lambda: worker_env.metrics().get(("streamer_exchange_rates_left_out", ())) == 1,
             timeout=30, what="the bad entry counted", worker=worker_env)  # fmt: skip
    shown = run_cli(worker_env, "rates", "show")
    assert re.search(r"GBP\s+-\s+left out of fs:rates: the rate for GBP must be", shown), shown

    assert "1 rate(s) withdrawn" in run_cli(worker_env, "rates", "unset", "JPY")
    wait_for(lambda: rate("JPY") is None, timeout=30, what="the yen rate withdrawn",
             worker=worker_env)  # fmt: skip
    again = await decide([("yen3", "c-yen", 6000.0, "JPY"), ("usd3", "c-usd", 80.0, "USD")])
    assert again["yen3"][0].reasons[0].code == "CURRENCY_NOT_CONVERTED"
    assert again["usd3"][1]["TX_AMOUNT"] == 20.0

    # a day's feed, quoted as the ECB quotes the euro (5 dollars a euro), replacing the rest
    feed = worker_env.log_dir / "rates.json"
    feed.write_text('{"USD": 5}')
    said = run_cli(worker_env, "rates", "set", "--file", str(feed), "--per-base", "--replace")
    assert "set 1 USD = 0.2 EUR; every other rate set here withdrawn" in said, said
    wait_for(lambda: rate("USD") == 0.2, timeout=30, what="the feed taken up", worker=worker_env)
    wait_for(lambda: worker_env.metrics().get(("streamer_exchange_rates_left_out", ())) == 0,
             timeout=30, what="the bad entry gone with the rest", worker=worker_env)  # fmt: skip

    # Redis loses the rates (with the rest of its data): they are recorded in Kafka, from
    # where `rates restore` sets them again, and the worker takes them up once more
    said = run_cli(worker_env, "rates", "restore")
    assert "Redis holds 1 rate entry(ies) already: left as they are" in said, said
    client = Redis.from_url(settings.redis_url)
    await client.delete("fs:rates")
    await client.aclose()
    wait_for(lambda: rate("USD") == 0.5, timeout=30, what="the fallback to the variable",
             worker=worker_env)  # fmt: skip
    said = run_cli(worker_env, "rates", "restore")
    assert f"restored USD=0.2 from {settings.topic_rates}" in said, said
    wait_for(lambda: rate("USD") == 0.2, timeout=30, what="the restored rate taken up",
             worker=worker_env)  # fmt: skip


async def test_the_worker_exports_how_far_its_decisions_and_its_pending_records_have_come(
    worker_env: WorkerEnv,
) -> None:
    """The two event-time gauges the alerts compare across workers: the latest transaction
    decided, and what each input may still deliver (nothing, once both are read to the end)."""
    settings = worker_env.settings
    records = [
        ("transactions", _tx("e0", timestamp="2018-05-01T00:00:00Z")),
        ("labels", _label("e0", "2018-05-08T00:00:00Z", True)),
        ("transactions", _tx("e2", timestamp="2018-05-09T03:00:00Z")),
        ("transactions", _tx("e1", timestamp="2018-05-08T01:00:00Z")),  # last, not latest
    ]
    await replay(settings, iter([(kind, b"c-good", value) for kind, value in records]))
    worker_env.start_worker()
    await consume_until(settings, settings.topic_decisions, ids={"e0", "e1", "e2"},
                        worker=worker_env)  # fmt: skip
    latest = pd.Timestamp("2018-05-09T03:00:00Z").timestamp()
    decided = ("streamer_decided_event_time_seconds", ())

    def pending(kind: str) -> float | None:
        return worker_env.metrics().get(("streamer_pending_event_time_seconds", (("input", kind),)))

    wait_for(lambda: worker_env.metrics().get(decided) == latest, timeout=30,
             what=f"the latest decided event time at {latest}", worker=worker_env)  # fmt: skip
    wait_for(lambda: pending("transactions") == pending("labels") == float("inf"), timeout=30,
             what="nothing pending once both inputs are read", worker=worker_env)  # fmt: skip


async def test_a_redis_that_stops_answering_is_reported_and_ridden_out(
    worker_env: WorkerEnv, stack: Settings
) -> None:
    """Redis frozen (SIGSTOP) under a running worker: with records waiting and none processed
    for STREAMER_STALL_WARN_S, the worker logs a warning with where it waits (on Redis) and its
    liveness probe fails; once Redis answers again it carries on, each transaction is decided
    once, and the probe passes again."""
    redis_state = (await asyncio.to_thread(LocalStack(stack).status))[1]
    if not redis_state.ours or redis_state.pid is None:
        pytest.fail("this test freezes Redis: it needs the one `fraud-streamer stack up` started")
    settings = worker_env.settings
    worker_env.env["STREAMER_STALL_WARN_S"] = "2"
    # longer than the freeze, so that the call waits it out (a call that fails is sent again
    # by the store: the failover test's subject)
    worker_env.env["STREAMER_REDIS_URL"] = f"{settings.redis_url}?socket_timeout=60"
    await produce(settings, settings.topic_transactions, [(b"c-1", _tx("warm"))])
    worker_env.start_worker()
    await consume_until(settings, settings.topic_decisions, ids={"warm"}, worker=worker_env)
    assert worker_env.health() == (200, {"status": "ok"})
    # the worker reads Redis's memory every few seconds, for /metrics
    redis_used = ("streamer_redis_memory_bytes", (("kind", "used"),))
    wait_for(lambda: worker_env.metrics().get(redis_used, 0) > 0, timeout=30,
             what="Redis's memory in /metrics", worker=worker_env)  # fmt: skip
    ids = {f"s{i}" for i in range(50)}
    mark = len(worker_env.log())  # a slow warm-up may have warned already: only what follows
    probes: list[tuple[int, dict[str, Any]] | None] = []
    os.kill(redis_state.pid, signal.SIGSTOP)
    try:
        await produce(
            settings, settings.topic_transactions, [(f"c-{i}".encode(), _tx(i)) for i in ids]
        )
        wait_for(
            lambda: "no record processed for" in worker_env.log()[mark:],
            timeout=60,
            what="the stall warning",
            worker=worker_env,
        )
        # a probe slower than its timeout answers None: ask again
        wait_for(lambda: probes.append(worker_env.health()) or probes[-1] is not None,
                 timeout=30, what="the liveness probe's answer", worker=worker_env)  # fmt: skip
    finally:
        os.kill(redis_state.pid, signal.SIGCONT)
    frozen = probes[-1]
    assert frozen is not None and frozen[0] == 503, frozen
    assert frozen[1]["status"] == "stalled" and frozen[1]["stalled_s"] >= 2, frozen
    warning = worker_env.log()[mark:].partition("no record processed for")[2]
    assert "in batches being decided" in warning, warning
    # the agent, or the timer that releases held records, waits in Redis
    assert re.search(
        r"EventFlow\.decide_released \(event_flow\.py:\d+\) -> .*RedisFeatureStore", warning
    ), warning
    assert "the partitions owned, each:" in warning, warning
    decided = await consume_until(
        settings, settings.topic_decisions, ids={"warm", *ids}, worker=worker_env, settled=True
    )
    got = sorted(json.loads(r.value)["transaction_id"] for r in decided)
    assert got == sorted({"warm", *ids})  # each once
    assert worker_env.processes[0].poll() is None, worker_env.logs()
    wait_for(
        lambda: worker_env.health() == (200, {"status": "ok"}),
        timeout=10,
        what="the liveness probe to pass again",
        worker=worker_env,
    )


async def test_transactional_producers_aborted_writes_are_not_decided_and_markers_are_not_lag(
    worker_env: WorkerEnv,
) -> None:
    """Input written inside Kafka transactions: what a producer aborted is never decided, and
    the commit markers after the last records are not records still to come — the lag drops to
    0 on every partition (the labels' too) and an idle worker reports no stall."""
    settings = worker_env.settings
    worker_env.env["STREAMER_STALL_WARN_S"] = "2"
    producer = make_producer(settings, transactional_id=f"tx-test-{settings.topic_transactions}")
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(8):
                await producer.send(settings.topic_transactions, _tx(f"c{i}"), key=f"k{i}".encode())
            await producer.send(
                settings.topic_labels, _label("c0", "2018-05-01T13:00:00Z", True), key=b"k0"
            )
        await producer.begin_transaction()
        for i in range(8):
            await producer.send(settings.topic_transactions, _tx(f"a{i}"), key=f"k{i}".encode())
        await producer.abort_transaction()
        async with producer.transaction():
            for i in range(8):
                await producer.send(settings.topic_transactions, _tx(f"d{i}"), key=f"k{i}".encode())
    finally:
        await producer.stop()
    worker_env.start_worker()
    committed = {f"{p}{i}" for p in "cd" for i in range(8)}
    records = await consume_until(
        settings, settings.topic_decisions, ids=committed, worker=worker_env, settled=True
    )
    decided = sorted(json.loads(r.value)["transaction_id"] for r in records)
    assert decided == sorted(committed)  # each committed one once, no aborted one

    def settled() -> bool:
        lags = {k: v for k, v in worker_env.metrics().items() if k[0] == LAG_METRIC}
        return bool(lags) and not any(lags.values())  # partitions never written have none

    wait_for(settled, timeout=30, what="a lag of 0 on every partition", worker=worker_env)
    await asyncio.sleep(4)  # twice the stall warning's threshold, idle
    assert "no record processed for" not in worker_env.log(), worker_env.log()
    assert worker_env.processes[0].poll() is None, worker_env.logs()

    # what `status` and the fleet page report from the group's commits: no record left either,
    # although each partition's commit stops short of the marker after its last record
    await wait_until_committed(settings, timeout=30, worker=worker_env)

    # a rebuild of the state replays what the worker decided: not the aborted writes
    worker_env.stop_all()
    async with Redis.from_url(settings.redis_url) as client:
        await client.flushdb()
    out = run_cli(worker_env, "rebuild-state")
    assert "16 transactions and 1 labels replayed" in out, out


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_input_compressed_by_the_producer_is_decided(
    worker_env: WorkerEnv, codec: str
) -> None:
    """Producers choose their compression (Kafka's own clients offer all four); the worker
    must read each of them, not stop at the first batch it cannot decompress."""
    settings = worker_env.settings
    ids = {f"{codec}-{i}" for i in range(20)}
    producer = make_producer(settings, compression_type=codec)
    await producer.start()
    try:
        sent = [
            await producer.send(settings.topic_transactions, _tx(i), key=b"c-good")
            for i in sorted(ids)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    worker_env.start_worker()
    records = await consume_until(
        settings, settings.topic_decisions, ids=ids, timeout=60, worker=worker_env, settled=True
    )
    assert sorted(json.loads(r.value)["transaction_id"] for r in records) == sorted(ids)


async def test_a_redis_that_may_evict_the_state_is_warned_of_at_start(
    worker_env: WorkerEnv, stack: Settings
) -> None:
    """The stack's Redis given a memory limit with an eviction policy (as managed Redis has by
    default): the worker starts, and says first that its state may be evicted and what to set."""
    redis = Redis.from_url(stack.redis_url)
    before = await redis.config_get("maxmemory*")
    try:
        # far above what the tests use: nothing is evicted, even if this were left set
        await redis.config_set("maxmemory", str(8 * 2**30))
        await redis.config_set("maxmemory-policy", "volatile-lru")
        worker_env.start_worker()
        # the start-up checks are done when it names its dashboard
        wait_for(
            lambda: "dashboard http" in worker_env.log(),
            timeout=60,
            what="the worker's start",
            worker=worker_env,
        )
    finally:
        await redis.config_set("maxmemory", before["maxmemory"])
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"])
        await redis.aclose()
    log = worker_env.log()
    assert re.search(
        r"warning: Redis at \S+ evicts keys when it reaches its memory limit \(maxmemory "
        r"8\.00G, maxmemory-policy volatile-lru\).*Set maxmemory-policy noeviction",
        log,
    ), log
    assert worker_env.processes[0].poll() is None, "a warning, not a refusal"


def test_a_replication_factor_the_cluster_cannot_meet_is_named(worker_env: WorkerEnv) -> None:
    """Topics are created with STREAMER_TOPIC_REPLICATION_FACTOR replicas; more than the
    brokers there are is refused by Kafka, and the worker says so in one line."""
    env = {**worker_env.env, "STREAMER_TOPIC_TRANSACTIONS": "tx-rf-2-of-1"}
    env["STREAMER_TOPIC_REPLICATION_FACTOR"] = "2"
    last, stderr = refused_start(env)
    assert last.startswith("Error: cannot create the topics on Kafka"), stderr
    assert "cannot create topic 'tx-rf-2-of-1' (4 partitions, 2 replicas; see " in last
    assert "replication factor of 2 cannot be reached because only 1 broker" in last, last


async def test_keys_redis_evicts_under_a_running_worker_are_reported(
    worker_env: WorkerEnv, stack: Settings
) -> None:
    """The stack's Redis given a limit just above what it holds, with allkeys-lru: as the
    worker writes window state, Redis evicts keys, and the worker says so in its log (and
    /metrics) instead of scoring on thinned windows in silence."""
    redis = Redis.from_url(stack.redis_url)
    before = await redis.config_get("maxmemory*")
    settings = worker_env.settings
    try:
        worker_env.start_worker()
        # its first reading of Redis is the baseline: evictions count from there
        redis_used = ("streamer_redis_memory_bytes", (("kind", "used"),))
        wait_for(lambda: redis_used in worker_env.metrics(), timeout=60,
                 what="the worker's first reading of Redis", worker=worker_env)  # fmt: skip
        used = (await redis.info("memory"))["used_memory"]
        await redis.config_set("maxmemory", str(used + 512 * 1024))
        await redis.config_set("maxmemory-policy", "allkeys-lru")
        records = [(f"c-{i}".encode(), _tx(f"e{i}", customer_id=f"c-{i}")) for i in range(4000)]
        await produce(settings, settings.topic_transactions, records)
        wait_for(lambda: "Redis evicted" in worker_env.log(), timeout=90,
                 what="the eviction warning", worker=worker_env)  # fmt: skip
    finally:
        await redis.config_set("maxmemory", before["maxmemory"])
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"])
        await redis.aclose()
    assert re.search(
        r"Redis evicted \d+ keys in the last \d+ s \(maxmemory [\d.]+[KM], "
        r"maxmemory-policy allkeys-lru\): window state was lost",
        worker_env.log(),
    )
    evicted = worker_env.metrics().get(("streamer_redis_evicted_keys", ()), 0)
    assert evicted > 0, worker_env.metrics()


def _own_redis(port: int, root: Path) -> subprocess.Popen[bytes]:
    """A redis-server without persistence on ``port``, answering PING."""
    server = shutil.which("redis-server")
    assert server is not None, "`fraud-streamer stack up` installs redis-server"
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(root)]  # fmt: skip
    with (root / "redis.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    with redis.Redis(port=port, socket_timeout=1) as client:
        while True:
            assert process.poll() is None, (root / "redis.log").read_text()
            assert time.monotonic() < deadline, "the test's Redis did not answer"
            try:
                client.ping()
                return process
            except redis.ConnectionError:
                time.sleep(0.1)


async def _deciding_on_own_redis(
    worker: WorkerEnv, port: int, root: Path
) -> subprocess.Popen[bytes]:
    """Start a Redis of the test's own on ``port`` (it kills and restarts it), a worker on it,
    and have the worker decide 300 transactions (a0 … a299, a card each); returns the server."""
    server = _own_redis(port, root)
    try:
        worker.env["STREAMER_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        settings = worker.settings
        worker.start_worker()
        first = [(f"c-{i}".encode(), _tx(f"a{i}", customer_id=f"c-{i}")) for i in range(300)]
        await produce(settings, settings.topic_transactions, first)
        await consume_until(settings, settings.topic_decisions,
                            ids={f"a{i}" for i in range(300)}, worker=worker)  # fmt: skip
    except BaseException:
        server.kill()
        server.wait()
        raise
    return server


def _wait_for_the_key_gauge(worker: WorkerEnv) -> None:
    """Until the worker has read the state's size at least once (what a restart is told by)."""
    wait_for(lambda: worker.metrics().get(("streamer_redis_keys", ()), 0) >= 300,
             timeout=60, what="the Redis key gauge", worker=worker)  # fmt: skip


async def test_a_redis_restarted_empty_under_a_running_worker_is_reported(
    worker_env: WorkerEnv, stack: Settings, tmp_path: Path
) -> None:
    """A Redis restarted without persistence comes back empty, and a worker would go on
    scoring on empty windows with no error at all. Here the worker's Redis is SIGKILLed and
    started again on its port: the worker rides out the restart (its batch's calls are sent
    again), decides what comes next, and says — once, in its log and /metrics — that the
    state was lost, naming the node and `rebuild-state`."""
    port, server = free_port(), None
    settings = worker_env.settings
    losses = ("streamer_redis_state_losses_total", ())
    try:
        server = await _deciding_on_own_redis(worker_env, port, tmp_path)
        _wait_for_the_key_gauge(worker_env)
        assert worker_env.metrics().get(losses) == 0

        server.kill()
        server.wait()
        then = [(f"c-{i}".encode(), _tx(f"b{i}", customer_id=f"c-{i}")) for i in range(20)]
        await produce(settings, settings.topic_transactions, then)
        # the worker's batch fails on the connection meanwhile (it sends it again for 30 s)
        wait_for(lambda: "Redis failed" in worker_env.log(), timeout=20,
                 what="the batch to fail on the stopped server", worker=worker_env)  # fmt: skip
        server = _own_redis(port, tmp_path)
        await consume_until(settings, settings.topic_decisions, ids={f"b{i}" for i in range(20)},
                            worker=worker_env)  # fmt: skip
        wait_for(lambda: "the window state was lost" in worker_env.log(), timeout=60,
                 what="the state-loss error", worker=worker_env)  # fmt: skip
    finally:
        if server is not None:
            server.kill()
            server.wait()
    log = worker_env.log()
    assert re.search(
        r"\[ERROR\] The Redis server restarted \(its run_id changed\) and holds \d+ keys in db "
        r"0 \([\d,]+ before\): the window state was lost, .*run `fraud-streamer rebuild-state`",
        log,
    ), log
    assert log.count("the window state was lost") == 1, log
    assert "Redis answered again after" in log, log  # the batch caught by the restart
    assert worker_env.metrics().get(losses) == 1
    assert worker_env.processes[0].poll() is None, "the worker rode the restart out"


async def test_a_redis_restarted_from_an_older_snapshot_is_warned_of(
    worker_env: WorkerEnv, tmp_path: Path
) -> None:
    """A Redis that restarts from a snapshot comes back with most of its keys, and without the
    writes since: not a loss by count, but the worker warns that unsaved writes are lost and
    names `rebuild-state`."""
    port, server = free_port(), None
    settings = worker_env.settings
    try:
        server = await _deciding_on_own_redis(worker_env, port, tmp_path)
        with redis.Redis(port=port) as client:
            client.save()  # the snapshot it will come back from
        then = [(f"c-{i}".encode(), _tx(f"b{i}", customer_id=f"c-{i}")) for i in range(20)]
        await produce(settings, settings.topic_transactions, then)
        await consume_until(settings, settings.topic_decisions, ids={f"b{i}" for i in range(20)},
                            worker=worker_env)  # fmt: skip
        _wait_for_the_key_gauge(worker_env)
        server.kill()
        server.wait()
        server = _own_redis(port, tmp_path)  # loads the snapshot: the b's are not in it
        wait_for(lambda: "writes it had not saved" in worker_env.log(), timeout=60,
                 what="the restart warning", worker=worker_env)  # fmt: skip
    finally:
        if server is not None:
            server.kill()
            server.wait()
    log = worker_env.log()
    assert re.search(
        r"\[WARNING\] The Redis server restarted \(its run_id changed\) and holds [\d,]+ keys in "
        r"db 0 \([\d,]+ before\): writes it had not saved .*run `fraud-streamer rebuild-state`",
        log,
    ), log
    assert "the window state was lost" not in log, log
    assert worker_env.metrics().get(("streamer_redis_state_losses_total", ())) == 0


async def test_the_worker_reports_drift_against_its_model_s_profile(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame
) -> None:
    """Traffic like the model's history keeps every input's PSI low; a producer that starts
    sending amounts four times too large (a unit change, say) shows as TX_AMOUNT drifting, in
    /metrics and the log, long before any label could tell."""
    settings = worker_env.settings
    worker_env.start_worker()

    def psi(name: str) -> float | None:
        return worker_env.metrics().get(("streamer_drift_psi", (("input", name),)))

    ordinary = replay_slice.head(2_000)
    await produce(settings, settings.topic_transactions,
                  [(k, v) for _, k, v in encode_transactions(ordinary)])  # fmt: skip
    wait_for(lambda: psi("TX_AMOUNT") is not None, timeout=60, what="the drift gauges",
             worker=worker_env)  # fmt: skip
    assert psi("TX_AMOUNT") < 0.1, worker_env.metrics()  # type: ignore[operator]
    # (the card's window features drift indeed: this worker starts from empty windows)
    assert "model input TX_AMOUNT has drifted" not in worker_env.log()

    shifted = replay_slice.iloc[2_000:7_000].assign(amount=lambda f: f["amount"] * 4)
    await produce(settings, settings.topic_transactions,
                  [(k, v) for _, k, v in encode_transactions(shifted)])  # fmt: skip
    wait_for(lambda: (psi("TX_AMOUNT") or 0) > 0.25, timeout=90, what="TX_AMOUNT to drift",
             worker=worker_env)  # fmt: skip
    wait_for(lambda: "model input TX_AMOUNT has drifted" in worker_env.log(), timeout=30,
             what="the drift warning", worker=worker_env)  # fmt: skip
    summary = worker_env.summary()
    assert summary is not None and "TX_AMOUNT" in summary["drift"], summary


async def test_a_batch_whose_decisions_cannot_be_published_is_replayed_not_lost(
    worker_env: WorkerEnv,
) -> None:
    """The broker refuses the decisions (the topic's size limit cut below one decision): the
    worker must not ack the batch, however far ahead its Redis work has gone. It exits with
    status 70 naming the failure, and the worker started after it decides the transaction,
    once."""
    settings = worker_env.settings
    await produce(settings, settings.topic_transactions, [(b"c-1", _tx("warm"))])
    worker_env.start_worker()
    await consume_until(settings, settings.topic_decisions, ids={"warm"}, worker=worker_env)

    topic = settings.topic_decisions
    await _set_topic_config(settings, topic, {"max.message.bytes": "64"})
    try:
        await produce(settings, settings.topic_transactions, [(b"c-1", _tx("refused"))])
        first = worker_env.processes[0]
        await asyncio.to_thread(first.wait, 60)
        assert first.returncode == 70, worker_env.log()
        failed = "failed while deciding and publishing; exiting so it is replayed"
        assert failed in worker_env.log(), worker_env.log()
    finally:
        await _set_topic_config(settings, topic, {"max.message.bytes": "1048588"})

    worker_env.start_worker()
    decided = await consume_until(settings, topic, ids={"warm", "refused"}, worker=worker_env,
                                  settled=True)  # fmt: skip
    ids = [json.loads(r.value)["transaction_id"] for r in decided]
    assert ids.count("refused") == 1, ids


async def _set_topic_config(settings: Settings, topic: str, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()
