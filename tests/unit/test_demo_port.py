"""The demo refuses, by name, a web port that another process already listens on, and gives up
clearly when nothing moves."""

from __future__ import annotations

import socket
from pathlib import Path

import click
import pytest

from streamer.cli.demo import STALL_S, _check_port_free, _give_up_when_still
from streamer.stalls import StallWatch


def test_a_taken_port_is_named_and_a_free_one_passes() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        named = f"127.0.0.1:{port} is taken.*STREAMER_WEB_PORT"
        with pytest.raises(click.ClickException, match=named):
            _check_port_free("127.0.0.1", port, "STREAMER_WEB_PORT")
    _check_port_free("127.0.0.1", port, "STREAMER_WEB_PORT")  # released: the demo may use it


def test_the_demo_gives_up_naming_what_stopped_when_nothing_moves() -> None:
    watch = StallWatch(STALL_S)
    summary = {"totals": {"decisions": 40}}

    def check(now: float, *, sending: bool = True, decided: int = 0,
              answer: dict[str, object] | None = summary) -> None:
        _give_up_when_still(watch, now, counts="decided 7 of 9", sending=sending,
                            decided=decided, summary=answer, log=Path("logs/w.log"))

    check(0.0)
    check(STALL_S - 1)  # not yet
    check(STALL_S + 5, decided=3)  # one of them moved: the wait starts again
    check(STALL_S + 10, sending=False, decided=3)  # the replay ended: that is a move too
    with pytest.raises(click.ClickException) as still:
        check(2 * STALL_S + 11, sending=False, decided=3)
    assert still.value.message == (
        f"nothing moved for {STALL_S + 1:.0f} s: decided 7 of 9, the replay done, the worker "
        "idle; see logs/w.log"
    )
    watch = StallWatch(STALL_S)
    check(0.0, answer=None)
    with pytest.raises(click.ClickException, match="still sending, the worker not answering"):
        check(STALL_S, answer=None)
