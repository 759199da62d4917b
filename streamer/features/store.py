"""The online feature store: a small port and its Redis implementation.

A batch of transactions is enriched in ONE Redis round trip: a pipeline holding, per
transaction, one script call for its customer and one for its terminal (each updating and
reading that entity's windows atomically), plus the two blocklist look-ups. Updates are
idempotent per transaction id, so a batch replayed after a crash counts nothing twice.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

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
    customer_stats_key,
    customer_window_key,
    terminal_keys,
    terminal_stats_key,
)
from streamer.redis_client import RedisClient

__all__ = ["BATCH_TIMEOUT_S", "Enriched", "FeatureStore", "RedisFeatureStore", "StoreConfig"]

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

    @property
    def windows_ms(self) -> list[int]:
        return [d * DAY_MS for d in self.windows_days]


@dataclass(frozen=True, slots=True)
class Enriched:
    """A batch's feature matrix, its blocklist hits, and whether each amount was in the
    model's currency when first recorded, row for row with the events."""

    features: np.ndarray
    customer_blocked: list[bool]
    terminal_blocked: list[bool]
    converted: np.ndarray


class FeatureStore(abc.ABC):
    """Event-time window state per customer and terminal, plus the rule blocklists."""

    @abc.abstractmethod
    async def raw_stats(
        self, events: Sequence[FeatureEvent]
    ) -> tuple[StatsRows, StatsRows, list[bool], list[bool]]:
        """Record the events and return (customer stats, terminal stats, blocked c, blocked t)."""

    @abc.abstractmethod
    async def apply_labels(self, marks: Sequence[FraudMark]) -> None:
        """Record (or withdraw) fraud marks on their terminals."""

    @abc.abstractmethod
    async def blocklist_add(self, kind: BlocklistKind, ids: Sequence[str]) -> int: ...

    @abc.abstractmethod
    async def blocklist_remove(self, kind: BlocklistKind, ids: Sequence[str]) -> int: ...

    @abc.abstractmethod
    async def blocklist_members(self, kind: BlocklistKind) -> list[str]: ...

    async def enrich(self, events: Sequence[FeatureEvent]) -> Enriched:
        """Record a batch and return its features (the same code for every store)."""
        cust, term, cblocked, tblocked = await self.raw_stats(events)
        features = build_matrix(events, cust, term)
        return Enriched(features, cblocked, tblocked, first_converted(cust))


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
                ID_AT=MEMBER_ID_OFFSET + 1,  # Lua strings count from 1
                STATS_BYTES=8 * CUSTOMER_STATS_LEN,
            )
        )
        self._terminal = client.register_script(
            _script(
                "terminal.lua",
                RETENTION=retention,
                TTL=cfg.ttl_seconds,
                DELAY=cfg.delay_days * DAY_MS,
                WINDOWS=cfg.windows_ms,
                STATS_BYTES=8 * TERMINAL_STATS_LEN,
            )
        )
        self._label = client.register_script(_script("label.lua", TTL=cfg.ttl_seconds))
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
        idempotent per transaction id, and a call repeated answers what it answered first.
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
                for script in (self._customer, self._terminal, self._label):
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

    async def raw_stats(
        self, events: Sequence[FeatureEvent]
    ) -> tuple[StatsRows, StatsRows, list[bool], list[bool]]:
        if not events:
            return [], [], [], []
        csha, tsha = self._customer.sha, self._terminal.sha

        def fill(pipe: Pipeline) -> None:
            command, to = pipe.execute_command, self._to
            for e in events:
                ckey, tkeys = customer_window_key(e.customer_id), terminal_keys(e.terminal_id)
                command(
                    "EVALSHA",
                    csha,
                    2,
                    ckey,
                    customer_stats_key(e.customer_id),
                    e.transaction_id,
                    e.ts_ms,
                    customer_member(e.transaction_id, e.ts_ms, e.amount, e.converted),
                    1 if e.converted else 0,
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
                    **to(tkeys[0]),
                )
            pipe.smismember(blocklist_key("customer"), [e.customer_id for e in events])
            pipe.smismember(blocklist_key("terminal"), [e.terminal_id for e in events])

        replies = await self._execute(fill)
        # each script answers its stats as packed little-endian doubles: one pass per batch
        n = len(events)
        cust = np.frombuffer(b"".join(replies[0 : 2 * n : 2]), dtype="<f8")
        term = np.frombuffer(b"".join(replies[1 : 2 * n : 2]), dtype="<f8")
        return (
            cust.reshape(n, CUSTOMER_STATS_LEN),
            term.reshape(n, TERMINAL_STATS_LEN),
            [bool(b) for b in replies[-2]],
            [bool(b) for b in replies[-1]],
        )

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
