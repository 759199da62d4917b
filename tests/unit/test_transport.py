"""The worker's Faust transport: the fetch settings, and short polls under back-pressure."""

from faust.types import TP

from streamer.app import create_app
from streamer.settings import Settings
from streamer.transport import HELD_BACK_POLL_S


async def test_the_worker_consumer_uses_the_configured_fetch_wait() -> None:
    # Faust builds its aiokafka consumer with a fixed 1.5 s fetch wait; the worker's must not
    app = create_app(Settings(kafka_fetch_max_wait_ms=7))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 7


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

    consumer._getmany = poll  # the consumer thread's fetch: the I/O edge
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
    consumer.highwater = highwaters.__getitem__
    consumer._read_offset[read] = 99  # delivered up to offset 99: 100..119 are still to read
    consumer._committed_offset[fresh] = 30  # nothing read yet since the assignment
    consumer._committed_offset[unknown] = 5  # nothing fetched yet: no high watermark
    assert consumer.lag() == {read: 20, fresh: 10}
    consumer._read_offset[read] = 119
    assert consumer.lag()[read] == 0
