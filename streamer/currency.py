"""Amounts in the currency the model knows.

The model, its amount features and the amount-limit rule compare amounts as numbers, and the
numbers it learned from are in one currency (the training history's, EUR for the simulator's).
A transaction written in another currency is converted before anything is computed from its
amount: its card's windows, its features and the rules all see the converted amount, while the
decision echoes the amount and currency as the producer wrote them. A currency without a rate
cannot be converted: its amount is not known. Its card's windows leave it out of their amounts,
the features computed from it take their typical values (:meth:`streamer.scoring.Scorer.
model_inputs`), no amount limit applies, and the caller sends it to review at least
(:func:`streamer.rules.outcome_for`), with :func:`unconverted_reason` saying why.

One place for the rule, for the worker, ``rebuild-state`` and ``score-batch`` alike: the
worker converts one transaction at a time (:meth:`Currencies.to_base`), ``score-batch`` a
column at once (:meth:`Currencies.to_base_column`), with the same multiplication, so both give
the same bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from pydantic import TypeAdapter, ValidationError

from schemas import Reason
from streamer.settings import CurrencyCode, Rate, Settings

__all__ = ["UNCONVERTED", "Currencies", "check_rate", "rate_text", "unconverted_reason"]

_CODE: TypeAdapter[str] = TypeAdapter(CurrencyCode)
_RATE: TypeAdapter[float] = TypeAdapter(Rate)

#: the reason code of a transaction whose currency has no rate
UNCONVERTED = "CURRENCY_NOT_CONVERTED"


@dataclass(frozen=True, slots=True)
class Currencies:
    """The base currency and, per other currency, how many units of the base one unit buys."""

    base: str = "EUR"
    rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_settings(cls, settings: Settings) -> Currencies:
        return cls(settings.base_currency, MappingProxyType(dict(settings.exchange_rates)))

    def with_rates(self, rates: Mapping[str, float]) -> Currencies:
        """These rates, with ``rates`` replacing or adding theirs currency by currency."""
        return Currencies(self.base, MappingProxyType({**self.rates, **rates}))

    def changes_from(self, before: Currencies) -> list[str]:
        """What moved since ``before``, per currency, in words for a log line."""
        out = []
        for code in sorted(self.rates.keys() | before.rates.keys()):
            old, new = before.rates.get(code), self.rates.get(code)
            if old == new:
                continue
            if old is None:
                out.append(f"{code} {new:.10g} (new)")
            elif new is None:
                out.append(f"{code} withdrawn (was {old:.10g})")
            else:
                out.append(f"{code} {old:.10g} -> {new:.10g}")
        return out

    def describe(self) -> str:
        """The rates, for a log line or a command's output: ``1 USD = 0.86 EUR, …``."""
        pairs = [rate_text(code, rate, self.base) for code, rate in sorted(self.rates.items())]
        return ", ".join(pairs) or f"none (transactions not in {self.base} are reviewed)"

    def rate(self, currency: str) -> float | None:
        """Units of the base per unit of ``currency``; None when there is no rate for it."""
        return 1.0 if currency == self.base else self.rates.get(currency)

    def to_base(self, amount: float, currency: str) -> tuple[float, bool]:
        """(the amount in the base currency, whether it could be converted); an amount that
        could not is returned as written."""
        rate = self.rate(currency)
        return (amount, False) if rate is None else (amount * rate, True)

    def to_base_column(
        self, amounts: np.ndarray, currencies: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`to_base` for arrays: (converted amounts, which rows could be converted)."""
        out = np.asarray(amounts, dtype=float).copy()
        converted = np.ones(len(out), dtype=bool)
        for currency in np.unique(currencies):
            if currency == self.base:
                continue
            rows = currencies == currency
            rate = self.rates.get(str(currency))
            if rate is None:
                converted[rows] = False
            else:
                out[rows] = out[rows] * rate
        return out, converted


def rate_text(currency: str, rate: float, base: str) -> str:
    """One rate in words: ``1 USD = 0.86 EUR``."""
    return f"1 {currency} = {rate:.10g} {base}"


def check_rate(currency: str, rate: object, base: str) -> float:
    """``rate`` for ``currency`` as ``STREAMER_EXCHANGE_RATES`` would accept it (a positive,
    finite number; a number in text too), or ValueError saying what is wrong."""
    try:
        _CODE.validate_python(currency)
    except ValidationError:
        msg = f"{currency!r} is not a currency code (three upper-case letters)"
        raise ValueError(msg) from None
    if currency == base:
        raise ValueError(f"{currency} is the base currency (STREAMER_BASE_CURRENCY): its rate is 1")
    try:
        return _RATE.validate_python(rate)
    except ValidationError:
        raise ValueError(
            f"the rate for {currency} must be a positive, finite number (got {rate!r})"
        ) from None


def unconverted_reason(currency: str, base: str) -> Reason:
    """Why a transaction in a currency without a rate was sent to review."""
    return Reason(
        code=UNCONVERTED,
        description=f"the amount is in {currency}, which has no exchange rate to {base} "
        f"(STREAMER_EXCHANGE_RATES or `fraud-streamer rates`): it was scored without its "
        f"amount, on the card's and the terminal's histories",
    )
