"""Every model family `train` can pick learns from the features and serves in a worker."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from models.dataset import FeatureSet
from models.registry import LoadedModel, Manifest
from models.train import CANDIDATES
from streamer.features.definitions import FEATURE_NAMES
from streamer.scoring import Scorer, fitted_parts


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_family_learns_and_scores_on_one_thread(name: str,
                                                      small_features: FeatureSet) -> None:
    ts = small_features.frame["timestamp"]
    y = small_features.frame["is_fraud"].to_numpy(dtype=int)
    split = ts.min() + pd.Timedelta(days=60)
    train = ((ts >= ts.min() + pd.Timedelta(days=37)) & (ts < split)).to_numpy()
    later = (ts >= split + pd.Timedelta(days=7)).to_numpy()
    candidate = CANDIDATES[name]
    estimator = candidate.build(**candidate.grid[0]).fit(small_features.X[train], y[train])
    manifest = Manifest(version=f"{name}-1", created="2018-06-20T00:00:00Z", algorithm=name,
                        features=list(FEATURE_NAMES), sha256="")

    scorer = Scorer(LoadedModel(estimator, manifest))

    # a thread pool per call, in any member of a composite model, costs tens of ms per batch
    parts = list(fitted_parts(scorer.model.estimator))
    assert len(parts) == {"logreg": 3, "ensemble": 4}.get(name, 1)
    assert all(part.n_jobs == 1 for part in parts if hasattr(part, "n_jobs")), parts
    scores = scorer.score(small_features.X[later])
    assert scores.shape == (int(later.sum()),)
    assert ((scores >= 0) & (scores <= 1)).all()
    # on days it never saw, it ranks frauds far above their share
    assert average_precision_score(y[later], scores) > 3 * y[later].mean()


def test_the_commands_compare_every_family_by_default() -> None:
    """`train` and `evaluate` name the families in their --candidates default (importing
    scikit-learn for --help would be slow): the names must be the registry of families'."""
    from streamer.cli.evaluate import evaluate
    from streamer.cli.train import train

    for command in (train, evaluate):
        (option,) = [p for p in command.params if p.name == "candidates"]
        assert option.default == ",".join(CANDIDATES), command.name
