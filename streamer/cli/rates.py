"""``fraud-streamer rates``: exchange rates the running workers take up without a restart."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from streamer.cli import pass_settings, record_in_kafka, with_redis
from streamer.settings import Settings

if TYPE_CHECKING:
    from streamer.redis_client import RedisClient

T = TypeVar("T")


def _parse(pairs: Iterable[tuple[str, object]], base: str, *, per_base: bool) -> dict[str, float]:
    """(code, rate) pairs, every one checked before anything is written; ``per_base``: each
    rate is how many units of the currency one unit of the base buys, and is inverted."""
    from streamer.currency import check_rate

    rates: dict[str, float] = {}
    for code, rate in pairs:
        try:
            checked = check_rate(code, rate, base)
            # inverted, a rate can leave a float's range (1e-320 gives inf): checked again
            rates[code] = check_rate(code, 1.0 / checked, base) if per_base else checked
        except ValueError as exc:
            inverted = " (inverted: --per-base)" if per_base else ""
            raise click.BadParameter(f"{code}={rate}{inverted}: {exc}") from None
    return rates


def _pairs(texts: tuple[str, ...]) -> list[tuple[str, object]]:
    """``CODE=RATE`` arguments as pairs."""
    out: list[tuple[str, object]] = []
    for text in texts:
        code, sep, rate = text.partition("=")
        if not sep:
            raise click.BadParameter(f"{text!r}: expected CODE=RATE, e.g. USD=0.86")
        out.append((code.strip(), rate.strip()))
    return out


def _file_pairs(path: Path) -> list[tuple[str, object]]:
    """A JSON object of rates, as STREAMER_EXCHANGE_RATES takes them: {"USD": 0.86, ...}."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--file") from None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{path} is not JSON ({exc})", param_hint="--file") from None
    if not isinstance(loaded, dict):
        raise click.BadParameter(
            f'{path} must hold one JSON object, e.g. {{"USD": 0.86}}', param_hint="--file"
        )
    return list(loaded.items())


def _record(settings: Settings, entries: Mapping[str, str]) -> None:
    """Record the rates now in Redis in Kafka, from where a Redis that loses them gets them
    back (``rates restore``, ``rebuild-state``)."""
    from streamer import rates as stored

    record_in_kafka(
        settings, lambda: stored.record(settings, entries), settings.topic_rates,
        done="the rates are set in Redis, and the workers take them up", what="they",
        lost="them will not get them back",
    )  # fmt: skip


async def _restore_first(settings: Settings, client: RedisClient) -> None:
    """Before a change to rates that Redis holds none of, set the last ones recorded in Kafka
    again (as ``rates restore`` would). Each change is recorded as the whole hash after it,
    and the topic is compacted to its last record: a change made to a Redis that lost its
    rates would record only itself, and compaction would then erase every other rate from
    Kafka too. Kafka that cannot be read stops the change before anything is written."""
    from streamer import rates as stored

    restored = await stored.restore(settings, client)
    if restored:
        listed = ", ".join(f"{code}={rate}" for code, rate in sorted(restored.items()))
        click.echo(f"Redis held no rates: first restored {listed} from {settings.topic_rates}")


def _with_rates(settings: Settings, action: Callable[[RedisClient], Awaitable[T]]) -> T:
    """:func:`with_redis`, with Kafka's record that cannot be read as a CLI error."""
    from streamer import rates as stored
    from streamer.kafka import KafkaUnusable

    try:
        return with_redis(settings, action)
    except (KafkaUnusable, stored.NotARecord) as exc:
        raise click.ClickException(f"{exc}; nothing was changed") from None


@click.group()
def rates() -> None:
    """Exchange rates to STREAMER_BASE_CURRENCY, set while the workers run.

    Rates set here are kept in Redis (the hash fs:rates) and replace or add to
    STREAMER_EXCHANGE_RATES currency by currency. Every worker takes them up within
    STREAMER_MODEL_POLL_SECONDS, with no restart, and logs the change; a transaction already
    received keeps the rate it was converted at, and a repeat of one decided before the change
    gets the same decision. A transaction in a currency with no rate is still reviewed. Each
    change is also recorded in Kafka (STREAMER_TOPIC_RATES), from where `rates restore` and
    `rebuild-state` set the rates again in a Redis that lost them.
    """


@rates.command("show")
@pass_settings
def show(settings: Settings) -> None:
    """The rates in force, with where each comes from."""
    from streamer import rates as stored

    in_force = with_redis(settings, lambda client: stored.effective(settings, client))
    currencies, base = in_force.currencies, in_force.currencies.base
    if not currencies.rates and not in_force.problems:
        click.echo(f"no exchange rates: transactions not in {base} are reviewed")
        return
    click.echo(f"{'currency':<9} {'1 unit in ' + base:>16}  from")
    for code, rate in sorted(currencies.rates.items()):
        source = "fraud-streamer rates" if code in in_force.from_redis else (
            "STREAMER_EXCHANGE_RATES")  # fmt: skip
        click.echo(f"{code:<9} {rate:>16.10g}  {source}")
    for code, problem in sorted(in_force.problems.items()):
        click.echo(f"{code:<9} {'-':>16}  left out of fs:rates: {problem}")


@rates.command("set")
@click.argument("pairs", nargs=-1, metavar="[CODE=RATE]...")
@click.option(
    "--file", "path", type=click.Path(dir_okay=False, path_type=Path),
    help='Rates from a JSON object, as STREAMER_EXCHANGE_RATES takes them: {"USD": 0.86}.',
)  # fmt: skip
@click.option(
    "--per-base", is_flag=True,
    help="The rates are units of CODE per one unit of STREAMER_BASE_CURRENCY (how the ECB "
    "quotes the euro: USD=1.16); they are inverted.",
)  # fmt: skip
@click.option(
    "--replace", is_flag=True,
    help="Withdraw every rate set here that is not given, in the same step (a day's feed).",
)  # fmt: skip
@pass_settings
def set_(
    settings: Settings, pairs: tuple[str, ...], path: Path | None, per_base: bool, replace: bool
) -> None:
    """Set rates: units of STREAMER_BASE_CURRENCY one unit of CODE buys, e.g. USD=0.86, given
    as arguments or in a --file. Every rate is checked before any is written."""
    from streamer import rates as stored
    from streamer.currency import rate_text

    given = (_file_pairs(path) if path is not None else []) + _pairs(pairs)
    if not given and not replace:
        raise click.UsageError("give rates as CODE=RATE arguments or with --file")
    wanted = _parse(given, settings.base_currency, per_base=per_base)

    async def change(client: RedisClient) -> dict[str, str]:
        if not replace:  # --replace gives the whole set: nothing before it counts
            await _restore_first(settings, client)
        await stored.write(client, wanted, replace=replace)
        return await stored.read(client)

    _record(settings, _with_rates(settings, change))
    listed = ", ".join(rate_text(c, r, settings.base_currency) for c, r in wanted.items())
    done = f"set {listed}" if wanted else "no rates given"
    if replace:
        done += "; every other rate set here withdrawn"
    click.echo(f"{done}; workers take it up within {settings.model_poll_seconds:g} s")


@rates.command("unset")
@click.argument("codes", nargs=-1, required=True, metavar="CODE...")
@pass_settings
def unset(settings: Settings, codes: tuple[str, ...]) -> None:
    """Withdraw rates set here: those currencies fall back to STREAMER_EXCHANGE_RATES, or to
    no rate (reviewed) when it has none."""
    from streamer import rates as stored

    async def change(client: RedisClient) -> tuple[int, dict[str, str]]:
        await _restore_first(settings, client)
        return await stored.remove(client, codes), await stored.read(client)

    removed, entries = _with_rates(settings, change)
    _record(settings, entries)
    click.echo(f"{removed} rate(s) withdrawn ({len(codes) - removed} not set here)")


@rates.command("restore")
@pass_settings
def restore(settings: Settings) -> None:
    """Set again the rates last recorded in Kafka, in a Redis that lost them (a restart without
    persistence, a new server). `rebuild-state` does this first by itself; a Redis that holds
    any rate is left as it is."""
    from streamer import rates as stored

    async def put_back(client: RedisClient) -> tuple[dict[str, str], dict[str, str] | None]:
        held = await stored.read(client)
        return held, None if held else await stored.restore(settings, client)

    held, restored = _with_rates(settings, put_back)
    if held:
        click.echo(f"Redis holds {len(held)} rate entry(ies) already: left as they are")
    elif restored is None:
        click.echo(f"nothing to restore: no rates recorded on {settings.topic_rates}")
    else:
        listed = ", ".join(f"{code}={rate}" for code, rate in sorted(restored.items()))
        click.echo(f"restored {listed} from {settings.topic_rates}")
