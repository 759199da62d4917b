"""``fraud-streamer quality``: how good the published decisions were, once labels are known."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

import click

from streamer.cli import Finite, pass_settings
from streamer.features.definitions import LABEL_DELAY_DAYS
from streamer.settings import Settings

#: what is kept of each record (a decision of a 1.75 M-transaction history fits in memory)
DECISION_FIELDS = ("transaction_id", "customer_id", "timestamp", "score", "model_version")
LABEL_FIELDS = ("transaction_id", "is_fraud", "reported_at")


@click.command()
@click.option(
    "--delay-days",
    type=Finite(min=0, max=3650),
    default=float(LABEL_DELAY_DAYS),
    show_default=True,
    help="How long after a transaction its label may still come: transactions newer than "
    "the latest label's report time minus this are left out.",
)
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="Only transactions at or after this time (UTC).",
)
@click.option(
    "--by",
    type=click.Choice(["version", "week"]),
    default="version",
    show_default=True,
    help="Group by the model version that decided, or by the week of the transactions (drift).",
)
@click.option(
    "--shadow",
    is_flag=True,
    help="Measure the shadow model's decisions (STREAMER_TOPIC_SHADOW_DECISIONS) beside the "
    "live ones, on the transactions both decided.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_settings
def quality(
    settings: Settings,
    delay_days: float,
    since: datetime | None,
    by: str,
    shadow: bool,
    as_json: bool,
) -> None:
    """Measure the decisions the workers published against the labels.

    Reads the decisions and labels topics from their beginning to their current end, takes
    each transaction's first decision and its latest label (a transaction without one is
    genuine; a withdrawal clears a fraud mark), and prints AUC ROC, Average Precision and Card
    Precision@100 — over all decisions and per model version or per week (--by) — for the
    transactions old enough
    to have been reported (see --delay-days). These are the scores the workers computed live,
    from the features in Redis: what `evaluate` measures offline, measured in production.
    With --shadow, the shadow model's decisions (`fraud-streamer models shadow`) are measured
    the same way beside the live ones, both on the transactions the shadow scored.
    """
    import asyncio

    import pandas as pd

    from streamer.kafka import KafkaUnusable

    try:
        decisions, labels, shadowed = asyncio.run(_read_all(settings, shadow))
    except KafkaUnusable as exc:
        raise click.ClickException(str(exc)) from None
    if shadow and shadowed.empty:
        raise click.ClickException(
            f"no shadow decisions on {settings.topic_shadow_decisions}: set a shadow with "
            "`fraud-streamer models shadow VERSION` and let it score some traffic"
        )
    if decisions.empty:
        raise click.ClickException(f"no decisions on {settings.topic_decisions}")
    if labels.empty:
        raise click.ClickException(
            f"no labels on {settings.topic_labels}: nothing to measure the decisions against"
        )
    # re-deliveries: once each in the count printed (live_quality keeps the first of each too)
    decisions = decisions.drop_duplicates("transaction_id", keep="first")
    start = None if since is None else pd.Timestamp(since, tz="UTC")
    if shadow:  # the same transactions, scored by each
        decisions = decisions[decisions["transaction_id"].isin(shadowed["transaction_id"])]
    measure = partial(_measure, labels=labels, delay_days=delay_days, since=start, by=by)
    cutoff, report = measure(decisions, "live: " if shadow else "")
    if shadow:
        report += measure(shadowed, "shadow: ")[1]
    if as_json:
        click.echo(_as_json(cutoff, report))
        return
    click.echo(
        f"{len(decisions):,} transactions decided, {len(labels):,} labels; measured: "
        f"transactions {'from ' + start.isoformat() + ' ' if start is not None else ''}"
        f"up to {cutoff} (the latest report minus {delay_days:g} days)"
    )
    click.echo(_as_table(report, "model" if by == "version" else "week"))


def _measure(
    decisions: Any, prefix: str, *, labels: Any, delay_days: float, since: Any, by: str
) -> tuple[Any, list[Any]]:
    """``live_quality`` of ``decisions``, each group's name after ``prefix`` (to tell the
    live model's rows from the shadow's)."""
    from models.live_quality import live_quality

    cutoff, rows = live_quality(decisions, labels, delay_days=delay_days, since=since, by=by)
    return cutoff, [replace(row, group=f"{prefix}{row.group}") for row in rows]


def _as_json(cutoff: Any, report: list[Any]) -> str:
    """The report for scripts; a metric that cannot be computed (one class only) is null, not
    NaN, which JSON has no word for."""
    rows = [
        {**vars(row), "metrics": {k: None if v != v else v for k, v in row.metrics.items()}}
        for row in report
    ]
    return json.dumps(
        {"cutoff": None if cutoff is None else cutoff.isoformat(), "report": rows}, indent=2
    )


def _as_table(report: list[Any], heading: str) -> str:
    """The report as an operator reads it: a row per group."""
    lines = [
        f"{heading:<36} {'transactions':>12} {'frauds':>7} {'AUC ROC':>8} {'AP':>6} {'CP@100':>7}"
    ]
    nan = float("nan")
    for row in report:
        auc, ap, cp = (
            row.metrics.get(name, nan)
            for name in ("auc_roc", "average_precision", "card_precision_at_100")
        )
        lines.append(
            f"{row.group:<36} {row.transactions:>12,} {row.frauds:>7,} "
            f"{auc:>8.3f} {ap:>6.3f} {cp:>7.3f}"
        )
    return "\n".join(lines)


async def _read_all(settings: Settings, shadow: bool) -> tuple[Any, Any, Any]:
    """The decisions, the labels and (with ``shadow``) the shadow decisions."""
    import pandas as pd

    from schemas import Label

    decisions = await _read_topic(settings, settings.topic_decisions, DECISION_FIELDS)
    labels = await _read_topic(settings, settings.topic_labels, LABEL_FIELDS, Label)
    shadowed = (
        await _read_topic(settings, settings.topic_shadow_decisions, DECISION_FIELDS)
        if shadow
        else []
    )
    return (
        pd.DataFrame(decisions, columns=list(DECISION_FIELDS)),
        pd.DataFrame(labels, columns=list(LABEL_FIELDS)),
        pd.DataFrame(shadowed, columns=list(DECISION_FIELDS)),
    )


async def _read_topic(
    settings: Settings, topic: str, fields: tuple[str, ...], model: Any = None
) -> list[tuple[Any, ...]]:
    """``fields`` of every JSON record of ``topic``, from its beginning to its end as of now.
    A record that is not a JSON object with those fields, or (with ``model``) not a valid one,
    is left out, and how many were is said on stderr. Labels need ``model``: the labels topic
    is an input, so a label the workers refused is still on it (their dead letter is a copy),
    and its ``"is_fraud": "false"`` would read as true."""
    from tqdm import tqdm

    from streamer.kafka_reading import read_to_end

    rows: list[tuple[Any, ...]] = []
    skipped = [0]

    def keep(value: bytes | None) -> None:
        got = _fields(value, fields, model)
        rows.extend(got)
        skipped[0] += not got

    with tqdm(unit="rec", desc=topic, leave=False, disable=None) as bar:
        await read_to_end(settings, topic, lambda r: keep(r.value), progress=bar.update)
    if skipped[0]:
        click.echo(
            f"warning: {skipped[0]:,} record(s) of {topic} left out: not what the workers "
            "accept there (see `fraud-streamer dead-letters`)",
            err=True,
        )
    return rows


def _fields(
    value: bytes | None, fields: tuple[str, ...], model: Any = None
) -> list[tuple[Any, ...]]:
    try:
        if model is not None:
            model.model_validate_json(value or b"")  # pydantic's ValidationError is a ValueError
        record = json.loads(value or b"")
        return [tuple(record[name] for name in fields)]
    except (ValueError, TypeError, KeyError):
        return []
