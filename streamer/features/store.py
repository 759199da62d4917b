"""The online feature store: a small port and its Redis implementation.

A batch of transactions is enriched in ONE Redis round trip: a pipeline holding, per
transaction, one script call for its customer and one for its terminal (each updating and
reading that entity's windows atomically), plus the two blocklist look-ups. Updates are
idempotent per transaction id, so a batch replayed after a crash counts nothing twice.

A transaction under an id that already stands for another (by its fingerprint) is refused by
the scripts and marked ``reused``; when only one of its two entities knew the id, the other has
recorded it, and a second round trip, in that rare batch only, takes it back (``forget.lua``).

Once a batch is decided, one more round trip pins each verdict before it is published
(``pin.lua``): a repeat is published as first decided, whatever decides transactions now.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
from redis import exceptions
from redis.asyncio.client import Pipeline as ServerPipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import NoScriptError, SlotNotCoveredError

from streamer.features.definitions import (
    CUSTOMER_STATS_LEN,
    DAY_MS,
    HIGH_AMOUNT_DAYS,
    HIGH_AMOUNT_FACTOR,
    LABEL_DELAY_DAYS,
    RETENTION_DAYS,
    TERMINAL_STATS_LEN,
    WINDOW_DAYS,
    WINDOW_READ_MAX,
    FeatureEvent,
    FraudMark,
    StatsRows,
    build_matrix,
    first_converted,
)
from streamer.features.keys import (
    MEMBER_ID_OFFSET,
    BlocklistKind,
    blocklist_key,
    customer_member,
    customer_pins_keys,
    customer_stats_key,
    customer_window_key,
    terminal_keys,
    terminal_stats_key,
)
from streamer.redis_client import RedisClient

__all__ = [
    "BATCH_TIMEOUT_S",
    "REUSED",
    "Enriched",
    "FeatureStore",
    "PinKey",
    "Pinned",
    "RawStats",
    "RedisFeatureStore",
    "StoreConfig",
    "pin_keys",
]

log = logging.getLogger(__name__)

#: failures of the connection or of the cluster's routing, not of the commands: a server
#: restarting, a cluster primary lost before a replica has taken over its slots
TRANSIENT = (
    exceptions.ConnectionError,
    exceptions.TimeoutError,
    exceptions.ClusterDownError,
    exceptions.MasterDownError,
    exceptions.TryAgainError,
)

#: a batch's pipeline: one server's, or a cluster's (one round trip per node, concurrently)
Pipeline = ServerPipeline | ClusterPipeline

#: How long one batch's round trip may take before it counts as failed (and is sent again,
#: see ``retry_s``; ``STREAMER_REDIS_TIMEOUT_S`` in the worker): redis-py's own socket
#: timeout, but once per batch. redis-py (8.x) arms a timer for every reply it reads, two per
#: transaction here; a client made with ``socket_timeout=None`` for the store reads a batch's
#: replies under this one deadline.
BATCH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Windows and retention, in days of event time; idle keys expire after ``ttl_seconds``."""

    windows_days: tuple[int, ...] = WINDOW_DAYS
    delay_days: int = LABEL_DELAY_DAYS
    retention_days: int = RETENTION_DAYS
    ttl_seconds: int = RETENTION_DAYS * 86_400
    high_amount_days: int = HIGH_AMOUNT_DAYS
    high_amount_factor: int = HIGH_AMOUNT_FACTOR
    window_read_max: int = WINDOW_READ_MAX

    @property
    def windows_ms(self) -> list[int]:
        return [d * DAY_MS for d in self.windows_days]


#: a verdict as the store keeps it: its score, outcome and model version, and its reasons
#: (:meth:`streamer.verdicts.Verdict.encode`)
Pinned = tuple[bytes, bytes]
#: whose verdict: (customer_id, transaction_id)
PinKey = tuple[str, str]


def pin_keys(events: Sequence[FeatureEvent]) -> list[PinKey]:
    """Where each event's verdict is pinned."""
    return [(e.customer_id, e.transaction_id) for e in events]

#: what customer.lua and terminal.lua answer for a transaction under an id that stands for
#: another one (a different fingerprint)
REUSED = b"reused"


class RawStats(NamedTuple):
    """What a store answers for a batch, row for row with its events: the card's and the
    terminal's window stats (NaN on a reused row), the blocklist hits, and whether each event's
    id already stood for another transaction (then it was recorded nowhere)."""

    customer: StatsRows
    terminal: StatsRows
    customer_blocked: list[bool]
    terminal_blocked: list[bool]
    reused: list[bool]


@dataclass(frozen=True, slots=True)
class Enriched:
    """A batch's feature matrix, its blocklist hits, whether each amount was in the model's
    currency when first recorded, and whether each id was refused as reused (its features are
    NaN), row for row with the events."""

    features: np.ndarray
    customer_blocked: list[bool]
    terminal_blocked: list[bool]
    converted: np.ndarray
    reused: list[bool]

    def rows(self, keep: Sequence[int]) -> Enriched:
        """These rows only, in this order."""
        return Enriched(
            self.features[keep],
            [self.customer_blocked[i] for i in keep],
            [self.terminal_blocked[i] for i in keep],
            self.converted[keep],
            [self.reused[i] for i in keep],
        )


class FeatureStore(abc.ABC):
    """Event-time window state per customer and terminal, plus the rule blocklists."""

    @abc.abstractmethod
    async def raw_stats(self, events: Sequence[FeatureEvent]) -> RawStats:
        """Record the events and return their stats; a reused id is recorded by neither of
        its entities that knew it (see :meth:`record`)."""

    @abc.abstractmethod
    async def forget(self, events: Sequence[FeatureEvent]) -> None:
        """Take back what an entity recorded of these events (each refused as reused by the
        other), where it holds them with their own fingerprint."""

    @abc.abstractmethod
    async def apply_labels(self, marks: Sequence[FraudMark]) -> None:
        """Record (or withdraw) fraud marks on their terminals."""

    @abc.abstractmethod
    async def pin(
        self, keys: Sequence[PinKey], verdicts: Sequence[Pinned], *, replace: bool = False
    ) -> list[Pinned | None]:
        """Keep each transaction's verdict (its two parts: :mod:`streamer.verdicts`) at its card
        unless one is kept already (or, with ``replace``, in its place); row for row, the one
        kept before (to publish instead), or None: this one is now kept, or the card's window
        does not hold the transaction (trimmed, or never recorded) and nothing is kept."""

    @abc.abstractmethod
    async def blocklist_add(self, kind: BlocklistKind, ids: Sequence[str]) -> int: ...

    @abc.abstractmethod
    async def blocklist_remove(self, kind: BlocklistKind, ids: Sequence[str]) -> int: ...

    @abc.abstractmethod
    async def blocklist_members(self, kind: BlocklistKind) -> list[str]: ...

    async def record(self, events: Sequence[FeatureEvent]) -> RawStats:
        """Record a batch and return its stats: :meth:`raw_stats`, then :meth:`forget` of the
        reused ids, so that a refused transaction stays in no window. Until then it is there:
        the same entity's later transactions in this batch (and any another worker decides
        meanwhile) count it, and keep that count as their first stats. Two different
        transactions under one id are only told apart at an entity that has seen the id: one
        that reuses it at another card and another terminal is recorded as new."""
        raw = await self.raw_stats(events)
        if any(raw.reused):
            await self.forget([e for e, r in zip(events, raw.reused, strict=True) if r])
        return raw

    async def enrich(self, events: Sequence[FeatureEvent]) -> Enriched:
        """Record a batch and return its features (the same code for every store)."""
        raw = await self.record(events)
        features = build_matrix(events, raw.customer, raw.terminal)
        return Enriched(
            features,
            raw.customer_blocked,
            raw.terminal_blocked,
            first_converted(raw.customer),
            raw.reused,
        )


_CUSTOMER_BYTES, _TERMINAL_BYTES = 8 * CUSTOMER_STATS_LEN, 8 * TERMINAL_STATS_LEN
#: a reused row's stats: unknown
_CUSTOMER_NAN = np.full(CUSTOMER_STATS_LEN, np.nan, dtype="<f8").tobytes()
_TERMINAL_NAN = np.full(TERMINAL_STATS_LEN, np.nan, dtype="<f8").tobytes()


def _script(name: str, **constants: int | list[int]) -> str:
    """A Lua script with the store's configuration prepended as constants.

    Baking windows and retention into the script text keeps each call's arguments to the few
    that vary per event, which is most of the client-side cost of a large pipeline.
    """
    header = []
    for key, value in constants.items():
        lua = "{" + ", ".join(str(v) for v in value) + "}" if isinstance(value, list) else value
        header.append(f"local {key} = {lua}")
    body = resources.files("streamer.features").joinpath(name).read_text(encoding="utf-8")
    return "\n".join(header) + "\n" + body


class RedisFeatureStore(FeatureStore):
    """The production store; scripts are registered lazily (no I/O in the constructor)."""

    def __init__(
        self,
        client: RedisClient,
        config: StoreConfig | None = None,
        *,
        retry_s: float = 0.0,
        timeout_s: float = BATCH_TIMEOUT_S,
    ) -> None:
        self._redis = client
        self._retry_s = retry_s
        self._timeout_s = timeout_s
        self._config = cfg = config or StoreConfig()
        retention = cfg.retention_days * DAY_MS
        self._customer = client.register_script(
            _script(
                "customer.lua",
                RETENTION=retention,
                TTL=cfg.ttl_seconds,
                WINDOWS=cfg.windows_ms,
                HIGH_MS=cfg.high_amount_days * DAY_MS,
                HIGH_FACTOR=cfg.high_amount_factor,
                READ_MAX=cfg.window_read_max,
                ID_AT=MEMBER_ID_OFFSET + 1,  # Lua strings count from 1
                STATS_BYTES=_CUSTOMER_BYTES,
            )
        )
        self._terminal = client.register_script(
            _script(
                "terminal.lua",
                RETENTION=retention,
                TTL=cfg.ttl_seconds,
                DELAY=cfg.delay_days * DAY_MS,
                WINDOWS=cfg.windows_ms,
                READ_MAX=cfg.window_read_max,
                STATS_BYTES=_TERMINAL_BYTES,
            )
        )
        self._label = client.register_script(_script("label.lua", TTL=cfg.ttl_seconds))
        self._forget = client.register_script(_script("forget.lua"))
        self._pin = client.register_script(_script("pin.lua", TTL=cfg.ttl_seconds))
        self._scripts_loaded = False
        #: on a cluster, the node that holds a key's slot, as the client last learnt it
        self._route: Callable[[str], Any] | None = (
            client.get_node_from_key if isinstance(client, RedisCluster) else None
        )

    def _to(self, key: str) -> dict[str, Any]:
        """Where to send a script call whose keys share ``key``'s hash tag.

        redis-py's cluster pipeline works out every command's slot from all its keys, twice,
        in Python: most of what the cluster costs the worker per event. All keys of an entity
        share one slot, so one key names the node. The hint is only a first guess: a call it
        sends to a node that no longer owns the slot is answered MOVED, and redis-py retries
        that call by its own routing, which learns the new owner.
        """
        if self._route is None:
            return {}
        try:
            return {"target_nodes": self._route(key)}
        except SlotNotCoveredError:  # the client is re-learning the slots: let it route
            return {}

    async def _execute(self, fill: Callable[[Pipeline], object]) -> list[Any]:
        """Run a pipeline of script calls, sending it again while the connection fails, for up
        to ``retry_s`` (then the error is raised).

        Sending a pipeline again is safe even when part of it was carried out: every call is
        idempotent per transaction id, and a call repeated answers what it answered first,
        except a pin, which answers the verdict it pinned (the same one, counted as a repeat).
        What a lost primary had not yet passed to its replica is lost with it (Redis
        replicates asynchronously): the next features miss those transactions until the
        state is rebuilt (``fraud-streamer rebuild-state``).
        """
        failing_since: float | None = None
        while True:
            try:
                replies = await self._execute_once(fill)
            except TRANSIENT as exc:
                now = time.monotonic()
                if self._retry_s <= 0:
                    raise
                if failing_since is None:
                    failing_since = now
                    log.warning(
                        "Redis failed (%s: %s); sending the batch's calls again for up to %.0f s",
                        type(exc).__name__, exc, self._retry_s,
                    )  # fmt: skip
                if now - failing_since >= self._retry_s:
                    raise
                await asyncio.sleep(min(1.0, 0.1 + (now - failing_since) / 4))
                continue
            if failing_since is not None:
                log.warning(
                    "Redis answered again after %.1f s; the batch's calls went through",
                    time.monotonic() - failing_since,
                )
            return replies

    async def _execute_once(self, fill: Callable[[Pipeline], object]) -> list[Any]:
        """Run a pipeline of script calls in one round trip.

        redis-py's own script handling (``pipe.scripts``) sends SCRIPT EXISTS before every
        pipeline: a second round trip per batch. Instead the scripts are loaded once, and again
        only when Redis has lost them (a restart, SCRIPT FLUSH); a call that failed with
        NOSCRIPT did nothing, and the replayed ones are idempotent per transaction id.
        """
        for attempt in range(2):
            if not self._scripts_loaded:
                scripts = (self._customer, self._terminal, self._label, self._forget, self._pin)
                for script in scripts:
                    await self._redis.script_load(script.script)
                self._scripts_loaded = True
            pipe = self._redis.pipeline(transaction=False)
            fill(pipe)
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await pipe.execute()
            except TimeoutError:
                # redis-py dropped the connection it was reading from (a cancelled read
                # closes it): the pipeline is sent again on a new one, as after its own timeout
                raise exceptions.TimeoutError(
                    f"the batch's Redis calls took more than {self._timeout_s:g} s"
                ) from None
            except NoScriptError:
                if attempt:
                    raise
                self._scripts_loaded = False
        raise AssertionError("unreachable")

    async def raw_stats(self, events: Sequence[FeatureEvent]) -> RawStats:
        if not events:
            return RawStats([], [], [], [], [])
        csha, tsha = self._customer.sha, self._terminal.sha

        def fill(pipe: Pipeline) -> None:
            command, to = pipe.execute_command, self._to
            for e in events:
                ckey, tkeys = customer_window_key(e.customer_id), terminal_keys(e.terminal_id)
                command(
                    "EVALSHA",
                    csha,
                    4,
                    ckey,
                    customer_stats_key(e.customer_id),
                    *customer_pins_keys(e.customer_id),
                    e.transaction_id,
                    e.ts_ms,
                    customer_member(e.transaction_id, e.ts_ms, e.amount, e.converted),
                    1 if e.converted else 0,
                    e.fingerprint,
                    **to(ckey),
                )
                command(
                    "EVALSHA",
                    tsha,
                    4,
                    *tkeys,
                    terminal_stats_key(e.terminal_id),
                    e.transaction_id,
                    e.ts_ms,
                    e.fingerprint,
                    **to(tkeys[0]),
                )
            pipe.smismember(blocklist_key("customer"), [e.customer_id for e in events])
            pipe.smismember(blocklist_key("terminal"), [e.terminal_id for e in events])

        replies = await self._execute(fill)
        n = len(events)
        cust_replies, term_replies = replies[0 : 2 * n : 2], replies[1 : 2 * n : 2]
        reused = [False] * n
        cust_bytes, term_bytes = b"".join(cust_replies), b"".join(term_replies)
        if len(cust_bytes) != n * _CUSTOMER_BYTES or len(term_bytes) != n * _TERMINAL_BYTES:
            # some id was refused as reused: its rows become NaN (a rare batch, a slower path)
            pairs = list(zip(cust_replies, term_replies, strict=True))
            reused = [REUSED in pair for pair in pairs]
            cust_bytes = b"".join(_CUSTOMER_NAN if REUSED in p else p[0] for p in pairs)
            term_bytes = b"".join(_TERMINAL_NAN if REUSED in p else p[1] for p in pairs)
        # each script answers its stats as packed little-endian doubles: one pass per batch
        return RawStats(
            np.frombuffer(cust_bytes, dtype="<f8").reshape(n, CUSTOMER_STATS_LEN),
            np.frombuffer(term_bytes, dtype="<f8").reshape(n, TERMINAL_STATS_LEN),
            [bool(b) for b in replies[-2]],
            [bool(b) for b in replies[-1]],
            reused,
        )

    async def forget(self, events: Sequence[FeatureEvent]) -> None:
        if not events:
            return
        sha = self._forget.sha

        def fill(pipe: Pipeline) -> None:
            command, to = pipe.execute_command, self._to
            for e in events:
                card = customer_window_key(e.customer_id)
                terminal = terminal_keys(e.terminal_id)[0]
                command("EVALSHA", sha, 2, card, customer_stats_key(e.customer_id),
                        e.transaction_id, e.ts_ms, e.fingerprint, MEMBER_ID_OFFSET + 1,
                        **to(card))  # fmt: skip
                command("EVALSHA", sha, 2, terminal, terminal_stats_key(e.terminal_id),
                        e.transaction_id, e.ts_ms, e.fingerprint, 1, **to(terminal))  # fmt: skip

        await self._execute(fill)

    async def pin(
        self, keys: Sequence[PinKey], verdicts: Sequence[Pinned], *, replace: bool = False
    ) -> list[Pinned | None]:
        if not keys:
            return []
        sha, flag = self._pin.sha, 1 if replace else 0

        def fill(pipe: Pipeline) -> None:
            command, to = pipe.execute_command, self._to
            for (card, tx_id), (head, reasons) in zip(keys, verdicts, strict=True):
                pins, why = customer_pins_keys(card)
                command("EVALSHA", sha, 3, pins, why, customer_stats_key(card), tx_id, head,
                        reasons, flag, **to(pins))  # fmt: skip

        replies = await self._execute(fill)
        return [None if held is None else (held[0], held[1]) for held in replies]

    async def apply_labels(self, marks: Sequence[FraudMark]) -> None:
        if not marks:
            return
        sha = self._label.sha

        def fill(pipe: Pipeline) -> None:
            for m in marks:
                keys = terminal_keys(m.terminal_id)
                pipe.execute_command(
                    "EVALSHA",
                    sha,
                    3,
                    *keys,
                    m.transaction_id,
                    m.tx_ts_ms,
                    m.reported_ms,
                    int(m.is_fraud),
                    **self._to(keys[0]),
                )

        await self._execute(fill)

    async def blocklist_add(self, kind: BlocklistKind, ids: Sequence[str]) -> int:
        return int(await self._redis.sadd(blocklist_key(kind), *ids)) if ids else 0

    async def blocklist_remove(self, kind: BlocklistKind, ids: Sequence[str]) -> int:
        return int(await self._redis.srem(blocklist_key(kind), *ids)) if ids else 0

    async def blocklist_members(self, kind: BlocklistKind) -> list[str]:
        members = await self._redis.smembers(blocklist_key(kind))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
