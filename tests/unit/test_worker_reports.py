"""The worker's drift warning: once per drifted input, again only after it came back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from models.drift import PSI_ACT, PSI_WATCH
from streamer.metrics import Metrics
from streamer.worker_reports import DriftReport


@dataclass
class _Runtime:
    """What DriftReport reads of the runtime: the PSI per input, the serving version, metrics."""

    values: dict[str, float] | None = None
    model_version: str = "v7"
    metrics: Metrics = field(default_factory=Metrics)

    def drift(self) -> dict[str, float] | None:
        return self.values


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    caplog.clear()
    return messages


def test_a_drifted_input_is_warned_of_once_until_it_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = _Runtime()
    report = DriftReport(runtime)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="streamer.worker")
    between = (PSI_WATCH + PSI_ACT) / 2
    for values, expected in [
        (None, []),  # too few rows yet
        ({"amount": PSI_ACT, "night": 0.0}, ["amount"]),
        ({"amount": PSI_ACT * 3, "night": 0.0}, []),  # still drifted: said already
        ({"amount": between}, []),  # between the two marks: not back yet
        ({"amount": PSI_ACT}, []),
        ({"amount": PSI_WATCH / 2}, []),  # back under the watch mark
        ({"amount": PSI_ACT, "night": PSI_ACT}, ["amount", "night"]),  # drifted again: said
    ]:
        runtime.values = values
        report.report()
        warned = _warnings(caplog)
        assert [w.split()[2] for w in warned] == expected, (values, warned)
        assert all("of model v7" in w and "retrain" in w for w in warned), warned
    gauge = runtime.metrics.registry.get_sample_value
    assert gauge("streamer_drift_psi", {"input": "night"}) == PSI_ACT
