"""The project's Kafka clients, built in one place from the ``Settings``.

The CLI, the benchmark and the tests get their producers and consumers from here (the topics
from :mod:`streamer.kafka_topics`, the readers of a topic from :mod:`streamer.kafka_reading`), and
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context

from streamer.processes import KAFKA_PORT, parse_host_port
from streamer.settings import Settings
from streamer.tls_alert import tls_alert

__all__ = [
    "KafkaSettingsError",
    "KafkaUnusable",
    "client_options",
    "connection_problem",
    "failure_reason",
    "fetch_broker_ids",
    "make_consumer",
    "make_producer",
    "quiet_failed_connections",
    "running",
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


def quiet_failed_connections(loop: asyncio.AbstractEventLoop) -> None:
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
    problems = []
    for server in servers:
        problem = await _server_problem(settings, server, options, timeout)
        if problem is None:
            return None
        problems.append(problem)
    return "; ".join(problems)


async def _server_problem(
    settings: Settings, server: str, options: dict[str, Any], timeout: float
) -> str | None:
    """Why ``server`` refuses a client with these ``options``, naming the setting to look at;
    None when it accepts one."""
    protocol = settings.kafka_security_protocol
    try:
        endpoint = parse_host_port(server, default_port=KAFKA_PORT)
    except ValueError as exc:
        return f"{ENV}BOOTSTRAP_SERVERS: {exc}"
    try:
        conn = await asyncio.wait_for(
            create_conn(
                endpoint.host, endpoint.port, request_timeout_ms=int(timeout * 1000), **options
            ),
            timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        return (
            f"{server} presented a certificate this client does not trust "
            f"({exc.verify_message}): check {ENV}SSL_CAFILE"
        )
    except ssl.SSLError as exc:
        return (
            f"the TLS handshake with {server} failed ({exc.reason or exc}); with "
            f"{ENV}SECURITY_PROTOCOL={protocol}, is that a TLS listener?"
        )
    except SaslAuthenticationFailed:
        return (
            f"{server} refused SASL {settings.kafka_sasl_mechanism} authentication as "
            f"{settings.kafka_sasl_username!r}: check {ENV}SASL_USERNAME, _PASSWORD and "
            f"_MECHANISM"
        )
    except UnsupportedSaslMechanismError:
        return (
            f"{server} does not offer SASL {settings.kafka_sasl_mechanism}: check "
            f"{ENV}SASL_MECHANISM"
        )
    except ConnectionRefusedError:
        return f"nothing listens at {server} (is Kafka running? `fraud-streamer stack up`)"
    except (ConnectionResetError, KafkaConnectionError):
        refused = None
        if options.get("ssl_context") is not None:
            refused = await tls_alert(endpoint.host, endpoint.port, options["ssl_context"], timeout)
        if refused is None:
            return (
                f"{server} closed the connection; a listener that expects another "
                f"protocol than {ENV}SECURITY_PROTOCOL={protocol} does this"
            )
        if settings.kafka_ssl_certfile is None:
            return (
                f"{server} refused a TLS client without a certificate ({refused}): it "
                f"requires one; set {ENV}SSL_CERTFILE and {ENV}SSL_KEYFILE"
            )
        return (
            f"{server} refused the client certificate in {ENV}SSL_CERTFILE ({refused}): "
            "is it signed by a CA the broker trusts, for client authentication?"
        )
    except TimeoutError:
        return (
            f"{server} did not answer within {timeout:.0f} s; a listener that expects "
            f"another protocol than {ENV}SECURITY_PROTOCOL={protocol} can look like this"
        )
    except Exception as exc:
        return (
            f"cannot connect to {server} with {ENV}SECURITY_PROTOCOL={protocol}: "
            f"{type(exc).__name__}: {exc}"
        )
    conn.close()
    return None


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
