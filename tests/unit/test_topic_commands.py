"""The commands that read a topic name an unreachable Kafka in one line, and say how long they
tried when that was long (no service needed: nothing listens on the port they are pointed at)."""

from __future__ import annotations

import asyncio
import time

import pytest
from click.testing import CliRunner

from streamer.cli import cli
from streamer.kafka import failure_reason
from streamer.settings import Settings


@pytest.mark.parametrize(("command", "topic"), [("dead-letters", "dead-letters"),
                                                ("quality", "decisions")])  # fmt: skip
def test_a_topic_command_names_an_unreachable_kafka(command: str, topic: str) -> None:
    result = CliRunner().invoke(
        cli, [command], env={"STREAMER_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    )
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last == (
        f"Error: cannot read {topic} from Kafka at 127.0.0.1:9: nothing listens at 127.0.0.1:9 "
        "(is Kafka running? `fraud-streamer stack up`)"
    ), result.output


def test_the_dashboard_names_an_unreachable_kafka() -> None:
    result = CliRunner().invoke(
        cli, ["dashboard"], env={"STREAMER_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    )
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert "nothing listens at 127.0.0.1:9 (is Kafka running?" in last, result.output


def test_a_slow_failure_says_how_long_it_was_tried() -> None:
    """A broker that takes connections and never answers is given up on after the client's
    request timeout and then the check's own: the error says the whole wait, not only the
    check's 10 s."""
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9")
    reason = asyncio.run(failure_reason(settings, TimeoutError(), time.monotonic() - 45))
    assert reason.startswith(" after 45 s: nothing listens at 127.0.0.1:9"), reason
