"""``score-batch`` decides a file as the worker would: same features, scores and rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

import models.simulate
from models.batch import DECISION_COLUMNS, TRANSACTION_COLUMNS, read_labels, read_transactions
from models.dataset import build_features, feature_events, labels_from_simulation
from models.registry import Manifest, ModelRegistry
from schemas import Reason, Transaction
from streamer.cli import cli
from streamer.currency import Currencies
from streamer.features.definitions import calendar_flags
from streamer.features.memory import InMemoryFeatureStore
from streamer.pipeline import feature_event
from streamer.scoring import Scorer

EUR = Currencies()  # what the files here are written in

DAYS = 40


@pytest.fixture(scope="module")
def history(small_history: pd.DataFrame) -> pd.DataFrame:
    """The first 40 days of the small history, with the Transaction columns only."""
    end = small_history["timestamp"].min().floor("D") + pd.Timedelta(days=DAYS)
    return small_history[small_history["timestamp"] < end].reset_index(drop=True)


@pytest.fixture
def promoted(registry: ModelRegistry, add_version: Callable[..., Manifest]) -> ModelRegistry:
    add_version("small-1")
    registry.promote("small-1")
    return registry


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        out = frame.copy()
        for column in ("timestamp", "tx_timestamp", "reported_at"):
            if column in out:
                out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["score-batch", *args])


def _expected(registry: ModelRegistry, tx: pd.DataFrame, labels: pd.DataFrame | None) -> pd.Series:
    features = build_features(tx[list(TRANSACTION_COLUMNS)], labels)
    scores = Scorer(registry.load()).score(features.X)
    return pd.Series(scores, index=features.frame["transaction_id"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_one_decision_per_transaction_with_the_models_scores(
    promoted: ModelRegistry, history: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    tx = history[list(TRANSACTION_COLUMNS)].sample(frac=1.0, random_state=0)  # any input order
    source = _write(tx, tmp_path / f"tx{suffix}")
    out = tmp_path / "out" / f"decisions{suffix}"
    result = _run(str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"{len(tx):,} decisions by model small-1" in result.output
    decisions = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(decisions.columns) == list(DECISION_COLUMNS)
    assert list(decisions["transaction_id"]) == list(tx["transaction_id"])  # input order
    assert set(decisions["decision"]) <= {"approve", "review", "decline"}
    assert {"review", "decline"} & set(decisions["decision"])
    assert (decisions["model_version"] == "small-1").all()
    assert (decisions["currency"] == "EUR").all()
    expected = _expected(promoted, tx, None)  # no labels given: no terminal risk known
    np.testing.assert_allclose(decisions["score"], expected[decisions["transaction_id"]].to_numpy())
    flagged = decisions["decision"] != "approve"
    for text in decisions.loc[flagged, "reasons"].head(50):
        reasons = [Reason.model_validate(r) for r in json.loads(text)]
        assert reasons
    assert (decisions.loc[~flagged, "reasons"] == "[]").all()


def test_labels_count_from_their_report_time(
    promoted: ModelRegistry, history: pd.DataFrame, tmp_path: Path
) -> None:
    tx = history[list(TRANSACTION_COLUMNS)]
    labels = labels_from_simulation(history)
    source = _write(tx, tmp_path / "tx.parquet")
    label_file = _write(labels, tmp_path / "labels.csv")
    out = tmp_path / "decisions.parquet"
    result = _run(str(source), "--labels", str(label_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    decisions = pd.read_parquet(out)
    with_labels = _expected(promoted, tx, labels)
    np.testing.assert_allclose(decisions["score"],
                               with_labels[decisions["transaction_id"]].to_numpy())
    unlabelled = _expected(promoted, tx, None)
    assert not np.allclose(with_labels, unlabelled[with_labels.index])
    # the same frauds, reported only after the file's last transaction: known too late for
    # every one of them, so they change no score (counting them from tx_timestamp would)
    late = labels.assign(reported_at=tx["timestamp"].max() + pd.Timedelta(seconds=1))
    late_file = _write(late, tmp_path / "late.csv")
    result = _run(str(source), "--labels", str(late_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    decisions = pd.read_parquet(out)
    np.testing.assert_array_equal(decisions["score"],
                                  unlabelled[decisions["transaction_id"]].to_numpy())


def test_errors_say_what_is_wrong(promoted: ModelRegistry, history: pd.DataFrame,
                                  tmp_path: Path) -> None:
    good = _write(history[list(TRANSACTION_COLUMNS)].head(100), tmp_path / "tx.csv")
    out = tmp_path / "o.csv"
    result = _run(str(tmp_path / "missing.csv"), "--out", str(out))
    assert result.exit_code == 2 and "missing.csv: no such file" in result.output
    result = _run(str(good), "--labels", str(tmp_path / "none.csv"), "--out", str(out))
    assert result.exit_code == 2 and "--labels" in result.output, result.output
    assert "none.csv: no such file" in result.output
    result = _run(str(good), "--out", str(tmp_path / "o.txt"))
    assert result.exit_code != 0 and "unknown extension '.txt'" in result.output
    odd = tmp_path / "tx.json"
    odd.write_text("{}")
    result = _run(str(odd), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code != 0 and "unknown extension '.json'" in result.output
    broken = _write(history[["transaction_id", "timestamp", "customer_id"]].head(5),
                    tmp_path / "broken.parquet")
    result = _run(str(broken), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code != 0
    assert "missing column(s) 'terminal_id', 'amount'" in result.output
    assert "Traceback" not in result.output
    # a decisions file given as labels: what it lacks, under the names it would have
    result = _run(str(good), "--labels", str(good), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 1
    assert "is not a labels file: missing column(s) 'is_fraud', 'reported_at' (it has" in (
        result.output
    )
    assert "tx_timestamp" not in result.output


def test_bad_values_are_named_by_row(tmp_path: Path, history: pd.DataFrame) -> None:
    tx = history[list(TRANSACTION_COLUMNS)].head(10).copy()
    tx.loc[3, "amount"] = -1.0
    with pytest.raises(ValueError, match=r"amount must be a finite number ≥ 0 \(data row\(s\) 4\)"):
        read_transactions(_write(tx, tmp_path / "tx.csv"))
    text = tx.assign(amount=1.0, timestamp=tx["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    text.to_csv(tmp_path / "naive.csv", index=False)
    with pytest.raises(ValueError, match="with an offset"):
        read_transactions(tmp_path / "naive.csv")
    # well-formed, but no such time: a 30 February, a 25th hour, an offset of 99 hours
    impossible = tx.assign(amount=1.0,
                           timestamp=tx["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
    impossible.loc[[2, 5, 7], "timestamp"] = [
        "2018-02-30T00:00:00Z", "2018-04-01T25:00:00Z", "2018-04-01T10:00:00+99:00"
    ]
    impossible.to_csv(tmp_path / "impossible.csv", index=False)
    with pytest.raises(ValueError, match=r"timestamp is not a time that exists .* 3, 6, 8\)"):
        read_transactions(tmp_path / "impossible.csv")
    # times that exist, but in UTC fall in year 0 or 10000: no RFC 3339 time says them
    edges = impossible.assign(timestamp="2018-04-01T00:00:00Z")
    edges.loc[[1, 4], "timestamp"] = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]
    edges.to_csv(tmp_path / "edges.csv", index=False)
    with pytest.raises(ValueError, match=r"the years 1 to 9999 in UTC \(data row\(s\) 2, 5\)"):
        read_transactions(tmp_path / "edges.csv")
    # ids as the topics take them: an empty one and one over 64 characters are named
    for column in ("transaction_id", "customer_id", "terminal_id"):
        ids = tx.assign(amount=1.0)
        ids.loc[1, column] = ""
        ids.loc[6, column] = "x" * 65
        ids.loc[2, column] = "y" * 64  # the longest that is taken
        with pytest.raises(ValueError, match=rf"{column} must be 1 to 64 characters "
                                             r"\(data row\(s\) 2, 7\)"):
            read_transactions(_write(ids, tmp_path / "ids.csv"))
    # a Parquet column of true and false is not one of amounts
    flags = tx.assign(amount=tx["amount"] > 50)
    with pytest.raises(ValueError, match="amount must be a number, not true or false"):
        read_transactions(_write(flags, tmp_path / "flags.parquet"))


def test_the_simulators_csv_is_accepted(history: pd.DataFrame, tmp_path: Path) -> None:
    """`fraud-streamer simulate --out x.csv` writes pandas' own time format; it must score."""
    path = tmp_path / "sim.csv"
    history.head(20).to_csv(path, index=False)
    frame = read_transactions(path)
    assert (frame["timestamp"] == history["timestamp"].head(20)).all()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_simulators_dataset_is_taken_as_labels_its_frauds(
    history: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    """The simulator writes what a labels file says in its own columns (``timestamp``,
    ``is_fraud``, ``reported_at``): its frauds are the labels `produce` would send."""
    path = tmp_path / f"sim{suffix}"
    models.simulate.write_dataset(history, path)
    labels = read_labels(path)
    expected = labels_from_simulation(history).reset_index(drop=True)
    assert list(labels.columns) == list(expected.columns) and len(labels) == len(expected) > 0
    assert list(labels["transaction_id"]) == list(expected["transaction_id"])
    assert (labels["reported_at"] == expected["reported_at"]).all()
    assert (labels["tx_timestamp"] == expected["tx_timestamp"]).all()


def test_no_promoted_model_is_a_clear_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                            history: pd.DataFrame) -> None:
    monkeypatch.setenv("STREAMER_MODEL_REGISTRY", str(clean_env / "empty"))
    source = _write(history[list(TRANSACTION_COLUMNS)].head(10), clean_env / "tx.csv")
    result = _run(str(source), "--out", str(clean_env / "o.csv"))
    assert result.exit_code == 1 and "no model promoted" in result.output


def test_a_registered_version_scores_before_it_is_promoted(
    registry: ModelRegistry, add_version: Callable[..., Manifest], history: pd.DataFrame,
    clean_env: Path,
) -> None:
    add_version("candidate")  # registered, never promoted
    source = _write(history[list(TRANSACTION_COLUMNS)].head(50), clean_env / "tx.csv")
    out = clean_env / "o.csv"
    result = _run(str(source), "--out", str(out), "--model", "candidate")
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out)["model_version"]) == {"candidate"}
    assert "decisions by model candidate" in result.output
    result = _run(str(source), "--out", str(out), "--model", "ghost")
    assert result.exit_code == 1 and "unknown model version 'ghost'" in result.output


def test_an_empty_model_is_a_usage_error(promoted: ModelRegistry, history: pd.DataFrame,
                                         clean_env: Path) -> None:
    """`--model ''` (an unset shell variable) scored with the promoted model without a word:
    a version was asked for, and none named."""
    source = _write(history[list(TRANSACTION_COLUMNS)].head(10), clean_env / "tx.csv")
    out = clean_env / "o.csv"
    for empty in ("", " "):
        result = _run(str(source), "--out", str(out), "--model", empty)
        assert result.exit_code == 2, result.output
        assert ("Invalid value for --model: is empty: name a registered version, or leave "
                "--model out to score with the promoted one") in result.output
        assert not out.exists()


def test_help_says_blocklists_are_not_applied() -> None:
    result = CliRunner().invoke(cli, ["score-batch", "--help"])
    assert result.exit_code == 0
    assert "Blocklists" in result.output and "NOT applied" in result.output


#: Offsets that move many wall times across midnight, 07:00 or a weekend boundary.
OFFSETS = ("+02:00", "-05:00", "+05:30", "Z", "-09:30", "+14:00")
#: (time as the producer sent it, the worker's (weekend, night)); read in UTC, the flags differ.
WALL_TIME_CASES = [
    ("2018-04-07T00:30:00+02:00", (True, True)),  # Saturday 00:30; Friday 22:30 in UTC
    ("2018-04-06T20:30:00-05:00", (False, False)),  # Friday evening; Saturday 01:30 in UTC
    ("2018-04-04T07:30:00+05:30", (False, False)),  # Wednesday 07:30; 02:00 in UTC
    ("2018-04-09T06:30:00-02:00", (False, True)),  # Monday 06:30; 08:30 in UTC
]


def _with_offsets(tx: pd.DataFrame) -> pd.DataFrame:
    """The same instants as RFC 3339 text, row i at OFFSETS[i % len(OFFSETS)]."""
    pick = np.arange(len(tx)) % len(OFFSETS)
    text = pd.Series("", index=tx.index, dtype=object)
    for k, offset in enumerate(OFFSETS):
        rows = pick == k
        sign = -1 if offset[0] == "-" else 1
        minutes = 0 if offset == "Z" else sign * (60 * int(offset[1:3]) + int(offset[4:6]))
        shift = pd.Timedelta(minutes=minutes)
        wall = (tx["timestamp"][rows] + shift).dt.strftime("%Y-%m-%dT%H:%M:%S")
        text[rows] = wall + offset
    return tx.assign(timestamp=text)


def _wire(tx: pd.DataFrame) -> list[Transaction]:
    """Each row as the worker receives it: a Transaction parsed from JSON, offset kept."""
    return [Transaction.model_validate_json(json.dumps(row)) for row in tx.to_dict("records")]


def _worker_scores(
    registry: ModelRegistry, txs: list[Transaction], currencies: Currencies = EUR
) -> pd.Series:
    """Scores through the worker's own feature code: ``pipeline.feature_event`` on each parsed
    Transaction, then the store's in-memory twin, in event time (no labels)."""
    ordered = sorted(txs, key=lambda t: (t.timestamp, t.transaction_id))
    events = [feature_event(t, currencies) for t in ordered]
    scores = Scorer(registry.load()).score(InMemoryFeatureStore().enrich_sync(events))
    return pd.Series(scores, index=[e.transaction_id for e in events])


def _utc_flags(txs: list[Transaction]) -> list[tuple[bool, bool]]:
    return [calendar_flags(t.timestamp.astimezone(UTC)) for t in txs]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_calendar_flags_use_each_rows_own_offset(tmp_path: Path, suffix: str) -> None:
    times = [t for t, _ in WALL_TIME_CASES]
    tx = pd.DataFrame({"transaction_id": [f"t{i}" for i in range(len(times))],
                       "timestamp": times, "customer_id": "c", "terminal_id": "T",
                       "amount": 10.0})
    path = tmp_path / f"tx{suffix}"
    if suffix == ".csv":
        tx.to_csv(path, index=False)
    else:
        tx.to_parquet(path, index=False)  # times as text, one offset per row
    frame = read_transactions(path)
    wire = _wire(tx)
    assert list(frame["timestamp"]) == [pd.Timestamp(t.timestamp) for t in wire]  # UTC instants
    assert str(frame["timestamp"].dt.tz) == "UTC"
    events = feature_events(frame)
    assert events == [feature_event(t, EUR) for t in wire]
    assert [(e.weekend, e.night) for e in events] == [flags for _, flags in WALL_TIME_CASES]
    assert all(a != b for a, b in zip(_utc_flags(wire), [f for _, f in WALL_TIME_CASES],
                                      strict=True))


def test_a_parquet_time_zone_is_read_at_each_rows_offset(tmp_path: Path) -> None:
    """A time-zone-aware column has one zone; a named zone changes offset (here at DST)."""
    instants = pd.to_datetime(["2018-03-24T23:30:00Z", "2018-03-25T05:30:00Z",
                               "2018-03-26T05:30:00Z"], utc=True)
    paris = pd.Series(instants).dt.tz_convert("Europe/Paris")
    tx = pd.DataFrame({"transaction_id": ["a", "b", "c"], "timestamp": paris,
                       "customer_id": "c", "terminal_id": "T", "amount": 10.0})
    tx.to_parquet(tmp_path / "tx.parquet", index=False)
    frame = read_transactions(tmp_path / "tx.parquet")
    assert list(frame["timestamp"]) == list(instants)
    wire = _wire(tx.assign(timestamp=[t.isoformat() for t in paris]))
    assert [str(t.timestamp.utcoffset()) for t in wire] == ["1:00:00", "2:00:00", "2:00:00"]
    events = feature_events(frame)
    assert events == [feature_event(t, EUR) for t in wire]
    # Sunday 00:30 +01:00, Sunday 07:30 +02:00 (06:30 at the earlier offset), Monday 07:30
    assert [(e.weekend, e.night) for e in events] == [(True, True), (True, False), (False, False)]
    assert [(e.weekend, e.night) for e in events] != _utc_flags(wire)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_non_utc_offsets_score_as_the_worker_does(
    promoted: ModelRegistry, history: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    """On the same history, score-batch gives the worker's scores, whatever the offsets."""
    tx = history[list(TRANSACTION_COLUMNS)]
    text = _with_offsets(tx)
    source = tmp_path / f"tx{suffix}"
    if suffix == ".csv":
        text.to_csv(source, index=False)
    else:
        text.to_parquet(source, index=False)
    out = tmp_path / "decisions.parquet"
    result = _run(str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    decisions = pd.read_parquet(out)
    assert list(decisions["transaction_id"]) == list(tx["transaction_id"])
    assert (decisions["timestamp"] == tx["timestamp"]).all()  # same instants, in UTC
    wire = _wire(text)
    worker = _worker_scores(promoted, wire)
    np.testing.assert_allclose(decisions["score"], worker[decisions["transaction_id"]].to_numpy())
    # the offsets matter: read in UTC, many flags and scores would differ
    flips = sum(calendar_flags(t.timestamp) != u for t, u in zip(wire, _utc_flags(wire),
                                                                 strict=True))
    assert flips > len(wire) // 4
    utc = _expected(promoted, tx, None)
    assert not np.allclose(worker[utc.index], utc)


def test_a_named_time_zone_scores_as_the_worker_does(
    promoted: ModelRegistry, history: pd.DataFrame, tmp_path: Path
) -> None:
    tx = history[list(TRANSACTION_COLUMNS)]
    local = tx.assign(timestamp=tx["timestamp"].dt.tz_convert("America/New_York"))
    source = _write(local, tmp_path / "tx.parquet")
    out = tmp_path / "decisions.csv"
    result = _run(str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    decisions = pd.read_csv(out)
    worker = _worker_scores(promoted, _wire(local.assign(
        timestamp=[t.isoformat() for t in local["timestamp"]])))
    np.testing.assert_allclose(decisions["score"], worker[decisions["transaction_id"]].to_numpy())
    utc = _expected(promoted, tx, None)
    assert not np.allclose(worker[utc.index], utc)


def test_times_without_a_time_zone_are_refused(history: pd.DataFrame, tmp_path: Path) -> None:
    tx = history[list(TRANSACTION_COLUMNS)].head(10)
    path = _write(tx.assign(timestamp=tx["timestamp"].dt.tz_localize(None)),
                  tmp_path / "naive.parquet")
    with pytest.raises(ValueError, match=r"naive\.parquet: timestamp has no time zone"):
        read_transactions(path)


def test_amounts_in_other_currencies_score_as_the_worker_does(
    promoted: ModelRegistry, history: pd.DataFrame, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same history written by producers in euros, dollars and pounds scores as in euros
    (rates of 0.5 and 2 convert back exactly), row for row as the worker does, and the file
    echoes each amount as written; a currency without a rate is reviewed, saying why."""
    monkeypatch.setenv("STREAMER_EXCHANGE_RATES", '{"USD": 0.5, "GBP": 2}')
    rates = Currencies("EUR", {"USD": 0.5, "GBP": 2.0})
    tx = history[list(TRANSACTION_COLUMNS)]
    currency = np.array(["EUR", "USD", "GBP"])[np.arange(len(tx)) % 3]
    per_unit = pd.Series(currency).map({"EUR": 1.0, "USD": 2.0, "GBP": 0.5}).to_numpy()
    written = tx.assign(amount=tx["amount"] * per_unit, currency=currency)
    source = _write(written, tmp_path / "tx.parquet")
    out = tmp_path / "decisions.parquet"
    result = _run(str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    decisions = pd.read_parquet(out)
    np.testing.assert_array_equal(decisions["amount"], written["amount"])
    assert list(decisions["currency"]) == list(currency)
    in_euros = _expected(promoted, tx, None)
    np.testing.assert_array_equal(decisions["score"],
                                  in_euros[decisions["transaction_id"]].to_numpy())  # fmt: skip
    worker = _worker_scores(promoted, _wire(written.assign(
        timestamp=written["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))), rates)
    np.testing.assert_array_equal(decisions["score"],
                                  worker[decisions["transaction_id"]].to_numpy())  # fmt: skip

    # one card pays in yen, for which no rate is set: reviewed at least, and it says so
    card = written["customer_id"].iloc[0]
    yen = written.assign(currency=np.where(written["customer_id"] == card, "JPY", currency))
    result = _run(str(_write(yen, tmp_path / "yen.parquet")), "--out", str(out))
    assert result.exit_code == 0, result.output
    decisions = pd.read_parquet(out)
    paid = decisions[decisions["customer_id"] == card]
    assert len(paid) > 1 and (paid["decision"] != "approve").all()
    assert all(json.loads(r)[0]["code"] == "CURRENCY_NOT_CONVERTED" for r in paid["reasons"])
    worker = _worker_scores(promoted, _wire(yen.assign(
        timestamp=yen["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))), rates)
    np.testing.assert_array_equal(decisions["score"],
                                  worker[decisions["transaction_id"]].to_numpy())  # fmt: skip


def test_doubtful_input_is_said_or_refused(
    promoted: ModelRegistry, history: pd.DataFrame, tmp_path: Path
) -> None:
    """An --out that is an input is refused; an id that occurs twice, and labels for
    transactions not in the file, are said: the worker takes them, and so does this."""
    tx = history[list(TRANSACTION_COLUMNS)].head(300)
    source = _write(tx, tmp_path / "tx.csv")
    result = _run(str(source), "--out", str(source))
    assert result.exit_code == 2 and f"--out {source} is TRANSACTIONS itself" in result.output

    # a re-delivery, and another transaction under an id, at the end
    twice = pd.concat([tx, tx.iloc[[10]], tx.iloc[[20]].assign(amount=1.0)], ignore_index=True)
    labels = labels_from_simulation(history)  # the whole history's: most not in the file
    label_file = _write(labels, tmp_path / "labels.csv")
    out = tmp_path / "decisions.csv"
    result = _run(str(_write(twice, tmp_path / "twice.csv")), "--labels", str(label_file),
                  "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    first = tx["transaction_id"].iloc[10]
    assert (f"warning: 2 transaction id(s) occur more than once in {tmp_path / 'twice.csv'} "
            f"(the first: {first}); each later row is scored as a re-delivery of the first"
            ) in result.output  # fmt: skip
    other = tx["transaction_id"].iloc[20]
    assert (f"warning: 1 of them stand for rows that differ in another field (the first: "
            f"{other}); the worker refuses such a later row (transaction_id_reused)"
            ) in result.output  # fmt: skip
    inside = int(labels["transaction_id"].isin(tx["transaction_id"]).sum())
    assert inside < len(labels)
    assert f"{len(labels):,} labels read, {inside:,} of them for transactions in " in (
        result.output
    )
    decisions = pd.read_csv(out)
    repeats = decisions[decisions["transaction_id"] == first]
    assert len(repeats) == 2 and repeats["score"].nunique() == 1  # as the worker repeats it


def test_a_parquet_label_without_its_verdict_is_named(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """A nullable boolean column with a null: neither fraud nor genuine, refused by its row."""
    labels = labels_from_simulation(history).head(3).reset_index(drop=True)
    labels["is_fraud"] = pd.array([True, None, True], dtype="boolean")
    path = tmp_path / "labels.parquet"
    labels.to_parquet(path)
    with pytest.raises(ValueError, match=r"is_fraud must be true or false \(data row\(s\) 2\)"):
        read_labels(path)
