"""The project's Kafka clients, built in one place from the ``Settings``.

The CLI, the benchmark and the tests get their producers, consumers and topics from here, and
every client's connection and security options (the worker's too, through
:func:`client_options`) are translated once. The worker's own consumer and producer are
Faust's, set in :func:`streamer.app.app_options` and :mod:`streamer.transport` to the same
delivery guarantees (idempotent ``acks="all"`` producers, manual commits).

aiokafka's constructors bind to the running event loop, so ``make_producer`` and
``make_consumer`` must be called from a coroutine. They do no network I/O: the caller starts the
client when it is ready to use it (and stops it).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
    for_code,
)
from aiokafka.helpers import create_ssl_context

from streamer.features.definitions import DAY_MS, RETENTION_DAYS
from streamer.processes import KAFKA_PORT, parse_host_port
from streamer.settings import Settings
from streamer.tls_alert import tls_alert

__all__ = [
    "KafkaSettingsError",
    "KafkaUnusable",
    "client_options",
    "connection_problem",
    "contract_topic_names",
    "contract_topics",
    "ensure_contract_topics",
    "ensure_topics",
    "failure_reason",
    "fetch_broker_ids",
    "make_consumer",
    "make_producer",
    "partitions",
    "partitions_to_read",
    "read_to_end",
    "replication_factor",
    "retention_warnings",
    "running",
    "topic_partitions",
]

# How long the CLI's producers wait to fill a batch: long enough to batch a command's sends,
# short enough not to show (the worker's producer lingers 2 ms, see app.app_options).
PRODUCER_LINGER_MS = 5

ENV = "STREAMER_KAFKA_"


class KafkaSettingsError(ValueError):
    """The Kafka security settings cannot be turned into client options; says which and why."""


class KafkaUnusable(Exception):
    """Kafka cannot be used with these settings; the message names the reason."""


def client_options(settings: Settings) -> dict[str, Any]:
    """The aiokafka keyword arguments shared by every client: brokers and security.

    SASL and TLS options are only set for the protocols that use them, so a PLAINTEXT setup
    never needs certificate files or credentials to exist.
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    if protocol in ("SSL", "SASL_SSL"):
        try:
            options["ssl_context"] = create_ssl_context(
                cafile=settings.kafka_ssl_cafile,
                certfile=settings.kafka_ssl_certfile,
                keyfile=settings.kafka_ssl_keyfile,
            )
        except (OSError, ssl.SSLError) as exc:
            files = {
                f"{ENV}SSL_{name.upper()}": path
                for name, path in (
                    ("cafile", settings.kafka_ssl_cafile),
                    ("certfile", settings.kafka_ssl_certfile),
                    ("keyfile", settings.kafka_ssl_keyfile),
                )
                if path is not None
            }
            named = ", ".join(f"{k}={v}" for k, v in files.items()) or "no files"
            raise KafkaSettingsError(f"cannot set up TLS from {named}: {exc}") from None
    return options


async def ensure_contract_topics(settings: Settings) -> None:
    """:func:`contract_topics`, failing with :func:`connection_problem`'s reason when Kafka
    cannot be used (the check only runs after a failure: no extra connection otherwise)."""
    started = time.monotonic()
    try:
        await contract_topics(settings)
    except Exception as exc:
        problem = await failure_reason(settings, exc, started)
        _quiet_failed_connections(asyncio.get_running_loop())
        raise KafkaUnusable(
            f"cannot create the topics on Kafka at {settings.kafka_bootstrap_servers}{problem}"
        ) from exc


def _quiet_failed_connections(loop: asyncio.AbstractEventLoop) -> None:
    """Drop the loop's "Future exception was never retrieved" reports of connection errors.

    After a refused TLS handshake, aiokafka leaves the error on a request future nobody awaits;
    when the process exits, the future is collected and Python prints its traceback after the
    one-line reason the caller is about to give, which already names the cause. Anything else
    still reaches the loop's handler.
    """
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "Future exception was never retrieved" and isinstance(
            context.get("exception"), OSError | KafkaConnectionError
        ):
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)


async def failure_reason(settings: Settings, exc: BaseException, started: float) -> str:
    """Why a Kafka call begun at ``started`` (``time.monotonic()``) failed with ``exc``, for
    the end of a sentence: ": <reason>" from :func:`connection_problem` (the exception's own
    words if a connection works), preceded by " after N s" when that took long enough to be
    worth saying. The client's own timeouts (40 s for a request) come before the check's, so
    a broker that accepts connections and never answers is given up on after both."""
    # a broker's refusal already reads "[Error N] Name: what" (see ensure_topics)
    named = str(exc) if isinstance(exc, KafkaError) else f"{type(exc).__name__}: {exc}"
    problem = await connection_problem(settings) or named
    waited = time.monotonic() - started
    return f"{f' after {waited:.0f} s' if waited >= 2 else ''}: {problem}"


async def connection_problem(settings: Settings, timeout: float = 10.0) -> str | None:
    """Why a client with these settings cannot talk to Kafka, in words; None when it can.

    aiokafka's bootstrap logs each server's failure and then raises a bare "Unable to
    bootstrap", which reads the same for a stopped broker, a refused password and an untrusted
    certificate. This connects to each bootstrap server itself and names the real reason and
    the setting to look at. The first server that accepts ends the check.
    """
    try:
        options = client_options(settings)
    except KafkaSettingsError as exc:
        return str(exc)
    servers = options.pop("bootstrap_servers")
    protocol = settings.kafka_security_protocol
    problems = []
    for server in servers:
        try:
            endpoint = parse_host_port(server, default_port=KAFKA_PORT)
        except ValueError as exc:
            problems.append(f"{ENV}BOOTSTRAP_SERVERS: {exc}")
            continue
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    endpoint.host, endpoint.port, request_timeout_ms=int(timeout * 1000), **options
                ),
                timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            problems.append(
                f"{server} presented a certificate this client does not trust "
                f"({exc.verify_message}): check {ENV}SSL_CAFILE"
            )
        except ssl.SSLError as exc:
            problems.append(
                f"the TLS handshake with {server} failed ({exc.reason or exc}); with "
                f"{ENV}SECURITY_PROTOCOL={protocol}, is that a TLS listener?"
            )
        except SaslAuthenticationFailed:
            problems.append(
                f"{server} refused SASL {settings.kafka_sasl_mechanism} authentication as "
                f"{settings.kafka_sasl_username!r}: check {ENV}SASL_USERNAME, _PASSWORD and "
                f"_MECHANISM"
            )
        except UnsupportedSaslMechanismError:
            problems.append(
                f"{server} does not offer SASL {settings.kafka_sasl_mechanism}: check "
                f"{ENV}SASL_MECHANISM"
            )
        except ConnectionRefusedError:
            problems.append(
                f"nothing listens at {server} (is Kafka running? `fraud-streamer stack up`)"
            )
        except (ConnectionResetError, KafkaConnectionError):
            refused = None
            if options.get("ssl_context") is not None:
                refused = await tls_alert(
                    endpoint.host, endpoint.port, options["ssl_context"], timeout
                )
            if refused is None:
                problems.append(
                    f"{server} closed the connection; a listener that expects another "
                    f"protocol than {ENV}SECURITY_PROTOCOL={protocol} does this"
                )
            elif settings.kafka_ssl_certfile is None:
                problems.append(
                    f"{server} refused a TLS client without a certificate ({refused}): it "
                    f"requires one; set {ENV}SSL_CERTFILE and {ENV}SSL_KEYFILE"
                )
            else:
                problems.append(
                    f"{server} refused the client certificate in {ENV}SSL_CERTFILE ({refused}): "
                    "is it signed by a CA the broker trusts, for client authentication?"
                )
        except TimeoutError:
            problems.append(
                f"{server} did not answer within {timeout:.0f} s; a listener that expects "
                f"another protocol than {ENV}SECURITY_PROTOCOL={protocol} can look like this"
            )
        except Exception as exc:
            problems.append(
                f"cannot connect to {server} with {ENV}SECURITY_PROTOCOL={protocol}: "
                f"{type(exc).__name__}: {exc}"
            )
        else:
            conn.close()
            return None
    return "; ".join(problems)


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that neither loses nor duplicates a message on retry (not started).

    ``acks="all"`` with idempotence is what lets the worker commit its input offsets as soon as
    the outputs of a batch are acknowledged: an acknowledged message is durable and written once.
    """
    options: dict[str, Any] = {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": PRODUCER_LINGER_MS,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer (not started), of ``group_id`` if one is given, that commits only when told
    to; the CLI's readers pass None and assign partitions themselves.

    Auto-commit would acknowledge input whose outputs may not be written yet; offsets are
    committed after the batch is published instead. A new group starts from the earliest
    offset so that nothing produced before the first start is missed. Records of aborted Kafka
    transactions are read too unless ``isolation_level="read_committed"`` is passed (the
    readers of input topics pass it; the worker does not publish in transactions).
    """
    options: dict[str, Any] = {
        **client_options(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


Client = TypeVar("Client", AIOKafkaConsumer, AIOKafkaProducer)


@asynccontextmanager
async def running(client: Client) -> AsyncIterator[Client]:
    """An aiokafka client, started, and stopped however the block ends (even mid-start)."""
    try:
        await client.start()
        yield client
    finally:
        await client.stop()


def partitions(topic: str, count: int) -> list[TopicPartition]:
    """The partitions of a topic the caller created itself with ``count`` partitions (the
    benchmark's own topics); for any other, ask the cluster (:func:`topic_partitions`):
    :func:`ensure_topics` leaves a topic that exists as it is."""
    return [TopicPartition(topic, p) for p in range(count)]


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


async def fetch_broker_ids(settings: Settings, timeout: float = 5.0) -> list[int]:
    """Ask the cluster for its metadata and return the ids of the live brokers.

    A full metadata round trip, not just a TCP connect: a broker only lists itself once it
    has registered with the controller and can serve requests.
    """
    client = AIOKafkaClient(**client_options(settings), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        return sorted(broker.nodeId for broker in client.cluster.brokers())
    finally:
        await client.close()


async def topic_partitions(settings: Settings, topic: str) -> list[TopicPartition] | None:
    """The partitions ``topic`` has on the cluster, whatever it was created with; None when
    there is no such topic."""
    return (await topics_partitions(settings, [topic]))[topic]


async def partitions_to_read(settings: Settings, topic: str) -> list[TopicPartition] | None:
    """:func:`topic_partitions`, with a failure to ask as :class:`KafkaUnusable` naming the
    topic (for the commands that read a record of theirs back)."""
    started = time.monotonic()
    try:
        return await topic_partitions(settings, topic)
    except (KafkaError, OSError) as exc:
        problem = await failure_reason(settings, exc, started)
        raise KafkaUnusable(
            f"cannot read {topic} from Kafka at {settings.kafka_bootstrap_servers}{problem}"
        ) from exc


async def topics_partitions(
    settings: Settings, topics: Sequence[str]
) -> dict[str, list[TopicPartition] | None]:
    """:func:`topic_partitions` of each of ``topics``, from one metadata request."""
    client = AIOKafkaClient(**client_options(settings))
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
    finally:
        await client.close()
    found = {topic: metadata.partitions_for_topic(topic) for topic in topics}
    return {
        topic: None if ids is None else [TopicPartition(topic, p) for p in sorted(ids)]
        for topic, ids in found.items()
    }


async def read_to_end(
    settings: Settings,
    topic: str,
    handle: Callable[[ConsumerRecord[bytes, bytes]], object],
    *,
    tail: int | None = None,
    progress: Callable[[int], object] | None = None,
    start: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Hand every record of ``topic`` to ``handle``, partition by partition in offset order,
    up to its end as of the call (what is written meanwhile is not waited for); with ``tail``,
    only each partition's last ``tail`` records; with ``start``, from that offset on in each
    partition it names (a partition it does not name from its beginning). ``progress`` gets
    each fetch's count. Returns each partition's end, as read to (a ``start`` for the next
    call). Raises :class:`KafkaUnusable`, naming why, when there is no such topic or Kafka
    cannot be read."""
    started = time.monotonic()
    try:
        found = await _read_to_end(settings, topic, handle, tail, progress, start or {})
    except (KafkaError, OSError) as exc:
        problem = await failure_reason(settings, exc, started)
        raise KafkaUnusable(
            f"cannot read {topic} from Kafka at {settings.kafka_bootstrap_servers}{problem}"
        ) from exc
    if found is None:
        raise KafkaUnusable(f"no topic {topic!r} on Kafka at {settings.kafka_bootstrap_servers}")
    return found


async def _read_to_end(
    settings: Settings,
    topic: str,
    handle: Callable[[ConsumerRecord[bytes, bytes]], object],
    tail: int | None,
    progress: Callable[[int], object] | None,
    start: Mapping[int, int],
) -> dict[int, int] | None:
    tps = await topic_partitions(settings, topic)
    if tps is None:
        return None
    # what the workers read: never what a transactional producer aborted (nor, yet, what it
    # has not committed)
    reader = make_consumer(settings, group_id=None, isolation_level="read_committed")
    async with running(reader) as consumer:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            first = await consumer.position(tp)
            # from the beginning, the start given, or the tail's first, whichever is latest
            at = max(first, start.get(tp.partition, first),
                     first if tail is None else ends[tp] - tail)  # fmt: skip
            if at > first:
                consumer.seek(tp, at)
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        await _read_until(consumer, {tp: ends[tp] for tp in pending}, handle, progress)
    return {tp.partition: ends[tp] for tp in tps}


async def _read_until(
    consumer: AIOKafkaConsumer,
    ends: Mapping[TopicPartition, int],
    handle: Callable[[ConsumerRecord[bytes, bytes]], object],
    progress: Callable[[int], object] | None = None,
    timeout: float | None = None,
) -> set[TopicPartition]:
    """Hand ``handle`` each record before its partition's end, until every partition's
    position reaches its end; returns those that had not when ``timeout`` (s) ran out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = set(ends)
    while pending and (deadline is None or time.monotonic() < deadline):
        batch = await consumer.getmany(*pending, timeout_ms=200 if deadline else 1000)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    handle(record)
            if progress is not None:
                progress(len(records))
        for tp in list(pending):  # the end may be a transaction marker: no record there
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return pending


#: Gaps this short between a group's commit and a partition's end are read to tell records
#: from transaction markers (:func:`consumer_group_state`).
MARKER_PROBE_MAX = 16


async def consumer_group_state(
    settings: Settings, group: str, tps: Sequence[TopicPartition]
) -> tuple[int, dict[str, int]]:
    """How many members ``group`` has, and per topic of ``tps`` (the partitions to look at, from
    :func:`topic_partitions`) how many records it has not committed yet (the end of each
    partition minus the group's committed offset there; a partition without a commit counts
    from its first record).

    The end is what a committed-records reader sees (the last stable offset). Each commit or
    abort of a Kafka transaction writes a marker after its records, which no reader is handed,
    so a group that has read everything still commits short of the end; the few offsets left
    on such a partition (at most :data:`MARKER_PROBE_MAX`) are read to count the records
    among them. A longer gap counts every offset, markers included.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
        members = sum(len(g[5]) for response in described for g in response.groups)
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    reader = make_consumer(settings, group_id=None, isolation_level="read_committed")
    async with running(reader) as consumer:
        ends = await consumer.end_offsets(tps) if tps else {}
        starts = await consumer.beginning_offsets(tps) if tps else {}
        gaps = {}
        for tp in tps:
            done = committed.get(tp)
            start = starts[tp] if done is None or done.offset < 0 else done.offset
            gaps[tp] = (start, max(ends[tp], start))
        short = {tp: gap for tp, gap in gaps.items() if 0 < gap[1] - gap[0] <= MARKER_PROBE_MAX}
        held = await _records_between(consumer, short) if short else {}
    lag = dict.fromkeys((tp.topic for tp in tps), 0)
    for tp, (start, end) in gaps.items():
        lag[tp.topic] += held.get(tp, end - start)
    return members, lag


async def _records_between(
    consumer: AIOKafkaConsumer, gaps: Mapping[TopicPartition, tuple[int, int]]
) -> dict[TopicPartition, int]:
    """How many records a committed-records reader is handed in each partition's offsets
    [start, end); a partition not read to its end within a second is left out."""
    consumer.assign(list(gaps))
    for tp, (start, _) in gaps.items():
        consumer.seek(tp, start)
    counts = dict.fromkeys(gaps, 0)

    def count(record: ConsumerRecord[bytes, bytes]) -> None:
        counts[TopicPartition(record.topic, record.partition)] += 1

    ends = {tp: end for tp, (_, end) in gaps.items()}
    unread = await _read_until(consumer, ends, count, timeout=1.0)
    return {tp: n for tp, n in counts.items() if tp not in unread}


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
