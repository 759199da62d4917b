"""``fraud-streamer simulate``: write the handbook's simulated transactions to a file."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import click

from models.files import DATA_DIR
from models.simulate import SimulationConfig, progress_total, write_dataset
from models.simulate import simulate as run_simulation
from streamer.cli import Finite, writable

__all__ = ["simulate"]

_BOOK = SimulationConfig()


def too_big(config: SimulationConfig) -> click.ClickException:
    """The error of a simulation (or its features) that does not fit in memory."""
    return click.ClickException(
        f"not enough memory for {config.n_customers:,} customers and {config.n_terminals:,} "
        f"terminals over {config.n_days:,} days: lower --customers, --terminals or --days (the "
        "book's size takes about 0.5 GB to simulate)"
    )


@click.command()
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=_BOOK.n_customers,
    show_default=True,
    help="Number of customers (cards), each with a home location, spending and activity level.",
)
@click.option(
    "--terminals",
    type=click.IntRange(min=1),
    default=_BOOK.n_terminals,
    show_default=True,
    help="Number of payment terminals placed at random on the 100 x 100 map.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=_BOOK.n_days,
    show_default=True,
    help="Number of days to simulate.",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    default=_BOOK.start_date,
    show_default=True,
    help="First simulated day (UTC), YYYY-MM-DD.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=_BOOK.seed,
    show_default=True,
    help="Random seed; the same seed and sizes always give the same file.",
)
@click.option(
    "--radius",
    type=Finite(min=0, min_open=True),
    default=_BOOK.radius,
    show_default=True,
    help="A customer uses the terminals closer than this (5 gives about 75 each at book size).",
)
@click.option(
    "--streams",
    type=click.Choice(["fast", "book"]),
    default=_BOOK.streams,
    show_default=True,
    help="fast: our vectorised generator (seconds; --seed picks the history). book: the "
    "handbook's own generator replayed call for call, giving its published dataset (1,754,155 "
    "transactions, 14,681 frauds at the defaults; about 30 s; --seed must stay 0).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=DATA_DIR / "transactions.parquet",
    show_default=True,
    help="Output file, Parquet, or CSV if it ends in .csv; its directory is created.",
)
def simulate(
    customers: int,
    terminals: int,
    days: int,
    start: datetime,
    seed: int,
    radius: float,
    streams: str,
    out: Path,
) -> None:
    """Simulate labelled card transactions, as in the fraud-detection handbook.

    Implements the transaction simulator of "Reproducible Machine Learning for Credit Card Fraud
    Detection – Practical Handbook", with its three fraud scenarios and a 7-day label delay
    (column reported_at). The defaults are the book's size: 5,000 customers, 10,000 terminals
    and 183 days from 2018-04-01, about 1.75 million transactions and 0.8 % fraud, in seconds.
    """
    from tqdm import tqdm

    try:
        config = SimulationConfig(
            n_customers=customers,
            n_terminals=terminals,
            n_days=days,
            start_date=start.strftime("%Y-%m-%d"),
            radius=radius,
            seed=seed,
            streams=streams,
        )
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    from models.files import EXTENSIONS

    if out.suffix.lower() not in EXTENSIONS:  # what the readers tell apart
        raise click.BadParameter(
            f"unknown extension {out.suffix!r}; use .parquet, .pq or .csv", param_hint="--out"
        )
    writable(out)  # before the simulation, not after it
    began = time.perf_counter()
    total, unit = progress_total(config)
    try:
        with tqdm(total=total, unit=unit, desc="simulating", leave=False, disable=None) as bar:
            frame = run_simulation(config, progress=bar.update)
    except MemoryError:
        raise too_big(config) from None
    if frame.empty:
        raise click.ClickException(
            f"no transaction was simulated, so {out} was not written: usually no terminal lies "
            f"within --radius {radius:g} of any customer (--customers {customers}, --terminals "
            f"{terminals}, on a 100 x 100 map); raise --radius, --terminals or --customers (or "
            "--days)"
        )
    try:
        write_dataset(frame, out)
    except OSError as exc:  # a full disk, a file size limit: the previous file is left as it was
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    elapsed = time.perf_counter() - began

    frauds = int(frame["is_fraud"].sum())
    rate = 100 * frauds / len(frame)
    span = f"{frame['timestamp'].iloc[0]:%Y-%m-%d} .. {frame['timestamp'].iloc[-1]:%Y-%m-%d}"
    click.echo(
        f"{len(frame):,} transactions, {frauds:,} frauds ({rate:.2f} %), {span}, "
        f"{elapsed:.1f} s -> {out}"
    )
    click.echo(f"next: `fraud-streamer train --data {out}` trains on it, `fraud-streamer "
               f"produce --data {out}` sends it to Kafka", err=True)  # fmt: skip
