"""``fraud-streamer blocklist``: the customer and terminal blocklists kept in Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click

from streamer.cli import pass_settings, with_redis
from streamer.settings import Settings

KIND = click.Choice(["customer", "terminal"])


def _run(settings: Settings, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from streamer.features.store import RedisFeatureStore

    return with_redis(settings, lambda client: action(RedisFeatureStore(client)))


@click.group()
def blocklist() -> None:
    """Block cards or terminals: their transactions are declined by rule.

    Workers read the lists on every batch, so a change applies within milliseconds, with no
    restart. Blocked transactions carry RULE_CUSTOMER_BLOCKED or RULE_TERMINAL_BLOCKED in their
    reasons.
    """


@blocklist.command("add")
@click.argument("kind", type=KIND)
@click.argument("ids", nargs=-1, required=True)
@pass_settings
def add(settings: Settings, kind: str, ids: tuple[str, ...]) -> None:
    """Add customer or terminal IDS to the blocklist."""
    ids = tuple(dict.fromkeys(ids))  # Redis counts distinct members, and so does the message
    added = _run(settings, lambda store: store.blocklist_add(kind, list(ids)))
    click.echo(f"{added} {kind}(s) added ({len(ids) - added} already blocked)")


@blocklist.command("remove")
@click.argument("kind", type=KIND)
@click.argument("ids", nargs=-1, required=True)
@pass_settings
def remove(settings: Settings, kind: str, ids: tuple[str, ...]) -> None:
    """Remove customer or terminal IDS from the blocklist."""
    ids = tuple(dict.fromkeys(ids))  # Redis counts distinct members, and so does the message
    removed = _run(settings, lambda store: store.blocklist_remove(kind, list(ids)))
    click.echo(f"{removed} {kind}(s) removed ({len(ids) - removed} were not blocked)")


@blocklist.command("list")
@click.argument("kind", type=KIND)
@pass_settings
def list_(settings: Settings, kind: str) -> None:
    """List the blocked customers or terminals, one per line."""
    for member in _run(settings, lambda store: store.blocklist_members(kind)):
        click.echo(member)
