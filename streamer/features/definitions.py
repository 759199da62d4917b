"""The model's features, declared once for training and serving.

A feature row is assembled from three parts: the transaction itself (amount, calendar), the
customer's event-time windows *up to and including* the transaction, and the terminal's windows
that *end one label delay before* the transaction (the handbook's protocol: fraud on a terminal
becomes known only after the delay). The stores (Redis and its in-memory twin) compute the raw
window statistics; this module turns them into the numbers the model sees, so there is exactly one
place where a feature is defined.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

__all__ = [
    "AMOUNT_COLUMN",
    "CALENDAR_FEATURES",
    "CUSTOMER_STATS_LEN",
    "DAY_MS",
    "FEATURES",
    "FEATURE_NAMES",
    "HIGH_AMOUNT_DAYS",
    "HIGH_AMOUNT_FACTOR",
    "LABEL_DELAY_DAYS",
    "NIGHT_LAST_HOUR",
    "OWN_AMOUNT_COLUMNS",
    "RETENTION_DAYS",
    "TERMINAL_STATS_LEN",
    "WEEKEND_FIRST_DAY",
    "WINDOW_DAYS",
    "WINDOW_READ_MAX",
    "Feature",
    "FeatureEvent",
    "FraudMark",
    "StatsRows",
    "build_matrix",
    "calendar_flags",
    "first_converted",
    "in_event_time",
    "to_epoch_ms",
]

DAY_MS = 86_400_000
WINDOW_DAYS: tuple[int, ...] = (1, 7, 30)
LABEL_DELAY_DAYS = 7
#: State kept per entity, in event time. The terminal windows reach back
#: ``max(WINDOW_DAYS) + LABEL_DELAY_DAYS`` = 37 days; the extra week lets a crashed batch be
#: replayed (and a slow partition lag behind) without its windows having been trimmed away.
RETENTION_DAYS = max(WINDOW_DAYS) + 2 * LABEL_DELAY_DAYS
#: Gap reported when the customer has no earlier transaction inside the longest window.
NO_PREVIOUS_HOURS = float(max(WINDOW_DAYS) * 24)
#: The most of an entity's widest window that one transaction's features read: a card's latest
#: this many transactions, a terminal's latest this many known frauds. The counts stay exact
#: (Redis counts a range without reading it); a card's sums count what was not read at the
#: mean of what was, its median and high amounts are those of what was read, and a terminal's
#: unread frauds, older than every one read, count as reported. A script's Redis time grows
#: with what it reads, for every transaction: without a bound, one card id that many
#: transactions share (a producer's placeholder, card testing) or a busy compromised merchant
#: slows every card's scoring, and a batch of theirs outlasts the store's deadline on each
#: attempt, stopping the worker. Nothing of the handbook's simulator comes near: in 60 days, a
#: card had 162 transactions in 30 days at the most, a terminal 46 frauds.
WINDOW_READ_MAX = 1_000

#: The card's usual amount is the median of its *other* transactions in the widest window: a
#: compromised card's inflated amounts pull its mean up, hardly its median. A transaction above
#: ``HIGH_AMOUNT_FACTOR`` times that median is *high*; how many the card made in the last
#: ``HIGH_AMOUNT_DAYS`` tells of a compromise even when the current amount looks ordinary.
HIGH_AMOUNT_FACTOR = 3
HIGH_AMOUNT_DAYS = 7

#: customer stats: (count, amount sum) per window; ms since the previous transaction or -1; the
#: median amount of the card's other transactions in the widest window (0 if none); how many of
#: them, in the last ``HIGH_AMOUNT_DAYS``, were above ``HIGH_AMOUNT_FACTOR`` times that median;
#: the transaction's own amount as the card's window first recorded it (in the model's currency:
#: a repeat converted at another exchange rate is still decided on the first amount); and 1 if
#: that amount was converted, 0 if its currency had no rate (a repeat is reviewed for want of a
#: rate exactly when its first delivery was, whatever the rates are now)
CUSTOMER_STATS_LEN = 2 * len(WINDOW_DAYS) + 5
_GAP, _MEDIAN, _HIGH, _AMOUNT, _CONVERTED = (2 * len(WINDOW_DAYS) + i for i in range(5))
#: terminal stats: (transactions, known frauds) per window; then how many of the terminal's
#: latest transactions in the widest window are known frauds in a row, counted back from the
#: latest (its *fraud run*)
TERMINAL_STATS_LEN = 2 * len(WINDOW_DAYS) + 1
_RUN = 2 * len(WINDOW_DAYS)
#: a store's stats for a batch, one row per event: an array (Redis) or lists (the in-memory twin)
StatsRows = np.ndarray | Sequence[Sequence[float]]


@dataclass(frozen=True, slots=True)
class Feature:
    """A model input: its name (the column name in training sets) and what it means."""

    name: str
    description: str
    #: how an analyst reads the value in a reason, e.g. "{:.2f} EUR"
    unit: str = "{:.2f}"


def _customer_features() -> list[Feature]:
    out = []
    for d in WINDOW_DAYS:
        out.append(
            Feature(
                f"CUSTOMER_ID_NB_TX_{d}DAY_WINDOW",
                f"transactions by this card in the last {d} day(s), this one included",
                "{:.0f}",
            )
        )
        out.append(
            Feature(
                f"CUSTOMER_ID_AVG_AMOUNT_{d}DAY_WINDOW",
                f"mean amount of this card's transactions in the last {d} day(s)",
                "{:.2f}",
            )
        )
    return out


def _terminal_features() -> list[Feature]:
    out = []
    for d in WINDOW_DAYS:
        out.append(
            Feature(
                f"TERMINAL_ID_NB_TX_{d}DAY_WINDOW",
                f"transactions at this terminal in the {d} day(s) ending "
                f"{LABEL_DELAY_DAYS} days ago",
                "{:.0f}",
            )
        )
        out.append(
            Feature(
                f"TERMINAL_ID_RISK_{d}DAY_WINDOW",
                f"share of known fraud at this terminal in the {d} day(s) ending "
                f"{LABEL_DELAY_DAYS} days ago",
                "{:.0%}",
            )
        )
    return out


FEATURES: tuple[Feature, ...] = (
    Feature("TX_AMOUNT", "transaction amount", "{:.2f}"),
    Feature("TX_DURING_WEEKEND", "made on a Saturday or Sunday (local time)", "{:.0f}"),
    Feature("TX_DURING_NIGHT", "made between 00:00 and 06:59 (local time)", "{:.0f}"),
    *_customer_features(),
    *_terminal_features(),
    Feature(
        "CUSTOMER_AMOUNT_RATIO_30DAY",
        "amount relative to this card's mean amount over the last 30 days",
        "{:.1f}x",
    ),
    Feature(
        "CUSTOMER_HOURS_SINCE_PREV_TX",
        "hours since this card's previous transaction (capped at 30 days)",
        "{:.1f} h",
    ),
    Feature(
        f"CUSTOMER_AMOUNT_RATIO_MEDIAN_{max(WINDOW_DAYS)}DAY",
        f"amount relative to the median of this card's other transactions in the last "
        f"{max(WINDOW_DAYS)} days",
        "{:.1f}x",
    ),
    Feature(
        f"CUSTOMER_NB_HIGH_TX_{HIGH_AMOUNT_DAYS}DAY",
        f"this card's other transactions in the last {HIGH_AMOUNT_DAYS} days above "
        f"{HIGH_AMOUNT_FACTOR}x its median amount",
        "{:.0f}",
    ),
    # A compromised terminal's transactions are all fraud, so once its labels are known its
    # latest transactions are known frauds *in a row*; a stray fraud there (a stolen card used
    # once) is one, soon followed by genuine ones. The windows' shares cannot tell the two
    # apart on a quiet terminal: one fraud among nine is 0.11 either way.
    Feature(
        "TERMINAL_ID_FRAUD_RUN",
        f"known frauds in a row among this terminal's latest transactions up to "
        f"{LABEL_DELAY_DAYS} days ago",
        "{:.0f}",
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
#: the column of the amount, in the model's currency, as the card's window first recorded it:
#: what the rules compare too, so that a repeat is decided as the first delivery was
AMOUNT_COLUMN = FEATURE_NAMES.index("TX_AMOUNT")
#: the columns computed from the transaction's own amount: unknown (NaN) when its currency had
#: no rate, and the scorer gives them their typical values (:mod:`streamer.scoring`)
OWN_AMOUNT_COLUMNS: tuple[int, ...] = tuple(
    FEATURE_NAMES.index(name)
    for name in (
        "TX_AMOUNT",
        "CUSTOMER_AMOUNT_RATIO_30DAY",
        f"CUSTOMER_AMOUNT_RATIO_MEDIAN_{max(WINDOW_DAYS)}DAY",
    )
)
#: inputs that follow the clock: their mix over a few thousand rows depends on the hour and the
#: weekday, not on whether traffic changed, so drift is not watched on them
CALENDAR_FEATURES: tuple[str, ...] = ("TX_DURING_WEEKEND", "TX_DURING_NIGHT")


@dataclass(frozen=True, slots=True)
class FeatureEvent:
    """What the stores need of a transaction: identity, entities, event time, amount (in the
    model's currency, or as written when ``converted`` is false: its currency had no rate)."""

    transaction_id: str
    customer_id: str
    terminal_id: str
    ts_ms: int
    amount: float
    weekend: bool
    night: bool
    converted: bool = True
    #: :func:`streamer.features.keys.fingerprint`, which tells a re-delivery from another
    #: transaction under the same id; empty: not checked (training sets, whose ids are unique).
    #: Not compared: two events are equal when they give the same features
    fingerprint: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class FraudMark:
    """A label as the terminal windows use it: fraud known from ``reported_ms`` on."""

    transaction_id: str
    terminal_id: str
    tx_ts_ms: int
    reported_ms: int
    is_fraud: bool


def in_event_time(
    events: Sequence[FeatureEvent], marks: Sequence[FraudMark], size: int
) -> Iterator[tuple[Sequence[FraudMark], Sequence[FeatureEvent]]]:
    """History as a store takes it: (labels, transactions) pairs, ``size`` transactions at a
    time, each after the labels reported by its last transaction's time — a fraud mark counts
    only from its report time on, so it may go before transactions that precede it. A
    withdrawal may not (it removes the mark for every transaction): the chunk is split at its
    report time, and the transactions before it still see the mark, as the worker's
    :func:`~streamer.pipeline.in_label_order` keeps them. ``events`` are in event time,
    ``marks`` in report time (the callers sort them); labels reported after the last
    transaction come last, on their own."""
    applied = 0
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        end = applied
        while end < len(marks) and marks[end].reported_ms <= chunk[-1].ts_ms:
            end += 1
        due, applied = marks[applied:end], end
        lo = 0  # where the chunk's transactions not given yet start
        pending: list[FraudMark] = []  # the labels to give before them
        for mark in due:
            if not mark.is_fraud:
                cut = bisect_left(chunk, mark.reported_ms, lo=lo, key=_event_ms)
                if cut > lo:
                    yield pending, chunk[lo:cut]
                    lo, pending = cut, []
            pending.append(mark)
        yield pending, chunk[lo:]
    if applied < len(marks):
        yield marks[applied:], []


def _event_ms(event: FeatureEvent) -> int:
    return event.ts_ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_epoch_ms(ts: datetime) -> int:
    """Event time as integer epoch milliseconds (the score of every window member): the
    millisecond it falls in, as training and ``score-batch`` cut it (pandas'
    ``datetime64[ms]``), in integers (a float of the seconds would round some microseconds
    into the next millisecond)."""
    return (ts - _EPOCH) // _MS


#: Saturday (5) and Sunday (6), as ``datetime.weekday()`` numbers them; night is 00:00–06:59
WEEKEND_FIRST_DAY = 5
NIGHT_LAST_HOUR = 6


def calendar_flags(ts: datetime) -> tuple[bool, bool]:
    """(weekend, night) from the wall time at the offset the producer gave."""
    return ts.weekday() >= WEEKEND_FIRST_DAY, ts.hour <= NIGHT_LAST_HOUR


def first_converted(customer_stats: StatsRows) -> np.ndarray:
    """Per row of a store's customer stats, whether the amount was in the model's currency
    when the card's window first recorded it (see ``CUSTOMER_STATS_LEN``)."""
    cust = np.asarray(customer_stats, dtype=np.float64).reshape(-1, CUSTOMER_STATS_LEN)
    return cust[:, _CONVERTED] != 0


def build_matrix(
    events: Sequence[FeatureEvent],
    customer_stats: StatsRows,
    terminal_stats: StatsRows,
) -> np.ndarray:
    """Feature rows (n × len(FEATURES), float64) from the stores' raw window statistics."""
    n = len(events)
    cust = np.asarray(customer_stats, dtype=np.float64).reshape(n, CUSTOMER_STATS_LEN)
    term = np.asarray(terminal_stats, dtype=np.float64).reshape(n, TERMINAL_STATS_LEN)
    out = np.empty((n, len(FEATURES)), dtype=np.float64)
    amount = cust[:, _AMOUNT]
    out[:, 0] = amount
    out[:, 1] = np.fromiter((e.weekend for e in events), dtype=np.float64, count=n)
    out[:, 2] = np.fromiter((e.night for e in events), dtype=np.float64, count=n)
    col = 3
    # a ratio past float64's range (1e308 over an amount of cents) is infinite: the scorer
    # gives the model float32's largest, and a reason shows "inf"
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(len(WINDOW_DAYS)):
            count, total = cust[:, 2 * i], cust[:, 2 * i + 1]
            out[:, col] = count
            out[:, col + 1] = np.where(count > 0, total / count, 0.0)
            col += 2
        for i in range(len(WINDOW_DAYS)):
            count, frauds = term[:, 2 * i], term[:, 2 * i + 1]
            out[:, col] = count
            out[:, col + 1] = np.where(count > 0, np.minimum(frauds / count, 1.0), 0.0)
            col += 2
        mean30 = out[:, 3 + 2 * (len(WINDOW_DAYS) - 1) + 1]
        out[:, col] = np.where(mean30 > 0, amount / mean30, 1.0)
    gap_ms = cust[:, _GAP]
    out[:, col + 1] = np.where(
        gap_ms >= 0, np.minimum(gap_ms / 3_600_000, NO_PREVIOUS_HOURS), NO_PREVIOUS_HOURS
    )
    median = cust[:, _MEDIAN]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out[:, col + 2] = np.where(median > 0, amount / median, 1.0)
    out[:, col + 3] = cust[:, _HIGH]
    out[:, col + 4] = term[:, _RUN]
    # an amount its currency had no rate for is a number in another unit: unknown, as is
    # everything computed from it (a card's window without a readable amount is NaN already)
    out[np.ix_(cust[:, _CONVERTED] == 0, OWN_AMOUNT_COLUMNS)] = np.nan
    return out
