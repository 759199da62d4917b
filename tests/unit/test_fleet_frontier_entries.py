"""The group's frontier entries: what a worker writes, and which of the others' bind it."""

from streamer.fleet_frontier import format_entry, lowest_other, parse_entry

NOW = 1_700_000_000_000  # wall clock, ms


def test_an_entry_reads_back_as_written() -> None:
    assert parse_entry(format_entry(123, NOW).encode()) == (123, NOW)
    assert parse_entry(format_entry(None, NOW)) == (None, NOW)  # nothing held, nothing to come
    assert parse_entry(format_entry(-(2**62), NOW)) == (-(2**62), NOW)


def test_the_earliest_fresh_frontier_of_the_others_binds() -> None:
    entries = {
        b"me": format_entry(1, NOW).encode(),  # our own entry never binds us
        b"w2": format_entry(500, NOW - 1_000).encode(),
        b"w3": format_entry(300, NOW - 4_999).encode(),
        b"w4": format_entry(None, NOW).encode(),  # caught up: binds nobody
    }
    assert lowest_other(entries, "me", NOW, stale_ms=5_000) == (300, [])


def test_stale_and_unreadable_entries_are_ignored_and_listed_for_deletion() -> None:
    entries = {
        b"me": format_entry(1, NOW).encode(),
        b"killed": format_entry(100, NOW - 5_001).encode(),  # not written for too long
        b"garbled": b"not an entry",
        b"w2": format_entry(900, NOW).encode(),
    }
    assert lowest_other(entries, "me", NOW, stale_ms=5_000) == (900, ["killed", "garbled"])
    assert lowest_other({b"me": b"1|0"}, "me", NOW, stale_ms=5_000) == (None, [])
