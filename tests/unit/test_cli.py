"""The command line's own surface: its version, and every command listed in its help."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from streamer.cli import COMMANDS, cli


def test_version_is_the_installed_package_s() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"fraud-streamer, version {version('fraud-streamer')}\n"


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line}
    assert listed == set(COMMANDS)
