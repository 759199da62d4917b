"""The replay's order: labels ahead of their report time, a barrier before it is reached."""

import pandas as pd

from schemas import Label, Transaction
from streamer.replay import BARRIER, encode_labels, encode_transactions, merged_records

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


def test_a_currency_column_is_written_where_a_row_has_one() -> None:
    """A dataset in several currencies replays them; a row without one (an empty CSV cell)
    leaves the field out, and the contract's default applies."""
    frame = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c"],
            "timestamp": pd.to_datetime(["2018-04-01T00:00:00Z"] * 3, utc=True),
            "customer_id": "c1",
            "terminal_id": "t1",
            "amount": [10.0, 20.0, 30.0],
            "currency": ["USD", None, float("nan")],
        }
    )
    raws = [v for _, _, v in encode_transactions(frame)]
    assert [Transaction.model_validate_json(v).currency for v in raws] == ["USD", "EUR", "EUR"]
    assert [b'"currency"' in v for v in raws] == [True, False, False]
    without = encode_transactions(frame.drop(columns="currency"))
    assert all(b'"currency"' not in v for _, _, v in without)


def test_what_the_replay_writes_reads_back_as_the_dataset_under_the_contract() -> None:
    """The replay writes the contract's JSON by hand (it is on the producer's hot path): each
    transaction and label must read back through the contract's models as the row it came from,
    to the microsecond, and only frauds with a report time become labels, by report time."""
    frame = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c", "d"],
            "timestamp": pd.to_datetime(
                [
                    "2018-04-01T00:00:00Z",
                    "2018-04-01T00:00:00.000250Z",
                    "2018-04-02T13:14:15.5Z",
                    "2018-04-03T00:00:00Z",
                ],
                utc=True,
                format="ISO8601",
            ),
            "customer_id": ["c1", "c2", "c1", "c3"],
            "terminal_id": ["t1", "t2", "t3", "t4"],
            "amount": [0.0, 12.5, 1e6, 3.0],
            "is_fraud": [1, 1, 0, 1],
            "reported_at": pd.to_datetime(
                ["2018-04-09T00:00:00Z", "2018-04-08T00:00:00.000001Z", None, None],
                utc=True,
                format="ISO8601",
            ),
        }
    )
    txs = encode_transactions(frame)
    for (ms, key, value), row in zip(txs, frame.itertuples(), strict=True):
        tx = Transaction.model_validate_json(value)
        assert (tx.transaction_id, tx.customer_id, tx.terminal_id, tx.amount, tx.currency) == (
            row.transaction_id, row.customer_id, row.terminal_id, row.amount, "EUR"
        )
        assert tx.timestamp == row.timestamp.to_pydatetime() and key == row.customer_id.encode()
        assert ms == row.timestamp.value // 1_000_000
    labels = encode_labels(frame)
    read = [Label.model_validate_json(value) for _, _, value in labels]
    assert [label.transaction_id for label in read] == ["b", "a"]  # by report time
    for (ms, key, _), label in zip(labels, read, strict=True):
        row = frame.set_index("transaction_id").loc[label.transaction_id]
        assert label.is_fraud and key == row["customer_id"].encode()
        assert (label.customer_id, label.terminal_id) == (row["customer_id"], row["terminal_id"])
        assert label.tx_timestamp == row["timestamp"].to_pydatetime()
        assert label.reported_at == row["reported_at"].to_pydatetime()
        assert ms == row["reported_at"].value // 1_000_000
