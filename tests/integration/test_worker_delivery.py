"""The worker on real Kafka and Redis: crash recovery, exactly-once effects, parity with training.

Most tests produce (and apply) the labels before the transactions, which keeps what they test
apart from when labels arrive; a label only counts for transactions at or after its report
time, so sending it early changes nothing else. One test replays both together, as
``fraud-streamer produce`` does, against a worker that keeps up.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
from aiokafka.partitioner import DefaultPartitioner
from redis.asyncio import Redis

from models.dataset import FeatureSet, build_features, feature_events
from models.registry import ModelRegistry
from schemas import Alert, Decision
from streamer.bench.infra import free_port
from streamer.features.definitions import FEATURE_NAMES
from streamer.features.keys import RATES_KEY, customer_window_key, terminal_keys
from streamer.features.store import RedisFeatureStore
from streamer.kafka_reading import consumer_group_state, read_to_end, topics_partitions
from streamer.local_redis_cluster import LocalCluster
from streamer.local_redis_sentinel import LocalSentinel
from streamer.processes import alive
from streamer.redis_client import connect
from streamer.replay import encode_labels, encode_transactions, merged_records, replay
from streamer.scoring import Scorer
from streamer.settings import Settings
from streamer.stack import LocalStack
from tests.integration.conftest import on_cluster, on_redis
from tests.integration.harness import (
    WorkerEnv,
    consume_until,
    produce,
    run_cli,
    run_cli_streams,
    wait_for,
)

#: how far decisions may run ahead of pending transactions before the fleet's alert fires
#: (FraudStreamerWorkersApartInEventTime in stack/prometheus/alerts.yml), in ms
ALERT_APART_MS = 3 * 86_400_000

VOLATILE = {"decided_at", "processing_ms"}


def _worker_scores(
    registry: ModelRegistry, offline: FeatureSet, decisions: list[Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(scores the worker published, scores of the training features), rule hits left out."""
    by_id = {d["transaction_id"]: d for d in decisions}
    ids = offline.frame["transaction_id"]
    rule_free = np.array(
        [
            not by_id[t]["reasons"] or not by_id[t]["reasons"][0]["code"].startswith("RULE_")
            for t in ids
        ]
    )
    got = np.array([by_id[t]["score"] for t in ids])
    expected = Scorer(registry.load()).score(offline.X)
    return got[rule_free], expected[rule_free]


class _Published(dict[str, Any]):
    """A decision read back, parsed, with the bytes it was published as."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(json.loads(raw))
        self.raw = raw


def _stable(decision: _Published) -> bytes:
    """The bytes of a published decision without the values of the fields a re-delivery may
    change (the contract: repeats are byte-identical apart from those)."""
    assert set(decision) >= VOLATILE
    fields = "|".join(VOLATILE)
    return re.sub(rf'("(?:{fields})":)("[^"]*"|[-+.eE0-9]+)'.encode(), rb"\1", decision.raw)


def _one_decision_each(decisions: list[_Published], wanted: set[str]) -> int:
    """Check every wanted transaction was decided and a repeat is the same decision; returns
    how many repeats there were."""
    by_id: dict[str, _Published] = {}
    repeated = 0
    for d in decisions:
        Decision.model_validate(d)
        previous = by_id.setdefault(d["transaction_id"], d)
        if previous is not d:
            repeated += 1
            assert _stable(previous) == _stable(d), d["transaction_id"]
    assert set(by_id) == wanted
    return repeated


async def _assert_one_alert_each(worker: WorkerEnv, decisions: list[dict[str, Any]]) -> None:
    """Every review or decline has its alert, saying what its decision says, and nothing else
    has one; an alert published again is the same alert but for when it was raised."""
    first = {d["transaction_id"]: d for d in reversed(decisions)}  # the first of each id
    flagged = {t for t, d in first.items() if d["decision"] != "approve"}
    assert flagged, "the history should have flagged some transactions"
    records = await consume_until(worker.settings, worker.settings.topic_alerts, ids=flagged,
                                  timeout=60, worker=worker, settled=True)  # fmt: skip
    by_id: dict[str, dict[str, Any]] = {}
    for alert in map(json.loads, (r.value for r in records)):
        Alert.model_validate(alert)
        previous = by_id.setdefault(alert["transaction_id"], alert)
        assert {**previous, "created_at": None} == {**alert, "created_at": None}
        decision = first[alert["transaction_id"]]
        for field in ("decision", "score", "reasons", "model_version", "amount", "customer_id"):
            assert alert[field] == decision[field], (field, alert, decision)
    assert set(by_id) == flagged


async def _assert_stored_once(settings: Settings, frame: pd.DataFrame) -> None:
    """Each customer's and each terminal's window set in Redis holds each of its transactions
    exactly once (the frame's labels are for its own transactions)."""
    redis = connect(settings.redis_url, cluster=settings.redis_cluster)
    try:
        per_customer = frame.groupby("customer_id")["transaction_id"].nunique()
        for customer, count in per_customer.items():
            assert await redis.zcard(customer_window_key(str(customer))) == count, customer
        per_terminal = frame.groupby("terminal_id")["transaction_id"].nunique()
        for terminal, count in per_terminal.items():
            assert await redis.zcard(terminal_keys(str(terminal))[0]) == count, terminal
    finally:
        await redis.aclose()


async def _assert_state_is_the_training_one(settings: Settings, offline: FeatureSet) -> None:
    """The Redis state holds each transaction once, and asking Redis again for the history's
    features (an idempotent replay) gives exactly the training features."""
    await _assert_stored_once(settings, offline.frame)
    redis = Redis.from_url(settings.redis_url)
    try:
        store = RedisFeatureStore(redis)
        events = feature_events(offline.frame)
        again = np.vstack(
            [
                (await store.enrich(events[i : i + 1000])).features
                for i in range(0, len(events), 1000)
            ]
        )
    finally:
        await redis.aclose()
    np.testing.assert_allclose(again, offline.X, rtol=0, atol=1e-9)


async def _start_with_labels(worker: WorkerEnv, frame: pd.DataFrame) -> None:
    """Produce the frame's labels, start the worker and wait until it has applied them all."""
    settings = worker.settings
    labels = encode_labels(frame)
    await produce(settings, settings.topic_labels, [(k, v) for _, k, v in labels])
    worker.start_worker()
    wait_for(
        lambda: (worker.summary() or {}).get("totals", {}).get("consumed_labels", 0) >= len(labels),
        timeout=90,
        what="labels to be applied",
        worker=worker,
    )


async def _produce_transactions(worker: WorkerEnv, frame: pd.DataFrame) -> int:
    settings = worker.settings
    txs = encode_transactions(frame)
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in txs])
    return len(txs)


async def _backlog(worker: WorkerEnv, frame: pd.DataFrame) -> int:
    """Labels first (see the module docstring), then the worker stops: the transactions become
    one backlog that the restarted worker drains from the earliest offset. Returns how many."""
    await _start_with_labels(worker, frame)
    worker.stop_all()
    n = await _produce_transactions(worker, frame)
    worker.start_worker()
    return n


def _event_times(samples: dict[Any, float]) -> tuple[float, float]:
    """A worker's (latest decided, earliest pending transaction) event times, in seconds."""
    pending = ("streamer_pending_event_time_seconds", (("input", "transactions"),))
    return (
        samples.get(("streamer_decided_event_time_seconds", ()), 0.0),
        samples.get(pending, math.inf),
    )


class _Drain(NamedTuple):
    """What a worker's /metrics showed while it drained a backlog."""

    most_lag: float  # the highest total transactions lag seen
    lag: dict[tuple[str, str], float]  # the last lag per (topic role, partition)
    ages: float  # record ages observed
    #: each time transactions were pending: how far the latest decided one was past the
    #: earliest pending one (ms of event time): what the fleet's alert compares
    ahead_ms: list[float]


def _watch_drain(worker: WorkerEnv, n: int) -> _Drain:
    """Poll the worker's /metrics until it has aged ``n`` transactions and reports no lag."""
    settings = worker.settings
    roles = {settings.topic_transactions: "transactions", settings.topic_labels: "labels"}
    most, ahead, deadline = 0.0, [], time.monotonic() + 240
    while time.monotonic() < deadline:
        samples = worker.metrics()
        lag = {
            (roles[dict(labels)["topic"]], dict(labels)["partition"]): value
            for (name, labels), value in samples.items()
            if name == "streamer_consumer_lag_records"
        }
        most = max(most, sum(v for (role, _), v in lag.items() if role == "transactions"))
        decided, pending = _event_times(samples)
        if pending < math.inf and decided > 0:
            ahead.append((decided - pending) * 1000)
        ages = samples.get(
            ("streamer_record_age_seconds_count", (("topic", settings.topic_transactions),)), 0.0
        )
        if ages >= n and lag and not any(lag.values()):
            return _Drain(most, lag, ages, ahead)
        time.sleep(0.2)
    pytest.fail(f"the metrics did not settle: lag {lag}, {ages} ages of {n}\n{worker.logs()}")


def _wait_for_a_third(worker: WorkerEnv, n: int) -> None:
    """Wait until the (first) worker has consumed a third of a stream of ``n`` transactions."""
    wait_for(
        lambda: (
            (worker.summary() or {}).get("totals", {}).get("consumed_transactions", 0) >= n // 3
        ),
        timeout=120,
        what="a third of the stream",
        worker=worker,
    )


async def _killed_a_third_in(worker: WorkerEnv, frame: pd.DataFrame) -> int:
    """Start a worker on the frame's labels, send its transactions, and SIGKILL the worker once
    it has consumed a third of them (well into work it has not committed). Returns how many."""
    await _start_with_labels(worker, frame)
    n = await _produce_transactions(worker, frame)
    first = worker.processes[0]
    _wait_for_a_third(worker, n)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    return n


async def _decisions(worker: WorkerEnv, ids: set[str]) -> list[_Published]:
    """Every decision on the topic once each of ``ids`` has one and the group has committed
    all its input (a late repeat included)."""
    settings = worker.settings
    records = await consume_until(
        settings, settings.topic_decisions, ids=ids, timeout=240, worker=worker, settled=True
    )
    return [_Published(r.value) for r in records]


async def _assert_training_parity(
    worker: WorkerEnv,
    features_topic: str,
    offline: FeatureSet,
    registry: ModelRegistry,
    decisions: list[dict[str, Any]],
) -> None:
    """Every vector the worker logged (first deliveries and re-deliveries alike) is the
    training set's for that transaction, and so is every score it published (rule hits aside).
    (Not one record per decision: a kill can land between a batch's decisions and its log.)"""
    wanted = set(offline.frame["transaction_id"])
    logged = await consume_until(
        worker.settings, features_topic, ids=wanted, timeout=60, worker=worker, settled=True
    )
    row = {t: i for i, t in enumerate(offline.frame["transaction_id"])}
    for record in map(json.loads, (r.value for r in logged)):
        vector = [record["features"][name] for name in FEATURE_NAMES]
        np.testing.assert_allclose(
            vector, offline.X[row[record["transaction_id"]]], rtol=0, atol=1e-9
        )
    got, expected = _worker_scores(registry, offline, decisions)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


async def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame, registry: ModelRegistry
) -> None:
    # commit rarely, so that the kill surely lands after work that was never committed
    worker_env.env["STREAMER_COMMIT_INTERVAL_S"] = "15"
    # and log the vector each decision was scored on, to compare it with the training set
    features_topic = f"{worker_env.settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    settings = worker_env.settings
    n = await _killed_a_third_in(worker_env, replay_slice)
    worker_env.start_worker()

    wanted = set(replay_slice["transaction_id"])
    decisions = await _decisions(worker_env, wanted)

    # every valid transaction has a decision, and a repeated decision is the same decision
    repeated = _one_decision_each(decisions, wanted)
    assert repeated > 0, "the kill should have forced re-deliveries"
    print(f"{n} transactions, {len(decisions)} decisions, {repeated} re-deliveries")
    await _assert_one_alert_each(worker_env, decisions)

    # parity: the features the worker computed from Redis at decision time — first deliveries
    # and re-deliveries alike — are the training features, and so are its scores
    offline = build_features(replay_slice)
    await _assert_training_parity(worker_env, features_topic, offline, registry, decisions)

    # no window counted a transaction twice
    await _assert_state_is_the_training_one(settings, offline)


async def test_sigkill_after_commits_replays_only_what_was_not_committed(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame, registry: ModelRegistry
) -> None:
    """The worker commits often here, and dies once part of the stream is committed and part
    is not: what it committed must be exactly what it had published (the next owner starts
    there), with transactions still held in the event-time merge, in batches on their way,
    and not read yet. A commit past a held or unpublished record would lose it."""
    worker_env.env["STREAMER_COMMIT_INTERVAL_S"] = "0.5"
    features_topic = f"{worker_env.settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    settings = worker_env.settings
    # partition 0 busier than the others: the merge holds the others' records it has read
    frame = _lopsided(replay_slice, settings.partitions)
    await _start_with_labels(worker_env, frame)
    n = await _produce_transactions(worker_env, frame)
    tps = (await topics_partitions(settings, [settings.topic_transactions]))[
        settings.topic_transactions
    ] or []
    first = worker_env.processes[0]
    deadline = time.monotonic() + 120
    while True:  # until a part is committed and more than a tenth is not
        _, lag = await consumer_group_state(settings, settings.consumer_group, tps)
        left = lag[settings.topic_transactions]
        if left < n - n // 10 and left > n // 10:
            break
        if time.monotonic() > deadline or left <= n // 10:
            pytest.fail(f"no moment with part of the stream committed: {left} of {n} left\n"
                        f"{worker_env.stalled()}")  # fmt: skip
        await asyncio.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    worker_env.start_worker()

    wanted = set(frame["transaction_id"])
    decisions = await _decisions(worker_env, wanted)
    repeated = _one_decision_each(decisions, wanted)
    print(f"killed with {n - left} of {n} committed; {repeated} re-deliveries")
    await _assert_one_alert_each(worker_env, decisions)
    offline = build_features(frame)
    await _assert_training_parity(worker_env, features_topic, offline, registry, decisions)
    await _assert_state_is_the_training_one(settings, offline)


async def test_a_redis_that_stays_silent_past_the_retries_stops_the_worker_losing_nothing(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame
) -> None:
    """Redis holds every command (``CLIENT PAUSE``) for longer than the worker retries a
    batch (STREAMER_REDIS_RETRY_S): the worker exits 70 with the batch uncommitted, and the
    next one, once Redis answers, decides every transaction, each window counting it once."""
    worker_env.env["STREAMER_REDIS_RETRY_S"] = "1"
    worker_env.env["STREAMER_REDIS_TIMEOUT_S"] = "0.3"
    settings = worker_env.settings
    frame = replay_slice.head(3000)
    first, second = frame.iloc[:1500], frame.iloc[1500:]
    worker_env.start_worker()
    await _produce_transactions(worker_env, first)
    await _decisions(worker_env, set(first["transaction_id"]))

    pause = Redis.from_url(settings.redis_url)
    try:
        # long enough for a slow machine to produce and fetch the second half, and then give up
        await pause.execute_command("CLIENT", "PAUSE", 15_000, "ALL")
        resumes = time.monotonic() + 15.5
        await _produce_transactions(worker_env, second)
        stopped = worker_env.processes[0]
        wait_for(lambda: stopped.poll() is not None, timeout=30, what="the worker to give up",
                 worker=worker_env)  # fmt: skip
    finally:
        await pause.aclose()
    log = worker_env.log()
    assert stopped.returncode == 70, log
    assert "failed in the feature store; exiting so it is replayed" in log, log

    await asyncio.sleep(max(0.0, resumes - time.monotonic()))  # Redis answers again
    worker_env.start_worker()
    wanted = set(frame["transaction_id"])
    _one_decision_each(await _decisions(worker_env, wanted), wanted)
    await _assert_stored_once(settings, frame)


async def test_a_worker_killed_and_replaced_at_other_exchange_rates_repeats_its_decisions(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame
) -> None:
    """A worker is SIGKILLed a third of the way into a stream in euros, dollars and yen, the
    rates change (`fraud-streamer rates`: the dollar's, and the yen gets one), and a new worker
    decides the rest at the new rates. What the first worker published and never committed is
    delivered again: each repeat is the decision it was — a dollar amount converted at the old
    rate, a yen amount reviewed for want of one — while what is new is decided at the new
    rates."""
    settings = worker_env.settings
    worker_env.env["STREAMER_COMMIT_INTERVAL_S"] = "15"  # the kill lands on uncommitted work
    worker_env.env["STREAMER_EXCHANGE_RATES"] = '{"USD": 0.5}'
    features_topic = f"{settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    currency = np.array(["EUR", "USD", "JPY"])[np.arange(len(replay_slice)) % 3]
    per_unit = pd.Series(currency).map({"EUR": 1.0, "USD": 2.0, "JPY": 1.0}).to_numpy()
    written = replay_slice.assign(amount=replay_slice["amount"] * per_unit, currency=currency)
    paid_in = dict(zip(written["transaction_id"], currency.tolist(), strict=True))
    in_euros = dict(zip(replay_slice["transaction_id"], replay_slice["amount"], strict=True))
    n = await _killed_a_third_in(worker_env, written)
    before: set[str] = set()  # what the killed worker published
    await read_to_end(settings, settings.topic_decisions,
                      lambda r: before.add(json.loads(r.value)["transaction_id"]))  # fmt: skip
    run_cli(worker_env, "rates", "set", "USD=0.25", "JPY=0.01")
    worker_env.start_worker()

    wanted = set(written["transaction_id"])
    decisions = await _decisions(worker_env, wanted)
    repeated = _one_decision_each(decisions, wanted)  # a repeat is the same decision
    first_seen: dict[str, dict[str, Any]] = {}
    repeats: dict[str, int] = {}
    for d in decisions:
        if d["transaction_id"] in first_seen:
            repeats[paid_in[d["transaction_id"]]] = repeats.get(paid_in[d["transaction_id"]], 0) + 1
        first_seen.setdefault(d["transaction_id"], d)
    assert repeats.get("JPY", 0) > 0 and repeats.get("USD", 0) > 0, repeats
    # yen: what the first worker decided had no rate, on its repeats too; the new one has
    unrated = {t for t, d in first_seen.items()
               if any(r["code"] == "CURRENCY_NOT_CONVERTED" for r in d["reasons"])}  # fmt: skip
    yen = {t for t, c in paid_in.items() if c == "JPY"}
    assert yen & before <= unrated <= yen
    assert yen - unrated, "the yen's new rate was never taken up"
    # dollars: each converted at one of the two rates, the old one for all the first worker
    # published (its repeats included), the new one for none of those
    logged = await consume_until(settings, features_topic, ids=wanted, worker=worker_env,
                                 settled=True)  # fmt: skip
    usd_amounts: dict[str, set[float]] = {}
    for value in map(json.loads, (r.value for r in logged)):
        tx = value["transaction_id"]
        if paid_in[tx] == "USD":
            usd_amounts.setdefault(tx, set()).add(value["features"]["TX_AMOUNT"])
    assert all(len(a) == 1 for a in usd_amounts.values()), "a repeat converted anew"
    old = {t for t, (a,) in usd_amounts.items() if a == pytest.approx(in_euros[t])}
    new = {t for t, (a,) in usd_amounts.items() if a == pytest.approx(in_euros[t] / 2)}
    usd = {t for t, c in paid_in.items() if c == "USD"}
    assert old | new == set(usd_amounts) == usd and not old & new
    assert usd & before <= old and new and not new & before
    await _assert_stored_once(settings, written)
    print(f"{n} transactions, {repeated} re-deliveries by currency {repeats}, "
          f"{len(yen - unrated)} of {len(yen)} yen and {len(new)} of {len(usd)} dollars decided "
          "at the new rates")  # fmt: skip


async def test_a_worker_on_a_redis_cluster_loses_nothing_to_sigkill_and_keeps_parity(
    cluster_worker_env: WorkerEnv,
    redis_cluster: LocalCluster,
    replay_slice: pd.DataFrame,
    registry: ModelRegistry,
) -> None:
    """With ``STREAMER_REDIS_CLUSTER`` the state is spread over the cluster's nodes by hash
    slot: a worker killed mid-stream and restarted still decides each transaction once, on the
    training features, and the blocklist (one key, on one node) still declines by rule."""
    worker = cluster_worker_env
    worker.env["STREAMER_COMMIT_INTERVAL_S"] = "15"
    features_topic = f"{worker.settings.topic_decisions}-features"
    worker.env["STREAMER_TOPIC_FEATURES"] = features_topic
    settings = worker.settings
    frame = replay_slice.head(8_000)
    blocked = str(frame["customer_id"].iloc[-1])
    assert "1 customer(s) added" in run_cli(worker, "blocklist", "add", "customer", blocked)
    await _start_with_labels(worker, frame)
    n = await _produce_transactions(worker, frame)
    _wait_for_a_third(worker, n)
    worker.processes[0].send_signal(signal.SIGKILL)
    worker.processes[0].wait(timeout=10)
    worker.start_worker()

    wanted = set(frame["transaction_id"])
    decisions = await _decisions(worker, wanted)
    assert _one_decision_each(decisions, wanted) > 0, "the kill should have forced re-deliveries"
    offline = build_features(frame)
    await _assert_training_parity(worker, features_topic, offline, registry, decisions)
    theirs = [d for d in decisions if d["customer_id"] == blocked]
    assert theirs and all(
        d["decision"] == "decline" and d["reasons"][0]["code"] == "RULE_CUSTOMER_BLOCKED"
        for d in theirs
    )
    await _assert_stored_once(settings, offline.frame)
    for i in range(len(redis_cluster.ports)):  # the state is spread, not on one node
        with redis_cluster.node(i) as node:
            assert node.dbsize() > 100, f"node {i} holds almost nothing"
    # the memory gauge sums the primaries (read every 10 s)
    wait_for(
        lambda: worker.metrics().get(("streamer_redis_memory_bytes", (("kind", "used"),)), 0) > 0,
        timeout=30,
        what="the Redis memory gauge",
        worker=worker,
    )


async def test_a_cluster_primary_killed_mid_stream_is_ridden_out_by_its_replica(
    worker_env: WorkerEnv, replicated_cluster: LocalCluster, replay_slice: pd.DataFrame,
    registry: ModelRegistry,
) -> None:
    """SIGKILL one of a Redis Cluster's three primaries while a worker decides a paced stream:
    its replica takes over its slots, and the worker rides that out by itself — it sends the
    batch's calls again until they go through, no exit, no restart. Every transaction is
    decided, a repeat the same decision, each is stored once, on the training features. On a
    plain cluster, and on one behind TLS only (the bus and replication too)."""
    worker = on_cluster(worker_env, replicated_cluster)
    await _ride_out_a_failover(worker, replicated_cluster, 1, replay_slice, registry)


async def test_a_primary_killed_mid_stream_is_found_again_through_its_sentinels(
    worker_env: WorkerEnv, sentinel_redis: LocalSentinel, replay_slice: pd.DataFrame,
    registry: ModelRegistry,
) -> None:
    """The same on a single Redis made highly available by Sentinel (a ``redis+sentinel://``
    URL): SIGKILL the primary mid-stream; the Sentinels promote its replica, and the worker,
    asking them again as it reconnects, carries on there with nothing lost or counted twice.
    On plain TCP, and with every server behind TLS only."""
    worker = on_redis(worker_env, sentinel_redis.url())
    await _ride_out_a_failover(worker, sentinel_redis, 0, replay_slice, registry)


async def _ride_out_a_failover(
    worker: WorkerEnv,
    redis: LocalCluster | LocalSentinel,
    victim: int,
    replay_slice: pd.DataFrame,
    registry: ModelRegistry,
) -> None:
    """Kill data node ``victim`` of ``redis`` while ``worker`` decides a paced stream, then
    check that the worker rode out the failover by itself and lost or doubled nothing."""
    features_topic = f"{worker.settings.topic_decisions}-features"
    worker.env["STREAMER_TOPIC_FEATURES"] = features_topic
    frame = replay_slice.head(8_000)
    await _start_with_labels(worker, frame)
    producing = asyncio.create_task(
        replay(worker.settings, merged_records(encode_transactions(frame), []), rate=800)
    )
    await asyncio.to_thread(_wait_for_a_third, worker, len(frame))  # while it produces
    redis.kill(victim)
    promoted = await asyncio.to_thread(redis.wait_for_failover, victim)
    await producing

    wanted = set(frame["transaction_id"])
    decisions = await _decisions(worker, wanted)
    _one_decision_each(decisions, wanted)
    assert len(worker.processes) == 1 and worker.processes[0].poll() is None, worker.log()
    log = worker.log()
    # Who sent the calls again depends on how long the failover took: redis-py retries a
    # failed pipeline itself a few times, a short outage never reaches the store's loop. When
    # it did, the store said so and said when Redis answered again. Either way the windows
    # hold every transaction once (below): those decided after the kill on the lost slots
    # were written to the promoted replica.
    if "Redis failed" in log:
        assert "Redis answered again after" in log, log
    # the promoted replica holds the state: a new run_id there is not a loss to report
    assert "the window state was lost" not in log, log
    offline = build_features(frame)
    await _assert_training_parity(worker, features_topic, offline, registry, decisions)
    await _assert_stored_once(worker.settings, offline.frame)
    with redis.node(promoted) as node:
        assert node.dbsize() > 100, "the promoted replica should hold the lost primary's state"


async def _pins(redis: Redis) -> dict[bytes, dict[bytes, bytes]]:
    """Every card's pinned verdicts (both hashes), by key."""
    keys = [key async for key in redis.scan_iter(match="fs:{c:*}:pin", count=1_000)]
    keys += [key async for key in redis.scan_iter(match="fs:{c:*}:why", count=1_000)]
    return {key: await redis.hgetall(key) for key in keys}


async def test_redis_lost_after_a_stream_is_rebuilt_from_kafka_publishing_nothing(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame
) -> None:
    """The worker decides a stream; Redis then loses everything (FLUSHDB); `rebuild-state`
    replays the topics into it: the state is the one the stream built, and no output record
    is published. The stream is written in euros, dollars and pounds: the worker and the
    rebuild both put the amounts in euros (rates 0.5 and 2 convert back exactly), so the state
    is that of the history in euros. The pound's rate is set with `fraud-streamer rates`, in
    Redis: lost with the rest, the rebuild sets it again from Kafka first and converts with it.
    A transaction in yen, which has no rate (a bad entry for it in Redis is left out), is
    replayed unconverted, and the rebuild says so."""
    worker_env.env["STREAMER_EXCHANGE_RATES"] = '{"USD": 0.5}'
    settings = worker_env.settings
    async with Redis.from_url(settings.redis_url) as early:
        await early.hset(RATES_KEY, "JPY", "-1")  # written by other means: left out
    run_cli(worker_env, "rates", "set", "GBP=2")  # recorded in Kafka with the JPY entry
    run_cli(worker_env, "blocklist", "add", "terminal", "t-stolen")  # and so is a blocklist
    await _start_with_labels(worker_env, replay_slice)
    currency = np.array(["EUR", "USD", "GBP"])[np.arange(len(replay_slice)) % 3]
    per_unit = pd.Series(currency).map({"EUR": 1.0, "USD": 2.0, "GBP": 0.5}).to_numpy()
    written = replay_slice.assign(amount=replay_slice["amount"] * per_unit, currency=currency)
    n = await _produce_transactions(worker_env, written)
    # one in yen, which has no rate, by a card and at a terminal of its own
    last = replay_slice["timestamp"].max().isoformat()  # with its offset
    yen = {"transaction_id": "yen-1", "customer_id": "c-yen", "terminal_id": "t-yen",
           "amount": 6000.0, "currency": "JPY", "timestamp": last}  # fmt: skip
    await produce(settings, settings.topic_transactions,
                  [(b"bad", b"not json"), (b"c-yen", json.dumps(yen).encode())])  # fmt: skip
    await _decisions(worker_env, {*replay_slice["transaction_id"], "yen-1"})
    worker_env.stop_all()
    await produce(settings, settings.topic_decisions, [(b"c-1", b"not a decision")])
    outputs = (settings.topic_decisions, settings.topic_alerts, settings.topic_dead_letters)
    published = await _end_offsets(settings, outputs)

    redis = Redis.from_url(settings.redis_url)
    try:
        pinned = await _pins(redis)
        await redis.flushdb()
        out, warned = run_cli_streams(worker_env, "rebuild-state")
        (member,) = await redis.zrange(customer_window_key("c-yen"), 0, -1)
        # the verdicts the worker pinned, pinned again from the decisions it published, to
        # the byte: a transaction delivered again is published as first decided
        assert len(pinned) > 100 and await _pins(redis) == pinned
    finally:
        await redis.aclose()
    assert f"from {settings.topic_decisions}'s {n + 1:,} decisions" in out, out
    assert "(1 record(s) there were not decisions)" in out, out
    labels = len(encode_labels(replay_slice))
    assert f"{n + 1:,} transactions and {labels:,} labels replayed" in out, out
    assert "(1 invalid records skipped)" in out, out
    assert f"exchange rates restored from {settings.topic_rates}: GBP=2.0, JPY=-1" in out, out
    assert "exchange rates: 1 GBP = 2 EUR, 1 USD = 0.5 EUR" in out, out
    assert f"blocklists restored from {settings.topic_blocklists}: 0 customer(s), 1 " in out
    assert run_cli(worker_env, "blocklist", "list", "terminal").split() == ["t-stolen"]
    assert "warning: the rate for JPY in fs:rates was left out: " in warned, warned
    assert "warning: 1 transaction(s) in JPY, which has no rate to EUR" in warned, warned
    assert member[:8] == struct.pack("<d", -6000.0)  # the window knows it cannot read it

    await _assert_state_is_the_training_one(settings, build_features(replay_slice))
    assert await _end_offsets(settings, outputs) == published


async def test_a_rebuild_killed_midway_completes_when_run_again(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame
) -> None:
    """`rebuild-state` is killed (SIGKILL) in the middle of its replay, leaving Redis half
    rebuilt and no verdict pinned again; run again, it gives the state the stream built, each
    transaction stored once, and the verdicts the worker had pinned: every step of a rebuild is
    idempotent, so running it again completes what a kill left."""
    settings = worker_env.settings
    await _start_with_labels(worker_env, replay_slice)
    await _produce_transactions(worker_env, replay_slice)
    await _decisions(worker_env, set(replay_slice["transaction_id"]))
    worker_env.stop_all()
    redis = Redis.from_url(settings.redis_url)
    try:
        pinned = await _pins(redis)
        windows = len([key async for key in redis.scan_iter(match="fs:*", count=1_000)])
        await redis.flushdb()
        rebuilding = subprocess.Popen([sys.executable, "-m", "streamer", "rebuild-state"],
                                      env=worker_env.env, stdout=subprocess.DEVNULL)  # fmt: skip
        try:  # killed once its replay has written a tenth of the keys
            while await redis.dbsize() < windows // 10 and rebuilding.poll() is None:
                await asyncio.sleep(0.005)
        finally:
            rebuilding.kill()
        assert rebuilding.wait(timeout=10) == -signal.SIGKILL, "it ended before it was killed"
        assert not await _pins(redis), "killed after the replay: the test proves less"
        out = run_cli(worker_env, "rebuild-state")
        assert await _pins(redis) == pinned
    finally:
        await redis.aclose()
    assert f"{len(replay_slice):,} transactions and" in out, out
    await _assert_state_is_the_training_one(settings, build_features(replay_slice))


async def test_rebuild_state_beside_a_running_worker_gives_the_stream_s_state(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame
) -> None:
    """Redis loses everything under a running worker, and `rebuild-state` replays the topics
    into it while the worker goes on deciding new transactions (the overlap is checked, not
    assumed). What the two wrote adds up: the windows hold every transaction once, and the
    transactions that come after the rebuild get exactly their training features."""
    features_topic = f"{worker_env.settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    settings = worker_env.settings
    ts = replay_slice["timestamp"]
    before, during, after = (
        replay_slice[ts < ts.quantile(0.5)],
        replay_slice[(ts >= ts.quantile(0.5)) & (ts < ts.quantile(0.75))],
        replay_slice[ts >= ts.quantile(0.75)],
    )
    await _start_with_labels(worker_env, replay_slice)
    await _produce_transactions(worker_env, before)
    await _decisions(worker_env, set(before["transaction_id"]))
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()

    def rebuild() -> tuple[str, float, float]:
        started = time.time() * 1000
        return run_cli(worker_env, "rebuild-state"), started, time.time() * 1000

    rebuilding = asyncio.create_task(asyncio.to_thread(rebuild))
    # paced, so that the worker decides while the rebuild runs; the last 800 trickle in, ten at
    # a time, for as long as the rebuild lasts (up to 40 s more), however slow it is
    bulk, trickle = during.iloc[:-800], during.iloc[-800:]
    await replay(settings, merged_records(encode_transactions(bulk), []), rate=300)
    for i in range(0, len(trickle), 10):
        if rebuilding.done():
            await replay(settings, merged_records(encode_transactions(trickle.iloc[i:]), []))
            break
        chunk = trickle.iloc[i : i + 10]
        await replay(settings, merged_records(encode_transactions(chunk), []), rate=20)
    out, started_ms, ended_ms = await rebuilding
    assert "transactions and" in out, out
    decided = await consume_until(settings, settings.topic_decisions,
                                  ids=set(during["transaction_id"]), worker=worker_env)  # fmt: skip
    # the command's first half may be Python starting up: count its second half only
    midway_ms = (started_ms + ended_ms) / 2
    meanwhile = {json.loads(r.value)["transaction_id"] for r in decided
                 if midway_ms <= r.timestamp <= ended_ms}  # fmt: skip
    assert meanwhile, "nothing was decided while the rebuild ran: the test proves nothing"

    await _produce_transactions(worker_env, after)
    logged = await consume_until(settings, features_topic, ids=set(after["transaction_id"]),
                                 worker=worker_env)  # fmt: skip
    offline = build_features(replay_slice)
    row = {t: i for i, t in enumerate(offline.frame["transaction_id"])}
    wanted = set(after["transaction_id"])
    vectors = {
        value["transaction_id"]: [value["features"][name] for name in FEATURE_NAMES]
        for value in (json.loads(r.value) for r in logged)
        if value["transaction_id"] in wanted
    }
    ids = sorted(vectors)
    got = np.array([vectors[t] for t in ids])
    np.testing.assert_allclose(got, offline.X[[row[t] for t in ids]], rtol=0, atol=1e-9)
    await _assert_stored_once(settings, replay_slice)


async def test_labels_a_worker_applies_while_the_state_is_rebuilt_are_not_undone(
    worker_env: WorkerEnv,
) -> None:
    """While `rebuild-state` replays, a running worker applies a withdrawal written after the
    rebuild read the labels; the replay then applies the fraud label it withdrew, and the mark
    is back. The rebuild reads the labels written since and applies them again: withdrawn.
    The steps are the ones :func:`rebuild` takes, with the worker's part in between."""
    from streamer.currency import Currencies
    from streamer.rebuild import apply_late_labels, read_history, replay_into

    settings = worker_env.settings

    def label(is_fraud: bool, reported: str) -> bytes:
        return json.dumps({"transaction_id": "w1", "customer_id": "c1", "terminal_id": "t1",
                           "tx_timestamp": "2018-05-01T10:00:00Z", "is_fraud": is_fraud,
                           "reported_at": reported}).encode()  # fmt: skip

    await produce(settings, settings.topic_labels, [(b"c1", label(True, "2018-05-02T10:00:00Z"))])
    client = connect(settings.redis_url)
    try:
        store = RedisFeatureStore(client)
        history = await read_history(settings, Currencies.from_settings(settings))
        assert len(history.marks) == 1
        # the worker: the fraud label, then the withdrawal written meanwhile
        withdrawal = label(False, "2018-05-03T10:00:00Z")
        await produce(settings, settings.topic_labels, [(b"c1", withdrawal)])
        worker_marks = await read_history(settings, Currencies.from_settings(settings))
        await store.apply_labels(worker_marks.marks)
        fraud = terminal_keys("t1")[1]
        assert await client.zscore(fraud, "w1") is None
        await replay_into(store, history.events, history.marks)
        assert await client.zscore(fraud, "w1") is not None  # undone by the replay
        assert await apply_late_labels(settings, store, history.label_ends) == 1
        assert await client.zscore(fraud, "w1") is None
        assert await apply_late_labels(settings, store, worker_marks.label_ends) == 0
    finally:
        await client.aclose()


async def _end_offsets(settings: Settings, topics: tuple[str, ...]) -> dict[Any, int]:
    """Each partition's end offset on ``topics``."""
    from streamer.kafka import make_consumer, running
    from streamer.kafka_reading import partitions

    tps = [tp for topic in topics for tp in partitions(topic, settings.partitions)]
    async with running(make_consumer(settings, group_id=None)) as consumer:
        return dict(await consumer.end_offsets(tps))


async def test_labels_replayed_with_their_transactions_count_from_their_report_time(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame
) -> None:
    """A paced replay writes each label when event time reaches its report time, to its own
    topic, while the worker keeps up. Every label reported at or before a transaction's time
    must be applied before that transaction is decided, however the two topics' fetches
    interleave: the features equal the training features. (With labels applied by an agent of
    their own, in half-second batches, 1,229 of these 12,000 vectors differed.)"""
    features_topic = f"{worker_env.settings.topic_decisions}-features"
    worker_env.env["STREAMER_TOPIC_FEATURES"] = features_topic
    settings = worker_env.settings
    frame = replay_slice.head(12_000)
    worker_env.start_worker()
    wait_for(lambda: worker_env.summary() is not None, timeout=60, what="the worker",
             worker=worker_env)  # fmt: skip
    records = merged_records(encode_transactions(frame), encode_labels(frame))
    stats = await replay(settings, records, rate=400)
    assert stats.labels > 500  # (those reported after the last transaction are not sent)
    wanted = set(frame["transaction_id"])
    logged = await consume_until(settings, features_topic, ids=wanted, timeout=240,
                                 worker=worker_env)  # fmt: skip
    offline = build_features(frame)
    row = {t: i for i, t in enumerate(offline.frame["transaction_id"])}
    ids = [json.loads(r.value)["transaction_id"] for r in logged]
    got = np.array([[json.loads(r.value)["features"][name] for name in FEATURE_NAMES]
                    for r in logged])  # fmt: skip
    expected = offline.X[[row[t] for t in ids]]
    differ = np.flatnonzero(np.abs(got - expected).max(axis=1) > 1e-9)
    examples = [
        (ids[k], [FEATURE_NAMES[c] for c in np.flatnonzero(np.abs(got[k] - expected[k]) > 1e-9)])
        for k in differ[:3]
    ]
    assert not len(differ), f"{len(differ)} of {len(logged)} feature vectors differ: {examples}"


async def test_a_broker_killed_and_restarted_mid_stream_loses_nothing(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame, registry: ModelRegistry, stack: Settings
) -> None:
    """SIGKILL the Kafka broker a third of the way into a stream, start it again: the worker
    rides it out by itself (no restart), and every transaction is decided — a repeat the same
    decision — stored once and scored as in order."""
    local = LocalStack(stack)
    kafka = (await asyncio.to_thread(local.status))[0]  # it probes with its own event loop
    if not kafka.ours or kafka.pid is None:
        pytest.fail(
            "this test kills and restarts the broker: it needs one started by "
            "`fraud-streamer stack up` from this checkout",
            pytrace=False,
        )
    settings = worker_env.settings
    await _start_with_labels(worker_env, replay_slice)
    n = await _produce_transactions(worker_env, replay_slice)
    _wait_for_a_third(worker_env, n)
    os.killpg(kafka.pid, signal.SIGKILL)
    # a killed JVM takes a moment to go: until then `up` sees it running and starts nothing
    killed = kafka.pid
    wait_for(
        lambda: not alive(killed),
        timeout=30,
        what="the killed broker to be gone",
        worker=worker_env,
    )
    await asyncio.to_thread(local.up)  # Redis is reused; Kafka starts again on the same data

    wanted = set(replay_slice["transaction_id"])
    decisions = await _decisions(worker_env, wanted)
    repeated = _one_decision_each(decisions, wanted)
    print(f"{n} transactions, {len(decisions)} decisions, {repeated} re-deliveries")
    assert worker_env.processes[0].poll() is None, worker_env.logs()
    assert len(worker_env.processes) == 1  # the same worker throughout
    got, expected = _worker_scores(registry, build_features(replay_slice), decisions)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    await _assert_stored_once(settings, replay_slice)


async def test_scaling_out_and_in_mid_stream_loses_nothing_and_counts_nothing_twice(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame, tmp_path: Path
) -> None:
    """A second worker joins while the first drains a backlog, then the first leaves (SIGTERM,
    as a scale-in does): the partitions move twice, with events held in the first worker's
    event-time merge each time, and still every transaction is decided, a repeated decision is
    the same decision, and Redis holds each transaction once.

    Half the transactions are a backlog; most of the rest follow at a steady pace, and the last
    2,000 only once the first worker has left, so that it leaves with work still to come
    however fast the machine is."""
    worker_env.env["STREAMER_COMMIT_INTERVAL_S"] = "5"  # so that handed-over work is replayed
    settings = worker_env.settings
    await _start_with_labels(worker_env, replay_slice)
    txs = encode_transactions(replay_slice)
    n, half, tail = len(txs), len(txs) // 2, len(txs) - 2_000
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in txs[:half]])
    paced = asyncio.create_task(replay(settings, merged_records(txs[half:tail], []), rate=600))
    first = worker_env.processes[0]

    def consumed(port: int | None = None) -> int | None:
        """Transactions a worker has consumed (None while its dashboard does not answer)."""
        summary = worker_env.summary(port)
        return None if summary is None else int(summary["totals"].get("consumed_transactions", 0))

    await asyncio.to_thread(
        wait_for, lambda: (consumed() or 0) >= n // 4, timeout=120, what="a quarter",
        worker=worker_env,
    )  # fmt: skip
    port = free_port()
    worker_env.start_worker(
        STREAMER_WEB_PORT=str(port), STREAMER_DATA_DIR=str(tmp_path / "second")
    )
    # the group rebalanced and the newcomer took partitions
    await asyncio.to_thread(
        wait_for, lambda: (consumed(port) or 0) > 0, timeout=120, what="the second worker",
        worker=worker_env,
    )  # fmt: skip
    counts: list[int | None] = []
    await asyncio.to_thread(
        wait_for, lambda: counts.append(consumed()) or counts[-1] is not None, timeout=30,
        what="the first worker's count", worker=worker_env,
    )  # fmt: skip
    before_leaving = counts[-1]
    first.send_signal(signal.SIGTERM)
    await asyncio.to_thread(first.wait, timeout=60)
    await paced
    await produce(settings, settings.topic_transactions, [(k, v) for _, k, v in txs[tail:]])

    wanted = set(replay_slice["transaction_id"])
    decisions = await _decisions(worker_env, wanted)
    repeated = _one_decision_each(decisions, wanted)
    print(
        f"{n} transactions, {len(decisions)} decisions, {repeated} repeated; the first worker "
        f"consumed {before_leaving} before leaving, the second {consumed(port)}"
    )
    await _assert_stored_once(settings, replay_slice)


def _lopsided(frame: pd.DataFrame, partitions: int) -> pd.DataFrame:
    """Every customer of partition 0 and one in eight of the others: partition 0 then has ~8x
    the transactions per day, so a worker draining partitions by count runs the others weeks
    ahead in event time."""
    partition = DefaultPartitioner()
    all_partitions = list(range(partitions))
    customers = sorted(frame["customer_id"].unique())
    keep = {
        c
        for i, c in enumerate(customers)
        if partition(c.encode(), all_partitions, all_partitions) == 0 or i % 8 == 0
    }
    return frame[frame["customer_id"].isin(keep)]


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "control-unaligned"])
async def test_backlog_of_lopsided_partitions_gives_the_in_order_features(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame, registry: ModelRegistry, aligned: bool
) -> None:
    """A backlog drained from the start scores as the history processed in order would.

    The control run switches alignment off (a skew bound of years): the same backlog then gives
    different terminal features, which shows that this scenario does test the alignment.
    """
    if not aligned:
        worker_env.env["STREAMER_MAX_PARTITION_SKEW_HOURS"] = str(24 * 365 * 10)
    frame = _lopsided(replay_slice, worker_env.settings.partitions)
    n = await _backlog(worker_env, frame)
    decisions = await _decisions(worker_env, set(frame["transaction_id"]))
    got, expected = _worker_scores(registry, build_features(frame), decisions)
    print(f"{n} transactions, {len(decisions)} decisions")
    if aligned:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    else:
        assert np.abs(got - expected).max() > 1e-6


async def test_two_workers_draining_lopsided_partitions_run_apart_and_the_metrics_show_it(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame, tmp_path: Path
) -> None:
    """What the event-time alerts are for (README: Limitations): each worker merges only the
    partitions it owns, so with partition 0 carrying ~8x the others' traffic, the worker without
    it drains its 40 days weeks ahead of the one with it. Over the two workers, the latest event
    time decided minus the earliest still pending then passes the alert's three days (one worker
    alone stays within its one-day skew bound: the tiny-buffer test)."""
    settings = worker_env.settings
    frame = _lopsided(replay_slice, settings.partitions)
    await _start_with_labels(worker_env, frame)
    port = free_port()
    worker_env.start_worker(
        STREAMER_WEB_PORT=str(port), STREAMER_DATA_DIR=str(tmp_path / "second")
    )

    def owned(at: int | None) -> set[str]:
        # the labels' partitions: read already, so each owner reports its lag there (one with
        # nothing written and no commit yet, as the transactions' are now, reports none)
        return {
            dict(labels)["partition"]
            for (name, labels), _ in worker_env.metrics(at).items()
            if name == "streamer_consumer_lag_records"
            and dict(labels)["topic"] == settings.topic_labels
        }

    def settled() -> bool:  # before the backlog is written: each worker owns two of the four
        first, second = owned(None), owned(port)
        return len(first) == len(second) == 2 and not first & second

    await asyncio.to_thread(
        wait_for, settled, timeout=120, what="two of the label partitions each",
        worker=worker_env,
    )  # fmt: skip
    n = await _produce_transactions(worker_env, frame)

    def watch() -> float:
        apart, deadline = 0.0, time.monotonic() + 240
        while time.monotonic() < deadline:
            times = [_event_times(worker_env.metrics(at)) for at in (None, port)]
            decided = max(d for d, _ in times)
            pending = min(p for _, p in times)
            if decided > 0 and pending < math.inf:
                apart = max(apart, decided - pending)
            consumed = sum(
                (worker_env.summary(at) or {}).get("totals", {}).get("consumed_transactions", 0)
                for at in (None, port)
            )
            if consumed >= n and pending == math.inf:
                return apart
            time.sleep(0.2)
        pytest.fail(f"the two workers did not drain {n} transactions\n{worker_env.logs()}")

    apart = await asyncio.to_thread(watch)
    print(f"{n} transactions; decisions ran up to {apart / 86_400:.1f} days ahead of pending ones")
    assert apart * 1000 > ALERT_APART_MS


async def test_a_backlog_through_a_tiny_stream_buffer_loses_nothing_and_stays_in_order(
    worker_env: WorkerEnv, replay_slice: pd.DataFrame, registry: ModelRegistry
) -> None:
    """Back-pressure all the way: with batches of 8, Faust's stream buffer holds 16 events, and
    every fetch brings about a hundred times that, so the buffer holds every partition back again
    and again while the backlog drains. Every transaction is still decided, a repeat is the same
    decision, each is stored once, and the scores are those of the history in order. (It runs
    the worker's short polls while partitions are held back; it does not time them: the bench
    does.)
    """
    worker_env.env["STREAMER_BATCH_MAX"] = "8"
    frame = replay_slice[replay_slice["timestamp"]
                         < replay_slice["timestamp"].min() + pd.Timedelta(days=10)]
    n = await _backlog(worker_env, frame)
    wanted = set(frame["transaction_id"])
    watching = asyncio.create_task(asyncio.to_thread(_watch_drain, worker_env, n))
    decisions = await _decisions(worker_env, wanted)
    drain = await watching
    repeated = _one_decision_each(decisions, wanted)
    ahead = max(drain.ahead_ms, default=0.0)
    print(f"{n} transactions, {len(decisions)} decisions, {repeated} repeated, lag up to "
          f"{drain.most_lag}, decided ahead of the pending ones by up to {ahead} ms")  # fmt: skip
    # the metrics saw the backlog, then nothing left to read, and one age per decision
    assert drain.most_lag > 0
    lag = drain.lag
    assert set(lag) == {(t, str(p)) for t in ("transactions", "labels") for p in range(4)}, lag
    assert all(v == 0 for v in lag.values()), lag
    assert drain.ages == n
    # one worker: its decisions run about its merge's skew bound (a day) past what it still has
    # to decide, never near the fleet alert's three days (18-25 h seen: the gauges pass the
    # bound a little at times, for a reason not traced)
    assert drain.ahead_ms and max(drain.ahead_ms) < ALERT_APART_MS, drain.ahead_ms
    got, expected = _worker_scores(registry, build_features(frame), decisions)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    await _assert_stored_once(worker_env.settings, frame)
