"""The demo refuses, by name, a web port that another process already listens on, and gives up
clearly when nothing moves."""

from __future__ import annotations

import socket

import click
import pytest

from streamer.cli.demo import STALL_S, _check_port_free
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


def test_the_demo_notices_when_nothing_moves() -> None:
    watch = StallWatch(STALL_S)  # the demo's, fed as the demo feeds it
    assert watch.check((True, 0), waiting=1, now=0.0) is None
    assert watch.check((True, 0), waiting=1, now=STALL_S - 1) is None  # not yet
    assert watch.check((True, 3), waiting=1, now=STALL_S + 5) is None  # progress restarts it
    assert watch.check((True, 3), waiting=1, now=2 * STALL_S + 5) == STALL_S
