"""Small simulated histories and a small fitted model, shared by the model-side unit tests.

Small sizes keep the tier fast; note the fraud rate is about 10 % here (a fixed number of
compromises a day spread over few cards and terminals), against 0.8 % at the book's size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.dataset import FeatureSet, build_features
from models.registry import LoadedModel, Manifest, ModelRegistry
from models.simulate import SimulationConfig, simulate
from models.train import CANDIDATES
from streamer.features.definitions import FEATURE_NAMES
from streamer.settings import ENV_PREFIX

SMALL = SimulationConfig(n_customers=300, n_terminals=600, n_days=80, seed=3)


@pytest.fixture(scope="session")
def small_history() -> pd.DataFrame:
    return simulate(SMALL)


@pytest.fixture(scope="session")
def small_features(small_history: pd.DataFrame) -> FeatureSet:
    return build_features(small_history)


@pytest.fixture(scope="session")
def small_model(small_features: FeatureSet) -> LoadedModel:
    """Gradient boosting (non-linear, so explanations are not trivially additive) fitted on the
    rows whose windows are full; baseline = median genuine row, as training stores it."""
    ts = small_features.frame["timestamp"]
    rows = (ts >= ts.min() + pd.Timedelta(days=37)).to_numpy()
    y = small_features.frame["is_fraud"].to_numpy(dtype=int)
    estimator = CANDIDATES["hist_gb"].build(learning_rate=0.1, max_iter=60, max_leaf_nodes=15)
    estimator.fit(small_features.X[rows], y[rows])
    baseline = np.median(small_features.X[rows][y[rows] == 0], axis=0).tolist()
    manifest = Manifest(version="small-1", created="2018-06-20T00:00:00Z", algorithm="hist_gb",
                        features=list(FEATURE_NAMES), sha256="", baseline=baseline,
                        metrics={"validation": {"average_precision": 0.5}})
    return LoadedModel(estimator, manifest)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No STREAMER_* variable and no .env file from the machine; runs inside tmp_path."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def registry(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    """An empty registry that the CLI reads (STREAMER_MODEL_REGISTRY)."""
    registry = ModelRegistry(clean_env / "registry")
    monkeypatch.setenv("STREAMER_MODEL_REGISTRY", str(registry.root))
    return registry


@pytest.fixture
def add_version(registry: ModelRegistry, small_model: LoadedModel) -> Callable[..., Manifest]:
    """Store the small model as a new version, the way `fraud-streamer train` does."""

    def add(version: str, **extra: Any) -> Manifest:
        m = small_model.manifest
        parts = {"features": m.features, "baseline": m.baseline, "metrics": m.metrics, **extra}
        return registry.register(small_model.estimator, algorithm=m.algorithm, version=version,
                                 **parts)

    return add
