"""The evaluation protocol's pieces: split dates, known-card removal, warm-up and the run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from models.dataset import build_features
from models.evaluate import (
    EvaluationPlan,
    SeedResult,
    auc_by_chance,
    auc_by_detectability,
    auc_ceiling,
    detectable,
    evaluate_seed,
)
from models.history import HistorySpan, load_history
from models.protocol import BOOK_TEST_START, known_compromised, protocol_mask, split_before
from models.report import GOAL, console_table, render_markdown, report_json
from models.simulate import SimulationConfig, simulate
from streamer.cli import cli
from streamer.features.definitions import FEATURE_NAMES


def _day(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_the_book_split() -> None:
    split = split_before(BOOK_TEST_START)
    assert split.train.describe() == "2018-07-25..2018-07-31"
    assert split.test.describe() == "2018-08-08..2018-08-14"
    assert split.reference == split.train


def test_a_longer_training_window_keeps_the_books_reference_week() -> None:
    split = split_before(BOOK_TEST_START, train_days=21)
    assert split.train.describe() == "2018-07-11..2018-07-31"
    assert split.reference.describe() == "2018-07-25..2018-07-31"
    assert split.test.describe() == "2018-08-08..2018-08-14"


def test_validation_folds_end_before_the_test_training_data() -> None:
    plan = EvaluationPlan(validation_folds=2, prequential_weeks=4)
    fold0, fold1 = plan.validation_splits(7)
    assert fold0.train.describe() == "2018-07-11..2018-07-17"
    assert fold0.test.describe() == "2018-07-25..2018-07-31"
    assert fold1.train.describe() == "2018-07-04..2018-07-10"
    assert fold1.test.describe() == "2018-07-18..2018-07-24"
    for split in plan.validation_splits(14):
        assert split.test.end <= split_before(BOOK_TEST_START).train.end
    weeks = [s.test.describe() for s in plan.test_splits(7)]
    assert weeks == ["2018-08-08..2018-08-14", "2018-08-15..2018-08-21",
                     "2018-08-22..2018-08-28", "2018-08-29..2018-09-04"]
    span = plan.span()
    assert f"{span.end:%Y-%m-%d}" == "2018-09-05"
    # where the earliest fold (the second) starts its longest training window (14 days)
    assert f"{span.first_used:%Y-%m-%d}" == "2018-06-27"


def _known_frame() -> pd.DataFrame:
    rows = [
        # card, time, fraud
        ("a", "2018-07-26T10:00:00Z", True),   # fraud in the training week: known all week
        ("b", "2018-07-20T10:00:00Z", True),   # before the training week: the book ignores it
        ("c", "2018-08-03T10:00:00Z", True),   # in the gap: reported 08-10, known from 08-11
        ("f", "2018-08-01T00:00:00Z", True),   # first second of the gap: known from 08-09
        ("d", "2018-08-09T10:00:00Z", True),   # a fraud in the test week stays in it
        ("e", "2018-07-27T10:00:00Z", False),  # genuine only
    ]
    for card in "abcdef":
        for day in range(8, 15):
            rows.append((card, f"2018-08-{day:02d}T09:00:00Z", False))
    return pd.DataFrame(
        {"customer_id": [r[0] for r in rows],
         "timestamp": pd.to_datetime([r[1] for r in rows], utc=True),
         "is_fraud": [r[2] for r in rows]}
    )


def test_known_compromised_cards_follow_the_books_definition() -> None:
    frame = _known_frame()
    split = split_before(BOOK_TEST_START)
    keep = protocol_mask(frame, split)
    kept = frame[keep]
    days = {card: sorted(g["timestamp"].dt.day) for card, g in kept.groupby("customer_id")}
    assert "a" not in days
    assert days["b"] == list(range(8, 15))
    assert days["c"] == [8, 9, 10]
    assert days["f"] == [8]
    assert days["d"] == [8, 9, 9, 10, 11, 12, 13, 14]
    assert days["e"] == list(range(8, 15))
    assert not keep[~frame["timestamp"].between(_day("2018-08-08"), _day("2018-08-15"))].any()


def test_known_cards_do_not_depend_on_the_training_window() -> None:
    frame = _known_frame()
    seven = known_compromised(frame, split_before(BOOK_TEST_START))
    longer = known_compromised(frame, split_before(BOOK_TEST_START, train_days=28))
    np.testing.assert_array_equal(seven, longer)


TINY = SimulationConfig(n_customers=200, n_terminals=400, n_days=80, seed=4)


def test_replaying_from_the_warm_up_gives_the_full_replays_features(tmp_path: Path) -> None:
    start = _day(TINY.start_date)
    span = HistorySpan(start + pd.Timedelta(days=50), start + pd.Timedelta(days=80))
    assert span.replay_start == start + pd.Timedelta(days=13)
    part = load_history(TINY, span, cache_dir=tmp_path)
    full = build_features(simulate(TINY))
    used_part = (part.frame["timestamp"] >= span.first_used).to_numpy()
    used_full = (full.frame["timestamp"] >= span.first_used).to_numpy()
    assert used_part.sum() == used_full.sum() > 1000
    assert list(part.frame["transaction_id"][used_part]) == \
        list(full.frame["transaction_id"][used_full])
    # equal up to rounding: the store's window sums are differences of running totals, which
    # start from a different row when the replay does
    np.testing.assert_allclose(part.X[used_part], full.X[used_full], rtol=1e-9, atol=1e-9)
    cached = load_history(TINY, span, cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("*.parquet")
    assert cache_file.name.startswith("seed4_2018-04-14..2018-06-19_")
    np.testing.assert_array_equal(cached.X, part.X)
    assert list(cached.frame["transaction_id"]) == list(part.frame["transaction_id"])
    # a cache file cut short is a miss: built again, and replaced
    cache_file.write_bytes(cache_file.read_bytes()[:100])
    again = load_history(TINY, span, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.X, part.X)
    np.testing.assert_array_equal(load_history(TINY, span, cache_dir=tmp_path).X, part.X)


def test_a_span_outside_the_simulation_is_refused() -> None:
    start = _day(TINY.start_date)
    with pytest.raises(ValueError, match="falls outside the simulated"):
        load_history(TINY, HistorySpan(start + pd.Timedelta(days=10),
                                       start + pd.Timedelta(days=60)))


@pytest.fixture(scope="module")
def small_run() -> SeedResult:
    """The whole protocol on a small history (logistic regression only, to stay fast)."""
    config = SimulationConfig(n_customers=300, n_terminals=600, n_days=110, seed=5)
    plan = EvaluationPlan(simulation=config, test_start=_day("2018-07-01"), validation_folds=1,
                          prequential_weeks=2, candidates=("logreg",))
    return evaluate_seed(plan)


def test_a_small_run_selects_tests_and_reports(small_run: SeedResult) -> None:
    r = small_run
    assert r.week_starts == ["2018-07-01", "2018-07-08"]
    assert len(r.trials) == 4  # 2 C values x 2 training windows, one fold each
    # the recipe with the best validation Average Precision, calibrated or not
    best = max(r.trials, key=lambda t: t.metrics["average_precision"])
    assert replace(r.chosen["logreg"], calibration_days=0) == best.recipe
    assert len({t.metrics["average_precision"] for t in r.trials}) > 1  # a real choice
    for week in r.weeks["logreg"]:
        assert 0.5 < week["auc_roc"] <= 1 and 0 < week["average_precision"] <= 1
        assert 0 <= week["card_precision_at_100"] <= 1
    mean, std = r.prequential("logreg")["auc_roc"]
    assert mean == pytest.approx(np.mean([w["auc_roc"] for w in r.weeks["logreg"]]))
    assert std == pytest.approx(np.std([w["auc_roc"] for w in r.weeks["logreg"]], ddof=1))
    assert r.calibration is not None and r.calibration.brier_raw > 0


def test_the_report_shows_the_book_beside_ours(small_run: SeedResult) -> None:
    plan = EvaluationPlan(prequential_weeks=2, candidates=("logreg",))
    text = render_markdown([small_run], plan, command="fraud-streamer evaluate", seconds=60)
    assert ("| book: best of the imbalanced-learning and deep-learning chapters (mean of 4 test "
            "weeks) | 0.879 |") in text
    assert "| ours: logreg |" in text and "## Prequential" in text
    assert "## Against the book's best row" in text
    assert f"Features (the {len(FEATURE_NAMES)} of" in text
    data = json.loads(json.dumps(report_json([small_run], plan, command="x", seconds=1)))
    assert data["goal"]["average_precision"] == GOAL.average_precision == 0.687
    assert data["goal"]["basis"] == "mean of 4 test weeks"
    weeks = data["histories"][0]["models"]["logreg"]["prequential"]["weeks"]
    assert weeks[1]["test_start"] == "2018-07-08"
    assert 0 <= weeks[0]["card_precision_at_100_detectable_ceiling"] <= \
        weeks[0]["card_precision_at_100_ceiling"]
    assert 0.5 <= weeks[0]["auc_roc_detectable_ceiling"] <= 1
    assert 0.5 <= weeks[0]["auc_roc_by_chance"] <= 1 and weeks[0]["auc_roc_by_chance_std"] > 0
    assert data["histories"][0]["models"]["logreg"]["prequential"]["auc_roc_by_chance"][
        "std"] > 0
    assert "| AUC ROC expected ± luck |" in text
    assert 0.5 < weeks[0]["auc_roc_detectable"] <= 1
    assert "| AUC on detectable / undetectable frauds |" in text
    # two test weeks only: the comparison is on the single test week
    (against,) = data["against_goal"]
    assert against["history"] == "5" and against["basis"] == "test week"
    assert "0.879" in console_table([small_run])


def test_a_compromised_terminals_frauds_are_detectable_one_delay_into_its_episode() -> None:
    day = pd.Timedelta(days=1)
    start = _day("2018-05-01")
    rows = [  # (terminal, day, scenario)
        ("t-1", 0, 2), ("t-1", 3, 2), ("t-1", 6, 2), ("t-1", 7, 2), ("t-1", 20, 2),
        ("t-1", 50, 2),  # a new episode: the last one's frauds are over 28 days old
        ("t-2", 1, 3), ("t-2", 2, 1), ("t-2", 2, 0),
    ]
    frame = pd.DataFrame({
        "terminal_id": [t for t, _, _ in rows],
        "timestamp": [start + d * day for _, d, _ in rows],
        "fraud_scenario": [s for _, _, s in rows],
        "is_fraud": [s > 0 for _, _, s in rows],
    })
    assert detectable(frame).tolist() == [False, False, False, True, True, False,
                                          True, True, False]


def test_the_book_is_beaten_only_at_its_own_precision() -> None:
    from models.report import _above

    assert not _above(0.3054, "card_precision_at_100")  # ties the book's 0.305
    assert _above(0.3056, "card_precision_at_100")
    assert not _above(0.8789, "auc_roc") and _above(0.8796, "auc_roc")


def test_the_auc_ceiling_is_what_chance_gives_a_ranking_that_finds_every_detectable_fraud() -> None:
    rng = np.random.default_rng(7)
    fraud = np.zeros(5_000, dtype=bool)
    fraud[:120] = True
    found = fraud.copy()
    found[:40] = False  # 40 frauds no feature reveals
    expected = auc_ceiling(fraud, found)
    assert expected == pytest.approx((80 + 40 / 2) / 120)
    # detectable frauds first; the rest, undetectable frauds among them, in random order
    aucs = [roc_auc_score(fraud, np.where(found, 2.0, rng.random(len(fraud))))
            for _ in range(400)]
    assert np.mean(aucs) == pytest.approx(expected, abs=0.002)


def _weeks(frame: pd.DataFrame, first: pd.Timestamp, n: int) -> list[np.ndarray]:
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    return [((ts >= first + pd.Timedelta(days=7 * k)) & (ts < first + pd.Timedelta(days=7 * k + 7)))
            .to_numpy() for k in range(n)]


def test_the_auc_by_chance_draws_the_luck_the_simulator_gives() -> None:
    """On histories of the simulator itself, the AUC a model gets is one of the draws:
    standardised by their mean and spread, it averages 0 with a spread of 1. The model here
    scores by terminal (every genuine and undetectable transaction of a terminal alike,
    nearly), the detectable frauds above everything."""
    z, ratios = [], []
    for seed in range(20):
        config = SimulationConfig(n_customers=1_000, n_terminals=2_000, n_days=63, seed=seed)
        frame = simulate(config)
        found = detectable(frame)
        fraud = frame["is_fraud"].to_numpy(dtype=bool)
        rng = np.random.default_rng(seed)
        level = rng.random(config.n_terminals)
        terminal = frame["terminal_id"].str.slice(2).astype(int).to_numpy()
        scores = np.where(found, 2.0, level[terminal]) + 0.1 * rng.random(len(frame))
        weeks = _weeks(frame, _day(config.start_date) + pd.Timedelta(days=35), 4)
        realized = np.mean([roc_auc_score(fraud[m], scores[m]) for m in weeks])
        draws = auc_by_chance(frame, found, [(m, scores[m]) for m in weeks],
                              n_terminals=config.n_terminals).mean(axis=1)
        z.append((realized - draws.mean()) / draws.std())
        frauds = np.mean([fraud[m].sum() for m in weeks])
        hidden = np.mean([(fraud & ~found)[m].sum() for m in weeks])
        ratios.append(draws.std() / (np.sqrt(hidden / 12) / frauds / 2))
    assert abs(np.mean(z)) < 3 / np.sqrt(len(z))
    assert 0.6 < np.std(z) < 1.5
    # far more than the spread of independent ranks, 1/12 each (four weeks: half a week's)
    assert np.mean(ratios) > 2


def _two_terminals(compromised_day: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Terminal t-1, compromised on ``compromised_day``, and t-2: each with a genuine
    transaction at noon on days 10-16 (t-1's score 0.9, t-2's 0.2), and a detectable fraud
    at t-2 on day 12 (score 2)."""
    start = _day("2018-04-01")
    rows = [("t-1", compromised_day, 2, 0.5), ("t-2", 12.5, 1, 2.0)]
    rows += [(t, d + 0.5, 0, s) for t, s in (("t-1", 0.9), ("t-2", 0.2)) for d in range(10, 17)]
    frame = pd.DataFrame({
        "terminal_id": [r[0] for r in rows],
        "timestamp": [start + pd.Timedelta(days=r[1]) for r in rows],
        "fraud_scenario": [r[2] for r in rows],
        "is_fraud": [r[2] > 0 for r in rows],
    })
    scores = np.array([r[3] for r in rows])
    return frame, frame["fraud_scenario"].to_numpy() == 1, scores


@pytest.mark.parametrize(("compromised_day", "stands_in"), [(0, False), (-30, True)])
def test_a_terminal_compromised_in_the_episode_before_never_stands_for_a_fresh_one(
    compromised_day: int, stands_in: bool
) -> None:
    frame, found, scores = _two_terminals(compromised_day)
    (week,) = _weeks(frame, _day("2018-04-11"), 1)
    draws = auc_by_chance(frame, found, [(week, scores[week])], n_terminals=2, per_day=1)
    # t-2's 7 genuine transactions tie at the bottom of the 14 (each ranks above 7 / 2 of
    # them: ties count half), t-1's rank above t-2's; a terminal picked on several days
    # counts its transactions once for each pick
    share = 7 / 2 / 14
    t2_only = {round((1 + k * share) / (1 + k), 12) for k in range(200)}
    assert ({round(a, 12) for a in draws[:, 0]} <= t2_only) is not stands_in
    assert draws.std() > 0


def test_the_auc_is_the_fraud_weighted_mean_of_its_detectable_and_undetectable_parts() -> None:
    rng = np.random.default_rng(11)
    fraud = rng.random(4_000) < 0.05
    found = fraud & (rng.random(4_000) < 0.7)
    # detectable frauds score high, the others like genuine transactions; ties included
    scores = np.round(np.where(found, rng.random(4_000) + 0.6, rng.random(4_000)), 2)
    parts = auc_by_detectability(fraud, found, scores)
    n_found, n_hidden = int(found.sum()), int((fraud & ~found).sum())
    weighted = (n_found * parts["auc_roc_detectable"]
                + n_hidden * parts["auc_roc_undetectable"]) / (n_found + n_hidden)
    assert weighted == pytest.approx(roc_auc_score(fraud, scores), abs=1e-12)
    assert parts["auc_roc_detectable"] > 0.9
    assert parts["auc_roc_undetectable"] == pytest.approx(0.5, abs=0.08)


def test_the_auc_split_is_undefined_without_frauds_of_a_kind() -> None:
    fraud = np.array([True, False, False])
    parts = auc_by_detectability(fraud, fraud, np.array([0.9, 0.1, 0.2]))
    assert parts["auc_roc_detectable"] == 1.0
    assert np.isnan(parts["auc_roc_undetectable"])


def test_more_test_weeks_than_the_history_holds_is_refused_before_any_work(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from streamer.cli.evaluate import evaluate

    args = ["--seeds", "0", "--weeks", "8", "--out", str(tmp_path)]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 2, result.output
    assert "falls outside the simulated 2018-04-01..2018-09-30: lower --weeks or --folds" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_a_cache_dir_it_cannot_write_is_named_before_any_work(tmp_path: Path) -> None:
    """Its features are written after minutes of building them: said at once instead."""
    (tmp_path / "file").write_text("not a directory")
    cache = tmp_path / "file" / "cache"
    result = CliRunner().invoke(
        cli, ["evaluate", "--out", str(tmp_path / "out"), "--cache-dir", str(cache)]
    )
    assert result.exit_code == 1, result.output
    assert f"Error: cannot write {cache / 'features.parquet'}: " in result.output
