"""How far live traffic has moved from what a model was made for: the population stability
index (PSI) of each feature and of the model's score.

Labels arrive a week or more after the transactions (``fraud-streamer quality`` measures the
decisions once they have); a shift in what the model sees shows at once. At registration a
model gets a *profile*: for each feature and for its own score, the decile edges of the most
recent days of its history — days after its training window whose labels were not yet known,
so not data it was fitted on — and the share of those days' rows in each bin. A worker bins the
rows it scores into the same bins and compares the shares:

    PSI = Σ (live share − profile share) · ln(live share / profile share)

By the usual reading, below 0.1 nothing moved, 0.1–0.25 is worth a look, above 0.25 the input
no longer looks like what the model was trained for (retrain, or find the broken producer).
Pure numpy: the same code builds the profile and reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PSI_ACT", "PSI_WATCH", "SCORE", "Profile", "bin_index", "make_profile", "psi"]

PSI_WATCH = 0.1
PSI_ACT = 0.25
#: the profile's name for the model's own score (after the features)
SCORE = "score"
#: a bin nobody fell in counts as this share, so that the logarithm stays finite
_FLOOR = 1e-4


@dataclass(frozen=True)
class Profile:
    """Per input (the features, then the score): bin edges and each bin's share."""

    names: list[str]
    edges: list[list[float]]
    shares: list[list[float]]
    rows: int
    period: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "edges": self.edges,
            "shares": self.shares,
            "rows": self.rows,
            "period": self.period,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(
            names=list(data["names"]),
            edges=[list(map(float, e)) for e in data["edges"]],
            shares=[list(map(float, s)) for s in data["shares"]],
            rows=int(data["rows"]),
            period=str(data.get("period", "")),
        )


def make_profile(
    features: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str],
    *,
    bins: int = 10,
    period: str = "",
) -> Profile:
    """The profile of these rows: decile edges per column (fewer where values repeat, as
    counts and flags do) and the share of rows in each bin."""
    columns = np.column_stack([np.asarray(features, dtype=np.float64), scores])
    edges, shares = [], []
    for j in range(columns.shape[1]):
        x = columns[:, j]
        cuts = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])) if len(x) else x
        cuts = cuts[cuts > x.min()] if len(x) else cuts  # no bin that only lower values fill
        counts = np.bincount(bin_index(cuts, x), minlength=len(cuts) + 1)
        edges.append(cuts.tolist())
        shares.append((counts / max(len(x), 1)).tolist())
    return Profile([*names, SCORE], edges, shares, int(columns.shape[0]), period)


def bin_index(edges: Sequence[float] | np.ndarray, values: np.ndarray) -> np.ndarray:
    """The bin of each value: 0 below the first edge, i from edge i-1 (inclusive) to edge i."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")


def psi(expected: Sequence[float] | np.ndarray, counts: Sequence[float] | np.ndarray) -> float:
    """PSI of observed bin ``counts`` against the profile's ``expected`` shares."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _FLOOR)
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total == 0:
        return 0.0
    a = np.maximum(c / total, _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))
