"""The event-time merge: partitions are released in event-time order, within a skew bound."""

from streamer.alignment import EventTimeMerger, RebalanceGate

HOUR = 3_600_000
DAY = 24 * HOUR
NOW = 1_000_000  # the monotonic clock, in ms


def _merger(**kw: int) -> EventTimeMerger[str, str]:
    return EventTimeMerger(max_skew_ms=kw.pop("max_skew_ms", DAY), **kw)


def test_releases_partitions_merged_in_event_time_order() -> None:
    m = _merger(max_skew_ms=0)
    for i, day in enumerate([1, 3, 5]):
        m.add("a", i, day * DAY, f"a{day}", NOW)
    for i, day in enumerate([2, 4, 6]):
        m.add("b", i, day * DAY, f"b{day}", NOW)
    drained = {"a": 3, "b": 3}.get  # both read to their end
    assert m.release(drained, NOW) == ["a1", "b2", "a3", "b4", "a5", "b6"]
    assert m.held == 0


def test_holds_a_partition_ahead_until_the_slow_one_catches_up() -> None:
    m = _merger(max_skew_ms=DAY)
    m.add("fast", 0, 30 * DAY, "fast30", NOW)
    m.add("slow", 0, 1 * DAY, "slow1", NOW)
    highwater = {"fast": 1, "slow": 100}.get  # slow has 99 more records to come
    assert m.release(highwater, NOW) == ["slow1"]
    assert m.release(highwater, NOW) == []  # slow's next record may still be day 1
    m.add("slow", 1, 29 * DAY, "slow29", NOW)
    assert m.release(highwater, NOW) == ["slow29", "fast30"]  # 30 is within a day of 29


def test_a_drained_partition_does_not_hold_others_back() -> None:
    m = _merger()
    m.add("a", 0, 1 * DAY, "a1", NOW)
    m.add("b", 0, 30 * DAY, "b30", NOW)
    assert m.release({"a": 1, "b": 1}.get, NOW) == ["a1", "b30"]


def test_a_stuck_partition_stops_holding_the_others_back() -> None:
    m = _merger(idle_ms=5_000)
    m.add("slow", 0, 1 * DAY, "slow1", NOW)
    m.add("fast", 0, 30 * DAY, "fast30", NOW)
    highwater = {"slow": 100, "fast": 1}.get
    assert m.release(highwater, NOW) == ["slow1"]
    assert m.release(highwater, NOW + 5_000) == []
    # slow says it has records to come but delivers none: after idle_ms, fast goes on
    assert m.release(highwater, NOW + 5_001) == ["fast30"]


def test_a_partition_held_long_in_its_queue_is_not_idle_when_it_runs_dry() -> None:
    # "ahead" was read a minute ago and held (queue full, paused) while "behind" caught up. Its
    # idle clock starts when it runs dry, not when it was read: it still bounds "behind".
    m = _merger(max_skew_ms=DAY, idle_ms=5_000)
    m.add("ahead", 0, 10 * DAY, "ahead10", NOW)
    later = NOW + 60_000
    m.add("behind", 0, 9 * DAY, "behind9", later)
    m.add("behind", 1, 12 * DAY, "behind12", later)
    highwater = {"ahead": 100, "behind": 100}.get  # both have more to come
    assert m.release(highwater, later) == ["behind9", "ahead10"]  # ahead may deliver day 10
    assert m.release(highwater, later + 5_000) == []
    assert m.release(highwater, later + 5_001) == ["behind12"]  # now ahead is stuck


def test_records_without_event_time_are_released_at_once() -> None:
    m = _merger(max_skew_ms=0)
    m.add("slow", 0, 1 * DAY, "slow1", NOW)
    m.add("fast", 0, None, "bad", NOW)
    m.add("fast", 1, 9 * DAY, "fast9", NOW)
    assert m.release({"slow": 5, "fast": 2}.get, NOW) == ["bad", "slow1"]


def test_release_stops_at_the_limit_and_goes_on_next_time() -> None:
    m = _merger()
    for i in range(5):
        m.add("a", i, i * HOUR, f"a{i}", NOW)
    assert m.release({"a": 5}.get, NOW, limit=2) == ["a0", "a1"]
    assert m.release({"a": 5}.get, NOW) == ["a2", "a3", "a4"]


def test_full_queues_are_paused_and_resumed_once_drained() -> None:
    m = _merger(queue_max=2)
    m.add("slow", 0, 1 * DAY, "slow1", NOW)
    m.add("fast", 0, 30 * DAY, "fast30", NOW)
    m.add("fast", 1, 31 * DAY, "fast31", NOW)
    highwater = {"slow": 100, "fast": 50}.get
    m.release(highwater, NOW)
    assert m.flow() == ({"fast"}, set())
    assert m.flow() == (set(), set())
    m.add("slow", 1, 30 * DAY, "slow30", NOW)
    m.release(highwater, NOW)
    assert m.flow() == (set(), {"fast"})


def test_forget_returns_what_a_revoked_partition_held() -> None:
    m = _merger()
    m.add("a", 0, 1 * DAY, "a1", NOW)
    m.add("b", 0, 30 * DAY, "b30", NOW)
    assert m.forget(["b"]) == ["b30"]
    assert m.held == 1 and "b" not in m.next_offset
    assert m.release({"a": 1}.get, NOW) == ["a1"]


def test_retain_forgets_partitions_the_consumer_no_longer_owns() -> None:
    m = _merger()
    m.add("a", 0, 1 * DAY, "a1", NOW)
    m.add("b", 0, 30 * DAY, "b30", NOW)
    m.add("c", 0, 2 * DAY, "c2", NOW)
    assert m.release({"a": 1, "b": 1, "c": 5}.get, NOW, limit=1) == ["a1"]  # a drained, kept

    def owned_only(tp: str) -> int:  # a consumer refuses to answer for a partition it lost
        assert tp in {"a", "b"}, f"{tp} is not assigned"
        return 1

    assert m.retain({"a", "b", "labels-0"}) == ["c2"]
    assert "c" not in m.next_offset and m.held == 1
    assert m.release(owned_only, NOW) == ["b30"]


def test_skew_is_the_spread_of_partitions_with_records_to_process() -> None:
    m = _merger()
    m.add("a", 0, 1 * DAY, "a1", NOW)
    m.add("b", 0, 3 * DAY, "b3", NOW)
    assert m.skew_ms({"a": 5, "b": 5}.get, NOW) == 2 * DAY


def _with_labels(**kw: int) -> EventTimeMerger[str, str]:
    """A merge whose partitions named "labels…" are strict, as the worker's label partitions."""
    return EventTimeMerger(
        max_skew_ms=kw.pop("max_skew_ms", DAY), strict=lambda tp: tp.startswith("labels"), **kw
    )


def test_nothing_passes_a_strict_partition_that_may_still_deliver_before_it() -> None:
    m = _with_labels(max_skew_ms=DAY)
    m.add("labels", 0, 5 * DAY, "label5", NOW)
    m.add("tx", 0, 5 * DAY - 1, "tx5-", NOW)
    m.add("tx", 1, 5 * DAY, "tx5", NOW)
    m.add("tx", 2, 5 * DAY + HOUR, "tx5+", NOW)
    highwater = {"labels": 100, "tx": 3}.get  # labels has more to come: at day 5 or later
    # within a day of the label's time, but a label reported then may still come: only what
    # is strictly earlier passes it, and the label itself comes before a transaction at its time
    assert m.release(highwater, NOW) == ["tx5-", "label5"]
    assert m.release(highwater, NOW) == []
    m.add("labels", 1, 5 * DAY + 2 * HOUR, "label5++", NOW)
    # the next label is later than both; it goes too (nothing else may come before it)
    assert m.release(highwater, NOW) == ["tx5", "tx5+", "label5++"]


def test_a_strict_partition_not_heard_from_holds_everything_until_it_delivers() -> None:
    m = _with_labels(idle_ms=5_000)
    m.expect({"labels": 0}, NOW)
    m.expect({"labels": 40}, NOW + 1)  # its committed offset, learnt a moment later
    assert m.next_offset["labels"] == 40
    m.add("tx", 0, 1 * DAY, "tx1", NOW)
    assert m.release({"labels": 40, "tx": 1}.get, NOW) == ["tx1"]  # labels read to its end
    m.add("tx", 1, 2 * DAY, "tx2", NOW)
    highwater = {"labels": 42, "tx": 2}.get  # two labels arrived in Kafka, not yet here
    assert m.release(highwater, NOW) == []  # it may be reported at any time
    m.add("labels", 40, 1 * DAY, "label1", NOW)
    assert m.release(highwater, NOW) == ["label1"]  # tx2 could still tie with the next label
    m.add("labels", 41, 3 * DAY, "label3", NOW)
    assert m.release({"labels": 42, "tx": 2}.get, NOW) == ["tx2", "label3"]


def test_a_stuck_strict_partition_stops_holding_after_idle_ms() -> None:
    m = _with_labels(idle_ms=5_000)
    m.expect({"labels": 0}, NOW)
    m.add("tx", 0, 1 * DAY, "tx1", NOW)
    highwater = {"labels": 10, "tx": 1}.get
    assert m.release(highwater, NOW + 5_000) == []
    assert m.release(highwater, NOW + 5_001) == ["tx1"]


def test_strict_partitions_are_left_out_of_the_skew() -> None:
    m = _with_labels()
    m.add("a", 0, 1 * DAY, "a1", NOW)
    m.add("labels", 0, 9 * DAY, "label9", NOW)
    assert m.skew_ms({"a": 5, "labels": 5}.get, NOW) == 0


def test_pending_is_the_earliest_time_each_kind_of_partition_may_still_deliver() -> None:
    m = _with_labels(idle_ms=5_000)
    m.add("a", 0, 3 * DAY, "a3", NOW)
    m.add("b", 0, 2 * DAY, "b2", NOW)
    m.add("labels", 0, 4 * DAY, "label4", NOW)
    m.expect({"c": 0}, NOW)  # not heard from: no place in event time yet
    highwater = {"a": 1, "b": 9, "c": 5, "labels": 1}.get
    assert m.pending_ms(highwater, NOW) == 2 * DAY  # the queues' heads
    assert m.pending_ms(highwater, NOW, strict=True) == 4 * DAY
    drained = {"a": 1, "b": 1, "c": 0, "labels": 1}.get
    assert m.release(drained, NOW) == ["b2", "a3", "label4"]
    assert m.pending_ms(drained, NOW) is None  # nothing to come
    assert m.pending_ms(drained, NOW, strict=True) is None
    m.add("b", 1, 5 * DAY, "b5", NOW)
    highwater = {"a": 1, "b": 9, "c": 0, "labels": 1}.get
    assert m.release(highwater, NOW) == ["b5"]
    assert m.pending_ms(highwater, NOW) == 5 * DAY  # b's next record is that late at least
    assert m.pending_ms(highwater, NOW + 5_001) is None  # stuck: it holds nothing back


def test_a_partition_not_heard_from_since_assigned_holds_everything_until_it_delivers() -> None:
    m = _merger(max_skew_ms=DAY, idle_ms=5_000)
    m.expect({"fast": 0, "slow": 0}, NOW)  # both just assigned, each with records to come
    for i, day in enumerate([1, 10, 20]):
        m.add("fast", i, day * DAY, f"fast{day}", NOW)
    highwater = {"fast": 3, "slow": 50}.get
    # slow's first records may be from any time: nothing passes it, not even fast's first
    assert m.release(highwater, NOW + 100) == []
    assert m.skew_ms(highwater, NOW + 100) == 0  # nothing known of slow's place in time
    m.add("slow", 0, 9 * DAY, "slow9", NOW + 200)
    # from here on the usual bound: up to a day past slow's latest, while it has more to come
    assert m.release(highwater, NOW + 200) == ["fast1", "slow9", "fast10"]
    assert m.skew_ms(highwater, NOW + 200) == 11 * DAY


def test_a_partition_whose_end_is_not_known_yet_holds_everything_until_a_fetch_answers() -> None:
    # just assigned (at start-up, or after a rebalance), no fetch has answered for "labels"
    # yet: its end is unknown, and it may hold a label reported before anything queued here
    m = _with_labels(idle_ms=5_000)
    m.expect({"tx": 0, "labels": 0}, NOW)
    m.add("tx", 0, 9 * DAY, "tx9", NOW)
    assert m.release({"tx": 1, "labels": None}.get, NOW + 100) == []
    # the fetch answers: labels is empty, nothing is to come from it
    assert m.release({"tx": 1, "labels": 0}.get, NOW + 200) == ["tx9"]
    # and an end that stays unknown stops holding after idle_ms, like a stuck partition
    m.expect({"late": 0}, NOW + 300)
    m.add("tx", 1, 10 * DAY, "tx10", NOW + 300)
    never = {"tx": 2, "labels": 0, "late": None}.get
    assert m.release(never, NOW + 5_300) == []
    assert m.release(never, NOW + 5_301) == ["tx10"]


def test_a_partition_assigned_at_its_end_holds_nothing_back() -> None:
    m = _merger(max_skew_ms=0)
    m.expect({"a": 0, "b": 7}, NOW)  # b's consumer starts at its end: nothing to come
    m.add("a", 0, 5 * DAY, "a5", NOW)
    assert m.release({"a": 1, "b": 7}.get, NOW) == ["a5"]


def test_a_partition_assigned_but_never_delivering_stops_holding_after_idle_ms() -> None:
    m = _merger(idle_ms=5_000)
    m.expect({"a": 0, "stuck": 0}, NOW)
    m.add("a", 0, 1 * DAY, "a1", NOW)
    highwater = {"a": 1, "stuck": 10}.get
    assert m.release(highwater, NOW + 5_000) == []
    assert m.release(highwater, NOW + 5_001) == ["a1"]


def test_records_read_before_a_revocation_stay_out_until_the_next_assignment() -> None:
    gate: RebalanceGate[str] = RebalanceGate()
    assert gate.admits("p3", 1, 1)  # read in the current generation
    assert not gate.admits("p3", 1, 2)  # read before the generation changed
    gate.revoke(["p3"], 1)
    # revoked, the new generation not assigned yet: the generation is still 1, and a record
    # the stream buffered before the revocation must not head the partition's queue
    assert not gate.admits("p3", 1, 1)
    assert gate.admits("p4", 1, 1)  # a partition not revoked
    assert gate.admits("p3", 2, 2)  # assigned again in generation 2: read afresh
    assert not gate.admits("p3", 1, 2)


def test_a_withdrawal_waits_for_every_transaction_partition_to_pass_it() -> None:
    """A fraud mark may go ahead of transactions by the skew (a terminal counts it only from
    its report time on); a withdrawal may not: it takes the mark back for every transaction,
    so one decided after it, though earlier, would miss the mark it had in order."""
    m = EventTimeMerger[str, str](max_skew_ms=DAY, strict=lambda tp: tp == "labels",
                                  exact=lambda item: item.startswith("withdraw"))  # fmt: skip
    m.add("tx", 0, 0, "tx0", NOW)
    highwater = {"tx": 10, "labels": 2}.get  # tx has more to come, from time 0 on
    assert m.release(highwater, NOW) == ["tx0"]
    m.add("labels", 0, 2 * HOUR, "mark2h", NOW)
    assert m.release(highwater, NOW) == ["mark2h"]  # within the skew: applied early
    m.add("labels", 1, 3 * HOUR, "withdraw3h", NOW)
    assert m.release(highwater, NOW) == []  # a transaction before 3h may still come
    m.add("tx", 1, 3 * HOUR - 1, "tx3h-", NOW)
    m.add("tx", 2, 3 * HOUR, "tx3h", NOW)
    # the transaction before it goes first; at its time, the label wins the tie
    assert m.release(highwater, NOW) == ["tx3h-", "withdraw3h", "tx3h"]


def test_a_withdrawal_is_not_held_by_a_partition_read_to_its_end_or_stuck() -> None:
    m = EventTimeMerger[str, str](max_skew_ms=DAY, idle_ms=5_000,
                                  strict=lambda tp: tp == "labels",
                                  exact=lambda item: item.startswith("withdraw"))  # fmt: skip
    m.add("tx", 0, 0, "tx0", NOW)
    m.add("labels", 0, HOUR, "withdraw1h", NOW)
    assert m.release({"tx": 1, "labels": 1}.get, NOW) == ["tx0", "withdraw1h"]  # tx drained
    m.add("tx", 1, 0, "tx0'", NOW)
    m.add("labels", 1, 2 * HOUR, "withdraw2h", NOW)
    stuck = {"tx": 10, "labels": 2}.get
    assert m.release(stuck, NOW) == ["tx0'"]
    assert m.release(stuck, NOW + 5_000) == []
    assert m.release(stuck, NOW + 5_001) == ["withdraw2h"]  # tx stuck for idle_ms: not waited for
