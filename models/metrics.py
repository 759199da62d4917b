"""The handbook's metrics: AUC ROC, Average Precision and Card Precision@k; and what a score
threshold means for the people who work its alerts (:func:`operating_points`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "THRESHOLD_GRID",
    "OperatingPoint",
    "card_precision_at_k",
    "decisions_quality",
    "operating_points",
    "quality",
]

#: the thresholds ``train`` reports beside the configured ones, to choose them from
THRESHOLD_GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def card_precision_at_k(
    frame: pd.DataFrame, scores: np.ndarray, *, k: int = 100, label: str = "is_fraud"
) -> float:
    """Mean over days of the share of frauds among the k cards scored highest that day.

    Per day, each card counts once with its highest score and whether any of its transactions
    that day was fraud; cards already caught (fraud among an earlier day's top k) are dropped,
    as an investigator would have blocked them.
    """
    if frame.empty:
        return float("nan")
    data = pd.DataFrame(
        {
            "day": pd.to_datetime(frame["timestamp"], utc=True).dt.floor("D").to_numpy(),
            "card": frame["customer_id"].to_numpy(),
            "fraud": frame[label].astype(bool).to_numpy(),
            "score": np.asarray(scores, dtype=float),
        }
    )
    caught: set[str] = set()
    precisions = []
    for _, day in data.groupby("day", sort=True):
        cards = day.groupby("card").agg(score=("score", "max"), fraud=("fraud", "max"))
        cards = cards[~cards.index.isin(caught)]
        top = cards.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top[top["fraud"]]
        caught.update(hits.index)
        precisions.append(len(hits) / k)
    return float(np.mean(precisions))


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A score threshold on labelled transactions: the share flagged (scored at or above it),
    the share of those that were fraud (precision), and the share of frauds flagged (recall)."""

    threshold: float
    flagged_share: float
    precision: float
    recall: float

    def to_json(self) -> dict[str, float | None]:
        """As a manifest stores it: NaN (nothing flagged, no fraud) as null."""
        return {k: None if math.isnan(v) else v for k, v in asdict(self).items()}


def operating_points(
    y: np.ndarray, scores: np.ndarray, thresholds: Iterable[float]
) -> list[OperatingPoint]:
    """One :class:`OperatingPoint` per threshold, ascending; precision is NaN where nothing is
    flagged, recall where there is no fraud."""
    y = np.asarray(y, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    points = []
    for t in sorted(set(thresholds)):
        flagged = scores >= t
        n, hits = int(flagged.sum()), int((flagged & y).sum())
        points.append(
            OperatingPoint(
                threshold=float(t),
                flagged_share=n / len(y) if len(y) else float("nan"),
                precision=hits / n if n else float("nan"),
                recall=hits / int(y.sum()) if y.any() else float("nan"),
            )
        )
    return points


def quality(
    frame: pd.DataFrame, scores: np.ndarray, *, label: str = "is_fraud"
) -> dict[str, float]:
    """AUC ROC, Average Precision and Card Precision@100 of scores on a labelled frame."""
    y = frame[label].astype(int).to_numpy()
    both_classes = 0 < y.sum() < len(y)
    return {
        "auc_roc": float(roc_auc_score(y, scores)) if both_classes else float("nan"),
        "average_precision": float(average_precision_score(y, scores))
        if both_classes
        else float("nan"),
        "card_precision_at_100": card_precision_at_k(frame, scores, k=100, label=label),
    }


def decisions_quality(
    frame: pd.DataFrame, scores: Mapping[str, float], *, since: pd.Timestamp | None = None
) -> tuple[dict[str, float], int, int]:
    """:func:`quality` of decided scores (by transaction id) on the labelled transactions of
    ``frame`` from ``since`` on; with how many transactions were scored and how many of them
    were frauds. Transactions without a score are left out (not counted as misses)."""
    rows = frame[frame["transaction_id"].isin(scores.keys())]
    if since is not None:
        rows = rows[pd.to_datetime(rows["timestamp"], utc=True) >= since]
    decided = np.array([scores[t] for t in rows["transaction_id"]], dtype=float)
    return quality(rows, decided), len(rows), int(rows["is_fraud"].astype(bool).sum())
