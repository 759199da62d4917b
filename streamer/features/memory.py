"""The in-memory twin of the Redis store, for building training sets and for unit tests.

It implements the same window semantics as the Lua scripts (``customer.lua``, ``terminal.lua``,
``label.lua``), down to the order of floating-point additions, and a parity test holds the two to
equal features. It is tuned for history replayed in time order — the training case — where
inserts land at the end of each entity's list.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import add

import numpy as np

from streamer.features.definitions import (
    CUSTOMER_STATS_LEN,
    DAY_MS,
    TERMINAL_STATS_LEN,
    FeatureEvent,
    FraudMark,
    build_matrix,
)
from streamer.features.keys import (
    MEMBER_ID_OFFSET,
    BlocklistKind,
    customer_member,
    member_amount,
)
from streamer.features.store import FeatureStore, PinKey, Pinned, RawStats, StoreConfig

__all__ = ["InMemoryFeatureStore"]


@dataclass(slots=True)
class _Customer:
    #: (ts, member), sorted as the card's Redis zset is: by time, then by member bytes
    keys: list[tuple[int, bytes]] = field(default_factory=list)
    #: amounts, in the order of keys, negated where the currency had no rate, as in the members
    values: list[float] = field(default_factory=list)
    amounts: dict[str, float] = field(default_factory=dict)  # id -> its value
    first: dict[str, list[float]] = field(default_factory=dict)  # id -> stats first computed
    prints: dict[str, bytes] = field(default_factory=dict)  # id -> its fingerprint
    pins: dict[str, Pinned] = field(default_factory=dict)  # id -> its verdict (pin.lua)
    unread: int = 0  # how many of values are negated: while none is, the windows are plain sums

    def add(self, ts: int, tx_id: str, amount: float, converted: bool) -> None:
        if tx_id in self.amounts:
            return
        value = member_amount(amount, converted)
        self.amounts[tx_id] = value
        self.unread += value < 0
        key = (ts, customer_member(tx_id, ts, amount, converted))
        if not self.keys or self.keys[-1] < key:
            self.keys.append(key)
            self.values.append(value)
        else:
            i = bisect_left(self.keys, key)
            self.keys.insert(i, key)
            self.values.insert(i, value)

    def trim(self, horizon: int) -> None:
        cut = bisect_left(self.keys, (horizon, b""))
        if cut > 256 or (cut and cut * 2 > len(self.keys)):
            for _, member in self.keys[:cut]:
                tx_id = member[MEMBER_ID_OFFSET:].decode()
                self.unread -= self.amounts.pop(tx_id) < 0
                self.first.pop(tx_id, None)
                self.prints.pop(tx_id, None)
                self.pins.pop(tx_id, None)
            del self.keys[:cut]
            del self.values[:cut]

    def forget(self, ts: int, tx_id: str, fingerprint: bytes) -> None:
        """forget.lua: take back a transaction held with this fingerprint."""
        if not fingerprint or self.prints.get(tx_id) != fingerprint:
            return
        lo, hi = bisect_left(self.keys, (ts, b"")), bisect_left(self.keys, (ts + 1, b""))
        for i in range(lo, hi):
            if self.keys[i][1][MEMBER_ID_OFFSET:] == tx_id.encode():
                del self.keys[i]
                del self.values[i]
                break
        self.unread -= self.amounts.pop(tx_id) < 0
        del self.first[tx_id], self.prints[tx_id]


def _window_sum(values: Sequence[float], own: float, count: int) -> float:
    """A window of ``count`` transactions' amount sum as customer.lua settles it when some
    amount could not be read (negated), or was not (past ``WINDOW_READ_MAX``): the readable
    ones of ``values``, then ``own``, summed in order and scaled to the count; unknown (NaN)
    if none is readable."""
    readable, known = 0.0, 0
    for a in (*values, own):
        if a >= 0:
            readable, known = readable + a, known + 1
    if known == count:
        return readable
    return readable / known * count if known else math.nan


@dataclass(slots=True)
class _Terminal:
    times: list[tuple[int, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    frauds: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (ts, reported)
    first: dict[str, list[float]] = field(default_factory=dict)  # id -> counts first computed
    prints: dict[str, bytes] = field(default_factory=dict)  # id -> its fingerprint

    def add(self, ts: int, tx_id: str) -> None:
        if tx_id in self.seen:
            return
        self.seen.add(tx_id)
        key = (ts, tx_id)
        if not self.times or self.times[-1] < key:
            self.times.append(key)
        else:
            insort(self.times, key)

    def count(self, lo: int, hi: int) -> int:
        """Transactions with lo < ts <= hi."""
        return bisect_right(self.times, (hi, "\U0010ffff")) - bisect_right(
            self.times, (lo, "\U0010ffff")
        )

    def fraud_run(self, lo: int, hi: int, known: set[str]) -> int:
        """Frauds of ``known`` in a row among the latest transactions with lo < ts <= hi,
        counted back from the latest in (time, id) order, as terminal.lua walks the zset."""
        run = 0
        for i in range(bisect_right(self.times, (hi, "\U0010ffff")) - 1, -1, -1):
            ts, tx_id = self.times[i]
            if ts <= lo or tx_id not in known:
                break
            run += 1
        return run

    def trim(self, horizon: int) -> None:
        cut = bisect_left(self.times, (horizon, ""))
        if cut > 256 or (cut and cut * 2 > len(self.times)):
            for _, tx_id in self.times[:cut]:
                self.seen.discard(tx_id)
                self.first.pop(tx_id, None)
                self.prints.pop(tx_id, None)
            del self.times[:cut]
            for tx_id in [k for k, (ts, _) in self.frauds.items() if ts < horizon]:
                del self.frauds[tx_id]


    def forget(self, ts: int, tx_id: str, fingerprint: bytes) -> None:
        """forget.lua: take back a transaction held with this fingerprint."""
        if not fingerprint or self.prints.get(tx_id) != fingerprint:
            return
        i = bisect_left(self.times, (ts, tx_id))
        if i < len(self.times) and self.times[i] == (ts, tx_id):
            del self.times[i]
            self.seen.discard(tx_id)
        # else a fraud label recorded the id at its own time first, and it stays there
        del self.first[tx_id], self.prints[tx_id]


def _reused(prints: dict[str, bytes], tx_id: str, fingerprint: bytes) -> bool:
    """As the scripts judge it: the id is held with another fingerprint (either one empty: not
    checked)."""
    held = prints.get(tx_id)
    return bool(fingerprint) and bool(held) and held != fingerprint


def _median(values: Sequence[float]) -> float:
    """As customer.lua computes it: the middle amount, or the mean of the middle two; 0 if none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class InMemoryFeatureStore(FeatureStore):
    """Same answers as :class:`RedisFeatureStore`, held in Python dictionaries."""

    def __init__(self, config: StoreConfig | None = None) -> None:
        self._config = config or StoreConfig()
        self._customers: dict[str, _Customer] = {}
        self._terminals: dict[str, _Terminal] = {}
        self._blocked: dict[str, set[str]] = {"customer": set(), "terminal": set()}

    def _terminal(self, terminal_id: str) -> _Terminal:
        term = self._terminals.get(terminal_id)
        if term is None:
            term = self._terminals[terminal_id] = _Terminal()
        return term

    def customer_stats(self, e: FeatureEvent) -> list[float] | None:
        """The card's stats for ``e`` (customer.lua); None if its id stands for another."""
        cfg = self._config
        cust = self._customers.get(e.customer_id)
        if cust is None:
            cust = self._customers[e.customer_id] = _Customer()
        if _reused(cust.prints, e.transaction_id, e.fingerprint):
            return None
        first = cust.first.get(e.transaction_id)
        if first is not None:  # a re-delivery: the stats it was first decided on (customer.lua)
            return list(first)
        cust.add(e.ts_ms, e.transaction_id, float(e.amount), e.converted)
        cust.trim(e.ts_ms - cfg.retention_days * DAY_MS)
        t = e.ts_ms
        keys, values = cust.keys, cust.values
        mine = cust.amounts[e.transaction_id]
        own = -mine if mine < 0 else mine
        plain = cust.unread == 0
        # (t - w, t) plus this transaction: other ties are left out, as in customer.lua
        end = bisect_left(keys, (t, b""))
        widest_start = bisect_left(keys, (t - cfg.windows_ms[-1] + 1, b""))
        # what customer.lua reads: the latest window_read_max of (t - widest, t], ties included
        read = max(widest_start, bisect_left(keys, (t + 1, b"")) - cfg.window_read_max)
        out: list[float] = []
        for w in cfg.windows_ms:
            start = bisect_left(keys, (t - w + 1, b""))
            count = end - start + 1
            out.append(float(count))
            # summed one by one in (time, member) order, exactly as customer.lua does: the same
            # float rounding, so features match bit for bit, not just to 1e-12 (a model's
            # split threshold can fall between two nearly equal sums)
            if plain and start >= read:
                out.append(reduce(add, values[start:end], 0.0) + own)
            else:
                out.append(_window_sum(values[max(start, read) : end], mine, count))
        prev = keys[end - 1][0] if end > read else -1
        out.append(float(t - prev) if prev >= 0 else -1.0)
        recent = max(read, bisect_left(keys, (t - cfg.high_amount_days * DAY_MS + 1, b"")))
        others, latest = values[read:end], values[recent:end]
        if not plain:  # the readable amounts only
            others = [a for a in others if a >= 0]
            latest = [a for a in latest if a >= 0]
        median = _median(others)
        limit = cfg.high_amount_factor * median
        out.append(median)
        out.append(float(sum(1 for a in latest if a > limit)))
        out.append(own)
        out.append(1.0 if e.converted else 0.0)
        cust.first[e.transaction_id] = out
        if e.fingerprint:  # none in training sets: nothing to keep
            cust.prints[e.transaction_id] = e.fingerprint
        return list(out)

    def terminal_stats(self, e: FeatureEvent) -> list[float] | None:
        """The terminal's counts for ``e`` (terminal.lua); None if its id stands for another."""
        cfg = self._config
        term = self._terminal(e.terminal_id)
        if _reused(term.prints, e.transaction_id, e.fingerprint):
            return None
        first = term.first.get(e.transaction_id)
        if first is not None:  # a re-delivery: the counts it was first decided on (terminal.lua)
            return list(first)
        term.add(e.ts_ms, e.transaction_id)
        term.trim(e.ts_ms - cfg.retention_days * DAY_MS)
        t = e.ts_ms
        hi = t - cfg.delay_days * DAY_MS
        out: list[float] = []
        widest_lo = hi - cfg.windows_ms[-1]
        # what terminal.lua reads: the window's latest window_read_max frauds, in (time, id)
        # order; those reported by t are known, and any older ones count as known unread
        window = sorted((ts, i) for i, (ts, _) in term.frauds.items() if widest_lo < ts <= hi)
        cut = max(0, len(window) - cfg.window_read_max)
        known = {i for _, i in window[cut:] if term.frauds[i][1] <= t}
        for w in cfg.windows_ms:
            lo = hi - w
            out.append(float(term.count(lo, hi)))
            read = sum(1 for ts, i in window[cut:] if ts > lo and i in known)
            out.append(float(read + sum(1 for ts, _ in window[:cut] if ts > lo)))
        out.append(float(term.fraud_run(widest_lo, hi, known)))
        term.first[e.transaction_id] = out
        if e.fingerprint:  # none in training sets: nothing to keep
            term.prints[e.transaction_id] = e.fingerprint
        return list(out)

    async def raw_stats(self, events: Sequence[FeatureEvent]) -> RawStats:
        return self.raw_stats_sync(events)

    def raw_stats_sync(self, events: Sequence[FeatureEvent]) -> RawStats:
        """The synchronous core, used directly when building training sets."""
        cust: list[list[float]] = []
        term: list[list[float]] = []
        reused: list[bool] = []
        # in the pipeline's order: each event's card, then its terminal
        for e in events:
            c, t = self.customer_stats(e), self.terminal_stats(e)
            reused.append(c is None or t is None)
            cust.append([math.nan] * CUSTOMER_STATS_LEN if c is None or t is None else c)
            term.append([math.nan] * TERMINAL_STATS_LEN if c is None or t is None else t)
        bc, bt = self._blocked["customer"], self._blocked["terminal"]
        return RawStats(
            cust,
            term,
            [e.customer_id in bc for e in events],
            [e.terminal_id in bt for e in events],
            reused,
        )

    async def forget(self, events: Sequence[FeatureEvent]) -> None:
        for e in events:
            cust = self._customers.get(e.customer_id)
            if cust is not None:
                cust.forget(e.ts_ms, e.transaction_id, e.fingerprint)
            self._terminal(e.terminal_id).forget(e.ts_ms, e.transaction_id, e.fingerprint)

    async def pin(
        self, keys: Sequence[PinKey], verdicts: Sequence[Pinned], *, replace: bool = False
    ) -> list[Pinned | None]:
        held: list[Pinned | None] = []
        for (card, tx_id), verdict in zip(keys, verdicts, strict=True):
            cust = self._customers.get(card)
            before = None if cust is None else cust.pins.get(tx_id)
            if before is not None and not replace:
                held.append(before)
                continue
            # what the window holds, as pin.lua asks; the twin trims lazily, so a transaction
            # more than 44 days older than its card's latest may still be pinned here
            if cust is not None and tx_id in cust.first:
                cust.pins[tx_id] = verdict
            held.append(None)
        return held

    def enrich_sync(self, events: Sequence[FeatureEvent]) -> np.ndarray:
        """Record events and return their feature rows, without an event loop (training sets:
        ids unchecked, so none is refused)."""
        raw = self.raw_stats_sync(events)
        return build_matrix(events, raw.customer, raw.terminal)

    async def apply_labels(self, marks: Sequence[FraudMark]) -> None:
        self.apply_labels_sync(marks)

    def apply_labels_sync(self, marks: Sequence[FraudMark]) -> None:
        for m in marks:
            term = self._terminal(m.terminal_id)
            if m.is_fraud:
                term.add(m.tx_ts_ms, m.transaction_id)
                known = term.frauds.get(m.transaction_id)  # reported again: the earliest holds
                reported = m.reported_ms if known is None else min(known[1], m.reported_ms)
                term.frauds[m.transaction_id] = (m.tx_ts_ms, reported)
            else:
                term.frauds.pop(m.transaction_id, None)

    async def blocklist_add(self, kind: BlocklistKind, ids: Sequence[str]) -> int:
        before = len(self._blocked[kind])
        self._blocked[kind].update(ids)
        return len(self._blocked[kind]) - before

    async def blocklist_remove(self, kind: BlocklistKind, ids: Sequence[str]) -> int:
        before = len(self._blocked[kind])
        self._blocked[kind].difference_update(ids)
        return before - len(self._blocked[kind])

    async def blocklist_members(self, kind: BlocklistKind) -> list[str]:
        return sorted(self._blocked[kind])
