"""The demo refuses, by name, a web port that another process already listens on, and gives up
clearly when nothing moves."""

from __future__ import annotations

import socket

import click
import pytest

from streamer.cli.demo import STALL_S, StallWatch, _check_port_free


def test_a_taken_port_is_named_and_a_free_one_passes() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        named = f"127.0.0.1:{port} is taken.*STREAMER_WEB_PORT"
        with pytest.raises(click.ClickException, match=named):
            _check_port_free("127.0.0.1", port)
    _check_port_free("127.0.0.1", port)  # released: the demo may use it


def test_the_demo_notices_when_nothing_moves() -> None:
    now = [0.0]
    watch = StallWatch(clock=lambda: now[0])
    assert watch.stalled_for((True, 0)) is None
    now[0] = STALL_S - 1
    assert watch.stalled_for((True, 0)) is None  # not yet
    now[0] = STALL_S + 5
    assert watch.stalled_for((True, 3)) is None  # progress restarts the clock
    now[0] = 2 * STALL_S + 5
    assert watch.stalled_for((True, 3)) == STALL_S
