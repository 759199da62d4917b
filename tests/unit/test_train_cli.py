"""``fraud-streamer train`` refuses bad inputs up front, as one-line errors: a history too short
for the protocol is caught before the minutes of simulating and building features."""

from __future__ import annotations

import errno
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

import models.dataset
import models.registry
import models.simulate
import models.train
from models.dataset import FeatureSet
from models.metrics import THRESHOLD_GRID
from models.registry import ModelRegistry
from models.train import fit_best, history_days_needed
from streamer.cli import cli
from streamer.settings import Settings

TINY = ["--customers", "50", "--terminals", "100", "--candidates", "logreg"]


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["train", *args])


def _must_not_run(*_: Any, **__: Any) -> Any:
    raise AssertionError("train got past its input checks")


@pytest.mark.parametrize("train_days", [1, 14, 28])
def test_the_minimum_history_is_the_one_fit_best_asks_for(train_days: int) -> None:
    days = pd.date_range("2018-04-01", periods=10, freq="D", tz="UTC")
    features = FeatureSet(pd.DataFrame({"timestamp": days, "is_fraud": False}),
                          np.zeros((len(days), 1)))
    with pytest.raises(ValueError, match="not enough history") as caught:
        fit_best(features, train_days=train_days)
    asked = re.search(r"simulate at least (\d+) days", str(caught.value))
    assert asked is not None and history_days_needed(train_days) == int(asked[1])
    # 30 days of warm-up, the training days, a delay, a validation week, a delay, a margin
    assert history_days_needed(train_days) == 30 + train_days + 7 + 7 + 7 + 1


def test_too_short_a_history_is_refused_before_simulating(
        registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.simulate, "simulate", _must_not_run)
    cases = [((), history_days_needed(14)), (("--train-days", "7"), history_days_needed(7))]
    for args, needed in cases:
        result = _run(*TINY, "--days", str(needed - 1), *args)
        assert result.exit_code == 2, result.output
        assert f"simulate at least {needed} days (or lower --train-days)" in result.output
        assert "Traceback" not in result.output
    # at the lowest --train-days, lowering it is no way out
    result = _run(*TINY, "--days", str(history_days_needed(1) - 1), "--train-days", "1")
    assert result.exit_code == 2 and "lower --train-days" not in result.output, result.output


def test_the_help_says_how_much_history_is_needed() -> None:
    result = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200)
    assert f"at least --train-days + {history_days_needed(0)}" in " ".join(result.output.split())


def test_the_minimum_history_is_enough(registry: ModelRegistry) -> None:
    result = _run(*TINY, "--days", str(history_days_needed(14)))
    assert result.exit_code == 0, result.output
    version = registry.current_version()
    assert version is not None
    # the manifest keeps what selection saw, and where the history came from
    manifest = registry.manifest(version)
    assert manifest.training_data["simulated"]["days"] == history_days_needed(14)
    assert manifest.training_data["train_period"].count("..") == 1
    assert {t["candidate"] for t in manifest.metrics["trials"]} == {"logreg"}
    assert len(manifest.metrics["operating_points"]) >= len(THRESHOLD_GRID)
    settings = Settings()
    assert manifest.thresholds == {
        "review": settings.review_threshold, "decline": settings.decline_threshold
    }


@pytest.mark.parametrize("option", ["--customers 0", "--terminals 0", "--days 0", "--seed -1",
                                    "--train-days 0"])
def test_out_of_range_options_are_usage_errors(registry: ModelRegistry, option: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.simulate, "simulate", _must_not_run)
    result = _run(*option.split())
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option.split()[0]}'" in result.output
    assert "Traceback" not in result.output


def test_data_that_is_not_a_dataset_or_too_short_is_refused_before_features(
        registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        small_history: pd.DataFrame) -> None:
    monkeypatch.setattr(models.dataset, "build_features", _must_not_run)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    result = _run("--data", str(other))
    assert result.exit_code == 2 and "is not a transaction dataset: missing" in result.output
    short = tmp_path / "short.parquet"
    end = small_history["timestamp"].min().floor("D") + pd.Timedelta(days=40)
    models.simulate.write_dataset(small_history[small_history["timestamp"] < end], short)
    result = _run("--data", str(short))
    assert result.exit_code == 2, result.output
    assert f"covers 40 days; --train-days 14 needs at least {history_days_needed(14)}" in (
        result.output)
    assert "Traceback" not in result.output


def test_a_history_training_cannot_use_is_a_one_line_error(
        registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    def one_class(*_: Any, **__: Any) -> Any:
        raise ValueError("the training period holds one class only: give more customers")

    monkeypatch.setattr(models.train, "select", one_class)
    result = _run(*TINY, "--days", str(history_days_needed(14)))
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        "Error: the training period holds one class only: give more customers")


def test_a_history_without_fraud_in_a_period_is_refused_naming_it() -> None:
    """No model is fitted on one class (random forest's predict_proba has one column then), and
    a validation week without fraud has no Average Precision to pick by."""
    days = pd.date_range("2018-04-01", periods=history_days_needed(14), freq="D", tz="UTC")
    features = FeatureSet(pd.DataFrame({"timestamp": days, "is_fraud": False}),
                          np.zeros((len(days), 1)))  # fmt: skip
    with pytest.raises(ValueError) as caught:
        fit_best(features, candidates=["random_forest"])
    assert str(caught.value) == (
        "the selection's training period 2018-05-02..2018-05-15 holds no fraud among its 14 "
        "transactions: a model needs both; give a history with frauds in every period (more "
        "days or customers)"
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [("", "name at least one of logreg"), ("logreg,xgb", "unknown: xgb; choose from logreg")],
)
def test_candidates_are_named_or_the_error_says_which(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, given: str, message: str
) -> None:
    monkeypatch.setattr(models.simulate, "simulate", _must_not_run)
    result = _run("--candidates", given)
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_registry_it_cannot_write_is_named_before_any_work(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a container's user finds a host directory it may not write: said at once, not after
    minutes of training (/proc takes no new directory, even from root)."""
    monkeypatch.setattr(models.simulate, "simulate", _must_not_run)
    monkeypatch.setenv("STREAMER_MODEL_REGISTRY", "/proc/registry")
    result = _run(*TINY)
    assert result.exit_code == 1, result.output
    assert "cannot write /proc/registry/promotions.json" in result.output


def test_a_corrupt_promotion_log_is_named_before_any_work(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training would register a version and only then fail to promote it; without
    --no-promote the log is read first."""
    monkeypatch.setattr(models.simulate, "simulate", _must_not_run)
    registry.root.mkdir(parents=True)
    (registry.root / "promotions.json").write_text("{bad")
    result = _run(*TINY)
    assert result.exit_code == 1, result.output
    assert "promotions.json is corrupt" in result.output and "Traceback" not in result.output


class _OneSecond(datetime):
    """A clock stopped at one second: both runs register in it."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return datetime(2026, 12, 4, 3, 0, 16, tzinfo=UTC)


def test_two_runs_in_the_same_second_register_two_versions(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run's version was named like the first's, and registering it failed with a
    RegistryError traceback after all the work: it takes the next free name instead."""
    monkeypatch.setattr(models.registry, "datetime", _OneSecond)
    days = ("--days", str(history_days_needed(14)))
    first, second = _run(*TINY, *days), _run(*TINY, *days)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "registered 20261204-030016-logreg in" in first.output
    assert "registered 20261204-030016-logreg-2 in" in second.output
    assert registry.history() == ["20261204-030016-logreg", "20261204-030016-logreg-2"]


def test_a_registration_that_fails_is_a_one_line_error(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any RegistryError from registering (here a full disk) is a CLI error, not a traceback."""

    def full(*_: Any, **__: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models.registry.joblib, "dump", full)
    result = _run(*TINY, "--days", str(history_days_needed(14)))
    assert result.exit_code == 1, result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("Error: the model was trained but not registered: cannot store "
                           "version ") and last.endswith("No space left on device; nothing was "
                                                         "registered"), last
    assert "Traceback" not in result.output and registry.versions() == []


def test_a_promotion_log_that_is_a_directory_is_named_before_any_work(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models.simulate, "simulate", _must_not_run)
    (registry.root / "promotions.json").mkdir(parents=True)
    result = _run(*TINY)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        f"Error: the promotion log {registry.root / 'promotions.json'} cannot be read: it is a "
        "directory, not a file")


def test_simulation_options_with_data_are_a_usage_error(
        registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        small_history: pd.DataFrame) -> None:
    """They would be ignored without a word: --data is the history."""
    monkeypatch.setattr(models.simulate, "read_dataset", _must_not_run)
    path = tmp_path / "h.parquet"
    path.write_bytes(b"")
    result = _run("--data", str(path), "--days", "1", "--seed", "3")
    assert result.exit_code == 2, result.output
    assert "--days, --seed describe(s) a history to simulate" in result.output


def test_amounts_beyond_what_a_model_takes_are_named(
        registry: ModelRegistry, tmp_path: Path, small_history: pd.DataFrame) -> None:
    """A finite amount can be beyond what a model takes (scikit-learn would then speak of
    infinity, or of imputers); the command names the transaction instead."""
    history = small_history.copy()
    row = len(history) // 2
    history.loc[history.index[row], "amount"] = 1e308
    path = tmp_path / "h.parquet"
    models.simulate.write_dataset(history, path)
    result = _run("--data", str(path), "--candidates", "logreg")
    assert result.exit_code == 1, result.output
    assert "are beyond what a model takes (±3.4e+38), the first " in result.output
    assert f"{history['transaction_id'].iloc[row]} (amount 1e+308)" in result.output
    assert "Traceback" not in result.output and registry.current_version() is None
