"""The worker's log formats, as Faust's logging set-up (mode) applies them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from mode.utils.logging import setup_logging

from streamer.logs import LEVELS, mode_logging_config


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_keeps_faust_s_own_format() -> None:
    assert mode_logging_config("text") is None


@pytest.mark.usefixtures("restored_logging")
def test_json_is_one_object_per_line_with_the_traceback_inside(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(loglevel=LEVELS["info"], logging_config=mode_logging_config("json"))
    log = logging.getLogger("streamer.worker")
    log.debug("not at info")
    log.info("batch of %d", 3)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("failed")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO", "streamer.worker", "batch of 3"
    )  # fmt: skip
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and second["message"] == "failed"
    assert (
        second["exc_info"].startswith("Traceback")
        and "ValueError: bad\nvalue" in second["exc_info"]
    )


def test_every_loglevel_choice_is_a_level_number() -> None:
    assert all(
        isinstance(n, int) and logging.getLevelName(n) != f"Level {n}" for n in LEVELS.values()
    )
