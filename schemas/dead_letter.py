"""Input the worker could not accept, written to ``dead-letters`` instead of stopping the worker."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.common import Timestamp, WireModel

__all__ = ["DeadLetter", "ErrorDetail", "RawEncoding"]

RawEncoding = Literal["utf-8", "base64"]
"""How ``DeadLetter.raw`` is written: the text itself, or base64 when it is not UTF-8."""


class ErrorDetail(WireModel):
    """One problem with a message, shaped like a pydantic validation error."""

    loc: list[str | int] = Field(
        description="Field names and list indexes to the problem; empty for the whole message."
    )
    msg: str = Field(description="What is wrong, in words a producer can act on.")
    type: str = Field(description="Machine-readable kind of problem, e.g. missing, json_invalid.")


class DeadLetter(WireModel):
    """A rejected input message with where it came from and every problem found in it."""

    source_topic: str = Field(min_length=1, description="Topic the message was read from.")
    partition: int = Field(ge=0, description="Partition the message was read from.")
    offset: int = Field(ge=0, description="Offset of the message in its partition.")
    key: str | None = Field(
        description="The message key as UTF-8 text; null when there is none or it is not UTF-8."
    )
    raw: str = Field(
        description="The value: its text, or base64 when it is not UTF-8. Values over the size "
        "limit keep only their first bytes (the value_too_large error says how many)."
    )
    raw_encoding: RawEncoding = Field(description="How raw is written.")
    errors: list[ErrorDetail] = Field(min_length=1, description="Every problem found.")
    received_at: Timestamp = Field(description="When the worker read the message.")
