"""Faust's aiokafka transport, with the three changes the worker needs.

**Pausing is safe.** Faust's ``Consumer.getmany`` fetches a batch of records for the *active*
partitions and then yields them one by one, skipping any record whose partition is no longer in
the active set. That set is the live object that ``pause_partitions`` edits, so pausing a
partition while a fetched batch is still being handed out silently drops the rest of that
partition's records — and the next commit moves past them. Event-time alignment
(:mod:`streamer.alignment`) pauses partitions from the agents, in exactly that window.
:class:`Consumer` hands ``getmany`` a copy of the active set instead: what was fetched for a
partition is delivered, and a pause takes effect from the next fetch on. Rebalances are not
affected (``getmany`` stops on a generation change or when flow stops, before looking at the set).

**A fetch for quiet partitions cannot hold up busy ones for long.** aiokafka keeps one fetch in
flight per broker, and while fetched records of a partition are still being handed out it
fetches only the *other* partitions. When those are quiet (the labels topic, mostly) the broker
holds that fetch for the full fetch wait, and the busy partitions' next records wait behind it.
Faust hard-codes that wait to 1.5 s; once a burst takes longer than aiokafka's 100 ms prefetch
back-off to hand out, every following fetch repeats the pattern, and the worker settles into a
steady 1.5 s of added latency at any rate (seen in ``fraud-streamer bench``). The worker's
consumer uses ``STREAMER_KAFKA_FETCH_MAX_WAIT_MS`` (20 ms) instead.

**A full stream buffer cannot stall the worker for a second.** When the agent's buffer fills,
Faust stops asking for that partition's records until the buffer has drained, and meanwhile
polls the other partitions with a 1 s timeout. aiokafka ends such a poll early only when a fetch
brings records for a partition *it* asks for: the held-back partitions already have records
waiting in aiokafka, so nothing is fetched for them, and the quiet ones bring none. So once the
buffer has drained, the worker sat idle for the rest of that second before it read on (seen in
``fraud-streamer bench``: three such polls of 1.0 s while draining a 13-second backlog). While
partitions are held back, the worker's consumer polls for at most ``HELD_BACK_POLL_S`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

__all__ = ["HELD_BACK_POLL_S", "Consumer", "ConsumerThread", "Transport", "WorkerApp"]

#: Longest poll while a full stream buffer holds partitions back (Faust's own is 1 s).
HELD_BACK_POLL_S = 0.02


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, with the app's fetch wait."""

    def _create_worker_consumer(self, transport: driver.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts, to build its fetcher (Faust passes 1500)
        consumer._fetch_max_wait_ms = cast("WorkerApp", self.app).fetch_max_wait_ms
        return consumer


class Consumer(driver.Consumer):
    """aiokafka consumer whose fetched records are delivered even if their partition is paused,
    and whose polls stay short while a full stream buffer holds partitions back."""

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:
        if self._buffered_partitions and self.flow_active:
            # some partitions are held back by a full stream buffer: come back soon, so that
            # they are fetched again as soon as the buffer drains (see the module's docstring)
            timeout = min(timeout, HELD_BACK_POLL_S)
            if not self._get_active_partitions():
                await self.sleep(HELD_BACK_POLL_S)  # Faust sleeps 1 s here
                return {}, set()
        records, active = await super()._wait_next_records(timeout)
        return records, None if active is None else set(active)

    def lag(self) -> dict[TP, int]:
        """Records in each assigned partition not yet handed to an agent.

        The broker's high watermark (as of the last fetch) minus the next offset to read: the
        one after the last record Faust delivered, or the committed offset before the first.
        Partitions with neither known yet (just assigned, nothing fetched) are left out.
        """
        lags = {}
        for tp in self.assignment():
            highwater = self.highwater(tp)
            read = self._read_offset.get(tp)
            start = read + 1 if read is not None else self._committed_offset.get(tp)
            if highwater is not None and start is not None:
                lags[tp] = max(highwater - start, 0)
        return lags

    def start_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The offset each partition's records are read from since its assignment: the
        committed one (0 when none is known: a new group reads from the earliest)."""
        return {tp: self._committed_offset.get(tp) or 0 for tp in tps}


class Transport(driver.Transport):
    """The aiokafka transport with :class:`Consumer`."""

    Consumer = Consumer


class WorkerApp(faust.App):
    """A Faust app on :class:`Transport` (``kafka://`` URLs only, as the worker uses)."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 500, **options: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **options)

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
