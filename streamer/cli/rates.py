"""``fraud-streamer rates``: exchange rates the running workers take up without a restart."""

from __future__ import annotations

import click

from streamer.cli import pass_settings, with_redis
from streamer.settings import Settings


def _parse(pairs: tuple[str, ...], base: str) -> dict[str, float]:
    """``CODE=RATE`` arguments, every one checked before anything is written."""
    from streamer.currency import check_rate

    rates: dict[str, float] = {}
    for pair in pairs:
        code, sep, text = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: expected CODE=RATE, e.g. USD=0.86")
        try:
            rates[code.strip()] = check_rate(code.strip(), text.strip(), base)
        except ValueError as exc:
            raise click.BadParameter(f"{pair!r}: {exc}") from None
    return rates


@click.group()
def rates() -> None:
    """Exchange rates to STREAMER_BASE_CURRENCY, set while the workers run.

    Rates set here are kept in Redis (the hash fs:rates) and replace or add to
    STREAMER_EXCHANGE_RATES currency by currency. Every worker takes them up within
    STREAMER_MODEL_POLL_SECONDS, with no restart, and logs the change; a transaction already
    received keeps the rate it was converted at, and a repeat of one decided before the change
    gets the same decision. A transaction in a currency with no rate is still reviewed.
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
@click.argument("pairs", nargs=-1, required=True, metavar="CODE=RATE...")
@pass_settings
def set_(settings: Settings, pairs: tuple[str, ...]) -> None:
    """Set rates: units of STREAMER_BASE_CURRENCY one unit of CODE buys, e.g. USD=0.86."""
    from streamer import rates as stored

    wanted = _parse(pairs, settings.base_currency)
    with_redis(settings, lambda client: stored.write(client, wanted))
    listed = ", ".join(f"1 {c} = {r:.10g} {settings.base_currency}" for c, r in wanted.items())
    click.echo(f"set {listed}; workers take it up within {settings.model_poll_seconds:g} s")


@rates.command("unset")
@click.argument("codes", nargs=-1, required=True, metavar="CODE...")
@pass_settings
def unset(settings: Settings, codes: tuple[str, ...]) -> None:
    """Withdraw rates set here: those currencies fall back to STREAMER_EXCHANGE_RATES, or to
    no rate (reviewed) when it has none."""
    from streamer import rates as stored

    removed = with_redis(settings, lambda client: stored.remove(client, codes))
    click.echo(f"{removed} rate(s) withdrawn ({len(codes) - removed} were not set here)")
