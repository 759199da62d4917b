"""Score a file of transactions offline, as the worker would have scored them in order.

The file is replayed in event time through the worker's feature code (the in-memory twin of
the Redis store), labels included: a fraud label moves a terminal's risk only from its
``reported_at`` on, exactly as on the stream. Scores come from the promoted model, outcomes
from the worker's thresholds and rules, reasons from :meth:`Scorer.explain`. Blocklists live in
Redis, so this offline mode has none; the amount limit applies.

Times are kept as UTC instants (event-time order, windows, the decisions file), and the calendar
features read each row's wall time at its own offset, as the worker does: a CSV (or Parquet text)
time ``2018-04-07T00:30:00+02:00`` is a Saturday night, though still Friday evening in UTC, and a
time-zone-aware Parquet column is read in its own zone (a named zone at each row's own offset).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.dataset import WALL_TIME, build_features
from models.files import EXTENSIONS, id_text, read_table, replacing
from schemas.common import ID_MAX_LENGTH
from streamer.rules import Policy, judge
from streamer.scoring import Scorer

__all__ = [
    "DECISION_COLUMNS",
    "LABEL_COLUMNS",
    "TRANSACTION_COLUMNS",
    "BatchInputError",
    "check_extension",
    "read_labels",
    "read_transactions",
    "repeated_ids",
    "score_transactions",
    "write_decisions",
]

TRANSACTION_COLUMNS = ("transaction_id", "timestamp", "customer_id", "terminal_id", "amount")
LABEL_COLUMNS = (
    "transaction_id", "customer_id", "terminal_id", "tx_timestamp", "is_fraud", "reported_at",
)
DECISION_COLUMNS = (
    "transaction_id", "customer_id", "terminal_id", "amount", "currency", "timestamp", "score",
    "decision", "reasons", "model_version",
)
DEFAULT_CURRENCY = "EUR"
CHUNK = 50_000
_IDS = ("transaction_id", "customer_id", "terminal_id")
_SHOWN = 5  # bad rows named in an error
#: a label column under its name in a simulated dataset, where it differs
_SIMULATED = {"tx_timestamp": "timestamp"}
_OFFSET = r"(?:Z|[+-]\d{2}:\d{2})"
#: RFC 3339, or the same with a space for the "T" (how pandas writes times to CSV, e.g. the
#: simulator's CSV files); the offset is required, as on the wire.
_TIME = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?" + _OFFSET


class BatchInputError(ValueError):
    """An input file that cannot be scored; the message names the file and what to fix."""


def check_extension(path: Path) -> str:
    """``csv`` or ``parquet`` from the file name, or a clear error."""
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise BatchInputError(f"{path}: unknown extension {path.suffix!r}; use "
                              f"{', '.join(EXTENSIONS)}")
    return kind


def _read(path: Path, required: Sequence[str], what: str) -> pd.DataFrame:
    kind = check_extension(path)
    if not path.is_file():
        raise BatchInputError(f"{path}: no such file")
    try:
        frame = read_table(path, kind, dtype=str, keep_default_na=False, na_values=[""])
    except ValueError as exc:
        raise BatchInputError(str(exc)) from None
    _require(frame, path, required, what)
    return frame


def _require(frame: pd.DataFrame, path: Path, required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        # quoted: a column named "amount " is not "amount", and unquoted nobody could tell
        has = ", ".join(repr(str(c)) for c in frame.columns)
        raise BatchInputError(f"{path} is not a {what} file: missing column(s) "
                              f"{', '.join(map(repr, missing))} (it has {has})")


def _fail(path: Path, problem: str, bad: np.ndarray) -> None:
    rows = np.flatnonzero(bad)
    if len(rows):
        shown = ", ".join(str(r + 1) for r in rows[:_SHOWN])
        more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
        raise BatchInputError(f"{path}: {problem} (data row(s) {shown}{more})")


def _ids(frame: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    for column in columns:
        text, bad = id_text(frame[column])
        _fail(path, f"{column} must be 1 to {ID_MAX_LENGTH} characters", bad.to_numpy())
        frame[column] = text.astype(str)


def _times(frame: pd.DataFrame, path: Path, column: str) -> pd.Series:
    """Check a time column and store it as UTC instants; return each row's wall time (naive) at
    the offset it was given, which the calendar features read."""
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values):
        if getattr(values.dt, "tz", None) is None:
            raise BatchInputError(f"{path}: {column} has no time zone; store the times with "
                                  "their time zone (UTC or the producer's)")
        _fail(path, f"{column} is missing", values.isna().to_numpy())
        frame[column] = values.dt.tz_convert("UTC")
        return values.dt.tz_localize(None)  # the wall time in the column's own zone
    text = values.astype("string")
    bad = ~text.str.fullmatch(_TIME).fillna(False)
    _fail(path, f"{column} must be an RFC 3339 time with an offset, e.g. 2018-04-01T00:00:31Z",
          bad.to_numpy(dtype=bool))
    # the pattern passes 2018-02-30 or 25:00 or +99:00: what pandas cannot read is named too
    instants = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    # The time as written, without its offset: the producer's wall time (vectorised string ops).
    wall = pd.to_datetime(text.str.replace(_OFFSET + "$", "", regex=True), format="ISO8601",
                          errors="coerce")  # fmt: skip
    _fail(path, f"{column} is not a time that exists (a day, hour or offset out of range)",
          (instants.isna() | wall.isna()).to_numpy(dtype=bool))
    # 0001-01-01T00:00+14:00 is in year 0 in UTC, which no RFC 3339 time can say
    year = instants.dt.year
    _fail(path, f"{column} must fall within the years 1 to 9999 in UTC",
          ((year < 1) | (year > 9999)).to_numpy(dtype=bool))
    frame[column] = instants
    return wall


def read_transactions(path: Path) -> pd.DataFrame:
    """Transactions (the Transaction fields as columns) from CSV or Parquet, checked.

    ``timestamp`` is in UTC; :data:`~models.dataset.WALL_TIME` holds each row's wall time at its
    own offset, for the calendar features.
    """
    frame = _read(path, TRANSACTION_COLUMNS, "transactions")
    keep = [*TRANSACTION_COLUMNS, *(["currency"] if "currency" in frame.columns else [])]
    frame = frame[keep].copy()
    _ids(frame, path, _IDS)
    frame[WALL_TIME] = _times(frame, path, "timestamp")
    if pd.api.types.is_bool_dtype(frame["amount"]):  # True would pass for 1.0
        _fail(path, "amount must be a number, not true or false", np.ones(len(frame), bool))
    amount = pd.to_numeric(frame["amount"], errors="coerce").astype(float)
    _fail(path, "amount must be a finite number ≥ 0",
          ~(np.isfinite(amount.to_numpy()) & (amount.to_numpy() >= 0)))
    frame["amount"] = amount
    currency = frame.get("currency", pd.Series(DEFAULT_CURRENCY, index=frame.index))
    currency = currency.astype("string").fillna(DEFAULT_CURRENCY)
    _fail(path, "currency must be three upper-case letters, e.g. EUR",
          ~currency.str.fullmatch(r"[A-Z]{3}").to_numpy(dtype=bool))
    frame["currency"] = currency.astype(str)
    return frame.reset_index(drop=True)


def repeated_ids(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The ids of a :func:`read_transactions` frame that occur more than once, and those of
    them whose rows differ in another field (time, card, terminal, amount, currency): a
    re-delivery is the same transaction again, the others are ids used for two transactions,
    which the worker refuses (``transaction_id_reused``) where the first one's card or
    terminal saw it. Each in the order of their first row."""
    ids = frame["transaction_id"]
    repeated = ids[ids.duplicated()].unique().tolist()
    if not repeated:
        return [], []
    fields = ["timestamp", "customer_id", "terminal_id", "amount", "currency"]
    rows = frame[ids.isin(repeated)]
    differ = rows.groupby("transaction_id", sort=False)[fields].nunique(dropna=False).gt(1)
    reused = set(differ.index[differ.any(axis=1)])
    return repeated, [i for i in repeated if i in reused]


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def read_labels(path: Path) -> pd.DataFrame:
    """Labels (the Label fields as columns) from CSV or Parquet, checked.

    A dataset of ``fraud-streamer simulate`` is taken too (its ``timestamp`` for
    ``tx_timestamp``): its frauds are its labels, each known from its ``reported_at``, as
    ``fraud-streamer produce`` sends them.
    """
    frame = _read(path, (), "labels")
    simulated = "tx_timestamp" not in frame.columns and "timestamp" in frame.columns
    # checked under the file's own names: a missing column is named as the file would have it
    _require(frame, path, [_SIMULATED.get(c, c) if simulated else c for c in LABEL_COLUMNS],
             "labels")  # fmt: skip
    if simulated:
        frame = frame.rename(columns={v: k for k, v in _SIMULATED.items()})
    frame = frame[list(LABEL_COLUMNS)].copy()
    flag = frame["is_fraud"]
    if not pd.api.types.is_bool_dtype(flag) or flag.isna().any():  # Parquet's may hold nulls
        text = flag.astype("string").str.strip().str.lower()
        _fail(path, "is_fraud must be true or false", ~text.isin(_TRUE | _FALSE).to_numpy())
        flag = text.isin(_TRUE)
    frame["is_fraud"] = flag.astype(bool)
    if simulated:  # the genuine transactions are never reported (no reported_at)
        frame = frame[frame["is_fraud"]].reset_index(drop=True)
    _ids(frame, path, _IDS)
    _times(frame, path, "tx_timestamp")
    _times(frame, path, "reported_at")
    _fail(path, "reported_at must not be earlier than tx_timestamp",
          (frame["reported_at"] < frame["tx_timestamp"]).to_numpy())
    return frame


def score_transactions(
    transactions: pd.DataFrame,
    scorer: Scorer,
    policy: Policy,
    *,
    labels: pd.DataFrame | None = None,
    progress: Callable[[str, int], Callable[[int], object]] | None = None,
) -> pd.DataFrame:
    """One decision row per transaction (DECISION_COLUMNS), in the input's order.

    Amounts are put in the model's currency (``policy.currencies``) before anything is computed
    from them, as the worker does; the rows echo them as written.
    """
    currencies = policy.currencies
    amounts, converted = currencies.to_base_column(
        transactions["amount"].to_numpy(), transactions["currency"].to_numpy()
    )
    frame = transactions.assign(
        _row=np.arange(len(transactions)), _written=transactions["amount"], amount=amounts,
        converted=converted,
    )
    features = build_features(
        frame,
        labels if labels is not None else pd.DataFrame(columns=list(LABEL_COLUMNS)),
        progress=progress("features", len(frame)) if progress else None,
    )
    ordered, X = features.frame, features.X
    step = progress("scoring", len(ordered)) if progress else None
    scores = np.empty(len(ordered))
    outcomes: list[str] = []
    reasons: list[str] = []
    for start in range(0, len(ordered), CHUNK):
        rows = slice(start, start + CHUNK)
        inputs = scorer.model_inputs(X[rows])  # as the worker's model sees them
        chunk_scores = scorer.score_inputs(inputs)
        judged = judge(  # no blocklists here: they are kept in Redis
            scorer, X[rows], chunk_scores, policy,
            currencies=ordered["currency"].to_numpy()[rows].astype(str).tolist(),
            converted=ordered["converted"].to_numpy()[rows].astype(bool).tolist(),
        )  # fmt: skip
        scores[rows] = [v.score for v in judged.verdicts]
        outcomes += [v.decision for v in judged.verdicts]
        reasons += [json.dumps([r.model_dump() for r in v.reasons], ensure_ascii=False)
                    for v in judged.verdicts]  # fmt: skip
        if step is not None:
            step(len(judged.verdicts))
    decisions = ordered.assign(amount=ordered["_written"], score=scores, decision=outcomes,
                               reasons=reasons, model_version=scorer.version)
    decisions = decisions.sort_values("_row", kind="stable").reset_index(drop=True)
    return decisions[list(DECISION_COLUMNS)]


def write_decisions(decisions: pd.DataFrame, path: Path) -> None:
    """CSV (times as RFC 3339, ``Z``) or Parquet, by the file name; the directory is created."""
    kind = check_extension(path)
    with replacing(path) as tmp:
        if kind == "parquet":
            decisions.to_parquet(tmp, engine="pyarrow", index=False)
            return
        ts = decisions["timestamp"]
        fractional = bool((ts.dt.microsecond != 0).any())
        text = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if fractional else "%Y-%m-%dT%H:%M:%SZ")
        decisions.assign(timestamp=text).to_csv(tmp, index=False)
