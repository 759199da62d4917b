"""The simulator follows the handbook's rules, is deterministic, and round-trips through files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from models.simulate import (
    COLUMNS,
    SimulationConfig,
    draw_compromises,
    make_profiles,
    read_dataset,
    simulate,
    write_dataset,
)

SMALL = SimulationConfig(n_customers=300, n_terminals=600, n_days=40, seed=11)
DAY = pd.Timedelta(days=1)
# Share of N(43200, 20000) time draws inside (0, 86400); the others are dropped.
KEPT = math.erf(43_200 / (20_000 * math.sqrt(2)))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate(SMALL)


def _numbers(ids: pd.Series) -> np.ndarray:
    """'c-00042' -> 42: the row number in the profiles."""
    return ids.str.split("-").str[1].astype("int64").to_numpy()


def _day(frame: pd.DataFrame, config: SimulationConfig) -> np.ndarray:
    start = pd.Timestamp(config.start_date, tz="UTC")
    return ((frame["timestamp"] - start) // DAY).to_numpy()


def test_same_seed_gives_the_same_frame(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate(SMALL), frame)


def test_other_seed_gives_other_data(frame: pd.DataFrame) -> None:
    other = simulate(SimulationConfig(n_customers=300, n_terminals=600, n_days=40, seed=12))
    assert len(other) != len(frame) or not other["amount"].equals(frame["amount"])


def test_columns_dtypes_ids_and_order(frame: pd.DataFrame) -> None:
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == COLUMNS
    assert frame["transaction_id"].is_unique
    assert frame["transaction_id"].iloc[0] == "tx-000000000"
    assert frame["customer_id"].str.fullmatch(r"c-\d{5}").all()
    assert frame["terminal_id"].str.fullmatch(r"t-\d{5}").all()
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["transaction_id"].is_monotonic_increasing
    assert frame["fraud_scenario"].between(0, 3).all()
    assert (frame["is_fraud"] == (frame["fraud_scenario"] > 0)).all()


def test_amounts_are_non_negative_cents(frame: pd.DataFrame) -> None:
    cents = frame["amount"].to_numpy() * 100
    assert (cents >= 0).all()
    np.testing.assert_allclose(cents, np.round(cents), atol=1e-6)


def test_times_fall_inside_the_simulated_days(frame: pd.DataFrame) -> None:
    day = _day(frame, SMALL)
    assert day.min() == 0 and day.max() == SMALL.n_days - 1
    assert len(np.unique(day)) == SMALL.n_days


def test_progress_is_called_once_per_day() -> None:
    calls: list[int] = []
    simulate(SimulationConfig(n_customers=20, n_terminals=40, n_days=9), progress=calls.append)
    assert calls == [1] * 9


def test_amount_rule_of_scenario_1(frame: pd.DataFrame) -> None:
    """Scenario 1 marks amounts > 220, but scenarios 2 and 3 relabel rows afterwards and
    scenario 3 multiplies amounts by 5; what holds exactly is below."""
    amount, scenario = frame["amount"], frame["fraud_scenario"]
    assert frame.loc[amount > 220, "is_fraud"].all()
    assert (amount[scenario == 1] > 220).all()
    assert (amount[scenario == 0] <= 220).all()
    # Scenario 3 amounts are 5 x whole cents.
    cents = np.round(amount[scenario == 3].to_numpy() * 100).astype("int64")
    assert (cents % 5 == 0).all()


def test_terminals_are_within_radius_of_their_customer(frame: pd.DataFrame) -> None:
    profiles = make_profiles(SMALL)
    customer_xy = profiles.customer_xy[_numbers(frame["customer_id"])]
    terminal_xy = profiles.terminal_xy[_numbers(frame["terminal_id"])]
    distance = np.sqrt(((customer_xy - terminal_xy) ** 2).sum(axis=1))
    assert (distance < SMALL.radius).all()


def test_compromised_terminal_frauds_fall_in_28_day_spans(frame: pd.DataFrame) -> None:
    covered = np.zeros((SMALL.n_terminals, SMALL.n_days), dtype=bool)
    for d, terminals in enumerate(draw_compromises(SMALL).terminals):
        assert len(set(terminals)) == 2
        covered[terminals, d : d + 28] = True
    hit = covered[_numbers(frame["terminal_id"]), _day(frame, SMALL)]
    scenario = frame["fraud_scenario"].to_numpy()
    assert hit[scenario == 2].all()  # every scenario-2 fraud is in a span ...
    assert np.isin(scenario[hit], [2, 3]).all()  # ... and all of a span is fraud (3 relabels)
    assert (scenario == 2).any()


def test_compromised_customers_lose_a_third(frame: pd.DataFrame) -> None:
    customer, day = _numbers(frame["customer_id"]), _day(frame, SMALL)
    scenario = frame["fraud_scenario"].to_numpy()
    covered = np.zeros((SMALL.n_customers, SMALL.n_days), dtype=bool)
    picked_per_day = []
    for d, customers in enumerate(draw_compromises(SMALL).customers):
        assert len(set(customers)) == 3
        covered[customers, d : d + 14] = True
        in_window = np.isin(customer, customers) & (day >= d) & (day < d + 14)
        picked_per_day.append(int(in_window.sum()) // 3)
    assert covered[customer[scenario == 3], day[scenario == 3]].all()
    # Picks on overlapping windows may coincide, so the count lies between these bounds.
    assert max(picked_per_day) <= (scenario == 3).sum() <= sum(picked_per_day)


def test_fraud_rate_is_plausible(frame: pd.DataFrame) -> None:
    """The book's 0.84 % is at 10,000 terminals and 5,000 customers. Compromises are a fixed
    number a day, so here ~28 x 2 / 600 of terminals and ~14 / 300 of transactions → ~10 %."""
    assert 0.05 < frame["is_fraud"].mean() < 0.15
    assert set(frame["fraud_scenario"]) == {0, 1, 2, 3}


def test_frauds_are_reported_after_the_label_delay(frame: pd.DataFrame) -> None:
    fraud = frame["is_fraud"]
    delay = frame.loc[fraud, "reported_at"] - frame.loc[fraud, "timestamp"]
    assert (delay == pd.Timedelta(days=SMALL.label_delay_days)).all()
    assert frame.loc[~fraud, "reported_at"].isna().all()


@pytest.mark.parametrize("name", ["transactions.parquet", "transactions.csv"])
def test_dataset_round_trip(frame: pd.DataFrame, tmp_path: Path, name: str) -> None:
    write_dataset(frame, tmp_path / name)
    pd.testing.assert_frame_equal(read_dataset(tmp_path / name), frame)


@pytest.mark.parametrize("name", ["bad.parquet", "bad.csv"])
def test_reading_names_missing_columns(frame: pd.DataFrame, tmp_path: Path, name: str) -> None:
    write_dataset(frame.drop(columns=["amount", "reported_at"]), tmp_path / name)
    with pytest.raises(ValueError, match="missing amount, reported_at"):
        read_dataset(tmp_path / name)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="n_days"):
        SimulationConfig(n_days=0)
    with pytest.raises(ValueError, match="start_date"):
        SimulationConfig(start_date="April 1st")


def test_cli_writes_the_file_and_a_summary(tmp_path: Path) -> None:
    from streamer.cli.simulate import simulate as command

    out = tmp_path / "nested" / "tx.parquet"
    args = ["--customers", "50", "--terminals", "100", "--days", "5", "--out", str(out)]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    written = read_dataset(out)
    assert f"{len(written):,} transactions" in result.output
    assert str(out) in result.output


def test_daily_counts_follow_the_poisson_means() -> None:
    """Per customer and day, the count is Poisson(mean_nb_tx_per_day x KEPT): dropping each
    time draw independently thins a Poisson count into another Poisson count."""
    config = SimulationConfig(n_customers=2000, n_terminals=4000, n_days=60, seed=5)
    frame = simulate(config)
    profiles = make_profiles(config)
    diff = profiles.customer_xy[:, None, :] - profiles.terminal_xy[None, :, :]
    active = (np.sqrt((diff**2).sum(axis=2)) < config.radius).any(axis=1)

    counts = np.zeros((config.n_customers, config.n_days))
    np.add.at(counts, (_numbers(frame["customer_id"]), _day(frame, config)), 1)
    counts, rate = counts[active], profiles.mean_nb_tx_per_day[active, None] * KEPT

    expected_total = rate.sum() * config.n_days
    assert abs(counts.sum() - expected_total) < 4 * math.sqrt(expected_total)
    # Per customer: standardised deviations of the totals from their means look standard normal.
    # (Customers expecting under 10 are left out: their counts are too skewed for this.)
    means = rate[:, 0] * config.n_days
    z = ((counts.sum(axis=1) - means) / np.sqrt(means))[means >= 10]
    assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1
    # Per customer-day: variance equals the mean, as for a Poisson count.
    assert 0.97 < ((counts - rate) ** 2).sum() / expected_total < 1.03


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("amount", "abc", "amount must be a number; data row 2 holds 'abc'"),
        ("is_fraud", "maybe", "is_fraud must be true or false; data row 2 holds 'maybe'"),
        ("timestamp", "yesterday", "timestamp must be an ISO 8601 time with its offset, e.g. "
                                   "2018-04-01T00:00:31Z; data row 2 holds 'yesterday'"),
        ("timestamp", "2018-04-01 10:00:00", "timestamp must be an ISO 8601 time with its "
                                             "offset"),  # not taken as UTC without a word
        ("fraud_scenario", "1.5", "fraud_scenario must be a whole number; data row 2 holds"),
        ("amount", "-3", "amount must be a finite number ≥ 0; data row 2 holds '-3.0'"),
        ("amount", "inf", "amount must be a finite number ≥ 0; data row 2 holds 'inf'"),
        ("customer_id", "", "customer_id must be 1 to 64 characters; data row 2 holds <NA>"),
        ("terminal_id", "t" * 65, "terminal_id must be 1 to 64 characters; data row 2 holds"),
    ],
)
def test_a_dataset_value_that_is_not_one_is_named_with_its_row(
    frame: pd.DataFrame, tmp_path: Path, column: str, value: str, message: str
) -> None:
    path = tmp_path / "tx.csv"
    write_dataset(frame.head(5), path)
    edited = pd.read_csv(path, dtype=str, keep_default_na=False)
    edited.loc[1, column] = value
    edited.to_csv(path, index=False)
    with pytest.raises(ValueError) as caught:
        read_dataset(path)
    assert str(caught.value).startswith(f"{path}: {message}"), caught.value


def test_a_dataset_of_an_unknown_extension_is_named_not_read_as_parquet(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "tx.txt"
    write_dataset(frame.head(5), tmp_path / "tx.csv")
    (tmp_path / "tx.csv").rename(path)
    with pytest.raises(ValueError, match=r"tx\.txt: unknown extension '\.txt'; use \.csv, "):
        read_dataset(path)
