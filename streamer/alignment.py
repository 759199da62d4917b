"""Keep a worker's input partitions aligned in event time (timestamp synchronisation).

Terminal features count transactions from every partition (transactions are keyed by customer),
in windows that end one label delay (7 days) before the transaction scored. When a backlog is
drained, Faust hands out partitions round-robin by *count*, so a partition with fewer
transactions per day runs ahead in event time; past a week of skew, a terminal window misses
transactions that are still waiting in a slower partition, and the features differ from the same
history processed in order. Like Kafka Streams' ``max.task.idle.ms`` synchronisation, the worker
pauses the partitions that run more than ``max_skew`` ahead of the slowest partition that still
has data waiting, and resumes them once it catches up. The remaining spread is exported as a
metric (``streamer_partition_skew_seconds``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["EventTimeAligner"]

K = TypeVar("K", bound=Hashable)


@dataclass
class EventTimeAligner(Generic[K]):
    """Per-partition event-time positions and the pause/resume plan that bounds their skew."""

    max_skew_ms: int
    event_time: dict[K, int] = field(default_factory=dict)
    next_offset: dict[K, int] = field(default_factory=dict)
    paused: set[K] = field(default_factory=set)

    def observe(self, tp: K, offset: int, ts_ms: int | None) -> None:
        """Record that ``tp`` was processed up to ``offset`` (event time ``ts_ms`` if valid)."""
        if offset + 1 > self.next_offset.get(tp, -1):
            self.next_offset[tp] = offset + 1
        if ts_ms is not None and ts_ms > self.event_time.get(tp, -(2**62)):
            self.event_time[tp] = ts_ms

    def forget(self, tps: Iterable[K]) -> None:
        """Drop partitions this worker no longer owns (after a rebalance)."""
        for tp in tps:
            self.event_time.pop(tp, None)
            self.next_offset.pop(tp, None)
            self.paused.discard(tp)

    def _waiting(self, highwater: Callable[[K], int | None]) -> dict[K, int]:
        """Event time of every partition that has records left to process."""
        waiting = {}
        for tp, ts in self.event_time.items():
            end = highwater(tp)
            if end is not None and end > self.next_offset.get(tp, 0):
                waiting[tp] = ts
        return waiting

    def plan(self, highwater: Callable[[K], int | None]) -> tuple[set[K], set[K]]:
        """(partitions to pause, partitions to resume) given each partition's high watermark."""
        waiting = self._waiting(highwater)
        if not waiting:
            resume, self.paused = set(self.paused), set()
            return set(), resume
        frontier = min(waiting.values())
        ahead = {tp for tp, ts in waiting.items() if ts > frontier + self.max_skew_ms}
        pause, resume = ahead - self.paused, self.paused - ahead
        self.paused = ahead
        return pause, resume

    def skew_ms(self, highwater: Callable[[K], int | None]) -> int:
        """Spread of event time across the partitions that still have records waiting."""
        waiting = self._waiting(highwater)
        return max(waiting.values()) - min(waiting.values()) if len(waiting) > 1 else 0
