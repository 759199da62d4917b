"""The wire contract's acceptance and rejection rules, one case per rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import schemas
from schemas import (
    Alert,
    DeadLetter,
    Decision,
    ErrorDetail,
    Label,
    Reason,
    Transaction,
    alert_id_for,
    severity_for,
)

TX: dict[str, Any] = {
    "transaction_id": "tx-1",
    "timestamp": "2018-04-01T00:00:31Z",
    "customer_id": "c-1",
    "terminal_id": "t-1",
    "amount": 12.5,
}

LABEL: dict[str, Any] = {
    "transaction_id": "tx-1",
    "customer_id": "c-1",
    "terminal_id": "t-1",
    "tx_timestamp": "2018-04-01T00:00:31Z",
    "is_fraud": True,
    "reported_at": "2018-04-20T09:00:00+02:00",
}


def tx_json(**changes: Any) -> bytes:
    """The minimal valid transaction with fields changed (a value of ... removes the field)."""
    body = {**TX, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def errors_of(model: type[BaseModel], raw: bytes | str) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(raw)
    return [(e["loc"], e["type"]) for e in info.value.errors()]


def only_error(model: type[BaseModel], raw: bytes | str) -> dict[str, Any]:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(raw)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return dict(errors[0])


# --- Transaction: accepted --------------------------------------------------------------------


def test_minimal_transaction_is_accepted_with_eur_default() -> None:
    tx = Transaction.model_validate_json(tx_json())
    assert tx.transaction_id == "tx-1"
    assert tx.customer_id == "c-1"
    assert tx.terminal_id == "t-1"
    assert tx.amount == 12.5
    assert tx.currency == "EUR"
    assert tx.timestamp == datetime(2018, 4, 1, 0, 0, 31, tzinfo=UTC)


def test_unknown_extra_fields_are_ignored() -> None:
    tx = Transaction.model_validate_json(tx_json(channel="web", nested={"a": [1, None]}))
    assert not hasattr(tx, "channel")
    assert "channel" not in tx.model_dump()


def test_explicit_currency_is_kept() -> None:
    assert Transaction.model_validate_json(tx_json(currency="USD")).currency == "USD"


@pytest.mark.parametrize("amount", [0, 0.0, 1, 10_000_000.01])
def test_zero_and_integer_amounts_are_accepted(amount: float) -> None:
    assert Transaction.model_validate_json(tx_json(amount=amount)).amount == amount


def test_fractions_of_a_second_are_accepted() -> None:
    tx = Transaction.model_validate_json(tx_json(timestamp="2018-04-01T00:00:31.250Z"))
    assert tx.timestamp.microsecond == 250_000


def test_producer_offset_is_kept_for_wall_time_features() -> None:
    tx = Transaction.model_validate_json(tx_json(timestamp="2018-04-01T23:30:00+02:00"))
    assert tx.timestamp.utcoffset() == timedelta(hours=2)
    assert (tx.timestamp.hour, tx.timestamp.weekday()) == (23, 6)  # Sunday night, local time
    assert tx.timestamp == datetime(2018, 4, 1, 21, 30, tzinfo=UTC)  # same instant


def test_negative_offset_is_accepted() -> None:
    tx = Transaction.model_validate_json(tx_json(timestamp="2018-03-31T19:00:31-05:00"))
    assert tx.timestamp == datetime(2018, 4, 1, 0, 0, 31, tzinfo=UTC)


@pytest.mark.parametrize("length", [1, 64])
def test_ids_of_1_to_64_characters_are_accepted(length: int) -> None:
    tx = Transaction.model_validate_json(tx_json(transaction_id="x" * length))
    assert tx.transaction_id == "x" * length


def test_transaction_is_frozen() -> None:
    tx = Transaction.model_validate_json(tx_json())
    with pytest.raises(ValidationError):
        tx.amount = 1.0


def test_python_construction_takes_aware_datetimes() -> None:
    when = datetime(2018, 4, 1, 2, 0, 31, tzinfo=timezone(timedelta(hours=2)))
    tx = Transaction(**{**TX, "timestamp": when})
    assert tx.timestamp == when
    assert tx.timestamp.utcoffset() == timedelta(hours=2)


# --- Transaction: rejected --------------------------------------------------------------------


def test_null_currency_is_rejected() -> None:
    err = only_error(Transaction, tx_json(currency=None))
    assert (err["loc"], err["type"]) == (("currency",), "string_type")


@pytest.mark.parametrize("currency", ["eur", "Eur", "EURO", "EU", "", "EUR\n", "€UR"])
def test_currency_must_be_three_upper_case_letters(currency: str) -> None:
    err = only_error(Transaction, tx_json(currency=currency))
    assert (err["loc"], err["type"]) == (("currency",), "string_pattern_mismatch")


@pytest.mark.parametrize(
    ("amount", "error_type"),
    [
        (-0.01, "greater_than_equal"),
        ("12.5", "float_type"),
        (True, "float_type"),
        (None, "float_type"),
    ],
)
def test_bad_amounts_are_rejected(amount: object, error_type: str) -> None:
    err = only_error(Transaction, tx_json(amount=amount))
    assert (err["loc"], err["type"]) == (("amount",), error_type)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_amounts_are_rejected(literal: str) -> None:
    # The JSON parser accepts NaN and Infinity literals and overflows 1e400 to inf.
    raw = tx_json(amount=0).replace(b'"amount": 0', f'"amount": {literal}'.encode())
    assert literal.encode() in raw
    err = only_error(Transaction, raw)
    assert err["loc"] == ("amount",)
    assert err["type"] in {"finite_number", "greater_than_equal"}


@pytest.mark.parametrize(
    ("timestamp", "error_type", "says"),
    [
        ("2018-04-01T00:00:31", "timezone_aware", "must include a UTC offset"),
        ("2018-04-01T00:00:31.5", "timezone_aware", "must include a UTC offset"),
        ("2018-04-01", "datetime_format", "not a date only"),
        ("2018-04-01 00:00:31Z", "datetime_format", "separate date and time with 'T'"),
        ("2018-04-01T00:00Z", "datetime_format", "include seconds"),
        ("2018-04-01T00:00:31+0200", "datetime_format", "±hh:mm"),
        ("2018-04-01T00:00:31+02", "datetime_format", "±hh:mm"),
        ("2018-04-01t00:00:31z", "datetime_format", "'T'"),
        ("2018-04-01T00:00:31,5Z", "datetime_format", "RFC 3339"),
        ("01/04/2018 00:00:31", "datetime_format", "RFC 3339"),
        ("", "datetime_format", "RFC 3339"),
        ("2018-04-01T00:00:31Z\n", "datetime_format", "±hh:mm"),
        ("2018-13-01T00:00:31Z", "datetime_from_date_parsing", "month must be in 1..12"),
        ("2018-02-30T00:00:31Z", "datetime_from_date_parsing", "day is out of range for month"),
        ("2018-04-01T24:00:00Z", "datetime_from_date_parsing", "hour must be in 0..23"),
        ("2018-04-01T00:00:31+24:00", "datetime_from_date_parsing", "between -23:59 and +23:59"),
        ("2018-04-01T00:00:31+23:60", "datetime_from_date_parsing", "between -23:59 and +23:59"),
        ("2016-12-31T23:59:60Z", "datetime_from_date_parsing", "a leap second is not taken"),
    ],
)
def test_bad_times_are_rejected_with_an_actionable_message(
    timestamp: str, error_type: str, says: str
) -> None:
    err = only_error(Transaction, tx_json(timestamp=timestamp))
    assert (err["loc"], err["type"]) == (("timestamp",), error_type)
    assert says in err["msg"]


def test_offset_less_time_names_the_fix() -> None:
    err = only_error(Transaction, tx_json(timestamp="2018-04-01T00:00:31"))
    assert err["msg"] == "timestamp must include a UTC offset, e.g. 2018-04-01T00:00:31Z"


@pytest.mark.parametrize("timestamp", [1522540831, 1522540831.0, True, None, ["2018-04-01"]])
def test_non_string_times_are_rejected(timestamp: object) -> None:
    # pydantic alone would read numbers as Unix times.
    err = only_error(Transaction, tx_json(timestamp=timestamp))
    assert (err["loc"], err["type"]) == (("timestamp",), "datetime_type")


def test_naive_python_datetime_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must include a UTC offset"):
        Transaction(**{**TX, "timestamp": datetime(2018, 4, 1)})


@pytest.mark.parametrize("field", ["transaction_id", "customer_id", "terminal_id"])
@pytest.mark.parametrize(
    ("value", "error_type"), [("x" * 65, "string_too_long"), ("", "string_too_short")]
)
def test_ids_must_be_1_to_64_characters(field: str, value: str, error_type: str) -> None:
    err = only_error(Transaction, tx_json(**{field: value}))
    assert (err["loc"], err["type"]) == ((field,), error_type)


@pytest.mark.parametrize("value", [123, None, True])
def test_ids_must_be_strings(value: object) -> None:
    err = only_error(Transaction, tx_json(customer_id=value))
    assert (err["loc"], err["type"]) == (("customer_id",), "string_type")


@pytest.mark.parametrize(
    "field", ["transaction_id", "timestamp", "customer_id", "terminal_id", "amount"]
)
def test_missing_required_field_is_rejected(field: str) -> None:
    err = only_error(Transaction, tx_json(**{field: ...}))
    assert (err["loc"], err["type"]) == ((field,), "missing")


@pytest.mark.parametrize(
    ("raw", "error_type"),
    [
        (b"not json", "json_invalid"),
        (b'{"transaction_id": "tx-1",', "json_invalid"),
        (b"[]", "model_type"),
        (b'"a string"', "model_type"),
        (b"42", "model_type"),
        (b"null", "model_type"),
    ],
)
def test_non_objects_are_rejected(raw: bytes, error_type: str) -> None:
    err = only_error(Transaction, raw)
    assert (err["loc"], err["type"]) == ((), error_type)


def test_all_problems_are_reported_together() -> None:
    raw = tx_json(transaction_id="", timestamp="2018-04-01 00:00:31", amount=-1)
    assert errors_of(Transaction, raw) == [
        (("transaction_id",), "string_too_short"),
        (("timestamp",), "datetime_format"),
        (("amount",), "greater_than_equal"),
    ]


# --- Label ------------------------------------------------------------------------------------


def test_label_is_accepted() -> None:
    label = Label.model_validate_json(json.dumps(LABEL))
    assert label.is_fraud is True
    assert label.reported_at.utcoffset() == timedelta(hours=2)


def test_label_reported_at_the_transaction_time_is_accepted() -> None:
    raw = json.dumps({**LABEL, "reported_at": "2018-04-01T02:00:31+02:00"})  # same instant
    assert Label.model_validate_json(raw).reported_at == Label.model_validate_json(raw).tx_timestamp


def test_label_reported_before_its_transaction_is_rejected() -> None:
    # 01:00:30+02:00 is 23:00:30Z the day before: compared as instants, not as wall times.
    err = only_error(Label, json.dumps({**LABEL, "reported_at": "2018-04-01T01:00:30+02:00"}))
    assert (err["loc"], err["type"]) == (("reported_at",), "reported_before_transaction")
    assert "must not be earlier than tx_timestamp" in err["msg"]


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None])
def test_label_is_fraud_must_be_a_boolean(value: object) -> None:
    err = only_error(Label, json.dumps({**LABEL, "is_fraud": value}))
    assert (err["loc"], err["type"]) == (("is_fraud",), "bool_type")


def test_label_times_follow_the_time_rules() -> None:
    raw = json.dumps({**LABEL, "tx_timestamp": "2018-04-01T00:00:31"})
    assert errors_of(Label, raw) == [(("tx_timestamp",), "timezone_aware")]


@pytest.mark.parametrize("field", list(LABEL))
def test_a_label_missing_a_field_is_rejected(field: str) -> None:
    raw = json.dumps({k: v for k, v in LABEL.items() if k != field})
    assert errors_of(Label, raw) == [((field,), "missing")]


@pytest.mark.parametrize("field", ["transaction_id", "customer_id", "terminal_id"])
@pytest.mark.parametrize(
    ("value", "error_type"), [("x" * 65, "string_too_long"), ("", "string_too_short")]
)
def test_a_label_s_ids_must_be_1_to_64_characters(field: str, value: str, error_type: str) -> None:
    err = only_error(Label, json.dumps({**LABEL, field: value}))
    assert (err["loc"], err["type"]) == ((field,), error_type)


def test_a_label_ignores_fields_it_does_not_know() -> None:
    label = Label.model_validate_json(json.dumps({**LABEL, "source": "chargeback"}))
    assert label == Label.model_validate_json(json.dumps(LABEL))


# --- outputs ----------------------------------------------------------------------------------

DECIDED_AT = datetime(2018, 4, 1, 0, 0, 31, 123456, tzinfo=UTC)


def make_decision(**changes: Any) -> Decision:
    tx = Transaction.model_validate_json(tx_json(timestamp="2018-04-01T02:00:31+02:00"))
    fields: dict[str, Any] = {
        **tx.model_dump(),
        "score": 0.93,
        "decision": "decline",
        "reasons": [Reason(code="RULE_AMOUNT", description="amount over the limit")],
        "model_version": "2018-04-01-abc123",
        "decided_at": DECIDED_AT,
        "processing_ms": 3.25,
    }
    fields.update(changes)
    return Decision(**fields)


def test_decision_json_round_trips() -> None:
    decision = make_decision()
    raw = decision.model_dump_json()
    assert Decision.model_validate_json(raw) == decision


def test_output_times_are_rfc3339_with_an_offset() -> None:
    body = json.loads(make_decision().model_dump_json())
    assert body["decided_at"] == "2018-04-01T00:00:31.123456Z"
    assert body["timestamp"] == "2018-04-01T02:00:31+02:00"  # the producer's offset, echoed
    assert body["currency"] == "EUR"


@pytest.mark.parametrize("score", [-0.01, 1.01, float("nan")])
def test_decision_score_is_a_probability(score: float) -> None:
    with pytest.raises(ValidationError, match="score"):
        make_decision(score=score)


@pytest.mark.parametrize("outcome", ["review", "decline"])
def test_review_and_decline_need_a_reason(outcome: str) -> None:
    with pytest.raises(ValidationError, match="needs at least one reason"):
        make_decision(decision=outcome, reasons=[])


def test_approve_needs_no_reason() -> None:
    assert make_decision(decision="approve", reasons=[]).reasons == []


def test_decision_rejects_a_naive_decided_at() -> None:
    with pytest.raises(ValidationError, match="UTC offset"):
        make_decision(decided_at=datetime(2018, 4, 1))


def test_alert_id_is_deterministic_and_pinned() -> None:
    assert alert_id_for("tx-1") != alert_id_for("tx-2")
    # Pinned: consumers deduplicate re-delivered alerts by this id, so it must never change.
    assert alert_id_for("tx-1") == "21d363f9-8d1c-58ae-8bd1-4ddf1d3b66b6"


@pytest.mark.parametrize(("outcome", "severity"), [("review", "medium"), ("decline", "high")])
def test_alert_from_decision(outcome: str, severity: str) -> None:
    decision = make_decision(decision=outcome)
    alert = Alert.from_decision(decision, created_at=DECIDED_AT)
    assert alert.alert_id == alert_id_for(decision.transaction_id)
    assert alert.severity == severity == severity_for(decision.decision)
    assert alert.reasons == decision.reasons
    assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_approved_decision_raises_no_alert() -> None:
    with pytest.raises(ValueError, match="no alert"):
        Alert.from_decision(make_decision(decision="approve"), created_at=DECIDED_AT)
    with pytest.raises(ValueError, match="no alert"):
        severity_for("approve")


def test_alert_severity_must_match_the_decision() -> None:
    alert = Alert.from_decision(make_decision(decision="review"), created_at=DECIDED_AT)
    with pytest.raises(ValidationError, match="must be 'medium'"):
        Alert(**{**alert.model_dump(), "severity": "high"})


def test_dead_letter_round_trips() -> None:
    letter = DeadLetter(
        source_topic="transactions",
        partition=3,
        offset=42,
        key=None,
        raw="not json",
        raw_encoding="utf-8",
        errors=[ErrorDetail(loc=["reasons", 0, "code"], msg="Field required", type="missing")],
        received_at=DECIDED_AT,
    )
    body = json.loads(letter.model_dump_json())
    assert body["key"] is None
    assert body["errors"][0]["loc"] == ["reasons", 0, "code"]
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_package_exports_everything_it_names() -> None:
    for name in schemas.__all__:
        assert getattr(schemas, name) is not None
    assert {"Outcome", "Severity", "Reason", "ErrorDetail", "alert_id_for"} <= set(schemas.__all__)


def test_a_negative_zero_amount_is_zero() -> None:
    """-0.0 passes ``ge=0``; echoed as it came it would read ``-0.0`` in the decision."""
    raw = (b'{"transaction_id": "z", "timestamp": "2018-04-01T00:00:00Z", "customer_id": "c", '
           b'"terminal_id": "t", "amount": -0.0}')  # fmt: skip
    tx = Transaction.model_validate_json(raw)
    assert str(tx.amount) == "0.0" and '"amount":0.0' in tx.model_dump_json()
