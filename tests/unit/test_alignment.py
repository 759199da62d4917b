"""Event-time alignment: partitions running ahead are paused, and resumed when others catch up."""

from streamer.alignment import EventTimeAligner

HOUR = 3_600_000


def test_pauses_partition_ahead_of_slowest_waiting_one() -> None:
    aligner = EventTimeAligner(max_skew_ms=24 * HOUR)
    aligner.observe("a", 10, 100 * HOUR)
    aligner.observe("b", 10, 10 * HOUR)
    highwater = {"a": 50, "b": 50}.get
    pause, resume = aligner.plan(highwater)
    assert pause == {"a"} and resume == set()
    assert aligner.skew_ms(highwater) == 90 * HOUR


def test_resumes_when_the_slow_partition_catches_up() -> None:
    aligner = EventTimeAligner(max_skew_ms=24 * HOUR)
    aligner.observe("a", 10, 100 * HOUR)
    aligner.observe("b", 10, 10 * HOUR)
    aligner.plan({"a": 50, "b": 50}.get)
    aligner.observe("b", 20, 90 * HOUR)
    pause, resume = aligner.plan({"a": 50, "b": 50}.get)
    assert pause == set() and resume == {"a"}


def test_a_drained_partition_does_not_hold_others_back() -> None:
    aligner = EventTimeAligner(max_skew_ms=24 * HOUR)
    aligner.observe("a", 10, 100 * HOUR)
    aligner.observe("b", 49, 10 * HOUR)  # b has nothing left: next offset 50 == high watermark
    pause, _ = aligner.plan({"a": 50, "b": 50}.get)
    assert pause == set()


def test_everything_resumes_when_nothing_waits() -> None:
    aligner = EventTimeAligner(max_skew_ms=HOUR)
    aligner.observe("a", 1, 100 * HOUR)
    aligner.observe("b", 1, 0)
    assert aligner.plan({"a": 10, "b": 10}.get) == ({"a"}, set())
    assert aligner.plan({"a": 2, "b": 2}.get) == (set(), {"a"})


def test_forget_drops_revoked_partitions() -> None:
    aligner = EventTimeAligner(max_skew_ms=HOUR)
    aligner.observe("a", 1, 100 * HOUR)
    aligner.observe("b", 1, 0)
    aligner.plan({"a": 10, "b": 10}.get)
    aligner.forget(["a"])
    assert "a" not in aligner.paused and "a" not in aligner.event_time


def test_rejected_messages_advance_offsets_but_not_event_time() -> None:
    aligner = EventTimeAligner(max_skew_ms=HOUR)
    aligner.observe("a", 5, 7)
    aligner.observe("a", 6, None)
    assert aligner.next_offset["a"] == 7 and aligner.event_time["a"] == 7
