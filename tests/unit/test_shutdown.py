"""The deadline on a worker's graceful stop."""

from __future__ import annotations

import time

from streamer.shutdown import FORCED_EXIT, ShutdownDeadline


def test_the_deadline_exits_once_the_grace_is_over_and_a_second_signal_keeps_it() -> None:
    exits: list[int] = []
    deadline = ShutdownDeadline(0.2, exit=exits.append)
    deadline.start()
    time.sleep(0.1)
    deadline.start()  # a second SIGTERM does not push the deadline back
    assert exits == []
    time.sleep(0.25)
    assert exits == [FORCED_EXIT]
