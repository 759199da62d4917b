"""``fraud-streamer models``: list, show, promote and roll back, with clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from models.registry import Manifest, ModelRegistry
from streamer.cli import cli


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["models", *args])


@pytest.fixture
def two_versions(registry: ModelRegistry, add_version: Callable[..., Manifest]) -> ModelRegistry:
    add_version("v1", metrics={"validation": {"average_precision": 0.612}})
    add_version("v2", metrics={"validation": {"average_precision": 0.734}, "operating_points": [
        {"threshold": 0.3, "flagged_share": 0.0123, "precision": 0.6, "recall": 0.8},
        {"threshold": 0.5, "flagged_share": 0.0071, "precision": 0.8, "recall": 0.7},
    ]})  # fmt: skip
    return registry


def test_list_shows_versions_and_the_live_one(two_versions: ModelRegistry) -> None:
    two_versions.promote("v2")
    result = _run("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["version", "created", "algorithm", "validation", "AP",
                                "flagged", "at", "0.5"]  # fmt: skip
    v1 = next(line for line in lines if " v1 " in f" {line} ")
    v2 = next(line for line in lines if " v2 " in f" {line} ")
    assert v2.startswith("*") and not v1.startswith("*")
    assert "hist_gb" in v1 and "0.612" in v1 and "0.734" in v2
    # the share of the validation week at or above the review threshold, where train measured it
    assert v2.endswith("0.71 %") and v1.endswith("–")


def test_list_warns_of_a_promotion_log_naming_an_unregistered_version(
    two_versions: ModelRegistry,
) -> None:
    """A log edited by hand, or a version's directory removed: no * in the table, so say why."""
    (two_versions.root / "promotions.json").write_text('{"history": ["v1", "ghost"]}')
    result = _run("list")
    assert result.exit_code == 0, result.output
    assert "promotion log names 'ghost' as the live version, which is not registered" in (
        result.output
    )
    assert not any(line.startswith("*") for line in result.output.splitlines())
    (two_versions.root / "promotions.json").write_text('{"history": ["v1"], "shadow": "ghost"}')
    result = _run("list")
    assert result.exit_code == 0, result.output
    assert "names 'ghost' as the shadow version, which is not registered" in result.output
    assert "as the live version" not in result.output


def test_list_of_an_empty_registry(registry: ModelRegistry) -> None:
    result = _run("list")
    assert result.exit_code == 0
    assert "no model in" in result.output and "fraud-streamer train" in result.output


def test_a_relative_registry_found_empty_says_where_it_looked(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another directory, the default models/registry is not the project's: the
    message names the directory it was read from, and the variable that points elsewhere."""
    monkeypatch.setenv("STREAMER_MODEL_REGISTRY", "models/registry")
    result = _run("list")
    assert f"no model in models/registry (in {clean_env}; run from the project's" in (
        result.output
    )
    assert "STREAMER_MODEL_REGISTRY" in result.output


def test_promote_then_rollback(two_versions: ModelRegistry) -> None:
    result = _run("promote", "v1")
    assert result.exit_code == 0, result.output
    assert "promoted v1 (was none)" in result.output
    assert _run("promote", "v2").exit_code == 0
    assert "already live" in _run("promote", "v2").output
    assert two_versions.history() == ["v1", "v2"]
    result = _run("rollback")
    assert result.exit_code == 0, result.output
    assert "rolled back from v2 to v1" in result.output
    assert two_versions.current_version() == "v1"


def test_show_prints_the_manifest(two_versions: ModelRegistry) -> None:
    result = _run("show", "v2")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["version"] == "v2" and len(manifest["sha256"]) == 64
    assert manifest["metrics"]["validation"]["average_precision"] == 0.734


def test_errors_are_clear_and_without_traceback(two_versions: ModelRegistry) -> None:
    for args, message in [
        (("promote", "v9"), "unknown model version 'v9'"),
        (("show", "v9"), "unknown model version 'v9'"),
        (("rollback",), "nothing to roll back to"),
        (("promote", "../x"), "invalid version name"),
    ]:
        result = _run(*args)
        assert result.exit_code == 1, args
        assert f"Error: {message}" in result.output and "Traceback" not in result.output
    artifact = two_versions.root / "v1" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    result = _run("promote", "v1")
    assert result.exit_code == 1 and "does not match its manifest" in result.output


def test_shadow_on_then_off(two_versions: ModelRegistry) -> None:
    two_versions.promote("v1")
    result = _run("shadow", "v2")
    assert result.exit_code == 0, result.output
    assert "shadowing the live model with v2 (was none)" in result.output
    assert "decisions-shadow" in result.output
    v2 = next(line for line in _run("list").output.splitlines() if " v2 " in f" {line} ")
    assert v2.startswith("~")
    result = _run("shadow", "--off")
    assert result.exit_code == 0, result.output
    assert "shadow scoring off (was v2)" in result.output
    assert two_versions.shadow_version() is None


def test_shadow_needs_a_version_or_off_and_refuses_the_live_one(
    two_versions: ModelRegistry,
) -> None:
    two_versions.promote("v1")
    result = _run("shadow")
    assert result.exit_code == 2 and "give a VERSION to shadow, or --off" in result.output
    # both given: not "give a VERSION" (one was), but that they exclude each other
    result = _run("shadow", "v2", "--off")
    assert result.exit_code == 2, result.output
    assert "Error: VERSION (v2) and --off exclude each other: give one" in result.output
    assert two_versions.shadow_version() is None
    result = _run("shadow", "v1")
    assert result.exit_code == 1 and "v1 is the live model" in result.output
    assert "Traceback" not in result.output


def _one_line_error(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert message in result.output and "Traceback" not in result.output


def test_a_corrupt_manifest_is_a_one_line_error(two_versions: ModelRegistry,
                                                tmp_path: Path) -> None:
    two_versions.promote("v2")
    path = two_versions.root / "v2" / "manifest.json"
    for text, problem in [("{bad", "the file: Invalid JSON"),
                          ('{"version": "v2"}', "created: Field required")]:
        path.write_text(text)
        for args in (("list",), ("show", "v2"), ("promote", "v2")):
            _one_line_error(_run(*args), f"{path} is not a manifest this version can read: ")
        transactions = tmp_path / "tx.csv"
        transactions.write_text("transaction_id\n")
        result = CliRunner().invoke(cli, ["score-batch", str(transactions),
                                          "--out", str(tmp_path / "out.csv")])
        _one_line_error(result, f"{path} is not a manifest this version can read: {problem}")


def test_a_promotion_log_of_the_wrong_shape_is_a_one_line_error(
        two_versions: ModelRegistry) -> None:
    path = two_versions.root / "promotions.json"
    path.write_text('{"history": "abc"}')
    for args in (("list",), ("promote", "v1"), ("rollback",), ("shadow", "v1")):
        _one_line_error(_run(*args), f"{path} is corrupt: history must be a list of version names")


def test_a_promotion_log_that_is_a_directory_is_a_one_line_error(two_versions: ModelRegistry,
                                                                 tmp_path: Path) -> None:
    """It was an IsADirectoryError traceback from every command that reads the log."""
    path = two_versions.root / "promotions.json"
    path.mkdir()
    message = f"the promotion log {path} cannot be read: it is a directory, not a file"
    for args in (("list",), ("promote", "v1"), ("rollback",), ("shadow", "v1")):
        _one_line_error(_run(*args), message)
    transactions = tmp_path / "tx.csv"
    transactions.write_text("transaction_id\n")
    result = CliRunner().invoke(cli, ["score-batch", str(transactions),
                                      "--out", str(tmp_path / "out.csv")])
    _one_line_error(result, message)


def test_list_shows_the_versions_and_names_a_stray_directory(two_versions: ModelRegistry) -> None:
    """One folder copied by hand ("my copy") made `list` fail with "invalid version name 'my
    copy'", hiding every version and not saying where the name came from."""
    stray = two_versions.root / "my copy"
    stray.mkdir()
    (stray / "manifest.json").write_text((two_versions.root / "v1" / "manifest.json").read_text())
    result = _run("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(" v1 " in f" {line} " for line in lines)
    assert any(" v2 " in f" {line} " for line in lines)
    assert f"warning: {stray} is not a model version, skipped: 'my copy' is not a valid " in (
        result.output)
    assert "rename or remove it" in result.output


def test_a_registry_below_a_file_is_named(clean_env: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Not "no model in x.csv/registry: run `fraud-streamer train`", which would not help."""
    (clean_env / "x.csv").write_text("a\n1\n")
    monkeypatch.setenv("STREAMER_MODEL_REGISTRY", str(clean_env / "x.csv" / "registry"))
    message = (f"the model registry {clean_env / 'x.csv' / 'registry'} cannot be a directory: "
               f"{clean_env / 'x.csv'} is a file; point STREAMER_MODEL_REGISTRY at a directory")
    for args in (("list",), ("promote", "v1"), ("show", "v1"), ("rollback",)):
        _one_line_error(_run(*args), message)
        assert "run `fraud-streamer train`" not in _run(*args).output


def test_rollback_names_the_promotion_log_for_a_version_only_it_names(
    two_versions: ModelRegistry,
) -> None:
    """The version to roll back to comes from the log, not from the command line: say so."""
    path = two_versions.root / "promotions.json"
    path.write_text('{"history": ["x", "v1"]}')
    _one_line_error(_run("rollback"), f"Error: the promotion log {path} names 'x' as the version "
                    "live before v1: unknown model version 'x'")
    assert two_versions.history() == ["x", "v1"]
