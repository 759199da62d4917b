"""Rebuild the workers' feature state in Redis from Kafka, publishing nothing.

Kafka is the source of truth and Redis holds state derived from it. When Redis loses that
state — a restart without persistence, a new server, a flushed database — workers carry on
with empty windows, and their features count nothing from before the loss, without an error,
until the windows fill again (44 days). A new consumer group would rebuild the state too, but
it would also publish every decision again. This reads the ``transactions`` and ``labels``
topics from their beginning to their end as of the start, and replays them through the
workers' own store — the same scripts, transactions in event time, each label known from its
report time (:func:`~streamer.features.definitions.in_event_time`, as training does) — so the
state is the one the stream built. Records that are not valid are skipped (the workers
dead-lettered them).

Workers may run meanwhile: every update is idempotent per transaction id, so what they
decide during the rebuild is counted once, and the state afterwards is the same as with the
workers stopped (both are tested). What they decide on the emptied windows until it is done
stays as decided; the scripts remember those first answers, so a repeat repeats the decision.
The labels they apply meanwhile are applied again after the replay
(:func:`apply_late_labels`), which could otherwise undo them with older labels of the same
transactions.

The verdicts the workers pinned (so that a repeat is published as first decided) were lost
with the rest; the ``decisions`` topic holds what was published, so they are pinned again from
it (:func:`restore_pins`), for the transactions the rebuilt windows hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from schemas import Decision, Label, Transaction
from streamer import blocklists, rates
from streamer.currency import Currencies
from streamer.decode import decode_input
from streamer.features.definitions import FeatureEvent, FraudMark, in_event_time
from streamer.features.keys import BlocklistKind
from streamer.features.store import FeatureStore, PinKey, Pinned, RedisFeatureStore
from streamer.kafka_reading import read_to_end
from streamer.pipeline import feature_event, fraud_mark
from streamer.redis_client import connect
from streamer.settings import Settings
from streamer.verdicts import Verdict

__all__ = [
    "BATCH",
    "LATE_ROUNDS",
    "History",
    "Rebuilt",
    "apply_late_labels",
    "read_history",
    "rebuild",
    "replay_into",
    "restore_pins",
]

M = TypeVar("M", Transaction, Label)
T = TypeVar("T")
Handler = Callable[[ConsumerRecord[bytes, bytes]], None]

#: transactions per round of script calls (one pipeline round trip each)
BATCH = 1_000

#: how many times, at most, the labels written during a rebuild are read and applied again
LATE_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a rebuild replayed."""

    transactions: int
    labels: int
    skipped: int  # records that were not valid transactions or labels
    rates: rates.InForce  # the rates the amounts were converted at, and the entries left out
    #: transactions per currency that had no rate: their amounts are not known
    unconverted: Mapping[str, int]
    #: the rates set again from Kafka first (Redis held none); None if none were
    restored: Mapping[str, str] | None = None
    #: the blocked ids of each kind set again from Kafka first (Redis held none); None if none
    blocklists: Mapping[BlocklistKind, int] | None = None
    #: labels written while the rebuild ran, applied again after the replay
    late_labels: int = 0
    #: decisions read to pin their verdicts again, and records there that were not decisions
    decisions: int = 0
    not_decisions: int = 0


@dataclass(frozen=True, slots=True)
class History:
    """What the input topics hold, as the store takes it."""

    events: list[FeatureEvent]  # the valid transactions, in event time
    marks: list[FraudMark]  # the valid labels, in report time
    skipped: int  # records that were not valid
    unconverted: dict[str, int]  # transactions per currency that had no rate
    label_ends: dict[int, int]  # where each partition of the labels topic was read to


async def read_history(
    settings: Settings, currencies: Currencies, progress: Callable[[int], object] | None = None
) -> History:
    """Every transaction (amounts converted at ``currencies``) and label on the input topics."""
    events: list[FeatureEvent] = []
    marks: list[FraudMark] = []
    skipped = 0
    unrated: dict[str, int] = {}

    def event(tx: Transaction) -> FeatureEvent:
        out = feature_event(tx, currencies)
        if not out.converted:
            unrated[tx.currency] = unrated.get(tx.currency, 0) + 1
        return out

    def refused() -> None:
        nonlocal skipped
        skipped += 1

    transaction = _collect(settings, Transaction, events, event, refused)
    label = _collect(settings, Label, marks, fraud_mark, refused)

    await read_to_end(settings, settings.topic_transactions, transaction, progress=progress)
    ends = await read_to_end(settings, settings.topic_labels, label, progress=progress)
    events.sort(key=lambda e: (e.ts_ms, e.transaction_id))
    marks.sort(key=lambda m: m.reported_ms)
    return History(events, marks, skipped, unrated, ends)


def _collect(
    settings: Settings,
    model: type[M],
    into: list[T],
    convert: Callable[[M], T],
    refused: Callable[[], object],
) -> Handler:
    """A record handler that keeps what the workers accept of ``model``, converted, and calls
    ``refused`` for the rest (the workers dead-lettered it)."""

    def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        result = decode_input(model, record.value, record.timestamp,
                              max_bytes=settings.max_message_bytes,
                              max_ahead_ms=settings.max_event_ahead_ms)  # fmt: skip
        if isinstance(result, model):
            into.append(convert(result))
        else:
            refused()

    return handle


async def apply_late_labels(
    settings: Settings, store: FeatureStore, ends: Mapping[int, int]
) -> int:
    """Apply again the labels written to the labels topic after ``ends`` (where the history
    was read to), until a round finds none (at most :data:`LATE_ROUNDS`); returns how many.

    Running workers apply those labels as they come, before the replay has reached the older
    labels of the same transactions: the replay would then bring back a fraud mark a later
    withdrawal (``is_fraud: false``) removed, or withdraw one a later label set again.
    Applying a label is idempotent, so applying the late ones again, in report order, after
    the replay leaves the marks as the stream left them.
    """
    applied = 0
    for _ in range(LATE_ROUNDS):
        marks: list[FraudMark] = []
        ends = await read_to_end(settings, settings.topic_labels,
                                 _collect(settings, Label, marks, fraud_mark, lambda: None),
                                 start=ends)  # fmt: skip
        if not marks:
            break
        marks.sort(key=lambda m: m.reported_ms)
        await store.apply_labels(marks)
        applied += len(marks)
    return applied


async def rebuild(
    settings: Settings,
    read: Callable[[int], object] | None = None,
    replayed: Callable[[int], object] | None = None,
) -> Rebuilt:
    """Replay the input topics into the configured Redis; ``read`` and ``replayed`` get the
    counts of records read from Kafka and of transactions replayed, as they go."""
    # no timer per reply: the store puts one deadline on each batch
    client = connect(settings.redis_url, cluster=settings.redis_cluster, socket_timeout=None)
    try:
        store = RedisFeatureStore(
            client, retry_s=settings.redis_retry_s, timeout_s=settings.redis_timeout_s
        )
        # a Redis that lost its state lost the rates and blocklists set with the CLI too
        restored = await rates.restore(settings, client)
        blocked = await blocklists.restore(settings, store)
        # the state holds amounts as the workers convert them: at the rates in force now
        in_force = await rates.effective(settings, client)
        history = await read_history(settings, in_force.currencies, read)
        await replay_into(store, history.events, history.marks, replayed)
        late = await apply_late_labels(settings, store, history.label_ends)
        counts = (len(history.events), len(history.marks), history.skipped)
        unconverted = history.unconverted
        del history  # the decisions' verdicts take its place in memory
        decisions, not_decisions = await restore_pins(settings, store, read)
    finally:
        await client.aclose()
    return Rebuilt(*counts, in_force, unconverted, restored, blocked, late, decisions,
                   not_decisions)  # fmt: skip


async def restore_pins(
    settings: Settings, store: FeatureStore, progress: Callable[[int], object] | None = None
) -> tuple[int, int]:
    """Pin again the verdicts the decisions topic holds, each at its card (the first of a
    transaction's, in its partition's order, as the workers pinned it before publishing), for
    the transactions the card's window holds; returns (decisions read, records that were not
    decisions: skipped).

    Only transactions still in a window: the window trims a transaction's pin with it, and a
    pin restored for one it no longer holds would stay for good (``pin.lua`` pins none). A
    verdict a worker pinned since the loss stays (the first pin wins): a repeat it decided anew
    on the emptied windows was published so. "First" is in the order of the card's partition
    of the decisions topic, where the workers publish a card's decisions (keyed by its id); a
    partition added to that topic since would move some cards, and a transaction with two
    different decisions there (from workers from before pins) could get the later one. The
    topic keeps what its retention keeps (Kafka's default is 7 days); a transaction whose
    decision it no longer holds is decided anew if it comes again.
    """
    keys: list[PinKey] = []
    verdicts: list[Pinned] = []
    skipped = 0

    def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        nonlocal skipped
        try:
            d = Decision.model_validate_json(record.value or b"")
        except ValidationError:
            skipped += 1
            return
        keys.append((d.customer_id, d.transaction_id))
        verdicts.append(Verdict(d.score, d.decision, d.model_version, d.reasons).encode())

    await read_to_end(settings, settings.topic_decisions, handle, progress=progress)
    for start in range(0, len(keys), BATCH):
        chunk = slice(start, start + BATCH)
        await store.pin(keys[chunk], verdicts[chunk])
    return len(keys), skipped


async def replay_into(
    store: FeatureStore,
    events: Sequence[FeatureEvent],
    marks: Sequence[FraudMark],
    replayed: Callable[[int], object] | None = None,
) -> None:
    """Record history in a store as the stream built it: transactions (in event time) in
    rounds of :data:`BATCH`, each round after the labels reported by its last transaction's
    time (``marks`` in report time). ``replayed`` gets each round's count."""
    for known, chunk in in_event_time(events, marks, BATCH):
        await store.apply_labels(known)
        if chunk:
            await store.record(chunk)
            if replayed is not None:
                replayed(len(chunk))
