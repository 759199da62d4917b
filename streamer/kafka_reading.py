"""Reading topics back: every record of a topic up to its end as of the call (what the
commands that rebuild, restore or report read), the partitions a topic has, and how far a
consumer group is behind.

These readers take no part in a consumer group and commit nothing; like the workers, they see
only committed records (``isolation_level="read_committed"``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from streamer.kafka import KafkaUnusable, client_options, failure_reason, make_consumer, running
from streamer.settings import Settings

__all__ = [
    "consumer_group_state",
    "partitions",
    "partitions_to_read",
    "read_to_end",
    "topic_partitions",
    "topics_partitions",
]


def partitions(topic: str, count: int) -> list[TopicPartition]:
    """The partitions of a topic the caller created itself with ``count`` partitions (the
    benchmark's own topics); for any other, ask the cluster (:func:`topic_partitions`):
    :func:`streamer.kafka_topics.ensure_topics` leaves a topic that exists as it is."""
    return [TopicPartition(topic, p) for p in range(count)]


async def topic_partitions(settings: Settings, topic: str) -> list[TopicPartition] | None:
    """The partitions ``topic`` has on the cluster, whatever it was created with; None when
    there is no such topic."""
    return (await topics_partitions(settings, [topic]))[topic]


async def partitions_to_read(settings: Settings, topic: str) -> list[TopicPartition] | None:
    """:func:`topic_partitions`, with a failure to ask as :class:`KafkaUnusable` naming the
    topic (for the commands that read a record of theirs back)."""
    started = time.monotonic()
    try:
        return await topic_partitions(settings, topic)
    except (KafkaError, OSError) as exc:
        problem = await failure_reason(settings, exc, started)
        raise KafkaUnusable(
            f"cannot read {topic} from Kafka at {settings.kafka_bootstrap_servers}{problem}"
        ) from exc


async def topics_partitions(
    settings: Settings, topics: Sequence[str]
) -> dict[str, list[TopicPartition] | None]:
    """:func:`topic_partitions` of each of ``topics``, from one metadata request."""
    client = AIOKafkaClient(**client_options(settings))
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
    finally:
        await client.close()
    found = {topic: metadata.partitions_for_topic(topic) for topic in topics}
    return {
        topic: None if ids is None else [TopicPartition(topic, p) for p in sorted(ids)]
        for topic, ids in found.items()
    }


async def read_to_end(
    settings: Settings,
    topic: str,
    handle: Callable[[ConsumerRecord[bytes, bytes]], object],
    *,
    tail: int | None = None,
    progress: Callable[[int], object] | None = None,
    start: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Hand every record of ``topic`` to ``handle``, partition by partition in offset order,
    up to its end as of the call (what is written meanwhile is not waited for); with ``tail``,
    only each partition's last ``tail`` records; with ``start``, from that offset on in each
    partition it names (a partition it does not name from its beginning). ``progress`` gets
    each fetch's count. Returns each partition's end, as read to (a ``start`` for the next
    call). Raises :class:`KafkaUnusable`, naming why, when there is no such topic or Kafka
    cannot be read."""
    started = time.monotonic()
    try:
        found = await _read_to_end(settings, topic, handle, tail, progress, start or {})
    except (KafkaError, OSError) as exc:
        problem = await failure_reason(settings, exc, started)
        raise KafkaUnusable(
            f"cannot read {topic} from Kafka at {settings.kafka_bootstrap_servers}{problem}"
        ) from exc
    if found is None:
        raise KafkaUnusable(f"no topic {topic!r} on Kafka at {settings.kafka_bootstrap_servers}")
    return found


async def _read_to_end(
    settings: Settings,
    topic: str,
    handle: Callable[[ConsumerRecord[bytes, bytes]], object],
    tail: int | None,
    progress: Callable[[int], object] | None,
    start: Mapping[int, int],
) -> dict[int, int] | None:
    tps = await topic_partitions(settings, topic)
    if tps is None:
        return None
    # what the workers read: never what a transactional producer aborted (nor, yet, what it
    # has not committed)
    reader = make_consumer(settings, group_id=None, isolation_level="read_committed")
    async with running(reader) as consumer:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            first = await consumer.position(tp)
            # from the beginning, the start given, or the tail's first, whichever is latest
            at = max(first, start.get(tp.partition, first),
                     first if tail is None else ends[tp] - tail)  # fmt: skip
            if at > first:
                consumer.seek(tp, at)
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        await _read_until(consumer, {tp: ends[tp] for tp in pending}, handle, progress)
    return {tp.partition: ends[tp] for tp in tps}


async def _read_until(
    consumer: AIOKafkaConsumer,
    ends: Mapping[TopicPartition, int],
    handle: Callable[[ConsumerRecord[bytes, bytes]], object],
    progress: Callable[[int], object] | None = None,
    timeout: float | None = None,
) -> set[TopicPartition]:
    """Hand ``handle`` each record before its partition's end, until every partition's
    position reaches its end; returns those that had not when ``timeout`` (s) ran out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = set(ends)
    while pending and (deadline is None or time.monotonic() < deadline):
        batch = await consumer.getmany(*pending, timeout_ms=200 if deadline else 1000)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    handle(record)
            if progress is not None:
                progress(len(records))
        for tp in list(pending):  # the end may be a transaction marker: no record there
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return pending


#: Gaps this short between a group's commit and a partition's end are read to tell records
#: from transaction markers (:func:`consumer_group_state`).
MARKER_PROBE_MAX = 16


async def consumer_group_state(
    settings: Settings, group: str, tps: Sequence[TopicPartition]
) -> tuple[int, dict[str, int]]:
    """How many members ``group`` has, and per topic of ``tps`` (the partitions to look at, from
    :func:`topic_partitions`) how many records it has not committed yet (the end of each
    partition minus the group's committed offset there; a partition without a commit counts
    from its first record).

    The end is what a committed-records reader sees (the last stable offset). Each commit or
    abort of a Kafka transaction writes a marker after its records, which no reader is handed,
    so a group that has read everything still commits short of the end; the few offsets left
    on such a partition (at most :data:`MARKER_PROBE_MAX`) are read to count the records
    among them. A longer gap counts every offset, markers included.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
        members = sum(len(g[5]) for response in described for g in response.groups)
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    reader = make_consumer(settings, group_id=None, isolation_level="read_committed")
    async with running(reader) as consumer:
        ends = await consumer.end_offsets(tps) if tps else {}
        starts = await consumer.beginning_offsets(tps) if tps else {}
        gaps = {}
        for tp in tps:
            done = committed.get(tp)
            start = starts[tp] if done is None or done.offset < 0 else done.offset
            gaps[tp] = (start, max(ends[tp], start))
        short = {tp: gap for tp, gap in gaps.items() if 0 < gap[1] - gap[0] <= MARKER_PROBE_MAX}
        held = await _records_between(consumer, short) if short else {}
    lag = dict.fromkeys((tp.topic for tp in tps), 0)
    for tp, (start, end) in gaps.items():
        lag[tp.topic] += held.get(tp, end - start)
    return members, lag


async def _records_between(
    consumer: AIOKafkaConsumer, gaps: Mapping[TopicPartition, tuple[int, int]]
) -> dict[TopicPartition, int]:
    """How many records a committed-records reader is handed in each partition's offsets
    [start, end); a partition not read to its end within a second is left out."""
    consumer.assign(list(gaps))
    for tp, (start, _) in gaps.items():
        consumer.seek(tp, start)
    counts = dict.fromkeys(gaps, 0)

    def count(record: ConsumerRecord[bytes, bytes]) -> None:
        counts[TopicPartition(record.topic, record.partition)] += 1

    ends = {tp: end for tp, (_, end) in gaps.items()}
    unread = await _read_until(consumer, ends, count, timeout=1.0)
    return {tp: n for tp, n in counts.items() if tp not in unread}
