"""Rules beside the model, and the thresholds that turn a score into an outcome.

Rules are hard facts an operator sets (a blocked card or terminal, an amount limit); a hit
declines the transaction whatever the model says, and shows first in its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas import Outcome, Reason
from streamer.currency import Currencies
from streamer.settings import Settings

__all__ = ["Policy", "flagged_reasons", "outcome_for", "rule_hits", "threshold_reason"]


@dataclass(frozen=True, slots=True)
class Policy:
    """Decision thresholds and rule parameters (from :class:`~streamer.settings.Settings`),
    and the exchange rates that put every amount in the model's currency."""

    review_threshold: float = 0.5
    decline_threshold: float = 0.9
    amount_limit: float = 10_000.0
    reasons_top_k: int = 3
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
