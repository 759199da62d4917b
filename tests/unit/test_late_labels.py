"""``rebuild-state``'s catch-up: the labels written while it ran, applied again in rounds."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest

import streamer.rebuild
from schemas import Label
from streamer.features.memory import InMemoryFeatureStore
from streamer.pipeline import fraud_mark
from streamer.rebuild import LATE_ROUNDS, apply_late_labels
from streamer.settings import Settings


def _label(is_fraud: bool, day: int) -> Any:
    value = json.dumps({"transaction_id": "w1", "customer_id": "c1", "terminal_id": "t1",
                        "tx_timestamp": "2018-05-01T10:00:00Z", "is_fraud": is_fraud,
                        "reported_at": f"2018-05-{day:02d}T10:00:00Z"}).encode()  # fmt: skip
    return SimpleNamespace(value=value, timestamp=-1)


def _rounds(monkeypatch: pytest.MonkeyPatch, rounds: list[list[Any]]) -> list[Mapping[int, int]]:
    """Make each read of the labels topic hand out the next round's records; returns the
    start offsets each read was given."""
    starts: list[Mapping[int, int]] = []

    async def read(_settings: Settings, _topic: str, handle: Callable[[Any], object], *,
                   start: Mapping[int, int], **_: object) -> dict[int, int]:  # fmt: skip
        starts.append(dict(start))
        records = rounds[len(starts) - 1] if len(starts) <= len(rounds) else []
        for record in records:
            handle(record)
        return {0: start.get(0, 0) + len(records)}

    monkeypatch.setattr(streamer.rebuild, "read_to_end", read)
    return starts


async def test_rounds_go_on_from_where_the_last_ended_until_one_finds_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fraud in the history; a withdrawal and a new fraud report written during the rebuild,
    read in two rounds: the mark ends as the stream left it, with the new report's time."""
    store = InMemoryFeatureStore()
    starts = _rounds(monkeypatch, [[_label(False, 3)], [_label(True, 5)]])
    store.apply_labels_sync([fraud_mark(Label.model_validate_json(_label(True, 2).value))])
    assert await apply_late_labels(Settings(), store, {0: 7}) == 2
    assert starts == [{0: 7}, {0: 8}, {0: 9}]
    # withdrawn, then reported again: known from the second report on
    assert store._terminal("t1").frauds["w1"][1] == 1_525_514_400_000  # 2018-05-05T10:00Z


async def test_rounds_stop_after_their_cap_under_a_steady_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = InMemoryFeatureStore()
    starts = _rounds(monkeypatch, [[_label(True, 2 + i)] for i in range(LATE_ROUNDS + 3)])
    assert await apply_late_labels(Settings(), store, {}) == LATE_ROUNDS
    assert len(starts) == LATE_ROUNDS
