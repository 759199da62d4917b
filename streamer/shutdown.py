"""A deadline on the worker's graceful stop.

Faust can hang while stopping an agent that reads with ``take``/``take_events`` and a timeout
(faust-streaming/faust#162); a scale-in test saw a worker still in its consumer group a minute
after SIGTERM, once, with nothing in its log. An orchestrator would kill it in the end, but
until then its partitions stay assigned and nothing is decided. So the worker gives itself
``STREAMER_SHUTDOWN_GRACE_S`` to stop cleanly and then exits anyway. That loses nothing: an
input offset is committed only after the outputs it caused are durable, so whatever was not
committed is read again, and decided the same, by the partition's next owner.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from faust import Worker

from streamer.stalls import dump_tasks, enable_thread_dump

__all__ = ["DeadlineWorker", "ShutdownDeadline"]

log = logging.getLogger("streamer.worker")

#: the exit status of a worker that had to be stopped by the deadline
FORCED_EXIT = 75


class ShutdownDeadline:
    """Exit the process ``grace_s`` seconds after :meth:`start`, unless it has ended by then.

    A daemon thread, so it neither keeps a stopped process alive nor depends on the event loop
    that may be the one stuck.
    """

    def __init__(self, grace_s: float, exit: Callable[[int], Any] = os._exit) -> None:
        self.grace_s = grace_s
        self._exit = exit
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self._timer is not None:  # a second signal keeps the first deadline
            return
        self._timer = threading.Timer(self.grace_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        log.critical(
            "the worker did not stop within %.0f s of the signal; exiting anyway (what was not "
            "committed is read again by the partitions' next owner)",
            self.grace_s,
        )
        logging.shutdown()
        self._exit(FORCED_EXIT)


class DeadlineWorker(Worker):
    """Faust's worker, whose stop on SIGTERM or SIGINT has a :class:`ShutdownDeadline`, and
    whose SIGUSR1 and SIGUSR2 say what it is waiting on (:mod:`streamer.stalls`)."""

    def __init__(self, *args: Any, grace_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = ShutdownDeadline(grace_s)

    def _on_sigterm(self) -> None:
        self.deadline.start()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self.deadline.start()
        super()._on_sigint()

    def _on_sigusr1(self) -> None:
        dump_tasks(getattr(self.app, "partition_report", None))

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        enable_thread_dump(self.loop)
