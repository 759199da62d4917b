"""``fraud-streamer models``: list, inspect, promote and roll back registered model versions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import click

from models.registry import Manifest, ModelRegistry, RegistryError
from streamer.cli import pass_settings
from streamer.settings import Settings

__all__ = ["models"]


@contextmanager
def _clear_errors() -> Iterator[None]:
    """Registry errors already say what to do: show them without a traceback."""
    try:
        yield
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


def _validation_ap(manifest: Manifest) -> str:
    value = manifest.validation("average_precision")
    return "–" if value is None else f"{value:.3f}"


def _flagged_at(manifest: Manifest, threshold: float) -> str:
    """The share of its validation week a version scored at or above ``threshold`` (what
    ``train`` measured, ``metrics.operating_points``); – when it was not measured there."""
    for point in manifest.metrics.get("operating_points") or ():
        share = point.get("flagged_share")
        if point.get("threshold") == threshold and share is not None:
            return f"{100 * share:.2f} %"
    return "–"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings.model_registry)


@click.group()
def models() -> None:
    """Manage the model registry (STREAMER_MODEL_REGISTRY).

    Promoting or rolling back reaches running workers within STREAMER_MODEL_POLL_SECONDS,
    without a restart.
    """


@models.command("list")
@pass_settings
def list_versions(settings: Settings) -> None:
    """Show every version, oldest first; * marks the live one, ~ the shadow.

    "flagged at" is the share of its validation week that the version scored at or above
    STREAMER_REVIEW_THRESHOLD, as `train` measured it (– if it did not measure that threshold):
    about how much of the traffic it would send to review.

    A directory holding a manifest under a name no version can have (a copy made by hand,
    "my copy") is not listed: a warning names it, and the versions are shown.
    """
    registry = _registry(settings)
    with _clear_errors():
        versions, strays = registry.scan()
        history, shadow = registry.promotions()  # one read of the promotion log
        live = history[-1] if history else None
    for stray in strays:  # a version cannot be named so: it could not be promoted or loaded
        click.echo(
            f"warning: {stray} is not a model version, skipped: {stray.name!r} is not a valid "
            "version name (letters, digits, ._-, at most 64); rename or remove it",
            err=True,
        )
    if not versions:
        click.echo(f"no model in {registry.where()}: run `fraud-streamer train`")
        return
    review = settings.review_threshold
    rows = [("", "version", "created", "algorithm", "validation AP", f"flagged at {review:g}")]
    rows += [
        (
            "*" if m.version == live else "~" if m.version == shadow else "",
            m.version,
            m.created,
            m.algorithm,
            _validation_ap(m),
            _flagged_at(m, review),
        )
        for m in versions
    ]
    click.echo(_table(rows))
    registered = {m.version for m in versions}
    for role, named in (("live", live), ("shadow", shadow)):
        if named is not None and named not in registered:  # workers would refuse to start
            click.echo(
                f"warning: the promotion log names {named!r} as the {role} version, which is "
                f"not registered in {registry.root}: promote or set a registered one",
                err=True,
            )


@models.command("show")
@click.argument("version")
@pass_settings
def show(settings: Settings, version: str) -> None:
    """Print the manifest of VERSION (JSON)."""
    with _clear_errors():
        click.echo(_registry(settings).manifest(version).to_json(), nl=False)


@models.command("promote")
@click.argument("version")
@pass_settings
def promote(settings: Settings, version: str) -> None:
    """Make VERSION live (its artifact is verified first)."""
    registry = _registry(settings)
    with _clear_errors():
        before = registry.current_version()
        registry.promote(version)
    if before == version:
        click.echo(f"{version} is already live")
    else:
        click.echo(
            f"promoted {version} (was {before or 'none'}); running workers switch within "
            f"{settings.model_poll_seconds:g} s"
        )


@models.command("shadow")
@click.argument("version", required=False)
@click.option("--off", is_flag=True, help="Stop shadow scoring.")
@pass_settings
def shadow(settings: Settings, version: str | None, off: bool) -> None:
    """Score every transaction with VERSION too, beside the live model, without acting on it.

    Workers publish what VERSION would have decided — the same rules and thresholds on its
    score — to STREAMER_TOPIC_SHADOW_DECISIONS, one record per decision in the Decision
    schema, and count its agreement with the live model in /metrics
    (streamer_shadow_decisions_total). Measure it beside the live model with
    `fraud-streamer quality --shadow` once labels have come in, then promote it or turn it
    off. Workers follow within STREAMER_MODEL_POLL_SECONDS; the shadow costs one more
    model call per batch.
    """
    if version is not None and off:
        raise click.UsageError(f"VERSION ({version}) and --off exclude each other: give one")
    if version is None and not off:
        raise click.UsageError("give a VERSION to shadow, or --off")
    registry = _registry(settings)
    with _clear_errors():
        before = registry.shadow_version()
        registry.set_shadow(None if off else version)
    poll = f"running workers follow within {settings.model_poll_seconds:g} s"
    if off:
        click.echo(f"shadow scoring off (was {before or 'off'}); {poll}")
    else:
        click.echo(
            f"shadowing the live model with {version} (was {before or 'none'}); its decisions "
            f"go to {settings.topic_shadow_decisions}; {poll}"
        )


@models.command("rollback")
@pass_settings
def rollback(settings: Settings) -> None:
    """Return to the version live before the current one."""
    registry = _registry(settings)
    with _clear_errors():
        current = registry.current_version()
        previous = registry.rollback()
    click.echo(
        f"rolled back from {current} to {previous}; running workers switch within "
        f"{settings.model_poll_seconds:g} s"
    )
