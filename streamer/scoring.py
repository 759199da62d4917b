"""Model scoring and its explanations: one ``predict_proba`` per batch.

Explanations are computed by *neutralisation*: for a flagged row, each feature in turn is set to
its baseline (a typical genuine transaction's value, stored in the model's manifest) and the row
is re-scored; the features whose neutralisation lowers the score most are the reasons. It works
for any model, and it is faithful by construction — the reason named first is the one whose
removal lowers the score most. All flagged rows of a batch are explained in one extra call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.registry import LoadedModel, Manifest, RegistryError
from streamer.features.definitions import FEATURE_NAMES, FEATURES
from streamer.flat_trees import flat_predictor

__all__ = [
    "FLAT_MAX_ROWS",
    "Contribution",
    "Scorer",
    "check_features",
    "fitted_parts",
    "one_thread",
]

#: batches up to this size go through :mod:`streamer.flat_trees` (the same results). Measured
#: on one thread: 3-30x faster for the booster on 1-50 rows, 8-70x for the forest, 5-35x for
#: the ensemble; scikit-learn's tree-by-tree loop catches up at about 500 rows (the booster;
#: 1.5x slower at 200 rows).
FLAT_MAX_ROWS = 200

#: the largest magnitude a model is given (see :meth:`Scorer.model_inputs`): scikit-learn's
#: trees work in float32, and a feature beyond it reaches them as infinite
MODEL_INPUT_MAX = float(np.finfo(np.float32).max)


def fitted_parts(estimator: Any) -> Iterator[Any]:
    """The estimator and every fitted model it predicts with (pipeline steps, ensemble members).

    ``get_params`` is no guide here: an ensemble's parameters are its unfitted templates, and
    it predicts with the fitted clones in ``estimators_``.
    """
    yield estimator
    for _, step in getattr(estimator, "steps", ()):
        yield from fitted_parts(step)
    members = getattr(estimator, "estimators_", None)
    if isinstance(members, list):
        for member in members:
            if not hasattr(member, "tree_"):  # a forest's trees run on the forest's threads
                yield from fitted_parts(member)


def one_thread(estimator: Any) -> None:
    """Predict on the calling thread: a thread pool per call (random forests train with
    ``n_jobs=-1``) costs tens of milliseconds on the small batches of live traffic."""
    for part in fitted_parts(estimator):
        if hasattr(part, "n_jobs"):
            part.n_jobs = 1


@dataclass(frozen=True, slots=True)
class Contribution:
    """A feature that pushed a score up: its index, value and baseline, and how much lower the
    score is with that one feature at its baseline (``delta``: the score minus ``without``)."""

    index: int
    value: float
    baseline: float
    delta: float
    without: float

    @property
    def code(self) -> str:
        return FEATURES[self.index].name

    def describe(self) -> str:
        """The reason in words an analyst reads.

        It gives the score the row would have with this feature alone at its typical value,
        not a share of the score: the features of a tree ensemble act together, so each of
        two amount ratios may alone take a 0.80 down to 0.01, and "+0.79 to the score" twice
        read as if the parts added up to more than the whole.
        """
        feature = FEATURES[self.index]
        return (
            f"{feature.description}: {_number(feature.unit, self.value)} "
            f"(typical {_number(feature.unit, self.baseline)}; the score would be "
            f"{self.without:.2f} with the typical value)"
        )


def _number(unit: str, value: float) -> str:
    """A value in its unit, in six significant digits when its fixed-point form would be too
    long, as the amount rule writes it: a reason has room for 256 characters, and any finite
    amount is valid, so a feature computed from one is unbounded too (1e200 EUR on a card whose
    median is 50 is 2e198 times it). Before 2026-12-04 only the amounts' unit was shortened: a
    ratio that large made a reason longer than the schema allows, which failed its batch each
    time it was read again and stopped the worker there."""
    if abs(value) < 1e15:
        return unit.format(value)
    match = _UNIT.fullmatch(unit)
    if match is None:  # a unit of another form: the number alone
        return f"{value:.6g}"
    kind, suffix = match.groups()
    if kind == "%":
        return f"{value * 100:.6g}%{suffix}"
    return f"{value:.6g}{suffix}"


#: a feature's unit: a fixed-point or percent format, then what follows the number ("x", " h")
_UNIT = re.compile(r"\{:\.\d+([f%])\}(.*)")


def check_features(manifest: Manifest) -> None:
    """Refuse (:class:`RegistryError`) a model trained on other features than this worker
    computes: the worker checks this before it starts, and again when it loads a model."""
    if tuple(manifest.features) != FEATURE_NAMES:
        raise RegistryError(
            f"model {manifest.version} expects features {manifest.features}, but this "
            f"worker computes {list(FEATURE_NAMES)}: retrain with `fraud-streamer train`"
        )


class Scorer:
    """A loaded model bound to this worker's feature order."""

    def __init__(self, model: LoadedModel, *, flat: bool = True) -> None:
        manifest = model.manifest
        check_features(manifest)
        self.model = model
        self.version = manifest.version
        self._estimator = model.estimator
        one_thread(self._estimator)
        # None: not a tree ensemble it reproduces, or turned off (scikit-learn's call only)
        self._flat = flat_predictor(self._estimator) if flat else None
        baseline = manifest.baseline or [0.0] * len(FEATURE_NAMES)
        self.baseline = np.asarray(baseline, dtype=np.float64)

    def model_inputs(self, features: np.ndarray) -> np.ndarray:
        """The rows as the model scores and explains them: a feature that could not be known
        (NaN: an amount in a currency without an exchange rate, and what is computed from it)
        takes its baseline, a typical genuine transaction's value.

        Read as a number in the model's currency, 600 JPY would be 600 EUR, far above what the
        book's frauds start at: nearly every such transaction was declined. With its baseline,
        the unknown amount neither raises nor lowers the score (nor is named in the reasons,
        whose neutralisation sets it to that same value): the transaction is scored on what is
        known, the card's and the terminal's histories, and reviewed at least.

        A value beyond float32's range (an amount of 1e39 is valid on the wire; a card's sum
        of two 1e308 ones is infinite) is given as the largest float32 of its sign:
        scikit-learn's trees compare in float32 and refuse such a row with an error, which
        would stop the worker at that transaction each time it is read again.
        """
        unknown = np.isnan(features)
        huge = np.abs(features) > MODEL_INPUT_MAX
        if not unknown.any() and not huge.any():
            return features
        known = np.where(unknown, self.baseline, features)
        return np.clip(known, -MODEL_INPUT_MAX, MODEL_INPUT_MAX)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Fraud probability per row, of its :meth:`model_inputs` (a model given NaN would
        either refuse it or, as scikit-learn's boosting does, read it as a value of its own)."""
        return self.score_inputs(self.model_inputs(features))

    def score_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """:meth:`score` of rows that are :meth:`model_inputs` already: for callers that
        keep them (the feature log, the drift watch), so that they are not made twice."""
        if len(inputs) == 0:
            return np.empty(0, dtype=np.float64)
        if self._flat is not None and len(inputs) <= FLAT_MAX_ROWS:
            proba = self._flat(inputs)[:, 1]
        else:
            proba = self._estimator.predict_proba(inputs)[:, 1]
        return np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)

    def explain(
        self, features: np.ndarray, scores: np.ndarray, top_k: int
    ) -> list[list[Contribution]]:
        """For each row, up to ``top_k`` features whose neutralisation lowers its score.

        ``features`` are the rows as computed (NaN where not known): a reason shows a value as
        it is, however large, and an unknown one as the typical value the model was given.
        """
        n, f = features.shape
        if n == 0:
            return []
        inputs = self.model_inputs(features)
        shown = np.where(np.isnan(features), inputs, features)
        # row r, feature j -> a copy of row r with feature j set to its baseline: model inputs
        # if the rows are (a baseline is one), so the n x f probes are not checked again
        probes = np.repeat(inputs, f, axis=0)
        cols = np.tile(np.arange(f), n)
        probes[np.arange(n * f), cols] = self.baseline[cols]
        probed = self.score_inputs(probes).reshape(n, f)
        drops = scores[:, None] - probed
        out: list[list[Contribution]] = []
        for r in range(n):
            order = np.argsort(-drops[r], kind="stable")[:top_k]
            out.append(
                [
                    Contribution(
                        int(j),
                        float(shown[r, j]),
                        float(self.baseline[j]),
                        float(drops[r, j]),
                        float(probed[r, j]),
                    )
                    for j in order
                    if drops[r, j] > 1e-6
                ]
            )
        return out
