"""The book's own streams give the book's dataset: its printed profiles and published counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from models.book_streams import BOOK_FRAUDS, BOOK_TRANSACTIONS, book_profiles
from models.simulate import COLUMNS, SimulationConfig, read_dataset, simulate

SMALL = SimulationConfig(n_customers=60, n_terminals=200, n_days=30, streams="book")


def test_customer_profiles_are_the_books_printed_ones() -> None:
    # The book's simulator chapter prints its first customers (random_state 0).
    profiles = book_profiles(SMALL)
    np.testing.assert_allclose(profiles.customer_xy[:2], [[54.881350, 71.518937],
                                                          [42.365480, 64.589411]], atol=1e-6)
    np.testing.assert_allclose(profiles.mean_amount[:3], [62.262521, 46.570785, 80.213879],
                               atol=1e-6)
    np.testing.assert_allclose(profiles.std_amount[:3], profiles.mean_amount[:3] / 2)
    np.testing.assert_allclose(profiles.mean_nb_tx_per_day[:4],
                               [2.179533, 3.567092, 2.115580, 0.348517], atol=1e-6)


def test_book_size_gives_the_published_transaction_and_fraud_counts() -> None:
    frame = simulate(SimulationConfig(streams="book"))
    assert len(frame) == BOOK_TRANSACTIONS == 1_754_155
    assert int(frame["is_fraud"].sum()) == BOOK_FRAUDS == 14_681
    # every scenario is present, in the proportions the book's rules give
    counts = frame["fraud_scenario"].value_counts()
    assert set(counts.index) == {0, 1, 2, 3}
    assert counts[2] > counts[3] > counts[1]


def test_small_history_is_deterministic_sorted_and_typed() -> None:
    frame = simulate(SMALL)
    pd.testing.assert_frame_equal(frame, simulate(SMALL))
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == COLUMNS
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["transaction_id"].is_unique
    fraud = frame["is_fraud"]
    assert (frame.loc[fraud, "reported_at"] - frame.loc[fraud, "timestamp"]
            == pd.Timedelta(days=7)).all()
    assert frame.loc[~fraud, "reported_at"].isna().all()


def test_fast_and_book_streams_differ_but_follow_the_same_rules() -> None:
    fast = simulate(SimulationConfig(n_customers=60, n_terminals=200, n_days=30))
    book = simulate(SMALL)
    assert not fast["amount"].equals(book["amount"])
    for frame in (fast, book):
        genuine = frame[frame["fraud_scenario"] == 0]
        assert (genuine["amount"] <= 220).all()
        assert {2, 3} <= set(frame["fraud_scenario"])
    # the same profiles' laws: typical genuine amounts agree (34.65 and 33.74 EUR here)
    fast_median, book_median = (
        frame.loc[frame["fraud_scenario"] == 0, "amount"].median() for frame in (fast, book)
    )
    assert abs(fast_median - book_median) / book_median < 0.15


def test_book_streams_have_fixed_seeds() -> None:
    with pytest.raises(ValueError, match="seed must be 0"):
        SimulationConfig(streams="book", seed=3)
    with pytest.raises(ValueError, match="streams must be one of"):
        SimulationConfig(streams="other")
    assert SimulationConfig(streams="book").name == "book"
    assert SimulationConfig(seed=3).name == "3"


def test_cli_writes_the_book_streams_and_refuses_a_seed(tmp_path) -> None:
    from streamer.cli import cli

    out = tmp_path / "book.parquet"
    runner = CliRunner()
    result = runner.invoke(cli, ["simulate", "--streams", "book", "--customers", "60",
                                 "--terminals", "200", "--days", "30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(read_dataset(out), simulate(SMALL))

    refused = runner.invoke(cli, ["simulate", "--streams", "book", "--seed", "2",
                                  "--out", str(out)])
    assert refused.exit_code == 2
    assert "seed must be 0" in refused.output
