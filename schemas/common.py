"""Field types shared by every message of the wire contract.

Each rule of the contract is written once here, as an ``Annotated`` type, so the input models,
the output models and the generated JSON Schema files cannot drift apart. Transactions are
validated once per event, so the validators are chosen to be cheap: strictness comes from
pydantic-core's own checks, and the only Python code on the hot path is one precompiled regex
match per time (and the call around its parse that explains a time out of range).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "ID_MAX_LENGTH",
    "RFC3339_PATTERN",
    "Amount",
    "Currency",
    "Id",
    "Timestamp",
    "WireModel",
]

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
"""The time format of the contract: ``T``, seconds, optional fractions, ``Z`` or ``±hh:mm``.

Stricter than pydantic's own parser, which also takes date-only values, a space instead of ``T``,
missing seconds, no offset and Unix numbers. Upper-case ``T``/``Z`` only and ASCII digits only,
as the contract writes them. Also emitted as ``pattern`` in the JSON Schema files.
"""

_EXAMPLE = "2018-04-01T00:00:31Z"
_is_rfc3339 = re.compile(RFC3339_PATTERN).fullmatch
# Only used to explain a rejected time, so it may be slow and forgiving.
_time_parts = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:(?P<sep>.)(?P<hm>[0-9]{2}:[0-9]{2})(?P<sec>:[0-9]{2}(?:[.,][0-9]+)?)?(?P<offset>.*))?",
    re.DOTALL,
).fullmatch
_is_offset = re.compile(r"Z|[+-][0-9]{2}:[0-9]{2}").fullmatch


def _time_error(value: str, name: str) -> PydanticCustomError:
    """Say what a producer must change in the field ``name``, rather than what the parser
    tripped over."""
    parts = _time_parts(value)
    if parts is None:
        return PydanticCustomError(
            "datetime_format",
            "{field} must be an RFC 3339 time such as {example}",
            {"field": name, "example": _EXAMPLE},
        )
    if parts["sep"] is None:
        return PydanticCustomError(
            "datetime_format",
            "{field} must be a date and a time with a UTC offset, not a date only, "
            "e.g. {example}",
            {"field": name, "example": _EXAMPLE},
        )
    problems = []
    if parts["sep"] != "T":
        problems.append("separate date and time with 'T'")
    if parts["sec"] is None:
        problems.append("include seconds")
    if not parts["offset"]:
        problems.append("include a UTC offset")
    elif _is_offset(parts["offset"]) is None:
        problems.append("end in 'Z' or an offset written ±hh:mm")
    if problems == ["include a UTC offset"]:
        return PydanticCustomError(
            "timezone_aware",
            "{field} must include a UTC offset, e.g. {example}",
            {"field": name, "example": _EXAMPLE},
        )
    if not problems:  # e.g. a comma before the fraction of a second
        problems.append("be an RFC 3339 time")
    wanted = (
        problems[-1] if len(problems) == 1 else f"{', '.join(problems[:-1])} and {problems[-1]}"
    )
    return PydanticCustomError(
        "datetime_format",
        "{field} must {problems}, e.g. {example}",
        {"field": name, "problems": wanted, "example": _EXAMPLE},
    )


def _check_time(value: object, info: ValidationInfo) -> object:
    """Admit only contract-shaped strings (JSON) or aware datetimes (Python) to the parser."""
    name = info.field_name or "timestamp"
    if isinstance(value, str):
        if _is_rfc3339(value) is None:
            raise _time_error(value, name)
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise PydanticCustomError(
                "timezone_aware",
                "{field} must include a UTC offset, e.g. {example}",
                {"field": name, "example": _EXAMPLE},
            )
        return value
    raise PydanticCustomError(
        "datetime_type",
        "{field} must be a string holding an RFC 3339 time, e.g. {example}",
        {"field": name, "example": _EXAMPLE},
    )


_OFFSET = re.compile(r"([+-])([0-9]{2}):([0-9]{2})$").search


def _out_of_range(value: str) -> str | None:
    """What is out of range in a contract-shaped time that is no time, in words (pydantic
    says "unexpected extra characters" of an offset of +24:00)."""
    offset = _OFFSET(value)
    if offset is not None and (int(offset[2]) > 23 or int(offset[3]) > 59):
        return "its UTC offset must be between -23:59 and +23:59"
    if value[17:19] == "60":
        return "its second must be 00 to 59 (a leap second is not taken)"
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        return f"its {exc}"  # "month must be in 1..12", "day is out of range for month"
    return None


def _explain_time(
    value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> object:
    """The time, or for a contract-shaped one that is no time, what is out of range. Runs
    around the parse, so a valid time costs nothing more."""
    try:
        return handler(value)
    except ValidationError:
        problem = _out_of_range(value) if isinstance(value, str) and _is_rfc3339(value) else None
        if problem is None:
            raise
        raise PydanticCustomError(
            "datetime_from_date_parsing",
            "{field} is not a time: {problem}, e.g. {example}",
            {"field": info.field_name or "timestamp", "problem": problem, "example": _EXAMPLE},
        ) from None


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_check_time),
    WrapValidator(_explain_time),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339_PATTERN,
            "examples": [_EXAMPLE, "2018-04-01T02:00:31+02:00"],
        }
    ),
]
"""An RFC 3339 time with an offset; the offset the producer gave is kept.

Calendar features read the wall time at that offset (``value.hour``, ``value.weekday()``), so the
value is not converted to UTC. Fractions beyond microseconds are truncated.
"""

ID_MAX_LENGTH = 64
"""The longest identifier the contract takes, in characters (files are held to it too)."""

Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=ID_MAX_LENGTH)]
"""An identifier: a JSON string of 1 to 64 characters; numbers are not coerced to text."""

Amount = Annotated[
    float, Field(strict=True, ge=0, allow_inf_nan=False), AfterValidator(lambda v: v + 0.0)
]
"""A finite amount ≥ 0 (zero-amount authorisations are scored: card testing uses them); -0.0
is 0.0 (it would be echoed as ``-0.0``).

Strict: a JSON number only. ``"12.5"`` and ``true`` are rejected rather than coerced, because a
producer that sends strings has a bug we want it to see, and ``NaN``/``Infinity`` (which the JSON
parser accepts) fail the finiteness check.
"""

Currency = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 code as three upper-case letters. Not nullable: producers omit it instead."""


class WireModel(BaseModel):
    """Base of every message: immutable, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")
