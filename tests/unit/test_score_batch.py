"""``score-batch`` decides a file as the worker would: same features, scores and rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from models.batch import DECISION_COLUMNS, TRANSACTION_COLUMNS, read_transactions
from models.dataset import build_features, labels_from_simulation
from models.registry import Manifest, ModelRegistry
from schemas import Reason
from streamer.cli import cli
from streamer.scoring import Scorer

DAYS = 40


@pytest.fixture(scope="module")
def history(small_history: pd.DataFrame) -> pd.DataFrame:
    """The first 40 days of the small history, with the Transaction columns only."""
    end = small_history["timestamp"].min().floor("D") + pd.Timedelta(days=DAYS)
    return small_history[small_history["timestamp"] < end].reset_index(drop=True)


@pytest.fixture
def promoted(registry: ModelRegistry, add_version: Callable[..., Manifest]) -> ModelRegistry:
    add_version("small-1")
    registry.promote("small-1")
    return registry


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        out = frame.copy()
        for column in ("timestamp", "tx_timestamp", "reported_at"):
            if column in out:
                out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["score-batch", *args])


def _expected(registry: ModelRegistry, tx: pd.DataFrame, labels: pd.DataFrame | None) -> pd.Series:
    features = build_features(tx[list(TRANSACTION_COLUMNS)], labels)
    scores = Scorer(registry.load()).score(features.X)
    return pd.Series(scores, index=features.frame["transaction_id"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_one_decision_per_transaction_with_the_models_scores(
    promoted: ModelRegistry, history: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    tx = history[list(TRANSACTION_COLUMNS)].sample(frac=1.0, random_state=0)  # any input order
    source = _write(tx, tmp_path / f"tx{suffix}")
    out = tmp_path / "out" / f"decisions{suffix}"
    result = _run(str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"{len(tx):,} decisions by model small-1" in result.output
    decisions = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(decisions.columns) == list(DECISION_COLUMNS)
    assert list(decisions["transaction_id"]) == list(tx["transaction_id"])  # input order
    assert set(decisions["decision"]) <= {"approve", "review", "decline"}
    assert {"review", "decline"} & set(decisions["decision"])
    assert (decisions["model_version"] == "small-1").all()
    assert (decisions["currency"] == "EUR").all()
    expected = _expected(promoted, tx, None)  # no labels given: no terminal risk known
    np.testing.assert_allclose(decisions["score"], expected[decisions["transaction_id"]].to_numpy())
    flagged = decisions["decision"] != "approve"
    for text in decisions.loc[flagged, "reasons"].head(50):
        reasons = [Reason.model_validate(r) for r in json.loads(text)]
        assert reasons
    assert (decisions.loc[~flagged, "reasons"] == "[]").all()


def test_labels_count_from_their_report_time(
    promoted: ModelRegistry, history: pd.DataFrame, tmp_path: Path
) -> None:
    tx = history[list(TRANSACTION_COLUMNS)]
    labels = labels_from_simulation(history)
    source = _write(tx, tmp_path / "tx.parquet")
    label_file = _write(labels, tmp_path / "labels.csv")
    out = tmp_path / "decisions.parquet"
    result = _run(str(source), "--labels", str(label_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    decisions = pd.read_parquet(out)
    with_labels = _expected(promoted, tx, labels)
    np.testing.assert_allclose(decisions["score"],
                               with_labels[decisions["transaction_id"]].to_numpy())
    assert not np.allclose(with_labels, _expected(promoted, tx, None)[with_labels.index])


def test_errors_say_what_is_wrong(promoted: ModelRegistry, history: pd.DataFrame,
                                  tmp_path: Path) -> None:
    good = _write(history[list(TRANSACTION_COLUMNS)].head(100), tmp_path / "tx.csv")
    result = _run(str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 1 and "missing.csv: no such file" in result.output
    result = _run(str(good), "--out", str(tmp_path / "o.txt"))
    assert result.exit_code != 0 and "unknown extension '.txt'" in result.output
    odd = tmp_path / "tx.json"
    odd.write_text("{}")
    result = _run(str(odd), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code != 0 and "unknown extension '.json'" in result.output
    broken = _write(history[["transaction_id", "timestamp", "customer_id"]].head(5),
                    tmp_path / "broken.parquet")
    result = _run(str(broken), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code != 0
    assert "missing column(s) terminal_id, amount" in result.output
    assert "Traceback" not in result.output


def test_bad_values_are_named_by_row(tmp_path: Path, history: pd.DataFrame) -> None:
    tx = history[list(TRANSACTION_COLUMNS)].head(10).copy()
    tx.loc[3, "amount"] = -1.0
    with pytest.raises(ValueError, match=r"amount must be a finite number ≥ 0 \(data row\(s\) 4\)"):
        read_transactions(_write(tx, tmp_path / "tx.csv"))
    text = tx.assign(amount=1.0, timestamp=tx["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    text.to_csv(tmp_path / "naive.csv", index=False)
    with pytest.raises(ValueError, match="with an offset"):
        read_transactions(tmp_path / "naive.csv")


def test_the_simulators_csv_is_accepted(history: pd.DataFrame, tmp_path: Path) -> None:
    """`fraud-streamer simulate --out x.csv` writes pandas' own time format; it must score."""
    path = tmp_path / "sim.csv"
    history.head(20).to_csv(path, index=False)
    frame = read_transactions(path)
    assert (frame["timestamp"] == history["timestamp"].head(20)).all()


def test_no_promoted_model_is_a_clear_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                            history: pd.DataFrame) -> None:
    monkeypatch.setenv("STREAMER_MODEL_REGISTRY", str(clean_env / "empty"))
    source = _write(history[list(TRANSACTION_COLUMNS)].head(10), clean_env / "tx.csv")
    result = _run(str(source), "--out", str(clean_env / "o.csv"))
    assert result.exit_code == 1 and "no model promoted" in result.output


def test_help_says_blocklists_are_not_applied() -> None:
    result = CliRunner().invoke(cli, ["score-batch", "--help"])
    assert result.exit_code == 0
    assert "Blocklists" in result.output and "NOT applied" in result.output
