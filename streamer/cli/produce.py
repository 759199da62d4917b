"""``fraud-streamer produce``: replay a dataset into the transactions and labels topics."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from models.files import DATA_DIR
from streamer.cli import Finite, pass_settings
from streamer.settings import Settings

if TYPE_CHECKING:
    import pandas as pd


@click.command()
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DATA_DIR / "transactions.parquet",
    show_default=True,
    help="Dataset from `fraud-streamer simulate` (Parquet or CSV).",
)
@click.option(
    "--rate",
    # a positive rate: 0 or less would be taken for "no rate", i.e. as fast as possible
    type=Finite(min=0, min_open=True),
    default=None,
    help="Transactions per second (default: as fast as possible).",
)
@click.option(
    "--start",
    # parsed here, so a bad date is a usage error before the dataset is read
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="First day to replay (YYYY-MM-DD, event time).",
)
# at least 1: 0 would select nothing, and a negative --limit would drop rows from the end
@click.option("--days", type=click.IntRange(min=1),
              help="Number of days to replay, from --start (or from the dataset's first day).")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many transactions.")
@click.option(
    "--labels/--no-labels",
    default=True,
    show_default=True,
    help="Publish each fraud's label once event time reaches its report time.",
)
@pass_settings
def produce(
    settings: Settings,
    data: Path,
    rate: float | None,
    start: datetime | None,
    days: int | None,
    limit: int | None,
    labels: bool,
) -> None:
    """Replay simulated transactions (and their fraud labels) into Kafka.

    Transactions go to STREAMER_TOPIC_TRANSACTIONS keyed by customer, in event-time order; the
    label of each fraud goes to STREAMER_TOPIC_LABELS when the replay reaches its reported_at
    (7 days after the transaction in simulated data). Shows a progress bar with the rate.
    """
    import pandas as pd
    from tqdm import tqdm

    from streamer.kafka import KafkaUnusable
    from streamer.kafka_topics import ensure_contract_topics
    from streamer.replay import encode_labels, encode_transactions, merged_records, replay

    if not data.exists():  # a bad argument, as everywhere: status 2
        raise click.BadParameter(
            f"no dataset at {data}: create one with `fraud-streamer simulate --out {data}`",
            param_hint="--data",
        )
    frame = _read(data).sort_values(["timestamp", "transaction_id"], kind="stable")
    if frame.empty:
        raise click.ClickException(f"nothing to replay: {data} holds no transaction")
    covers = f"{frame['timestamp'].min():%Y-%m-%d} .. {frame['timestamp'].max():%Y-%m-%d}"
    if start is not None:
        first = pd.Timestamp(start, tz="UTC")
        frame = frame[frame["timestamp"] >= first]
        if days is not None:
            frame = frame[frame["timestamp"] < first + pd.Timedelta(days=days)]
    elif days is not None:
        first = frame["timestamp"].min().floor("D")
        frame = frame[frame["timestamp"] < first + pd.Timedelta(days=days)]
    if limit is not None:
        frame = frame.head(limit)
    if frame.empty:
        raise click.ClickException(
            f"nothing to replay: --start and --days select none of {data}'s transactions "
            f"(it covers {covers})"
        )
    txs = encode_transactions(frame)
    lbls = encode_labels(frame) if labels and "reported_at" in frame.columns else []
    # Kafka stamps each record with its send time, and the workers dead-letter an event dated
    # more than STREAMER_MAX_EVENT_AHEAD_HOURS after it (event_after_record)
    latest_ms = time.time() * 1000 + settings.max_event_ahead_ms
    ahead = sum(1 for ms, _, _ in txs if ms > latest_ms)
    if ahead:
        raise click.ClickException(
            f"{ahead:,} of the {len(txs):,} transactions are dated more than "
            f"{settings.max_event_ahead_hours:g} h from now (the dataset covers {covers}): the "
            "workers would dead-letter them (event_after_record, "
            "STREAMER_MAX_EVENT_AHEAD_HOURS); replay days before, or simulate with an earlier "
            "--start"
        )
    unreported = [label for label in lbls if label[0] > latest_ms]
    if unreported:
        lbls = [label for label in lbls if label[0] <= latest_ms]
        click.echo(
            f"warning: {len(unreported):,} label(s) are reported more than "
            f"{settings.max_event_ahead_hours:g} h from now: not sent (the workers would "
            "dead-letter them, event_after_record)",
            err=True,
        )
    try:
        asyncio.run(ensure_contract_topics(settings))
    except KafkaUnusable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"replaying {len(txs):,} transactions and {len(lbls):,} labels "
        f"({frame['timestamp'].min():%Y-%m-%d} .. {frame['timestamp'].max():%Y-%m-%d}) "
        f"to {settings.kafka_bootstrap_servers}",
        err=True,
    )
    with tqdm(total=len(txs), unit="tx", unit_scale=True, desc="produce", disable=None) as bar:
        stats = asyncio.run(
            replay(settings, merged_records(txs, lbls), rate=rate, progress=bar.update)
        )
    click.echo(
        f"sent {stats.transactions:,} transactions and {stats.labels:,} labels in "
        f"{stats.seconds:.1f} s ({stats.transactions / max(stats.seconds, 1e-9):,.0f} tx/s)"
    )


def _read(data: Path) -> pd.DataFrame:
    """The dataset at ``data``, or a one-line error naming the file and what is wrong with it.

    A file that is not a dataset fails in pandas or pyarrow with a traceback that hides the
    cause (an empty CSV, a ``.parquet`` that is not Parquet, missing columns, a bad value);
    their parse errors all derive from ``ValueError``, and an unreadable file raises
    ``OSError``.
    """
    from models.simulate import read_dataset

    try:
        return read_dataset(data)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(
            f"cannot read --data: {reason} (expected a dataset written by "
            "`fraud-streamer simulate`: Parquet, or CSV if the name ends in .csv)"
        ) from None
