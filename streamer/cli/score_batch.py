"""``fraud-streamer score-batch``: decide a file of transactions with the promoted model."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from streamer.cli import pass_settings
from streamer.settings import Settings

__all__ = ["score_batch"]

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("score-batch")
@click.argument("transactions", type=_FILE)
@click.option("--labels", type=_FILE,
              help="Fraud labels (transaction_id, customer_id, terminal_id, tx_timestamp, "
              "is_fraud, reported_at); each counts from its reported_at on. A dataset of "
              "`fraud-streamer simulate` is taken too: its frauds are its labels.")
@click.option("--out", required=True, type=_FILE,
              help="Decisions file, CSV or Parquet by its extension (.csv, .parquet).")
@click.option("--model", "version", metavar="VERSION",
              help="A registered version to score with instead of the promoted one (its hash "
              "checked): a candidate trained with `train --no-promote`, before it goes live.")
@pass_settings
def score_batch(settings: Settings, transactions: Path, labels: Path | None, out: Path,
                version: str | None) -> None:  # fmt: skip
    """Score TRANSACTIONS (CSV or Parquet) offline with the promoted model (or --model).

    Columns: transaction_id, timestamp (RFC 3339 with an offset), customer_id, terminal_id,
    amount, and optionally currency (default EUR). The transactions are replayed in event time
    through the worker's feature code, so each is scored on the history before it, and the
    worker's thresholds and amount-limit rule decide (STREAMER_REVIEW_THRESHOLD,
    STREAMER_DECLINE_THRESHOLD, STREAMER_AMOUNT_LIMIT). Amounts in another currency than
    STREAMER_BASE_CURRENCY are converted with STREAMER_EXCHANGE_RATES, as the worker does; one
    without a rate is scored without its amount (not known) and reviewed at least. Blocklists
    are kept in Redis and are NOT applied here. Writes one row per transaction, in input
    order: transaction_id, customer_id, terminal_id, amount, currency, timestamp, score,
    decision, reasons (JSON), model_version.
    """
    from tqdm import tqdm

    from models.batch import (
        BatchInputError,
        check_extension,
        read_labels,
        read_transactions,
        repeated_ids,
        score_transactions,
        write_decisions,
    )
    from models.registry import ModelRegistry, RegistryError
    from streamer.cli import writable
    from streamer.rules import Policy
    from streamer.scoring import Scorer

    bars: list[tqdm] = []

    def progress(description: str, total: int) -> Callable[[int], object]:
        for bar in bars:
            bar.close()
        bars.clear()
        bar = tqdm(total=total, desc=description, unit="tx", unit_scale=True, leave=False,
                   file=sys.stderr, disable=None)  # no bar in a log file: frames, not lines
        bars.append(bar)
        return bar.update

    if version is not None and not version.strip():  # not the promoted one, silently
        raise click.BadParameter(
            "is empty: name a registered version, or leave --model out to score with the "
            "promoted one", param_hint="--model"
        )
    for given, what in ((transactions, "TRANSACTIONS"), (labels, "--labels")):
        if given is not None and not given.is_file():  # a bad argument, as everywhere: status 2
            raise click.BadParameter(f"{given}: no such file", param_hint=what)
        if given is not None and given.resolve() == out.resolve():
            raise click.UsageError(f"--out {out} is {what} itself, which it would overwrite")
    started = time.perf_counter()
    try:
        check_extension(out)
        writable(out)
        scorer = Scorer(ModelRegistry(settings.model_registry).load(version))
        frame = read_transactions(transactions)
        label_frame = read_labels(labels) if labels is not None else None
        decisions = score_transactions(frame, scorer, Policy.from_settings(settings),
                                       labels=label_frame, progress=progress)
        progress("writing", 1)
        try:
            write_decisions(decisions, out)
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    except (BatchInputError, RegistryError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        for bar in bars:
            bar.close()
    repeated, reused = repeated_ids(frame)
    if repeated:  # the worker takes a second record of an id as a re-delivery
        click.echo(f"warning: {len(repeated):,} transaction id(s) occur more than once in "
                   f"{transactions} (the first: {repeated[0]}); each later row is scored as a "
                   "re-delivery of the first", err=True)  # fmt: skip
    if reused:  # ... unless it is another transaction: refused, where its card or terminal knew
        click.echo(f"warning: {len(reused):,} of them stand for rows that differ in another "
                   f"field (the first: {reused[0]}); the worker refuses such a later row "
                   "(transaction_id_reused) where its card or terminal saw the first, and "
                   "decides it as new elsewhere", err=True)  # fmt: skip
    if label_frame is not None:
        known = int(label_frame["transaction_id"].isin(frame["transaction_id"]).sum())
        click.echo(f"{len(label_frame):,} labels read, {known:,} of them for transactions in "
                   f"{transactions} (the others still mark their terminals)", err=True)
    counts = decisions["decision"].value_counts()
    mix = ", ".join(f"{counts.get(o, 0):,} {o}" for o in ("approve", "review", "decline"))
    click.echo(f"{len(decisions):,} decisions by model {scorer.version} ({mix}) in "
               f"{time.perf_counter() - started:.0f} s -> {out}")
