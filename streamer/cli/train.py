"""``fraud-streamer train``: simulate (or read) history, train, register and promote a model."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from models.simulate import SimulationConfig
from streamer.cli import chosen, pass_settings, writable
from streamer.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from models.dataset import FeatureSet
    from models.metrics import OperatingPoint


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="History to train on (Parquet/CSV from `fraud-streamer simulate`). "
    "Default: simulate it now.",
)
@click.option(
    "--customers", default=SimulationConfig().n_customers, show_default=True,
    type=click.IntRange(min=1), help="Simulated customers (not with --data).",
)
@click.option(
    "--terminals", default=SimulationConfig().n_terminals, show_default=True,
    type=click.IntRange(min=1), help="Simulated terminals (not with --data).",
)
@click.option(
    "--days", default=100, show_default=True, type=click.IntRange(min=1),
    help="Simulated days of history: at least --train-days + 52 (a month of warm-up for the "
    "windows, then validation weeks and label delays; checked before simulating; not with "
    "--data).",
)
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(min=0),
    help="Simulation seed (not with --data)."
)
@click.option(
    "--train-days",
    default=14,
    show_default=True,
    type=click.IntRange(min=1),
    help="Days of history each candidate is fitted on.",
)
@click.option(
    "--candidates",
    default="logreg,random_forest,hist_gb,ensemble",
    show_default=True,
    help="Comma-separated model families to compare (logreg, random_forest, hist_gb, ensemble).",
)
@click.option(
    "--promote/--no-promote",
    default=True,
    show_default=True,
    help="Make the new version live for running workers.",
)
@pass_settings
def train(
    settings: Settings,
    data: Path | None,
    customers: int,
    terminals: int,
    days: int,
    seed: int,
    train_days: int,
    candidates: str,
    promote: bool,
) -> None:
    """Train candidate models, pick the best by time-ordered validation, register it.

    With no arguments: simulate the handbook's population for --days days, build features
    through the worker's own feature code, compare the candidates on the latest validation week
    whose labels are known, refit the winner, store it in the registry
    (STREAMER_MODEL_REGISTRY) and promote it.
    """
    from models.metrics import THRESHOLD_GRID
    from models.registry import ModelRegistry, RegistryError
    from models.train import CANDIDATES, fit_best

    names = chosen(candidates, CANDIDATES, "--candidates")
    writable(settings.model_registry / "promotions.json")  # before minutes of work, not after
    registry = ModelRegistry(settings.model_registry)
    if promote:
        try:
            registry.promotions()  # a corrupt log would refuse the promotion after the work
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from None
    started = time.perf_counter()
    if data is not None:
        frame, source = _recorded_history(data, train_days)
    else:
        frame, source = _simulated_history(customers, terminals, days, seed, train_days)
    features = _model_inputs(frame)
    click.echo("comparing candidates:", err=True)
    configured: dict[float, list[str]] = {}
    for name in ("review", "decline"):
        threshold = getattr(settings, f"{name}_threshold")
        configured.setdefault(threshold, []).append(f"STREAMER_{name.upper()}_THRESHOLD")
    try:
        result = fit_best(
            features,
            train_days=train_days,
            candidates=names,
            thresholds=[*THRESHOLD_GRID, *configured],
            log=lambda line: click.echo(line, err=True),
        )
    except ValueError as exc:  # the history does not suit the protocol (e.g. days without
        raise click.ClickException(str(exc)) from None  # transactions at either end)
    click.echo(_operating_table(result.operating_points, configured), err=True)
    try:  # the version's name is free even if another run registers in the same second
        manifest = result.register(
            registry,
            training_data={**source, "rows": len(frame)},
            thresholds={
                "review": settings.review_threshold, "decline": settings.decline_threshold
            },
        )
    except RegistryError as exc:  # the registry changed under the training (a full disk, ...)
        raise click.ClickException(f"the model was trained but not registered: {exc}") from None
    click.echo(
        f"registered {manifest.version} in {settings.model_registry} "
        f"(validation AP {result.validation['average_precision']:.3f}, "
        f"{time.perf_counter() - started:.0f} s)"
    )
    if promote:
        try:
            was = registry.current_version()
            registry.promote(manifest.version)
        except RegistryError as exc:  # changed since the check above
            msg = f"{manifest.version} is registered, not promoted: {exc}"
            raise click.ClickException(msg) from None
        click.echo(
            f"promoted {manifest.version} (was {was or 'none'}): running workers switch to it "
            f"within {settings.model_poll_seconds:g} s; `fraud-streamer models rollback` "
            "goes back"
        )
    else:
        click.echo(
            f"not promoted: `fraud-streamer models promote {manifest.version}` makes it live, "
            f"`fraud-streamer models shadow {manifest.version}` scores it beside the live one"
        )


def _recorded_history(data: Path, train_days: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The history in ``data`` and how the manifest names it; refused (status 2) if the
    simulation's options came with it, or if it is too short for ``train_days``."""
    from models.simulate import read_dataset
    from models.train import history_days_needed

    ctx = click.get_current_context()
    simulated = [f"--{name}" for name in ("customers", "terminals", "days", "seed")
                 if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]  # fmt: skip
    if simulated:
        raise click.UsageError(
            f"{', '.join(simulated)} describe(s) a history to simulate; --data gives the "
            "history: leave them out"
        )
    try:
        frame = read_dataset(data)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--data") from None
    needed = history_days_needed(train_days)
    span = 0
    if len(frame):
        ts = frame["timestamp"]
        span = (ts.max().floor("D") - ts.min().floor("D")).days + 1
    if span < needed:  # checked before building features, which takes minutes
        lower = " or lower --train-days" if train_days > 1 else ""
        raise click.BadParameter(
            f"{data} covers {span} days; --train-days {train_days} needs at least {needed} "
            f"(give more history{lower})",
            param_hint="--data",
        )
    return frame, {"path": str(data)}


def _simulated_history(
    customers: int, terminals: int, days: int, seed: int, train_days: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A history simulated now, with a progress bar, and how the manifest names it; too few
    ``days`` for ``train_days`` is refused before simulating."""
    from tqdm import tqdm

    from models.simulate import simulate
    from models.train import history_days_needed
    from streamer.cli.simulate import too_big

    needed = history_days_needed(train_days)
    if days < needed:
        raise click.BadParameter(
            f"{days} days is not enough history for --train-days {train_days}: simulate "
            f"at least {needed} days" + (" (or lower --train-days)" if train_days > 1 else ""),
            param_hint="--days",
        )
    try:
        config = SimulationConfig(
            n_customers=customers, n_terminals=terminals, n_days=days, seed=seed
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"simulating {customers} customers, {terminals} terminals, {days} days (seed {seed})",
        err=True,
    )
    try:
        with tqdm(total=days, unit="day", desc="simulate", leave=False, disable=None) as bar:
            frame = simulate(config, progress=bar.update)
    except MemoryError:
        raise too_big(config) from None
    simulated = {"customers": customers, "terminals": terminals, "days": days, "seed": seed}
    return frame, {"simulated": simulated}


def _model_inputs(frame: pd.DataFrame) -> FeatureSet:
    """The history's features, built with the worker's own code (progress bar); refused,
    naming the first transaction, when some are beyond what a model takes."""
    import numpy as np
    from tqdm import tqdm

    from models.dataset import build_features
    from streamer.scoring import MODEL_INPUT_MAX

    click.echo(f"building features for {len(frame):,} transactions", err=True)
    with tqdm(total=len(frame), unit="tx", unit_scale=True, desc="features", leave=False,
              disable=None) as bar:  # fmt: skip
        features = build_features(frame, progress=bar.update)
    unusable = ~(np.abs(features.X) <= MODEL_INPUT_MAX).all(axis=1)  # NaN is not <=
    if unusable.any():  # scikit-learn's message (of infinity, or imputers) would only puzzle
        first = features.frame.iloc[int(np.flatnonzero(unusable)[0])]
        raise click.ClickException(
            f"the features of {int(unusable.sum()):,} transaction(s) are beyond what a model "
            f"takes (±{MODEL_INPUT_MAX:.3g}), the first {first['transaction_id']} (amount "
            f"{first['amount']:g}): leave amounts this large out of the history"
        )
    return features


def _operating_table(points: list[OperatingPoint], configured: dict[float, list[str]]) -> str:
    """What each threshold flags on the validation week, the configured ones marked: the
    table to choose STREAMER_REVIEW_THRESHOLD and STREAMER_DECLINE_THRESHOLD from."""
    lines = [
        "on that validation week, the winner's selection fit flags (a transaction at or above "
        "the threshold):",
        "  threshold   flagged   of them fraud   frauds flagged",
    ]
    for p in points:
        marks = configured.get(p.threshold)
        precision, recall = (
            "-" if math.isnan(x) else f"{100 * x:.1f} %" for x in (p.precision, p.recall)
        )
        lines.append(
            f"  {p.threshold:>9.2f}  {100 * p.flagged_share:>6.2f} %  {precision:>14}  "
            f"{recall:>15}" + (f"   <- {', '.join(marks)}" if marks else "")
        )
    return "\n".join(lines)
