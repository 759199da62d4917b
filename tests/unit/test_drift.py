"""Drift: the profile a model is registered with, the PSI against it, and the worker's ring of
recent rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.dataset import FeatureSet
from models.drift import PSI_ACT, PSI_WATCH, SCORE, Profile, bin_index, make_profile, psi
from models.train import fit_best
from streamer.drift_watch import MIN_ROWS, DriftWatch

NAMES = ["amount", "night"]


def _rows(n: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.5, 0.6, n) * scale
    night = (rng.random(n) < 0.2).astype(float)
    return np.column_stack([amount, night]), rng.beta(1, 30, n)


def test_the_same_traffic_does_not_drift_and_a_shifted_one_does() -> None:
    profile = make_profile(*_rows(20_000, 1), NAMES)
    assert profile.names == [*NAMES, SCORE]
    for shares in profile.shares:
        assert sum(shares) == pytest.approx(1.0)
    assert len(profile.shares[1]) == 2  # a flag: two bins, not ten
    X, s = _rows(5_000, 2)
    columns = [*X.T, s]
    same = [psi(sh, np.bincount(bin_index(e, col), minlength=len(sh)))
            for e, sh, col in zip(profile.edges, profile.shares, columns, strict=True)]  # fmt: skip
    assert max(same) < PSI_WATCH / 2, same
    X, s = _rows(5_000, 3, scale=3.0)  # amounts three times what they were
    watch = DriftWatch("v1", profile, window=5_000)
    watch.observe(X, s)
    values = watch.psi()
    assert values is not None
    assert values["amount"] > PSI_ACT and values["night"] < PSI_WATCH and values[SCORE] < PSI_WATCH
    assert Profile.from_dict(profile.to_dict()) == profile


def test_the_watch_keeps_the_latest_rows_and_waits_for_enough() -> None:
    profile = make_profile(*_rows(20_000, 1), NAMES)
    watch = DriftWatch("v1", profile, window=2_000)
    X, s = _rows(MIN_ROWS - 1, 4)
    watch.observe(X, s)
    assert watch.psi() is None  # too few to say
    shifted = _rows(1_500, 5, scale=3.0)
    watch.observe(*shifted)
    assert watch.psi()["amount"] > PSI_ACT  # type: ignore[index]
    for seed in range(6, 10):  # 4 x 700 ordinary rows push the shifted ones out of the ring
        X, s = _rows(700, seed)
        watch.observe(X, s)
    assert watch.rows == 2_000
    assert watch.psi()["amount"] < PSI_WATCH  # type: ignore[index]
    # a batch larger than the ring keeps its last rows: 1,000 shifted, then 2,000 ordinary
    (X1, s1), (X2, s2) = _rows(1_000, 11, scale=3.0), _rows(2_000, 12)
    watch.observe(np.vstack([X1, X2]), np.concatenate([s1, s2]))
    assert watch.rows == 2_000 and watch.psi()["amount"] < PSI_WATCH  # type: ignore[index]
    # and the other way round: 2,000 ordinary, then 2,000 shifted
    X3, s3 = _rows(2_000, 13, scale=3.0)
    watch.observe(np.vstack([X2, X3]), np.concatenate([s2, s3]))
    assert watch.rows == 2_000 and watch.psi()["amount"] > PSI_ACT  # type: ignore[index]


def test_training_profiles_the_days_after_the_refit_window(small_features: FeatureSet) -> None:
    result = fit_best(small_features, train_days=14, candidates=["hist_gb"])
    profile = Profile.from_dict(result.profile)
    ts = pd.to_datetime(small_features.frame["timestamp"], utc=True)
    last_week = ts >= ts.max().floor("D") - pd.Timedelta(days=6)
    assert profile.rows == int(last_week.sum())  # the unlabelled days: not fitted on
    assert result.train_period is not None
    assert profile.period.split("..")[0] == f"{result.train_period.end:%Y-%m-%d}"
    assert len(profile.names) == small_features.X.shape[1] + 1
