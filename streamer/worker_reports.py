"""What the worker tells its operator on a timer, beside deciding: drifted model inputs, and
Redis's memory, evictions and lost state.

Each report refreshes its gauges and logs a warning or an error that names what to do. They
read what the worker already has (its runtime's drift windows, each Redis primary's ``INFO``),
and hold only what keeps a warning from repeating; :mod:`streamer.app` calls them on timers.
"""

from __future__ import annotations

import logging

from models.drift import PSI_ACT, PSI_WATCH
from streamer.redis_client import combined_info, database
from streamer.redis_watch import KeyWatch
from streamer.runtime import Runtime

__all__ = ["DriftReport", "RedisReport"]

log = logging.getLogger("streamer.worker")


class DriftReport:
    """Sets the drift gauges, and warns once of each input whose PSI reaches ``PSI_ACT``,
    again only after it has come back under ``PSI_WATCH``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.drifted: set[str] = set()  # inputs warned about, until back under PSI_WATCH

    def report(self) -> None:
        values = self.runtime.drift()
        self.runtime.metrics.set_drift(values)
        for name, value in (values or {}).items():
            if value >= PSI_ACT and name not in self.drifted:
                self.drifted.add(name)
                log.warning(
                    "model input %s has drifted: PSI %.2f over the last rows scored, against "
                    "the profile of model %s (above %.2f it no longer looks like what the "
                    "model was made for: retrain, or look for a producer that changed)",
                    name,
                    value,
                    self.runtime.model_version,
                    PSI_ACT,
                )
            elif value < PSI_WATCH:
                self.drifted.discard(name)


class RedisReport:
    """Reads every Redis primary's ``INFO`` and sets the memory and key gauges; logs window
    state lost (:class:`~streamer.redis_watch.KeyWatch`), a restart that may have lost the
    last writes, and keys Redis evicted since the last read."""

    def __init__(self, runtime: Runtime, interval_s: float) -> None:
        self.runtime = runtime
        self.interval_s = interval_s  # how often it is called: the eviction warning says it
        self.key_watch = KeyWatch(db=database(runtime.settings.redis_url))

    async def report(self) -> None:
        infos = await self.runtime.redis_infos()
        if infos is None:
            return
        metrics, key_watch = self.runtime.metrics, self.key_watch
        info = combined_info(infos)
        losses = key_watch.observe(infos)
        metrics.redis_keys.set(key_watch.total)
        for loss in losses:
            metrics.redis_state_losses.inc()
            log.error(
                "%s: the window state was lost, and features count fewer transactions than "
                "happened until it is rebuilt: run `fraud-streamer rebuild-state` (README: "
                "Replay and rebuilding Redis)",
                loss.describe(key_watch.db),
            )
        for restart in key_watch.restarted:
            log.warning(
                "%s: writes it had not saved before it stopped are lost unless its persistence "
                "writes every command through (appendfsync always); if not, run `fraud-streamer "
                "rebuild-state` (README: Replay and rebuilding Redis)",
                restart.describe(key_watch.db),
            )
        evicted = metrics.set_redis(info)
        if evicted:
            log.warning(
                "Redis evicted %d keys in the last %.0f s (maxmemory %s, maxmemory-policy %s): "
                "window state was lost, and features will count fewer transactions than "
                "happened until it is rebuilt; see the README's Operations",
                evicted,
                self.interval_s,
                info.get("maxmemory_human"),
                info.get("maxmemory_policy"),
            )
