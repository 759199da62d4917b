"""What a decision says about a transaction, apart from echoing it: its score, outcome, reasons
and model version, as the worker pins it in Redis before publishing (``pin.lua``).

The contract promises that a transaction decided twice (a re-delivery after a crash, or a
producer sending it again) gets the same decision, byte for byte apart from ``decided_at`` and
``processing_ms``. The features alone do not give that: the model, the blocklists, the
thresholds or the reasons' wording may have changed between the two deliveries. So the first
verdict is kept, and a repeat publishes it again whatever decides transactions now.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from schemas import Reason

__all__ = ["Verdict"]


class Verdict(NamedTuple):
    """A decision's own fields, as pinned."""

    score: float
    decision: str
    model_version: str
    reasons: list[Reason]

    def encode(self) -> bytes:
        """Compact JSON: ``[score, decision, model_version, [[code, description], ...]]``, about
        50 bytes for an approval. JSON floats round-trip exactly, so the score a repeat
        publishes is the first one's to the last bit."""
        reasons = [[r.code, r.description] for r in self.reasons]
        record = [self.score, self.decision, self.model_version, reasons]
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Verdict:
        """A pinned verdict; fields a later version appends are ignored. Raises ValueError on
        anything else."""
        try:
            score, decision, version, reasons = json.loads(raw)[:4]
            return cls(
                float(score),
                str(decision),
                str(version),
                [Reason(code=c, description=d) for c, d in reasons],
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a pinned verdict: {raw[:80]!r} ({exc})") from None
