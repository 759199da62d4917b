"""Finding out why a worker has stopped making progress.

:class:`StallWatch` notices it: records waiting (consumer lag, held by the event-time merge,
or in batches being decided) and none processed for ``STREAMER_STALL_WARN_S``. The worker
then logs a warning with :func:`format_tasks`, once per stall, so a hang that used to leave
nothing in the log says where it waits.

``kill -USR1 <worker pid>`` logs the same task dump on demand: one line per asyncio task, the
chain of coroutines it is in, innermost last, and what that one awaits. Faust's own SIGUSR1
handler (mode's ``cry``) prints every thread's frames with all their local variables, some
80 kB, and for each task only its outermost coroutine frame, which for an agent is
``Agent._execute_actor`` — not where it waits. Python 3.11 has no call-graph printer for tasks
(3.14's ``asyncio.print_call_graph``), so this follows ``cr_await`` itself.

Both also say, for each partition the worker owns, what decides whether it is read
(:class:`PartitionState`): a stall with records unread and nothing held is a partition that is
not being fetched, and the flags say which of the four switches that fetch depends on is off.

``kill -USR2 <worker pid>`` writes every thread's Python stack with :mod:`faulthandler`, from
the signal handler itself: it answers even when the event loop is stuck in a call that never
returns, where a handler run by the loop (and the stall watch) would never run.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "PartitionState",
    "StallWatch",
    "dump_tasks",
    "enable_thread_dump",
    "format_partitions",
    "format_tasks",
]

log = logging.getLogger("streamer.worker")


class StallWatch:
    """Says when work has been waiting with no progress for ``after_s`` seconds.

    Fed every second or so with anything that changes with progress (a count of records
    processed; the demo's tuple of counts) and how much is waiting; :meth:`check` returns how
    long it has been stalled the first time that passes ``after_s``, and None otherwise, until
    progress re-arms it. Nothing waiting is never a stall, however long it lasts. The worker
    and the demo both use it.
    """

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._progress: object = None
        self._since: float | None = None  # work waiting and no progress, since when
        self._warned = False

    def stalled_for(self, now: float) -> float | None:
        """How long work has waited with no progress, as of the last :meth:`check` (None when
        there was progress or nothing waited then), whether or not it has been reported."""
        return None if self._since is None else now - self._since

    def check(self, progress: object, waiting: int, now: float) -> float | None:
        if progress != self._progress or waiting == 0 or self._since is None:
            self._progress, self._warned = progress, False
            self._since = now if waiting else None
            return None
        stalled = now - self._since
        if self._warned or stalled < self.after_s:
            return None
        self._warned = True
        return stalled


def _chain(awaitable: Any) -> Iterator[FrameType | Any]:
    """The frames of a coroutine's await chain, outermost first, then what the last awaits.

    An ``await`` on an object whose ``__await__`` hands out a coroutine's or an async
    generator's iterator (Faust's agents and streams) shows up as a ``coroutine_wrapper`` or an
    ``async_generator_asend``, which do not expose what they wrap; the garbage collector's
    referents do, so the chain goes on through them.
    """
    for _ in range(64):
        if awaitable is None:
            return
        frame = (
            getattr(awaitable, "cr_frame", None)
            or getattr(awaitable, "ag_frame", None)
            or getattr(awaitable, "gi_frame", None)
        )
        if frame is not None:
            yield frame
            awaitable = (
                getattr(awaitable, "cr_await", None)
                or getattr(awaitable, "ag_await", None)
                or getattr(awaitable, "gi_yieldfrom", None)
            )
            continue
        wrapped = [r for r in gc.get_referents(awaitable) if _is_running_code(r)]
        if len(wrapped) != 1:
            yield awaitable  # a future, or an object's own __await__ iterator
            return
        awaitable = wrapped[0]


def _is_running_code(obj: Any) -> bool:
    return any(getattr(obj, a, None) is not None for a in ("cr_frame", "ag_frame", "gi_frame"))


def _where(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_qualname} ({Path(code.co_filename).name}:{frame.f_lineno})"


def _step(link: FrameType | Any) -> str:
    if isinstance(link, FrameType):
        return _where(link)
    if type(link).__name__ == "FutureIter":
        return "awaits a future"
    text = repr(link)
    return f"awaits {text if len(text) <= 120 else text[:119] + '…'}"


def format_tasks(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """One line per pending task of ``loop`` (default: the running one): its await chain."""
    tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
    lines = [f"{len(tasks)} tasks, each: its coroutines, outermost first -> what it awaits"]
    for task in tasks:
        steps = [_step(link) for link in _chain(task.get_coro())]
        name = task.get_name()
        lines.append(f"  {'' if name.startswith('<') else name + ': '}" + " -> ".join(steps))
    return "\n".join(lines)


@dataclass(frozen=True)
class PartitionState:
    """One assigned partition, as far as reading it goes.

    A record reaches the agent only if every switch is on: Faust asks aiokafka for the partition
    (it is *active*: not paused by the worker, not held back by Faust's full stream buffer),
    aiokafka has not paused it, and aiokafka fetches it — which it does not while records it
    fetched earlier wait to be handed out (``fetched_waiting``).
    """

    tp: str
    end: int | None  # the offset after the last record to come (None: not known yet)
    next_read: int | None  # the next offset Faust hands to the agent
    fetch_position: int | None  # aiokafka's position
    fetched_waiting: bool
    active: bool
    paused: bool  # by the worker (``pause_partitions``: the merge's queue is full)
    buffered: bool  # by Faust: the stream buffer is full
    fetch_paused: bool  # in aiokafka
    held: int  # records queued in the event-time merge

    @property
    def to_read(self) -> int | None:
        if self.end is None or self.next_read is None:
            return None
        return max(self.end - self.next_read, 0)

    def describe(self) -> str:
        flags = [
            "asked for" if self.active else "not asked for",
            *(["paused by the worker"] if self.paused else []),
            *(["held back by a full stream buffer"] if self.buffered else []),
            *(["paused in aiokafka"] if self.fetch_paused else []),
            *(["fetched records waiting in aiokafka"] if self.fetched_waiting else []),
        ]
        return (
            f"{self.tp}: {'?' if self.to_read is None else self.to_read} to read "
            f"(next {self.next_read}, end {self.end}, aiokafka at {self.fetch_position}), "
            f"{self.held} held by the merge; {', '.join(flags)}"
        )


def format_partitions(states: Iterable[PartitionState]) -> str:
    """One line per partition (:meth:`PartitionState.describe`), in name order."""
    lines = [state.describe() for state in sorted(states, key=lambda s: s.tp)]
    return "\n".join(["the partitions owned, each:", *(f"  {line}" for line in lines)])


def dump_tasks(partitions: Callable[[], str] | None = None) -> None:
    """Log :func:`format_tasks`, and ``partitions()`` if given, at WARNING, so that it shows at
    the worker's default log level."""
    text = format_tasks()
    if partitions is not None:
        text += "\n" + partitions()
    log.warning("task dump (SIGUSR1):\n%s", text)


def enable_thread_dump(loop: asyncio.AbstractEventLoop) -> None:
    """Make SIGUSR2 write every thread's stack to stderr, in place of mode's handler (which
    starts pdb, of no use in a worker without a terminal)."""
    loop.remove_signal_handler(signal.SIGUSR2)
    # the file descriptor: mode swaps sys.stderr for a proxy without fileno()
    faulthandler.register(signal.SIGUSR2, file=2, all_threads=True)
