"""Feature semantics on the in-memory store (the Redis store is held equal to it elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.features.definitions import (
    DAY_MS,
    FEATURE_NAMES,
    FeatureEvent,
    FraudMark,
    in_event_time,
)
from streamer.features.keys import (
    MEMBER_ID_OFFSET,
    RATES_KEY,
    blocklist_key,
    customer_member,
    customer_pins_keys,
    customer_stats_key,
    customer_window_key,
    terminal_keys,
    terminal_stats_key,
)
from streamer.features.memory import InMemoryFeatureStore
from streamer.features.store import StoreConfig

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def ev(
    tx: str, t_ms: int, amount: float = 10.0, customer: str = "c1", terminal: str = "t1"
) -> FeatureEvent:
    return FeatureEvent(tx, customer, terminal, t_ms, amount, False, False)


def test_key_scheme_is_pinned() -> None:
    # Changing these strands every feature already in Redis: a migration, not a refactor.
    assert customer_window_key("c-1") == "fs:{c:c-1}:win"
    assert customer_stats_key("c-1") == "fs:{c:c-1}:stats"
    assert customer_pins_keys("c-1") == ("fs:{c:c-1}:pin", "fs:{c:c-1}:why")
    assert terminal_keys("t-9") == ("fs:{t:t-9}:tx", "fs:{t:t-9}:fraud", "fs:{t:t-9}:rep")
    assert terminal_stats_key("t-9") == "fs:{t:t-9}:stats"
    assert blocklist_key("customer") == "fs:blocklist:customer"
    assert blocklist_key("terminal") == "fs:blocklist:terminal"
    assert RATES_KEY == "fs:rates"
    # a card's window member: amount and event time, little-endian doubles, then the id
    member = customer_member("tx-7", T0, 12.5)
    assert member == bytes.fromhex("00000000000029400000800ee8277642") + b"tx-7"
    assert member[MEMBER_ID_OFFSET:] == b"tx-7"
    # an amount whose currency had no rate is negated (the sign bit), a zero stays a zero
    negated = bytes.fromhex("00000000000029c00000800ee8277642") + b"tx-7"
    assert customer_member("tx-7", T0, 12.5, converted=False) == negated
    assert customer_member("tx-7", T0, 0.0, converted=False) == customer_member("tx-7", T0, 0.0)


def test_feature_order_is_the_handbooks_then_ours() -> None:
    assert FEATURE_NAMES[:3] == ("TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT")
    assert FEATURE_NAMES[3] == "CUSTOMER_ID_NB_TX_1DAY_WINDOW"
    assert FEATURE_NAMES[14] == "TERMINAL_ID_RISK_30DAY_WINDOW"
    assert len(FEATURE_NAMES) == 20


def test_customer_windows_include_the_transaction_and_exclude_older_ones() -> None:
    store = InMemoryFeatureStore()
    store.enrich_sync([ev("a", T0, 10.0), ev("b", T0 + 2 * DAY_MS, 20.0)])
    x = store.enrich_sync([ev("c", T0 + 2 * DAY_MS + 1000, 60.0)])[0]
    assert x[COL["CUSTOMER_ID_NB_TX_1DAY_WINDOW"]] == 2  # b and c
    assert x[COL["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"]] == pytest.approx(40.0)
    assert x[COL["CUSTOMER_ID_NB_TX_7DAY_WINDOW"]] == 3
    assert x[COL["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"]] == pytest.approx(30.0)
    assert x[COL["CUSTOMER_AMOUNT_RATIO_30DAY"]] == pytest.approx(2.0)
    assert x[COL["CUSTOMER_HOURS_SINCE_PREV_TX"]] == pytest.approx(1 / 3600)


def test_the_usual_amount_is_the_median_of_the_cards_other_transactions() -> None:
    store = InMemoryFeatureStore()
    first = store.enrich_sync([ev("a", T0, 30.0)])[0]
    assert first[COL["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"]] == 1.0  # nothing to compare with
    assert first[COL["CUSTOMER_NB_HIGH_TX_7DAY"]] == 0
    store.enrich_sync([ev("b", T0 + 10 * DAY_MS, 10.0), ev("c", T0 + 11 * DAY_MS, 20.0),
                       ev("d", T0 + 12 * DAY_MS, 200.0)])
    x = store.enrich_sync([ev("e", T0 + 13 * DAY_MS, 50.0)])[0]
    # the others: 10, 20, 30, 200 -> median 25, where the 30-day mean (62) follows the outlier
    assert x[COL["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"]] == 2.0
    assert x[COL["CUSTOMER_AMOUNT_RATIO_30DAY"]] == pytest.approx(50 / 62)
    # above 3 x 25 in the last 7 days: d only (a is older, and not above anyway)
    assert x[COL["CUSTOMER_NB_HIGH_TX_7DAY"]] == 1
    # an odd count takes the middle one; d has left the 7-day window a week later
    y = store.enrich_sync([ev("f", T0 + 20 * DAY_MS, 40.0)])[0]
    assert y[COL["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"]] == 40.0 / 30.0
    assert y[COL["CUSTOMER_NB_HIGH_TX_7DAY"]] == 0


def test_a_card_past_the_read_bound_is_counted_in_full_and_summed_at_what_was_read() -> None:
    """Only the latest ``window_read_max`` transactions of the widest window are read (this
    one among them): the counts are every transaction's, the sums count the unread ones at the
    mean of the read ones, and the median is that of the read ones."""
    history = [ev(f"old{i}", T0 + i * 1000, 100.0) for i in range(6)]
    history += [ev(f"new{i}", T0 + DAY_MS * (15 + i), 10.0 * (i + 1)) for i in range(4)]
    now = ev("now", T0 + 20 * DAY_MS, 50.0)
    bounded = InMemoryFeatureStore(StoreConfig(window_read_max=4))
    unbounded = InMemoryFeatureStore()
    for store in (bounded, unbounded):
        store.enrich_sync(history)
    x, y = bounded.enrich_sync([now])[0], unbounded.enrich_sync([now])[0]
    # all of them and this one, both ways
    for name, count in ((f"CUSTOMER_ID_NB_TX_{d}DAY_WINDOW", n) for d, n in ((30, 11), (7, 5))):
        assert x[COL[name]] == y[COL[name]] == count
    # read: new1..new3 (20, 30, 40) and this 50; the other seven count at their mean, 35
    assert x[COL["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]] == pytest.approx(35.0)
    assert y[COL["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]] == pytest.approx(750.0 / 11)
    assert x[COL["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"]] == pytest.approx(35.0)  # new0 unread
    assert x[COL["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"]] == 50.0 / 30.0  # of 20, 30, 40
    assert y[COL["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"]] == 50.0 / 100.0
    assert x[COL["CUSTOMER_HOURS_SINCE_PREV_TX"]] == y[COL["CUSTOMER_HOURS_SINCE_PREV_TX"]] == 48


def unrated(tx: str, t_ms: int, amount: float) -> FeatureEvent:
    """A transaction whose currency had no rate: its amount is as written."""
    return FeatureEvent(tx, "c1", "t1", t_ms, amount, False, False, converted=False)


def test_an_amount_without_a_rate_counts_in_its_card_windows_at_their_readable_mean() -> None:
    # 6,000 JPY in a card that pays about 20 EUR: added as written it would make the card's
    # 30-day mean 1,520 and its median 25, and every later amount look small for 30 days
    store = InMemoryFeatureStore()
    store.enrich_sync([ev("a", T0, 10.0), ev("b", T0 + 10 * DAY_MS, 30.0)])
    yen = store.enrich_sync([unrated("c", T0 + 20 * DAY_MS, 6000.0)])[0]
    # its own amount is not known, nor what is computed from it (the scorer gives them their
    # typical values), nor the mean of a window where no amount is readable
    for name in ("TX_AMOUNT", "CUSTOMER_AMOUNT_RATIO_30DAY", "CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY",
                 "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"):  # fmt: skip
        assert np.isnan(yen[COL[name]]), name
    assert yen[COL["CUSTOMER_ID_NB_TX_30DAY_WINDOW"]] == 3
    assert yen[COL["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]] == 20.0  # a, b: the readable ones
    assert yen[COL["CUSTOMER_NB_HIGH_TX_7DAY"]] == 0
    x = store.enrich_sync([ev("d", T0 + 20 * DAY_MS + 1000, 40.0)])[0]
    assert x[COL["CUSTOMER_ID_NB_TX_1DAY_WINDOW"]] == 2  # c is counted
    assert x[COL["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"]] == 40.0  # at d's amount, the readable
    assert x[COL["CUSTOMER_ID_NB_TX_30DAY_WINDOW"]] == 4
    assert x[COL["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]] == pytest.approx(80 / 3)  # 10, 30, 40
    assert x[COL["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"]] == 2.0  # the others readable: 10, 30
    assert x[COL["CUSTOMER_NB_HIGH_TX_7DAY"]] == 0  # c is not 6,000 EUR above 3 x 20
    assert x[COL["CUSTOMER_HOURS_SINCE_PREV_TX"]] == pytest.approx(1 / 3600)  # c was a payment
    # the same card without the yen, one transaction fewer: the same amount features
    plain = InMemoryFeatureStore()
    plain.enrich_sync([ev("a", T0, 10.0), ev("b", T0 + 10 * DAY_MS, 30.0)])
    y = plain.enrich_sync([ev("d", T0 + 20 * DAY_MS + 1000, 40.0)])[0]
    for name in ("AVG_AMOUNT_30DAY_WINDOW", "AVG_AMOUNT_1DAY_WINDOW"):
        assert x[COL[f"CUSTOMER_ID_{name}"]] == pytest.approx(y[COL[f"CUSTOMER_ID_{name}"]])
    median = COL["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"]
    assert x[median] == y[median]


def test_a_card_paying_only_without_a_rate_has_no_known_amounts() -> None:
    store = InMemoryFeatureStore()
    store.enrich_sync([unrated("a", T0, 1000.0), unrated("b", T0 + DAY_MS, 3000.0)])
    x = store.enrich_sync([unrated("c", T0 + 2 * DAY_MS, 20000.0)])[0]
    assert x[COL["CUSTOMER_ID_NB_TX_30DAY_WINDOW"]] == 3
    assert np.isnan(x[COL["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]])
    assert x[COL["CUSTOMER_NB_HIGH_TX_7DAY"]] == 0
    # once the card pays in a currency that is read, the others count at its amounts
    y = store.enrich_sync([ev("d", T0 + 2 * DAY_MS + 1000, 25.0)])[0]
    assert y[COL["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]] == 25.0
    # its median is that of the readable others: none (1.0, nothing to compare with), where
    # the amounts as written would make 25 EUR look a hundredth of the usual
    assert y[COL["CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"]] == 1.0
    assert y[COL["TX_AMOUNT"]] == 25.0
    # a month later the unreadable amounts have left the windows with the rest
    later = store.enrich_sync([ev("e", T0 + 60 * DAY_MS, 10.0)])[0]
    assert later[COL["CUSTOMER_ID_NB_TX_30DAY_WINDOW"]] == 1
    assert later[COL["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]] == 10.0


def test_window_boundary_is_exclusive_at_the_far_end() -> None:
    store = InMemoryFeatureStore()
    store.enrich_sync([ev("a", T0)])
    x = store.enrich_sync([ev("b", T0 + DAY_MS)])[0]
    assert x[COL["CUSTOMER_ID_NB_TX_1DAY_WINDOW"]] == 1  # exactly one day ago is out


def test_replaying_a_transaction_counts_it_once_and_gives_the_same_features() -> None:
    store = InMemoryFeatureStore()
    events = [ev(f"tx{i}", T0 + i * 3_600_000, 5.0 + i) for i in range(10)]
    first = store.enrich_sync(events)
    again = store.enrich_sync(events[3:7])
    np.testing.assert_array_equal(again, first[3:7])


def test_equal_timestamps_do_not_see_each_other_whatever_the_arrival_order() -> None:
    # Which of two simultaneous transactions arrived first is not in the data, so neither
    # counts the other: a replay after a crash must give the features of the first time.
    a, b = ev("tx-a", T0, 10.0), ev("tx-b", T0, 30.0)
    one, two = InMemoryFeatureStore(), InMemoryFeatureStore()
    xa1, xb1 = one.enrich_sync([a, b])
    xb2, xa2 = two.enrich_sync([b, a])
    np.testing.assert_array_equal(xa1, xa2)
    np.testing.assert_array_equal(xb1, xb2)
    np.testing.assert_array_equal(one.enrich_sync([b])[0], xb1)
    assert xb1[COL["CUSTOMER_ID_NB_TX_1DAY_WINDOW"]] == 1
    assert xb1[COL["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"]] == 30.0


def test_terminal_risk_uses_the_delayed_window_and_only_reported_frauds() -> None:
    store = InMemoryFeatureStore()
    old = [ev(f"o{i}", T0 + i * 1000, customer=f"c{i}") for i in range(4)]
    store.enrich_sync(old)
    # o0 and o1 are fraud: o0 reported 7 days after it happened, o1 two days later still
    store.apply_labels_sync([
        FraudMark("o0", "t1", T0, T0 + 7 * DAY_MS, True),
        FraudMark("o1", "t1", T0 + 1000, T0 + 9 * DAY_MS, True),
    ])
    before = store.enrich_sync([ev("n1", T0 + 7 * DAY_MS - 1, customer="z")])[0]
    after = store.enrich_sync([ev("n2", T0 + 7 * DAY_MS + 10_000, customer="z")])[0]
    # the delayed window ending one delay before n1 holds none of the four yet
    assert before[COL["TERMINAL_ID_NB_TX_1DAY_WINDOW"]] == 0
    assert before[COL["TERMINAL_ID_RISK_1DAY_WINDOW"]] == 0
    # n2's holds all four; o0 is reported by then, o1 not: one fraud in four
    assert after[COL["TERMINAL_ID_NB_TX_1DAY_WINDOW"]] == 4
    assert after[COL["TERMINAL_ID_RISK_1DAY_WINDOW"]] == pytest.approx(0.25)
    # a withdrawn label no longer counts
    store.apply_labels_sync([FraudMark("o0", "t1", T0, T0 + 8 * DAY_MS, False)])
    later = store.enrich_sync([ev("n3", T0 + 7 * DAY_MS + 20_000, customer="z")])[0]
    assert later[COL["TERMINAL_ID_RISK_1DAY_WINDOW"]] == 0


def _run_at(store: InMemoryFeatureStore, tx: str, t_ms: int) -> float:
    return float(store.enrich_sync([ev(tx, t_ms, customer="z")])[0][COL["TERMINAL_ID_FRAUD_RUN"]])


def _fraud(tx: str, t_ms: int, reported_ms: int | None = None) -> FraudMark:
    reported = t_ms + 7 * DAY_MS if reported_ms is None else reported_ms
    return FraudMark(tx, "t1", t_ms, reported, True)


def test_the_fraud_run_counts_known_frauds_back_from_the_terminals_latest_transaction() -> None:
    hour = 3_600_000
    store = InMemoryFeatureStore()
    store.enrich_sync([ev(f"o{i}", T0 + i * hour, customer=f"c{i}") for i in range(4)])
    # o0 a stray fraud, then o1 genuine, then o2 and o3 fraud: a compromise
    store.apply_labels_sync(
        [
            _fraud("o0", T0),
            _fraud("o2", T0 + 2 * hour),
            _fraud("o3", T0 + 3 * hour, reported_ms=T0 + 9 * DAY_MS),
        ]
    )
    week = 7 * DAY_MS
    # up to o0 only: the stray alone is a run of one
    assert _run_at(store, "n0", T0 + week + 1) == 1
    # up to o1: the latest is genuine
    assert _run_at(store, "n1", T0 + hour + week + 1) == 0
    # up to o3, whose label is not reported yet: the run ends there, at the latest transaction
    assert _run_at(store, "n2", T0 + 3 * hour + week + 1) == 0
    # once it is: o3 and o2, and o1 ends the run
    assert _run_at(store, "n3", T0 + 9 * DAY_MS) == 2
    # the risk shares still see the stray: one fraud is one fraud, whichever the pattern
    x = store.enrich_sync([ev("n4", T0 + 9 * DAY_MS + 1, customer="z")])[0]
    assert x[COL["TERMINAL_ID_RISK_30DAY_WINDOW"]] == pytest.approx(3 / 4)


def test_the_fraud_run_orders_simultaneous_transactions_by_id() -> None:
    # As the Redis zset does, so both stores agree whichever arrived first.
    for fraud_id, run in (("b", 1), ("a", 0)):
        store = InMemoryFeatureStore()
        store.enrich_sync([ev("b", T0, customer="c1"), ev("a", T0, customer="c2")])
        store.apply_labels_sync([_fraud(fraud_id, T0)])
        assert _run_at(store, "n", T0 + 7 * DAY_MS + 1) == run


def test_the_fraud_run_stays_in_the_widest_window() -> None:
    store = InMemoryFeatureStore()
    store.enrich_sync([ev("o0", T0), ev("o1", T0 + 31 * DAY_MS, customer="c2")])
    store.apply_labels_sync([_fraud("o0", T0), _fraud("o1", T0 + 31 * DAY_MS)])
    # o0 is 31 days before o1: outside the 30-day window that ends at o1
    assert _run_at(store, "n", T0 + 38 * DAY_MS + 1) == 1


def test_label_for_unseen_transaction_marks_its_terminal() -> None:
    store = InMemoryFeatureStore()
    store.apply_labels_sync([FraudMark("ghost", "t1", T0, T0 + 7 * DAY_MS, True)])
    x = store.enrich_sync([ev("n", T0 + 7 * DAY_MS + 1000)])[0]
    assert x[COL["TERMINAL_ID_NB_TX_1DAY_WINDOW"]] == 1
    assert x[COL["TERMINAL_ID_RISK_1DAY_WINDOW"]] == 1.0


async def test_blocklists() -> None:
    store = InMemoryFeatureStore()
    assert await store.blocklist_add("customer", ["c1", "c2"]) == 2
    assert await store.blocklist_remove("customer", ["c2"]) == 1
    assert await store.blocklist_members("customer") == ["c1"]
    enriched = await store.enrich([ev("a", T0, customer="c1"), ev("b", T0, customer="c3")])
    assert enriched.customer_blocked == [True, False]
    assert enriched.terminal_blocked == [False, False]
    assert await store.blocklist_add("terminal", ["t9"]) == 1
    enriched = await store.enrich([ev("c", T0, customer="c3", terminal="t9"), ev("d", T0)])
    assert enriched.terminal_blocked == [True, False]
    assert enriched.customer_blocked == [False, True]


def test_history_in_event_time_gives_each_label_before_the_first_chunk_that_knows_it() -> None:
    events = [FeatureEvent(f"t{i}", "c", "t", ts_ms=i * 10, amount=1.0, weekend=False,
                           night=False) for i in range(5)]  # fmt: skip
    marks = [FraudMark(f"m{r}", "t", tx_ts_ms=0, reported_ms=r, is_fraud=True)
             for r in (0, 15, 25, 90)]  # fmt: skip
    got = [([m.transaction_id for m in known], [e.transaction_id for e in chunk])
           for known, chunk in in_event_time(events, marks, 2)]  # fmt: skip
    assert got == [
        (["m0"], ["t0", "t1"]),  # chunk up to 10 ms: the label of 0 ms
        (["m15", "m25"], ["t2", "t3"]),  # up to 30 ms
        ([], ["t4"]),
        (["m90"], []),  # reported after the last transaction: on its own, last
    ]


def test_history_in_event_time_applies_a_withdrawal_after_the_transactions_before_it() -> None:
    events = [FeatureEvent(f"t{i}", "c", "t", ts_ms=i * 10, amount=1.0, weekend=False,
                           night=False) for i in range(5)]  # fmt: skip
    marks = [
        FraudMark("x", "t", tx_ts_ms=0, reported_ms=5, is_fraud=True),
        FraudMark("x", "t", tx_ts_ms=0, reported_ms=25, is_fraud=False),
        FraudMark("y", "t", tx_ts_ms=0, reported_ms=28, is_fraud=True),
    ]
    got = [([(m.transaction_id, m.is_fraud) for m in known], [e.transaction_id for e in chunk])
           for known, chunk in in_event_time(events, marks, 5)]  # fmt: skip
    assert got == [
        ([("x", True)], ["t0", "t1", "t2"]),  # t1 and t2 still see x's mark
        ([("x", False), ("y", True)], ["t3", "t4"]),
    ]


def test_a_withdrawal_counts_from_its_report_time_in_a_replayed_history() -> None:
    """A fraud reported on day 8, a transaction on day 9 whose windows hold it, the fraud
    withdrawn on day 10: replayed in one chunk (as training and ``rebuild-state`` do), the
    day-9 transaction sees the fraud, as the worker saw it."""
    fraud_at, later = T0 + DAY_MS, T0 + 9 * DAY_MS
    events = [ev("x", fraud_at, customer="a"), ev("n", later, customer="b"),
              ev("m", T0 + 11 * DAY_MS, customer="c")]  # fmt: skip
    marks = [FraudMark("x", "t1", fraud_at, T0 + 8 * DAY_MS, True),
             FraudMark("x", "t1", fraud_at, T0 + 10 * DAY_MS, False)]  # fmt: skip
    store = InMemoryFeatureStore()
    rows = []
    for known, chunk in in_event_time(events, marks, 100):
        store.apply_labels_sync(list(known))
        rows.extend(store.enrich_sync(list(chunk)) if chunk else [])
    risk = COL["TERMINAL_ID_RISK_30DAY_WINDOW"]
    assert [row[risk] for row in rows] == [0.0, 1.0, 0.0]


def test_a_fraud_reported_again_is_known_from_its_first_report() -> None:
    """The worker applies a batch's fraud marks before its transactions (a mark counts from
    its report time): a second report of the same fraud, later, must not hide it from the
    transactions between the two reports."""
    store = InMemoryFeatureStore()
    store.enrich_sync([ev("x", T0, customer="a")])
    store.apply_labels_sync([FraudMark("x", "t1", T0, T0 + 9 * DAY_MS, True),
                             FraudMark("x", "t1", T0, T0 + 12 * DAY_MS, True)])  # fmt: skip
    (row,) = store.enrich_sync([ev("n", T0 + 10 * DAY_MS, customer="b")])
    assert row[COL["TERMINAL_ID_RISK_30DAY_WINDOW"]] == 1.0  # between the two reports
    # reported again, before the first report's time: the earlier time holds from now on
    store.apply_labels_sync([FraudMark("x", "t1", T0, T0 + 8 * DAY_MS, True)])
    (row,) = store.enrich_sync([ev("m", T0 + 8 * DAY_MS + 1, customer="c")])
    assert row[COL["TERMINAL_ID_RISK_30DAY_WINDOW"]] == 1.0


SUB_MS_TIMES = [
    "2018-04-01T00:00:31.9999Z",
    "2018-04-01T00:00:31.0005+02:00",
    "2018-04-01T00:00:31.999999-05:30",
    "2018-04-01T00:00:31.5Z",
    "2018-04-01T00:00:31Z",
]


def test_every_path_puts_an_event_time_in_the_same_millisecond() -> None:
    """The worker (a Transaction's time), training and ``score-batch`` (a frame's column) and
    ``produce`` (the JSON it writes, read back by the worker) agree on each transaction's
    millisecond, also for times with microseconds: the windows' edges and the ids' fingerprints
    are in milliseconds, so one path rounding where another cuts would give other features."""
    import pandas as pd

    from models.dataset import feature_events
    from schemas import Transaction
    from streamer.features.definitions import to_epoch_ms
    from streamer.replay import encode_transactions

    frame = pd.DataFrame({
        "transaction_id": [f"tx{i}" for i in range(len(SUB_MS_TIMES))],
        "timestamp": pd.to_datetime(SUB_MS_TIMES, utc=True, format="ISO8601"),
        "customer_id": "c1", "terminal_id": "t1", "amount": 1.0,
    })  # fmt: skip
    training = [event.ts_ms for event in feature_events(frame)]
    worker = [to_epoch_ms(Transaction.model_validate({
        "transaction_id": "tx", "timestamp": t, "customer_id": "c1", "terminal_id": "t1",
        "amount": 1.0}).timestamp) for t in SUB_MS_TIMES]  # fmt: skip
    produced = encode_transactions(frame)
    read_back = [to_epoch_ms(Transaction.model_validate_json(v).timestamp) for _, _, v in produced]
    assert training == worker == read_back == [ms for ms, _, _ in produced]
    assert worker[0] % 1000 == 999  # .9999 s is in the second's last millisecond, not the next
    sent = [Transaction.model_validate_json(v).timestamp for _, _, v in produced]
    assert sent == list(frame["timestamp"])  # produce keeps the microseconds
