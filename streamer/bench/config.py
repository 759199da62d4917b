"""What one bench run measures: its sizes, the variants it compares and the design's targets."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TARGETS", "VARIANTS", "BenchConfig", "BenchError", "Log", "Target"]

Log = Callable[[str], object]


class BenchError(Exception):
    """The bench could not measure; the message says what went wrong."""


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """Size of one run; the output folder also holds logs, a private registry and Faust data."""

    events: int = 100_000
    naive_events: int = 5_000
    latency_rate: float = 1_000.0
    latency_seconds: float = 20.0
    out: Path  # the command's --out, by default in the settings' data folder
    customers: int = 5_000
    terminals: int = 10_000
    seed: int = 0

    @property
    def workdir(self) -> Path:
        return self.out.parent

    @property
    def live_events(self) -> int:
        return max(1, round(self.latency_rate * self.latency_seconds))


@dataclass(frozen=True)
class Target:
    """A goal the design sets; reported as met or missed, never asserted."""

    metric: str
    op: str  # ">=" or "<="
    threshold: float

    def met(self, value: float | None) -> bool | None:
        if value is None or math.isnan(value):
            return None
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


TARGETS = (Target("c/a", ">=", 0.5), Target("c/b", ">=", 10.0), Target("p99_ms", "<=", 25.0))

#: name -> (label in the table, arguments of ``python`` that start it)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "passthrough": ("(a) passthrough", ["-m", "streamer.bench.agents", "passthrough"]),
    "naive": ("(b) naive, 1 at a time", ["-m", "streamer.bench.agents", "naive"]),
    # "info", not "warn": at warn and above Faust's worker keeps its start-up spinner and sets
    # the root logger to DEBUG, so every debug() call on the hot path would build a LogRecord
    "worker": ("(c) worker", ["-m", "streamer", "worker", "-l", "info"]),
}
