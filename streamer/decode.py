"""The edge where raw Kafka values become models, or dead letters saying what was wrong.

Plain functions, no Kafka: an agent calls :func:`decode` on each value and, when it gets a list
of errors back, sends :func:`dead_letter` of it to the dead-letter topic and carries on. Returning
errors instead of raising keeps a bad message from stopping the worker and makes the common path
(a valid message) cost one ``model_validate_json`` call and nothing else.
"""

from __future__ import annotations

import base64
import codecs
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from schemas import DeadLetter, ErrorDetail, Label, RawEncoding, Transaction

__all__ = [
    "EVENT_AFTER_RECORD",
    "RAW_KEPT_BYTES",
    "VALUE_TOO_LARGE",
    "dead_letter",
    "decode",
    "decode_input",
    "error_details",
]

M = TypeVar("M", bound=BaseModel)
In = TypeVar("In", Transaction, Label)

EVENT_AFTER_RECORD = "event_after_record"
"""Error type of an input whose event time is too far after the time of its Kafka record."""

VALUE_TOO_LARGE = "value_too_large"
"""Error type of a value over the size limit; its dead letter keeps only the start of it."""

RAW_KEPT_BYTES = 1024
"""How much of an oversized value a dead letter keeps: enough to see what it was, while the
dead letter itself stays small (a 1 MB value is not worth copying to another topic)."""


def decode(model_cls: type[M], raw: bytes | None, *, max_bytes: int) -> M | list[ErrorDetail]:
    """Validate one Kafka value as ``model_cls``, or return every problem found in it.

    A value over ``max_bytes`` is rejected before parsing, so a huge message costs nothing.
    """
    if raw is None:
        return [_error("value_missing", "message has no value; send a JSON object")]
    if not raw:
        return [_error("value_missing", "message value is empty; send a JSON object")]
    size = len(raw)
    if size > max_bytes:
        return [
            _error(
                VALUE_TOO_LARGE,
                f"value is {size} bytes, over the {max_bytes}-byte limit "
                f"(the dead letter keeps only its first {min(size, RAW_KEPT_BYTES)} bytes)",
            )
        ]
    try:
        return model_cls.model_validate_json(raw)
    except ValidationError as exc:
        return _explain_encoding(raw) or error_details(exc)


def decode_input(
    model_cls: type[In],
    raw: bytes | None,
    record_ms: int | None,
    *,
    max_bytes: int,
    max_ahead_ms: int | None,
) -> In | list[ErrorDetail]:
    """:func:`decode` a record of an input topic, and refuse it if its event time (a
    transaction's ``timestamp``, a label's ``reported_at``) is more than ``max_ahead_ms`` after
    ``record_ms``, the time Kafka holds for the record (its producer's send time, or the
    broker's append time).

    An event cannot happen after its record was sent. One stamped far ahead (a clock or time
    zone set wrong, a year mistyped) would move its card's and terminal's windows forward at
    once: their trims would drop the history that the next transactions, and re-deliveries of
    earlier ones, are scored on. Kafka's time is fixed in the log, so a re-delivery and
    ``rebuild-state`` judge a record as its first delivery was judged. A record without one
    (-1, from a producer older than Kafka 0.10), or ``max_ahead_ms`` None, is not checked.
    """
    result = decode(model_cls, raw, max_bytes=max_bytes)
    if isinstance(result, list) or record_ms is None or record_ms < 0 or max_ahead_ms is None:
        return result
    name, when = ("timestamp", result.timestamp) if isinstance(result, Transaction) else (
        "reported_at", result.reported_at
    )
    sent = datetime.fromtimestamp(record_ms / 1000, UTC)
    ahead = when - sent
    if ahead <= timedelta(milliseconds=max_ahead_ms):
        return result
    return [
        ErrorDetail(
            loc=[name],
            msg=f"{name} {when.isoformat()} is {_span(ahead)} after its Kafka record's time "
            f"({sent.isoformat(timespec='milliseconds')}), more than the "
            f"{_span(timedelta(milliseconds=max_ahead_ms))} STREAMER_MAX_EVENT_AHEAD_HOURS "
            "allows: an event cannot happen after it was sent (check the producer's clock and "
            "time zone)",
            type=EVENT_AFTER_RECORD,
        )
    ]


def _span(delta: timedelta) -> str:
    """A duration as an operator reads it: ``26.5 h``, ``3.2 days``."""
    hours = delta.total_seconds() / 3600
    return f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.1f} days"


def error_details(exc: ValidationError) -> list[ErrorDetail]:
    """Pydantic's errors as contract ``ErrorDetail`` objects (loc as a list, no input echoed)."""
    return [
        ErrorDetail(loc=list(err["loc"]), msg=err["msg"], type=err["type"])
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def dead_letter(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    errors: Sequence[ErrorDetail],
    received_at: datetime,
) -> DeadLetter:
    """The dead letter of a rejected message, in the shape the contract promises consumers.

    ``key`` becomes text, or None when there is none or it is not UTF-8. ``raw`` is kept as text
    when it is UTF-8 and as base64 otherwise; when ``errors`` say the value was too large, only
    its first :data:`RAW_KEPT_BYTES` bytes are kept (cut at a character boundary).
    """
    truncate = any(err.type == VALUE_TOO_LARGE for err in errors)
    text, encoding = _raw_text(raw or b"", truncate=truncate)
    return DeadLetter(
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        key=_utf8_or_none(key),
        raw=text,
        raw_encoding=encoding,
        errors=list(errors),
        received_at=received_at,
    )


def _error(type_: str, msg: str) -> ErrorDetail:
    """A problem with the value as a whole (empty loc, as pydantic reports invalid JSON)."""
    return ErrorDetail(loc=[], msg=msg, type=type_)


def _explain_encoding(raw: bytes) -> list[ErrorDetail]:
    """A clear error when the value is not UTF-8, which the JSON parser reports obscurely.

    Only called after validation failed, so valid messages never pay for a second decode.
    """
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [
            _error(
                "utf8_invalid",
                f"value is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position "
                f"{exc.start}); send a UTF-8 encoded JSON object",
            )
        ]
    return []


def _utf8_or_none(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _raw_text(raw: bytes, *, truncate: bool) -> tuple[str, RawEncoding]:
    if truncate:
        raw = raw[:RAW_KEPT_BYTES]
    try:
        # Not final when truncated: a character cut in two at the end is dropped, not an error.
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=not truncate)
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
    return text, "utf-8"
