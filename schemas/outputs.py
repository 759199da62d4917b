"""The messages the worker produces for each valid transaction: decisions and alerts.

Times serialise as RFC 3339 with the offset they carry (``Z`` for UTC), so consumers can parse
them back with these same models.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from schemas.common import Amount, Currency, Id, Timestamp, WireModel

__all__ = [
    "ALERT_ID_NAMESPACE",
    "Alert",
    "Decision",
    "Outcome",
    "Reason",
    "Severity",
    "alert_id_for",
    "severity_for",
]

Outcome = Literal["approve", "review", "decline"]
"""What happens to a transaction."""

Severity = Literal["medium", "high"]
"""How urgent an alert is: ``medium`` for a review, ``high`` for a decline."""

_SEVERITY: dict[str, Severity] = {"review": "medium", "decline": "high"}

ALERT_ID_NAMESPACE = uuid.UUID("5f0d3c1e-8b7a-4f4e-9a51-2c6e0b7d9f13")
"""UUID5 namespace of alert ids. Never change it: consumers dedupe re-delivered alerts by id."""

Score = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
Milliseconds = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]


def alert_id_for(transaction_id: str) -> str:
    """The alert id of a transaction: the same on every re-delivery, so consumers can dedupe."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, transaction_id))


def severity_for(outcome: Outcome) -> Severity:
    """The alert severity of an outcome; ``approve`` raises no alert, so it has none."""
    try:
        return _SEVERITY[outcome]
    except KeyError:
        raise ValueError(f"an {outcome!r} decision raises no alert") from None


class Reason(WireModel):
    """One reason behind a decision: a rule hit, a currency without a rate, a feature that
    drove the model, or the threshold crossed."""

    code: Id = Field(description="Stable machine-readable code, e.g. a rule or feature name.")
    description: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="Human-readable explanation for analysts."
    )


class Decision(WireModel):
    """The outcome for one transaction (topic decisions): exactly one per valid transaction."""

    # the rule of ``_explained`` below, for the JSON Schema file's readers
    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"decision": {"enum": ["review", "decline"]}}},
        "then": {"properties": {"reasons": {"minItems": 1}}},
    })  # fmt: skip

    transaction_id: Id = Field(description="As on the transaction.")
    customer_id: Id = Field(description="As on the transaction.")
    terminal_id: Id = Field(description="As on the transaction.")
    amount: Amount = Field(description="As on the transaction.")
    currency: Currency = Field(description="As on the transaction (EUR when it was omitted).")
    timestamp: Timestamp = Field(description="As on the transaction (same instant).")
    score: Score = Field(description="The model's fraud probability after rules, in [0, 1].")
    decision: Outcome = Field(description="The outcome, from thresholds and rules.")
    reasons: list[Reason] = Field(
        description="Why, in this order: rule hits (RULE_*), a currency without an exchange "
        "rate (CURRENCY_NOT_CONVERTED), the features that pushed the score up (by name); the "
        "threshold crossed (MODEL_SCORE) when none of these explains it. At least one for "
        "review and decline."
    )
    model_version: Id = Field(description="The model that scored the transaction.")
    decided_at: Timestamp = Field(description="Wall-clock time of the decision.")
    processing_ms: Milliseconds = Field(
        description="Time inside the worker, from consuming the event to handing over the decision."
    )

    @model_validator(mode="after")
    def _explained(self) -> Decision:
        # Analysts must be able to tell why a transaction was stopped.
        if self.decision != "approve" and not self.reasons:
            raise ValueError(f"a {self.decision!r} decision needs at least one reason")
        return self


class Alert(WireModel):
    """A transaction for analysts to look at (topic alerts): one per review or decline decision."""

    alert_id: Id = Field(
        description="Unique; derived from transaction_id, so stable on re-delivery."
    )
    transaction_id: Id = Field(description="As on the transaction.")
    customer_id: Id = Field(description="As on the transaction.")
    terminal_id: Id = Field(description="As on the transaction.")
    amount: Amount = Field(description="As on the transaction.")
    currency: Currency = Field(description="As on the transaction (EUR when it was omitted).")
    timestamp: Timestamp = Field(description="As on the transaction (same instant).")
    score: Score = Field(description="As on the decision.")
    decision: Literal["review", "decline"] = Field(description="As on the decision.")
    severity: Severity = Field(description="medium for review, high for decline.")
    reasons: list[Reason] = Field(description="As on the decision; at least one.", min_length=1)
    model_version: Id = Field(description="The model that scored the transaction.")
    created_at: Timestamp = Field(description="Wall-clock time the alert was raised.")

    @model_validator(mode="after")
    def _severity_matches(self) -> Alert:
        if self.severity != _SEVERITY[self.decision]:
            raise ValueError(
                f"severity of a {self.decision!r} alert must be {_SEVERITY[self.decision]!r}"
            )
        return self

    @classmethod
    def from_decision(cls, decision: Decision, *, created_at: datetime) -> Alert:
        """The alert for a review or decline decision, with its derived id and severity."""
        outcome = decision.decision
        if outcome == "approve":
            raise ValueError("an 'approve' decision raises no alert")
        return cls(
            alert_id=alert_id_for(decision.transaction_id),
            transaction_id=decision.transaction_id,
            customer_id=decision.customer_id,
            terminal_id=decision.terminal_id,
            amount=decision.amount,
            currency=decision.currency,
            timestamp=decision.timestamp,
            score=decision.score,
            decision=outcome,
            severity=_SEVERITY[outcome],
            reasons=decision.reasons,
            model_version=decision.model_version,
            created_at=created_at,
        )
