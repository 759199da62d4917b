"""The pinned verdict's encoding: what a repeat publishes must be the first decision's own."""

from __future__ import annotations

import pytest

from schemas import Reason
from streamer.verdicts import Verdict


def test_a_verdict_comes_back_exactly_as_pinned() -> None:
    verdict = Verdict(
        0.1 + 0.2,  # a float whose shortest repr is long
        "review",
        "20261203-161658-hist_gb",
        [Reason(code="TX_AMOUNT", description="amount 395.00 € — 4× the card's median")],
    )
    raw = verdict.encode()
    assert Verdict.decode(raw) == verdict
    assert Verdict.decode(raw).score == 0.30000000000000004
    approval = Verdict(0.0123, "approve", "20261203-161658-hist_gb", []).encode()
    assert len(approval) < 50


def test_fields_a_later_version_appends_are_ignored() -> None:
    raw = b'[0.5,"review","v2",[["MODEL_SCORE","score 0.50"]],{"more":1}]'
    assert Verdict.decode(raw) == Verdict(
        0.5, "review", "v2", [Reason(code="MODEL_SCORE", description="score 0.50")]
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"{oops",
        b"{}",
        b"[1, 2]",
        b'[0.5, "review", "v2", [["only a code"]]]',
        b'[0.5, "review", "v2", [["", "an empty code"]]]',
    ],
)
def test_anything_else_is_refused_with_what_it_was(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a pinned verdict"):
        Verdict.decode(raw)
