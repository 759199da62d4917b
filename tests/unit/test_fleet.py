"""The fleet page's bookkeeping: records of the output topics in, the page's numbers out."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import Alert, DeadLetter, ErrorDetail
from streamer.fleet import FleetView, GroupState
from tests.unit.test_schemas import make_decision

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
_ids = itertools.count()


def _decision(seconds: float, outcome: str = "approve", ms: float = 5.0, **kw: Any) -> bytes:
    """A decision of a new transaction (``transaction_id=`` to repeat one)."""
    reasons = [] if outcome == "approve" else None
    changes: dict[str, Any] = {
        "transaction_id": f"tx-{next(_ids)}",
        "decision": outcome,
        "processing_ms": ms,
        "decided_at": T0 + timedelta(seconds=seconds),
        **kw,
    }
    if reasons is not None:
        changes["reasons"] = reasons
    return make_decision(**changes).model_dump_json().encode()


def _alert(seconds: float, tx: str) -> bytes:
    decision = make_decision(transaction_id=tx)
    created = T0 + timedelta(seconds=seconds)
    return Alert.from_decision(decision, created_at=created).model_dump_json().encode()


def _letter(seconds: float, offset: int) -> bytes:
    return DeadLetter(
        source_topic="transactions", partition=0, offset=offset, key="k", raw="x" * 100,
        raw_encoding="utf-8", errors=[ErrorDetail(loc=[], msg="bad", type="json_invalid")],
        received_at=T0 + timedelta(seconds=seconds),
    ).model_dump_json().encode()  # fmt: skip


def test_counts_cover_the_window_and_forget_what_is_older() -> None:
    view = FleetView(window_s=600)
    view.add_decision(_decision(-900))  # before the window
    view.add_decision(_decision(-500, "decline", model_version="v-old"))
    for i in range(120):  # the last two minutes: one a second
        view.add_decision(_decision(-119 + i, ms=float(i % 10)))
    view.add_decision(_decision(30))  # a worker's clock ahead of ours: not yet
    snap = view.snapshot(T0.timestamp())
    assert snap["decisions"] == {"total": 121, "approve": 120, "review": 0, "decline": 1}
    assert snap["per_second"] == 1.0  # 60 in the last minute
    assert snap["processing_ms"] == {"p50": 4.5, "p99": 9.0}
    assert snap["model_versions"] == {"2018-04-01-abc123": 120, "v-old": 1}
    later = view.snapshot(T0.timestamp() + 500)  # the window is now -99 … +500
    assert later["decisions"]["total"] == 100 + 1  # -99 … 0, and +30
    assert later["processing_ms"] is None and later["per_second"] == 0


def test_latest_alerts_are_the_newest_whatever_the_reading_order_and_without_repeats() -> None:
    view = FleetView(alerts_kept=3)
    # read back partition by partition: times interleave
    for seconds, tx in ((-50, "a"), (-10, "b"), (-40, "c"), (-5, "d"), (-60, "e"), (-20, "f")):
        view.add_alert(_alert(seconds, tx))
    view.add_alert(_alert(-1, "b"))  # the repeat of b after a crash: the same alert id
    snap = view.snapshot(T0.timestamp())
    assert [a["transaction_id"] for a in snap["alerts"]["latest"]] == ["d", "b", "f"]
    assert snap["alerts"]["count"] == 6 and snap["repeats"] == 1


def test_dead_letters_are_listed_without_their_raw_value() -> None:
    view = FleetView(letters_kept=2)
    for i in range(3):
        view.add_dead_letter(_letter(-10 + i, i))
    view.add_dead_letter(_letter(-2, 1))  # offset 1 dead-lettered again after a crash
    snap = view.snapshot(T0.timestamp())
    assert snap["dead_letters"]["count"] == 3 and snap["repeats"] == 1
    assert [d["offset"] for d in snap["dead_letters"]["latest"]] == [2, 1]
    assert "raw" not in snap["dead_letters"]["latest"][0]


def test_foreign_records_are_counted_not_fatal_and_the_group_is_shown() -> None:
    view = FleetView()
    view.add_decision(b"not json")
    view.add_alert(None)
    view.add_dead_letter(b'{"source_topic": "x"}')
    assert view.snapshot(T0.timestamp())["unreadable"] == 3
    assert view.snapshot(T0.timestamp())["workers"] is None
    assert view.health() == (200, {"status": "ok"})
    view.group_problem = "KafkaConnectionError: Unable to bootstrap"
    assert view.health()[0] == 503 and "bootstrap" in view.health()[1]["problem"]
    view.group_problem = None
    view.group = GroupState(members=2, lag={"transactions": 7, "labels": 0})
    snap = view.snapshot(T0.timestamp())
    assert (snap["workers"], snap["lag"]) == (2, {"transactions": 7, "labels": 0})


def test_what_no_snapshot_can_show_is_forgotten_without_one() -> None:
    view = FleetView(window_s=600)
    for i in range(1_200):  # twenty minutes, one decision a second, nobody looking
        view.add_decision(_decision(-1_199 + i))
    seconds = view._seconds  # the bookkeeping itself: memory stays bounded by the window
    assert len(seconds) <= 601
    assert sum(len(s.processing_ms) for s in seconds.values()) <= 61
    assert view.snapshot(T0.timestamp())["decisions"]["total"] == 600


def test_a_decision_re_published_after_a_crash_is_counted_once_within_the_repeat_window() -> None:
    view = FleetView(window_s=900, repeat_window_s=300)
    view.add_decision(_decision(-400, transaction_id="early"))
    view.add_decision(_decision(-200, transaction_id="a", ms=4.0))
    view.add_decision(_decision(-100, transaction_id="b", outcome="decline"))
    view.add_decision(_decision(-30, transaction_id="a", ms=9.0))  # re-published: not counted
    view.add_decision(_decision(-20, transaction_id="b", outcome="decline"))
    view.add_decision(_decision(-10, transaction_id="early"))  # 390 s later: past the window
    snap = view.snapshot(T0.timestamp())
    assert snap["decisions"] == {"total": 4, "approve": 3, "review": 0, "decline": 1}
    assert snap["repeats"] == 2
    assert snap["processing_ms"] == {"p50": 5.0, "p99": 5.0}  # the repeat's 9 ms is not in


def test_the_ids_remembered_for_repeats_are_bounded_by_the_repeat_window() -> None:
    view = FleetView(window_s=900, repeat_window_s=120)
    for i in range(1_000):  # one decision a second, nobody looking
        view.add_decision(_decision(-999 + i))
    assert len(view._counted) <= 121


def test_a_worker_with_its_clock_ahead_does_not_erase_the_present() -> None:
    view = FleetView(window_s=600, clock=T0.timestamp)
    for i in range(100):
        view.add_decision(_decision(-30 + i * 0.3))
    view.add_decision(_decision(3600))  # a worker an hour ahead
    snap = view.snapshot(T0.timestamp())
    assert snap["decisions"]["total"] == 100
    assert snap["processing_ms"] == {"p50": 5.0, "p99": 5.0}
    # and a repeat of one counted before it is still known as one
    repeat = make_decision(transaction_id="tx-again", decided_at=T0 - timedelta(seconds=5))
    view.add_decision(repeat.model_dump_json().encode())
    view.add_decision(repeat.model_dump_json().encode())
    assert view.repeats == 1


def test_a_dead_letter_repeated_after_the_repeat_window_is_listed_once() -> None:
    """Past the repeat window a repeat counts again (the page's stated limit), but the list of
    the latest shows each record once, as it does alerts."""
    view = FleetView(letters_kept=3, repeat_window_s=60, clock=T0.timestamp)
    view.add_dead_letter(_letter(-300, 7))
    view.add_dead_letter(_letter(-200, 8))
    view.add_dead_letter(_letter(-100, 7))  # offset 7 again, 200 s later
    latest = view.snapshot(T0.timestamp())["dead_letters"]["latest"]
    assert [d["offset"] for d in latest] == [8, 7]
