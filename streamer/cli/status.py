"""``fraud-streamer status``: is the system up? Kafka and the contract's topics, the workers
(the consumer group's members and what they have not read yet), Redis and its memory, and the
model being served, one line each, with an exit status a script or a probe can use."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from streamer.cli import pass_settings, state_horizon
from streamer.settings import Settings

__all__ = ["Check", "render", "status"]

TIMEOUT_S = 5.0


@dataclass
class Check:
    """One part of the system: whether it is usable, a line saying how it is, what may go wrong
    with it, and the figures behind that line (for ``--json``). A warning does not make it
    unusable; a part can have several (one per Redis Cluster primary that may evict, and the
    hint to rebuild an empty Redis)."""

    name: str
    ok: bool
    detail: str
    warnings: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def render(checks: list[Check]) -> str:
    """The checks as aligned lines: name, ``ok`` / ``PROBLEM`` (/ ``warning``), what was seen."""
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        state = "ok" if check.ok else "PROBLEM"
        lines.append(f"{check.name.ljust(width)}  {state.ljust(7)}  {check.detail}")
        lines += [f"{''.ljust(width)}  {'warning'.ljust(7)}  {w}" for w in check.warnings]
    return "\n".join(lines)


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _kafka(settings: Settings) -> tuple[Check, dict[str, Any]]:
    """Kafka's check, and each contract topic's partitions (None: not created yet)."""
    from aiokafka.errors import KafkaError

    from streamer.kafka import connection_problem, fetch_broker_ids
    from streamer.kafka_reading import topics_partitions
    from streamer.kafka_topics import contract_topic_names, retention_warnings

    servers = settings.kafka_bootstrap_servers
    problem = await connection_problem(settings, timeout=TIMEOUT_S)
    if problem is not None:
        return Check("kafka", False, problem, data={"bootstrap_servers": servers}), {}
    try:
        brokers = await fetch_broker_ids(settings, timeout=TIMEOUT_S)
        topics = await topics_partitions(settings, contract_topic_names(settings))
    except (KafkaError, OSError, TimeoutError) as exc:  # it answered, then did not
        detail = f"{servers} answered, then failed: {_named(exc)}"
        return Check("kafka", False, detail, data={"bootstrap_servers": servers}), {}
    counts = {t: None if tps is None else len(tps) for t, tps in topics.items()}
    shown = ", ".join(f"{t} {'–' if n is None else n}" for t, n in counts.items())
    missing = [t for t, n in counts.items() if n is None]
    detail = f"{servers}, {len(brokers)} broker(s); partitions: {shown}"
    warnings = await retention_warnings(settings)
    if missing:
        warnings.insert(0, f"not created yet: {', '.join(missing)} (a worker creates them when "
                        "it starts)")  # fmt: skip
    data = {"bootstrap_servers": servers, "brokers": brokers, "partitions": counts}
    return Check("kafka", True, detail, warnings, data), topics


async def _workers(settings: Settings, topics: dict[str, Any]) -> Check:
    from aiokafka.errors import KafkaError

    from streamer.kafka_reading import consumer_group_state

    group = settings.consumer_group
    inputs = (settings.topic_transactions, settings.topic_labels)
    tps = [tp for t in inputs for tp in topics.get(t) or []]
    try:
        members, lag = await consumer_group_state(settings, group, tps)
    except (KafkaError, OSError, TimeoutError) as exc:  # e.g. no coordinator yet, or no right
        return Check("workers", False, f"unknown: Kafka did not describe group {group!r}: "
                     f"{_named(exc)}", data={"group": group})  # fmt: skip
    behind = ", ".join(f"{n:,} {t}" for t, n in lag.items()) or "–"
    detail = f"{members} in group {group!r}; not yet read: {behind}"
    data = {"group": group, "members": members, "not_yet_read": lag}
    if members == 0:
        return Check("workers", False, f"no worker in group {group!r}; not yet read: {behind}",
                     data=data)  # fmt: skip
    return Check("workers", True, detail, data=data)


async def _redis(settings: Settings) -> Check:
    from redis.exceptions import RedisClusterException, RedisError

    from streamer.redis_client import (
        SentinelRedis,
        combined_info,
        connect,
        eviction_warning,
        node_infos,
        redis_problem,
    )

    url, shown, cluster = settings.redis_url, settings.redis_url_redacted, settings.redis_cluster
    problem = await redis_problem(url, shown, TIMEOUT_S, cluster=cluster)
    if problem is not None:
        return Check("redis", False, problem, data={"url": shown})
    client = connect(url, cluster=cluster, socket_timeout=TIMEOUT_S)
    primary = None  # where the Sentinels say the primary is, for a Sentinel URL
    try:
        if isinstance(client, SentinelRedis):
            host, port = await client.connection_pool.get_master_address()
            primary = f"{host}:{port}"
        infos = await node_infos(client, "memory")
        keys = await client.dbsize()
    except (RedisClusterException, RedisError, OSError) as exc:  # INFO restricted: say so
        return Check("redis", True, f"{shown}: answers (INFO refused: {exc})", data={"url": shown})
    finally:
        await client.aclose()
    memory = combined_info(infos)
    limit = int(memory.get("maxmemory", 0))
    used = f"{int(memory['used_memory']) / 2**20:,.1f} MiB used"
    of = f"of {limit / 2**20:,.0f} MiB" if limit else "(no memory limit)"
    nodes = f", {len(infos)} primaries" if cluster else ""
    if primary is not None:
        nodes = f", primary at {primary} (as the Sentinels say)"
    detail = f"{shown}{nodes}: {used} {of}, {keys:,} keys"
    warnings = [w for name, m in infos.items() if (w := eviction_warning(m, name or shown))]
    data = {"url": shown, "used_memory": int(memory["used_memory"]), "maxmemory": limit,
            "keys": keys}  # fmt: skip
    if primary is not None:
        data["primary"] = primary
    return Check("redis", True, detail, warnings, data)


async def _rates(settings: Settings) -> Check:
    """The exchange rates the workers convert at (read as they read them), the entries of
    ``fs:rates`` they leave out, and rates recorded in Kafka that Redis no longer holds."""
    from redis.exceptions import RedisClusterException, RedisError

    from streamer import rates
    from streamer.redis_client import connect

    client = connect(settings.redis_url, cluster=settings.redis_cluster, socket_timeout=TIMEOUT_S)
    try:
        in_force = await rates.effective(settings, client)
    except (RedisClusterException, RedisError, OSError) as exc:
        return Check("rates", False, f"unknown: Redis does not answer ({exc})")
    finally:
        await client.aclose()
    held = in_force.from_redis or in_force.problems  # every entry of fs:rates is one or other
    lost = None if held else await _recorded_rates(settings)
    currencies = in_force.currencies
    detail = currencies.describe()
    if in_force.from_redis:
        detail += f" ({len(in_force.from_redis)} set with `fraud-streamer rates`)"
    warnings = []
    if in_force.problems:
        warnings.append("left out of fs:rates: " + "; ".join(
            f"{code}: {problem}" for code, problem in sorted(in_force.problems.items())
        ))
    if lost:
        warnings.append(
            f"Redis holds none of the {len(lost)} rate(s) last set with `fraud-streamer rates` "
            f"(recorded on {settings.topic_rates}: {', '.join(sorted(lost))}): if it lost "
            f"them, run `fraud-streamer rates restore` (rebuild-state does it too)"
        )
    data = {
        "base": currencies.base,
        "rates": dict(currencies.rates),
        "from_redis": sorted(in_force.from_redis),
        "left_out": dict(in_force.problems),
        "recorded_not_held": sorted(lost or ()),
    }
    return Check("rates", True, detail, warnings, data)


async def _blocklists_lost(settings: Settings) -> list[str]:
    """A warning when Redis lacks blocked ids that Kafka records: a Redis that lost its state,
    all or part, approves every card it lost on its score again, without an error."""
    from redis.exceptions import RedisClusterException, RedisError

    from streamer import blocklists
    from streamer.features.store import RedisFeatureStore
    from streamer.kafka import KafkaUnusable
    from streamer.redis_client import connect

    client = connect(settings.redis_url, cluster=settings.redis_cluster, socket_timeout=TIMEOUT_S)
    try:
        store = RedisFeatureStore(client)
        lacked = await asyncio.wait_for(blocklists.missing(settings, store), TIMEOUT_S)
    except (RedisClusterException, RedisError, OSError, KafkaUnusable, TimeoutError):
        return []  # only a hint: the lines above say what does not answer
    finally:
        await client.aclose()
    if not any(lacked.values()):
        return []
    return [
        f"Redis lacks {blocklists.describe(lacked)} of the blocked ids {settings.topic_blocklists} "
        "records: if it lost them, run `fraud-streamer blocklist restore` (rebuild-state does "
        "it too)"
    ]


async def _recorded_rates(settings: Settings) -> dict[str, str] | None:
    """The rates last recorded in Kafka, or None when there are none or Kafka cannot tell
    (the kafka line says why)."""
    from streamer import rates
    from streamer.kafka import KafkaUnusable

    try:
        return await asyncio.wait_for(rates.recorded(settings), TIMEOUT_S)
    except (KafkaUnusable, rates.NotARecord, TimeoutError):
        return None


def _model(settings: Settings) -> Check:
    from models.registry import ModelRegistry, RegistryError
    from streamer.scoring import check_features

    registry = ModelRegistry(settings.model_registry)
    try:  # what a worker checks before loading: the hash, and the features it computes
        manifest = registry.verified_current()
        check_features(manifest)
        shadow = registry.shadow_version()
    except RegistryError as exc:
        return Check("model", False, str(exc), data={"registry": str(settings.model_registry)})
    version = manifest.version
    ap = manifest.validation("average_precision")
    quality = "" if ap is None else f", validation AP {ap:.3f}"
    detail = f"{version} promoted ({manifest.algorithm}, created {manifest.created}{quality})"
    warnings = []
    if shadow is not None:
        detail += f"; shadow {shadow} (decisions on {settings.topic_shadow_decisions})"
        try:
            check_features(registry.verify(shadow))
        except RegistryError as exc:  # the workers score without it
            warnings.append(f"the shadow is not scored: {exc}")
    data = {"version": version, "algorithm": manifest.algorithm, "created": manifest.created,
            "validation_average_precision": ap, "shadow": shadow}  # fmt: skip
    return Check("model", True, detail, warnings, data)


async def _held(settings: Settings, tps: list[Any]) -> int:
    """How many records the partitions ``tps`` hold (what retention has kept)."""
    from streamer.kafka import make_consumer, running

    if not tps:
        return 0
    async with running(make_consumer(settings, group_id=None)) as consumer:
        starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    return sum(ends[tp] - starts[tp] for tp in tps)


async def gather(settings: Settings) -> list[Check]:
    """Every check; one that cannot run (Kafka down: the workers are unknown) says why."""
    from aiokafka.errors import KafkaError

    kafka, topics = await _kafka(settings)
    if kafka.ok:
        workers = await _workers(settings, topics)
    else:
        workers = Check("workers", False, "unknown: Kafka does not answer")
    redis = await _redis(settings)
    if kafka.ok and redis.data.get("keys") == 0:
        try:
            held = await _held(settings, topics.get(settings.topic_transactions) or [])
        except (KafkaError, OSError, TimeoutError):
            held = 0  # only a hint: the Kafka check above has said what it could
        if held:  # state lost (or never built) while its history is still in Kafka
            redis.warnings.append(
                f"Redis holds no feature state but {settings.topic_transactions} holds {held:,} "
                "records: if it lost its state, run `fraud-streamer rebuild-state`"
            )
    if kafka.ok and redis.ok:
        redis.warnings += await _blocklists_lost(settings)
    rates = await _rates(settings) if redis.ok else Check(
        "rates", False, "unknown: Redis does not answer"
    )
    return [kafka, workers, redis, rates, _model(settings)]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@pass_settings
@state_horizon
def status(settings: Settings, as_json: bool) -> None:
    """Show whether the system is up, one line per part: Kafka and the contract's topics, the
    workers (members of STREAMER_CONSUMER_GROUP and the input records they have not read yet),
    Redis (memory used, eviction risk), the exchange rates the workers convert at, and the
    promoted model (its hash verified).

    Exits 0 when all are usable, 1 when any is not (Kafka or Redis does not answer, no worker
    is in the group, no model is promoted or its artifact fails its hash). Warnings (topics
    not created yet or kept for less than the state's {state_days}, a Redis that may evict state,
    an empty Redis while the transactions topic holds records: see `rebuild-state`; a Redis
    without the blocklists Kafka records: see `blocklist restore`; a rate in Redis the
    workers cannot use) do not change the exit status.
    """
    checks = asyncio.run(gather(settings))
    ok = all(c.ok for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": {c.name: asdict(c) for c in checks}}))
    else:
        click.echo(render(checks))
    if not ok:
        raise SystemExit(1)
