"""Event-time alignment across the workers of one consumer group.

Each worker's merge (:mod:`streamer.alignment`) keeps the partitions it owns within
``STREAMER_MAX_PARTITION_SKEW_HOURS`` of each other, and no transaction passes a label one of
them may still deliver. Terminal windows draw on every partition, those of the other workers
too, so with several workers draining a backlog, one whose partitions carry fewer transactions
per day ran ahead of the others in event time — weeks ahead, past the 7-day label delay, and
its terminal windows then missed transactions still waiting on a slower worker (an integration
test measures it); and a label in another worker's partition could come too late for it.

So each worker writes the bound its own partitions put on the merge
(:meth:`EventTimeMerger.limit_for_others`: the skew past the earliest transaction it may still
deliver, and no transaction at or after the next label it may deliver) to one Redis hash per
group, and reads the others': its merge releases nothing past the lowest of them. It is one
worker's merge, spread over several: the worker with the earliest record can always go on, so
the group never waits for itself. A fraud mark is released as soon as it is read (it counts
only from its report time), so labels hold the other workers back only until they are read,
not until the merge reaches them: otherwise the workers would advance from one label to the
next in turns, an exchange of limits each.

- **Cheap.** One round trip (write ours, read everyone's) at most every :data:`REFRESH_S`,
  not per batch. A limit read a little late is lower than the current one, so it only holds
  back more, never less; in live traffic no worker is far behind and the limits never bind
  (a label just read by another worker holds transactions at or after its report time until
  that worker's next write, up to about a second).
- **A worker that stops answering stops counting.** Each entry carries the wall-clock time it
  was written; one older than ``STREAMER_PARTITION_IDLE_S`` (a worker killed, or stuck in a
  Redis retry) is ignored, as a partition that delivers nothing for that long is by the
  merge. A worker that stops cleanly deletes its entry. So alignment can delay the group,
  never stall it for longer than that. Workers' clocks must agree to well under that time
  (NTP does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from redis.exceptions import RedisClusterException, RedisError

from streamer.features.keys import fleet_frontier_key
from streamer.redis_client import RedisClient

__all__ = ["REFRESH_S", "FleetFrontier", "format_entry", "lowest_other", "parse_entry"]

log = logging.getLogger("streamer.worker")

#: how often a worker writes its limit and reads the others' (at most)
REFRESH_S = 0.1
#: the group's hash expires this long after its last write (a group that is gone)
KEY_TTL_S = 7 * 24 * 3600


def format_entry(limit: int | None, written_ms: int) -> str:
    """``<limit, or empty for none>|<wall-clock ms when written>``."""
    return f"{'' if limit is None else limit}|{written_ms}"


def parse_entry(raw: bytes | str) -> tuple[int | None, int]:
    """(limit, written_ms) of one entry, as :func:`format_entry` wrote it."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    limit, written = text.split("|")
    return (int(limit) if limit else None), int(written)


def lowest_other(
    entries: Mapping[bytes | str, bytes | str], me: str, now_ms: int, stale_ms: int
) -> tuple[int | None, list[str]]:
    """(the lowest limit among the other workers' fresh entries, or None; the members whose
    entries are stale, to delete). An entry that does not parse counts as stale."""
    limits: list[int] = []
    stale: list[str] = []
    for raw_member, raw in entries.items():
        member = raw_member.decode() if isinstance(raw_member, bytes) else raw_member
        if member == me:
            continue
        try:
            limit, written = parse_entry(raw)
        except ValueError:
            stale.append(member)
            continue
        if now_ms - written > stale_ms:
            stale.append(member)
        elif limit is not None:
            limits.append(limit)
    return min(limits, default=None), stale


class FleetFrontier:
    """One worker's entry in its group's hash of limits, and its view of the others'."""

    def __init__(
        self, client: RedisClient, group: str, member: str, *, stale_s: float, timeout_s: float
    ) -> None:
        self.client = client
        self.key = fleet_frontier_key(group)
        self.member = member
        self.stale_ms = int(stale_s * 1000)
        self.timeout_s = timeout_s
        self.others: int | None = None  # the lowest of the others' limits, as last read
        self._read_at = -float("inf")  # monotonic
        self._stale: list[str] = []  # entries seen stale, deleted with the next write
        self._failed = False

    async def exchange(self, limit: Callable[[], int | None]) -> int | None:
        """Write our limit (``limit()``, computed only when it is written) and return the lowest
        fresh limit of the other workers (None: none bounds us). Goes to Redis at most every
        :data:`REFRESH_S`; in between, and when Redis does not answer, returns the last view
        read."""
        if time.monotonic() - self._read_at < REFRESH_S:
            return self.others
        self._read_at = time.monotonic()
        now_ms = int(time.time() * 1000)
        try:
            async with asyncio.timeout(self.timeout_s):
                pipe = self.client.pipeline(transaction=False)
                if self._stale:
                    pipe.hdel(self.key, *self._stale)
                pipe.hset(self.key, self.member, format_entry(limit(), now_ms))
                pipe.expire(self.key, KEY_TTL_S)
                pipe.hgetall(self.key)
                *_, entries = await pipe.execute()
        except (RedisClusterException, RedisError, TimeoutError) as exc:
            if not self._failed:
                log.warning("could not exchange event-time limits with the group: %s", exc)
            self._failed = True
            return self.others
        self._failed = False
        self.others, self._stale = lowest_other(entries, self.member, now_ms, self.stale_ms)
        return self.others

    async def leave(self) -> None:
        """Delete this worker's entry (a clean stop), so that it holds nobody back."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.client.hdel(self.key, self.member)
        except (RedisClusterException, RedisError, TimeoutError):
            pass  # it goes stale by itself
