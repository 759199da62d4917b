"""The handbook's split protocol: train, skip the label delay, test a week without known cards.

The book trains on 2018-07-25 … 07-31, skips the 7 days whose labels are not known yet, and
tests on 2018-08-08 … 08-14. Its test set leaves out the cards an investigator already knows to
be compromised: every card with a fraud in the training week, and, for each test day ``T``, every
card with a fraud on the days up to ``T`` minus the delay minus one (the book adds, on test day
``i``, the frauds of day ``train_start + train_days + i - 1``). That is exactly "a fraud that
happened before ``T - delay``, from the start of the training week on": its label was reported
(``reported_at = timestamp + delay``) before test day ``T`` began.

The known cards are defined by the book's 7-day training week even when a model trains on more
days, so that every model is measured on the same test set as the book's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.train import Period, period_mask
from streamer.features.definitions import LABEL_DELAY_DAYS, WINDOW_DAYS

__all__ = [
    "BOOK_TEST_START",
    "BOOK_TRAIN_DAYS",
    "WARMUP_DAYS",
    "WEEK_DAYS",
    "Split",
    "known_compromised",
    "protocol_mask",
    "split_before",
]

BOOK_TEST_START = pd.Timestamp("2018-08-08", tz="UTC")
BOOK_TRAIN_DAYS = 7
WEEK_DAYS = 7
#: Days of replayed history a feature row needs behind it to be exact: the terminal windows
#: reach back 30 days from a point one label delay before the transaction.
WARMUP_DAYS = max(WINDOW_DAYS) + LABEL_DELAY_DAYS
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Split:
    """Training days, the delay gap, a test week, and the book's training week (known cards)."""

    train: Period
    test: Period
    reference: Period  # the book's 7-day training week, just before the gap
    delay_days: int

    def describe(self) -> str:
        return f"train {self.train.describe()} → test {self.test.describe()}"


def split_before(
    test_start: pd.Timestamp,
    *,
    train_days: int = BOOK_TRAIN_DAYS,
    delay_days: int = LABEL_DELAY_DAYS,
    test_days: int = WEEK_DAYS,
) -> Split:
    """The book's split ending at ``test_start``: ``train_days`` ending one delay before it."""
    start = pd.Timestamp(test_start).floor("D")
    train_end = start - delay_days * _DAY
    return Split(
        train=Period(train_end - train_days * _DAY, train_days),
        test=Period(start, test_days),
        reference=Period(train_end - BOOK_TRAIN_DAYS * _DAY, BOOK_TRAIN_DAYS),
        delay_days=delay_days,
    )


def known_compromised(frame: pd.DataFrame, split: Split) -> np.ndarray:
    """Per row: is its card known compromised at the start of the row's day?

    Known means a fraud on the card from the start of the book's training week up to one label
    delay before that day began (so its label was reported by then).
    """
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    fraud = frame["is_fraud"].astype(bool).to_numpy() & (ts >= split.reference.start).to_numpy()
    first_fraud = ts[fraud].groupby(frame["customer_id"][fraud].to_numpy()).min()
    known_from = frame["customer_id"].map(first_fraud) + split.delay_days * _DAY
    return (known_from < ts.dt.floor("D")).fillna(False).to_numpy(dtype=bool)


def protocol_mask(frame: pd.DataFrame, split: Split) -> np.ndarray:
    """Rows of the test week whose card is not known compromised: the book's test set."""
    return period_mask(frame, split.test) & ~known_compromised(frame, split)
