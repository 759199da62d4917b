"""scikit-learn's tree ensembles, predicted in a few vectorised steps per batch, bit for bit.

Why: live batches are small (5–50 transactions at 1,000 events/s), and scikit-learn walks a
model one tree at a time, each a call into compiled code with its own set-up: about 13 µs a
tree on one thread, 4 ms for the 300-tree booster whatever the batch size, and more for the
forests. Here every tree's nodes sit in one set of arrays, and each step moves every (row,
tree) pair that has not reached a leaf one level down, all at once: a 20-row batch costs a
seventh of scikit-learn's call. Per row it is slower (a level is a dozen NumPy operations over
the pairs still moving), so :class:`streamer.scoring.Scorer` uses it for small batches only.

The results are scikit-learn's own, not approximations: the same comparisons on the same
dtypes (``x <= threshold``, a missing value follows the node's learnt side, forests compare
float32 inputs), and the same sums in the same order (an accumulation over trees, one term
after another, as scikit-learn's ``+=`` over trees adds them). ``tests/unit/test_flat_trees.py``
checks equality with ``predict_proba`` for every model family ``train`` fits. It reads fitted
internals (the booster's ``_predictors`` and ``_baseline_prediction``, each tree's ``tree_``):
scikit-learn's version is pinned, and those tests fail if an upgrade changes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)

__all__ = ["Proba", "flat_predictor"]

#: ``X -> predict_proba(X)``, shape (rows, 2)
Proba = Callable[[np.ndarray], np.ndarray]


class _Forest:
    """The nodes of several trees in one set of arrays, renumbered so that the two children of
    every split sit side by side: a step down is ``base[node] + goes_right``.

    Why renumber: a level then costs one lookup of where to go instead of two and a select,
    and a batch without missing values skips the missing-value test at every level: 16–30 %
    less per call on 1–200 rows of the booster (``bench``'s model-cost table).
    """

    def __init__(
        self,
        trees: Sequence[dict[str, np.ndarray]],
        n_features: int,
        dtype: type[np.floating[Any]],
    ) -> None:
        features, thresholds, missing_left, splits, bases, originals = [], [], [], [], [], []
        roots: list[int] = []
        start = 0
        for tree in trees:
            is_leaf = np.asarray(tree["is_leaf"], dtype=bool)
            left = np.asarray(tree["left"], dtype=np.intp)
            right = np.asarray(tree["right"], dtype=np.intp)
            size, inner = len(is_leaf), np.flatnonzero(~is_leaf)
            if size != 2 * len(inner) + 1:  # some node no split leads to
                raise ValueError(f"a tree of {size} nodes with {len(inner)} splits")
            # the root keeps 0; the children of the k-th split (in node order) get 2k+1, 2k+2
            new = np.zeros(size, dtype=np.intp)
            new[left[inner]] = 1 + 2 * np.arange(len(inner), dtype=np.intp)
            new[right[inner]] = new[left[inner]] + 1
            order = np.empty(size, dtype=np.intp)
            order[new] = np.arange(size, dtype=np.intp)  # the node now at each position
            base = new.copy()  # a leaf's is itself: never followed
            base[inner] = new[left[inner]]
            features.append(np.where(is_leaf, 0, tree["feature"])[order])
            thresholds.append(np.asarray(tree["threshold"], dtype=np.float64)[order])
            missing_left.append(np.asarray(tree["missing_left"], dtype=bool)[order])
            splits.append(~is_leaf[order])
            bases.append(base[order] + start)
            originals.append(order + start)
            roots.append(start)
            start += size
        self.feature = np.concatenate(features).astype(np.intp)
        self.threshold = np.concatenate(thresholds)
        self.missing_left = np.concatenate(missing_left)
        self.is_split = np.concatenate(splits)
        self.base = np.concatenate(bases)
        #: each node's index in the trees' own concatenation, where their leaf values are
        self.original = np.concatenate(originals)
        self.roots = np.array(roots, dtype=np.intp)
        self.n_features = n_features
        self.dtype = dtype

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree: node indices in the trees' concatenation,
        shape (trees, rows)."""
        n, width = X.shape
        if width != self.n_features:  # the flat index below would read the wrong columns
            raise ValueError(f"X has {width} features, the model takes {self.n_features}")
        values = np.ascontiguousarray(X, dtype=self.dtype).ravel()
        missing = bool(np.isnan(values).any())
        node = np.repeat(self.roots, n)  # pair t * n + r: tree t, row r
        row_start = np.tile(np.arange(n, dtype=np.intp) * self.n_features, len(self.roots))
        moving = np.flatnonzero(self.is_split[node])
        while moving.size:
            at = node[moving]
            x = values[row_start[moving] + self.feature[at]]
            # float32 inputs are compared as float64, as C promotes them in scikit-learn's loop;
            # scikit-learn goes left when x <= threshold, or when x is missing and the split
            # learnt to send missing values left
            if missing:
                right = ~((x <= self.threshold[at]) | (np.isnan(x) & self.missing_left[at]))
            else:
                right = x > self.threshold[at]
            at = self.base[at] + right
            node[moving] = at
            moving = moving[self.is_split[at]]
        return self.original[node].reshape(len(self.roots), n)


def _sequential_sum(first: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """``first + terms[0] + terms[1] + ...`` in that order, as scikit-learn's loop adds them."""
    stacked = np.empty((len(terms) + 1, *first.shape), dtype=np.float64)
    stacked[0] = first
    stacked[1:] = terms
    # an accumulation is sequential by definition; a plain sum may be pairwise, depending on
    # which axis NumPy's iterator puts innermost (it does so for a batch of one row)
    return np.add.accumulate(stacked, axis=0)[-1]


def _boosting(model: HistGradientBoostingClassifier) -> Proba | None:
    if model.n_trees_per_iteration_ != 1 or model.is_categorical_ is not None:
        return None  # several classes, or categorical splits: scikit-learn's own path
    nodes = [iteration[0].nodes for iteration in model._predictors]
    forest = _Forest(
        [
            {
                "feature": n["feature_idx"],
                "threshold": n["num_threshold"],
                "missing_left": n["missing_go_to_left"],
                "is_leaf": n["is_leaf"],
                "left": n["left"],
                "right": n["right"],
            }
            for n in nodes
        ],
        model.n_features_in_,
        np.float64,
    )
    leaf_value = np.concatenate([n["value"] for n in nodes]).astype(np.float64)
    baseline = float(model._baseline_prediction.ravel()[0])

    def proba(X: np.ndarray) -> np.ndarray:
        start = np.full(len(X), baseline)
        raw = _sequential_sum(start, leaf_value[forest.leaves(X)])
        out = np.empty((len(X), 2), dtype=np.float64)
        out[:, 1] = expit(raw)
        out[:, 0] = 1 - out[:, 1]
        return out

    return proba


def _trees(model: RandomForestClassifier | ExtraTreesClassifier) -> Proba | None:
    if model.n_outputs_ != 1 or model.n_classes_ != 2:
        return None
    trees = [member.tree_ for member in model.estimators_]
    forest = _Forest(
        [
            {
                "feature": t.feature,
                "threshold": t.threshold,
                "missing_left": t.missing_go_to_left,
                "is_leaf": t.children_left == -1,
                "left": t.children_left,
                "right": t.children_right,
            }
            for t in trees
        ],
        model.n_features_in_,
        np.float32,
    )
    leaf_value = np.concatenate([t.value[:, 0, :] for t in trees]).astype(np.float64)
    n_trees = len(trees)

    def proba(X: np.ndarray) -> np.ndarray:
        total = _sequential_sum(np.zeros((len(X), 2)), leaf_value[forest.leaves(X)])
        total /= n_trees
        return total

    return proba


def _voting(model: VotingClassifier) -> Proba | None:
    if model.voting != "soft" or model.weights is not None:
        return None
    members = [flat_predictor(member) for member in model.estimators_]
    if any(member is None for member in members):
        return None
    parts: list[Proba] = [m for m in members if m is not None]

    def proba(X: np.ndarray) -> np.ndarray:
        return np.average(np.asarray([part(X) for part in parts]), axis=0)  # as scikit-learn

    return proba


def flat_predictor(model: Any) -> Proba | None:
    """``predict_proba`` of a fitted binary tree ensemble, or None for any other model."""
    kind = type(model)
    if kind is HistGradientBoostingClassifier:
        return _boosting(model)
    if kind in (RandomForestClassifier, ExtraTreesClassifier):
        return _trees(model)
    if kind is VotingClassifier:
        return _voting(model)
    return None
