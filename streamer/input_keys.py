"""Input records keyed other than by their card: counted, and reported to the operator.

The contract keys ``transactions`` and ``labels`` by ``customer_id``: Kafka puts a key's
records in one partition, and that is what keeps a card's transactions decided in the order
they were written. A record under another key (or none) is still a valid record and is decided
(the contract's list of what is refused is about values), but its card's transactions may then
be decided out of order, across partitions and workers: a producer bug the operator should see.
The worker counts such records (``streamer_input_key_mismatches_total``) and logs an example at
most once per :data:`REPORT_EVERY_S`, so a producer that keys everything wrongly fills no log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["REPORT_EVERY_S", "KeyMismatch", "KeyReport", "keyed_by_card"]

log = logging.getLogger(__name__)

#: how often, at most, a worker logs that records are keyed wrongly
REPORT_EVERY_S = 600.0


def keyed_by_card(key: bytes | None, customer_id: str) -> bool:
    """Whether a record's Kafka key is its ``customer_id``, as the contract asks."""
    return key is not None and key == customer_id.encode()


@dataclass(frozen=True, slots=True)
class KeyMismatch:
    """One record keyed other than by its card: where it was read, its key, its card."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    customer_id: str

    def describe(self) -> str:
        key = "no key" if self.key is None else f"key {self.key.decode(errors='replace')!r}"
        return (
            f"{self.topic}[{self.partition}]@{self.offset} has {key}, "
            f"customer_id {self.customer_id!r}"
        )


@dataclass(slots=True)
class KeyReport:
    """Logs the mismatches seen: the first at once, then a count and an example at most once
    per ``every_s``."""

    every_s: float = REPORT_EVERY_S
    clock: Callable[[], float] = time.monotonic
    _last: float | None = None
    _since: int = 0
    _example: KeyMismatch | None = field(default=None)

    def add(self, count: int, example: KeyMismatch | None) -> None:
        """Take a batch's mismatches (``count``, one ``example``); log when it is time."""
        if not count:
            return
        self._since += count
        self._example = self._example or example
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            return
        when = "" if self._last is None else f" in the last {now - self._last:.0f} s"
        log.warning(
            "%d input record(s)%s not keyed by their customer_id (e.g. %s): the contract keys "
            "transactions and labels by customer_id, which keeps a card's transactions in one "
            "partition and decided in order; they are decided, but may be out of order with "
            "their card's others. Fix the producer's key (streamer_input_key_mismatches_total "
            "counts them)",
            self._since,
            when,
            self._example.describe() if self._example else "?",
        )
        self._last, self._since, self._example = now, 0, None
