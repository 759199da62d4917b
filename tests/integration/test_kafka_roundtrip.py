"""A consumer group resumes exactly at its committed offsets, through ``streamer.kafka``.

This is the delivery property the worker relies on: it commits only after a batch's outputs
are written, and after a restart it must see every message after the commit and none before.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamer.kafka import client_options, make_consumer, make_producer
from streamer.kafka_topics import ensure_topics
from streamer.settings import Settings

FIRST = 40
MORE = 20
KEYS = 7


async def _produce(settings: Settings, topic: str, numbers: range) -> set[int]:
    """Send keyed messages ``numbers`` and return the partitions they went to."""
    producer = make_producer(settings)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, key=f"customer-{n % KEYS}".encode(), value=str(n).encode())
            for n in numbers
        ]
        return {metadata.partition for metadata in await asyncio.gather(*sends)}
    finally:
        await producer.stop()


async def _consume(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord]:
    """Read exactly ``count`` records, then check that nothing else arrives."""
    records: list[ConsumerRecord] = []
    async with asyncio.timeout(60):
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    assert len(records) == count, f"expected {count} records, got {len(records)}"
    extra = await consumer.getmany(timeout_ms=1000)
    assert not any(extra.values()), f"unexpected records: {extra}"
    return records


def _by_partition(records: list[ConsumerRecord]) -> dict[TopicPartition, list[ConsumerRecord]]:
    grouped: dict[TopicPartition, list[ConsumerRecord]] = defaultdict(list)
    for record in records:
        grouped[TopicPartition(record.topic, record.partition)].append(record)
    return grouped


async def test_group_resumes_exactly_from_committed_offsets(stack: Settings) -> None:
    topic = f"it-roundtrip-{uuid.uuid4().hex[:12]}"
    group = f"{topic}-group"
    assert await ensure_topics(stack, [topic], partitions=2) == [topic]
    assert await ensure_topics(stack, [topic], partitions=2) == [], "second call creates nothing"
    try:
        assert await _produce(stack, topic, range(FIRST)) == {0, 1}, "both partitions used"

        first = make_consumer(stack, topic, group_id=group)
        await first.start()
        try:
            seen = _by_partition(await _consume(first, FIRST))
            # Commit half way through each partition: the committed offset is the next to read.
            commit = {tp: records[len(records) // 2].offset for tp, records in seen.items()}
            await first.commit(commit)
        finally:
            await first.stop()

        not_committed = [
            int(r.value) for tp, records in seen.items() for r in records if r.offset >= commit[tp]
        ]
        await _produce(stack, topic, range(FIRST, FIRST + MORE))

        second = make_consumer(stack, topic, group_id=group)
        await second.start()
        try:
            resumed = _by_partition(await _consume(second, len(not_committed) + MORE))
            committed = {tp: await second.committed(tp) for tp in commit}
        finally:
            await second.stop()

        assert committed == commit
        for tp, records in resumed.items():
            offsets = [r.offset for r in records]
            assert offsets[0] == commit[tp], f"{tp} resumed at {offsets[0]}, not {commit[tp]}"
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), "no gaps"
        values = sorted(int(r.value) for records in resumed.values() for r in records)
        assert values == sorted([*not_committed, *range(FIRST, FIRST + MORE)])
    finally:
        admin = AIOKafkaAdminClient(**client_options(stack))
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
