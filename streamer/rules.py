"""Rules beside the model, and the thresholds that turn a score into an outcome.

Rules are hard facts an operator sets (a blocked card or terminal, an amount limit); a hit
declines the transaction whatever the model says, and shows first in its reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from schemas import Outcome, Reason
from streamer.currency import Currencies, unconverted_reason
from streamer.features.definitions import AMOUNT_COLUMN
from streamer.settings import Settings
from streamer.verdicts import Verdict

if TYPE_CHECKING:
    from streamer.scoring import Scorer

__all__ = [
    "Judged",
    "Policy",
    "flagged_reasons",
    "judge",
    "outcome_for",
    "rule_hits",
    "threshold_reason",
]


@dataclass(frozen=True, slots=True)
class Policy:
    """Decision thresholds and rule parameters (from :class:`~streamer.settings.Settings`),
    and the exchange rates that put every amount in the model's currency."""

    # the settings' defaults (one place for them): a Policy() decides as an unconfigured worker
    review_threshold: float = Settings.model_fields["review_threshold"].default
    decline_threshold: float = Settings.model_fields["decline_threshold"].default
    amount_limit: float = Settings.model_fields["amount_limit"].default
    reasons_top_k: int = Settings.model_fields["reasons_top_k"].default
    currencies: Currencies = field(default_factory=Currencies)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            review_threshold=settings.review_threshold,
            decline_threshold=settings.decline_threshold,
            amount_limit=settings.amount_limit,
            reasons_top_k=settings.reasons_top_k,
            currencies=Currencies.from_settings(settings),
        )


def rule_hits(
    *, amount: float, customer_blocked: bool, terminal_blocked: bool, policy: Policy
) -> list[Reason]:
    """The rules a transaction breaks, as reasons; empty when it breaks none. An amount that
    is not known (NaN: its currency had no rate) is over no limit; it is reviewed anyway."""
    hits = []
    if customer_blocked:
        hits.append(
            Reason(code="RULE_CUSTOMER_BLOCKED", description="the card is on the blocklist")
        )
    if terminal_blocked:
        hits.append(
            Reason(code="RULE_TERMINAL_BLOCKED", description="the terminal is on the blocklist")
        )
    if amount > policy.amount_limit:
        base = policy.currencies.base
        hits.append(
            Reason(
                code="RULE_AMOUNT_LIMIT",
                description=f"amount {_money(amount, base)} is over the limit of "
                f"{_money(policy.amount_limit, base)}",
            )
        )
    return hits


def _money(amount: float, currency: str) -> str:
    """An amount in a reason, in the model's currency (a converted one differs from the
    decision's): in cents, or in six digits when cents would be too long (an amount of 1e308
    is valid, and its 309 digits would not fit a reason)."""
    return f"{amount:.2f} {currency}" if amount < 1e15 else f"{amount:.6g} {currency}"


def outcome_for(
    score: float, *, rule_hit: bool, policy: Policy, converted: bool = True
) -> Outcome:
    """Thresholds on the score; any rule hit declines. A transaction whose amount could not be
    put in the model's currency (``converted`` false) was scored without its amount (its
    features at their typical values): it is reviewed at least, never approved on that score."""
    if rule_hit or score >= policy.decline_threshold:
        return "decline"
    if score >= policy.review_threshold or not converted:
        return "review"
    return "approve"


def threshold_reason(score: float, outcome: str, policy: Policy) -> Reason:
    """The reason of a review/decline that neither a rule nor a feature explains."""
    threshold = policy.decline_threshold if outcome == "decline" else policy.review_threshold
    return Reason(
        code="MODEL_SCORE",
        description=f"model score {score:.2f} is at or above the {outcome} threshold "
        f"{threshold:.2f}",
    )


def flagged_reasons(
    score: float,
    outcome: str,
    policy: Policy,
    *,
    rules: list[Reason],
    unconverted: Reason | None,
    model: list[Reason],
) -> list[Reason]:
    """A review's or decline's reasons, in the order an analyst reads them: the rule hits, the
    currency that had no rate, the features that pushed the score up; the threshold crossed
    when none of those explains it."""
    reasons = [*rules, *([unconverted] if unconverted is not None else []), *model]
    return reasons or [threshold_reason(score, outcome, policy)]


@dataclass(frozen=True, slots=True)
class Judged:
    """A batch's verdicts, and what went into them that the worker reports on."""

    verdicts: list[Verdict]
    rules: list[list[Reason]]  # each row's rule hits
    unconverted: dict[int, Reason]  # the rows whose currency had no rate, and the reason


def judge(
    scorer: Scorer,
    features: np.ndarray,
    scores: np.ndarray,
    policy: Policy,
    *,
    currencies: Sequence[str],
    converted: Sequence[bool],
    customer_blocked: Sequence[bool] | None = None,
    terminal_blocked: Sequence[bool] | None = None,
    explain: bool = True,
) -> Judged:
    """The verdict on each row of ``features`` (NaN where not known) that ``scorer`` scored
    ``scores``: the rules, the thresholds and the reasons, in one place for the worker and
    ``score-batch`` (which has no blocklists: None is none blocked).

    A rule hit declines with a score of 1.0; a row whose currency had no rate (``converted``
    false) is reviewed at least. ``explain`` false leaves the model's reasons out (the shadow
    model: a second explanation per flagged row would cost a model call each).
    """
    n = len(scores)
    nobody = [False] * n
    rules = [
        rule_hits(amount=amount, customer_blocked=cb, terminal_blocked=tb, policy=policy)
        for amount, cb, tb in zip(
            features[:, AMOUNT_COLUMN].tolist(),
            nobody if customer_blocked is None else customer_blocked,
            nobody if terminal_blocked is None else terminal_blocked,
            strict=True,
        )
    ]
    base = policy.currencies.base
    unconverted = {
        i: unconverted_reason(currency, base)
        for i, (currency, ok) in enumerate(zip(currencies, converted, strict=True))
        if not ok
    }
    values = [float(s) for s in scores]
    outcomes = [
        outcome_for(s, rule_hit=bool(r), policy=policy, converted=i not in unconverted)
        for i, (s, r) in enumerate(zip(values, rules, strict=True))
    ]
    flagged = [i for i, o in enumerate(outcomes) if o != "approve"]
    explanations = (
        scorer.explain(features[flagged], scores[flagged], policy.reasons_top_k)
        if explain else [[] for _ in flagged]
    )  # fmt: skip
    reasons: dict[int, list[Reason]] = {}
    for i, contributions in zip(flagged, explanations, strict=True):
        reasons[i] = flagged_reasons(
            values[i], outcomes[i], policy, rules=rules[i], unconverted=unconverted.get(i),
            model=[Reason(code=c.code, description=c.describe()) for c in contributions],
        )  # fmt: skip
    verdicts = [
        Verdict(1.0 if rules[i] else values[i], outcomes[i], scorer.version, reasons.get(i, []))
        for i in range(n)
    ]
    return Judged(verdicts, rules, unconverted)
