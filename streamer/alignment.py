"""Merge a worker's input partitions in event time (timestamp synchronisation).

Terminal features count transactions from every partition (transactions are keyed by customer),
in windows that end one label delay (7 days) before the transaction scored. When a backlog is
drained, Faust hands out partitions round-robin by *count*, so a partition with fewer
transactions per day runs ahead in event time — one 64 KiB fetch of a quiet partition can span
weeks. Past a week of skew, a terminal window misses transactions that are still waiting in a
slower partition, and the features differ from the same history processed in order.

So, like a Kafka Streams task, the worker does not score records in the order they arrive: it
holds them in one queue per partition and releases them by a k-way merge on event time, and only
up to ``max_skew`` past the *frontier* — the earliest event time any partition may still deliver
(the head of a non-empty queue, or the last time seen on a partition whose high watermark says it
has records still to come). Partitions whose queue is full are paused at the fetch level, so a
backlog is never read into memory whole.

A partition that has records to come but has delivered none since it was assigned (from the
offset where its consumer starts, :meth:`EventTimeMerger.expect`) may deliver anything, so it
holds everything back until its first records arrive: otherwise a worker started on a backlog
could run the partitions it hears from first ahead of it by any amount of event time.

A partition holds the others back only while it is moving: one that claims records to come but
has delivered none for ``idle_ms`` since its queue ran dry (or since it was assigned) — a broker
that is down, an offset that is never delivered — stops counting, like Kafka Streams'
``max.task.idle.ms``, so the merge can delay the stream but never stall it.

Some partitions are *strict* (the worker's label partitions): a label counts for every
transaction at or after its report time, so no item may pass one that a strict partition may
still deliver at or before it — no skew is allowed there, and a strict item wins a tie.
Items of strict partitions must arrive in event-time order within their partition (labels are
written as they are reported).

Some items are *exact* (a label that withdraws a fraud mark): not even the skew allowed past a
partition may take one ahead of an item that partition may still deliver at or before it. A
fraud mark may be applied early, since a terminal counts it only from its report time on; a
withdrawal takes the mark back for every transaction, so a transaction decided after it,
though earlier in event time, would miss a mark it counted when processed in order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Container, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["EARLIEST", "EventTimeMerger", "RebalanceGate"]

K = TypeVar("K", bound=Hashable)
E = TypeVar("E")

#: an event time before any other: items without one, and a strict partition not heard from
EARLIEST = -(2**62)


def _never(_: object) -> bool:
    return False


@dataclass
class EventTimeMerger(Generic[K, E]):
    """Per-partition queues of received items, released in event-time order.

    Times: ``ts_ms`` is event time (epoch ms), or None for an item without one (a record that
    failed validation: it is released at once, it changes no feature); ``now_ms`` is a monotonic
    wall clock, used only to tell a partition that is moving from one that is stuck.
    """

    max_skew_ms: int
    idle_ms: int = 5_000
    queue_max: int = 1_000
    #: which partitions are strict, and which items exact (see the module's docstring)
    strict: Callable[[K], bool] = field(default_factory=lambda: _never)
    exact: Callable[[E], bool] = field(default_factory=lambda: _never)
    queues: dict[K, deque[tuple[int | None, E]]] = field(default_factory=dict)
    #: per partition: the offset after the last one received, the latest event time received,
    #: and when (wall clock) it last delivered something or ran dry
    next_offset: dict[K, int] = field(default_factory=dict)
    seen_ts: dict[K, int] = field(default_factory=dict)
    received_at: dict[K, int] = field(default_factory=dict)
    paused: set[K] = field(default_factory=set)

    def add(self, tp: K, offset: int, ts_ms: int | None, item: E, now_ms: int) -> None:
        """Queue ``item``, read from ``tp`` at ``offset``."""
        self.queues.setdefault(tp, deque()).append((ts_ms, item))
        self.next_offset[tp] = max(offset + 1, self.next_offset.get(tp, 0))
        self.received_at[tp] = now_ms
        if ts_ms is not None and ts_ms > self.seen_ts.get(tp, EARLIEST):
            self.seen_ts[tp] = ts_ms

    def expect(self, starts: Mapping[K, int], now_ms: int) -> None:
        """Note partitions that have delivered nothing yet, with the offset their consumer
        starts from: while their high watermark is past it, they hold every item back (for
        ``idle_ms`` from when first noted, at most). The start may move forward until the
        first item arrives (the consumer learns its committed offset late)."""
        for tp, offset in starts.items():
            if tp not in self.seen_ts and not self.queues.get(tp):
                self.next_offset[tp] = max(offset, self.next_offset.get(tp, 0))
                self.received_at.setdefault(tp, now_ms)

    @property
    def held(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def forget(self, tps: Iterable[K]) -> list[E]:
        """Drop partitions this worker no longer owns (a rebalance); returns what they held."""
        dropped: list[E] = []
        for tp in tps:
            dropped.extend(item for _, item in self.queues.pop(tp, ()))
            self.next_offset.pop(tp, None)
            self.seen_ts.pop(tp, None)
            self.received_at.pop(tp, None)
            self.paused.discard(tp)
        return dropped

    def retain(self, owned: Container[K]) -> list[E]:
        """Forget every partition not in ``owned``; returns what they held.

        The consumer can lose a partition before the revocation callback has run (and a batch
        read before a rebalance can bring one back after it), and asking a consumer about a
        partition it does not own fails; so the caller passes the current assignment first.
        """
        return self.forget([tp for tp in {*self.next_offset, *self.queues} if tp not in owned])

    def _to_come(self, tp: K, highwater: Callable[[K], int | None], now_ms: int) -> int | None:
        """The last event time of a partition with records still to come (None if it has none,
        or has been stuck for longer than ``idle_ms``): its next record is at least that late.
        A partition not heard from yet may deliver anything: EARLIEST. One whose end is not
        known (no fetch has answered for it since its assignment) may have records to come:
        taken as having none, it let the others run past it, and past labels not read yet,
        for as long as its first fetch took (at start-up, or after a rebalance)."""
        end = highwater(tp)
        if end is not None and end <= self.next_offset[tp]:
            return None
        if now_ms - self.received_at[tp] > self.idle_ms:
            return None
        return self.seen_ts.get(tp, EARLIEST)

    def _latest_release(self, tp: K, position: int) -> int:
        """The latest event time that may pass a partition whose next item is at ``position``
        or later: a skew allowed, except past a strict one (whose next item may be a tie)."""
        return position - 1 if self.strict(tp) else position + self.max_skew_ms

    def _positions(
        self, highwater: Callable[[K], int | None], now_ms: int, *, strict: bool = False
    ) -> dict[K, int]:
        """Earliest event time each partition of the kind may still deliver (moving ones, heard
        from: one that has delivered nothing yet has no place in event time)."""
        positions: dict[K, int] = {}
        for tp in self.next_offset:
            if self.strict(tp) != strict:
                continue
            head = next((ts for ts, _ in self.queues.get(tp, ()) if ts is not None), None)
            position = head if head is not None else self._to_come(tp, highwater, now_ms)
            if position is not None and position != EARLIEST:
                positions[tp] = position
        return positions

    def pending_ms(
        self, highwater: Callable[[K], int | None], now_ms: int, *, strict: bool = False
    ) -> int | None:
        """The earliest event time that the strict partitions (or the others) may still
        deliver, held here or not read yet; None if none of them has anything to come.

        Its minimum over several workers, against the latest event time they decided, is how
        far one worker has run ahead of another's records (see ``streamer.metrics``)."""
        return min(self._positions(highwater, now_ms, strict=strict).values(), default=None)

    def release(
        self, highwater: Callable[[K], int | None], now_ms: int, limit: int | None = None
    ) -> list[E]:
        """Items that may be processed now, merged in event-time order (at most ``limit``).

        The merge always takes the earliest queue head, so a partition with items queued never
        holds it back; one whose queue is empty but has records to come does, by ``max_skew``.
        """
        waiting, to_come = [], []
        for tp in self.next_offset:
            if not self.queues.get(tp):
                ts = self._to_come(tp, highwater, now_ms)
                if ts is not None:
                    waiting.append(self._latest_release(tp, ts))
                    to_come.append(ts - 1)  # no skew for an exact item
        bound = min(waiting, default=None)
        exact_bound = min(to_come, default=None)
        heads = [
            (self._head_ts(q), not self.strict(tp), i, tp)  # strict first on a tie
            for i, (tp, q) in enumerate(self.queues.items())
            if q
        ]
        heapq.heapify(heads)
        out: list[E] = []
        while heads and (limit is None or len(out) < limit):
            ts, rank, i, tp = heads[0]
            if bound is not None and ts > bound:
                break
            queue = self.queues[tp]
            if exact_bound is not None and ts > exact_bound and self.exact(queue[0][1]):
                break  # what comes after it in the merge waits for it
            heapq.heappop(heads)
            out.append(queue.popleft()[1])
            if queue:
                heapq.heappush(heads, (self._head_ts(queue), rank, i, tp))
            else:
                # it ran dry only now: however long ago its records were read (held while the
                # others caught up), it is idle only if nothing comes for idle_ms from here
                self.received_at[tp] = max(self.received_at[tp], now_ms)
                ts_next = self._to_come(tp, highwater, now_ms)
                if ts_next is not None:
                    latest = self._latest_release(tp, ts_next)
                    bound = latest if bound is None else min(bound, latest)
                    exact_bound = (ts_next - 1 if exact_bound is None
                                   else min(exact_bound, ts_next - 1))  # fmt: skip
        return out

    @staticmethod
    def _head_ts(queue: deque[tuple[int | None, E]]) -> int:
        ts = queue[0][0]
        return EARLIEST if ts is None else ts  # no event time: nothing to wait for

    def flow(self) -> tuple[set[K], set[K]]:
        """(partitions to pause, partitions to resume): pause those whose queue is full."""
        full = {tp for tp, q in self.queues.items() if len(q) >= self.queue_max}
        pause, resume = full - self.paused, self.paused - full
        self.paused = full
        return pause, resume

    def skew_ms(self, highwater: Callable[[K], int | None], now_ms: int) -> int:
        """Spread of event time across the partitions that still have records to process."""
        positions = self._positions(highwater, now_ms)
        return max(positions.values()) - min(positions.values()) if len(positions) > 1 else 0


@dataclass
class RebalanceGate(Generic[K]):
    """Which records read from Kafka may still join the merge, around a rebalance.

    A record is stamped with the consumer generation it was read in, and one read before a
    rebalance must not join the merge after its partition was revoked: the merge forgot what
    that partition held, the partition's next owner (often this same worker again) reads it
    from the committed offset, and the early record would head its queue, ahead of the ones
    before it. Comparing with the current generation is not enough: between the revocation
    and the next assignment, the generation is still the old one, and records the stream had
    buffered before the revocation are still handed out.
    """

    #: per partition, the generation in which it was last revoked
    revoked_in: dict[K, int] = field(default_factory=dict)

    def revoke(self, tps: Iterable[K], generation: int) -> None:
        """``tps`` are revoked in ``generation``: what was read from them in it is stale."""
        for tp in tps:
            self.revoked_in[tp] = generation

    def admits(self, tp: K, read_in: int, current: int) -> bool:
        """Whether a record of ``tp`` read in generation ``read_in`` may join the merge now."""
        return read_in == current and self.revoked_in.get(tp) != current
