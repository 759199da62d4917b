"""`fraud-streamer simulate` writes a dataset or fails clearly: never an empty file, and a bad
--out is named before the simulation runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import streamer.cli.simulate as command


@pytest.mark.parametrize(
    "sizes",
    [
        ["--customers", "1", "--terminals", "1"],
        ["--customers", "20", "--terminals", "20", "--radius", "0.001"],
    ],
)
def test_no_transaction_is_an_error_and_no_file(tmp_path: Path, sizes: list[str]) -> None:
    out = tmp_path / "tx.parquet"
    result = CliRunner().invoke(command.simulate, [*sizes, "--days", "3", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Error: no transaction was simulated" in result.output
    assert "--radius" in result.output
    assert not out.exists()


def test_an_unwritable_out_fails_before_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("not a directory")
    out = tmp_path / "file" / "sub" / "tx.parquet"

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("simulated before checking --out")

    monkeypatch.setattr(command, "run_simulation", must_not_run)
    result = CliRunner().invoke(command.simulate, ["--days", "1", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert f"Error: cannot write {out}: " in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("**/.tx.parquet.*"))


def test_out_whose_directory_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    out = tmp_path / "file" / "tx.parquet"
    result = CliRunner().invoke(command.simulate, ["--days", "1", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert f"Error: cannot write {out}: {tmp_path / 'file'} is not a directory" in result.output


def test_a_failed_write_is_an_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "tx.csv"

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(27, "File too large")

    monkeypatch.setattr(command, "write_dataset", full_disk)
    sizes = ["--customers", "20", "--terminals", "40", "--days", "2"]
    result = CliRunner().invoke(command.simulate, [*sizes, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.endswith(f"Error: cannot write {out}: File too large\n"), result.output


def test_a_start_beyond_what_timestamps_hold_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "tx.csv"
    args = ["--start", "9999-12-30", "--days", "5", "--out", str(out)]
    result = CliRunner().invoke(command.simulate, args)
    assert result.exit_code == 2, result.output
    assert "start_date 9999-12-30 with 5 days (and 7 more for the labels) leaves 1678..2262" in (
        result.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "tx.txt"], "unknown extension '.txt'; use .parquet, .pq or .csv"),
        (["--radius", "nan", "--out", "tx.csv"], "'nan' is not a finite number"),
    ],
)
def test_what_cannot_make_a_dataset_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(command.simulate, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_a_size_beyond_memory_is_an_error_naming_the_options(tmp_path: Path) -> None:
    """10^11 customers need terabytes: numpy refuses at once, and the command says which
    options to lower instead of a traceback."""
    out = tmp_path / "tx.parquet"
    sizes = ["--customers", str(10**11), "--terminals", "5", "--days", "1"]
    result = CliRunner().invoke(command.simulate, [*sizes, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Error: not enough memory for 100,000,000,000 customers" in result.output
    assert "lower --customers, --terminals or --days" in result.output
    assert not out.exists()
