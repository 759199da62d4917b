"""The worker's Faust transport: the fetch settings, and short polls under back-pressure."""

from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord
from faust.types import TP

from streamer.app import create_app
from streamer.settings import Settings
from streamer.transport import HELD_BACK_POLL_S


async def test_the_worker_consumer_uses_the_configured_fetch_wait_and_reads_committed() -> None:
    # Faust builds its aiokafka consumer with a fixed 1.5 s fetch wait; the worker's must not.
    # And it reads committed records only with exactly-once processing; the worker always does
    app = create_app(Settings(kafka_fetch_max_wait_ms=7))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 7
    assert consumer._isolation_level == "read_committed"


async def test_the_worker_producer_is_idempotent_and_waits_for_all_replicas() -> None:
    # Faust's is idempotent only with exactly-once processing: a retried send could be doubled
    app = create_app(Settings())
    producer = app.producer._new_producer()
    assert producer._txn_manager is not None  # what enable_idempotence=True makes
    assert producer._sender._acks == -1


async def test_a_poll_while_partitions_are_held_back_by_a_full_buffer_is_short() -> None:
    # Faust polls the other partitions for 1 s while a full stream buffer holds some back, and
    # aiokafka does not end that poll when the buffer drains: the worker must come back soon
    app = create_app(Settings())
    consumer = app.consumer
    held, quiet = TP("transactions", 0), TP("labels", 0)
    polls: list[tuple[set[TP], float]] = []

    async def poll(active_partitions: set[TP], timeout: float) -> dict[TP, list[object]]:
        polls.append((set(active_partitions), timeout))
        return {}

    consumer._getmany = poll  # the consumer thread's fetch and position: the I/O edge
    consumer._thread.positions = dict
    consumer._active_partitions = {held, quiet}
    await consumer._wait_next_records(1.0)
    assert polls[-1] == ({held, quiet}, 1.0)  # nothing held back: Faust's own timeout

    consumer.on_buffer_full(held)
    await consumer._wait_next_records(1.0)
    assert polls[-1] == ({quiet}, HELD_BACK_POLL_S)

    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    consumer.sleep = sleep
    consumer.on_buffer_full(quiet)  # every partition held back: no poll, a short sleep
    records, active = await consumer._wait_next_records(1.0)
    assert (records, active) == ({}, set()) and len(polls) == 2
    assert sleeps == [HELD_BACK_POLL_S]

    consumer.on_buffer_drop(held)
    consumer.on_buffer_drop(quiet)
    await consumer._wait_next_records(1.0)
    assert polls[-1] == ({held, quiet}, 1.0)


async def test_lag_is_the_high_watermark_minus_the_next_offset_to_read() -> None:
    app = create_app(Settings())
    consumer = app.consumer
    read, fresh, unknown = TP("transactions", 0), TP("transactions", 1), TP("labels", 0)
    highwaters = {read: 120, fresh: 40, unknown: None}
    consumer.assignment = lambda: set(highwaters)  # the consumer thread's state: the I/O edge
    consumer.highwater = highwaters.__getitem__  # the last stable offset (nothing polled yet)
    consumer._read_offset[read] = 99  # delivered up to offset 99: 100..119 are still to read
    consumer._committed_offset[fresh] = 30  # nothing read yet since the assignment
    consumer._committed_offset[unknown] = 5  # nothing fetched yet: no high watermark
    assert consumer.lag() == {read: 20, fresh: 10}
    consumer._read_offset[read] = 119
    assert consumer.lag()[read] == 0


@dataclass
class _Record:
    offset: int


async def test_transaction_markers_after_the_last_record_are_not_records_to_come() -> None:
    """Each commit or abort of a Kafka transaction writes a marker after its records, and an
    aborted one leaves records no reader gets: once aiokafka has consumed up to the end, the
    records to come end after the last one it returned."""
    app = create_app(Settings())
    consumer = app.consumer
    done, reading, idle = (TP("transactions", p) for p in range(3))
    stable = {done: 13, reading: 13, idle: 6}  # last stable offsets
    consumer.assignment = lambda: set(stable)  # the consumer thread's state: the I/O edge
    consumer.highwater = stable.__getitem__
    positions = {done: 13, reading: 9, idle: 6}
    consumer._thread.positions = lambda: dict(positions)

    async def poll(active_partitions: set[TP], timeout: float) -> dict[TP, list[_Record]]:
        # done: records 0..9, then a commit marker, 2 aborted records and their marker
        return {done: [_Record(o) for o in range(10)], reading: [_Record(o) for o in range(9)]}

    consumer._getmany = poll
    consumer._active_partitions = set(stable)
    consumer._committed_offset[idle] = 5  # a marker at 5 is all it has had since
    assert consumer.end_offset(done) == 13  # before a poll: what the broker says
    await consumer._wait_next_records(1.0)
    assert consumer.end_offset(done) == 10
    assert consumer.end_offset(reading) == 13  # 9..12 not consumed yet: they may be records
    assert consumer.end_offset(idle) == 5
    for tp, read in ((done, 9), (reading, 8), (idle, None)):
        consumer._read_offset[tp] = read
    assert consumer.lag() == {done: 0, reading: 4, idle: 0}

    stable[done] = 20  # more committed since the poll: to come
    assert consumer.end_offset(done) == 20
    stable[done] = 13
    await consumer.on_partitions_revoked({done})  # what was polled no longer says anything
    assert consumer.end_offset(done) == 13


async def test_records_fetched_for_a_partition_paused_during_the_fetch_are_delivered() -> None:
    """The event-time merge pauses partitions while a fetch is on its way (the fetch runs in
    the consumer's thread; the merge, on the event loop, meanwhile). What that fetch drained
    from aiokafka has moved aiokafka's position past it: each record must reach the agent.
    Before the fix the worker copied the set of partitions asked for only after the fetch, and
    Faust dropped the paused partition's records — lost, since a later record's offset would
    have been committed past them."""
    app = create_app(Settings())
    consumer = app.consumer
    paused, other = TP("transactions", 0), TP("transactions", 1)
    consumer.assignment = lambda: {paused, other}  # the consumer thread's state: the I/O edge
    consumer._thread.positions = dict
    consumer.highwater = lambda tp: 3
    consumer._active_partitions = {paused, other}
    asked: list[set[TP]] = []

    async def poll(active_partitions: set[TP], timeout: float) -> dict[TP, list[ConsumerRecord]]:
        asked.append(set(active_partitions))
        consumer.pause_partitions({paused})  # the merge's queue filled meanwhile
        return {tp: [_consumer_record(tp, o) for o in range(3)] for tp in active_partitions}

    consumer._thread.getmany = poll  # the fetch, in the consumer's thread
    delivered = [(tp, message.offset) async for tp, message in consumer.getmany(1.0)]
    assert asked == [{paused, other}]
    assert sorted(delivered) == sorted((tp, o) for tp in (paused, other) for o in range(3))

    # the pause holds from the next fetch on
    await consumer._wait_next_records(1.0)
    assert asked[-1] == {other}


def _consumer_record(tp: TP, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=tp.topic, partition=tp.partition, offset=offset, timestamp=1_000, timestamp_type=0,
        key=b"k", value=b"{}", checksum=None, serialized_key_size=1, serialized_value_size=2,
        headers=(),
    )  # fmt: skip
