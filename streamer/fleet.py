"""What the whole fleet of workers is doing, read from the topics they write.

Each worker's own page shows its own partitions; an analyst watching alerts, or an operator
scaling the workers in and out, needs one page for all of them that stays where it is while
workers come and go. ``fraud-streamer dashboard`` feeds this view from the ``decisions``,
``alerts`` and ``dead-letters`` topics (the public contract, nothing private to the workers)
and from the consumer group's state; here is only the bookkeeping: records in, a JSON-ready
snapshot out, no I/O.

Counts are kept per second of the record's own wall-clock time (``decided_at``, ``created_at``,
``received_at``), not of its arrival here: a dashboard started late reads the last window back
from Kafka, partition by partition, and still counts each record in the second it happened.
After a worker crash, the decisions, alerts and dead letters of its batches not yet committed
are published again, identical but for their times. Each is counted once if its repeat comes
within ``repeat_window_s`` (10 minutes) of the first: the view remembers what it counted that
long, by a 64-bit hash of its id (``transaction_id``, ``alert_id``, or a dead letter's
source position) — about 70 bytes a record, 40 MB at 1,000 decisions a second. A repeat that
comes later (a worker down for longer) is counted again.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from pydantic import ValidationError

from schemas import Alert, DeadLetter, Decision

__all__ = ["RATE_WINDOW_S", "FleetView", "GroupState"]

#: rate and processing-time percentiles are over the last minute
RATE_WINDOW_S = 60

R = TypeVar("R", Decision, Alert, DeadLetter)

#: per record type, (the id a repeat shares with its first publication, the record's own time)
_IDENTITY: dict[type, Callable[[Any], tuple[str, float]]] = {
    Decision: lambda d: (f"d{d.transaction_id}", d.decided_at.timestamp()),
    Alert: lambda a: (f"a{a.alert_id}", a.created_at.timestamp()),
    DeadLetter: lambda dl: (
        f"l{dl.source_topic}/{dl.partition}/{dl.offset}",
        dl.received_at.timestamp(),
    ),
}


#: the latest alerts or dead letters: (their time, as JSON), oldest first
_Kept = deque[tuple[float, dict[str, Any]]]


@dataclass(slots=True)
class _Second:
    """What happened in one second."""

    outcomes: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    processing_ms: list[float] = field(default_factory=list)
    alerts: int = 0
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class GroupState:
    """The workers' consumer group: members, and records not yet read per input topic."""

    members: int
    lag: dict[str, int]


class _Counted:
    """Hashes of the ids counted in the last ``horizon_s`` seconds (of the records' own times),
    to count a record re-published after a crash once."""

    def __init__(self, horizon_s: float):
        self.horizon_s = horizon_s
        self._hashes: set[int] = set()
        self._by_second: dict[int, list[int]] = defaultdict(list)

    def first(self, key: str, at: float) -> bool:
        """Whether ``key`` is new (and now remembered); always, with no horizon."""
        if self.horizon_s <= 0:
            return True
        digest = hash(key)  # per process: nothing outlives the dashboard
        if digest in self._hashes:
            return False
        self._hashes.add(digest)
        self._by_second[int(at)].append(digest)
        return True

    def forget_before(self, second: float) -> None:
        for old in [s for s in self._by_second if s < second]:
            self._hashes.difference_update(self._by_second.pop(old))

    def __len__(self) -> int:
        return len(self._hashes)


class FleetView:
    """Decisions, alerts and dead letters of the last ``window_s`` seconds, and the group."""

    def __init__(
        self,
        window_s: float = 900.0,
        alerts_kept: int = 50,
        letters_kept: int = 10,
        repeat_window_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ):
        self.window_s = window_s
        self._clock = clock
        self._counted = _Counted(repeat_window_s)
        self.repeats = 0  # records not counted: a worker published them again
        self._seconds: dict[int, _Second] = {}
        self._newest = 0  # the latest second a record was counted in
        self._alerts: _Kept = deque(maxlen=alerts_kept)
        self._letters: _Kept = deque(maxlen=letters_kept)
        self.group: GroupState | None = None
        self.group_problem: str | None = None
        self.unreadable = 0  # records on the topics that are not what a worker writes

    # --- records in -------------------------------------------------------------------------

    def add_decision(self, value: bytes | None) -> None:
        counted = self._count(Decision, value)
        if counted is None:
            return
        decision, _, second = counted
        second.outcomes[decision.decision] += 1
        second.versions[decision.model_version] += 1
        second.processing_ms.append(float(decision.processing_ms))

    def add_alert(self, value: bytes | None) -> None:
        counted = self._count(Alert, value)
        if counted is None:
            return
        alert, at, second = counted
        second.alerts += 1
        if all(kept["alert_id"] != alert.alert_id for _, kept in self._alerts):  # a late repeat
            _keep_latest(self._alerts, at, alert.model_dump(mode="json"))

    def add_dead_letter(self, value: bytes | None) -> None:
        counted = self._count(DeadLetter, value)
        if counted is None:
            return
        letter, at, second = counted
        second.dead_letters += 1
        where = (letter.source_topic, letter.partition, letter.offset)
        if all((k["source_topic"], k["partition"], k["offset"]) != where
               for _, k in self._letters):  # a late repeat  # fmt: skip
            _keep_latest(self._letters, at, letter.model_dump(mode="json", exclude={"raw"}))

    # --- snapshot out -----------------------------------------------------------------------

    def snapshot(self, now: float) -> dict[str, Any]:
        """The page's numbers as of ``now`` (epoch seconds); forgets what is older."""
        first = int(now - self.window_s) + 1
        for old in [s for s in self._seconds if s < first]:
            del self._seconds[old]
        outcomes: Counter[str] = Counter()
        versions: Counter[str] = Counter()
        alerts = letters = recent = 0
        recent_ms: list[float] = []
        recent_from = int(now) - RATE_WINDOW_S + 1
        for at, second in self._seconds.items():
            if at > now:  # a clock ahead of ours: counted once it is in the window
                continue
            outcomes.update(second.outcomes)
            versions.update(second.versions)
            alerts += second.alerts
            letters += second.dead_letters
            if at >= recent_from:
                recent += sum(second.outcomes.values())
                recent_ms.extend(second.processing_ms)
        return {
            "window_s": self.window_s,
            "decisions": {
                "total": sum(outcomes.values()),
                **{k: outcomes.get(k, 0) for k in ("approve", "review", "decline")},
            },
            "per_second": round(recent / RATE_WINDOW_S, 2),
            "processing_ms": _percentiles(recent_ms),
            "model_versions": dict(versions.most_common()),
            "alerts": {"count": alerts, "latest": [a for _, a in reversed(self._alerts)]},
            "dead_letters": {
                "count": letters,
                "latest": [d for _, d in reversed(self._letters)],
            },
            "workers": None if self.group is None else self.group.members,
            "lag": None if self.group is None else dict(self.group.lag),
            "group_problem": self.group_problem,
            "unreadable": self.unreadable,
            "repeats": self.repeats,
        }

    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for ``/healthz``: 503 while Kafka does not answer about the
        group (the page would show stale numbers), 200 otherwise."""
        if self.group_problem is not None:
            return 503, {"status": "kafka unreachable", "problem": self.group_problem}
        return 200, {"status": "ok"}

    # --- helpers ----------------------------------------------------------------------------

    def _count(self, model: type[R], value: bytes | None) -> tuple[R, float, _Second] | None:
        """The record, its time and the second it counts in; None when it is unreadable or a
        repeat of one counted within the repeat window."""
        record = self._parse(model, value)
        if record is None:
            return None
        identity, at = _IDENTITY[model](record)
        # a worker whose clock is ahead must not make the page forget the present
        self._forget(int(min(at, self._clock())))
        if not self._counted.first(identity, at):
            self.repeats += 1
            return None
        return record, at, self._second(at)

    def _second(self, at: float) -> _Second:
        key = int(at)
        second = self._seconds.get(key)
        if second is None:
            second = self._seconds[key] = _Second()
        return second

    def _forget(self, newest: int) -> None:
        """Drop what no snapshot can show any more, whether or not anyone looks: seconds
        older than the window, and processing times older than the last minute, before the
        newest second seen (the clock is at least there)."""
        if newest <= self._newest:
            return
        self._newest = newest
        self._counted.forget_before(newest - self._counted.horizon_s)
        for at in [a for a in self._seconds if a <= newest - self.window_s]:
            del self._seconds[at]
        for at, second in self._seconds.items():
            if at <= newest - RATE_WINDOW_S and second.processing_ms:
                second.processing_ms = []

    def _parse(self, model: Any, value: bytes | None) -> Any:
        try:
            return model.model_validate_json(value or b"")
        except ValidationError:
            self.unreadable += 1
            return None


def _keep_latest(kept: _Kept, at: float, item: dict[str, Any]) -> None:
    """Keep the ``maxlen`` latest by time, whatever order they are read in (a late dashboard
    reads the window back partition by partition)."""
    if len(kept) == kept.maxlen and kept and at < kept[0][0]:
        return  # older than everything kept
    kept.append((at, item))
    if len(kept) > 1 and at < kept[-2][0]:
        ordered = sorted(kept, key=lambda pair: pair[0])
        kept.clear()
        kept.extend(ordered)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    p50, p99 = np.percentile(np.asarray(values), [50, 99])
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1)}
