"""`fraud-streamer produce` rejects a bad dataset or option in one line, before Kafka.

Kafka is pointed at 127.0.0.1:1, where nothing listens: a test that got that far would see the
Kafka error instead of the one it expects, so each also proves that nothing was sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from models.simulate import SimulationConfig, simulate, write_dataset
from streamer.cli import cli


@pytest.fixture
def env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    return clean_env


@pytest.fixture
def dataset(env: Path) -> Path:
    """Three days of a small simulation (2018-04-01 .. 2018-04-03)."""
    path = env / "tx.parquet"
    write_dataset(simulate(SimulationConfig(n_customers=30, n_terminals=60, n_days=3)), path)
    return path


def _produce(*args: str) -> Result:
    return CliRunner().invoke(cli, ["produce", *args])


def _one_line_error(result: Result, exit_code: int, *words: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    assert "Traceback" not in result.output
    assert "Kafka" not in result.output  # failed before reaching it
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    for word in words:
        assert word in error[0], result.output


def test_a_file_that_is_not_a_dataset(env: Path) -> None:
    (env / "other.csv").write_text("a,b\n1,2\n")
    _one_line_error(_produce("--data", "other.csv"), 1, "other.csv", "missing transaction_id")


def test_an_empty_csv(env: Path) -> None:
    (env / "empty.csv").write_text("")
    _one_line_error(_produce("--data", "empty.csv"), 1, "empty.csv", "the file is empty")


def test_a_row_with_more_fields_than_the_header(env: Path, dataset: Path) -> None:
    """pandas would take the first row's extra field for an index and shift every column."""
    text = pd.read_parquet(dataset).to_csv(index=False).splitlines()
    text[1] += ",surplus"
    (env / "ragged.csv").write_text("\n".join(text) + "\n")
    _one_line_error(_produce("--data", "ragged.csv"), 1, "ragged.csv",
                    "a row has more fields than the header")  # fmt: skip


def test_a_parquet_name_on_something_else(env: Path) -> None:
    (env / "tx.parquet").write_text("transaction_id,timestamp\n")
    _one_line_error(_produce("--data", "tx.parquet"), 1, "tx.parquet", "Parquet")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--start", "2018-13-45"),
        ("--start", "yesterday"),
        ("--limit", "0"),
        ("--limit", "-5"),
        ("--days", "0"),
        ("--days", "-1"),
        ("--rate", "0"),
        ("--rate", "-10"),
    ],
)
def test_options_that_would_replay_something_else(dataset: Path, option: str, value: str) -> None:
    _one_line_error(_produce("--data", str(dataset), option, value), 2, option)


def test_valid_options_select_what_they_say(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--start, --days and --limit pick the rows; --rate reaches the replay as given."""
    import streamer.kafka_topics
    import streamer.replay

    seen: dict[str, Any] = {}

    async def no_topics(settings: object) -> None:
        return None

    async def record(settings: object, records: Any, *, rate: Any, progress: Any) -> Any:
        seen["tx"] = [value for kind, _, value in records if kind == "transactions"]
        seen["rate"] = rate
        return streamer.replay.ReplayStats(transactions=len(seen["tx"]), seconds=1.0)

    monkeypatch.setattr(streamer.kafka_topics, "ensure_contract_topics", no_topics)
    monkeypatch.setattr(streamer.replay, "replay", record)
    frame = pd.read_parquet(dataset)
    day2 = frame[frame["timestamp"].dt.strftime("%Y-%m-%d") == "2018-04-02"]

    result = _produce("--data", str(dataset), "--start", "2018-04-02", "--days", "1")
    assert result.exit_code == 0, result.output
    assert len(seen["tx"]) == len(day2) > 0
    assert seen["rate"] is None

    result = _produce("--data", str(dataset), "--limit", "3", "--rate", "0.5")
    assert result.exit_code == 0, result.output
    assert len(seen["tx"]) == 3
    assert seen["rate"] == 0.5


def test_a_selection_of_nothing_says_what_the_dataset_covers(dataset: Path) -> None:
    result = _produce("--data", str(dataset), "--start", "2030-01-01")
    _one_line_error(result, 1, "--start and --days select none of", "(it covers 2018-04-01 .. ")


def test_a_dataset_without_rows_says_so(env: Path, dataset: Path) -> None:
    pd.read_parquet(dataset).head(0).to_parquet(env / "none.parquet")
    _one_line_error(_produce("--data", "none.parquet"), 1, "none.parquet holds no transaction")


def test_a_missing_dataset_is_a_bad_argument(env: Path) -> None:
    """Status 2, as for every missing input file (click's usage errors)."""
    _one_line_error(_produce("--data", "none.parquet"), 2, "--data", "no dataset at none.parquet",
                    "fraud-streamer simulate --out none.parquet")  # fmt: skip


def _simulated_from(env: Path, start: pd.Timestamp) -> Path:
    path = env / "recent.parquet"
    config = SimulationConfig(n_customers=30, n_terminals=60, n_days=3,
                              start_date=f"{start:%Y-%m-%d}")  # fmt: skip
    write_dataset(simulate(config), path)
    return path


def test_transactions_dated_after_now_are_refused_before_kafka(env: Path) -> None:
    """Kafka stamps a record with its send time: the workers would dead-letter every one of
    them (event_after_record)."""
    path = _simulated_from(env, pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=5))
    _one_line_error(_produce("--data", str(path)), 1, "transactions are dated more than 24 h "
                    "from now", "event_after_record", "an earlier --start")  # fmt: skip


def test_labels_reported_after_now_are_left_out_and_said_so(env: Path) -> None:
    """A history that ends today has labels reported next week: they are not reported yet."""
    path = _simulated_from(env, pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=4))
    result = _produce("--data", str(path))
    assert "label(s) are reported more than 24 h from now: not sent" in result.output
    assert "Error: cannot" in result.output and "127.0.0.1:1" in result.output  # then Kafka
