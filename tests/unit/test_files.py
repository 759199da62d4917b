"""Outputs are whole or not there: a write that fails leaves the previous file as it was."""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd
import pytest

from models.files import check_writable, read_table, replacing, write_text
from models.simulate import SimulationConfig, read_dataset, simulate, write_dataset


def test_a_finished_write_replaces_the_file_and_leaves_nothing_beside(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.md"
    write_text(target, "first")
    write_text(target, "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.md"]


def test_a_written_file_has_the_mode_a_plain_write_would_give(tmp_path: Path) -> None:
    """Not mkstemp's 0600: a worker running as another user reads the registry's manifests."""
    beside = tmp_path / "plain.txt"
    beside.write_text("x")  # open() with the process's umask
    target = tmp_path / "manifest.json"
    write_text(target, "{}")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(beside.stat().st_mode)
    assert stat.S_IMODE(target.stat().st_mode) & stat.S_IROTH  # under the usual umask, 022


def test_a_directory_that_cannot_be_written_is_named_not_the_probe() -> None:
    # /proc takes no new files, even from root (a mode would not stop root)
    with pytest.raises(OSError) as info:
        check_writable("/proc/out.csv")
    assert info.value.filename == "/proc/out.csv"


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


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"a,b\n1,2,3\n4,5\n", "a row has more fields than the header"),
        (b"", "the file is empty (not even a header)"),
        (b"\xff\xfe,a\n", "cannot read as csv: 'utf-8' codec can't decode"),
        (b'a,b\n"1,2\n', "cannot read as csv: Error tokenizing data"),
    ],
)
def test_a_table_that_cannot_be_read_is_refused_naming_the_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    """Read by `train --data`, `produce` and `score-batch`: the parser's message, with the file."""
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_table(path, "csv")
    assert str(info.value).startswith(f"{path}: {problem}"), info.value


def test_a_parquet_name_on_another_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_text("a,b\n")
    with pytest.raises(ValueError, match="cannot read as parquet") as info:
        read_table(path, "parquet")
    assert str(info.value).startswith(f"{path}: "), info.value
