"""The registry stores verified versions, refuses anything it cannot vouch for, and keeps the
promotion history that workers follow."""

from __future__ import annotations

import errno
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import models.registry
from models.registry import ModelRegistry, RegistryError

FEATURES = ["a", "b"]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def estimator() -> LogisticRegression:
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    return LogisticRegression().fit(X, [0, 1, 0, 1])


def _register(registry: ModelRegistry, estimator: LogisticRegression, version: str) -> None:
    registry.register(estimator, algorithm="logreg", features=FEATURES, version=version,
                      metrics={"validation": {"average_precision": 0.7}}, baseline=[0.5, 0.5])


def test_register_then_load_round_trip(registry: ModelRegistry,
                                       estimator: LogisticRegression) -> None:
    manifest = registry.register(estimator, algorithm="logreg", features=FEATURES,
                                 metrics={"validation": {"average_precision": 0.7}},
                                 thresholds={"review": 0.5}, baseline=[0.1, 0.2], version="v1")
    registry.promote("v1")
    loaded = registry.load()
    assert loaded.version == "v1"
    assert loaded.manifest == manifest
    assert loaded.manifest.features == FEATURES and loaded.manifest.baseline == [0.1, 0.2]
    assert len(manifest.sha256) == 64
    X = np.array([[0.3, 0.7], [0.8, 0.2]])
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), estimator.predict_proba(X))
    assert [m.version for m in registry.versions()] == ["v1"]


def test_a_tampered_artifact_is_refused(registry: ModelRegistry,
                                        estimator: LogisticRegression) -> None:
    _register(registry, estimator, "v1")
    artifact = registry.root / "v1" / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit
    artifact.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=r"does not match its manifest.*refusing"):
        registry.load("v1")
    with pytest.raises(RegistryError, match="does not match"):
        registry.promote("v1")  # nor can it be made live


def test_a_manifest_naming_another_version_is_refused_before_any_unpickling(
    registry: ModelRegistry, estimator: LogisticRegression
) -> None:
    """The hash checked is that of the directory's artifact; a manifest edited to name another
    version (``../elsewhere``, or another registered one) would have that one's pickle loaded
    unchecked."""
    _register(registry, estimator, "v1")
    elsewhere = registry.root.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.joblib").write_bytes(b"not checked by anyone")
    path = registry.root / "v1" / "manifest.json"
    for named in ("../elsewhere", "v2"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "version": named}))
        with pytest.raises(RegistryError, match=rf"names version '{re.escape(named)}', not 'v1'"):
            registry.load("v1")


@pytest.mark.parametrize(("edit", "problem"), [
    ({"baseline": [0.5]}, "baseline: 1 values for 2 features"),
    ({"metrics": {"operating_points": 5}}, "metrics.operating_points: must be a list"),
    ({"metrics": {"operating_points": [{"threshold": 0.5, "flagged_share": "x"}]}},
     "metrics.operating_points"),
])  # fmt: skip
def test_a_hand_edited_manifest_part_is_named(
    registry: ModelRegistry, estimator: LogisticRegression, edit: dict[str, object], problem: str
) -> None:
    _register(registry, estimator, "v1")
    path = registry.root / "v1" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(RegistryError, match=re.escape(problem)):
        registry.versions()


def test_an_artifact_without_manifest_is_refused(registry: ModelRegistry,
                                                 estimator: LogisticRegression) -> None:
    _register(registry, estimator, "v1")
    (registry.root / "v1" / "manifest.json").unlink()
    with pytest.raises(RegistryError, match="unknown model version 'v1': no manifest"):
        registry.load("v1")
    assert registry.versions() == []


def test_unknown_and_invalid_versions_are_refused(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="unknown model version 'nope'"):
        registry.load("nope")
    with pytest.raises(RegistryError, match="invalid version name"):
        registry.load("../outside")
    with pytest.raises(RegistryError, match="no model promoted"):
        registry.load()


def test_with_versions_but_none_promoted_the_advice_is_to_promote(
    registry: ModelRegistry, estimator: LogisticRegression
) -> None:
    with pytest.raises(RegistryError, match=r"run `fraud-streamer train` first"):
        registry.verified_current()
    _register(registry, estimator, "v1")
    _register(registry, estimator, "v2")
    with pytest.raises(RegistryError) as info:
        registry.verified_current()
    assert str(info.value) == (
        f"no model promoted in {registry.root}, which holds 2 version(s): promote one with "
        "`fraud-streamer models promote VERSION` (the latest is v2; `fraud-streamer models "
        "list` shows them all)"
    )


def test_a_missing_artifact_is_refused(registry: ModelRegistry,
                                       estimator: LogisticRegression) -> None:
    _register(registry, estimator, "v1")
    (registry.root / "v1" / "model.joblib").unlink()
    with pytest.raises(RegistryError, match=r"artifact .* is missing"):
        registry.load("v1")


def test_promote_and_rollback_keep_the_history(registry: ModelRegistry,
                                               estimator: LogisticRegression) -> None:
    for version in ("v1", "v2", "v3"):
        _register(registry, estimator, version)
    registry.promote("v1")
    registry.promote("v2")
    registry.promote("v2")  # promoting the live version again changes nothing
    registry.promote("v3")
    assert registry.history() == ["v1", "v2", "v3"]
    assert registry.rollback() == "v2"
    assert registry.current_version() == "v2"
    assert registry.load().version == "v2"
    assert registry.rollback() == "v1"
    assert json.loads((registry.root / "promotions.json").read_text())["history"] == ["v1"]


def test_rollback_needs_two_promotions(registry: ModelRegistry,
                                       estimator: LogisticRegression) -> None:
    with pytest.raises(RegistryError, match="nothing is in the promotion history"):
        registry.rollback()
    _register(registry, estimator, "v1")
    registry.promote("v1")
    with pytest.raises(RegistryError, match="only v1 is left in the promotion history; promote"):
        registry.rollback()
    assert registry.history() == ["v1"]


def test_a_version_cannot_be_registered_twice(registry: ModelRegistry,
                                              estimator: LogisticRegression) -> None:
    _register(registry, estimator, "v1")
    with pytest.raises(RegistryError, match="already exists"):
        _register(registry, estimator, "v1")


def test_a_promoted_model_of_other_features_is_not_current_for_these(
        registry: ModelRegistry, estimator: LogisticRegression) -> None:
    assert registry.current_for(FEATURES) is None  # nothing promoted
    _register(registry, estimator, "v1")
    registry.promote("v1")
    assert registry.current_for(FEATURES) == "v1"
    assert registry.current_for([*FEATURES, "c"]) is None  # the worker gained a feature
    assert registry.current_for(FEATURES[::-1]) is None  # same names, other order


def test_a_shadow_is_set_cleared_and_ends_when_promoted(registry: ModelRegistry,
                                                         estimator: LogisticRegression) -> None:
    for version in ("v1", "v2", "v3"):
        _register(registry, estimator, version)
    registry.promote("v1")
    assert registry.shadow_version() is None
    registry.set_shadow("v2")
    assert registry.shadow_version() == "v2" and registry.current_version() == "v1"
    registry.promote("v3")  # another promotion keeps the shadow
    assert registry.shadow_version() == "v2"
    registry.promote("v2")  # the shadow promoted is live, no longer a shadow
    assert registry.shadow_version() is None and registry.current_version() == "v2"
    registry.set_shadow("v1")
    assert registry.rollback() == "v3" and registry.shadow_version() == "v1"
    registry.set_shadow(None)
    assert registry.shadow_version() is None
    assert "shadow" not in json.loads((registry.root / "promotions.json").read_text())


def test_a_shadow_must_be_another_registered_intact_version(registry: ModelRegistry,
                                                            estimator: LogisticRegression) -> None:
    for version in ("v1", "v2"):
        _register(registry, estimator, version)
    registry.promote("v1")
    with pytest.raises(RegistryError, match="v1 is the live model"):
        registry.set_shadow("v1")
    with pytest.raises(RegistryError, match="unknown model version 'v9'"):
        registry.set_shadow("v9")
    with (registry.root / "v2" / "model.joblib").open("ab") as artifact:
        artifact.write(b"\0")
    with pytest.raises(RegistryError, match="does not match its manifest"):
        registry.set_shadow("v2")
    assert registry.shadow_version() is None


@pytest.mark.parametrize(("text", "problem"), [
    ("{bad", "the file: Invalid JSON"),  # not JSON
    ("[]", "the file: Input should be an object"),
    ('{"version": "v1"}', "created: Field required; algorithm: Field required; features: Field "
     "required; sha256: Field required"),
    ('{"version": "v1", "created": "x", "algorithm": "logreg", "features": "ab", "sha256": ""}',
     "features: Input should be a valid array"),
    ('{"version": "v1", "created": "x", "algorithm": "logreg", "features": [1], "sha256": ""}',
     "features.0: Input should be a valid string"),
    ('{"version": "v1", "created": "x", "algorithm": "logreg", "features": [], "sha256": "",'
     ' "metrics": []}', "metrics: Input should be an object"),
])  # fmt: skip
def test_an_unreadable_manifest_is_a_registry_error(registry: ModelRegistry,
                                                     estimator: LogisticRegression,
                                                     text: str, problem: str) -> None:
    _register(registry, estimator, "v1")
    path = registry.root / "v1" / "manifest.json"
    path.write_text(text)
    for read in (lambda: registry.manifest("v1"), registry.versions, lambda: registry.load("v1")):
        with pytest.raises(RegistryError) as caught:
            read()
        message = str(caught.value)
        assert message.startswith(f"{path} is not a manifest this version can read: ")
        assert problem in message


def test_a_manifest_with_unknown_keys_is_still_read(registry: ModelRegistry,
                                                    estimator: LogisticRegression) -> None:
    _register(registry, estimator, "v1")
    path = registry.root / "v1" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "added_later": 1}))
    assert registry.manifest("v1").features == FEATURES


@pytest.mark.parametrize(("state", "problem"), [
    ("{bad", "is corrupt: Expecting property name"),
    ('{"history": "abc"}', "history must be a list of version names, got 'abc'"),
    ('{"history": ["v1", 2]}', "history must be a list of version names"),
    ('["v1"]', "no history"),
    ("{}", "no history"),
    ('{"history": ["v1"], "shadow": ["v2"]}', "shadow must be a version name"),
])  # fmt: skip
def test_a_promotion_log_of_the_wrong_shape_is_a_registry_error(
        registry: ModelRegistry, estimator: LogisticRegression, state: str, problem: str) -> None:
    _register(registry, estimator, "v1")
    registry.promote("v1")
    path = registry.root / "promotions.json"
    path.write_text(state)
    for read in (registry.promotions, registry.current_version, registry.load,
                 lambda: registry.promote("v1")):
        with pytest.raises(RegistryError) as caught:
            read()
        assert str(caught.value).startswith(f"{path} is corrupt: ")
        assert problem in str(caught.value) and '{"history": [version, ...]' in str(caught.value)


def test_a_registry_file_it_may_not_read_says_how_to_let_it(
    registry: ModelRegistry, estimator: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written by another user with a mode kept to its owner (a container's uid, a umask of
    077): a RegistryError naming the file and the chmod, not a traceback."""
    _register(registry, estimator, "v1")
    registry.promote("v1")

    def refused(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refused)
    with pytest.raises(RegistryError) as info:
        registry.verified_current()
    assert str(info.value).startswith(f"{registry.root / 'promotions.json'} cannot be read by ")
    assert str(info.value).endswith(f"chmod -R a+rX {registry.root}")


def test_a_promotion_log_it_cannot_write_is_a_registry_error(
    registry: ModelRegistry, estimator: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only mount (as root, no file mode stops the write: the failure is simulated)."""
    _register(registry, estimator, "v1")

    def refused(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("models.registry.write_text", refused)
    with pytest.raises(RegistryError, match=r"cannot write .*promotions\.json: Permission denied"):
        registry.promote("v1")
    assert registry.current_version() is None


class _OneSecond(datetime):
    """A clock stopped at one second: every registration falls in it."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return datetime(2026, 12, 4, 3, 0, 16, 500, tzinfo=UTC)


def test_registrations_in_the_same_second_take_the_next_free_name(
    registry: ModelRegistry, estimator: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `train` runs in one second (or at once) would both name their version by that second:
    the second got "already exists" as a traceback. The name is claimed with one mkdir, and a
    taken one gives the next suffix; a directory another run has just made (still without its
    manifest) is taken too, and left alone."""
    monkeypatch.setattr(models.registry, "datetime", _OneSecond)
    first = registry.register(estimator, algorithm="logreg", features=FEATURES)
    assert first.version == "20261204-030016-logreg"
    assert registry.register(estimator, algorithm="logreg", features=FEATURES).version == (
        "20261204-030016-logreg-2")
    (registry.root / "20261204-030016-logreg-3").mkdir()  # claimed by a concurrent run
    third = registry.register(estimator, algorithm="logreg", features=FEATURES)
    assert third.version == "20261204-030016-logreg-4"
    assert list((registry.root / "20261204-030016-logreg-3").iterdir()) == []
    assert [m.version for m in registry.versions()] == [
        "20261204-030016-logreg", "20261204-030016-logreg-2", "20261204-030016-logreg-4"]
    assert registry.load("20261204-030016-logreg-4").version == "20261204-030016-logreg-4"


def test_a_registration_that_cannot_store_leaves_nothing_behind(
    registry: ModelRegistry, estimator: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the artifact is written: a RegistryError saying so, not an OSError, and
    no half-written version directory holding its name."""

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models.registry.joblib, "dump", full)
    with pytest.raises(RegistryError, match=r"cannot store version v1 in .*: No space left on "
                       r"device; nothing was registered"):
        _register(registry, estimator, "v1")
    assert list(registry.root.iterdir()) == []


def test_load_unpickles_the_bytes_it_hashed(
    registry: ModelRegistry, estimator: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file swapped in between the hash check and the unpickling must not be unpickled (a
    pickle is code): the bytes loaded are the bytes hashed, read once."""
    _register(registry, estimator, "v1")
    artifact = registry.root / "v1" / "model.joblib"
    swapped = registry.root.parent / "swapped.joblib"
    joblib.dump({"swapped": True}, swapped)
    real = hashlib.sha256

    class SwapAfterHashing:
        def __init__(self, *args: Any) -> None:
            self.digest = real(*args)

        def update(self, data: bytes) -> None:
            self.digest.update(data)

        def hexdigest(self) -> str:
            artifact.write_bytes(swapped.read_bytes())  # swapped in once the hash is taken
            return self.digest.hexdigest()

    monkeypatch.setattr(models.registry.hashlib, "sha256", SwapAfterHashing)
    loaded = registry.load("v1")
    assert isinstance(loaded.estimator, LogisticRegression)


@pytest.mark.parametrize("corrupt", [
    lambda data: b"not a pickle at all",
    lambda data: data[: len(data) // 2],  # cut short
])  # fmt: skip
def test_an_artifact_that_matches_its_hash_but_cannot_be_unpickled_is_a_registry_error(
    registry: ModelRegistry, estimator: LogisticRegression, corrupt: Any
) -> None:
    """Corrupt when stored, its hash taken of the corrupt bytes: the unpickler's own exception
    (UnpicklingError, EOFError, ValueError, ...) became a traceback; it is named instead."""
    _register(registry, estimator, "v1")
    artifact = registry.root / "v1" / "model.joblib"
    artifact.write_bytes(corrupt(artifact.read_bytes()))
    path = registry.root / "v1" / "manifest.json"
    sha256 = hashlib.sha256(artifact.read_bytes()).hexdigest()
    path.write_text(json.dumps({**json.loads(path.read_text()), "sha256": sha256}))
    registry.promote("v1")  # the hash matches: promoting does not unpickle
    for load in (lambda: registry.load("v1"), registry.load):
        with pytest.raises(RegistryError) as caught:
            load()
        assert str(caught.value).startswith(
            f"model v1: artifact {artifact} matches its manifest but cannot be unpickled (")
        assert "\n" not in str(caught.value)


def test_a_promotion_log_that_is_a_directory_is_named(registry: ModelRegistry,
                                                      estimator: LogisticRegression) -> None:
    _register(registry, estimator, "v1")
    path = registry.root / "promotions.json"
    path.mkdir()
    for read in (registry.promotions, registry.load, lambda: registry.promote("v1"),
                 registry.rollback, lambda: registry.set_shadow("v1")):
        with pytest.raises(RegistryError) as caught:
            read()
        assert str(caught.value) == (
            f"the promotion log {path} cannot be read: it is a directory, not a file")


def test_a_promotion_log_with_an_io_error_is_named(
    registry: ModelRegistry, estimator: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any other OSError reading it (a failing disk, a stale network mount) names the file."""
    _register(registry, estimator, "v1")
    registry.promote("v1")

    def failing(self: Path, *args: object, **kwargs: object) -> str:
        raise OSError(errno.EIO, "Input/output error", str(self))

    monkeypatch.setattr(Path, "read_text", failing)
    with pytest.raises(RegistryError, match=re.escape(
            f"the promotion log {registry.root / 'promotions.json'} cannot be read: "
            "Input/output error")):
        registry.promotions()


def test_a_directory_no_version_can_be_named_is_a_stray_not_an_error(
    registry: ModelRegistry, estimator: LogisticRegression
) -> None:
    """A copy made by hand ("my copy") hid every version behind "invalid version name 'my
    copy'", without saying where that name came from: it is left out and reported instead."""
    _register(registry, estimator, "v1")
    stray = registry.root / "my copy"
    stray.mkdir()
    (stray / "manifest.json").write_text((registry.root / "v1" / "manifest.json").read_text())
    versions, strays = registry.scan()
    assert [m.version for m in versions] == ["v1"] and strays == [stray]
    assert [m.version for m in registry.versions()] == ["v1"]


@pytest.mark.parametrize("below", ["data.csv/registry", "data.csv/deeper/registry", "data.csv"])
def test_a_registry_at_or_below_a_file_says_so(tmp_path: Path, estimator: LogisticRegression,
                                               below: str) -> None:
    """STREAMER_MODEL_REGISTRY pointing below a regular file read as an empty registry ("no
    model ...: run train"), which training again would not fix."""
    (tmp_path / "data.csv").write_text("a\n1\n")
    registry = ModelRegistry(tmp_path / below)
    problem = ("is a file, not a directory" if below == "data.csv"
               else f"cannot be a directory: {tmp_path / 'data.csv'} is a file")
    for read in (registry.promotions, registry.versions, registry.load,
                 lambda: registry.manifest("v1"), lambda: registry.promote("v1"),
                 lambda: _register(registry, estimator, "v1")):
        with pytest.raises(RegistryError) as caught:
            read()
        assert str(caught.value) == (
            f"the model registry {registry.root} {problem}; point STREAMER_MODEL_REGISTRY at a "
            "directory")


def test_a_version_only_the_promotion_log_names_is_said_to_come_from_it(
    registry: ModelRegistry, estimator: LogisticRegression
) -> None:
    """"unknown model version 'x' (see models list)" sent one to look for a version no one had
    asked for: the promotion log named it, and that is what to fix."""
    _register(registry, estimator, "v1")
    log = registry.root / "promotions.json"
    log.write_text('{"history": ["x", "v1"]}')
    with pytest.raises(RegistryError) as caught:
        registry.rollback()
    assert str(caught.value).startswith(
        f"the promotion log {log} names 'x' as the version live before v1: unknown model "
        "version 'x': no manifest at")
    assert registry.history() == ["x", "v1"]  # nothing changed
    log.write_text('{"history": ["v1", "gone"]}')
    for read in (registry.load, registry.verified_current):
        with pytest.raises(RegistryError, match=re.escape(
                f"the promotion log {log} names 'gone' as the live version: unknown model "
                "version 'gone'")):
            read()
    with pytest.raises(RegistryError) as caught:  # given on the command line: no log named it
        registry.load("gone")
    assert str(caught.value).startswith("unknown model version 'gone'")
