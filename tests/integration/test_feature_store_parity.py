"""The Redis scripts and the in-memory twin (used to build training sets) agree exactly, on a
single Redis server and on a Redis Cluster (``STREAMER_REDIS_CLUSTER``) alike."""

from __future__ import annotations

import logging
import random
import struct
import sys
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from redis import Redis as SyncRedis

from streamer.features.definitions import (
    CUSTOMER_STATS_LEN,
    DAY_MS,
    FEATURE_NAMES,
    RETENTION_DAYS,
    TERMINAL_STATS_LEN,
    FeatureEvent,
    FraudMark,
)
from streamer.features.keys import (
    FINGERPRINT_BYTES,
    MEMBER_ID_OFFSET,
    customer_member,
    customer_pins_keys,
    customer_stats_key,
    customer_window_key,
    fingerprint,
    terminal_keys,
    terminal_stats_key,
)
from streamer.features.memory import InMemoryFeatureStore
from streamer.features.store import RedisFeatureStore, StoreConfig, pin_keys
from streamer.redis_client import RedisClient, connect
from streamer.settings import Settings

T0 = 1_522_540_800_000


def history_events(seed: int) -> tuple[list[FeatureEvent], list[FraudMark]]:
    rng = random.Random(seed)
    events = [
        FeatureEvent(
            f"tx{i:05d}",
            f"c{rng.randrange(25)}",
            f"t{rng.randrange(15)}",
            T0 + rng.randrange(0, 40 * DAY_MS) // 1000 * 1000,
            round(rng.uniform(0, 60) * rng.choice((1, 1, 1, 5)), 2),  # some cards' highs
            rng.random() < 0.3,
            rng.random() < 0.2,
            i % 11 != 0,  # some in a currency without a rate
        )
        for i in range(2500)
    ]
    # simultaneous transactions of one customer, then one after them that sums their amounts:
    # in the order of their ids 0.2 + 0.3 + 0.1 = 0.6, in the order of their Redis members
    # (customer_member: the amount's bytes first) 0.3 + 0.1 + 0.2 = 0.6000000000000001
    tie = events[7].ts_ms
    events += [
        FeatureEvent(f"tie{i}", "c-tie", "t1", tie, amount, False, False)
        for i, amount in enumerate((0.2, 0.3, 0.1))
    ]
    events.append(FeatureEvent("after-tie", "c-tie", "t1", tie + 1000, 0.0, False, False))
    # a compromised terminal: every transaction fraud from its fourth on, two of them at the
    # same instant (the fraud run walks them in id order), and it is scored on until day 40
    run = [
        FeatureEvent(
            f"run{i:02d}", f"c{i % 25}", "t-run", T0 + (i // 2 * 2) * 3_600_000, 20.0, False, False
        )
        for i in range(12)
    ]
    run += [
        FeatureEvent(f"run-late{i}", "c0", "t-run", T0 + (8 + i) * DAY_MS, 20.0, False, False)
        for i in range(32)
    ]
    events += run
    events.sort(key=lambda e: (e.ts_ms, e.transaction_id))
    compromised = {f"run{i:02d}" for i in range(3, 12)}
    marks = [
        FraudMark(e.transaction_id, e.terminal_id, e.ts_ms, e.ts_ms + 7 * DAY_MS, True)
        for e in events
        if e.transaction_id in compromised or rng.random() < 0.08
    ]
    marks.append(FraudMark("never-seen", "t3", T0 + DAY_MS, T0 + 8 * DAY_MS, True))
    # frauds reported twice: again three days later, and again a day earlier than first
    again = [m for m in marks if m.transaction_id in ("run05", "run08")]
    marks += [
        FraudMark(again[0].transaction_id, "t-run", again[0].tx_ts_ms,
                  again[0].reported_ms + 3 * DAY_MS, True),
        FraudMark(again[1].transaction_id, "t-run", again[1].tx_ts_ms,
                  again[1].reported_ms - DAY_MS, True),
    ]  # fmt: skip
    marks.sort(key=lambda m: m.reported_ms)
    return events, marks


async def test_redis_and_memory_stores_compute_identical_features(redis: RedisClient) -> None:
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    events, marks = history_events(3)
    got, want = [], []
    applied = 0
    for k in range(0, len(events), 200):
        batch = events[k : k + 200]
        due = [m for m in marks[applied:] if m.reported_ms <= batch[-1].ts_ms]
        applied += len(due)
        await online.apply_labels(due)
        await offline.apply_labels(due)
        await online.blocklist_add("terminal", [batch[0].terminal_id])
        await offline.blocklist_add("terminal", [batch[0].terminal_id])
        a, b = await online.enrich(batch), await offline.enrich(batch)
        assert a.terminal_blocked == b.terminal_blocked and a.terminal_blocked[0]
        assert a.customer_blocked == b.customer_blocked
        assert a.converted.tolist() == b.converted.tolist() == [e.converted for e in batch]
        got.append(a.features)
        want.append(b.features)
    # bit for bit: the twin adds amounts in the same order as the Lua scripts
    np.testing.assert_array_equal(np.vstack(got), np.vstack(want))
    assert np.vstack(got)[:, 10].sum() > 0, "the history should exercise terminal risk"
    high = FEATURE_NAMES.index("CUSTOMER_NB_HIGH_TX_7DAY")
    assert np.vstack(got)[:, high].sum() > 0, "the history should exercise high amounts"
    run = np.vstack(got)[:, FEATURE_NAMES.index("TERMINAL_ID_FRAUD_RUN")]
    assert run.max() >= 9, "the history should exercise the compromised terminal's fraud run"

    # replaying a stretch (as after a crash) gets the first features back and changes nothing:
    # every window holds each transaction once, and new transactions of every card and
    # terminal see in Redis what the twin, never replayed, holds
    stretch = events[-300:]
    again = await online.enrich(stretch)
    np.testing.assert_allclose(again.features, np.vstack(got)[-300:], rtol=0, atol=1e-9)
    by_customer = Counter(e.customer_id for e in events)
    # a fraud label records its transaction at the terminal too (one never seen: once more)
    recorded = {(e.transaction_id, e.terminal_id) for e in events}
    recorded |= {(m.transaction_id, m.terminal_id) for m in marks[:applied]}
    by_terminal = Counter(terminal for _, terminal in recorded)
    for customer, n in by_customer.items():
        assert await redis.zcard(customer_window_key(customer)) == n, customer
    for terminal, n in by_terminal.items():
        assert await redis.zcard(terminal_keys(terminal)[0]) == n, terminal
    end = events[-1].ts_ms
    probes = [
        FeatureEvent(f"probe-{c}", c, t, end + 1000, 25.0, False, False)
        for c, t in zip(sorted(by_customer), sorted(by_terminal) * 3, strict=False)
    ]
    np.testing.assert_array_equal(
        (await online.enrich(probes)).features, (await offline.enrich(probes)).features
    )


async def _enriched_alike(
    online: RedisFeatureStore,
    offline: InMemoryFeatureStore,
    events: list[FeatureEvent],
    marks: list[FraudMark] | None = None,
    step: int = 100,
) -> tuple[np.ndarray, list[FraudMark]]:
    """Feed both stores ``events`` in batches of ``step``, each batch after the ``marks``
    reported by its last transaction, and hold every batch's features equal to the bit (NaN
    equals NaN here). Returns the features, row for row with ``events``, and the marks applied."""
    marks = marks or []
    applied, got = 0, []
    for k in range(0, len(events), step):
        batch = events[k : k + step]
        due = [m for m in marks[applied:] if m.reported_ms <= batch[-1].ts_ms]
        applied += len(due)
        await online.apply_labels(due)
        await offline.apply_labels(due)
        a, b = await online.enrich(batch), await offline.enrich(batch)
        np.testing.assert_array_equal(a.features, b.features)
        got.append(a.features)
    return np.vstack(got), marks[:applied]


#: amounts the contract accepts that ordinary histories never hold: zero, the smallest and
#: largest doubles, past float32 (what the model reads), and sums that overflow to infinity
EXTREME_AMOUNTS = (0.0, 5e-324, 1e-300, 0.01, 220.01, 1e15, 1e38, 1e39, 1e200, sys.float_info.max)


async def test_the_stores_agree_on_amounts_at_the_ends_of_the_doubles(redis: RedisClient) -> None:
    """Lua's arithmetic and NumPy's are both IEEE doubles, but the windows' sums, means,
    medians and ratios go through different code: on amounts at the ends of the range (sums
    that overflow, medians of zeros, amounts without a rate among them) they must still give
    the same bits, infinities and NaNs included."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    rng = random.Random(7)
    events = sorted(
        (
            FeatureEvent(
                f"x{i}", rng.choice(["c1", "c2", "c3", "c4"]), rng.choice(["t1", "t2", "t3"]),
                T0 + rng.randint(0, 40 * DAY_MS),
                rng.choice(EXTREME_AMOUNTS) if rng.random() < 0.5 else round(rng.uniform(1, 99), 2),
                False, False, rng.random() > 0.1,
            )
            for i in range(600)
        ),
        key=lambda e: (e.ts_ms, e.transaction_id),
    )  # fmt: skip
    features, _ = await _enriched_alike(online, offline, events)
    assert np.isposinf(features).any(), "the history should overflow a sum or a ratio"
    assert np.isnan(features).any(), "the history should hold amounts without a rate"


async def test_a_card_past_the_read_bound_is_counted_exactly_and_alike(redis: RedisClient) -> None:
    """A card that many transactions share is read only as far as its latest
    ``window_read_max`` (40 here): both stores count every transaction of its windows, count
    the unread ones' amounts at the mean of what was read, and give the same bits, ties at one
    instant and amounts without a rate included; the other cards are not affected."""
    config = StoreConfig(window_read_max=40)
    online, offline = RedisFeatureStore(redis, config=config), InMemoryFeatureStore(config)
    rng = random.Random(11)
    events = [
        FeatureEvent(f"hot{i}", "c-hot", f"t{i % 5}", T0 + rng.randint(0, 35 * DAY_MS),
                     round(rng.uniform(1, 99), 2), False, False, rng.random() > 0.05)
        for i in range(600)
    ] + [
        FeatureEvent(f"tie{i}", "c-hot", "t1", T0 + 20 * DAY_MS, 10.0 + i, False, False)
        for i in range(50)
    ] + [
        FeatureEvent(f"calm{i}", f"c{i % 7}", "t1", T0 + rng.randint(0, 35 * DAY_MS),
                     round(rng.uniform(1, 99), 2), False, False)
        for i in range(200)
    ]  # fmt: skip
    events.sort(key=lambda e: (e.ts_ms, e.transaction_id))
    features, _ = await _enriched_alike(online, offline, events)
    count_30 = FEATURE_NAMES.index("CUSTOMER_ID_NB_TX_30DAY_WINDOW")
    for row, e in enumerate(events):  # exact: every earlier transaction of the window, and this
        held = sum(1 for o in events if o.customer_id == e.customer_id
                   and e.ts_ms - 30 * DAY_MS < o.ts_ms < e.ts_ms)  # fmt: skip
        assert features[row, count_30] == held + 1, e
    assert features[:, count_30].max() > 400, "the hot card should pass the bound ten times over"


async def test_a_terminal_past_the_read_bound_counts_its_frauds_alike(redis: RedisClient) -> None:
    """A terminal with more known frauds in its widest window than ``window_read_max`` (40
    here) is read only as far as its latest 40: the older ones count as reported. Both stores
    give the same counts and fraud run, with late reports among the read ones; where every
    fraud was reported within the hour, the counts are exact."""
    config = StoreConfig(window_read_max=40)
    online, offline = RedisFeatureStore(redis, config=config), InMemoryFeatureStore(config)
    rng = random.Random(5)
    events = sorted(
        (
            FeatureEvent(f"{terminal}-{i}", f"c{i % 30}", terminal,
                         T0 + rng.randint(0, 45 * DAY_MS), 20.0, False, False)
            for terminal in ("t-early", "t-late")
            for i in range(400)
        ),
        key=lambda e: (e.ts_ms, e.transaction_id),
    )  # fmt: skip
    late = {e.transaction_id for e in events if e.terminal_id == "t-late" and rng.random() < 0.3}
    marks = sorted(
        (
            FraudMark(e.transaction_id, e.terminal_id, e.ts_ms,
                      e.ts_ms + (20 * DAY_MS if e.transaction_id in late else 3_600_000), True)
            for e in events
            if rng.random() < 0.8
        ),
        key=lambda m: m.reported_ms,
    )  # fmt: skip
    features, applied = await _enriched_alike(online, offline, events, marks, step=50)
    risk = FEATURE_NAMES.index("TERMINAL_ID_RISK_30DAY_WINDOW")
    count = FEATURE_NAMES.index("TERMINAL_ID_NB_TX_30DAY_WINDOW")
    fraud_at = {m.transaction_id: m for m in applied}
    for row, e in enumerate(events):
        if e.terminal_id != "t-early":
            continue
        hi = e.ts_ms - 7 * DAY_MS
        frauds = sum(
            1 for m in fraud_at.values()
            if m.terminal_id == "t-early" and hi - 30 * DAY_MS < m.tx_ts_ms <= hi
            and m.reported_ms <= e.ts_ms
        )  # fmt: skip
        assert round(features[row, risk] * features[row, count]) == frauds, e
    assert (features[:, risk] * features[:, count]).max() > 100, "past the bound of 40"


async def test_a_redelivered_transaction_gets_its_first_terminal_counts(redis: RedisClient) -> None:
    """Between two deliveries of a transaction, another worker (or a late label) may change
    what its terminal windows hold; the repeat must still be decided on the same features."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    scored = FeatureEvent("tx-b", "c2", "t1", T0 + 10 * DAY_MS, 5.0, False, False)
    # what another partition had not written yet: in tx-b's 7-day window, and a fraud
    late = FeatureEvent("tx-a", "c1", "t1", T0 + 2 * DAY_MS, 5.0, False, False)
    mark = FraudMark("tx-a", "t1", late.ts_ms, T0 + 9 * DAY_MS, True)
    for store in (online, offline):
        first = (await store.enrich([scored])).features
        await store.enrich([late])
        await store.apply_labels([mark])
        again = (await store.enrich([scored])).features
        np.testing.assert_array_equal(again, first)
        # a transaction seen for the first time does see them
        fresh = FeatureEvent("tx-c", "c3", "t1", scored.ts_ms, 5.0, False, False)
        counts = (await store.enrich([fresh])).features
        terminal = [i for i, name in enumerate(FEATURE_NAMES) if name.startswith("TERMINAL_")]
        assert (counts[0, terminal] != first[0, terminal]).any(), store


async def test_terminal_counts_an_older_worker_stored_are_computed_again(
    redis: RedisClient,
) -> None:
    """Workers before the fraud run stored six counts per transaction; a repeat of one of those
    is answered in full, as a fresh transaction would be, and the full answer is kept."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    scored = FeatureEvent("tx-b", "c2", "t1", T0 + 10 * DAY_MS, 5.0, False, False)
    key = terminal_stats_key("t1")
    await redis.hset(key, "tx-b", struct.pack("<6d", *range(6)))
    got = (await online.enrich([scored])).features
    np.testing.assert_array_equal(got, (await offline.enrich([scored])).features)
    assert len(await redis.hget(key, "tx-b")) == 8 * TERMINAL_STATS_LEN


async def test_stats_a_newer_worker_stored_are_answered_in_this_version_s_part(
    redis: RedisClient,
) -> None:
    """Mixed versions during an upgrade: a newer worker appends fields to both scripts' stats.
    A repeat it decided first, delivered again to this version, is answered with this
    version's part of them (an answer of the wrong length would fail the batch), and what the
    newer worker stored is kept for it."""
    online = RedisFeatureStore(redis)
    scored = FeatureEvent("tx-b", "c2", "t1", T0 + 10 * DAY_MS, 5.0, False, False)
    fresh = (await online.enrich([scored])).features
    keys = customer_stats_key("c2"), terminal_stats_key("t1")
    newer = {}
    for key in keys:
        newer[key] = await redis.hget(key, "tx-b") + struct.pack("<2d", 42.0, 43.0)
        await redis.hset(key, "tx-b", newer[key])
    np.testing.assert_array_equal((await online.enrich([scored])).features, fresh)
    for key in keys:
        assert await redis.hget(key, "tx-b") == newer[key]


async def test_a_redelivered_transaction_gets_its_first_customer_stats(redis: RedisClient) -> None:
    """A fast backlog can carry a card's later transactions more than the retention margin past
    a transaction before that one is re-delivered; their trimming then removes what its 30-day
    window held, and the repeat must still be decided on the same features."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    early = FeatureEvent("tx-a", "c1", "t1", T0, 5.0, False, False)
    scored = FeatureEvent("tx-b", "c1", "t2", T0 + 29 * DAY_MS, 7.0, False, False)
    # its retention horizon passes tx-a, which is inside tx-b's window
    later = FeatureEvent("tx-c", "c1", "t3", T0 + (RETENTION_DAYS + 1) * DAY_MS, 9.0, False, False)
    for store in (online, offline):
        await store.enrich([early])
        first = (await store.enrich([scored])).features
        await store.enrich([later])
        again = (await store.enrich([scored])).features
        np.testing.assert_array_equal(again, first)
    trimmed = await redis.zrange(customer_window_key("c1"), 0, -1)
    assert [m[MEMBER_ID_OFFSET:] for m in trimmed] == [b"tx-b", b"tx-c"]
    # a transaction seen for the first time, a millisecond after tx-b, no longer sees tx-a
    fresh = FeatureEvent("tx-d", "c1", "t4", scored.ts_ms + 1, 7.0, False, False)
    counts = (await online.enrich([fresh])).features
    month = FEATURE_NAMES.index("CUSTOMER_ID_NB_TX_30DAY_WINDOW")
    assert counts[0, month] == 2  # tx-b and tx-d; 3 had tx-a been kept
    assert first[0, month] == 2  # tx-a and tx-b


async def test_a_repeat_converted_at_another_rate_keeps_its_first_amount(
    redis: RedisClient,
) -> None:
    """A worker restarted with a new exchange rate converts a re-delivered transaction to
    another amount, or converts one its currency had no rate for before: the repeat is decided
    on the amount its card's window recorded, and on whether that was converted, and the
    window keeps the transaction once."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    early = FeatureEvent("tx-a", "c1", "t1", T0, 40.0, False, False)
    scored = FeatureEvent("tx-b", "c1", "t2", T0 + DAY_MS, 50.0, False, False)
    repeat = FeatureEvent("tx-b", "c1", "t2", T0 + DAY_MS, 60.0, False, False)  # a new rate
    unrated = FeatureEvent("tx-c", "c1", "t2", T0 + 2 * DAY_MS, 7.0, False, False, False)
    rated = FeatureEvent("tx-c", "c1", "t2", T0 + 2 * DAY_MS, 0.04, False, False)  # a rate now
    for store in (online, offline):
        await store.enrich([early])
        first = (await store.enrich([scored])).features
        again = await store.enrich([repeat])
        np.testing.assert_array_equal(again.features, first)
        assert first[0, FEATURE_NAMES.index("TX_AMOUNT")] == 50.0
        assert again.converted.tolist() == [True]
        without = await store.enrich([unrated])
        assert without.converted.tolist() == [False]
        later = await store.enrich([rated])
        np.testing.assert_array_equal(later.features, without.features)
        assert later.converted.tolist() == [False]
    assert await redis.zcard(customer_window_key("c1")) == 3


def _printed(e: FeatureEvent, currency: str = "EUR") -> FeatureEvent:
    """``e`` with its fingerprint, as the worker sends it."""
    return replace(e, fingerprint=fingerprint(e.ts_ms, e.customer_id, e.terminal_id, e.amount,
                                              currency))  # fmt: skip


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "one batch"])
async def test_an_id_reused_for_another_transaction_is_refused_alike(
    redis: RedisClient, batched: bool
) -> None:
    """Another transaction under an id a card or terminal already holds is refused by both
    stores, one at a time or within one batch; what the entity that had not seen the id
    recorded of it is taken back; a re-delivery is still answered its first stats; and a
    reuse at another card and another terminal (which no entity can see) is recorded."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    first = FeatureEvent("tx-1", "c1", "t1", T0, 40.0, False, False)
    cases = [
        first,
        replace(first, amount=41.0),  # at the same card and terminal: refused by both
        replace(first, ts_ms=T0 + 1000, terminal_id="t2"),  # refused by c1, taken back at t2
        replace(first, customer_id="c2"),  # refused by t1, taken back at c2
        first,  # a re-delivery
        replace(first, customer_id="c3", terminal_id="t3"),  # seen by neither: recorded
        replace(first, amount=40.0 + 1e-12),  # close is not the same
    ]
    printed = [_printed(e) for e in cases]
    probes = [
        FeatureEvent(f"p-{card}-{term}", card, term, T0 + 8 * DAY_MS, 1.0, False, False)
        for card, term in (("c1", "t9"), ("c2", "t8"), ("c7", "t1"), ("c6", "t2"), ("c3", "t3"))
    ]
    answers = []
    for store in (online, offline):
        if batched:
            got = await store.enrich(printed)
            features, reused = got.features, got.reused
        else:
            one = [await store.enrich([e]) for e in printed]
            features = np.vstack([g.features for g in one])
            reused = [r for g in one for r in g.reused]
        assert reused == [False, True, True, True, False, False, True]
        month = FEATURE_NAMES.index("CUSTOMER_ID_NB_TX_30DAY_WINDOW")
        terminal_month = FEATURE_NAMES.index("TERMINAL_ID_NB_TX_30DAY_WINDOW")
        assert np.isnan(features[[1, 2, 3, 6]][:, [month, terminal_month]]).all()  # unknown
        np.testing.assert_array_equal(features[4], features[0])
        probed = (await store.enrich(probes)).features
        answers.append((features, probed))
        # c1 and t1 hold the first; c2 and t2 nothing; c3 and t3 the unseen reuse
        assert probed[:, month].tolist() == [2, 1, 1, 1, 2]
        assert probed[:, terminal_month].tolist() == [0, 0, 1, 0, 1]
    np.testing.assert_array_equal(answers[0][0], answers[1][0])
    np.testing.assert_array_equal(answers[0][1], answers[1][1])
    assert await redis.hkeys(customer_stats_key("c2")) == [b"p-c2-t8"]
    assert await redis.zcard(terminal_keys("t2")[0]) == 1  # the probe
    assert await redis.hkeys(terminal_stats_key("t2")) == [b"p-c6-t2"]


async def test_a_reuse_recorded_by_a_worker_that_died_before_taking_it_back_is_taken_back(
    redis: RedisClient,
) -> None:
    """A worker that dies between the round trip that refused a reuse and the one that takes
    it back leaves it in the windows of the entity that had not seen the id; its re-delivery
    is refused again and taken back then."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    first = _printed(FeatureEvent("tx-1", "c1", "t1", T0, 40.0, False, False))
    reuse = _printed(replace(first, customer_id="c2"))
    probe = FeatureEvent("p-c2", "c2", "t9", T0 + DAY_MS, 1.0, False, False)
    month = FEATURE_NAMES.index("CUSTOMER_ID_NB_TX_30DAY_WINDOW")
    for store in (online, offline):
        await store.enrich([first])
        assert (await store.raw_stats([reuse])).reused == [True]  # then the worker dies
        assert (await store.enrich([reuse])).reused == [True]  # the re-delivery
        assert (await store.enrich([probe])).features[0, month] == 1  # itself only


async def test_a_reuse_at_a_terminal_that_knew_the_id_from_a_fraud_label_alike(
    redis: RedisClient,
) -> None:
    """A fraud label records its transaction at its terminal, at the label's time; a reuse of
    that id there, refused by its card, is taken back from the terminal's stats, and the
    label's record stays, in both stores."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    label = FraudMark("tx-x", "t2", T0 - DAY_MS, T0, True)
    first = _printed(FeatureEvent("tx-x", "c1", "t1", T0, 40.0, False, False))
    reuse = _printed(replace(first, ts_ms=T0 + 1000, terminal_id="t2"))
    probe = FeatureEvent("p-t2", "c5", "t2", T0 + 8 * DAY_MS, 1.0, False, False)
    answers = []
    for store in (online, offline):
        await store.apply_labels([label])
        await store.enrich([first])
        assert (await store.enrich([reuse])).reused == [True]
        answers.append((await store.enrich([probe])).features)
    np.testing.assert_array_equal(answers[0], answers[1])
    assert answers[0][0, FEATURE_NAMES.index("TERMINAL_ID_NB_TX_30DAY_WINDOW")] == 1  # the label's
    assert await redis.hkeys(terminal_stats_key("t2")) == [b"p-t2"]


async def test_terminal_counts_recomputed_over_an_older_workers_keep_no_fingerprint(
    redis: RedisClient,
) -> None:
    """Counts an older worker stored shorter are computed again by whichever delivery comes
    first; if that is another transaction under the id (unseen by its card), its fingerprint
    must not be kept, or the id's own transaction would be refused when it is re-delivered."""
    online = RedisFeatureStore(redis)
    first = _printed(FeatureEvent("tx-y", "c1", "t5", T0, 40.0, False, False))
    await online.enrich([first])
    key = terminal_stats_key("t5")
    await redis.hset(key, "tx-y", (await redis.hget(key, "tx-y"))[: 8 * (TERMINAL_STATS_LEN - 1)])
    other = _printed(replace(first, customer_id="c9", amount=50.0))  # unseen by c9, and by t5 now
    assert (await online.enrich([other])).reused == [False]
    assert len(await redis.hget(key, "tx-y")) == 8 * TERMINAL_STATS_LEN  # no fingerprint kept
    assert (await online.enrich([first])).reused == [False]  # its own re-delivery


async def test_stats_stored_without_a_fingerprint_are_answered_unchecked(
    redis: RedisClient,
) -> None:
    """A transaction a worker from before fingerprints recorded (or one recorded without, as
    training sets are) cannot be told from another under its id: its stats are answered to
    both, as before; one recorded with a fingerprint is checked only against another."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    bare = FeatureEvent("tx-bare", "c4", "t4", T0, 10.0, False, False)
    printed = FeatureEvent("tx-printed", "c4", "t4", T0 + 1000, 10.0, False, False)
    for store in (online, offline):
        first = await store.enrich([bare, _printed(printed)])
        again = await store.enrich([_printed(replace(bare, amount=11.0)),
                                    replace(printed, amount=11.0)])  # fmt: skip
        assert first.reused == again.reused == [False, False]
        np.testing.assert_array_equal(again.features, first.features)
    assert len(await redis.hget(customer_stats_key("c4"), "tx-bare")) == 8 * CUSTOMER_STATS_LEN
    assert len(await redis.hget(terminal_stats_key("t4"), "tx-printed")) == (
        8 * TERMINAL_STATS_LEN + FINGERPRINT_BYTES
    )


async def test_customer_stats_an_older_worker_stored_get_the_amount_of_the_repeat(
    redis: RedisClient,
) -> None:
    """Older workers stored the stats without whether the amount was converted, and before
    that without the amount too; a repeat of one of those is answered with them and this
    delivery's amount and flag, and that answer is kept."""
    online = RedisFeatureStore(redis)
    key = customer_stats_key("c2")
    for i, (older, converted) in enumerate([(8, True), (16, True), (8, False), (16, False)]):
        scored = FeatureEvent(f"tx-{i}", "c2", "t1", T0 + i * DAY_MS, 5.0 + i, False, False,
                              converted)  # fmt: skip
        fresh = await online.enrich([scored])  # what a first delivery is answered
        assert fresh.converted.tolist() == [converted]
        full = await redis.hget(key, scored.transaction_id)
        assert len(full) == 8 * CUSTOMER_STATS_LEN
        await redis.hset(key, scored.transaction_id, full[:-older])  # as an older worker left it
        repeat = await online.enrich([scored])
        np.testing.assert_array_equal(repeat.features, fresh.features)
        assert repeat.converted.tolist() == [converted]
        assert await redis.hget(key, scored.transaction_id) == full
        later = FeatureEvent(scored.transaction_id, "c2", "t1", scored.ts_ms, 70.0, False, False,
                             not converted)  # fmt: skip
        again = await online.enrich([later])
        np.testing.assert_array_equal(again.features, fresh.features)
        assert again.converted.tolist() == [converted]


async def test_state_is_trimmed_and_expires(redis: RedisClient) -> None:
    store = RedisFeatureStore(redis)
    old = FeatureEvent("old", "cx", "tx", T0, 1.0, False, False)
    new = FeatureEvent("new", "cx", "tx", T0 + 60 * DAY_MS, 1.0, False, False)
    await store.enrich([old])
    await store.enrich([new])
    zkey, stats = customer_window_key("cx"), customer_stats_key("cx")
    assert await redis.zrange(zkey, 0, -1) == [customer_member("new", new.ts_ms, 1.0)]
    assert await redis.hkeys(stats) == [b"new"]
    assert 0 < await redis.ttl(zkey) <= 44 * 86_400
    assert 0 < await redis.ttl(stats) <= 44 * 86_400


async def test_the_first_verdict_pinned_for_a_transaction_stays_alike(redis: RedisClient) -> None:
    """pin.lua and the twin: the first verdict pinned for an id is kept and answered to every
    later pin of it (a repeat, or a second worker deciding it at once), per card, with its
    reasons, and only for a transaction the card's window holds. On Redis, pins expire with
    the card's keys and are trimmed with its window."""
    online, offline = RedisFeatureStore(redis), InMemoryFeatureStore()
    a = FeatureEvent("tx-1", "c1", "t1", T0, 40.0, False, False)
    b = replace(a, transaction_id="tx-2")
    elsewhere = replace(a, customer_id="c2")  # another card's pins are its own
    first_a, first_b = (b"head a", b""), (b"head b", b"reasons b")
    for store in (online, offline):
        await store.enrich([a, b, elsewhere])
        assert await store.pin(pin_keys([a, b]), [first_a, first_b]) == [None, None]
        again = [(b"again", b"why"), (b"and again", b""), (b"c2's", b"")]
        assert await store.pin(pin_keys([a, a, elsewhere]), again) == [first_a, first_a, None]
        assert await store.pin(pin_keys([b]), [(b"later b", b"")]) == [first_b]
    pins, why = customer_pins_keys("c1")
    assert await redis.hgetall(pins) == {b"tx-1": b"head a", b"tx-2": b"head b"}
    assert await redis.hgetall(why) == {b"tx-2": b"reasons b"}  # none kept for no reasons
    assert 0 < await redis.ttl(pins) <= 44 * 86_400
    assert 0 < await redis.ttl(why) <= 44 * 86_400
    # only a transaction the card's window holds is pinned (none of a card it never saw);
    # an unreadable pin is replaced on request, its reasons with it
    unknown = [("c1", "never seen"), ("c9", "tx-9")]
    for store in (online, offline):
        assert await store.pin(unknown, [(b"x", b"")] * 2) == [None, None]
        assert await store.pin(pin_keys([b]), [(b"new b", b"")], replace=True) == [None]
        assert await store.pin(pin_keys([b]), [(b"later", b"")]) == [(b"new b", b"")]
    assert sorted(await redis.hkeys(pins)) == [b"tx-1", b"tx-2"]
    assert await redis.hgetall(why) == {}  # b's reasons went with it, and the hash
    assert await redis.exists(customer_pins_keys("c9")[0]) == 0
    # past the retention, the card's next transaction trims the ids and their pins
    late = replace(a, transaction_id="tx-3", ts_ms=T0 + (RETENTION_DAYS + 1) * DAY_MS)
    await online.enrich([late])
    await online.pin(pin_keys([late]), [(b"late", b"")])
    assert await redis.hgetall(pins) == {b"tx-3": b"late"}
    assert await redis.exists(why) == 0


async def test_windows_of_more_members_than_lua_unpacks_at_once(redis: RedisClient) -> None:
    """Redis's Lua hands at most about 8,000 values to one command (``unpack``): a busy
    terminal's first transaction after a quiet spell trims more than that in one call, and a
    terminal can hold more known frauds than that in its widest window. The scripts work in
    slices: the calls succeed, count every one of them and trim every one."""
    many = 9_000
    card, (tx_key, fraud_key, rep_key) = customer_window_key("c-busy"), terminal_keys("t-busy")
    ids = [f"old{i:05d}" for i in range(many)]
    # a card and a terminal with `many` transactions on day 0, all of them known frauds; each
    # with the stats a first delivery leaves
    await redis.zadd(card, {customer_member(i, T0, 1.0): T0 for i in ids})
    await redis.hset(customer_stats_key("c-busy"), mapping={i: b"x" for i in ids})
    for key in customer_pins_keys("c-busy"):
        await redis.hset(key, mapping={i: b"x" for i in ids})
    await redis.zadd(tx_key, dict.fromkeys(ids, T0))
    await redis.zadd(fraud_key, dict.fromkeys(ids, T0))
    await redis.hset(rep_key, mapping=dict.fromkeys(ids, T0 + 1))
    await redis.hset(terminal_stats_key("t-busy"), mapping={i: b"x" for i in ids})
    store = RedisFeatureStore(redis)
    # one delay and a day later, the terminal's windows hold every one of those frauds
    known = FeatureEvent("known", "c-other", "t-busy", T0 + 8 * DAY_MS, 1.0, False, False)
    x = (await store.enrich([known])).features[0]
    assert x[FEATURE_NAMES.index("TERMINAL_ID_NB_TX_30DAY_WINDOW")] == many
    assert x[FEATURE_NAMES.index("TERMINAL_ID_RISK_30DAY_WINDOW")] == 1.0
    # past the retention, the card's and the terminal's next transaction trims all of them
    late = T0 + (RETENTION_DAYS + 1) * DAY_MS
    await store.enrich([FeatureEvent("new", "c-busy", "t-busy", late, 1.0, False, False)])
    assert await redis.zrange(card, 0, -1) == [customer_member("new", late, 1.0)]
    assert await redis.hkeys(customer_stats_key("c-busy")) == [b"new"]
    for key in customer_pins_keys("c-busy"):
        assert await redis.hlen(key) == 0  # "new" is not decided here
    assert await redis.zrange(tx_key, 0, -1) == [b"known", b"new"]
    assert await redis.zcard(fraud_key) == 0 and await redis.hlen(rep_key) == 0
    assert sorted(await redis.hkeys(terminal_stats_key("t-busy"))) == [b"known", b"new"]


async def test_store_recovers_when_redis_loses_its_scripts(redis: RedisClient) -> None:
    store = RedisFeatureStore(redis)
    first = FeatureEvent("a", "cy", "ty", T0, 5.0, False, False)
    await store.enrich([first])
    await redis.script_flush()  # as after a Redis restart
    second = FeatureEvent("b", "cy", "ty", T0 + 1000, 7.0, False, False)
    x = (await store.enrich([second])).features[0]
    assert x[3] == 2  # both counted once: the failed call did nothing, the retry did it
    await redis.script_flush()
    await store.apply_labels([FraudMark("a", "ty", T0, T0 + 1, True)])
    assert await redis.zcard(terminal_keys("ty")[1]) == 1  # the label script was loaded again


@pytest.mark.parametrize("where", ["server", "cluster"])
async def test_a_batch_held_past_its_deadline_is_sent_again_and_counted_once(
    request: pytest.FixtureRequest, stack: Settings, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's client sets no timer per reply; the store puts one deadline on a batch.
    A server that holds every command (``CLIENT PAUSE``; every node of a cluster) for longer:
    the batch is cancelled at its deadline, sent again on a fresh connection until the server
    answers, and counted once (the twin, given the batch once, computes the same features)."""
    if where == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        client: RedisClient = connect(cluster.url(), cluster=True, socket_timeout=None)
        nodes = [cluster.node(i) for i in range(len(cluster.ports))]
    else:
        url = stack.redis_url.rsplit("/", 1)[0] + "/15"
        client = connect(url, socket_timeout=None)
        nodes = [SyncRedis.from_url(url)]
    await client.flushdb()
    try:
        online = RedisFeatureStore(client, retry_s=20, timeout_s=0.3)
        offline = InMemoryFeatureStore()
        events, _ = history_events(5)
        first, rest = events[:300], events[300:600]
        await online.enrich(first)
        await offline.enrich(first)
        for node in nodes:
            node.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        with caplog.at_level(logging.WARNING):
            got = await online.enrich(rest)
        want = await offline.enrich(rest)
        np.testing.assert_array_equal(got.features, want.features)
        assert "Redis failed (TimeoutError: the batch's Redis calls took more than 0.3 s)" in (
            caplog.text
        )
        assert "Redis answered again after" in caplog.text
        c1 = sum(1 for e in events[:600] if e.customer_id == "c1")
        assert await client.zcard(customer_window_key("c1")) == c1
    finally:
        await client.flushdb()
        await client.aclose()
        for node in nodes:
            node.close()
