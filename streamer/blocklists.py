"""The blocklists' record in Kafka, from which a Redis that lost them gets them back.

The workers read the blocklists from Redis (``fs:blocklist:customer``, ``fs:blocklist:terminal``)
on every batch. Redis is not the source of truth: a restart without persistence, a new server or
a flushed database loses what it holds, and an emptied blocklist fails open — every card it held
is approved on its score again, without an error. So ``fraud-streamer blocklist`` records each
change in a compacted topic (``STREAMER_TOPIC_BLOCKLISTS``), one record per id, keyed
``kind:id``: ``{"blocked": true}`` when added, a tombstone when removed. Compaction keeps the
last record of each id, so the topic stays the size of the lists however often they change,
and ``rebuild-state`` (or ``blocklist restore``) blocks again every recorded id that Redis lacks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aiokafka import ConsumerRecord

from streamer.features.keys import BlocklistKind
from streamer.features.store import RedisFeatureStore
from streamer.kafka import make_producer, running
from streamer.kafka_reading import partitions_to_read, read_to_end
from streamer.kafka_topics import ensure_topics
from streamer.settings import Settings

__all__ = ["KINDS", "describe", "missing", "record", "recorded", "restore"]

KINDS: tuple[BlocklistKind, ...] = ("customer", "terminal")

_BLOCKED = json.dumps({"blocked": True}).encode()


async def record(settings: Settings, kind: BlocklistKind, ids: Sequence[str], *,
                 blocked: bool) -> None:  # fmt: skip
    """Record in Kafka that ``ids`` of ``kind`` are now blocked (or no longer are), creating
    the topic the first time; returns once the broker has every record."""
    await ensure_topics(settings, [settings.topic_blocklists], partitions=1,
                        configs={"cleanup.policy": "compact"})  # fmt: skip
    value = _BLOCKED if blocked else None  # a tombstone: compaction forgets the id
    async with running(make_producer(settings)) as producer:
        topic = settings.topic_blocklists
        sent = [await producer.send(topic, value, key=f"{kind}:{m}".encode()) for m in ids]
        for delivery in sent:
            await delivery


async def recorded(settings: Settings) -> dict[BlocklistKind, set[str]]:
    """The ids each list held after its last recorded change (empty when nothing was ever
    recorded). Raises :class:`~streamer.kafka.KafkaUnusable` when Kafka cannot be read."""
    lists: dict[BlocklistKind, set[str]] = {kind: set() for kind in KINDS}
    found = await partitions_to_read(settings, settings.topic_blocklists)
    if found is None:  # nothing ever recorded
        return lists

    def keep(message: ConsumerRecord[bytes, bytes]) -> None:
        kind, _, member = (message.key or b"").decode(errors="replace").partition(":")
        if kind not in lists:  # not one of ours: ignored
            return
        if message.value is None:
            lists[kind].discard(member)
        else:
            lists[kind].add(member)

    await read_to_end(settings, settings.topic_blocklists, keep)
    return lists


async def restore(settings: Settings, store: RedisFeatureStore) -> dict[BlocklistKind, int] | None:
    """Block again every recorded id that Redis does not hold; how many of each kind it
    lacked, or None when it lacked none.

    Not only in a Redis that holds no list: one refilled in part after a loss (an id blocked
    since, or a restore stopped half-way) holds some ids and lacks the others, and each of
    those cards or terminals would be approved on its score again. Every change is recorded,
    so the record is the lists; an id removed from Redis whose removal Kafka did not take
    (the command said so) is blocked again, which fails safe."""
    lists = await recorded(settings)
    counts = {kind: await store.blocklist_add(kind, sorted(ids)) if ids else 0
              for kind, ids in lists.items()}  # fmt: skip
    return counts if any(counts.values()) else None


async def missing(settings: Settings, store: RedisFeatureStore) -> dict[BlocklistKind, int]:
    """How many recorded ids of each kind Redis does not hold (what :func:`restore` would set)."""
    lists = await recorded(settings)
    return {kind: len(ids - set(await store.blocklist_members(kind)))
            for kind, ids in lists.items()}  # fmt: skip


def describe(counts: dict[BlocklistKind, int]) -> str:
    """``3 customer(s), 1 terminal(s)``: what :func:`restore` set."""
    return ", ".join(f"{n:,} {kind}(s)" for kind, n in counts.items())
