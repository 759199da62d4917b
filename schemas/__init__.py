"""The wire contract as pydantic v2 models (no I/O).

Decode at the edge with ``Model.model_validate_json(raw)`` and encode with
``model.model_dump_json()``; ``python -m schemas.generate`` writes the JSON Schema files in
``schemas/json/`` for producers in other languages.
"""

from schemas.common import RFC3339_PATTERN, Amount, Currency, Id, Timestamp, WireModel
from schemas.dead_letter import DeadLetter, ErrorDetail, RawEncoding
from schemas.inputs import Label, Transaction
from schemas.outputs import (
    ALERT_ID_NAMESPACE,
    Alert,
    Decision,
    Outcome,
    Reason,
    Severity,
    alert_id_for,
    severity_for,
)

__all__ = [
    "ALERT_ID_NAMESPACE",
    "RFC3339_PATTERN",
    "Alert",
    "Amount",
    "Currency",
    "DeadLetter",
    "Decision",
    "ErrorDetail",
    "Id",
    "Label",
    "Outcome",
    "RawEncoding",
    "Reason",
    "Severity",
    "Timestamp",
    "Transaction",
    "WireModel",
    "alert_id_for",
    "severity_for",
]
