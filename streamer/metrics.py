"""Prometheus metrics of a worker, and the summary the dashboard polls.

One ``Metrics`` object per worker, with its own registry (no global state), updated once per
batch — never per event on the hot path beyond histogram ``observe`` calls (scores, record ages).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streamer.currency import Currencies
from streamer.pipeline import BatchOutput

__all__ = ["RECENT_ALERTS", "Metrics"]

SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0)
#: how many of the latest alerts the dashboard shows (this worker's, newest first)
RECENT_ALERTS = 50
AGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class Metrics:
    """Counters of what the worker consumed and produced, and how long batches took."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.recent_alerts: deque[bytes] = deque(maxlen=RECENT_ALERTS)
        self._evicted: int | None = None
        r = self.registry
        self.redis_memory = Gauge(
            "streamer_redis_memory_bytes",
            "Redis memory: used, and its limit (maxmemory; 0: none)",
            ["kind"],
            registry=r,
        )
        self.redis_evicted = Gauge(
            "streamer_redis_evicted_keys",
            "Keys Redis has evicted since it started: any rise is window state lost",
            registry=r,
        )
        self.redis_keys = Gauge(
            "streamer_redis_keys",
            "Keys in the worker's Redis database, summed over a cluster's primaries",
            registry=r,
        )
        self.redis_state_losses = Counter(
            "streamer_redis_state_losses",
            "Times Redis lost most of the window state at once (a restart without persistence, "
            "a flush): features undercount until `fraud-streamer rebuild-state` is run",
            registry=r,
        )
        self.shadow_decisions = Counter(
            "streamer_shadow_decisions",
            "What the shadow model would have decided, by outcome, and whether that is the "
            "decision published",
            ["outcome", "agrees"],
            registry=r,
        )
        self.consumed = Counter(
            "streamer_consumed", "Input records consumed", ["topic"], registry=r
        )
        self.decisions = Counter(
            "streamer_decisions", "Decisions published", ["outcome"], registry=r
        )
        self.alerts = Counter("streamer_alerts", "Alerts published", registry=r)
        self.dead_letters = Counter(
            "streamer_dead_letters", "Input records dead-lettered", ["topic"], registry=r
        )
        self.key_mismatches = Counter(
            "streamer_input_key_mismatches",
            "Accepted input records whose Kafka key is not their customer_id (the contract's "
            "key): decided, but maybe out of order with their card's others",
            ["topic"],
            registry=r,
        )
        self.repeats = Counter(
            "streamer_repeated_decisions",
            "Transactions decided before (re-deliveries, or sent again) whose first verdict was "
            "published again, by whether deciding them now would have given another "
            "(changed: a promotion, a blocklist or a threshold changed in between)",
            ["changed"],
            registry=r,
        )
        # at 0 from the start: a series that appears with its first count has no increase()
        # for the alerts to see, and a producer's one bad burst would go unnoticed
        for topic in ("transactions", "labels"):
            self.dead_letters.labels(topic)
            self.key_mismatches.labels(topic)
        for changed in ("true", "false"):
            self.repeats.labels(changed)
        self.unconverted = Counter(
            "streamer_unconverted_transactions",
            "Transactions in a currency without an exchange rate to the model's "
            "(STREAMER_EXCHANGE_RATES or `fraud-streamer rates set`): scored without their "
            "amount, and reviewed at least",
            ["currency"],
            registry=r,
        )
        self.busy = Counter(
            "streamer_busy_seconds",
            "Seconds the worker's agent spent on its records (validating, merging, enriching "
            "in Redis, and waiting while scoring and publishing are two batches behind): its "
            "rate is the share of the time the loop is busy; near 1 a burst queues before it "
            "and latency grows",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "streamer_batch_seconds",
            "Time to process and publish one batch",
            ["topic"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.scores = Histogram(
            "streamer_score", "The model's scores, before rules", buckets=SCORE_BUCKETS, registry=r
        )
        self.model_info = Gauge(
            "streamer_model_info", "The model version in use", ["version"], registry=r
        )
        self.exchange_rate = Gauge(
            "streamer_exchange_rate",
            "Units of the base currency one unit of the currency buys, as this worker converts",
            ["currency", "base"],
            registry=r,
        )
        self.rates_left_out = Gauge(
            "streamer_exchange_rates_left_out",
            "Entries of the Redis hash fs:rates this worker cannot use (fraud-streamer rates show)",
            registry=r,
        )
        self.partition_skew = Gauge(
            "streamer_partition_skew_seconds",
            "Event-time spread between this worker's partitions that have records waiting",
            registry=r,
        )
        self.decided_event_time = Gauge(
            "streamer_decided_event_time_seconds",
            "Event time of the latest transaction this worker decided (epoch seconds)",
            registry=r,
        )
        self.pending_event_time = Gauge(
            "streamer_pending_event_time_seconds",
            "Earliest event time (a label's: its report time) that this worker's partitions of "
            "the input may still deliver, held by the event-time merge or not read yet; +Inf "
            "when they have nothing to come. Over the workers, max(decided) - min(pending) is "
            "how far decisions run ahead of records not yet in Redis",
            ["input"],
            registry=r,
        )
        for kind in ("transactions", "labels"):
            self.pending_event_time.labels(kind).set(math.inf)
        self._decided_s = 0.0
        self.held = Gauge(
            "streamer_held_transactions",
            "Transactions and labels read but held back by the event-time merge (a partition "
            "ahead waits)",
            registry=r,
        )
        self.record_age = Histogram(
            "streamer_record_age_seconds",
            "From an input record's Kafka timestamp to its decision being acknowledged: the "
            "end-to-end delay of live traffic (a replayed backlog shows its age)",
            ["topic"],
            buckets=AGE_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "streamer_consumer_lag_records",
            "Records in an assigned input partition not yet read (high watermark minus the "
            "next offset)",
            ["topic", "partition"],
            registry=r,
        )
        self.drift = Gauge(
            "streamer_drift_psi",
            "Population stability index of each model input (and of the score) over the last "
            "rows scored, against the serving model's profile: >0.1 look, >0.25 act",
            ["input"],
            registry=r,
        )
        self.started = time.time()
        self._totals: dict[str, int] = {}
        self._drift: dict[str, float] = {}

    def set_redis(self, info: Mapping[str, Any]) -> int:
        """Redis's memory (used, and its limit) and eviction count from its ``INFO``; returns
        how many keys it evicted since the last call (0 the first time)."""
        self.redis_memory.labels("used").set(float(info.get("used_memory", 0)))
        self.redis_memory.labels("limit").set(float(info.get("maxmemory", 0)))
        evicted = int(info.get("evicted_keys", 0))
        before, self._evicted = self._evicted, evicted
        self.redis_evicted.set(evicted)
        return 0 if before is None else max(evicted - before, 0)

    def set_drift(self, values: Mapping[str, float] | None) -> None:
        """The latest PSI per input; None (no profile, or too few rows yet) clears them."""
        self.drift.clear()
        self._drift = dict(values or {})
        for name, value in self._drift.items():
            self.drift.labels(name).set(value)

    def observe_batch(self, topic: str, out: BatchOutput, seconds: float, consumed: int) -> None:
        self.recent_alerts.extend(value for _, value in out.alerts)  # as published: JSON
        self.consumed.labels(topic).inc(consumed)
        self.batch_seconds.labels(topic).observe(seconds)
        if out.dead_letters:
            self.dead_letters.labels(topic).inc(len(out.dead_letters))
        if out.key_mismatches:
            self.key_mismatches.labels(topic).inc(out.key_mismatches)
        for outcome, n in out.outcomes.items():
            self.decisions.labels(outcome).inc(n)
        for currency, n in out.unconverted.items():
            self.unconverted.labels(currency).inc(n)
        for changed, n in out.repeats.items():
            self.repeats.labels("true" if changed else "false").inc(n)
        for (outcome, agrees), n in out.shadow_outcomes.items():
            self.shadow_decisions.labels(outcome, "true" if agrees else "false").inc(n)
        if out.alerts:
            self.alerts.inc(len(out.alerts))
        if out.model_scores is not None:
            for s in out.model_scores.tolist():
                self.scores.observe(s)
        for key, n in (
            (f"consumed_{topic}", consumed),
            ("dead_letters", len(out.dead_letters)),
            ("alerts", len(out.alerts)),
            *((f"decision_{k}", v) for k, v in out.outcomes.items()),
        ):
            self._totals[key] = self._totals.get(key, 0) + n

    def observe_ages(self, topic: str, timestamps_s: Iterable[float | None], now: float) -> None:
        """Record how old each input record of a finished batch was (Kafka timestamps, s)."""
        age = self.record_age.labels(topic)
        for ts in timestamps_s:
            if ts is not None and ts > 0:  # -1: a record written without a timestamp
                age.observe(max(now - ts, 0.0))

    def observe_decided(self, ts_ms: Iterable[int | None]) -> None:
        """Note the event times (epoch ms) of transactions just decided."""
        latest = max((ts for ts in ts_ms if ts is not None), default=None)
        if latest is not None and latest / 1000 > self._decided_s:
            self._decided_s = latest / 1000
            self.decided_event_time.set(self._decided_s)

    def set_pending(self, transactions: int | None, labels: int | None) -> None:
        """The earliest event time (ms) each input may still deliver; None: nothing to come."""
        for kind, ts in (("transactions", transactions), ("labels", labels)):
            self.pending_event_time.labels(kind).set(math.inf if ts is None else ts / 1000)

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """The consumer lag of every partition this worker owns now (others are dropped)."""
        self.lag.clear()
        for (topic, partition), n in lags.items():
            self.lag.labels(topic, str(partition)).set(n)

    @property
    def processed(self) -> int:
        """Input records processed so far (transactions and labels): grows with progress."""
        return sum(n for key, n in self._totals.items() if key.startswith("consumed_"))

    def set_model(self, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version).set(1)

    def set_rates(self, currencies: Currencies) -> None:
        """The exchange rates in force (a withdrawn one disappears from the exposition)."""
        self.exchange_rate.clear()
        for code, rate in currencies.rates.items():
            self.exchange_rate.labels(code, currencies.base).set(rate)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def latest_alerts(self) -> list[Any]:
        """The alerts this worker published last, newest first (parsed only when asked for)."""
        return [json.loads(value) for value in reversed(self.recent_alerts)]

    def summary(
        self,
        model_version: str | None,
        shadow_version: str | None = None,
        currencies: Currencies | None = None,
    ) -> dict[str, Any]:
        return {
            "model_version": model_version,
            "shadow_version": shadow_version,
            # the rates this worker converts at: units of the base per unit of each currency
            "exchange_rates": None
            if currencies is None
            else {"base": currencies.base, "rates": dict(sorted(currencies.rates.items()))},
            "uptime_s": round(time.time() - self.started, 1),
            "lag_records": int(sum(s.value for m in self.lag.collect() for s in m.samples)),
            # seconds the agent has been busy: between two reads, its share of the time
            "busy_s": round(self.registry.get_sample_value("streamer_busy_seconds_total") or 0, 3),
            "totals": dict(sorted(self._totals.items())),
            # PSI per model input, most drifted first (empty: not watched, or too few rows yet)
            "drift": dict(sorted(self._drift.items(), key=lambda kv: -kv[1])),
        }
