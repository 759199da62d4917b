"""The quality of the decisions a running system published, measured against its labels.

Offline evaluation (:mod:`models.evaluate`) scores history with a model; this measures what the
workers actually decided — scores computed live from the features in Redis — once the truth is
known. The truth comes from the labels topic: a transaction is a fraud if its latest label (by
report time) says so, so a withdrawal (``is_fraud: false`` after a fraud mark) clears it, and a
transaction without a label is genuine. Labels come a delay after their transactions, so only
transactions at least that delay older than the latest report count: the newer ones may still
be reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.metrics import quality

__all__ = ["GROUPINGS", "LiveQuality", "live_quality"]


#: how the decisions can be grouped: by the model version that made them, or by the week
#: (starting on Monday, UTC) of their transactions, to see quality drift
GROUPINGS = ("version", "week")


@dataclass(frozen=True)
class LiveQuality:
    """The handbook's metrics of one group of decisions (or all of them: ``"all"``)."""

    group: str
    transactions: int
    frauds: int
    metrics: dict[str, float]


def live_quality(
    decisions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    delay_days: float,
    since: pd.Timestamp | None = None,
    by: str = "version",
) -> tuple[pd.Timestamp | None, list[LiveQuality]]:
    """(the cutoff, the quality of all decisions and of each group's) over the decided
    transactions from ``since`` to the cutoff: the latest report time minus ``delay_days``
    (None, and nothing measured, before any label). ``by`` is one of :data:`GROUPINGS`.

    ``decisions``: transaction_id, customer_id, timestamp, score, model_version, as published
    (in topic order): a transaction decided again (a re-delivery) counts once, by its first
    decision. ``labels``: transaction_id, is_fraud, reported_at.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if labels.empty:
        return None, []
    decisions = decisions.drop_duplicates("transaction_id", keep="first")
    reported = pd.to_datetime(labels["reported_at"], utc=True)
    cutoff = reported.max() - pd.Timedelta(days=delay_days)
    latest = labels.assign(reported_at=reported).sort_values("reported_at", kind="stable")
    truth = latest.groupby("transaction_id")["is_fraud"].last().astype(bool)
    times = pd.to_datetime(decisions["timestamp"], utc=True)
    keep = times <= cutoff
    if since is not None:
        keep &= times >= since
    rows = decisions[keep.to_numpy()].copy()
    rows["is_fraud"] = rows["transaction_id"].map(truth).fillna(False).astype(bool)
    if by == "week":
        day = pd.to_datetime(rows["timestamp"], utc=True).dt.floor("D")
        keys = (day - pd.to_timedelta(day.dt.day_of_week, unit="D")).dt.strftime("week of %Y-%m-%d")
    else:
        keys = rows["model_version"].astype(str)
    report = [_measure("all", rows)]
    for key, group in rows.groupby(keys.to_numpy(), sort=True):
        report.append(_measure(str(key), group))
    return cutoff, report


def _measure(group: str, rows: pd.DataFrame) -> LiveQuality:
    frauds = int(rows["is_fraud"].sum())
    metrics = quality(rows, rows["score"].to_numpy(dtype=float)) if len(rows) else {}
    return LiveQuality(group, len(rows), frauds, metrics)
