"""What a decision says about a transaction, apart from echoing it: its score, outcome, reasons
and model version, as the worker pins it in Redis before publishing (``pin.lua``).

The contract promises that a transaction decided twice (a re-delivery after a crash, or a
producer sending it again) gets the same decision, byte for byte apart from ``decided_at`` and
``processing_ms``. The features alone do not give that: the model, the blocklists, the
thresholds or the reasons' wording may have changed between the two deliveries. So the first
verdict is kept, and a repeat publishes it again whatever decides transactions now.

A verdict is kept in two parts, because a worker keeps one for every transaction of the last
44 days: the part every verdict has, in binary (the score as a little-endian double, a byte for
the outcome, then the model version: 32 bytes for the usual versions), and the reasons, as JSON,
only for the reviews and declines that have them. Apart, the first parts stay small enough for
Redis's compact hash encoding (values of up to 64 bytes by default, and up to its number of
entries): 60 bytes per transaction in ``fraud-streamer bench``, where whole verdicts as JSON took
114 (one flagged reason list puts a card's whole hash over the limit).
"""

from __future__ import annotations

import json
import struct
from typing import NamedTuple

from pydantic import TypeAdapter

from schemas import Reason
from schemas.common import Id

__all__ = ["Verdict", "sizing_verdicts"]

_HEAD = struct.Struct("<dc")
_CODES = {"approve": b"a", "review": b"r", "decline": b"d"}
_OUTCOMES = {code: outcome for outcome, code in _CODES.items()}
_VERSION = TypeAdapter(Id)


class Verdict(NamedTuple):
    """A decision's own fields, as pinned."""

    score: float
    decision: str
    model_version: str
    reasons: list[Reason]

    def encode(self) -> tuple[bytes, bytes]:
        """(the score, outcome and model version in binary; the reasons as JSON, or empty when
        there are none). A double holds the score to the last bit, so a repeat publishes the
        first one's score exactly."""
        head = _HEAD.pack(self.score, _CODES[self.decision]) + self.model_version.encode()
        if not self.reasons:
            return head, b""
        reasons = [[r.code, r.description] for r in self.reasons]
        return head, json.dumps(reasons, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, head: bytes, reasons: bytes) -> Verdict:
        """A pinned verdict from its two parts; raises ValueError if they are not one."""
        try:
            score, code = _HEAD.unpack_from(head)
            version = _VERSION.validate_python(head[_HEAD.size :].decode())
            listed = json.loads(reasons) if reasons else []
            if not isinstance(listed, list) or not all(
                isinstance(pair, list) and len(pair) == 2 for pair in listed
            ):
                raise ValueError("reasons are not [code, description] pairs")
            verdict = cls(
                score,
                _OUTCOMES[code],
                version,
                [Reason(code=c, description=d) for c, d in listed],
            )
            # what a decision must be (the contract), so that a pin that is not one is refused
            # here, not published
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"a score of {score!r}")
            if verdict.decision != "approve" and not verdict.reasons:
                raise ValueError(f"a {verdict.decision} without reasons")
            return verdict
        except (struct.error, KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not a pinned verdict: {head[:80]!r}, {reasons[:80]!r} ({exc!r})"
            ) from None


def sizing_verdicts(frauds: list[bool], model_version: str) -> list[tuple[bytes, bytes]]:
    """Encoded verdicts of the usual size, to pin beside a replayed history when measuring what
    Redis needs (``fraud-streamer bench``, ``scripts/redis_memory.py``): an approval with a
    full-precision score for each transaction, and for the frauds a decline explained by the
    worker's default number of features, in the worker's words. Which ones a model would flag
    is not known without running it; frauds are about as many as the reviews and declines a
    worker gives at its default thresholds."""
    from streamer.features.definitions import FEATURES
    from streamer.rules import Policy

    words = "1234.56 (typical 56.78; the score would be 0.12 with the typical value)"
    reasons = [
        Reason(code=f.name, description=f"{f.description}: {words}")
        for f in FEATURES[: Policy().reasons_top_k]
    ]
    approval = Verdict(0.0031853745390200615, "approve", model_version, []).encode()
    decline = Verdict(0.9654213878062437, "decline", model_version, reasons).encode()
    return [decline if fraud else approval for fraud in frauds]
