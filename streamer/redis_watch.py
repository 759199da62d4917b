"""Noticing that Redis lost the window state under a running worker.

A Redis restarted without persistence, or a database flushed by hand, comes back empty, and
the worker carries on without an error: every window starts again from nothing, so the features
count fewer transactions than happened, for up to 44 days, and the model sees every card as
new. Nothing fails, so nothing would say so. The worker reads each primary's ``INFO`` every few
seconds (for its memory gauges) and hands it here; a node that restarted and came back with
less than half its keys, or a store whose keys fell by more than half at once, is a loss, which
the worker logs as an error naming ``fraud-streamer rebuild-state`` and counts in
``streamer_redis_state_losses_total``.

A node that restarted with its keys reloaded is not a loss, but it is logged as a warning:
persistence that does not write every command through (RDB snapshots, a once-a-second AOF)
misses the last writes before the stop, and a replica promoted after it may lag too.

Keys that leave a node for another (a cluster resharding) move neither the total nor the
node's ``run_id``; keys that Redis evicted have their own warning and are not counted twice; a
few keys expiring (idle cards and terminals) never halve the store between two reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_KEYS", "KeyWatch", "StateLoss"]

#: below this many keys a store is too young for a halving to mean much
MIN_KEYS = 100


@dataclass(frozen=True, slots=True)
class StateLoss:
    """Keys lost at once: on one node that restarted (``node``), or over the whole store."""

    keys_before: int
    keys_now: int
    node: str | None = None  # the node that restarted; None: the store's total fell

    def describe(self, db: int) -> str:
        before, now = f"{self.keys_before:,}", f"{self.keys_now:,}"
        if self.node is not None:
            node = f"node {self.node}" if self.node else "server"
            return (
                f"The Redis {node} restarted (its run_id changed) and holds {now} keys in db "
                f"{db} ({before} before)"
            )
        return f"Redis's keys in db {db} fell from {before} to {now} at once"


@dataclass(slots=True)
class _Seen:
    keys: int
    run_id: str | None
    evicted: int


class KeyWatch:
    """Compares each read of the primaries' ``INFO`` (server, keyspace and stats sections, by
    node name) with the one before."""

    def __init__(self, db: int) -> None:
        self.db = db
        self._seen: dict[str, _Seen] = {}
        self.total = 0  # the keys of the worker's database over every node, at the last read
        #: the nodes that restarted at the last read without losing half their keys: what
        #: they had not saved is lost all the same (see :meth:`observe`)
        self.restarted: list[StateLoss] = []

    def keys(self, info: Mapping[str, Any]) -> int:
        """The keys of the worker's database on one node."""
        space = info.get(f"db{self.db}")
        return int(space.get("keys", 0)) if isinstance(space, Mapping) else 0

    def observe(self, infos: Mapping[str, Mapping[str, Any]]) -> list[StateLoss]:
        """What was lost since the last read (nothing the first time).

        A node that restarted with most of its keys reloaded them from its persistence, which
        keeps every write only with ``appendfsync always``: an RDB snapshot or a once-a-second
        AOF misses the last writes, which change members of keys more often than their number.
        Such a restart is not a loss here, but it is noted in :attr:`restarted`."""
        now = {
            node: _Seen(self.keys(info), info.get("run_id"), int(info.get("evicted_keys", 0)))
            for node, info in infos.items()
        }
        before, self._seen = self._seen, now
        losses: list[StateLoss] = []
        restarted = 0  # keys lost by the nodes reported as restarted
        self.restarted = []
        for node, seen in now.items():
            last = before.get(node)
            if last is None or last.run_id == seen.run_id:
                continue
            if last.keys >= MIN_KEYS and seen.keys < last.keys / 2:
                losses.append(StateLoss(last.keys, seen.keys, node))
                restarted += last.keys - seen.keys
            else:
                self.restarted.append(StateLoss(last.keys, seen.keys, node))
        total_before = sum(s.keys for s in before.values())
        total_now = self.total = sum(s.keys for s in now.values())
        evicted = sum(
            max(seen.evicted - before[node].evicted, 0)
            for node, seen in now.items()
            if node in before and before[node].run_id == seen.run_id
        )
        lost = total_before - total_now - evicted - restarted
        if total_before >= MIN_KEYS and lost > total_before / 2:
            losses.append(StateLoss(total_before, total_now))
        return losses
