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
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["StallWatch", "dump_tasks", "enable_thread_dump", "format_tasks"]

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


def dump_tasks() -> None:
    """Log :func:`format_tasks` at WARNING, so it shows at the worker's default log level."""
    log.warning("task dump (SIGUSR1):\n%s", format_tasks())


def enable_thread_dump(loop: asyncio.AbstractEventLoop) -> None:
    """Make SIGUSR2 write every thread's stack to stderr, in place of mode's handler (which
    starts pdb, of no use in a worker without a terminal)."""
    loop.remove_signal_handler(signal.SIGUSR2)
    # the file descriptor: mode swaps sys.stderr for a proxy without fileno()
    faulthandler.register(signal.SIGUSR2, file=2, all_threads=True)
