"""The handbook's metrics on hand-built frames whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models.live_quality import live_quality
from models.metrics import (
    OperatingPoint,
    card_precision_at_k,
    decisions_quality,
    operating_points,
    quality,
)


def _frame(rows: list[tuple[str, str, bool, float]]) -> tuple[pd.DataFrame, np.ndarray]:
    """(day, card, fraud, score) rows -> a transactions frame and its scores."""
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([f"{day}T12:00:00Z" for day, *_ in rows], utc=True),
            "customer_id": [card for _, card, _, _ in rows],
            "is_fraud": [fraud for _, _, fraud, _ in rows],
        }
    )
    return frame, np.array([score for *_, score in rows])


# Day 1: card B's best score (0.8) is on a genuine transaction but it has a fraud too, so B
# counts as a fraud card: top 2 = A, B, both fraud -> 1.0; A and B are now caught.
# Day 2: A and B score highest again but are dropped; top 2 = C (genuine), D (fraud) -> 0.5.
ROWS = [
    ("2018-08-08", "A", True, 0.9),
    ("2018-08-08", "B", False, 0.8),
    ("2018-08-08", "B", True, 0.05),
    ("2018-08-08", "C", True, 0.1),
    ("2018-08-09", "A", True, 0.95),
    ("2018-08-09", "B", True, 0.9),
    ("2018-08-09", "C", False, 0.7),
    ("2018-08-09", "D", True, 0.6),
    ("2018-08-09", "E", True, 0.2),
]


def test_card_precision_counts_each_card_once_per_day() -> None:
    frame, scores = _frame(ROWS)
    assert card_precision_at_k(frame, scores, k=2) == pytest.approx((1.0 + 0.5) / 2)


def test_cards_caught_on_an_earlier_day_are_dropped() -> None:
    """Without dropping, day 2's top 2 would be A and B (both fraud) and the mean 1.0."""
    frame, scores = _frame(ROWS)
    day2 = frame["timestamp"].dt.day == 9
    assert card_precision_at_k(frame[day2], scores[day2.to_numpy()], k=2) == 1.0
    assert card_precision_at_k(frame, scores, k=2) == 0.75


def test_card_precision_divides_by_k_even_with_fewer_cards() -> None:
    frame, scores = _frame(ROWS[:4])
    assert card_precision_at_k(frame, scores, k=100) == pytest.approx(3 / 100)


def test_quality_matches_sklearn_and_handles_one_class() -> None:
    frame, scores = _frame(ROWS)
    q = quality(frame, scores)
    y = frame["is_fraud"].astype(int)
    assert q["auc_roc"] == pytest.approx(roc_auc_score(y, scores))
    assert q["average_precision"] == pytest.approx(average_precision_score(y, scores))
    genuine = ~frame["is_fraud"]
    q = quality(frame[genuine], scores[genuine.to_numpy()])
    assert math.isnan(q["auc_roc"]) and math.isnan(q["average_precision"])


def test_decisions_quality_joins_scores_by_id_and_counts_from_a_day() -> None:
    frame, scores = _frame(
        [
            ("2018-04-01", "A", True, 0.1),  # day 1 ranks its fraud last
            ("2018-04-01", "B", False, 0.9),
            ("2018-04-02", "C", True, 0.8),
            ("2018-04-02", "D", False, 0.2),
            ("2018-04-02", "E", False, 0.3),
            ("2018-04-02", "F", True, 0.7),  # not decided: left out, not a miss
        ]
    )
    frame["transaction_id"] = [f"t{i}" for i in range(len(frame))]
    decided = {f"t{i}": float(s) for i, s in enumerate(scores[:5])}
    metrics, n, frauds = decisions_quality(frame, decided)
    assert (n, frauds) == (5, 2)
    assert metrics["auc_roc"] == pytest.approx(roc_auc_score([1, 0, 1, 0, 0], scores[:5]))
    since = pd.Timestamp("2018-04-02", tz="UTC")
    metrics, n, frauds = decisions_quality(frame, decided, since=since)
    assert (n, frauds, metrics["auc_roc"]) == (3, 1, 1.0)


def test_live_quality_takes_each_transactions_latest_label_up_to_a_delay_before_the_last() -> None:
    day = pd.Timestamp("2018-04-01", tz="UTC")
    decisions = pd.DataFrame(
        {
            "transaction_id": ["t0", "t1", "t2", "t3", "t4", "t5"],
            "customer_id": ["A", "B", "C", "D", "E", "F"],
            "timestamp": [day, day, day + pd.Timedelta(days=1), day + pd.Timedelta(days=1),
                          day + pd.Timedelta(days=1), day + pd.Timedelta(days=5)],
            "score": [0.9, 0.8, 0.7, 0.1, 0.6, 0.95],
            "model_version": ["m1", "m1", "m2", "m2", "m2", "m2"],
        }
    )  # fmt: skip
    labels = pd.DataFrame(
        {
            # t1 marked, then withdrawn: listed the other way round, so only the report
            # times tell which came last
            "transaction_id": ["t0", "t1", "t1", "t3", "t5"],
            "is_fraud": [True, False, True, True, True],
            "reported_at": [day + pd.Timedelta(days=d) for d in (2, 3, 2, 4, 9)],
        }
    )
    cutoff, report = live_quality(decisions, labels, delay_days=7)
    assert cutoff == day + pd.Timedelta(days=2)  # t5, reported on day 9, is too recent
    by_version = {row.group: row for row in report}
    assert [row.group for row in report] == ["all", "m1", "m2"]
    everything = by_version["all"]
    assert (everything.transactions, everything.frauds) == (5, 2)  # t0 and t3
    # frauds t0 (0.9) and t3 (0.1) against t1 (0.8), t2 (0.7), t4 (0.6): 3 of 6 pairs right
    assert everything.metrics["auc_roc"] == pytest.approx(0.5)
    assert (by_version["m1"].transactions, by_version["m1"].frauds) == (2, 1)
    assert by_version["m2"].metrics["auc_roc"] == 0.0  # its one fraud ranked last
    _, report = live_quality(decisions, labels, delay_days=7, since=day + pd.Timedelta(days=1))
    assert [(r.group, r.transactions) for r in report] == [("all", 3), ("m2", 3)]
    assert live_quality(decisions, labels.iloc[:0], delay_days=7) == (None, [])
    # by the week of the transactions (Monday, UTC): 2018-04-01 is a Sunday, 04-02 a Monday
    _, report = live_quality(decisions, labels, delay_days=7, by="week")
    weeks = [(r.group, r.transactions, r.frauds) for r in report]
    assert weeks == [("all", 5, 2), ("week of 2018-03-26", 2, 1), ("week of 2018-04-02", 3, 1)]
    with pytest.raises(ValueError, match="by must be one of version, week"):
        live_quality(decisions, labels, delay_days=7, by="day")
    # a transaction decided again (a re-delivery, by a newer model here) counts once, as first
    again = pd.concat([decisions, decisions.iloc[[3]].assign(score=0.99, model_version="m3")])
    _, report = live_quality(again, labels, delay_days=7)
    assert [(r.group, r.transactions, r.frauds) for r in report] == [
        ("all", 5, 2), ("m1", 2, 1), ("m2", 3, 1)
    ]  # fmt: skip
    assert report[0].metrics["auc_roc"] == pytest.approx(0.5)


def test_operating_points_count_what_each_threshold_flags() -> None:
    """At or above the threshold is flagged (a score equal to it too); a threshold that flags
    nothing has no precision, which the manifest stores as null."""
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 1, 0])
    scores = np.array([0.95, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.05, 0.0])
    points = operating_points(y, scores, [0.5, 0.99, 0.1, 0.5])
    assert [p.threshold for p in points] == [0.1, 0.5, 0.99]  # ascending, once each
    low, review, none = points
    assert low == OperatingPoint(0.1, flagged_share=0.8, precision=2 / 8, recall=2 / 3)
    assert review == OperatingPoint(0.5, flagged_share=0.3, precision=2 / 3, recall=2 / 3)
    assert none.flagged_share == 0.0 and none.recall == 0.0 and math.isnan(none.precision)
    assert none.to_json() == {"threshold": 0.99, "flagged_share": 0.0, "precision": None,
                              "recall": 0.0}  # fmt: skip


def test_quality_reads_only_labels_the_workers_accept() -> None:
    """The labels topic is an input: a label the workers refused stays on it (the dead letter
    is a copy). Read as JSON only, its ``"is_fraud": "false"`` would count as a fraud."""
    from schemas import Label
    from streamer.cli.quality import LABEL_FIELDS, _fields

    good = (b'{"transaction_id": "t1", "customer_id": "c", "terminal_id": "t", '
            b'"tx_timestamp": "2018-04-01T00:00:00Z", "is_fraud": false, '
            b'"reported_at": "2018-04-08T00:00:00Z"}')  # fmt: skip
    assert len(_fields(good, LABEL_FIELDS, Label)) == 1
    for bad in (good.replace(b"false", b'"false"'),
                good.replace(b'"2018-04-08T00:00:00Z"', b'"yesterday"')):  # fmt: skip
        assert _fields(bad, LABEL_FIELDS) != []  # what was read before
        assert _fields(bad, LABEL_FIELDS, Label) == []
