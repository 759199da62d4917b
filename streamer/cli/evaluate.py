"""``fraud-streamer evaluate``: our models on the handbook's protocol, beside its results."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from models.files import DATA_DIR
from streamer.cli import chosen, writable

__all__ = ["evaluate"]


def _histories(text: str, param: str) -> list[str]:
    """``book`` and non-negative integers, comma-separated, in the order given."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    # ASCII digits: isdigit() also takes "²", which int() refuses
    bad = [v for v in values if v != "book" and not re.fullmatch(r"[0-9]+", v)]
    if bad or not values:
        raise click.BadParameter(
            f"expected 'book' and/or non-negative integer seeds, comma-separated, got {text!r}",
            param_hint=param)
    return values


@click.command()
@click.option("--seeds", default="book,0,1,2", show_default=True,
              help="Comma-separated histories, each book-size: 'book' is the handbook's own "
              "dataset (its generator replayed call for call), an integer is a seed of our "
              "vectorised simulator.")
@click.option("--weeks", type=click.IntRange(min=1), default=4, show_default=True,
              help="Consecutive test weeks from 2018-08-08 (prequential); 1 = the book's only.")
@click.option("--folds", type=click.IntRange(min=1), default=4, show_default=True,
              help="Validation weeks used to choose hyper-parameters and training windows "
              "(fold 0 validates on 2018-07-25 … 07-31, each further fold a week earlier); "
              "4 as in the book's model selection.")
@click.option("--prequential-all/--prequential-selected", default=False, show_default=True,
              help="Refit every family for each test week, or only the one selected by "
              "validation (the others are measured on the book's week only).")
@click.option("--candidates", default="logreg,random_forest,hist_gb,ensemble",
              show_default=True,
              help="Comma-separated model families (logreg, random_forest, hist_gb, ensemble).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("models/reports"), show_default=True,
              help="Directory of evaluation.md and evaluation.json.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DATA_DIR / "features", show_default=True,
              help="Where built features are kept between runs (one file per seed).")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Reuse and keep built features; the key covers the feature code.")
def evaluate(
    seeds: str,
    weeks: int,
    folds: int,
    prequential_all: bool,
    candidates: str,
    out_dir: Path,
    cache_dir: Path,
    cache: bool,
) -> None:
    """Evaluate our models on the fraud-detection handbook's protocol.

    For each history (the book's own dataset, then seeds of our simulator), at the book's size
    (5,000 customers, 10,000 terminals, 183 days from 2018-04-01): build its features through
    the worker's feature code; choose each model family's hyper-parameters and training window
    on validation weeks before the test data; train on the days before 2018-08-01, skip the
    7-day label delay and test on 2018-08-08 … 08-14 without the cards already known to be
    compromised. The same recipes are refitted for the following weeks (--weeks): the book's
    best rows are means over four such weeks. Prints our numbers beside the book's and writes
    OUT/evaluation.md and OUT/evaluation.json.

    At the defaults it takes 25 to 30 minutes on two cores from nothing (features are cached
    in --cache-dir: a rerun skips them); `--seeds 0 --weeks 1 --folds 1` is a shorter look.
    """
    from tqdm import tqdm

    from models.evaluate import WINDOWS, EvaluationPlan, evaluate_seed
    from models.files import write_text
    from models.history import check_span
    from models.report import console_table, render_markdown, report_json
    from models.simulate import SimulationConfig

    seed_list = _histories(seeds, "--seeds")
    for name in ("evaluation.md", "evaluation.json"):  # before hours of work, not after
        writable(out_dir / name)
    if cache:  # its features are written after minutes of building them
        writable(cache_dir / "features.parquet")
    names = chosen(candidates, WINDOWS, "--candidates")

    def progress(description: str, total: int) -> Callable[[int], object]:
        close()
        bar = tqdm(total=total, desc=description, leave=False, file=sys.stderr,
                   unit_scale=total > 10_000)
        bars.append(bar)
        return bar.update

    def close() -> None:
        for bar in bars:
            bar.close()
        bars.clear()

    def log(line: str) -> None:
        close()
        click.echo(line, err=True)

    bars: list[tqdm] = []
    started = time.perf_counter()
    results = []
    plans = [
        EvaluationPlan(simulation=SimulationConfig(streams="book") if seed == "book"
                       else SimulationConfig(seed=int(seed)),
                       validation_folds=folds, prequential_weeks=weeks,
                       prequential_all=prequential_all, candidates=tuple(names))
        for seed in seed_list
    ]  # fmt: skip
    try:  # the days are there (every history has the same), before hours of work
        check_span(plans[0].simulation, plans[0].span())
    except ValueError as exc:
        raise click.UsageError(f"{exc}: lower --weeks or --folds") from None
    for seed, plan in zip(seed_list, plans, strict=True):
        results.append(evaluate_seed(plan, cache_dir=cache_dir if cache else None,
                                     progress=progress, log=log))
        log(f"history {seed} done ({time.perf_counter() - started:.0f} s so far)")
    seconds = time.perf_counter() - started
    command = (f"fraud-streamer evaluate --seeds {','.join(seed_list)} "
               f"--weeks {weeks} --folds {folds} --candidates {','.join(names)}"
               + (" --prequential-all" if prequential_all else ""))
    write_text(out_dir / "evaluation.md",
               render_markdown(results, plan, command=command, seconds=seconds))
    write_text(out_dir / "evaluation.json",
               json.dumps(report_json(results, plan, command=command, seconds=seconds), indent=2)
               + "\n")
    click.echo(console_table(results))
    click.echo(f"\n{seconds / 60:.1f} min; report in {out_dir / 'evaluation.md'} and "
               f"{out_dir / 'evaluation.json'}")
