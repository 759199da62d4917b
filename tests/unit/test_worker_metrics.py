"""The worker's Prometheus metrics: record ages and consumer lag, as exposed and summarised."""

from __future__ import annotations

from streamer.metrics import Metrics
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
