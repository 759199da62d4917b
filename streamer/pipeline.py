"""The worker's batch steps as plain code, testable without Kafka.

validate → enrich (one Redis round trip) → score (one ``predict_proba``) → rules and thresholds
→ pin each verdict (a second round trip: a repeat keeps its first verdict) → decisions, alerts
and dead letters, ready to publish. The worker (:mod:`streamer.event_flow`) only turns Kafka
events into :class:`InputMessage` and send what comes back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import NamedTuple, TypeVar

import numpy as np

from schemas import Alert, Decision, ErrorDetail, Label, Transaction
from streamer.currency import Currencies
from streamer.decode import In, dead_letter, decode_input
from streamer.features.definitions import (
    FEATURE_NAMES,
    FeatureEvent,
    FraudMark,
    calendar_flags,
    to_epoch_ms,
)
from streamer.features.keys import fingerprint
from streamer.features.store import Enriched, FeatureStore, pin_keys
from streamer.input_keys import KeyMismatch, keyed_by_card
from streamer.rules import Policy, judge
from streamer.scoring import Scorer
from streamer.verdicts import Verdict

__all__ = [
    "TRANSACTION_ID_REUSED",
    "BatchOutput",
    "InputMessage",
    "Pipeline",
    "Prepared",
    "Received",
    "feature_event",
    "feature_record",
    "in_label_order",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

TRANSACTION_ID_REUSED = "transaction_id_reused"
"""Error type of a transaction sent under an id that already stands for another one."""


@dataclass(frozen=True, slots=True)
class InputMessage:
    """A consumed Kafka record, as the pipeline needs it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    #: the time Kafka holds for the record (epoch ms; its producer's send time, or the broker's
    #: append time), which an event time may not be far after; None: not known, not checked
    timestamp_ms: int | None = None


@dataclass(slots=True)
class BatchOutput:
    """Serialised records to publish: (key, value) pairs per output topic."""

    decisions: list[tuple[bytes, bytes]] = field(default_factory=list)
    alerts: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    #: the feature log (only when it is on): what each decision was scored on
    features: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: what the shadow model would have decided (only while there is one)
    shadow_decisions: list[tuple[bytes, bytes]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    #: the shadow's outcomes, and whether each is the one published
    shadow_outcomes: dict[tuple[str, bool], int] = field(default_factory=dict)
    #: decisions published as first pinned (repeats), by whether that differs from what would
    #: be decided now
    repeats: dict[bool, int] = field(default_factory=dict)
    #: transactions whose currency had no exchange rate when its card's window first recorded
    #: them, per currency (scored without their amount)
    unconverted: dict[str, int] = field(default_factory=dict)
    model_version: str | None = None
    #: accepted records not keyed by their customer_id, and the first of them
    key_mismatches: int = 0
    key_mismatch: KeyMismatch | None = None
    #: the decided rows' features and the model's scores before rules (for drift and the
    #: score histogram)
    matrix: np.ndarray | None = None
    model_scores: np.ndarray | None = None


class Prepared(NamedTuple):
    """A batch past the feature store (:meth:`Pipeline.prepare`): the refused records' dead
    letters so far, the accepted transactions, and their features (None if there are none)."""

    out: BatchOutput
    accepted: list[Received]
    enriched: Enriched | None


@dataclass(frozen=True, slots=True)
class Received:
    """A record as validated on arrival: a transaction (with its feature event) or a label
    (as a fraud mark), or why it was refused."""

    message: InputMessage
    consumed_at: float  # time.perf_counter() when it was read: processing_ms runs from here
    transaction: Transaction | None = None
    event: FeatureEvent | None = None
    errors: list[ErrorDetail] | None = None
    mark: FraudMark | None = None
    is_label: bool = False  # read from the labels topic (``mark`` is None if refused)
    #: wall clock when the record was read: the ``received_at`` of its dead letter, if it gets
    #: one (the event-time merge may hold it a while behind the records before it)
    read_at: datetime | None = None
    #: the customer_id of an accepted record whose Kafka key is another (None: keyed by it, as
    #: the contract asks)
    miskeyed: str | None = None

    @property
    def ts_ms(self) -> int | None:
        """Event time, epoch ms: a transaction's time, a label's report time (from then on it
        counts); None for a refused record."""
        if self.event is not None:
            return self.event.ts_ms
        return self.mark.reported_ms if self.mark is not None else None


def feature_event(tx: Transaction, currencies: Currencies) -> FeatureEvent:
    """What the feature store needs of a transaction: its amount in the model's currency (as
    written, and marked so, when its currency has no rate), and its fingerprint."""
    weekend, night = calendar_flags(tx.timestamp)
    amount, converted = currencies.to_base(float(tx.amount), tx.currency)
    ts_ms = to_epoch_ms(tx.timestamp)
    return FeatureEvent(
        transaction_id=tx.transaction_id,
        customer_id=tx.customer_id,
        terminal_id=tx.terminal_id,
        ts_ms=ts_ms,
        amount=amount,
        weekend=weekend,
        night=night,
        converted=converted,
        fingerprint=fingerprint(ts_ms, tx.customer_id, tx.terminal_id, tx.amount, tx.currency),
    )


def reused_error(event: FeatureEvent) -> ErrorDetail:
    """Why a transaction whose id already stands for another one is refused."""
    return ErrorDetail(
        loc=["transaction_id"],
        msg=f"transaction_id {event.transaction_id!r} was already used by another transaction "
        "of this card or terminal (a different timestamp, customer_id, terminal_id, amount or "
        "currency): ids must be unique per transaction; send this one under an id of its own",
        type=TRANSACTION_ID_REUSED,
    )


def fraud_mark(label: Label) -> FraudMark:
    """What the terminal windows need of a label."""
    return FraudMark(
        transaction_id=label.transaction_id,
        terminal_id=label.terminal_id,
        tx_ts_ms=to_epoch_ms(label.tx_timestamp),
        reported_ms=to_epoch_ms(label.reported_at),
        is_fraud=label.is_fraud,
    )


def feature_record(tx: Transaction, model_version: str, row: np.ndarray) -> bytes:
    """One feature-log record: the vector a decision was scored on, by feature name (what the
    model was given: an unknown amount's features as their typical values).

    JSON floats round-trip exactly, so a consumer can compare them bit for bit with the
    training set (``tests/integration/test_worker_delivery.py`` does).
    """
    record = {
        "transaction_id": tx.transaction_id,
        "model_version": model_version,
        "features": dict(zip(FEATURE_NAMES, row.tolist(), strict=True)),
    }
    return json.dumps(record, separators=(",", ":")).encode()


def in_label_order(
    items: Sequence[T], received: Callable[[T], Received]
) -> list[tuple[list[T], list[T]]]:
    """Split a batch released in event-time order into (labels, transactions) steps to run in
    turn: each step's labels are applied before its transactions are decided.

    A fraud mark may go before transactions that precede it (it counts only from its report
    time), so a batch is normally one step. A withdrawal (``is_fraud: false``) may not: the
    transactions before it must still see the mark it withdraws, so it starts a new step.
    Labels keep their order among themselves.
    """
    steps: list[tuple[list[T], list[T]]] = [([], [])]
    for item in items:
        got = received(item)
        if not got.is_label:
            steps[-1][1].append(item)
            continue
        if got.mark is not None and not got.mark.is_fraud and steps[-1][1]:
            steps.append(([], []))
        steps[-1][0].append(item)
    return steps


class Pipeline:
    """One worker's processing of a batch; holds no Kafka or Faust objects."""

    def __init__(
        self,
        *,
        store: FeatureStore,
        scorer: Callable[[], Scorer],
        shadow: Callable[[], Scorer | None] = lambda: None,
        policy: Policy,
        max_bytes: int,
        max_ahead_ms: int | None = None,
        log_features: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._scorer = scorer
        self._shadow = shadow
        self._policy = policy
        self._max_bytes = max_bytes
        self._max_ahead_ms = max_ahead_ms
        self._log_features = log_features
        self._clock = clock

    def use_currencies(self, currencies: Currencies) -> None:
        """Convert the transactions received from now on at these rates."""
        self._policy = replace(self._policy, currencies=currencies)

    @staticmethod
    def _count_keys(out: BatchOutput, accepted: Sequence[Received]) -> None:
        for item in accepted:
            if item.miskeyed is not None:
                out.key_mismatches += 1
                if out.key_mismatch is None:
                    m = item.message
                    out.key_mismatch = KeyMismatch(m.topic, m.partition, m.offset, m.key,
                                                   item.miskeyed)  # fmt: skip

    def _reject(self, out: BatchOutput, msg: InputMessage, errors: list, now: datetime) -> None:
        letter = dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value, errors, now)
        out.dead_letters.append((msg.key, letter.model_dump_json().encode()))

    def _decode(self, model: type[In], msg: InputMessage) -> In | list[ErrorDetail]:
        return decode_input(model, msg.value, msg.timestamp_ms, max_bytes=self._max_bytes,
                            max_ahead_ms=self._max_ahead_ms)  # fmt: skip

    def receive(self, messages: Sequence[InputMessage], consumed_at: float) -> list[Received]:
        """Validate transaction records as they arrive (their event time is known from here)."""
        received = []
        read_at = self._clock()
        for msg in messages:
            result = self._decode(Transaction, msg)
            if isinstance(result, Transaction):
                event = feature_event(result, self._policy.currencies)
                card = result.customer_id
                miskeyed = None if keyed_by_card(msg.key, card) else card
                received.append(Received(msg, consumed_at, result, event, miskeyed=miskeyed,
                                         read_at=read_at))  # fmt: skip
            else:
                received.append(Received(msg, consumed_at, errors=result, read_at=read_at))
        return received

    async def transactions(
        self, messages: Sequence[InputMessage], started: float | None = None
    ) -> BatchOutput:
        """Decide a batch of transaction records, in the order given.

        ``started`` is the ``time.perf_counter()`` at which the batch was consumed; each
        decision's ``processing_ms`` runs from there to the moment it is ready to send.
        """
        started = time.perf_counter() if started is None else started
        return await self.decide(self.receive(messages, started))

    async def decide(self, received: Sequence[Received]) -> BatchOutput:
        """Decide received records, in the order given; the rejected ones become dead letters."""
        return await self.settle(await self.prepare(received))

    async def prepare(self, received: Sequence[Received]) -> Prepared:
        """The part of deciding that waits on I/O: record the accepted transactions in the
        feature store and read their features (one round trip); refuse the others.

        The worker runs it one batch ahead of :meth:`settle`, so that the store's round trip
        overlaps the previous batch's model call and publishing.
        """
        out = BatchOutput()
        now = self._clock()
        accepted: list[Received] = []
        for item in received:
            if item.transaction is not None:
                accepted.append(item)
            else:
                self._reject(out, item.message, item.errors or [], item.read_at or now)
        if not accepted:
            return Prepared(out, accepted, None)
        events = [item.event for item in accepted if item.event is not None]
        enriched = await self._store.enrich(events)
        if any(enriched.reused):
            keep = []
            for i, reused in enumerate(enriched.reused):
                if reused:
                    item = accepted[i]
                    self._reject(out, item.message, [reused_error(events[i])], item.read_at or now)
                else:
                    keep.append(i)
            if not keep:
                return Prepared(out, [], None)
            accepted, enriched = [accepted[i] for i in keep], enriched.rows(keep)
        self._count_keys(out, accepted)
        return Prepared(out, accepted, enriched)

    async def settle(self, prepared: Prepared) -> BatchOutput:
        """The rest of deciding: score, apply the rules and thresholds, explain the flagged
        rows, pin the verdicts (one round trip; a transaction decided before keeps its first
        verdict), and serialise the decisions and alerts."""
        out, accepted, enriched = prepared
        if enriched is None:
            return out
        txs = [item.transaction for item in accepted if item.transaction is not None]

        scorer = self._scorer()  # one model for the whole batch, even if a promotion lands now
        shadow = self._shadow()
        features = enriched.features  # NaN where an amount is not known (no exchange rate)
        inputs = scorer.model_inputs(features)
        scores = scorer.score_inputs(inputs)
        shadow_scores = None if shadow is None else shadow.score(features)
        # each row as its card's window first recorded it: a repeat is reviewed for want of
        # a rate exactly when its first delivery was, whatever the rates are now
        judging = partial(
            judge, features=features, policy=self._policy,
            currencies=[tx.currency for tx in txs], converted=enriched.converted.tolist(),
            customer_blocked=enriched.customer_blocked,
            terminal_blocked=enriched.terminal_blocked,
        )  # fmt: skip
        judged = judging(scorer, scores=scores)
        unconverted = judged.unconverted
        shadowed = None if shadow is None or shadow_scores is None else judging(
            shadow, scores=shadow_scores, explain=False
        )  # fmt: skip
        verdicts = await self._pin(
            out, [item.event for item in accepted if item.event is not None], judged.verdicts
        )

        decided_at = self._clock()
        for i, tx in enumerate(txs):
            verdict = verdicts[i]
            outcome = verdict.decision
            decision = Decision.model_construct(
                transaction_id=tx.transaction_id,
                customer_id=tx.customer_id,
                terminal_id=tx.terminal_id,
                amount=tx.amount,
                currency=tx.currency,
                timestamp=tx.timestamp,
                score=verdict.score,
                decision=outcome,
                reasons=verdict.reasons,
                model_version=verdict.model_version,
                decided_at=decided_at,
                processing_ms=round((time.perf_counter() - accepted[i].consumed_at) * 1000, 3),
            )
            key = tx.customer_id.encode()
            out.decisions.append((key, decision.model_dump_json().encode()))
            if outcome != "approve":
                # alerts are rare (reviews and declines): full validation costs nothing here
                alert = Alert.from_decision(decision, created_at=decided_at)
                out.alerts.append((key, alert.model_dump_json().encode()))
            out.outcomes[outcome] = out.outcomes.get(outcome, 0) + 1
            if i in unconverted:
                out.unconverted[tx.currency] = out.unconverted.get(tx.currency, 0) + 1
            if self._log_features and verdict.model_version == scorer.version:
                # a repeat first decided by another model was logged with that model's inputs
                out.features.append((key, feature_record(tx, scorer.version, inputs[i])))
            if shadowed is not None:
                would = shadowed.verdicts[i]
                seen = decision.model_copy(update={
                    "score": would.score, "decision": would.decision, "reasons": would.reasons,
                    "model_version": would.model_version,
                })  # fmt: skip
                out.shadow_decisions.append((key, seen.model_dump_json().encode()))
                agrees = (seen.decision, seen.decision == outcome)
                out.shadow_outcomes[agrees] = out.shadow_outcomes.get(agrees, 0) + 1
        out.model_version = scorer.version
        out.matrix, out.model_scores = inputs, scores
        return out

    async def _pin(
        self, out: BatchOutput, events: Sequence[FeatureEvent], verdicts: list[Verdict]
    ) -> list[Verdict]:
        """The verdicts to publish: these, pinned at their cards, except where a transaction
        already has one pinned (a repeat), which is published again as it was. A pinned one
        that cannot be read is replaced by this one (a second round trip, in such a batch
        only), so that what is published is pinned."""
        keys, encoded = pin_keys(events), [v.encode() for v in verdicts]
        held = await self._store.pin(keys, encoded)
        published, unreadable = list(verdicts), []
        for i, pinned in enumerate(held):
            if pinned is None:
                continue
            try:
                first = Verdict.decode(*pinned)
            except ValueError as exc:
                log.error("transaction %r is decided anew: its pinned verdict is unreadable "
                          "and is replaced: %s", events[i].transaction_id, exc)  # fmt: skip
                unreadable.append(i)
                continue
            published[i] = first
            changed = first != verdicts[i]
            out.repeats[changed] = out.repeats.get(changed, 0) + 1
        if unreadable:
            await self._store.pin([keys[i] for i in unreadable],
                                  [encoded[i] for i in unreadable], replace=True)  # fmt: skip
        return published

    def receive_labels(
        self, messages: Sequence[InputMessage], consumed_at: float
    ) -> list[Received]:
        """Validate label records as they arrive (their report time is known from here)."""
        received = []
        read_at = self._clock()
        for msg in messages:
            result = self._decode(Label, msg)
            if isinstance(result, Label):
                mark = fraud_mark(result)
                card = result.customer_id
                miskeyed = None if keyed_by_card(msg.key, card) else card
                received.append(
                    Received(msg, consumed_at, mark=mark, is_label=True, miskeyed=miskeyed)
                )
            else:
                received.append(
                    Received(msg, consumed_at, errors=result, is_label=True, read_at=read_at)
                )
        return received

    async def apply_labels(self, received: Sequence[Received]) -> BatchOutput:
        """Apply received labels to the terminal windows; the rejected ones become dead letters."""
        out = BatchOutput()
        now = self._clock()
        for item in received:
            if item.mark is None:
                self._reject(out, item.message, item.errors or [], item.read_at or now)
        self._count_keys(out, received)
        await self._store.apply_labels([item.mark for item in received if item.mark is not None])
        return out
