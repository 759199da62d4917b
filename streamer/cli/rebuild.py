"""``fraud-streamer rebuild-state``: the feature state in Redis, rebuilt from Kafka."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import click

from streamer.cli import pass_settings, state_horizon
from streamer.settings import Settings

if TYPE_CHECKING:
    from streamer.rebuild import Rebuilt


@click.command("rebuild-state")
@pass_settings
@state_horizon
def rebuild_state(settings: Settings) -> None:
    """Rebuild the workers' feature state in Redis from Kafka, publishing nothing.

    After Redis lost its state (a restart without persistence, a new server, a flushed
    database), workers go on with empty windows and their features miss everything before the
    loss. This reads STREAMER_TOPIC_TRANSACTIONS and STREAMER_TOPIC_LABELS from the beginning
    to their current end and replays them through the workers' own scripts into
    STREAMER_REDIS_URL, in event time — the state the stream built, without publishing any
    decision again. Workers may keep running: every update is idempotent per transaction id.
    The topics' retention should cover the state's {state_days}. A Redis that holds no exchange
    rate first gets back those last set with `fraud-streamer rates` (recorded on
    STREAMER_TOPIC_RATES), and the history is converted at the rates then in force; every
    blocked id recorded on STREAMER_TOPIC_BLOCKLISTS that Redis lacks is blocked again.
    Then the verdicts published on STREAMER_TOPIC_DECISIONS are pinned again, for the
    transactions the windows hold, so that one delivered again is published as first decided.
    """
    from redis.exceptions import RedisClusterException, RedisError
    from tqdm import tqdm

    from streamer import blocklists
    from streamer.kafka import KafkaUnusable
    from streamer.kafka_topics import retention_warnings
    from streamer.rates import NotARecord
    from streamer.rebuild import rebuild
    from streamer.redis_client import redis_problem

    problem = asyncio.run(
        redis_problem(
            settings.redis_url, settings.redis_url_redacted, cluster=settings.redis_cluster
        )
    )
    if problem:
        raise click.ClickException(problem)
    started = time.monotonic()
    with (
        tqdm(unit="rec", unit_scale=True, desc="read from Kafka", disable=None) as read,
        tqdm(unit="tx", unit_scale=True, desc="replayed", disable=None) as replayed,
    ):
        try:
            done = asyncio.run(rebuild(settings, read.update, replayed.update))
        except (KafkaUnusable, NotARecord) as exc:
            raise click.ClickException(str(exc)) from None
        except (RedisError, RedisClusterException, OSError) as exc:  # after the store's retries
            raise click.ClickException(
                f"Redis failed during the rebuild ({type(exc).__name__}: {exc}); every update "
                "is idempotent per transaction: run `fraud-streamer rebuild-state` again"
            ) from None
    if done.restored:
        listed = ", ".join(f"{code}={rate}" for code, rate in sorted(done.restored.items()))
        click.echo(f"exchange rates restored from {settings.topic_rates}: {listed}")
    if done.blocklists:
        shown = blocklists.describe(dict(done.blocklists))
        click.echo(f"blocklists restored from {settings.topic_blocklists}: {shown}")
    click.echo(
        f"rebuilt {settings.redis_url_redacted} from {settings.topic_transactions} and "
        f"{settings.topic_labels}: {done.transactions:,} transactions and {done.labels:,} "
        f"labels replayed in event time ({done.skipped:,} invalid records skipped) in "
        f"{time.monotonic() - started:.0f} s; exchange rates: "
        f"{done.rates.currencies.describe()}"
    )
    click.echo(
        f"verdicts pinned again from {settings.topic_decisions}'s {done.decisions:,} decisions, "
        "for the transactions the windows hold"
        + (f" ({done.not_decisions:,} record(s) there were not decisions)"
           if done.not_decisions else "")
    )  # fmt: skip
    if done.late_labels:
        click.echo(f"{done.late_labels:,} labels written while it ran applied again after the "
                   "replay (the workers had applied them; the replay's older ones could undo "
                   "them)")  # fmt: skip
    retention = asyncio.run(retention_warnings(settings, decisions=True))
    for line in [*rate_warnings(done), *retention]:
        click.echo(f"warning: {line}", err=True)


def rate_warnings(done: Rebuilt) -> list[str]:
    """What an operator should know about the rates the rebuild converted at: Redis entries
    it left out, and the currencies it met without a rate (the workers reviewed those
    transactions; their amounts count in their cards' windows only as the readable mean)."""
    out = [
        f"the rate for {code} in fs:rates was left out: {problem}"
        for code, problem in sorted(done.rates.problems.items())
    ]
    for code, n in sorted(done.unconverted.items()):
        base = done.rates.currencies.base
        out.append(
            f"{n:,} transaction(s) in {code}, which has no rate to {base}: their cards' "
            f"windows count them at the cards' readable amounts (a rate set with "
            f"`fraud-streamer rates set {code}=RATE` before a rebuild converts them)"
        )
    return out
