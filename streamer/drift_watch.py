"""The worker's side of drift monitoring: the rows it scored lately, binned as the serving
model's profile says, and their PSI against it (the measure and the profile: models/drift.py).

Binning is a ``searchsorted`` per column per batch, into a fixed ring of the last ``window``
rows (small integers), so the hot path pays microseconds; the PSI itself is computed only when
the metrics are refreshed. A window of rows reacts within minutes to a producer that changed;
the calendar flags are left out (``CALENDAR_FEATURES``): over a few thousand rows their mix
follows the hour and the weekday, not the traffic.
"""

from __future__ import annotations

import numpy as np

from models.drift import Profile, bin_index, psi
from streamer.features.definitions import CALENDAR_FEATURES

__all__ = ["MIN_ROWS", "DriftWatch"]

#: below this many rows the shares are too noisy to report
MIN_ROWS = 500


class DriftWatch:
    """The last ``window`` rows one model version scored, against that version's profile."""

    def __init__(self, version: str, profile: Profile, window: int = 5_000) -> None:
        self.version = version
        self.profile = profile
        self._edges = [np.asarray(e, dtype=np.float64) for e in profile.edges]
        self._bins = np.zeros((window, len(self._edges)), dtype=np.int16)
        self._seen = 0

    def observe(self, features: np.ndarray, scores: np.ndarray) -> None:
        """Bin a batch's rows (its feature matrix and the model's scores, before rules)."""
        window = len(self._bins)
        columns = np.column_stack([features, scores])[-window:]
        if not len(columns):
            return
        binned = np.column_stack(
            [bin_index(edges, columns[:, j]) for j, edges in enumerate(self._edges)]
        )
        self._bins[(self._seen + np.arange(len(binned))) % window] = binned
        self._seen += len(binned)

    @property
    def rows(self) -> int:
        return min(self._seen, len(self._bins))

    def psi(self) -> dict[str, float] | None:
        """PSI per input (features, then ``score``) over the rows kept; None until
        :data:`MIN_ROWS` have been seen."""
        if self.rows < MIN_ROWS:
            return None
        kept = self._bins[: self.rows]
        return {
            name: psi(shares, np.bincount(kept[:, j], minlength=len(shares)))
            for j, (name, shares) in enumerate(
                zip(self.profile.names, self.profile.shares, strict=True)
            )
            if name not in CALENDAR_FEATURES
        }
