"""Exchange rates set at run time: their checks, how they combine with the settings', what a
worker logs and exports of a change, and the command's refusals (which need no Redis)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamer.cli import cli
from streamer.currency import Currencies, check_rate
from streamer.metrics import Metrics
from streamer.runtime import Runtime
from streamer.settings import load_settings
from tests.prometheus import samples


def test_rates_set_at_run_time_replace_or_add_to_the_settings_ones() -> None:
    configured = Currencies("EUR", {"USD": 0.86, "GBP": 1.14})
    now = configured.with_rates({"USD": 0.9, "JPY": 0.006})
    assert dict(now.rates) == {"USD": 0.9, "GBP": 1.14, "JPY": 0.006}
    assert now.base == "EUR" and dict(configured.rates) == {"USD": 0.86, "GBP": 1.14}
    assert configured.with_rates({}) == configured  # equal rates: no change to take up
    assert now.changes_from(configured) == ["JPY 0.006 (new)", "USD 0.86 -> 0.9"]
    assert configured.changes_from(now) == ["JPY withdrawn (was 0.006)", "USD 0.9 -> 0.86"]


@pytest.mark.parametrize(
    ("code", "rate", "problem"),
    [
        ("USD", "0", "must be a positive, finite number (got '0')"),
        ("USD", "-1", "must be a positive, finite number"),
        ("USD", "inf", "must be a positive, finite number"),
        ("USD", "nan", "must be a positive, finite number"),
        ("USD", "0,86", "must be a positive, finite number (got '0,86')"),
        ("usd", "0.86", "'usd' is not a currency code"),
        ("US", "0.86", "'US' is not a currency code"),
        ("EUR", "1", "EUR is the base currency"),
    ],
)
def test_a_rate_the_settings_would_refuse_is_refused_with_why(
    code: str, rate: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check_rate(code, rate, "EUR")


def test_a_good_rate_is_read_from_text() -> None:
    assert check_rate("USD", "0.86", "EUR") == 0.86
    assert check_rate("JPY", "6e-3", "EUR") == 0.006
    assert check_rate("EUR", "1.1", "USD") == 1.1  # EUR is a currency like any other here


def test_the_rates_in_force_are_exported_and_a_withdrawn_one_disappears() -> None:
    metrics = Metrics()
    metrics.set_rates(Currencies("EUR", {"USD": 0.86, "JPY": 0.006}))
    got = samples(metrics.exposition()[0].decode())
    rate = "streamer_exchange_rate"
    assert got[(rate, (("base", "EUR"), ("currency", "USD")))] == 0.86
    assert got[(rate, (("base", "EUR"), ("currency", "JPY")))] == 0.006
    metrics.set_rates(Currencies("EUR", {"USD": 0.9}))
    got = samples(metrics.exposition()[0].decode())
    assert got[(rate, (("base", "EUR"), ("currency", "USD")))] == 0.9
    assert (rate, (("base", "EUR"), ("currency", "JPY"))) not in got


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["USD"], "'USD': expected CODE=RATE, e.g. USD=0.86"),
        (["USD=0.86", "JPY=-2"], "JPY=-2: the rate for JPY must be a positive, finite number"),
        (["EUR=1"], "EUR=1: EUR is the base currency (STREAMER_BASE_CURRENCY)"),
        (["gbp=1.1"], "gbp=1.1: 'gbp' is not a currency code"),
        ([], "give rates as CODE=RATE arguments or with --file"),
        (["--file", "{missing}"], "cannot read"),
        (["--file", "{not json}"], "is not JSON"),
        (["--file", "{a list}"], 'must hold one JSON object, e.g. {"USD": 0.86}'),
        (["--file", "{bad rate}"], "CHF=0: the rate for CHF must be a positive, finite number"),
        (["--file", "{a flag}"], "USD=True: the rate for USD must be a positive, finite number"),
        (["--per-base", "USD=1e-320"],
         "USD=1e-320 (inverted: --per-base): the rate for USD must be a positive, finite number "
         "(got inf)"),
    ],
)
def test_rates_set_refuses_a_bad_rate_before_writing_any(
    args: list[str], problem: str, tmp_path: Path
) -> None:
    """Every pair is checked before Redis is reached: none is written when one is wrong (the
    Redis URL here leads nowhere, so reaching it would fail differently)."""
    files = {"{missing}": None, "{not json}": "{USD: 0.86}", "{a list}": '[["USD", 0.86]]',
             "{bad rate}": '{"USD": 0.86, "CHF": 0}', "{a flag}": '{"USD": true}'}  # fmt: skip
    for i, (name, text) in enumerate(files.items()):
        path = tmp_path / f"rates-{i}.json"
        if text is not None:
            path.write_text(text)
        args = [str(path) if a == name else a for a in args]
    result = CliRunner().invoke(
        cli, ["rates", "set", *args], env={"STREAMER_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert result.exit_code == 2, result.output
    assert problem in result.output


async def test_a_worker_that_cannot_read_the_rates_keeps_its_own_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis not answering (here: nothing listens at its address) leaves the rates in force
    as they were, with one warning however often the worker looks."""
    settings = load_settings(
        redis_url="redis://127.0.0.1:1/0", exchange_rates={"USD": 0.86}, redis_timeout_s=2
    )
    runtime = Runtime(settings)
    with caplog.at_level(logging.WARNING, logger="streamer.worker"):
        for _ in range(3):
            await runtime.refresh_rates()
    assert dict(runtime.currencies.rates) == {"USD": 0.86}
    warned = [r.getMessage() for r in caplog.records if "exchange rates" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "keeping 1 USD = 0.86 EUR" in warned[0]


def test_rates_quoted_per_unit_of_the_base_are_inverted() -> None:
    """The ECB quotes the euro as dollars per euro (USD 1.16): stored as euros per dollar."""
    from streamer.cli.rates import _parse

    got = _parse([("USD", "1.16"), ("JPY", 180)], "EUR", per_base=True)
    assert got == {"USD": 1 / 1.16, "JPY": 1 / 180}
    assert _parse([("USD", "0.86")], "EUR", per_base=False) == {"USD": 0.86}


def test_the_worker_s_summary_names_the_rates_it_converts_at() -> None:
    """What its page shows beside the model version."""
    summary = Metrics().summary("v1", None, Currencies("EUR", {"USD": 0.86, "GBP": 1.14}))
    assert summary["exchange_rates"] == {"base": "EUR", "rates": {"GBP": 1.14, "USD": 0.86}}
    assert Metrics().summary("v1")["exchange_rates"] is None
