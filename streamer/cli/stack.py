"""``fraud-streamer stack``: the local Kafka and Redis that development and the tests run on."""

from __future__ import annotations

import click
from redis.connection import parse_url

from streamer import redis_tls
from streamer.cli import Finite, pass_settings
from streamer.settings import Settings
from streamer.stack import LocalStack, StackError

__all__ = ["stack"]


def _local_stack(settings: Settings) -> LocalStack:
    try:
        return LocalStack(settings, echo=click.echo)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None


def _not_listening(endpoint: object) -> str:
    return (
        f"not listening on {endpoint} (this broker was started without it: "
        "`fraud-streamer stack down` and `up` again to add it)"
    )


def _secure_listener(local: LocalStack) -> str:
    """Where the broker's SASL_SSL listener is and its client settings, or why it is missing."""
    secure = local.secure_listener()
    if secure is not None and local.secure_listening():
        return f"{local.secure}  (client settings: {secure.env_file})"
    return _not_listening(local.secure)


def _mtls_listener(local: LocalStack) -> str:
    """Where the broker's SSL listener is and its client settings, or why it is missing."""
    secure = local.secure_listener()
    if secure is None or not local.mtls_listening():
        return _not_listening(local.mtls)
    if not secure.mtls_env_file.is_file():
        return f"{local.mtls}  (no client certificate: it needs openssl)"
    return f"{local.mtls}  (client settings: {secure.mtls_env_file})"


def _sasl_plaintext_listener(local: LocalStack) -> str:
    """Where the broker's SASL_PLAINTEXT listener is and how to reach it, or why it is missing."""
    secure = local.secure_listener()
    if secure is not None and local.sasl_plaintext_listening():
        return (
            f"{local.sasl_plaintext}  (the SASL_SSL listener's users: its client settings with "
            "STREAMER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT, this address, no CA file)"
        )
    return _not_listening(local.sasl_plaintext)


def _redis_tls(local: LocalStack, settings: Settings) -> str:
    """The URL of Redis's TLS port (the database of STREAMER_REDIS_URL), or why it is missing."""
    tls = local.redis_tls()
    if tls is not None and local.redis_tls_listening():
        db = parse_url(settings.redis_url).get("db", 0)
        return redis_tls.client_url(tls, local.redis_tls_endpoint, db)
    return (
        f"not listening on {local.redis_tls_endpoint} (this Redis was started without it: "
        "`fraud-streamer stack down` and `up` again to add it)"
    )


@click.group()
def stack() -> None:
    """Run a real Apache Kafka (KRaft, one node) and Redis on 127.0.0.1 for development.

    Ports come from STREAMER_KAFKA_BOOTSTRAP_SERVERS and STREAMER_REDIS_URL (the KRaft
    controller takes the broker's port + 1, a listener with SASL over TLS the port + 2, one with
    TLS and client certificates the port + 3, one with SASL without TLS the port + 4, and Redis
    listens with TLS on its port + 1, for
    clients that test the secured settings;
    `up` prints their client settings); everything the services write stays in
    STREAMER_DATA_DIR (default .stack/). The services run in the background and survive the
    command; `down` stops them again. Needs Java 17+ and Maven for Kafka, and redis-server
    (installed with apt-get when missing and allowed). With Docker, `docker compose up` runs the
    same system in containers instead.
    """


@stack.command()
@click.option(
    "--timeout",
    type=Finite(min=1),
    default=90.0,
    show_default=True,
    help="Seconds to wait for both services to answer.",
)
@pass_settings
def up(settings: Settings, timeout: float) -> None:
    """Start Kafka and Redis unless they already run, and wait until both answer.

    Services already answering on their ports are reused (also when something else started
    them). The first run resolves Kafka's jars with Maven and formats the KRaft storage.
    Prints the bootstrap address and the Redis URL to use.
    """
    local = _local_stack(settings)
    try:
        local.up(timeout=timeout)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Kafka bootstrap servers: {local.kafka}")
    click.echo(f"Redis URL:               {settings.redis_url_redacted}")
    click.echo(f"Kafka SASL_SSL listener: {_secure_listener(local)}")
    click.echo(f"Kafka SSL listener:      {_mtls_listener(local)}")
    click.echo(f"Kafka SASL_PLAINTEXT:    {_sasl_plaintext_listener(local)}")
    click.echo(f"Redis over TLS:          {_redis_tls(local, settings)}")


@stack.command()
@click.option(
    "--grace",
    type=Finite(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before a service is killed.",
)
@pass_settings
def down(settings: Settings, grace: float) -> None:
    """Stop the services that `stack up` started here (by their pid files).

    A service running on the same port that this checkout did not start is left alone. Data
    stays in the data directory for the next `up`; delete it to start from empty topics.
    """
    for message in _local_stack(settings).down(grace=grace):
        click.echo(message)


@stack.command()
@pass_settings
def status(settings: Settings) -> None:
    """Show what runs where: address, pid, and whether `stack up` started it.

    Exits with status 0 when both services answer and 3 otherwise (like `systemctl status`),
    so scripts can test it.
    """
    local = _local_stack(settings)
    states = local.status()
    for state in states:
        click.echo(state.describe())
    if states[0].answering:
        click.echo(f"{'':<6} {'SASL_SSL':<14}  {_secure_listener(local)}")
        click.echo(f"{'':<6} {'SSL':<14}  {_mtls_listener(local)}")
        click.echo(f"{'':<6} {'SASL_PLAINTEXT':<14}  {_sasl_plaintext_listener(local)}")
    if states[1].answering:
        click.echo(f"{'':<6} {'TLS':<14}  {_redis_tls(local, settings)}")
    if not all(state.answering for state in states):
        raise SystemExit(3)
