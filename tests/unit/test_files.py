"""Outputs are whole or not there: a write that fails leaves the previous file as it was."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.files import replacing, write_text
from models.simulate import SimulationConfig, read_dataset, simulate, write_dataset


def test_a_finished_write_replaces_the_file_and_leaves_nothing_beside(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.md"
    write_text(target, "first")
    write_text(target, "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.md"]


def test_a_write_that_fails_leaves_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("the previous, whole file\n")
    with pytest.raises(KeyboardInterrupt), replacing(target) as tmp:
        tmp.write_text("half of the new one")
        raise KeyboardInterrupt  # Ctrl-C in the middle
    assert target.read_text() == "the previous, whole file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


@pytest.mark.parametrize("name", ["tx.csv", "tx.parquet"])
def test_a_dataset_interrupted_while_written_is_not_left_half_written(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / name
    frame = simulate(SimulationConfig(n_customers=5, n_terminals=10, n_days=3, seed=1))
    write_dataset(frame, target)
    before = target.read_bytes()

    def cut_short(self: pd.DataFrame, path: Path, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(before[: len(before) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv" if name.endswith("csv") else "to_parquet", cut_short)
    with pytest.raises(OSError, match="No space left"):
        write_dataset(pd.concat([frame] * 3), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    monkeypatch.undo()
    assert list(read_dataset(target)["transaction_id"]) == list(frame["transaction_id"])
