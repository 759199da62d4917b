"""The messages the worker consumes: transactions to score and fraud labels."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, StrictBool, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.common import Amount, Currency, Id, Timestamp, WireModel

__all__ = ["Label", "Transaction"]


class Transaction(WireModel):
    """A card transaction to score (topic transactions, keyed by customer_id)."""

    # Validated once per event: every rule is a pydantic-core constraint except the time format.

    transaction_id: Id = Field(description="Unique per transaction, 1–64 characters.")
    timestamp: Timestamp = Field(
        description="When the transaction happened (event time), RFC 3339 with an offset."
    )
    customer_id: Id = Field(description="The card / customer, 1–64 characters.")
    terminal_id: Id = Field(description="The merchant terminal, 1–64 characters.")
    amount: Amount = Field(description="Finite JSON number ≥ 0; zero-amount authorisations count.")
    currency: Currency = Field(
        "EUR",
        description="ISO 4217 code, three upper-case letters; omit it rather than send null. "
        "The workers convert the amount to their model's currency with their configured rates; "
        "one in a currency without a rate is scored without its amount and reviewed at least.",
    )


class Label(WireModel):
    """A fraud report (topic labels): marks a transaction as fraud, or withdraws that mark."""

    # It may arrive for a transaction the worker never saw, so it carries what is needed to
    # place it (terminal and event time) itself.

    transaction_id: Id = Field(description="The transaction this label is about.")
    customer_id: Id = Field(description="As on the transaction.")
    terminal_id: Id = Field(description="As on the transaction.")
    tx_timestamp: Timestamp = Field(description="The transaction's own timestamp.")
    is_fraud: StrictBool = Field(
        description="true for fraud; false for a confirmed genuine transaction."
    )
    reported_at: Timestamp = Field(
        description="When the label became known; not before tx_timestamp."
    )

    @field_validator("reported_at")
    @classmethod
    def _not_before_transaction(cls, value: datetime, info: ValidationInfo) -> datetime:
        # A label known before its transaction happened would leak the future into replays.
        tx_timestamp = info.data.get("tx_timestamp")
        if tx_timestamp is not None and value < tx_timestamp:
            raise PydanticCustomError(
                "reported_before_transaction",
                "reported_at ({reported_at}) must not be earlier than tx_timestamp "
                "({tx_timestamp})",
                {"reported_at": value.isoformat(), "tx_timestamp": tx_timestamp.isoformat()},
            )
        return value
