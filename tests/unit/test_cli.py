"""The command line's own surface: its version, and every command listed in its help."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

import streamer.cli
from streamer import features
from streamer.cli import COMMANDS, cli, state_horizon


def test_version_is_the_installed_package_s() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"fraud-streamer, version {version('fraud-streamer')}\n"


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line}
    assert listed == set(COMMANDS)


def test_unusable_tls_files_end_a_command_with_one_line_naming_them(tmp_path: Path) -> None:
    """Found only when the command's first Kafka client is made (no broker is reached):
    one line, no traceback, exit status 1."""
    missing = tmp_path / "ca.pem"
    env = {
        **os.environ,
        "STREAMER_KAFKA_SECURITY_PROTOCOL": "SSL",
        "STREAMER_KAFKA_SSL_CAFILE": str(missing),
        "STREAMER_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "streamer", "dead-letters"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"Error: cannot set up TLS from STREAMER_KAFKA_SSL_CAFILE={missing}: "
        "[Errno 2] No such file or directory\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["produce", "--rate", "nan"],
        ["produce", "--rate", "inf"],
        ["quality", "--delay-days", "nan"],
        ["stack", "up", "--timeout", "nan"],
        ["simulate", "--radius", "inf"],
        ["bench", "--latency-rate", "nan"],
    ],
)
def test_a_number_option_refuses_nan_and_inf(args: list[str]) -> None:
    """click's FloatRange lets both through, to fail later or run unpaced for ever."""
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "is not a finite number" in result.output


@pytest.mark.parametrize("seeds", ["\u00b2", "1,\u00b3", "-1", "book,x"])
def test_evaluate_refuses_a_seed_int_cannot_read(
    seeds: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """str.isdigit() takes '²', and int() then failed with a traceback after the imports."""
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "--seeds", seeds, "--out", str(tmp_path / "reports"), "--no-cache"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value for --seeds: expected 'book'" in result.output
    assert f"non-negative integer seeds, comma-separated, got {seeds!r}" in result.output


@pytest.mark.parametrize("command", ["rebuild-state", "status", "bench"])
def test_help_gives_the_state_s_horizon_the_windows_make(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """These helps speak of how long the state keeps a transaction; the number is the one the
    feature definitions make, whatever they are changed to, and no placeholder shows."""
    monkeypatch.setattr(features.definitions, "RETENTION_DAYS", 41)
    for module in [m for m in sys.modules if m.startswith("streamer.cli.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(streamer.cli, "RETENTION_DAYS", 41)
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "41 days" in text
    assert "44 days" not in text and "{state_days}" not in text


def test_state_horizon_refuses_a_docstring_without_its_place() -> None:
    def command() -> None:
        """Does something for 44 days."""

    with pytest.raises(TypeError, match="command's docstring does not say"):
        state_horizon(command)
