"""Reasons are faithful: neutralising the feature named first lowers the score the most."""

from __future__ import annotations

import numpy as np
import pytest

from models.dataset import FeatureSet
from models.registry import LoadedModel
from schemas import Reason
from streamer.features.definitions import FEATURE_NAMES, FEATURES
from streamer.scoring import Contribution, Scorer

REVIEW = 0.5


@pytest.fixture(scope="module")
def flagged(small_model: LoadedModel, small_features: FeatureSet) -> tuple[Scorer, np.ndarray]:
    scorer = Scorer(small_model)
    scores = scorer.score(small_features.X)
    rows = small_features.X[scores >= REVIEW]
    assert len(rows) > 50, "the small model should flag a fair number of rows"
    return scorer, rows[:300]


def test_neutralising_the_top_reason_lowers_the_score(flagged: tuple[Scorer, np.ndarray]) -> None:
    scorer, X = flagged
    scores = scorer.score(X)
    reasons = scorer.explain(X, scores, top_k=3)
    rows = [r for r, contributions in enumerate(reasons) if contributions]
    assert len(rows) > 0.9 * len(X)
    top = [reasons[r][0] for r in rows]
    probes = X[rows].copy()  # each explained row with its top reason set to the baseline
    for i, c in enumerate(top):
        probes[i, c.index] = scorer.baseline[c.index]
    after = scorer.score(probes)
    assert (after < scores[rows]).all()
    np.testing.assert_allclose(scores[rows] - after, [c.delta for c in top], atol=1e-9)
    np.testing.assert_allclose(after, [c.without for c in top], atol=1e-9)  # what it says


def test_no_other_single_feature_lowers_the_score_more(flagged: tuple[Scorer, np.ndarray]) -> None:
    scorer, X = flagged
    X = X[:12]
    n, f = X.shape
    scores = scorer.score(X)
    reasons = scorer.explain(X, scores, top_k=f)
    drops = np.empty((n, f))  # row r with feature j at its baseline, one probe at a time
    for r in range(n):
        for j in range(f):
            probe = X[r].copy()
            probe[j] = scorer.baseline[j]
            drops[r, j] = scores[r] - scorer.score(probe[None])[0]
    for r, contributions in enumerate(reasons):
        if contributions:
            assert contributions[0].delta == pytest.approx(drops[r].max())
            deltas = [c.delta for c in contributions]
            assert deltas == sorted(deltas, reverse=True)
            assert {c.index for c in contributions} == set(np.flatnonzero(drops[r] > 1e-6))
        else:
            assert drops[r].max() <= 1e-6


def test_reasons_name_real_features_in_words(flagged: tuple[Scorer, np.ndarray]) -> None:
    scorer, X = flagged
    scores = scorer.score(X[:5])
    for contributions in scorer.explain(X[:5], scores, top_k=2):
        assert len(contributions) <= 2
        for c in contributions:
            assert c.code in FEATURE_NAMES
            assert "typical" in c.describe()
            assert f"the score would be {c.without:.2f} with the typical value" in c.describe()


@pytest.mark.parametrize("value", [1e308, -1e308, 2e198, 1e15, 123456.789, float("inf")])
def test_every_feature_s_reason_fits_the_schema_however_large_its_value(value: float) -> None:
    """Any finite amount is valid, so the features computed from it are unbounded too: 1e200
    EUR on a card whose median is 50 is 2e198 times it. A reason longer than the schema's 256
    characters failed its batch each time it was read again, and stopped the worker there."""
    for index, feature in enumerate(FEATURES):
        c = Contribution(index, value, 50.0, 0.5, 0.25)
        reason = Reason(code=c.code, description=c.describe())  # refused over 256 characters
        assert reason.description.startswith(f"{feature.description}: ")
        if abs(value) >= 1e15 and "%" not in feature.unit:  # six significant digits
            assert f"{value:.6g}" in reason.description
