"""The model registry: versioned joblib artifacts with JSON manifests, and a promotion log.

Layout under the registry root::

    <root>/<version>/model.joblib      the fitted estimator (a pickle: it is code)
    <root>/<version>/manifest.json     version, created, training data, features in order,
                                       metrics, thresholds, baseline, SHA-256 of the artifact
    <root>/promotions.json             the promotion history (the last entry is live), and
                                       the shadow version workers also score with, if any

Loading recomputes the artifact's SHA-256 and refuses any mismatch, and refuses any artifact
that has no manifest: unpickling an unknown file would run whatever code it holds. The bytes
hashed are the bytes unpickled (read once), so a file swapped in between is never loaded.
Registering claims its version's directory with one ``mkdir`` (it fails if the name is taken),
so two registrations never share a version. Workers poll
``promotions.json``; promoting or rolling back is one atomic file replace, so it reaches every
running worker without a restart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
from pydantic import TypeAdapter, ValidationError

from models.files import write_text

__all__ = [
    "LoadedModel",
    "Manifest",
    "ModelRegistry",
    "RegistryError",
]

ARTIFACT = "model.joblib"
MANIFEST = "manifest.json"
PROMOTIONS = "promotions.json"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: how many suffixed names (-2, -3, ...) registering tries after a generated one is taken
_SUFFIXES = 100


class RegistryError(Exception):
    """A registry operation that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    """What is known about a model version, stored beside its artifact."""

    version: str
    created: str
    algorithm: str
    features: list[str]
    sha256: str
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    #: per feature, the value that "neutralises" it when explaining a score (a typical
    #: genuine transaction's value)
    baseline: list[float] = field(default_factory=list)
    #: where its inputs and scores fell on data it was not fitted on (``models.drift``);
    #: {} for versions registered before drift was watched
    profile: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; a ValueError naming each problem when the text is not JSON, lacks
        a required key or holds a value of the wrong kind (a truncated or hand-edited file), so
        that no caller meets a half-valid Manifest. Unknown keys are ignored: a newer version's
        manifest stays readable."""
        try:
            manifest = _MANIFEST.validate_json(text)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(problems) from None
        manifest._check_parts()
        return manifest

    def _check_parts(self) -> None:
        """What the types cannot say: one baseline value per feature (the reasons index it by
        feature), and operating points that ``models list`` can read."""
        if self.baseline and len(self.baseline) != len(self.features):
            raise ValueError(
                f"baseline: {len(self.baseline)} values for {len(self.features)} features"
            )
        points = self.metrics.get("operating_points")
        if points is not None and not (
            isinstance(points, list)
            and all(
                isinstance(p, dict)
                and _is_number(p.get("threshold"))
                and (p.get("flagged_share") is None or _is_number(p.get("flagged_share")))
                for p in points
            )
        ):
            raise ValueError(
                "metrics.operating_points: must be a list of {threshold, flagged_share} numbers"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def validation(self, metric: str) -> float | None:
        """A metric of its validation week (``average_precision``, ``auc_roc``, ...), or None
        when the manifest has none (a version registered by hand)."""
        validation = self.metrics.get("validation")
        value = validation.get(metric) if isinstance(validation, dict) else None
        return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class LoadedModel:
    """A verified estimator with its manifest."""

    estimator: Any
    manifest: Manifest

    @property
    def version(self) -> str:
        return self.manifest.version


def _unreadable(path: Path) -> RegistryError:
    """A registry file this process may not read: written by another user (a container's),
    with a mode that keeps it to its owner."""
    return RegistryError(
        f"{path} cannot be read by this user (uid {os.getuid()}): give it read access, e.g. "
        f"chmod -R a+rX {path.parent if path.name == PROMOTIONS else path.parent.parent}"
    )


def _unreadable_as(path: Path, exc: OSError, what: str) -> RegistryError:
    """A registry file that cannot be read for another reason than its mode (a directory
    where a file belongs, an I/O error)."""
    if isinstance(exc, PermissionError):
        return _unreadable(path)
    directory = isinstance(exc, IsADirectoryError)
    problem = "it is a directory, not a file" if directory else exc.strerror or exc
    return RegistryError(f"{what} {path} cannot be read: {problem}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: validates a manifest's JSON against the dataclass (pydantic reads stdlib dataclasses)
_MANIFEST = TypeAdapter(Manifest)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ModelRegistry:
    """A directory of model versions; no I/O until a method is called."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def where(self) -> str:
        """The registry's directory for a message about finding nothing there: a relative one
        is read from the current directory, and run from another it finds nothing."""
        if self.root.is_absolute():
            return str(self.root)
        return (f"{self.root} (in {Path.cwd()}; run from the project's directory, or set "
                "STREAMER_MODEL_REGISTRY)")  # fmt: skip

    # --- writing -----------------------------------------------------------------------------
    def register(
        self,
        estimator: Any,
        *,
        algorithm: str,
        features: Sequence[str],
        training_data: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        thresholds: dict[str, float] | None = None,
        baseline: Sequence[float] | None = None,
        profile: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> Manifest:
        """Store a fitted estimator as a new version (not yet promoted).

        Without ``version`` the name is the time and the algorithm; when another registration
        took it (two in the same second, or at once), the next free one with a suffix (-2,
        -3, ...). A ``version`` given that exists is an error. The version's directory is
        claimed with one ``mkdir``, so no two registrations share it, and its manifest is
        written last: a version is listed only once whole. A registration that fails leaves
        nothing behind."""
        created = datetime.now(UTC)
        names = [version] if version else [
            f"{created:%Y%m%d-%H%M%S}-{algorithm}" + (f"-{n}" if n > 1 else "")
            for n in range(1, _SUFFIXES + 2)
        ]
        for name in names:
            if not _VERSION_RE.match(name):
                raise RegistryError(f"invalid version name {name!r}: use letters, digits, ._-")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._check_root()
            raise RegistryError(f"cannot create {self.root}: {exc.strerror or exc}") from None
        directory = self._claim(names)
        try:
            artifact = directory / ARTIFACT
            joblib.dump(estimator, artifact)
            manifest = Manifest(
                version=directory.name,
                created=created.isoformat().replace("+00:00", "Z"),
                algorithm=algorithm,
                features=list(features),
                sha256=_sha256(artifact),
                training_data=training_data or {},
                metrics=metrics or {},
                thresholds=thresholds or {},
                baseline=[float(v) for v in (baseline or [])],
                profile=profile or {},
            )
            write_text(directory / MANIFEST, manifest.to_json())
        except OSError as exc:  # a full disk, the registry removed or made read-only meanwhile
            shutil.rmtree(directory, ignore_errors=True)
            raise RegistryError(
                f"cannot store version {directory.name} in {self.root}: {exc.strerror or exc}; "
                "nothing was registered"
            ) from None
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return manifest

    def _claim(self, names: Sequence[str]) -> Path:
        """The directory of the first of ``names`` that no one else has: made here, so that a
        concurrent registration cannot take it too (``mkdir`` fails on an existing name)."""
        for name in names:
            directory = self.root / name
            try:
                directory.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise RegistryError(f"cannot create {directory}: {exc.strerror or exc}") from None
            return directory
        if len(names) == 1:
            raise RegistryError(f"version {names[0]} already exists in {self.root}")
        raise RegistryError(
            f"versions {names[0]} to {names[-1]} all exist in {self.root}: register again in "
            "a second"
        )

    def promote(self, version: str) -> None:
        """Make ``version`` live for every worker reading this registry (a shadow promoted
        stops being the shadow)."""
        self.manifest(version)  # must exist
        self.verify(version)
        history, shadow = self.promotions()
        if history and history[-1] == version:
            return
        self._write_promotions([*history, version], None if shadow == version else shadow)

    def set_shadow(self, version: str | None) -> None:
        """Have workers score every transaction with ``version`` too, beside the live model,
        without acting on it (None: stop)."""
        history, _ = self.promotions()
        if version is not None:
            self.verify(version)
            if history and history[-1] == version:
                raise RegistryError(f"{version} is the live model: a shadow is another version")
        self._write_promotions(history, version)

    def rollback(self) -> str:
        """Return to the version live before the current one; returns it."""
        history, shadow = self.promotions()
        if len(history) < 2:  # each rollback takes the version it leaves off the history
            now = f"only {history[-1]} is left" if history else "nothing is"
            raise RegistryError(
                f"nothing to roll back to: {now} in the promotion history; promote a "
                "registered version with `fraud-streamer models promote VERSION`"
            )
        previous = history[-2]
        self._logged(previous, f"the version live before {history[-1]}")
        self._write_promotions(history[:-1], None if shadow == previous else shadow)
        return previous

    def _write_promotions(self, history: list[str], shadow: str | None) -> None:
        state: dict[str, Any] = {"history": history}
        if shadow is not None:
            state["shadow"] = shadow
        path = self.root / PROMOTIONS
        try:
            write_text(path, json.dumps(state, indent=2) + "\n")
        except OSError as exc:  # a read-only mount, another user's registry
            raise RegistryError(
                f"cannot write {path}: {exc.strerror or exc}; nothing was changed"
            ) from None

    # --- reading -----------------------------------------------------------------------------
    def _check_root(self) -> None:
        """A :class:`RegistryError` when the root cannot be a directory because it, or a
        directory above it, is a file (STREAMER_MODEL_REGISTRY=data.csv/registry): said as
        such, not as an empty registry. Asked only once something was not found."""
        for path in (self.root, *self.root.parents):
            if path.is_dir():
                return
            if path.exists():  # there, and not a directory
                problem = (
                    "is a file, not a directory" if path == self.root
                    else f"cannot be a directory: {path} is a file"
                )
                raise RegistryError(
                    f"the model registry {self.root} {problem}; point STREAMER_MODEL_REGISTRY "
                    "at a directory"
                )

    def _logged(self, version: str, role: str, *, keep: bool = False) -> tuple[Manifest, bytes]:
        """:meth:`_verified` for a version the promotion log names as ``role``: when no such
        version is registered, the error says the name came from the log (not from the
        command line), which is what to fix."""
        if not _VERSION_RE.match(version) or not (self.root / version / MANIFEST).is_file():
            try:
                self.manifest(version)  # the error for an invalid or unknown name
            except RegistryError as exc:
                raise RegistryError(
                    f"the promotion log {self.root / PROMOTIONS} names {version!r} as {role}: "
                    f"{exc}"
                ) from None
        return self._verified(version, keep=keep)

    def promotions(self) -> tuple[list[str], str | None]:
        """The promotion history, oldest first, and the shadow version (if any)."""
        path = self.root / PROMOTIONS
        if not path.exists():
            self._check_root()
            return [], None
        # The shape is checked, not coerced: list("abc") would silently make a, b and c the
        # promotion history, and workers would go looking for those versions.
        fix = 'it must be {"history": [version, ...], "shadow": version}, shadow optional'
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RegistryError(f"{path} is corrupt: {exc}; {fix}") from exc
        except OSError as exc:  # a directory of that name, a mode kept to another user
            raise _unreadable_as(path, exc, "the promotion log") from None
        if not isinstance(state, dict) or "history" not in state:
            raise RegistryError(f"{path} is corrupt: no history; {fix}")
        history, shadow = state["history"], state.get("shadow")
        if not isinstance(history, list) or not all(isinstance(v, str) for v in history):
            raise RegistryError(
                f"{path} is corrupt: history must be a list of version names, got "
                f"{history!r:.60}; {fix}"
            )
        if shadow is not None and not isinstance(shadow, str):
            raise RegistryError(
                f"{path} is corrupt: shadow must be a version name, got {shadow!r:.60}; {fix}"
            )
        return history, shadow

    def history(self) -> list[str]:
        return self.promotions()[0]

    def shadow_version(self) -> str | None:
        return self.promotions()[1]

    def current_version(self) -> str | None:
        history = self.history()
        return history[-1] if history else None

    def verified_current(self) -> Manifest:
        """The promoted version's manifest, its artifact checked against its hash; a
        :class:`RegistryError` saying what to do when none is promoted or the check fails."""
        return self._logged(self._promoted(), "the live version")[0]

    def _promoted(self) -> str:
        """The promoted version's name; a :class:`RegistryError` saying what to do when none
        is."""
        version = self.current_version()
        if version is None:
            registered = self.versions()
            if registered:  # trained with --no-promote, or every promotion rolled back
                raise RegistryError(
                    f"no model promoted in {self.root}, which holds {len(registered)} "
                    f"version(s): promote one with `fraud-streamer models promote VERSION` "
                    f"(the latest is {registered[-1].version}; `fraud-streamer models list` "
                    "shows them all)"
                )
            raise RegistryError(
                f"no model promoted in {self.where()}: run `fraud-streamer train` first (it "
                "simulates data, trains, registers and promotes a model)"
            )
        return version

    def current_for(self, features: Sequence[str]) -> str | None:
        """The promoted version if it was trained on ``features`` (in that order), else None:
        a model of an older feature set cannot serve, however recently it was promoted."""
        version = self.current_version()
        if version is None or tuple(self.manifest(version).features) != tuple(features):
            return None
        return version

    def versions(self) -> list[Manifest]:
        """The registered versions, oldest first (see :meth:`scan`)."""
        return self.scan()[0]

    def scan(self) -> tuple[list[Manifest], list[Path]]:
        """The registered versions, oldest first, and the strays: directories that hold a
        manifest under a name no version can have (``my copy``, a copy made by hand). A stray
        cannot be loaded, promoted or shadowed, so it is left out rather than hiding every
        version behind an error; the caller says which (``models list`` warns of each). A
        version whose manifest cannot be read is an error naming that file."""
        if not self.root.is_dir():
            self._check_root()
            return [], []
        found, strays = [], []
        try:
            directories = sorted(self.root.iterdir())
        except OSError as exc:  # a mode kept to another user
            raise RegistryError(
                f"the model registry {self.root} cannot be listed: {exc.strerror or exc}"
            ) from None
        for directory in directories:
            if (directory / MANIFEST).is_file():
                if _VERSION_RE.match(directory.name):
                    found.append(self.manifest(directory.name))
                else:
                    strays.append(directory)
        return sorted(found, key=lambda m: m.created), strays

    def manifest(self, version: str) -> Manifest:
        if not _VERSION_RE.match(version):
            raise RegistryError(f"invalid version name {version!r}")
        path = self.root / version / MANIFEST
        if not path.is_file():
            self._check_root()
            raise RegistryError(
                f"unknown model version {version!r}: no manifest at {path} "
                f"(see `fraud-streamer models list`)"
            )
        try:
            manifest = Manifest.from_json(path.read_text(encoding="utf-8"))
            if manifest.version != version:
                # the artifact checked is the directory's: a manifest naming another version
                # would have another one loaded, unchecked
                raise ValueError(f"it names version {manifest.version!r}, not {version!r}")
            return manifest
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise RegistryError(
                f"{path} is not a manifest this version can read: {exc}; restore it, or "
                f"remove {path.parent} to drop that version"
            ) from exc
        except OSError as exc:
            raise _unreadable_as(path, exc, "the manifest") from None

    def verify(self, version: str) -> Manifest:
        """Check the artifact against its manifest's SHA-256, without unpickling it."""
        return self._verified(version, keep=False)[0]

    def _verified(self, version: str, *, keep: bool) -> tuple[Manifest, bytes]:
        """The manifest, and (``keep``) the artifact's bytes that were checked against it:
        what is unpickled must be those bytes, not the file read again (it may have been
        replaced in between). Without ``keep`` the file is hashed as it streams, and b""."""
        manifest = self.manifest(version)
        artifact = self.root / version / ARTIFACT
        if not artifact.is_file():
            raise RegistryError(f"model {version}: artifact {artifact} is missing")
        data = b""
        try:
            if keep:
                data = artifact.read_bytes()
                actual = hashlib.sha256(data).hexdigest()
            else:
                actual = _sha256(artifact)
        except OSError as exc:
            raise _unreadable_as(artifact, exc, f"model {version}: artifact") from None
        if actual != manifest.sha256:
            raise RegistryError(
                f"model {version}: artifact {artifact} does not match its manifest "
                f"(sha256 {actual[:12]}… != {manifest.sha256[:12]}…); refusing to load a "
                f"tampered or foreign pickle"
            )
        return manifest, data

    def load(self, version: str | None = None) -> LoadedModel:
        """Load a verified version (default: the promoted one). The bytes unpickled are the
        ones hashed; an artifact that matches its hash but cannot be unpickled (corrupt when
        stored, or of a library version that cannot read it) is a :class:`RegistryError`."""
        if version is None:
            version = self._promoted()
            manifest, data = self._logged(version, "the live version", keep=True)
        else:
            manifest, data = self._verified(version, keep=True)
        try:
            estimator = joblib.load(io.BytesIO(data))
        except Exception as exc:  # a pickle can raise anything: EOFError, ModuleNotFoundError...
            problem = " ".join(str(exc).split()) or "no detail"
            raise RegistryError(
                f"model {version}: artifact {self.root / version / ARTIFACT} matches its "
                f"manifest but cannot be unpickled ({type(exc).__name__}: {problem}); "
                "register the model again"
            ) from None
        return LoadedModel(estimator, manifest)
