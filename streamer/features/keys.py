"""The Redis key scheme, in one place and pinned by a golden test.

Every key of one entity shares a hash tag (``{c:<id>}`` or ``{t:<id>}``), so each server-side
script touches a single hash slot and the store can move to Redis Cluster unchanged.

==============================  ======  =============================================
key                             type    content
==============================  ======  =============================================
``fs:{c:<customer>}:win``       zset    :func:`customer_member` -> event time (epoch ms)
``fs:{c:<customer>}:stats``     hash    transaction id -> its window stats, as first computed,
                                        then its :func:`fingerprint`
``fs:{c:<customer>}:pin``       hash    transaction id -> the verdict first published for it:
                                        score, outcome and model version (:mod:`streamer.verdicts`)
``fs:{c:<customer>}:why``       hash    transaction id -> that verdict's reasons, if it has any
``fs:{t:<terminal>}:tx``        zset    transaction id -> event time (epoch ms)
``fs:{t:<terminal>}:fraud``     zset    fraud transaction id -> event time (epoch ms)
``fs:{t:<terminal>}:rep``       hash    fraud transaction id -> reported time (epoch ms)
``fs:{t:<terminal>}:stats``     hash    transaction id -> its window counts, as first computed,
                                        then its :func:`fingerprint`
``fs:blocklist:customer``       set     blocked customer ids
``fs:blocklist:terminal``       set     blocked terminal ids
``fs:rates``                    hash    currency -> exchange rate, as text (:mod:`streamer.rates`)
==============================  ======  =============================================

The stats are stored as the scripts answer them, little-endian doubles, packed, followed by the
transaction's :func:`fingerprint`: a tag byte and 8 bytes. Stats are whole doubles, so a value
whose length is one more than a multiple of 8 ends with a fingerprint, however many stats a
version answers; one of a multiple of 8 was stored by a worker from before fingerprints (or
recomputed over such a value, or recorded without one) and is answered unchecked. A later
version that answers more stats must keep the fingerprint last.

Workers from before this layout kept a card's windows in ``:tx`` (ids), ``:amt`` (amounts) and
``:first`` (stats as text), and a terminal's first counts in ``:first``. This version neither
reads nor deletes those keys: they expire after the TTL, and ``fraud-streamer rebuild-state``
fills the new ones from Kafka (README, Features).
"""

from __future__ import annotations

import struct
from hashlib import blake2b
from typing import Literal

__all__ = [
    "FINGERPRINT_BYTES",
    "MEMBER_ID_OFFSET",
    "RATES_KEY",
    "BlocklistKind",
    "blocklist_key",
    "customer_member",
    "customer_pins_keys",
    "customer_stats_key",
    "customer_window_key",
    "fingerprint",
    "member_amount",
    "terminal_keys",
    "terminal_stats_key",
]

PREFIX = "fs"
BlocklistKind = Literal["customer", "terminal"]
_MEMBER_HEAD = struct.Struct("<dd")
#: where the transaction id starts in a :func:`customer_member`
MEMBER_ID_OFFSET = _MEMBER_HEAD.size


def customer_window_key(customer_id: str) -> str:
    """The card's transactions in event time: :func:`customer_member` scored by its time."""
    return f"{PREFIX}:{{c:{customer_id}}}:win"


def customer_member(
    transaction_id: str, ts_ms: int, amount: float, converted: bool = True
) -> bytes:
    """A transaction in its card's window: amount and event time as little-endian doubles, then
    the id. An amount its currency had no rate for is stored negated: the card's windows leave
    it out of their amounts (``customer.lua``), and the minus sign is how they tell it from the
    others (amounts are never negative; a zero is a zero in every currency, and stays one).

    ``customer.lua`` reads every member of the widest window for each transaction, so what it
    needs of them is in the member, in binary: one ``struct.unpack`` each, with no second
    look-up and no number parsed from text. The id keeps members unique per transaction (and
    the script strips the 16 bytes to find it). Members with the same time sort by these
    bytes, which fixes the order in which the window sums add up: the in-memory twin sorts
    by them too.
    """
    return _MEMBER_HEAD.pack(member_amount(amount, converted), ts_ms) + transaction_id.encode()


def member_amount(amount: float, converted: bool) -> float:
    """The amount as a :func:`customer_member` holds it: negated if it could not be converted."""
    return amount if converted or amount == 0 else -amount


#: a :func:`fingerprint`'s length: the tag, then 8 bytes of hash
FINGERPRINT_BYTES = 9
_FINGERPRINT_TAG = b"#"


def fingerprint(
    ts_ms: int, customer_id: str, terminal_id: str, amount: float, currency: str
) -> bytes:
    """What a transaction's id stands for, in :data:`FINGERPRINT_BYTES` bytes: its event time
    (to the millisecond, as the windows keep it), card, terminal, and amount and currency as
    written (not converted: an exchange rate that changes between two deliveries must not make
    a repeat look like another transaction).

    The scripts keep it beside a transaction's first stats. A re-delivery brings the same
    fingerprint and gets those stats back; another transaction sent under the same id (a
    producer's bug: ids are unique by contract) brings another, and is refused rather than
    given the first one's features. Eight bytes of BLAKE2b: two different transactions under
    one id go unnoticed once in 2^64. The tag byte in front makes a stored value's length tell
    whether it ends with one (see the module's docstring).
    """
    text = f"{ts_ms}\x1f{customer_id}\x1f{terminal_id}\x1f{float(amount)!r}\x1f{currency}"
    return _FINGERPRINT_TAG + blake2b(text.encode(), digest_size=8).digest()


def customer_stats_key(customer_id: str) -> str:
    """The window stats first computed for each of a customer's transactions.

    A card's transactions stay in one partition, in order, yet a re-delivery can still find its
    windows changed: a backlog drained fast can move weeks of event time between the last commit
    and a rebalance, and the card's later transactions then trim state that the repeat's windows
    reached. The repeat gets these back, as the terminal's do (:func:`terminal_stats_key`).
    """
    return f"{PREFIX}:{{c:{customer_id}}}:stats"


def customer_pins_keys(customer_id: str) -> tuple[str, str]:
    """The verdict first published for each of a customer's transactions: (its score, outcome
    and model version; its reasons, for the verdicts that have any).

    The pinned stats give a repeat the features it was first decided on, but not the model,
    blocklists, thresholds or code that decided it: any of them can change between a delivery
    and its repeat (a promotion, a card blocked, a worker restarted with new settings). The
    contract asks for the same decision, so the worker pins what it decided before publishing
    it, and a repeat publishes the pinned verdict (``pin.lua``). The card's window trims these
    with its stats. The reasons are kept apart, for the few verdicts that have any, so that the
    first hash's values stay small enough for Redis's compact encoding (:mod:`streamer.verdicts`).
    """
    tag = f"{PREFIX}:{{c:{customer_id}}}"
    return f"{tag}:pin", f"{tag}:why"


def terminal_keys(terminal_id: str) -> tuple[str, str, str]:
    """(transactions zset, frauds zset, reported-at hash) of one terminal."""
    tag = f"{PREFIX}:{{t:{terminal_id}}}"
    return f"{tag}:tx", f"{tag}:fraud", f"{tag}:rep"


def terminal_stats_key(terminal_id: str) -> str:
    """The window counts first computed for each of a terminal's transactions.

    A re-delivered transaction gets these back instead of a fresh count: between the two
    deliveries other partitions (on other workers, or labels that came late) may have changed
    what its windows hold, and the contract promises the same decision both times.
    """
    return f"{PREFIX}:{{t:{terminal_id}}}:stats"


def blocklist_key(kind: BlocklistKind) -> str:
    """The set of blocked ids of one kind."""
    return f"{PREFIX}:blocklist:{kind}"


#: the exchange rates set while the workers run (``fraud-streamer rates``)
RATES_KEY = f"{PREFIX}:rates"
