"""``fraud-streamer blocklist``: the customer and terminal blocklists kept in Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click

from streamer.cli import pass_settings, record_in_kafka, with_redis
from streamer.settings import Settings

KIND = click.Choice(["customer", "terminal"])


def _run(settings: Settings, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from streamer.features.store import RedisFeatureStore

    return with_redis(settings, lambda client: action(RedisFeatureStore(client)))


def _record(settings: Settings, kind: str, ids: tuple[str, ...], *, blocked: bool) -> None:
    """Record the change in Kafka, from where a Redis that loses the lists gets them back
    (``blocklist restore``, ``rebuild-state``)."""
    from streamer import blocklists

    record_in_kafka(
        settings,
        lambda: blocklists.record(settings, kind, ids, blocked=blocked),  # type: ignore[arg-type]
        settings.topic_blocklists,
        done="the blocklist is changed in Redis, and the workers apply it", what="the change",
        lost="the lists will not get this change back",
    )  # fmt: skip


@click.group()
def blocklist() -> None:
    """Block cards or terminals: their transactions are declined by rule.

    Workers read the lists on every batch, so a change applies within milliseconds, with no
    restart. Blocked transactions carry RULE_CUSTOMER_BLOCKED or RULE_TERMINAL_BLOCKED in their
    reasons. The lists are kept in Redis, and each change is also recorded in Kafka
    (STREAMER_TOPIC_BLOCKLISTS), from where `blocklist restore` and `rebuild-state` set them
    again in a Redis that lost them.
    """


@blocklist.command("add")
@click.argument("kind", type=KIND)
@click.argument("ids", nargs=-1, required=True)
@pass_settings
def add(settings: Settings, kind: str, ids: tuple[str, ...]) -> None:
    """Add customer or terminal IDS to the blocklist."""
    ids = tuple(dict.fromkeys(ids))  # Redis counts distinct members, and so does the message
    added = _run(settings, lambda store: store.blocklist_add(kind, list(ids)))
    _record(settings, kind, ids, blocked=True)
    click.echo(f"{added} {kind}(s) added ({len(ids) - added} already blocked)")


@blocklist.command("remove")
@click.argument("kind", type=KIND)
@click.argument("ids", nargs=-1, required=True)
@pass_settings
def remove(settings: Settings, kind: str, ids: tuple[str, ...]) -> None:
    """Remove customer or terminal IDS from the blocklist."""
    ids = tuple(dict.fromkeys(ids))  # Redis counts distinct members, and so does the message
    removed = _run(settings, lambda store: store.blocklist_remove(kind, list(ids)))
    _record(settings, kind, ids, blocked=False)
    click.echo(f"{removed} {kind}(s) removed ({len(ids) - removed} were not blocked)")


@blocklist.command("list")
@click.argument("kind", type=KIND)
@pass_settings
def list_(settings: Settings, kind: str) -> None:
    """List the blocked customers or terminals, one per line."""
    for member in _run(settings, lambda store: store.blocklist_members(kind)):
        click.echo(member)


@blocklist.command("restore")
@pass_settings
def restore(settings: Settings) -> None:
    """Block again every id recorded in Kafka that Redis lacks (it lost all or part of the
    lists: a restart without persistence, a new server). `rebuild-state` does this first by
    itself. An id removed while Kafka did not take the removal is blocked again."""
    from streamer import blocklists
    from streamer.kafka import KafkaUnusable

    try:
        restored = _run(settings, lambda store: blocklists.restore(settings, store))
    except KafkaUnusable as exc:
        raise click.ClickException(str(exc)) from None
    if restored is None:
        click.echo(f"nothing restored: Redis holds every id {settings.topic_blocklists} records")
    else:
        shown = blocklists.describe(restored)
        click.echo(f"restored from {settings.topic_blocklists}: {shown} Redis lacked")
