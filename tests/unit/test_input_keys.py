"""Records keyed other than by their card are reported without filling the log."""

from __future__ import annotations

import logging

import pytest

from streamer.input_keys import KeyMismatch, KeyReport, keyed_by_card


def test_only_the_card_s_own_id_is_its_key() -> None:
    assert keyed_by_card(b"c-1", "c-1")
    assert not keyed_by_card(b"c-2", "c-1")
    assert not keyed_by_card(None, "c-1")
    assert keyed_by_card("carte-é".encode(), "carte-é")


def test_the_first_mismatch_is_logged_at_once_then_a_count_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    report = KeyReport(every_s=600, clock=lambda: now[0])
    first = KeyMismatch("transactions", 2, 17, b"k3", "c-3")
    with caplog.at_level(logging.WARNING, logger="streamer.input_keys"):
        report.add(0, None)
        assert not caplog.records
        report.add(2, first)
        now[0] += 300
        report.add(5, KeyMismatch("labels", 0, 4, None, "c-9"))
        now[0] += 301
        report.add(1, KeyMismatch("transactions", 1, 8, b"k8", "c-8"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    first_line = ("2 input record(s) not keyed by their customer_id (e.g. transactions[2]@17 "
                  "has key 'k3', customer_id 'c-3')")  # fmt: skip
    then = ("6 input record(s) in the last 601 s not keyed by their customer_id (e.g. "
            "labels[0]@4 has no key, customer_id 'c-9')")  # fmt: skip
    assert lines[0].startswith(first_line), lines[0]
    assert lines[1].startswith(then), lines[1]
