"""The flat tree predictor gives scikit-learn's probabilities bit for bit, or declines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from models.dataset import FeatureSet
from models.registry import LoadedModel, Manifest
from models.train import CANDIDATES
from streamer.features.definitions import FEATURE_NAMES
from streamer.flat_trees import flat_predictor
from streamer.scoring import FLAT_MAX_ROWS, Scorer, one_thread


def _probes(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Real rows, the same rows nudged onto and around split points, and extreme values."""
    nudged = X * rng.choice([0.5, 1.0, 1.0000001, 2.0], size=X.shape)
    extreme = rng.choice([-1e9, 0.0, 1e9], size=(50, X.shape[1]))
    return np.vstack([X, nudged, extreme])


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_tree_family_gets_scikit_learns_probabilities_exactly(
    name: str, small_features: FeatureSet
) -> None:
    ts = small_features.frame["timestamp"]
    y = small_features.frame["is_fraud"].to_numpy(dtype=int)
    train = ((ts >= ts.min() + pd.Timedelta(days=37)) & (ts < ts.min() + pd.Timedelta(days=60)))
    candidate = CANDIDATES[name]
    model = candidate.build(**candidate.grid[0]).fit(small_features.X[train.to_numpy()],
                                                     y[train.to_numpy()])
    # as the worker serves it: a forest summing its trees on several threads adds them in
    # whatever order they finish, which moves the last bit of a probability from call to call
    one_thread(model)
    predict = flat_predictor(model)
    if name == "logreg":
        assert predict is None  # no trees: scikit-learn's own path
        return
    assert predict is not None
    X = _probes(small_features.X[~train.to_numpy()][:2000], np.random.default_rng(0))
    expected = model.predict_proba(X)
    got = predict(X)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
    # a batch of one and a batch of a few, as live traffic sends them
    assert np.array_equal(predict(X[:1]), expected[:1])
    assert np.array_equal(predict(X[5:12]), expected[5:12])


def test_missing_values_follow_the_side_each_split_learnt() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] + rng.normal(scale=0.5, size=3000) > 0.8).astype(int)
    X[rng.random(X.shape) < 0.1] = np.nan  # seen in training: each split learns a side
    probes = rng.normal(size=(500, 4))
    probes[rng.random(probes.shape) < 0.3] = np.nan
    for model in (
        HistGradientBoostingClassifier(max_iter=50, random_state=0),
        RandomForestClassifier(n_estimators=20, max_depth=6, n_jobs=1, random_state=0),
    ):
        model.fit(X, y)
        predict = flat_predictor(model)
        assert predict is not None
        assert np.array_equal(predict(probes), model.predict_proba(probes))


def test_what_it_cannot_reproduce_is_left_to_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.integers(0, 4, 400), rng.normal(size=400)])
    multiclass = HistGradientBoostingClassifier(max_iter=5).fit(X, rng.integers(0, 3, 400))
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(
        X, rng.integers(0, 2, 400)
    )
    assert flat_predictor(multiclass) is None
    assert flat_predictor(categorical) is None


def test_a_matrix_of_the_wrong_width_is_refused() -> None:
    rng = np.random.default_rng(3)
    model = HistGradientBoostingClassifier(max_iter=5).fit(rng.normal(size=(200, 3)),
                                                           rng.integers(0, 2, 200))
    predict = flat_predictor(model)
    assert predict is not None
    with pytest.raises(ValueError, match="X has 4 features, the model takes 3"):
        predict(np.zeros((2, 4)))


def test_the_scorer_gives_the_same_scores_on_either_path(small_model: LoadedModel,
                                                          small_features: FeatureSet) -> None:
    scorer = Scorer(small_model)
    X = small_features.X[: FLAT_MAX_ROWS * 3]
    whole = scorer.score(X)  # above the flat path's size: scikit-learn's predict_proba
    pieces = np.concatenate([scorer.score(X[i : i + 7]) for i in range(0, len(X), 7)])
    assert np.array_equal(whole, pieces)
    assert np.array_equal(whole, small_model.estimator.predict_proba(X)[:, 1])


def test_the_scorer_uses_the_flat_path_for_small_batches(small_model: LoadedModel) -> None:
    manifest = Manifest(version="m-1", created="2018-06-20T00:00:00Z", algorithm="hist_gb",
                        features=list(FEATURE_NAMES), sha256="")
    scorer = Scorer(LoadedModel(small_model.estimator, manifest))
    calls: list[int] = []
    original = scorer.model.estimator.predict_proba

    def counting(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return original(X)

    scorer.model.estimator.predict_proba = counting
    try:
        scorer.score(np.zeros((FLAT_MAX_ROWS, len(FEATURE_NAMES))))
        assert calls == []
        scorer.score(np.zeros((FLAT_MAX_ROWS + 1, len(FEATURE_NAMES))))
        assert calls == [FLAT_MAX_ROWS + 1]
        # the bench's hand-built-scorer baseline calls scikit-learn whatever the size
        Scorer(LoadedModel(small_model.estimator, manifest), flat=False).score(
            np.zeros((1, len(FEATURE_NAMES)))
        )
        assert calls == [FLAT_MAX_ROWS + 1, 1]
    finally:
        del scorer.model.estimator.predict_proba
