"""Faust's aiokafka transport, with the five changes the worker needs.

**Pausing loses nothing.** Faust's ``Consumer.getmany`` fetches a batch of records for the *active*
partitions and then yields them one by one, skipping any record whose partition is no longer in
the active set. That set is the live object that ``pause_partitions`` edits, so pausing a
partition while a fetched batch is still being handed out silently drops the rest of that
partition's records — and the next commit moves past them. Event-time alignment
(:mod:`streamer.alignment`) pauses partitions from the agents, in exactly that window — and
in the one before it: the fetch runs in the consumer's thread, and a pause made on the event
loop while it is on its way dropped the records it drained for that partition (aiokafka's
position already past them). Faust then takes the next record delivered there for a gap in the
offsets and commits past the dropped ones: they were never decided. :class:`Consumer` copies
the active set when the fetch starts, fetches exactly that copy and hands it to ``getmany``:
what was fetched for a partition is delivered, and a pause takes effect from the next fetch on.
Rebalances are not affected (``getmany`` stops on a generation change or when flow stops,
before looking at the set).

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

**Input written in Kafka transactions is read as committed.** Faust reads committed records
only with exactly-once processing, so an aborted producer's records would be decided. The
worker's consumer always reads committed records, and says where a partition's records to come
end (:meth:`Consumer.end_offset`, for the lag and the event-time merge) without counting the
marker each commit or abort writes after its records: that offset is never delivered, so a
partition ending with one would show a lag of 1 forever, and a label partition would hold back
every later transaction for ``STREAMER_PARTITION_IDLE_S``.

**The outputs are written once.** Faust's producer is idempotent only with exactly-once
processing; without it, a send retried after an acknowledgement was lost writes the decision
twice. :class:`Producer` always is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from streamer.stalls import PartitionState

__all__ = [
    "HELD_BACK_POLL_S",
    "Consumer",
    "ConsumerThread",
    "Producer",
    "Transport",
    "WorkerApp",
]

#: Longest poll while a full stream buffer holds partitions back (Faust's own is 1 s).
HELD_BACK_POLL_S = 0.02


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, with the app's fetch wait, reading committed records."""

    def _create_worker_consumer(self, transport: driver.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # both read by aiokafka when the consumer starts, to build its fetcher (Faust passes a
        # 1500 ms wait, and reads committed records only with exactly-once processing)
        consumer._fetch_max_wait_ms = cast("WorkerApp", self.app).fetch_max_wait_ms
        consumer._isolation_level = "read_committed"
        return consumer

    def highwater(self, tp: TP) -> int:
        """The last stable offset: the records of an open transaction are not readable yet."""
        return cast(int, self._ensure_consumer().last_stable_offset(tp))

    def _assigned_states(self) -> Iterator[tuple[TP, Any]]:
        """Each assigned partition with aiokafka's state of it (None when it has none yet).
        There is no public synchronous call; read from another thread, without a lock."""
        consumer = self._ensure_consumer()
        assignment = consumer._subscription.subscription.assignment
        for tp in consumer.assignment():
            state = None if assignment is None else assignment.state_value(tp)
            yield TP(tp.topic, tp.partition), state

    def fetch_states(self) -> dict[TP, tuple[int | None, bool, bool]]:
        """For a stall report, aiokafka's view of each assigned partition: (its position,
        whether it is paused, whether records it fetched wait to be handed out — it fetches no
        more for that partition until they are). A snapshot that may be a moment old."""
        waiting = {(tp.topic, tp.partition) for tp in self._ensure_consumer()._fetcher._records}
        return {
            tp: (
                state.position if state is not None and state.has_valid_position else None,
                state is not None and state.paused,
                (tp.topic, tp.partition) in waiting,
            )
            for tp, state in self._assigned_states()
        }

    def positions(self) -> dict[TP, int]:
        """aiokafka's position in each assigned partition: the offset after the last record it
        returned or skipped (a transaction marker, a record of an aborted transaction)."""
        return {
            tp: state.position
            for tp, state in self._assigned_states()
            if state is not None and state.has_valid_position
        }


class Consumer(driver.Consumer):
    """aiokafka consumer whose fetched records are delivered even if their partition is paused,
    whose polls stay short while a full stream buffer holds partitions back, and which knows
    where each partition's records to come end (transaction markers aside)."""

    _thread: ConsumerThread

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # as of the last poll: the offset after the last record returned, and aiokafka's position
        self._returned_to: dict[TP, int] = {}
        self._consumed_to: dict[TP, int] = {}
        self._fetched_for: set[TP] | None = None  # the partitions the last fetch asked for

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._returned_to.pop(tp, None)
            self._consumed_to.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:
        if self._buffered_partitions and self.flow_active:
            # some partitions are held back by a full stream buffer: come back soon, so that
            # they are fetched again as soon as the buffer drains (see the module's docstring)
            timeout = min(timeout, HELD_BACK_POLL_S)
            if not self._get_active_partitions():
                await self.sleep(HELD_BACK_POLL_S)  # Faust sleeps 1 s here
                return {}, set()
        self._fetched_for = None
        records, active = await super()._wait_next_records(timeout)
        for tp, batch in (records or {}).items():
            if batch:
                self._returned_to[tp] = batch[-1].offset + 1
        # read now, with the records it covers: between polls aiokafka's position stays put
        self._consumed_to = self._thread.positions()
        if active is None or self._fetched_for is None:  # every partition, or no fetch
            return records, active
        return records, self._fetched_for

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        # the fetch gets a copy of the live set, and getmany then delivers exactly what it
        # asked for: a partition paused while the fetch is on its way (in the consumer's
        # thread) still has what the fetch drained delivered (see the module's docstring)
        if active_partitions is not None:
            active_partitions = self._fetched_for = set(active_partitions)
        return await super()._getmany(active_partitions, timeout)

    def end_offset(self, tp: TP) -> int | None:
        """The offset after the last record of ``tp`` still to come, as of the last fetch (None
        before the first): the last stable offset, unless aiokafka has consumed up to it, when
        what it skipped after the last record it returned — the marker that each commit or
        abort of a Kafka transaction writes, the records of an aborted one — is not to come."""
        end = self.highwater(tp)
        consumed = self._consumed_to.get(tp)
        if end is None or consumed is None or consumed < end:
            return end
        returned = self._returned_to.get(tp)
        if returned is None:  # only markers since the assignment
            returned = self.start_offsets([tp])[tp]
        return min(end, returned)

    def lag(self) -> dict[TP, int]:
        """Records in each assigned partition not yet handed to an agent.

        :meth:`end_offset` minus the next offset to read: the one after the last record Faust
        delivered, or the committed offset before the first. Partitions with neither known
        yet (just assigned, nothing fetched) are left out.
        """
        lags = {}
        for tp in self.assignment():
            end, start = self.end_offset(tp), self._next_read(tp)
            if end is not None and start is not None:
                lags[tp] = max(end - start, 0)
        return lags

    def _next_read(self, tp: TP) -> int | None:
        """The next offset of ``tp`` to hand to an agent: the one after the last delivered, or
        the committed offset before the first (None: neither known yet)."""
        read = self._read_offset.get(tp)
        return read + 1 if read is not None else self._committed_offset.get(tp)

    def partition_states(self, held: Mapping[TP, int]) -> list[PartitionState]:
        """What decides whether each assigned partition is read (:class:`PartitionState`),
        with ``held``: how many of its records the event-time merge holds."""
        fetching = self._thread.fetch_states()
        active = self._active_partitions or set()
        states = []
        for tp in self.assignment():
            position, fetch_paused, waiting = fetching.get(tp, (None, False, False))
            states.append(
                PartitionState(
                    tp=f"{tp.topic}[{tp.partition}]",
                    end=self.end_offset(tp),
                    next_read=self._next_read(tp),
                    fetch_position=position,
                    fetched_waiting=waiting,
                    active=tp in active,
                    paused=tp in self._paused_partitions,
                    buffered=tp in self._buffered_partitions,
                    fetch_paused=fetch_paused,
                    held=held.get(tp, 0),
                )
            )
        return states

    def start_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The offset each partition's records are read from since its assignment: the
        committed one (0 when none is known: a new group reads from the earliest)."""
        return {tp: self._committed_offset.get(tp) or 0 for tp in tps}


class Producer(driver.Producer):
    """Faust's aiokafka producer, idempotent: a send retried after a lost acknowledgement is
    not written twice (Faust enables idempotence only for exactly-once processing). The worker
    commits its input once the outputs are acknowledged, so each must be durable and once."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(driver.Transport):
    """The aiokafka transport with :class:`Consumer` and :class:`Producer`."""

    Consumer = Consumer
    Producer = Producer


class WorkerApp(faust.App):
    """A Faust app on :class:`Transport` (``kafka://`` URLs only, as the worker uses)."""

    #: the worker's report of its partitions (:func:`streamer.stalls.format_partitions`),
    #: for the task dump; set by whoever builds the agents
    partition_report: Callable[[], str] | None = None

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 500, **options: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **options)

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
