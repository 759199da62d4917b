"""The Redis key scheme, in one place and pinned by a golden test.

Every key of one entity shares a hash tag (``{c:<id>}`` or ``{t:<id>}``), so each server-side
script touches a single hash slot and the store can move to Redis Cluster unchanged.

==============================  ======  =============================================
key                             type    content
==============================  ======  =============================================
``fs:{c:<customer>}:tx``        zset    transaction id -> event time (epoch ms)
``fs:{c:<customer>}:amt``       hash    transaction id -> amount
``fs:{c:<customer>}:first``     hash    transaction id -> its window stats, as first computed
``fs:{t:<terminal>}:tx``        zset    transaction id -> event time (epoch ms)
``fs:{t:<terminal>}:fraud``     zset    fraud transaction id -> event time (epoch ms)
``fs:{t:<terminal>}:rep``       hash    fraud transaction id -> reported time (epoch ms)
``fs:{t:<terminal>}:first``     hash    transaction id -> its window counts, as first computed
``fs:blocklist:customer``       set     blocked customer ids
``fs:blocklist:terminal``       set     blocked terminal ids
==============================  ======  =============================================
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "BlocklistKind",
    "blocklist_key",
    "customer_first_key",
    "customer_keys",
    "terminal_first_key",
    "terminal_keys",
]

PREFIX = "fs"
BlocklistKind = Literal["customer", "terminal"]


def customer_keys(customer_id: str) -> tuple[str, str]:
    """(transactions zset, amounts hash) of one customer."""
    tag = f"{PREFIX}:{{c:{customer_id}}}"
    return f"{tag}:tx", f"{tag}:amt"


def customer_first_key(customer_id: str) -> str:
    """The window stats first computed for each of a customer's transactions.

    A card's transactions stay in one partition, in order, yet a re-delivery can still find its
    windows changed: a backlog drained fast can move weeks of event time between the last commit
    and a rebalance, and the card's later transactions then trim state that the repeat's windows
    reached. The repeat gets these back, as the terminal's do (:func:`terminal_first_key`).
    """
    return f"{PREFIX}:{{c:{customer_id}}}:first"


def terminal_keys(terminal_id: str) -> tuple[str, str, str]:
    """(transactions zset, frauds zset, reported-at hash) of one terminal."""
    tag = f"{PREFIX}:{{t:{terminal_id}}}"
    return f"{tag}:tx", f"{tag}:fraud", f"{tag}:rep"


def terminal_first_key(terminal_id: str) -> str:
    """The window counts first computed for each of a terminal's transactions.

    A re-delivered transaction gets these back instead of a fresh count: between the two
    deliveries other partitions (on other workers, or labels that came late) may have changed
    what its windows hold, and the contract promises the same decision both times.
    """
    return f"{PREFIX}:{{t:{terminal_id}}}:first"


def blocklist_key(kind: BlocklistKind) -> str:
    """The set of blocked ids of one kind."""
    return f"{PREFIX}:blocklist:{kind}"
