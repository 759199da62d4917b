"""The model registry: versioned joblib artifacts with JSON manifests, and a promotion log.

Layout under the registry root::

    <root>/<version>/model.joblib      the fitted estimator (a pickle: it is code)
    <root>/<version>/manifest.json     version, created, training data, features in order,
                                       metrics, thresholds, baseline, SHA-256 of the artifact
    <root>/promotions.json             the promotion history (the last entry is live), and
                                       the shadow version workers also score with, if any

Loading recomputes the artifact's SHA-256 and refuses any mismatch, and refuses any artifact
that has no manifest: unpickling an unknown file would run whatever code it holds. Workers poll
``promotions.json``; promoting or rolling back is one atomic file replace, so it reaches every
running worker without a restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
        """Store a fitted estimator as a new version (not yet promoted)."""
        created = datetime.now(UTC)
        version = version or f"{created:%Y%m%d-%H%M%S}-{algorithm}"
        if not _VERSION_RE.match(version):
            raise RegistryError(f"invalid version name {version!r}: use letters, digits, ._-")
        directory = self.root / version
        if directory.exists():
            raise RegistryError(f"version {version} already exists in {self.root}")
        directory.mkdir(parents=True)
        artifact = directory / ARTIFACT
        joblib.dump(estimator, artifact)
        manifest = Manifest(
            version=version,
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
        return manifest

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
        self.verify(previous)
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
    def promotions(self) -> tuple[list[str], str | None]:
        """The promotion history, oldest first, and the shadow version (if any)."""
        path = self.root / PROMOTIONS
        if not path.exists():
            return [], None
        # The shape is checked, not coerced: list("abc") would silently make a, b and c the
        # promotion history, and workers would go looking for those versions.
        fix = 'it must be {"history": [version, ...], "shadow": version}, shadow optional'
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RegistryError(f"{path} is corrupt: {exc}; {fix}") from exc
        except PermissionError as exc:
            raise _unreadable(path) from exc
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
        return self.verify(version)

    def current_for(self, features: Sequence[str]) -> str | None:
        """The promoted version if it was trained on ``features`` (in that order), else None:
        a model of an older feature set cannot serve, however recently it was promoted."""
        version = self.current_version()
        if version is None or tuple(self.manifest(version).features) != tuple(features):
            return None
        return version

    def versions(self) -> list[Manifest]:
        if not self.root.exists():
            return []
        found = []
        for directory in sorted(self.root.iterdir()):
            if (directory / MANIFEST).is_file():
                found.append(self.manifest(directory.name))
        return sorted(found, key=lambda m: m.created)

    def manifest(self, version: str) -> Manifest:
        if not _VERSION_RE.match(version):
            raise RegistryError(f"invalid version name {version!r}")
        path = self.root / version / MANIFEST
        if not path.is_file():
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
        except PermissionError as exc:
            raise _unreadable(path) from exc

    def verify(self, version: str) -> Manifest:
        """Check the artifact against its manifest's SHA-256, without unpickling it."""
        manifest = self.manifest(version)
        artifact = self.root / version / ARTIFACT
        if not artifact.is_file():
            raise RegistryError(f"model {version}: artifact {artifact} is missing")
        actual = _sha256(artifact)
        if actual != manifest.sha256:
            raise RegistryError(
                f"model {version}: artifact {artifact} does not match its manifest "
                f"(sha256 {actual[:12]}… != {manifest.sha256[:12]}…); refusing to load a "
                f"tampered or foreign pickle"
            )
        return manifest

    def load(self, version: str | None = None) -> LoadedModel:
        """Load a verified version (default: the promoted one)."""
        manifest = self.verify(version) if version else self.verified_current()
        estimator = joblib.load(self.root / manifest.version / ARTIFACT)  # the one verified
        return LoadedModel(estimator, manifest)
