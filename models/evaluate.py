"""Our models on the handbook's protocol, beside its published results.

For each history (the book's own dataset or a seed of our simulator): simulate it, build its
features once (through the worker's feature code), choose each family's hyper-parameters and
training window on validation weeks that end before the test week's training data does, then
fit each family's choice on the days before the delay gap and measure it on the book's test week
(2018-08-08 … 08-14). The same recipes are then refitted before each of the following weeks
(prequential testing): the book's best published rows are means over four such weeks.

Validation never sees the test week: a validation fold is the book's split moved back by
``14 + 7k`` days (fold 0 trains up to 07-17 and validates on 07-25 … 07-31, fold 1 one week
earlier), with the same delay gap and known-card removal as the test. Four folds are the
default, as in the book's model selection (its ``prequential_grid_search`` with ``n_folds=4``):
a choice made on one week was once a 0.002 AP coin toss (seed 2), and four weeks cost a run
about twice the time (40 min instead of 20 on two cores).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.dataset import FeatureSet
from models.history import HistorySpan, Progress, cache_path, load_history
from models.metrics import card_precision_at_k, quality
from models.protocol import BOOK_TEST_START, WEEK_DAYS, Split, protocol_mask, split_before
from models.simulate import TERMINAL_DAYS, TERMINALS_PER_DAY, SimulationConfig
from models.train import CANDIDATES, Period, period_mask
from streamer.features.definitions import LABEL_DELAY_DAYS

__all__ = [
    "METRICS",
    "WINDOWS",
    "Calibration",
    "EvaluationPlan",
    "Recipe",
    "SeedResult",
    "Trial",
    "auc_by_chance",
    "auc_by_detectability",
    "auc_ceiling",
    "best_per_family",
    "check_calibration",
    "detectable",
    "evaluate_seed",
    "fit_recipe",
    "run_split",
    "select",
]

METRICS = ("auc_roc", "average_precision", "card_precision_at_100")
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Recipe:
    """How one model is made: its family, hyper-parameters and training window (days)."""

    candidate: str
    params: Mapping[str, Any]
    train_days: int
    #: when > 0: fit on the window minus these last days, then a sigmoid on them
    calibration_days: int = 0

    def build(self) -> Any:
        return CANDIDATES[self.candidate].build(**self.params)

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        calibrated = f"; sigmoid on last {self.calibration_days} d" if self.calibration_days \
            else ""
        return f"{self.train_days} d; {params}{calibrated}"

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "params": dict(self.params),
                "train_days": self.train_days, "calibration_days": self.calibration_days}


#: Per family, the training windows (days) compared on validation; the hyper-parameter sets
#: are each family's grid in :data:`models.train.CANDIDATES`. For the forest 14 days gave no
#: better AP than 7 at twice the cost; for the ensemble 7 days validated lower.
WINDOWS: dict[str, Sequence[int]] = {
    "logreg": (7, 14),
    "random_forest": (7,),
    "hist_gb": (7, 14),
    "ensemble": (14,),
}


@dataclass(frozen=True)
class EvaluationPlan:
    """What one seed's evaluation computes; the defaults are the handbook's protocol."""

    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    test_start: pd.Timestamp = BOOK_TEST_START
    validation_folds: int = 4
    prequential_weeks: int = 4
    #: refit every family for each prequential week, not only the selected one (slower)
    prequential_all: bool = False
    candidates: Sequence[str] = tuple(WINDOWS)
    delay_days: int = LABEL_DELAY_DAYS

    def validation_splits(self, train_days: int) -> list[Split]:
        """Fold k: the book's split moved back by ``2 × delay + 7k`` days (its training data
        ends where the test's validation week does, so the test week stays unseen)."""
        return [
            split_before(self.test_start - (2 * self.delay_days + WEEK_DAYS * k) * _DAY,
                         train_days=train_days, delay_days=self.delay_days)
            for k in range(self.validation_folds)
        ]

    def test_splits(self, train_days: int) -> list[Split]:
        """The book's split first, then the following weeks (prequential)."""
        return [
            split_before(self.test_start + WEEK_DAYS * k * _DAY, train_days=train_days,
                         delay_days=self.delay_days)
            for k in range(max(1, self.prequential_weeks))
        ]

    def span(self) -> HistorySpan:
        """The days whose features are needed (before warm-up)."""
        longest = max(max(days) for name, days in WINDOWS.items() if name in self.candidates)
        first = min(s.train.start for s in self.validation_splits(longest))
        end = self.test_splits(longest)[-1].test.end
        return HistorySpan(first, end)


@dataclass
class Trial:
    """A recipe's validation metrics, per fold and averaged."""

    recipe: Recipe
    folds: list[dict[str, float]]
    seconds: float
    #: fold 0's validation scores, reused by the calibration check
    scores: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def metrics(self) -> dict[str, float]:
        return {m: float(np.mean([f[m] for f in self.folds])) for m in METRICS}


def _fit(estimator: Any, features: FeatureSet, period: Period) -> Any:
    mask = period_mask(features.frame, period)
    y = features.frame["is_fraud"].to_numpy(dtype=int)[mask]
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"period {period.describe()} has a single class")
    return estimator.fit(features.X[mask], y)


def fit_recipe(recipe: Recipe, features: FeatureSet, train: Period) -> Any:
    """Fit a fresh model of the recipe on the ``train`` days (calibrated on the last ones)."""
    if not recipe.calibration_days:
        return _fit(recipe.build(), features, train)
    head = Period(train.start, train.days - recipe.calibration_days)
    base = _fit(recipe.build(), features, head)
    calibrated = CalibratedClassifierCV(FrozenEstimator(base), method="sigmoid")
    return _fit(calibrated, features, Period(head.end, recipe.calibration_days))


def run_split(
    model: Any, features: FeatureSet, split: Split
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Metrics of a fitted model on a split's test set; also that set's mask and scores."""
    mask = protocol_mask(features.frame, split)
    scores = np.asarray(model.predict_proba(features.X[mask])[:, 1], dtype=float)
    return quality(features.frame[mask], scores), mask, scores


def _recipes(candidates: Sequence[str]) -> Iterator[Recipe]:
    for name in candidates:
        grid, windows = CANDIDATES[name].grid, WINDOWS[name]
        for days in windows:
            for params in grid:
                yield Recipe(name, params, days)


def select(
    features: FeatureSet, plan: EvaluationPlan, *, step: Callable[[int], object] | None = None
) -> list[Trial]:
    """Every recipe of the search space on every validation fold."""
    trials = []
    for recipe in _recipes(plan.candidates):
        started = time.perf_counter()
        folds, kept = [], np.empty(0)
        for k, split in enumerate(plan.validation_splits(recipe.train_days)):
            model = fit_recipe(recipe, features, split.train)
            metrics, _, scores = run_split(model, features, split)
            folds.append(metrics)
            kept = scores if k == 0 else kept
            if step is not None:
                step(1)
        trials.append(Trial(recipe, folds, time.perf_counter() - started, kept))
    return trials


def best_per_family(trials: Sequence[Trial]) -> dict[str, Trial]:
    """Each family's trial with the best mean validation Average Precision."""
    best: dict[str, Trial] = {}
    for trial in trials:
        name = trial.recipe.candidate
        ap = np.nan_to_num(trial.metrics["average_precision"])
        if name not in best or ap > np.nan_to_num(best[name].metrics["average_precision"]):
            best[name] = trial
    return best


@dataclass(frozen=True)
class Calibration:
    """Raw versus calibrated scores of one recipe on the last validation fold.

    Calibrated (``recipe``): the model fitted on its window minus the last days, then a
    sigmoid fitted on those later days (a time-ordered split).
    """

    recipe: Recipe
    brier_raw: float
    brier_calibrated: float
    ap_raw: float
    ap_calibrated: float
    mean_score_raw: float
    mean_score_calibrated: float
    fraud_rate: float

    @property
    def helps(self) -> bool:
        return self.brier_calibrated < self.brier_raw and self.ap_calibrated >= self.ap_raw

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_json(),
            "brier_raw": self.brier_raw, "brier_calibrated": self.brier_calibrated,
            "ap_raw": self.ap_raw, "ap_calibrated": self.ap_calibrated,
            "mean_score_raw": self.mean_score_raw,
            "mean_score_calibrated": self.mean_score_calibrated,
            "fraud_rate": self.fraud_rate, "helps": self.helps,
        }


def check_calibration(
    trial: Trial, features: FeatureSet, split: Split, *, holdout_days: int = 2
) -> Calibration:
    """Does a time-ordered sigmoid calibration improve a trial's recipe on its fold 0?"""
    mask = protocol_mask(features.frame, split)
    y = features.frame["is_fraud"].to_numpy(dtype=int)[mask]
    raw_scores = trial.scores if len(trial.scores) == len(y) else \
        run_split(fit_recipe(trial.recipe, features, split.train), features, split)[2]
    recipe = replace(trial.recipe, calibration_days=holdout_days)
    cal_scores = run_split(fit_recipe(recipe, features, split.train), features, split)[2]
    return Calibration(
        recipe=recipe,
        brier_raw=float(brier_score_loss(y, raw_scores)),
        brier_calibrated=float(brier_score_loss(y, cal_scores)),
        ap_raw=float(average_precision_score(y, raw_scores)),
        ap_calibrated=float(average_precision_score(y, cal_scores)),
        mean_score_raw=float(np.mean(raw_scores)),
        mean_score_calibrated=float(np.mean(cal_scores)),
        fraud_rate=float(np.mean(y)),
    )


@dataclass
class SeedResult:
    """Everything one seed's evaluation measured."""

    seed: str  # the history's name: "book" (the book's own streams) or the fast streams' seed
    transactions: int
    frauds: int
    history: str
    trials: list[Trial]
    chosen: dict[str, Recipe]
    selected: str  # the family with the best validation AP
    calibration: Calibration | None
    #: family -> one metrics dict per test week (:data:`METRICS`, and the AUC ROC split by
    #: :func:`auc_by_detectability`); week 0 is the book's test week (the other
    #: weeks are measured for the selected family, or for all with ``prequential_all``)
    weeks: dict[str, list[dict[str, float]]]
    week_starts: list[str]
    #: per test week, the Card Precision@100 of a perfect ranking (what the week allows)
    ceilings: list[float]
    #: per test week, that of a ranking that finds every detectable fraud and no other
    #: (:func:`detectable`): what delayed labels allow
    detectable_ceilings: list[float]
    #: per test week, the AUC ROC that delayed labels allow (:func:`auc_ceiling`)
    auc_ceilings: list[float]
    seconds: dict[str, float]
    features_cached: bool = False
    #: family -> mean and standard deviation, over :func:`auc_by_chance`'s draws, of its AUC
    #: ROC's mean over its first four test weeks (or as many as it has)
    auc_by_chance: dict[str, tuple[float, float]] = field(default_factory=dict)

    def test(self, family: str) -> dict[str, float]:
        return self.weeks[family][0]

    def prequential(self, family: str) -> dict[str, tuple[float, float]]:
        """Mean and standard deviation over the test weeks, per metric."""
        rows = self.weeks[family]
        out: dict[str, tuple[float, float]] = {}
        for m in METRICS:
            values = [r[m] for r in rows if not math.isnan(r[m])]
            out[m] = (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1
                      else float("nan"))
        return out


def _ceiling(frame: pd.DataFrame, mask: np.ndarray, hits: np.ndarray) -> float:
    """Card Precision@100, on a test set (``mask``), of a ranking that knows the answer: the
    cards with a fraud marked in ``hits`` (every fraud: the week's ceiling; the detectable
    ones: what delayed labels allow)."""
    test = frame[mask].assign(hit=hits[mask])
    return card_precision_at_k(test, hits[mask].astype(float), label="hit")


def auc_ceiling(fraud: np.ndarray, found: np.ndarray) -> float:
    """AUC ROC of a ranking that puts every detectable fraud above every genuine transaction
    and the undetectable ones at random among them: ``(detectable + undetectable / 2) /
    frauds`` on average. What a model's luck does around it is :func:`auc_by_chance`'s."""
    n = int(np.sum(fraud))
    hidden = int(np.sum(fraud & ~found))
    return (n - hidden / 2) / n if n else float("nan")


def auc_by_detectability(
    fraud: np.ndarray, found: np.ndarray, scores: np.ndarray
) -> dict[str, float]:
    """AUC ROC of the detectable frauds against every genuine transaction, and that of the
    undetectable ones.

    Why: the AUC ROC is the mean over frauds of the share of genuine transactions ranked below
    each (ties count half), so it is exactly the fraud-weighted mean of these two. The first is
    what the model controls; the second is what chance gives it, 0.5 on average for any model.
    Together they tell a model's miss from the luck of the week.
    """
    fraud, found = np.asarray(fraud, dtype=bool), np.asarray(found, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    genuine = scores[~fraud]

    def auc(frauds: np.ndarray) -> float:
        if not len(frauds) or not len(genuine):
            return float("nan")
        y = np.r_[np.zeros(len(genuine)), np.ones(len(frauds))]
        return float(roc_auc_score(y, np.r_[genuine, frauds]))

    return {"auc_roc_detectable": auc(scores[fraud & found]),
            "auc_roc_undetectable": auc(scores[fraud & ~found])}


def auc_by_chance(
    frame: pd.DataFrame,
    found: np.ndarray,
    weeks: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    n_terminals: int,
    per_day: int = TERMINALS_PER_DAY,
    replicates: int = 1000,
    seed: int = 0,
    delay_days: int = LABEL_DELAY_DAYS,
    episode_days: int = TERMINAL_DAYS,
) -> np.ndarray:
    """The AUC ROC a model would have had on each test week had other terminals been
    compromised: one row per draw, one column per ``(mask, scores)`` week.

    Why: the undetectable frauds are the first week (one delay) of a few dozen compromised
    terminals. A terminal's transactions share its features, so their ranks move together,
    and how many there are depends on how busy those terminals are: the luck of which
    terminals were picked moves the AUC two to four times as much as independent ranks
    (``sqrt(undetectable / 12) / frauds``) would. So each draw picks the compromised
    terminals again as the simulator does (``per_day`` of the ``n_terminals`` each day), and
    a picked terminal's genuine test transactions from its first one on or after the day of
    the pick, for one delay, stand for the undetectable frauds (a terminal with a compromise
    in the ``episode_days`` before or during that week is skipped: its frauds would be
    detectable or are not genuine). The detectable frauds and the model keep their scores.
    The draws' mean is what the model's AUC is worth on those weeks without that luck; their
    spread is the luck. A unit test checks both against the simulator's own draws.
    """
    fraud = frame["is_fraud"].to_numpy(dtype=bool)
    terminal = pd.factorize(frame["terminal_id"])[0].astype(np.int64)
    day, delay, episode = 86_400, delay_days * 86_400, episode_days * 86_400
    # seconds, shifted so that every window below stays inside its terminal's range of keys
    seconds = (pd.to_datetime(frame["timestamp"], utc=True).dt.tz_convert(None).to_numpy()
               .astype("datetime64[s]").astype(np.int64))
    seconds = seconds - seconds.min() // day * day + episode
    span = int(seconds.max()) + delay + day
    seen = np.arange(int(terminal.max()) + 1)
    if len(seen) > n_terminals:
        raise ValueError(f"{len(seen)} terminals in the history, more than n_terminals "
                         f"({n_terminals})")

    def key(t: np.ndarray, at: np.ndarray | int) -> np.ndarray:
        return t * span + at

    keyed = key(terminal, seconds)
    everything = np.sort(keyed)
    compromised = np.sort(keyed[frame["fraud_scenario"].to_numpy() == 2])
    # per week: the genuine test transactions in (terminal, time) order with the running sum
    # of their share of genuine ones ranked below (ties half); the detectable frauds' shares
    keys, sums = [], []
    found_sums, found_counts = np.zeros(len(weeks)), np.zeros(len(weeks))
    tested = np.zeros(len(frame), dtype=bool)
    for w, (mask, scores) in enumerate(weeks):
        rows = np.flatnonzero(mask)
        is_fraud = fraud[rows]
        genuine = np.sort(scores[~is_fraud])
        share = (np.searchsorted(genuine, scores, "left")
                 + np.searchsorted(genuine, scores, "right")) / (2 * len(genuine))
        found_sums[w] = share[is_fraud & found[rows]].sum()
        found_counts[w] = np.sum(is_fraud & found[rows])
        tested[rows] = True
        genuine_keys = keyed[rows[~is_fraud]]
        order = np.argsort(genuine_keys, kind="stable")
        keys.append(genuine_keys[order])
        sums.append(np.r_[0.0, np.cumsum(share[~is_fraud][order])])

    # per pick day (from one delay before the first test day) and terminal: what its
    # undetectable frauds would add to each week, as a sum of shares and a count
    first_day = int(seconds[tested].min()) // day - delay_days
    days = range(first_day, int(seconds[tested].max()) // day + 1)
    added_sums = np.zeros((len(weeks), len(days), n_terminals))
    added_counts = np.zeros((len(weeks), len(days), n_terminals))
    for i, d in enumerate(days):
        at = np.searchsorted(everything, key(seen, d * day))
        start = everything[np.minimum(at, len(everything) - 1)] - seen * span
        used = (at < len(everything)) & (start < span)  # a transaction on or after the pick
        clean = (np.searchsorted(compromised, key(seen, start - episode))
                 == np.searchsorted(compromised, key(seen, start + delay)))
        t = seen[used & clean]
        for w, (k, running) in enumerate(zip(keys, sums, strict=True)):
            lo = np.searchsorted(k, key(t, start[t]))
            hi = np.searchsorted(k, key(t, start[t] + delay))
            added_sums[w, i, t] = running[hi] - running[lo]
            added_counts[w, i, t] = hi - lo

    picks = np.random.default_rng(seed).integers(n_terminals, size=(replicates, len(days),
                                                                     per_day))
    on_day = np.arange(len(days))[None, :, None]
    hidden_sums = np.stack([a[on_day, picks].sum(axis=(1, 2)) for a in added_sums], axis=1)
    hidden_counts = np.stack([a[on_day, picks].sum(axis=(1, 2)) for a in added_counts], axis=1)
    with np.errstate(invalid="ignore"):
        return (found_sums + hidden_sums) / (found_counts + hidden_counts)


def detectable(
    frame: pd.DataFrame, *, delay_days: int = LABEL_DELAY_DAYS, episode_days: int = TERMINAL_DAYS
) -> np.ndarray:
    """Per row: a fraud that some feature could reveal at its time, given delayed labels.

    A compromised terminal (scenario 2) changes nothing in its transactions; only its labels,
    reported one delay later, give it away. So a scenario-2 fraud is undetectable while its
    terminal's current episode (its scenario-2 frauds of the last ``episode_days``) began less
    than one delay earlier: no label of that episode is known yet. Every other fraud is counted
    as detectable (scenario 1 by its amount, scenario 3 by the card's own spending).
    """
    fraud = frame["is_fraud"].to_numpy(dtype=bool)
    out = fraud.copy()
    s2 = np.flatnonzero(frame["fraud_scenario"].to_numpy() == 2)
    if len(s2) == 0:
        return out
    ts = pd.to_datetime(frame["timestamp"], utc=True).to_numpy()[s2]
    terminal = frame["terminal_id"].to_numpy()[s2]
    order = np.lexsort((ts, terminal))
    ts, terminal, rows = ts[order], terminal[order], s2[order]
    episode = np.timedelta64(episode_days, "D")
    delay = np.timedelta64(delay_days, "D")
    first = 0
    for i in range(len(rows)):
        if i == 0 or terminal[i] != terminal[i - 1]:
            first = i
        while ts[first] <= ts[i] - episode:
            first += 1
        out[rows[i]] = ts[i] - ts[first] >= delay
    return out


@contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


def evaluate_seed(
    plan: EvaluationPlan,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    log: Callable[[str], object] = lambda _: None,
) -> SeedResult:
    """Select on validation, test on the book's week and the following ones, for one seed."""
    seconds: dict[str, float] = {}
    span = plan.span()
    cached = cache_dir is not None and cache_path(plan.simulation, span, cache_dir).is_file()
    with _timed(seconds, "features"):
        features = load_history(plan.simulation, span, cache_dir=cache_dir, progress=progress)
    used = features.frame["timestamp"] >= span.first_used
    log(f"history {plan.simulation.name}: {int(used.sum()):,} transactions used from "
        f"{span.first_used:%Y-%m-%d}, replayed from {span.replay_start:%Y-%m-%d}"
        f"{' (features from the cache)' if cached else ''}")

    n_fits = sum(1 for _ in _recipes(plan.candidates)) * plan.validation_folds
    with _timed(seconds, "selection"):
        step = progress("validation fits", n_fits) if progress else None
        trials = select(features, plan, step=step)
    best = best_per_family(trials)
    chosen = {name: trial.recipe for name, trial in best.items()}
    selected = max(best, key=lambda n: np.nan_to_num(best[n].metrics["average_precision"]))
    for name, trial in best.items():
        log(f"  {name:<14} {trial.recipe.describe():<60} validation AP "
            f"{trial.metrics['average_precision']:.3f}")

    with _timed(seconds, "calibration"):
        last_fold = plan.validation_splits(chosen[selected].train_days)[0]
        calibration = check_calibration(best[selected], features, last_fold)
    log(f"  calibration of {selected}: Brier {calibration.brier_raw:.5f} → "
        f"{calibration.brier_calibrated:.5f}, AP {calibration.ap_raw:.3f} → "
        f"{calibration.ap_calibrated:.3f}: {'apply' if calibration.helps else 'skip'}")
    if calibration.helps:
        chosen[selected] = calibration.recipe

    weeks: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    chance: dict[str, tuple[float, float]] = {}
    fraud = features.frame["is_fraud"].to_numpy(dtype=bool)
    found = detectable(features.frame)
    n_weeks = len(plan.test_splits(7))
    with _timed(seconds, "test"):
        n_fits = n_weeks * len(chosen) if plan.prequential_all else n_weeks + len(chosen) - 1
        step = progress("test fits", n_fits) if progress else None
        for name, recipe in chosen.items():
            splits = plan.test_splits(recipe.train_days)
            scored = []
            for split in splits if plan.prequential_all or name == selected else splits[:1]:
                model = fit_recipe(recipe, features, split.train)
                metrics, mask, scores = run_split(model, features, split)
                weeks[name].append({**metrics, **auc_by_detectability(fraud[mask], found[mask],
                                                                      scores)})
                scored.append((mask, scores))
                if step is not None:
                    step(1)
            draws = auc_by_chance(features.frame, found, scored,
                                  n_terminals=plan.simulation.n_terminals)
            for week, column in zip(weeks[name], draws.T, strict=True):
                week["auc_roc_by_chance"] = float(np.mean(column))
                week["auc_roc_by_chance_std"] = float(np.std(column))
            four = draws[:, :4].mean(axis=1)
            chance[name] = (float(np.mean(four)), float(np.std(four)))
    frame = features.frame[features.frame["timestamp"] >= span.first_used]
    weeks_masks = [protocol_mask(features.frame, s) for s in plan.test_splits(7)]
    return SeedResult(
        seed=plan.simulation.name,
        transactions=len(frame),
        frauds=int(frame["is_fraud"].sum()),
        history=span.describe(),
        trials=trials,
        chosen=chosen,
        selected=selected,
        calibration=calibration,
        weeks=weeks,
        week_starts=[f"{s.test.start:%Y-%m-%d}" for s in plan.test_splits(7)],
        ceilings=[_ceiling(features.frame, m, fraud) for m in weeks_masks],
        detectable_ceilings=[_ceiling(features.frame, m, found) for m in weeks_masks],
        auc_ceilings=[auc_ceiling(fraud[m], found[m]) for m in weeks_masks],
        auc_by_chance=chance,
        seconds=seconds,
        features_cached=cached,
    )
