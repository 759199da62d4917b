"""The worker's Prometheus metrics: record ages and consumer lag, as exposed and summarised."""

from __future__ import annotations

import json
import math

import numpy as np

from streamer.metrics import RECENT_ALERTS, Metrics
from streamer.pipeline import BatchOutput
from tests.prometheus import Samples, samples


def _samples(metrics: Metrics) -> Samples:
    body, _ = metrics.exposition()
    return samples(body.decode())


def test_record_ages_are_observed_from_kafka_timestamps() -> None:
    metrics = Metrics()
    # 3 ms and 2 s old; a record without a timestamp (-1) or none at all is not counted
    metrics.observe_ages("tx", [99.997, 98.0, -1.0, None], now=100.0)
    samples = _samples(metrics)
    topic = (("topic", "tx"),)
    assert samples[("streamer_record_age_seconds_count", topic)] == 2
    assert abs(samples[("streamer_record_age_seconds_sum", topic)] - 2.003) < 1e-9
    assert samples[("streamer_record_age_seconds_bucket", (("le", "0.005"), *topic))] == 1
    assert samples[("streamer_record_age_seconds_bucket", (("le", "2.5"), *topic))] == 2


def test_lag_covers_the_partitions_owned_now_and_is_summarised() -> None:
    metrics = Metrics()
    metrics.set_lag({("tx", 0): 5, ("tx", 1): 7})
    metrics.set_lag({("tx", 1): 3, ("labels", 0): 0})  # partition 0 moved to another worker
    samples = _samples(metrics)
    lag = {k[1]: v for k, v in samples.items() if k[0] == "streamer_consumer_lag_records"}
    assert lag == {
        (("partition", "1"), ("topic", "tx")): 3,
        (("partition", "0"), ("topic", "labels")): 0,
    }
    assert metrics.summary(None)["lag_records"] == 3


def test_the_dashboard_gets_the_latest_alerts_newest_first() -> None:
    metrics = Metrics()
    for batch in range(3):
        alerts = [(b"c", json.dumps({"alert_id": f"a{batch}-{i}"}).encode()) for i in range(30)]
        metrics.observe_batch("tx", BatchOutput(alerts=alerts), 0.01, 30)
    latest = [a["alert_id"] for a in metrics.latest_alerts()]
    assert len(latest) == RECENT_ALERTS and 30 < RECENT_ALERTS < 60
    assert latest[:2] == ["a2-29", "a2-28"] and latest[-1] == f"a1-{60 - RECENT_ALERTS}"
    assert metrics.summary(None)["totals"]["alerts"] == 90


def test_redis_memory_and_evictions_are_exported_and_new_evictions_counted() -> None:
    metrics = Metrics()
    info = {"used_memory": 1_000, "maxmemory": 0, "evicted_keys": 7}
    assert metrics.set_redis(info) == 0  # what Redis evicted before this worker looked
    assert metrics.set_redis({**info, "evicted_keys": 12}) == 5
    assert metrics.set_redis({**info, "evicted_keys": 0}) == 0  # Redis restarted
    samples = _samples(metrics)
    assert samples[("streamer_redis_memory_bytes", (("kind", "used"),))] == 1_000
    assert samples[("streamer_redis_memory_bytes", (("kind", "limit"),))] == 0
    assert samples[("streamer_redis_evicted_keys", ())] == 0


def test_busy_time_is_counted_for_prometheus_and_the_summary() -> None:
    metrics = Metrics()
    metrics.busy.inc(0.25)
    metrics.busy.inc(0.5)
    assert _samples(metrics)[("streamer_busy_seconds_total", ())] == 0.75
    assert metrics.summary(None)["busy_s"] == 0.75


def test_event_times_say_how_far_decisions_run_ahead_of_what_is_still_to_come() -> None:
    metrics = Metrics()
    before = _samples(metrics)
    for kind in ("transactions", "labels"):  # nothing known to come yet
        assert before[("streamer_pending_event_time_seconds", (("input", kind),))] == math.inf
    metrics.observe_decided([5_000, None, 9_000])
    metrics.observe_decided([7_000])  # a later batch of earlier transactions moves nothing
    metrics.set_pending(transactions=4_000, labels=None)
    samples = _samples(metrics)
    assert samples[("streamer_decided_event_time_seconds", ())] == 9.0
    assert samples[("streamer_pending_event_time_seconds", (("input", "transactions"),))] == 4.0
    assert samples[("streamer_pending_event_time_seconds", (("input", "labels"),))] == math.inf


def test_the_score_histogram_counts_each_decided_row_s_model_score() -> None:
    metrics = Metrics()
    metrics.observe_batch("tx", BatchOutput(model_scores=np.array([0.01, 0.02, 0.97])), 0.1, 3)
    metrics.observe_batch("tx", BatchOutput(), 0.1, 1)  # only dead letters: no score
    samples = _samples(metrics)
    assert samples[("streamer_score_count", ())] == 3
    assert abs(samples[("streamer_score_sum", ())] - 1.0) < 1e-9
