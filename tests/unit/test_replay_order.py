"""The replay's order: labels ahead of their report time, a barrier before it is reached."""

from streamer.replay import BARRIER, merged_records

H = 3_600_000


def _kinds(records: list[tuple[str, bytes, bytes]]) -> list[str]:
    return [kind if kind == "barrier" else value.decode() for kind, _, value in records]


def test_labels_go_an_hour_ahead_and_are_acknowledged_before_their_time() -> None:
    txs = [(t * H, b"k", f"tx{t}".encode()) for t in range(6)]
    labels = [(2 * H, b"k", b"label2"), (2 * H, b"k", b"label2b"), (5 * H + 1, b"k", b"label5")]
    records = list(merged_records(txs, labels, lead_ms=H))
    assert _kinds(records) == [
        "tx0",
        "label2", "label2b", "tx1",  # within an hour of their report time
        "barrier", "tx2",  # reported at tx2's time: acknowledged before it is sent
        "tx3", "tx4",
        "label5", "tx5",  # reported after the last transaction: sent, no barrier needed
    ]  # fmt: skip
    assert records[4] == BARRIER


def test_without_a_lead_each_label_comes_just_before_its_barrier() -> None:
    txs = [(t * H, b"k", f"tx{t}".encode()) for t in range(3)]
    records = list(merged_records(txs, [(H, b"k", b"label1")], lead_ms=0))
    assert _kinds(records) == ["tx0", "label1", "barrier", "tx1", "tx2"]
