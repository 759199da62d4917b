"""The contract's topics on Kafka: created explicitly, with the partitions, replication and
retention the design expects, and checked for a retention too short for ``rebuild-state``.

Topics are never left to the broker's auto-creation: that would give them its default partition
count and a 7-day retention, less than the feature state's horizon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from streamer.features.definitions import DAY_MS, RETENTION_DAYS
from streamer.kafka import (
    KafkaUnusable,
    client_options,
    failure_reason,
    fetch_broker_ids,
    quiet_failed_connections,
)
from streamer.settings import Settings

__all__ = [
    "contract_topic_names",
    "contract_topics",
    "ensure_contract_topics",
    "ensure_topics",
    "replication_factor",
    "retention_warnings",
]


def contract_topic_names(settings: Settings) -> tuple[str, ...]:
    """The five topics of the wire contract, under their configured names (and the optional
    feature log, when it is switched on)."""
    names = (
        settings.topic_transactions,
        settings.topic_labels,
        settings.topic_decisions,
        settings.topic_alerts,
        settings.topic_dead_letters,
    )
    return (*names, settings.topic_features) if settings.topic_features else names


async def ensure_contract_topics(settings: Settings) -> None:
    """:func:`contract_topics`, failing with :func:`connection_problem`'s reason when Kafka
    cannot be used (the check only runs after a failure: no extra connection otherwise)."""
    started = time.monotonic()
    try:
        await contract_topics(settings)
    except Exception as exc:
        problem = await failure_reason(settings, exc, started)
        quiet_failed_connections(asyncio.get_running_loop())
        raise KafkaUnusable(
            f"cannot create the topics on Kafka at {settings.kafka_bootstrap_servers}{problem}"
        ) from exc


async def contract_topics(settings: Settings) -> list[str]:
    """Ensure the five contract topics exist, and the shadow decisions' topic (a worker may be
    given a shadow model at any time); returns the names created. The input topics keep their
    records for ``STREAMER_INPUT_RETENTION_DAYS``: they are what ``rebuild-state`` rebuilds
    the feature state from (Kafka's default, 7 days, is less than the state holds)."""
    inputs = (settings.topic_transactions, settings.topic_labels)
    kept = {"retention.ms": str(settings.input_retention_ms)}
    created = await ensure_topics(settings, inputs, configs=kept)
    names = (*contract_topic_names(settings), settings.topic_shadow_decisions)
    return created + await ensure_topics(settings, [n for n in names if n not in inputs])


async def ensure_topics(
    settings: Settings,
    names: Iterable[str],
    partitions: int | None = None,
    *,
    timeout: float = 30.0,
    configs: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet and return the names created (with the topic
    ``configs`` given, e.g. ``cleanup.policy``).

    Topics are created explicitly, never by the broker's auto-creation, so that they get the
    partition count the design expects (``settings.partitions`` unless given) and the
    replication :func:`replication_factor` gives. An existing topic is left as it is, whatever
    its partition count: repartitioning is a migration, not a side effect of starting a
    process. Returns once every topic has a leader for each partition, so a producer started
    right after does not race the creation.
    """
    wanted = list(dict.fromkeys(names))
    count = settings.partitions if partitions is None else partitions
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        created: list[str] = []
        if missing:
            replicas = replication_factor(
                settings, len(await fetch_broker_ids(settings, timeout=timeout))
            )
            response = await admin.create_topics(
                [
                    NewTopic(name, count, replicas, topic_configs=dict(configs or {}))
                    for name in missing
                ],
                timeout_ms=int(timeout * 1000),
            )
            for topic, code, *rest in response.topic_errors:
                error = for_code(code) if code else None
                if error is None:
                    created.append(topic)
                elif error is not TopicAlreadyExistsError:  # lost a race: someone made it
                    message = rest[0] if rest and rest[0] else error.__name__
                    raise error(
                        f"cannot create topic {topic!r} ({count} partitions, {replicas} "
                        f"replicas; see STREAMER_PARTITIONS, STREAMER_TOPIC_REPLICATION_FACTOR): "
                        f"{message}"
                    )
    finally:
        await admin.close()
    await _wait_for_leaders(settings, wanted, timeout)
    return created


def replication_factor(settings: Settings, brokers: int) -> int:
    """Replicas per partition of a topic we create: ``STREAMER_TOPIC_REPLICATION_FACTOR``, or
    one per broker up to 3 — the local single broker's 1, a production cluster's usual 3
    (aiokafka's CreateTopics predates asking for the broker's own default)."""
    if settings.topic_replication_factor is not None:
        return settings.topic_replication_factor
    return max(1, min(3, brokers))


async def retention_warnings(settings: Settings, *, decisions: bool = False) -> list[str]:
    """Why the input topics may not hold the history the feature state needs: each one that
    keeps records for less than the state's horizon (``retention.ms``; -1 keeps them for
    ever), as an operator should read it; with ``decisions``, the decisions topic too, from
    which ``rebuild-state`` pins the verdicts again. Advice only: topics that do not exist
    yet, or whose configuration Kafka will not show (an ACL without DescribeConfigs), are left
    out."""
    inputs = [settings.topic_transactions, settings.topic_labels]
    topics = [*inputs, settings.topic_decisions] if decisions else inputs
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        asked = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics if t in existing]
        responses = await admin.describe_configs(asked) if asked else []
    except (KafkaError, OSError):
        return []
    finally:
        await admin.close()
    warnings = []
    for response in responses:
        for error, _, _, topic, entries in response.resources:
            if error:
                continue
            kept = next((int(e[1]) for e in entries if e[0] == "retention.ms"), -1)
            if 0 <= kept < RETENTION_DAYS * DAY_MS:
                what = (
                    "`rebuild-state` can replay only what it keeps"
                    if topic in inputs
                    else "`rebuild-state` pins again only the verdicts it keeps (a transaction "
                    "decided before and delivered again is decided anew)"
                )
                warnings.append(
                    f"{topic} keeps records for {kept / DAY_MS:g} days (retention.ms), less than "
                    f"the {RETENTION_DAYS} days of history the feature windows hold: {what}. "
                    f"Raise its retention.ms (e.g. kafka-configs.sh --alter --entity-type "
                    f"topics --entity-name {topic} --add-config "
                    f"retention.ms={settings.input_retention_ms})"
                )
    return warnings


async def _wait_for_leaders(settings: Settings, topics: list[str], timeout: float) -> None:
    """Wait until the metadata shows a leader for every partition of ``topics``."""
    client = AIOKafkaClient(**client_options(settings))
    deadline = time.monotonic() + timeout
    try:
        await client.bootstrap()
        while True:
            cluster = await client.fetch_all_metadata()
            pending = [t for t in topics if not _has_leaders(cluster, t)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics without partition leaders after {timeout}s: {pending}")
            await asyncio.sleep(0.1)
    finally:
        await client.close()


def _has_leaders(cluster: ClusterMetadata, topic: str) -> bool:
    partitions = cluster.partitions_for_topic(topic)
    return bool(partitions) and partitions == cluster.available_partitions_for_topic(topic)
