"""Raw Kafka values to models or dead letters: the rules of the DeadLetter contract."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from schemas import DeadLetter, ErrorDetail, Label, Transaction
from streamer.decode import EVENT_AFTER_RECORD, RAW_KEPT_BYTES, dead_letter, decode, decode_input
from streamer.settings import MAX_MESSAGE_BYTES_CEILING, PRODUCER_MAX_REQUEST_BYTES

LIMIT = 64 * 1024
RECEIVED_AT = datetime(2018, 4, 1, 0, 0, 32, tzinfo=UTC)
VALID = (
    b'{"transaction_id": "tx-1", "timestamp": "2018-04-01T00:00:31Z", '
    b'"customer_id": "c-1", "terminal_id": "t-1", "amount": 12.5}'
)


def errors(raw: bytes | None, *, max_bytes: int = LIMIT) -> list[ErrorDetail]:
    result = decode(Transaction, raw, max_bytes=max_bytes)
    assert isinstance(result, list), result
    return result


def letter(raw: bytes | None, errs: list[ErrorDetail], key: bytes | None = b"c-1") -> DeadLetter:
    return dead_letter("transactions", 2, 1234, key, raw, errs, RECEIVED_AT)


# --- decode -----------------------------------------------------------------------------------


def test_valid_value_decodes_to_the_model() -> None:
    tx = decode(Transaction, VALID, max_bytes=LIMIT)
    assert isinstance(tx, Transaction)
    assert tx.transaction_id == "tx-1"


def test_decode_works_for_any_contract_model() -> None:
    raw = json.dumps(
        {
            "transaction_id": "tx-1",
            "customer_id": "c-1",
            "terminal_id": "t-1",
            "tx_timestamp": "2018-04-01T00:00:31Z",
            "is_fraud": False,
            "reported_at": "2018-04-02T00:00:00Z",
        }
    ).encode()
    assert isinstance(decode(Label, raw, max_bytes=LIMIT), Label)


@pytest.mark.parametrize("raw", [None, b""])
def test_missing_or_empty_value_is_a_clear_error(raw: bytes | None) -> None:
    [err] = errors(raw)
    assert (err.loc, err.type) == ([], "value_missing")
    assert "JSON object" in err.msg


def test_value_over_the_limit_is_rejected_before_parsing() -> None:
    raw = b"{" + b" " * (1024 * 1024) + b"}"  # 1 MB, and not even a valid transaction
    [err] = errors(raw)
    assert (err.loc, err.type) == ([], "value_too_large")
    assert f"{len(raw)} bytes" in err.msg
    assert f"{LIMIT}-byte limit" in err.msg
    assert f"first {RAW_KEPT_BYTES} bytes" in err.msg


def test_value_at_the_limit_is_parsed() -> None:
    assert isinstance(decode(Transaction, VALID, max_bytes=len(VALID)), Transaction)
    assert errors(VALID, max_bytes=len(VALID) - 1)[0].type == "value_too_large"


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe\x00", VALID.replace(b'"t-1"', b'"t-\xe9"'), "{}".encode("utf-16")]
)
def test_non_utf8_value_is_named_as_such(raw: bytes) -> None:
    [err] = errors(raw)
    assert (err.loc, err.type) == ([], "utf8_invalid")
    assert "UTF-8" in err.msg


@pytest.mark.parametrize(
    ("raw", "error_type"),
    [(b"not json", "json_invalid"), (b"[1, 2]", "model_type"), (b'"tx-1"', "model_type")],
)
def test_non_object_values_are_rejected(raw: bytes, error_type: str) -> None:
    [err] = errors(raw)
    assert (err.loc, err.type) == ([], error_type)


def test_every_problem_is_reported_with_its_location() -> None:
    body = json.loads(VALID)
    body.update(transaction_id="x" * 65, amount="12.5", timestamp="2018-04-01T00:00:31")
    found = errors(json.dumps(body).encode())
    assert [(e.loc, e.type) for e in found] == [
        (["transaction_id"], "string_too_long"),
        (["timestamp"], "timezone_aware"),
        (["amount"], "float_type"),
    ]
    assert found[1].msg == "timestamp must include a UTC offset, e.g. 2018-04-01T00:00:31Z"


def test_errors_do_not_echo_the_input() -> None:
    # The whole value is already in the dead letter's raw; errors stay short.
    [err] = errors(VALID.replace(b"12.5", b"-12.5"))
    assert set(err.model_dump()) == {"loc", "msg", "type"}


# --- dead_letter ------------------------------------------------------------------------------


def test_utf8_value_is_kept_as_text() -> None:
    raw = b'{"amount": "d\xc3\xa9j\xc3\xa0"}'
    result = letter(raw, errors(raw))
    assert (result.raw, result.raw_encoding) == ('{"amount": "déjà"}', "utf-8")
    assert (result.source_topic, result.partition, result.offset) == ("transactions", 2, 1234)
    assert result.key == "c-1"
    assert result.received_at == RECEIVED_AT


def test_non_utf8_value_is_kept_as_base64() -> None:
    raw = b"\xff\xfe\x00"
    result = letter(raw, errors(raw))
    assert result.raw_encoding == "base64"
    assert base64.b64decode(result.raw) == raw


@pytest.mark.parametrize(
    ("key", "expected"), [(b"c-1", "c-1"), (b"k\xc3\xa9", "ké"), (b"", ""), (None, None)]
)
def test_key_is_utf8_text_or_null(key: bytes | None, expected: str | None) -> None:
    assert letter(b"x", errors(b"x"), key=key).key == expected


def test_non_utf8_key_becomes_null() -> None:
    assert letter(b"x", errors(b"x"), key=b"\xff\x00\x01").key is None


def test_missing_value_is_kept_as_empty_text() -> None:
    result = letter(None, errors(None))
    assert (result.raw, result.raw_encoding) == ("", "utf-8")


@pytest.mark.parametrize("byte", [b"\x01", b'"', b"\\", b"\xff"])
def test_the_largest_value_the_limit_allows_has_a_dead_letter_the_worker_can_send(
    byte: bytes,
) -> None:
    """A value under the size limit that is not valid is dead-lettered whole, and JSON (or
    base64) makes it longer; at the highest limit a setting may give, the worst such value's
    dead letter, with the longest key, still fits in one of the worker's producer requests
    (else the worker would stop on it at each start)."""
    value = byte * MAX_MESSAGE_BYTES_CEILING
    refused = decode(Transaction, value, max_bytes=MAX_MESSAGE_BYTES_CEILING)
    assert isinstance(refused, list) and refused[0].type != "value_too_large"
    out = letter(value, refused, key=b"\x01" * 64).model_dump_json().encode()
    assert len(out) + 64 * 6 < PRODUCER_MAX_REQUEST_BYTES - 1_000  # the batch's own headers


def test_oversized_value_keeps_only_its_start() -> None:
    raw = b'{"note": "' + b"a" * (1024 * 1024) + b'"}'
    result = letter(raw, errors(raw))
    assert result.raw_encoding == "utf-8"
    assert result.raw == raw[:RAW_KEPT_BYTES].decode()
    assert len(result.model_dump_json()) < 2 * RAW_KEPT_BYTES


def test_oversized_value_is_cut_at_a_character_boundary() -> None:
    # Two-byte characters from an odd offset: byte RAW_KEPT_BYTES falls inside one.
    raw = b"x" + "é".encode() * LIMIT
    result = letter(raw, errors(raw))
    assert result.raw_encoding == "utf-8"
    assert result.raw == "x" + "é" * ((RAW_KEPT_BYTES - 1) // 2)


def test_oversized_binary_value_keeps_its_start_as_base64() -> None:
    raw = b"\xff" * (LIMIT + 1)
    result = letter(raw, errors(raw))
    assert result.raw_encoding == "base64"
    assert base64.b64decode(result.raw) == raw[:RAW_KEPT_BYTES]


def test_value_under_the_limit_is_kept_whole() -> None:
    raw = b'{"note": "' + b"a" * (LIMIT - 100) + b'"}'
    result = letter(raw, errors(raw))
    assert result.raw == raw.decode()


def test_dead_letter_json_follows_the_contract() -> None:
    raw = b'{"transaction_id": 5}'
    body = json.loads(letter(raw, errors(raw), key=b"\xff").model_dump_json())
    assert body["key"] is None
    assert body["raw"] == raw.decode()
    assert body["raw_encoding"] == "utf-8"
    assert body["received_at"] == "2018-04-01T00:00:32Z"
    assert body["errors"][0] == {
        "loc": ["transaction_id"],
        "msg": "Input should be a valid string",
        "type": "string_type",
    }
    assert len(body["errors"]) == 5  # a bad id and four missing fields
    assert DeadLetter.model_validate_json(json.dumps(body)) == letter(raw, errors(raw), b"\xff")


SENT_MS = 1_522_540_832_000  # the record's Kafka time: 2018-04-01T00:00:32Z, after VALID's event
HOUR_MS = 3_600_000


def _at(timestamp: str) -> bytes:
    return VALID.replace(b"2018-04-01T00:00:31Z", timestamp.encode())


@pytest.mark.parametrize(
    ("timestamp", "record_ms", "accepted"),
    [
        ("2018-04-01T00:00:31Z", SENT_MS, True),  # before its record, as events are
        ("2018-04-02T00:00:32Z", SENT_MS, True),  # exactly the 24 h allowed
        ("2018-04-02T00:00:32.001Z", SENT_MS, False),  # 1 ms more
        ("2018-04-02T02:00:32.001+02:00", SENT_MS, False),  # the same instant, in another zone
        ("2099-01-01T00:00:00Z", None, True),  # Kafka's time not known: nothing to check against
        ("2099-01-01T00:00:00Z", -1, True),  # a record from a pre-0.10 producer has none
    ],
)
def test_an_event_far_after_its_records_time_is_refused(
    timestamp: str, record_ms: int | None, accepted: bool
) -> None:
    result = decode_input(Transaction, _at(timestamp), record_ms, max_bytes=LIMIT,
                          max_ahead_ms=24 * HOUR_MS)  # fmt: skip
    assert isinstance(result, Transaction) is accepted, result
    if not accepted:
        assert isinstance(result, list)
        (error,) = result
        assert (error.loc, error.type) == (["timestamp"], EVENT_AFTER_RECORD)


def test_the_refusal_says_how_far_ahead_against_what_and_what_to_check() -> None:
    (error,) = decode_input(Transaction, _at("2099-01-01T00:00:00Z"), SENT_MS, max_bytes=LIMIT,
                            max_ahead_ms=24 * HOUR_MS)  # type: ignore[misc]  # fmt: skip
    assert error.msg == (
        "timestamp 2099-01-01T00:00:00+00:00 is 29,495.0 days after its Kafka record's time "
        "(2018-04-01T00:00:32.000+00:00), more than the 24.0 h STREAMER_MAX_EVENT_AHEAD_HOURS "
        "allows: an event cannot happen after it was sent (check the producer's clock and time "
        "zone)"
    )


def test_a_labels_report_time_is_its_event_time() -> None:
    """A label counts from ``reported_at`` (and ``tx_timestamp`` is never after it)."""
    label = {"transaction_id": "tx-1", "customer_id": "c-1", "terminal_id": "t-1",
             "tx_timestamp": "2018-04-01T00:00:31Z", "is_fraud": True}  # fmt: skip
    soon = json.dumps({**label, "reported_at": "2018-04-01T01:00:00Z"}).encode()
    late = json.dumps({**label, "reported_at": "2018-04-02T12:00:32Z"}).encode()
    ok = decode_input(Label, soon, SENT_MS, max_bytes=LIMIT, max_ahead_ms=24 * HOUR_MS)
    assert isinstance(ok, Label)
    refused = decode_input(Label, late, SENT_MS, max_bytes=LIMIT, max_ahead_ms=24 * HOUR_MS)
    assert isinstance(refused, list) and refused[0].loc == ["reported_at"]
    assert refused[0].msg.startswith("reported_at 2018-04-02T12:00:32+00:00 is 36.0 h after")


def test_a_labels_bad_times_are_named_by_their_field() -> None:
    raw = json.dumps({"transaction_id": "tx-1", "customer_id": "c-1", "terminal_id": "t-1",
                      "tx_timestamp": "2018-04-01 00:00:31", "is_fraud": True,
                      "reported_at": "2018-04-08"}).encode()  # fmt: skip
    found = decode(Label, raw, max_bytes=LIMIT)
    assert isinstance(found, list)
    assert [(e.loc, e.msg.split(" must ")[0]) for e in found] == [
        (["tx_timestamp"], "tx_timestamp"),
        (["reported_at"], "reported_at"),
    ]
