"""``fraud-streamer dead-letters``: what was rejected lately, and why, in words."""

from __future__ import annotations

import heapq
import itertools
import json
from collections import Counter
from typing import Any

import click

from streamer.cli import pass_settings
from streamer.settings import Settings


@click.command("dead-letters")
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the latest dead letters to show (by when the worker read them).",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="Only dead letters with a problem of this type (as the tally names them, e.g. "
    "json_invalid, transaction_id_reused, event_after_record); may be given more than once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON lines, as stored.")
@pass_settings
def dead_letters(settings: Settings, last: int, types: tuple[str, ...], as_json: bool) -> None:
    """Show the latest dead letters: the input records the workers rejected, where each came
    from (topic, partition, offset, key) and every problem found in it.

    Reads the last --last records of each partition of STREAMER_TOPIC_DEAD_LETTERS and shows
    the latest --last of them, oldest first, with a count of the kinds of problem. With --type
    the whole topic is read, and the latest --last of that type are shown. To put a
    corrected record back, produce it again to its source topic: the worker decides it then.
    """
    import asyncio

    from pydantic import ValidationError

    from schemas import DeadLetter
    from streamer.kafka import KafkaUnusable
    from streamer.kafka_reading import read_to_end

    # the latest --last by when they were read, in a bounded heap: with --type the whole topic
    # is read, and a common type may match most of it
    latest: list[tuple[Any, int, DeadLetter]] = []
    order = itertools.count()
    unreadable = 0

    def keep(record: Any) -> None:
        nonlocal unreadable
        try:
            letter = DeadLetter.model_validate_json(record.value or b"")
        except ValidationError:  # not written by a worker
            unreadable += 1
            return
        if not types or any(error.type in types for error in letter.errors):
            entry = (letter.received_at, next(order), letter)
            if len(latest) < last:
                heapq.heappush(latest, entry)
            else:
                heapq.heappushpop(latest, entry)

    try:
        tail = None if types else last  # a type may be rare among the latest
        asyncio.run(read_to_end(settings, settings.topic_dead_letters, keep, tail=tail))
    except KafkaUnusable as exc:
        raise click.ClickException(str(exc)) from None
    letters = [letter for *_, letter in sorted(latest)]
    if unreadable:
        click.echo(f"warning: {unreadable} records on the topic are not dead letters", err=True)
    if as_json:
        for letter in letters:
            click.echo(letter.model_dump_json())
        return
    if not letters:
        kind = f" with a problem of type {', '.join(types)}" if types else ""
        click.echo(f"no dead letters{kind} on {settings.topic_dead_letters}")
        return
    for letter in letters:
        click.echo(_describe(letter))
    kinds = Counter(error.type for letter in letters for error in letter.errors)
    click.echo(
        f"{len(letters)} dead letters; problems: "
        + ", ".join(f"{kind} ×{n}" for kind, n in kinds.most_common())
    )


def _describe(letter: Any) -> str:
    where = f"{letter.source_topic}[{letter.partition}]@{letter.offset}"
    key = "no key" if letter.key is None else f"key {json.dumps(letter.key)}"
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error.loc) or '(value)'}: {error.msg}"
        for error in letter.errors
    )
    return f"{letter.received_at:%Y-%m-%d %H:%M:%S} {where} {key}: {problems}"
