"""The commands that read a topic name an unreachable Kafka in one line, and say how long they
tried when that was long (no service needed: nothing listens on the port they are pointed at)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

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


def test_a_command_s_kafka_error_is_its_only_line(clean_env: Path) -> None:
    """aiokafka logs each failed connection; with nothing set up to format it, the line came
    bare before the command's own error, which says the same and what to do."""
    env = {**os.environ, "STREAMER_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "streamer", "dead-letters"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: cannot read dead-letters from Kafka at 127.0.0.1:9: nothing listens at "
        "127.0.0.1:9 (is Kafka running? `fraud-streamer stack up`)"
    ]


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
