"""The worker's composition root: the one place where adapters are chosen and built.

Nothing here touches the network until the first batch asks for the pipeline, so building the
Faust app (and importing this module) is free of I/O. Tests inject an in-memory store or a
prepared scorer through the constructor.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from models.drift import Profile
from models.registry import ModelRegistry
from streamer import dashboard, rates
from streamer.currency import Currencies
from streamer.drift_watch import DriftWatch
from streamer.features.keys import RATES_KEY
from streamer.features.store import FeatureStore, RedisFeatureStore
from streamer.metrics import Metrics
from streamer.pipeline import BatchOutput, Pipeline
from streamer.redis_client import RedisClient, connect, node_infos
from streamer.rules import Policy
from streamer.scoring import Scorer
from streamer.settings import Settings

__all__ = ["Runtime"]

log = logging.getLogger("streamer.worker")


class Runtime:
    """Lazily built Redis store, model and pipeline of one worker process."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: FeatureStore | None = None,
        registry: ModelRegistry | None = None,
        metrics: Metrics | None = None,
        flat_trees: bool = True,
    ) -> None:
        self.settings = settings
        self._flat_trees = flat_trees  # off only for the bench's hand-built-scorer baseline
        self.registry = registry or ModelRegistry(settings.model_registry)
        self.metrics = metrics or Metrics()
        self._store = store
        self._redis: RedisClient | None = None  # the store's client (unless a store is injected)
        self._scorer: Scorer | None = None
        self._shadow: Scorer | None = None  # scored beside the live model, never acted on
        self._shadow_refused: str | None = None
        self._pipeline: Pipeline | None = None
        self._refused: str | None = None  # last version refused, so it is logged once
        self._drift: tuple[str, DriftWatch | None] | None = None  # per model version
        self._lock = asyncio.Lock()
        #: the exchange rates in force: the settings', then ``fraud-streamer rates`` over them
        self.currencies = Currencies.from_settings(settings)
        self._rate_problems: dict[str, str] = {}  # Redis entries left out, logged once each
        self._rates_failing = False  # reading them failed last time (logged once)
        self.metrics.set_rates(self.currencies)

    @property
    def model_version(self) -> str | None:
        return self._scorer.version if self._scorer else None

    def scorer(self) -> Scorer:
        assert self._scorer is not None, "model not loaded"
        return self._scorer

    def shadow(self) -> Scorer | None:
        """The shadow model, unless it is the one serving (as right after its promotion)."""
        shadow = self._shadow
        return shadow if shadow is not None and shadow.version != self.model_version else None

    async def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            async with self._lock:
                if self._pipeline is None:
                    if self._store is None:
                        self._store = RedisFeatureStore(
                            self._client(),
                            retry_s=self.settings.redis_retry_s,
                            timeout_s=self.settings.redis_timeout_s,
                        )
                    if self._scorer is None:
                        await self.refresh_model()
                    await self.refresh_rates()
                    self._pipeline = Pipeline(
                        store=self._store,
                        scorer=self.scorer,
                        shadow=self.shadow,
                        policy=replace(
                            Policy.from_settings(self.settings), currencies=self.currencies
                        ),
                        max_bytes=self.settings.max_message_bytes,
                        max_ahead_ms=self.settings.max_event_ahead_ms,
                        log_features=bool(self.settings.topic_features),
                    )
        return self._pipeline

    async def refresh_model(self) -> None:
        """Load the promoted version if it is not the one in use (hot reload, no restart).

        Loading runs in a thread so that unpickling a large model (and flattening its trees for
        small batches) does not stall the event loop; the swap is a single assignment, so a
        batch in flight keeps the model it started with. A bad promotion (tampered or unknown
        artifact) is logged and the current model stays in use.
        """
        history, shadow = await asyncio.to_thread(self.registry.promotions)
        await self._refresh_shadow(shadow)
        wanted = history[-1] if history else None
        if wanted is None or wanted in (self.model_version, self._refused):
            return
        try:
            loaded = await asyncio.to_thread(self.registry.load, wanted)
            # flattening the trees is not free: off the event loop too
            scorer = await asyncio.to_thread(Scorer, loaded, flat=self._flat_trees)
        except Exception as exc:
            if self._scorer is None:
                raise
            self._refused = wanted
            log.error(
                "not switching to model %s: %s (still serving %s)", wanted, exc, self.model_version
            )
            return
        previous, self._scorer = self.model_version, scorer
        self.metrics.set_model(scorer.version)
        log.info("serving model %s (was %s)", scorer.version, previous or "none")

    async def refresh_rates(self) -> None:
        """Take up the exchange rates set in Redis (``fraud-streamer rates``) since the last
        look, with no restart; a transaction already received keeps the rates it was
        converted at. When Redis does not answer, the rates in force stay."""
        if self._injected_store:
            return
        try:
            async with asyncio.timeout(self.settings.redis_timeout_s):
                in_force = await rates.effective(self.settings, self._client())
        except (RedisClusterException, RedisError, TimeoutError) as exc:
            if not self._rates_failing:
                log.warning(
                    "could not read the exchange rates from Redis (%s); keeping %s",
                    str(exc) or type(exc).__name__,
                    self.currencies.describe(),
                )
            self._rates_failing = True
            return
        self._rates_failing = False
        currencies, problems = in_force.currencies, dict(in_force.problems)
        for code, problem in problems.items():
            if self._rate_problems.get(code) != problem:
                log.error("exchange rate for %s in Redis (%s) left out: %s; fix it with "
                          "`fraud-streamer rates set` or `rates unset`", code, RATES_KEY,
                          problem)  # fmt: skip
        self._rate_problems = problems
        self.metrics.rates_left_out.set(len(problems))
        if currencies == self.currencies:
            return
        changes = ", ".join(currencies.changes_from(self.currencies))
        self.currencies = currencies
        if self._pipeline is not None:
            self._pipeline.use_currencies(currencies)
        self.metrics.set_rates(currencies)
        log.info("exchange rates now %s (%s)", currencies.describe(), changes)

    async def _refresh_shadow(self, wanted: str | None) -> None:
        """Follow the registry's shadow version (``wanted``) as :meth:`refresh_model` follows
        the live one; a shadow that cannot be loaded is logged once and leaves the worker
        without one (it never affects the decisions)."""
        current = self._shadow.version if self._shadow else None
        if wanted == current or (wanted is not None and wanted == self._shadow_refused):
            return
        scorer = None
        if wanted is None:
            self._shadow_refused = None  # set again later, it is tried again
        else:
            try:
                loaded = await asyncio.to_thread(self.registry.load, wanted)
                scorer = await asyncio.to_thread(Scorer, loaded, flat=self._flat_trees)
            except Exception as exc:
                self._shadow_refused = wanted
                log.error("not scoring with shadow model %s: %s", wanted, exc)
        self._shadow = scorer
        if scorer is not None or current is not None:
            log.info("shadow model %s (was %s)", wanted if scorer else "none", current or "none")

    def observe_drift(self, out: BatchOutput) -> None:
        """Bin a decided batch's rows for the drift watch of the model that scored them (a
        version registered without a profile is not watched)."""
        if out.matrix is None or out.model_scores is None or out.model_version is None:
            return
        if self._drift is None or self._drift[0] != out.model_version:
            scorer = self._scorer
            profile = scorer.model.manifest.profile if scorer is not None else {}
            watched = (
                scorer is not None
                and scorer.version == out.model_version
                and profile
                and self.settings.drift_window_rows > 0
            )
            self._drift = (
                out.model_version,
                DriftWatch(
                    out.model_version,
                    Profile.from_dict(profile),
                    window=self.settings.drift_window_rows,
                )
                if watched
                else None,
            )
        if self._drift[1] is not None:
            self._drift[1].observe(out.matrix, out.model_scores)

    def drift(self) -> dict[str, float] | None:
        """PSI per input of the rows scored lately (None: not watched, or too few rows)."""
        return None if self._drift is None or self._drift[1] is None else self._drift[1].psi()

    @property
    def _injected_store(self) -> bool:
        """A store given by a test (an in-memory one): there is no Redis to read."""
        return self._store is not None and self._redis is None

    def _client(self) -> RedisClient:
        """The Redis client of the store, made on first use. It reads replies without a
        timer each: the store puts one deadline on a batch's round trip, and ``redis_infos``
        one on its own."""
        if self._redis is None:
            self._redis = connect(
                self.settings.redis_url, cluster=self.settings.redis_cluster, socket_timeout=None
            )
        return self._redis

    async def redis_infos(self) -> dict[str, dict[str, Any]] | None:
        """Redis's ``INFO`` memory, stats, server and keyspace sections, by primary (None with a
        store injected by a test, when a node does not answer, or when the server does not
        allow INFO, as some managed services do not)."""
        if self._injected_store:
            return None
        try:
            async with asyncio.timeout(self.settings.redis_timeout_s):
                return await node_infos(self._client(), "memory", "stats", "server", "keyspace")
        except (RedisClusterException, RedisError, TimeoutError):
            return None

    def dashboard_html(self) -> str:
        return dashboard.page("index.html")
