"""The pinned verdict's encoding: what a repeat publishes must be the first decision's own."""

from __future__ import annotations

import struct

import pytest

from schemas import Reason
from streamer.verdicts import Verdict

VERSION = "20261203-161658-hist_gb"


def test_a_verdict_comes_back_exactly_as_pinned() -> None:
    verdict = Verdict(
        0.1 + 0.2,  # a float whose shortest repr is long: the bits, not the text, are kept
        "review",
        VERSION,
        [Reason(code="TX_AMOUNT", description="amount 395.00 € — 4× the card's median")],
    )
    head, reasons = verdict.encode()
    assert Verdict.decode(head, reasons) == verdict
    assert Verdict.decode(head, reasons).score == 0.30000000000000004
    why = [Reason(code="MODEL_SCORE", description="model score 0.95")]
    for outcome, reasons in (("approve", []), ("review", why), ("decline", why)):
        again = Verdict(0.95, outcome, VERSION, reasons)
        assert Verdict.decode(*again.encode()) == again


def test_an_approval_is_small_enough_for_redis_s_compact_hashes() -> None:
    """Redis keeps a hash in its compact encoding while every value is at most 64 bytes (by
    default): a card's pins stay so while none has reasons."""
    head, reasons = Verdict(0.0031853745390200615, "approve", VERSION, []).encode()
    assert len(head) == 32 and reasons == b""


@pytest.mark.parametrize(
    ("head", "reasons"),
    [
        (b"", b""),  # too short
        (struct.pack("<dc", 0.5, b"a"), b""),  # no model version
        (struct.pack("<dc", 0.5, b"x") + b"v2", b""),  # no such outcome
        (struct.pack("<dc", 0.5, b"a") + b"\xff", b""),  # a version that is not UTF-8
        (struct.pack("<dc", 1.5, b"a") + b"v2", b""),  # a score no decision has
        (struct.pack("<dc", float("nan"), b"a") + b"v2", b""),
        (struct.pack("<dc", 0.5, b"r") + b"v2", b""),  # a review without reasons
        (struct.pack("<dc", 0.5, b"r") + b"v2", b"{oops"),
        (struct.pack("<dc", 0.5, b"r") + b"v2", b'[["only a code"]]'),
        (struct.pack("<dc", 0.5, b"r") + b"v2", b'[["", "an empty code"]]'),
        (struct.pack("<dc", 0.5, b"r") + b"v2", b'["ab"]'),  # two letters are not a pair
        (struct.pack("<dc", 0.5, b"r") + b"v2", b'{"xy": 1}'),
        (struct.pack("<dc", 0.5, b"a") + b"v" * 65, b""),  # longer than a model version may be
    ],
)
def test_anything_else_is_refused_with_what_it_was(head: bytes, reasons: bytes) -> None:
    with pytest.raises(ValueError, match="not a pinned verdict"):
        Verdict.decode(head, reasons)
