"""The deadline on a worker's graceful stop."""

from __future__ import annotations

import time

from streamer.shutdown import FORCED_EXIT, ShutdownDeadline

GRACE_S = 2.0  # long beside the second signal's delay, so a busy machine keeps them apart


def test_the_deadline_exits_once_the_grace_is_over_and_a_second_signal_keeps_it() -> None:
    exits: list[tuple[int, float]] = []
    deadline = ShutdownDeadline(GRACE_S, exit=lambda code: exits.append((code, time.monotonic())))
    first = time.monotonic()
    deadline.start()
    time.sleep(GRACE_S * 3 / 4)
    second = time.monotonic()
    deadline.start()  # a second SIGTERM does not push the deadline back
    assert exits == []
    while not exits and time.monotonic() < first + 10:
        time.sleep(0.01)
    ((code, at),) = exits
    assert code == FORCED_EXIT
    # the grace counts from the first signal: a restarted timer would fire at second + grace,
    # 1.5 s later than the first's deadline
    assert first + GRACE_S <= at < second + GRACE_S
