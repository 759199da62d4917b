"""History → feature matrix, through the worker's own feature code.

Training sets are built by replaying history, in event time, through the in-memory twin of the
worker's Redis store (:class:`~streamer.features.memory.InMemoryFeatureStore`), which a parity
test holds equal to the Redis scripts. There is no second implementation of any feature.

Labels are replayed too: a fraud becomes known at its ``reported_at``. Applying every label
reported by the end of a chunk before the chunk's transactions gives exactly the features of a
one-by-one interleaving, because the store counts a fraud only when it was reported at or before
the transaction being scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from streamer.features.definitions import (
    FEATURE_NAMES,
    NIGHT_LAST_HOUR,
    WEEKEND_FIRST_DAY,
    FeatureEvent,
    FraudMark,
    in_event_time,
)
from streamer.features.memory import InMemoryFeatureStore

__all__ = [
    "REQUIRED_COLUMNS",
    "WALL_TIME",
    "FeatureSet",
    "build_features",
    "calendar_arrays",
    "feature_events",
    "fraud_marks",
    "wall_times",
]

REQUIRED_COLUMNS = ("transaction_id", "timestamp", "customer_id", "terminal_id", "amount")
#: Optional column of naive wall times: each transaction's local time at the offset its producer
#: gave (``timestamp`` itself holds the instant, in UTC). Readers of files with per-row offsets
#: (:mod:`models.batch`) fill it in; without it, the wall time is read from ``timestamp``.
WALL_TIME = "wall_time"
CHUNK = 5_000


@dataclass(frozen=True)
class FeatureSet:
    """Features row for row with the (time-sorted) transactions they came from."""

    frame: pd.DataFrame  # the transactions, sorted by event time
    X: np.ndarray

    @property
    def names(self) -> tuple[str, ...]:
        return FEATURE_NAMES


def _epoch_ms(series: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(series, utc=True)
    return np.asarray(ts.astype("datetime64[ms, UTC]").astype("int64"), dtype=np.int64)


def wall_times(frame: pd.DataFrame) -> pd.Series:
    """Each transaction's wall time (naive) at the offset it was given.

    The :data:`WALL_TIME` column when there is one; else ``timestamp`` read in its own time zone
    when it is a time-zone-aware column (UTC for simulated histories), or in UTC.
    """
    if WALL_TIME in frame.columns:
        return pd.to_datetime(frame[WALL_TIME])
    ts = frame["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = pd.to_datetime(ts, utc=True)
    return ts.dt.tz_localize(None)


def calendar_arrays(wall: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(weekend, night) per row from naive wall times.

    :func:`streamer.features.definitions.calendar_flags`, vectorised: the same rule on the same
    wall time, so a file replayed here gets the worker's flags.
    """
    weekend = (wall.dt.day_of_week >= WEEKEND_FIRST_DAY).to_numpy(dtype=bool)
    night = (wall.dt.hour <= NIGHT_LAST_HOUR).to_numpy(dtype=bool)
    return weekend, night


def feature_events(frame: pd.DataFrame) -> list[FeatureEvent]:
    """FeatureEvents of a transactions frame; calendar flags from :func:`wall_times`.

    Amounts are taken as in the model's currency, except on rows where an optional boolean
    ``converted`` column is false (their currency had no rate; ``score-batch`` sets it).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"transactions are missing column(s): {', '.join(missing)}")
    weekend, night = calendar_arrays(wall_times(frame))
    ms = _epoch_ms(frame["timestamp"])
    converted = frame["converted"] if "converted" in frame.columns else np.ones(len(frame), bool)
    return [
        FeatureEvent(tid, cid, term, int(t), float(a), bool(we), bool(ni), bool(ok))
        for tid, cid, term, t, a, we, ni, ok in zip(
            frame["transaction_id"].astype(str),
            frame["customer_id"].astype(str),
            frame["terminal_id"].astype(str),
            ms,
            frame["amount"].astype(float),
            weekend,
            night,
            converted,
            strict=True,
        )
    ]


def fraud_marks(labels: pd.DataFrame) -> list[FraudMark]:
    """FraudMarks from a labels frame (Label fields: transaction_id, terminal_id, tx_timestamp,
    reported_at, is_fraud), sorted by report time."""
    if labels.empty:
        return []
    tx_ms = _epoch_ms(labels["tx_timestamp"])
    rep_ms = _epoch_ms(labels["reported_at"])
    marks = [
        FraudMark(str(tid), str(term), int(t), int(r), bool(f))
        for tid, term, t, r, f in zip(
            labels["transaction_id"],
            labels["terminal_id"],
            tx_ms,
            rep_ms,
            labels["is_fraud"],
            strict=True,
        )
    ]
    marks.sort(key=lambda m: m.reported_ms)
    return marks


def labels_from_simulation(frame: pd.DataFrame) -> pd.DataFrame:
    """The labels a simulated history produces: one per fraud, reported at ``reported_at``."""
    frauds = frame[frame["is_fraud"].astype(bool)]
    return pd.DataFrame(
        {
            "transaction_id": frauds["transaction_id"],
            "customer_id": frauds["customer_id"],
            "terminal_id": frauds["terminal_id"],
            "tx_timestamp": frauds["timestamp"],
            "is_fraud": True,
            "reported_at": frauds["reported_at"],
        }
    )


def build_features(
    transactions: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    *,
    store: InMemoryFeatureStore | None = None,
    progress: Callable[[int], object] | None = None,
) -> FeatureSet:
    """Replay transactions (and labels) in event time; return the feature of every transaction.

    ``labels`` defaults to the simulator's own (every fraud, reported at ``reported_at``).
    """
    frame = transactions.sort_values(["timestamp", "transaction_id"], kind="stable")
    frame = frame.reset_index(drop=True)
    if labels is None:
        labels = labels_from_simulation(frame) if "reported_at" in frame.columns else None
    marks = fraud_marks(labels) if labels is not None else []
    store = store or InMemoryFeatureStore()
    rows = []
    for known, chunk in in_event_time(feature_events(frame), marks, CHUNK):
        store.apply_labels_sync(known)
        if chunk:
            rows.append(store.enrich_sync(chunk))
            if progress is not None:
                progress(len(chunk))
    X = np.vstack(rows) if rows else np.empty((0, len(FEATURE_NAMES)))
    return FeatureSet(frame, X)
