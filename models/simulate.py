"""The handbook's transaction simulator: customers, terminals, transactions, three fraud scenarios.

It follows *Reproducible Machine Learning for Credit Card Fraud Detection – Practical Handbook*
(Le Borgne et al.) so that our results can be compared with the book's published ones, and it is
vectorised across customers so that the book's size (about 1.75 million transactions) takes
seconds rather than the reference implementation's minutes.

Randomness comes from independent child streams of one ``numpy.random.SeedSequence``: the same
seed always gives the same data, and, for example, the customers do not change when only the
number of terminals does. ``streams="book"`` instead replays the book's own generator, call for
call, to give its published dataset (:mod:`models.book_streams`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.files import EXTENSIONS, id_text, read_table, replacing
from schemas.common import ID_MAX_LENGTH

__all__ = [
    "COLUMNS",
    "STREAMS",
    "Compromises",
    "Profiles",
    "SimulationConfig",
    "draw_compromises",
    "make_profiles",
    "progress_total",
    "read_dataset",
    "simulate",
    "write_dataset",
]

SECONDS_PER_DAY = 86_400
TIME_MEAN, TIME_STD = 43_200.0, 20_000.0
LOCATION_MAX = 100.0
MEAN_AMOUNT_RANGE = (5.0, 100.0)
MAX_MEAN_TX_PER_DAY = 4.0
SCENARIO1_AMOUNT = 220.0
TERMINALS_PER_DAY, TERMINAL_DAYS = 2, 28
CUSTOMERS_PER_DAY, CUSTOMER_DAYS = 3, 14
CUSTOMER_FRAUD_SHARE = 3  # one in this many of a compromised customer's transactions
CUSTOMER_FRAUD_FACTOR = 5.0

STREAMS = ("fast", "book")

#: Column -> dtype of a transaction dataset, in order.
COLUMNS: dict[str, str] = {
    "transaction_id": "str",
    "timestamp": "datetime64[s, UTC]",
    "customer_id": "str",
    "terminal_id": "str",
    "amount": "float64",
    "is_fraud": "bool",
    "fraud_scenario": "int64",
    "reported_at": "datetime64[s, UTC]",
}
_TIMESTAMPS = ("timestamp", "reported_at")

# Child streams of the seed, one per independent source of randomness.
_CUSTOMERS, _TERMINALS, _TRANSACTIONS, _COMPROMISES, _PICKS = range(5)


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """Size and seed of a simulation; the defaults are the handbook's."""

    n_customers: int = 5000
    n_terminals: int = 10000
    n_days: int = 183
    start_date: str = "2018-04-01"
    radius: float = 5.0
    seed: int = 0
    label_delay_days: int = 7
    #: "fast": independent vectorised streams of ``seed`` (seconds at book size); "book": the
    #: handbook's own generator, call for call (:mod:`models.book_streams`; its seeds are fixed,
    #: so ``seed`` must be 0; tens of seconds at book size)
    streams: str = "fast"

    def __post_init__(self) -> None:
        for name in ("n_customers", "n_terminals", "n_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.radius < float("inf"):  # nan too
            raise ValueError(f"radius must be a positive number, got {self.radius}")
        if self.seed < 0 or self.label_delay_days < 0:
            raise ValueError("seed and label_delay_days must not be negative")
        if self.streams not in STREAMS:
            raise ValueError(f"streams must be one of {', '.join(STREAMS)}, got {self.streams!r}")
        if self.streams == "book" and self.seed != 0:
            raise ValueError("the book's streams have fixed seeds: seed must be 0 with them")
        try:
            first = np.datetime64(self.start_date, "D")
        except ValueError:
            raise ValueError(f"start_date must be YYYY-MM-DD, got {self.start_date!r}") from None
        last = first + np.timedelta64(self.n_days + self.label_delay_days, "D")
        if not np.datetime64("1678-01-01") <= first or last > np.datetime64("2262-04-10"):
            raise ValueError(
                f"start_date {self.start_date} with {self.n_days} days (and "
                f"{self.label_delay_days} more for the labels) leaves 1678..2262, the years "
                "pandas' timestamps hold"
            )

    @property
    def name(self) -> str:
        """How reports name this history: ``book`` for the book's streams, else the seed."""
        return "book" if self.streams == "book" else str(self.seed)


@dataclass(frozen=True)
class Profiles:
    """Customer and terminal properties; index i is customer or terminal number i."""

    customer_xy: np.ndarray  # (n_customers, 2)
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_nb_tx_per_day: np.ndarray
    terminal_xy: np.ndarray  # (n_terminals, 2)


@dataclass(frozen=True)
class Compromises:
    """Who is compromised on each day (row d): drawn up front so tests can check the labels."""

    terminals: np.ndarray  # (n_days, 2): their transactions on days d .. d+27 are fraud
    customers: np.ndarray  # (n_days, 3): a third of theirs on days d .. d+13 are fraud


def _rng(config: SimulationConfig, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(config.seed).spawn(5)[stream])


def make_profiles(config: SimulationConfig) -> Profiles:
    """Draw the customers' and terminals' properties."""
    rng = _rng(config, _CUSTOMERS)
    c = config.n_customers
    xy = rng.uniform(0, LOCATION_MAX, (c, 2))
    mean_amount = rng.uniform(*MEAN_AMOUNT_RANGE, c)
    mean_nb = rng.uniform(0, MAX_MEAN_TX_PER_DAY, c)
    terminal_xy = _rng(config, _TERMINALS).uniform(0, LOCATION_MAX, (config.n_terminals, 2))
    return Profiles(xy, mean_amount, mean_amount / 2, mean_nb, terminal_xy)


def draw_compromises(config: SimulationConfig) -> Compromises:
    """Draw the terminals and customers compromised on each day (distinct within a day)."""
    rng = _rng(config, _COMPROMISES)
    n_t = min(TERMINALS_PER_DAY, config.n_terminals)
    n_c = min(CUSTOMERS_PER_DAY, config.n_customers)
    days = range(config.n_days)
    terminals = np.array([rng.choice(config.n_terminals, n_t, replace=False) for _ in days])
    customers = np.array([rng.choice(config.n_customers, n_c, replace=False) for _ in days])
    return Compromises(terminals.reshape(config.n_days, n_t), customers.reshape(config.n_days, n_c))


def _neighbours(profiles: Profiles, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's terminals at distance < radius, as CSR (offsets, sorted terminal numbers).

    Terminals are bucketed in a grid of radius-sized cells, so only the 3 x 3 cells around a
    customer are measured: exact, vectorised, and no tree library needed.
    """
    cxy, txy = profiles.customer_xy, profiles.terminal_xy
    c_cell = np.floor(cxy / radius).astype(np.int64) + 1  # +1: the cells around stay >= 0
    t_cell = np.floor(txy / radius).astype(np.int64) + 1
    side = int(max(c_cell.max(), t_cell.max())) + 2
    t_key = t_cell[:, 0] * side + t_cell[:, 1]
    by_cell = np.argsort(t_key, kind="stable")
    sorted_keys = t_key[by_cell]

    steps = np.array([dx * side + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    keys = (c_cell[:, 0] * side + c_cell[:, 1])[:, None] + steps  # (n_customers, 9)
    first = np.searchsorted(sorted_keys, keys, side="left").ravel()
    sizes = np.searchsorted(sorted_keys, keys, side="right").ravel() - first
    # Expand the ranges [first, first + size) into one flat candidate list.
    run_starts = np.cumsum(sizes) - sizes
    position = np.repeat(first - run_starts, sizes) + np.arange(sizes.sum())
    customer = np.repeat(np.arange(len(cxy)), sizes.reshape(len(cxy), 9).sum(axis=1))
    terminal = by_cell[position]

    diff = cxy[customer] - txy[terminal]
    near = np.sqrt((diff**2).sum(axis=1)) < radius
    customer, terminal = customer[near], terminal[near]
    order = np.lexsort((terminal, customer))
    counts = np.bincount(customer, minlength=len(cxy))
    return np.concatenate(([0], np.cumsum(counts))), terminal[order]


def _transactions(
    config: SimulationConfig, profiles: Profiles, progress: Callable[[int], object] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Genuine transactions as (customer, terminal, seconds since start, amount), day by day.

    Each day is one vectorised step over all customers, which keeps memory flat and gives the
    progress callback something to count. Customers with no terminal in reach never transact.
    """
    rng = _rng(config, _TRANSACTIONS)
    offsets, reachable = _neighbours(profiles, config.radius)
    n_reachable = np.diff(offsets)
    everyone = np.arange(config.n_customers)
    parts = []
    for day in range(config.n_days):
        customer = np.repeat(everyone, rng.poisson(profiles.mean_nb_tx_per_day))
        draws = rng.normal(TIME_MEAN, TIME_STD, customer.size)
        keep = (draws > 0) & (draws < SECONDS_PER_DAY) & (n_reachable[customer] > 0)
        customer = customer[keep]
        seconds = draws[keep].astype(np.int64) + day * SECONDS_PER_DAY
        mean = profiles.mean_amount[customer]
        amount = rng.normal(mean, profiles.std_amount[customer])
        negative = amount < 0
        amount[negative] = rng.uniform(0, 2 * mean[negative])
        pick = rng.integers(0, n_reachable[customer])
        terminal = reachable[offsets[customer] + pick]
        parts.append((customer, terminal, seconds, np.round(amount, 2)))
        if progress is not None:
            progress(1)
    customer, terminal, seconds, amount = zip(*parts, strict=True)
    return (
        np.concatenate(customer),
        np.concatenate(terminal),
        np.concatenate(seconds),
        np.concatenate(amount),
    )


def _add_frauds(
    config: SimulationConfig,
    compromises: Compromises,
    customer: np.ndarray,
    terminal: np.ndarray,
    day: np.ndarray,
    amount: np.ndarray,
) -> np.ndarray:
    """Apply the three scenarios in the book's order (later ones relabel); return the scenario.

    ``amount`` is modified in place by scenario 3.
    """
    scenario = np.zeros(len(amount), dtype=np.int64)
    scenario[amount > SCENARIO1_AMOUNT] = 1

    compromised = np.zeros((config.n_terminals, config.n_days), dtype=bool)
    for d, terminals in enumerate(compromises.terminals):
        compromised[terminals, d : d + TERMINAL_DAYS] = True
    scenario[compromised[terminal, day]] = 2

    # Rows grouped by customer, in day order within each (rows were generated day by day).
    by_customer = np.argsort(customer, kind="stable")
    days_sorted = day[by_customer]
    starts = np.concatenate(([0], np.cumsum(np.bincount(customer, minlength=config.n_customers))))
    rng = _rng(config, _PICKS)
    for d, customers in enumerate(compromises.customers):
        windows = []
        for c in customers:
            lo, hi = starts[c], starts[c + 1]
            first, end = np.searchsorted(days_sorted[lo:hi], [d, d + CUSTOMER_DAYS]) + lo
            windows.append(by_customer[first:end])
        candidates = np.concatenate(windows)
        chosen = rng.choice(candidates, len(candidates) // CUSTOMER_FRAUD_SHARE, replace=False)
        amount[chosen] = np.round(amount[chosen] * CUSTOMER_FRAUD_FACTOR, 2)
        scenario[chosen] = 3
    return scenario


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """Zero-padded ids, so that string order is numeric order."""
    return prefix + pd.Series(numbers).astype("str").str.zfill(width)


def _width(n: int) -> int:
    return max(5, len(str(max(n - 1, 0))))


def simulate(
    config: SimulationConfig | None = None, progress: Callable[[int], object] | None = None
) -> pd.DataFrame:
    """Simulate labelled transactions, one row each, sorted by time then ``transaction_id``.

    ``progress`` is called with the work done (``tqdm.update`` fits): days for the fast
    streams, customers for the book's (:func:`progress_total` gives the total). Frauds carry
    ``reported_at`` = ``timestamp`` + ``label_delay_days``, when the label becomes known.
    """
    config = config or SimulationConfig()
    if config.streams == "book":
        from models.book_streams import book_transactions

        customer, terminal, seconds, amount, scenario = book_transactions(config, progress)
    else:
        profiles = make_profiles(config)
        customer, terminal, seconds, amount = _transactions(config, profiles, progress)
        scenario = _add_frauds(
            config, draw_compromises(config), customer, terminal, seconds // SECONDS_PER_DAY,
            amount,
        )
        order = np.argsort(seconds, kind="stable")
        customer, terminal, seconds = customer[order], terminal[order], seconds[order]
        amount, scenario = amount[order], scenario[order]
    fraud = scenario > 0
    when = np.datetime64(config.start_date, "s") + seconds.astype("timedelta64[s]")
    reported = when + np.timedelta64(config.label_delay_days * SECONDS_PER_DAY, "s")
    reported[~fraud] = np.datetime64("NaT")

    customer_ids = pd.Series(_ids("c-", np.arange(config.n_customers), _width(config.n_customers)))
    terminal_ids = pd.Series(_ids("t-", np.arange(config.n_terminals), _width(config.n_terminals)))
    n = len(seconds)
    frame = pd.DataFrame(
        {
            "transaction_id": _ids("tx-", np.arange(n), max(9, _width(n))),
            "timestamp": pd.Series(when).dt.tz_localize("UTC"),
            "customer_id": customer_ids.take(customer).reset_index(drop=True),
            "terminal_id": terminal_ids.take(terminal).reset_index(drop=True),
            "amount": amount,
            "is_fraud": fraud,
            "fraud_scenario": scenario,
            "reported_at": pd.Series(reported).dt.tz_localize("UTC"),
        }
    )
    return frame.astype(COLUMNS)


def progress_total(config: SimulationConfig) -> tuple[int, str]:
    """How much work :func:`simulate` reports through ``progress``, and its unit."""
    return (config.n_customers, "customer") if config.streams == "book" \
        else (config.n_days, "day")


def write_dataset(frame: pd.DataFrame, path: str | Path) -> None:
    """Write transactions as Parquet, or as CSV when the name ends in ``.csv``."""
    with replacing(path) as tmp:
        if Path(path).suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, engine="pyarrow", index=False)


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Read a dataset written by :func:`write_dataset`, restoring the dtypes of ``COLUMNS``.

    Parquet has no second resolution and CSV has no types, so both need restoring; extra
    columns are kept, after the known ones.
    """
    path = Path(path)
    if path.suffix.lower() not in EXTENSIONS:  # not read as Parquet to fail on its bytes
        raise ValueError(
            f"{path}: unknown extension {path.suffix!r}; use {', '.join(EXTENSIONS)}"
        )
    if path.suffix.lower() == ".csv":
        header = read_table(path, "csv", nrows=0).columns
        _check_columns(path, header)
        frame = read_table(path, "csv", dtype={k: "str" for k in COLUMNS})
    else:
        frame = read_table(path, "parquet")
        _check_columns(path, frame.columns)
    for name, dtype in COLUMNS.items():
        frame[name] = _column(path, frame[name], name, dtype)
    amount = frame["amount"]
    _first_bad(path, "amount", ~(np.isfinite(amount) & (amount >= 0)), amount.astype("string"),
               "a finite number ≥ 0")  # fmt: skip
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[[*COLUMNS, *extra]]


def _column(path: Path, column: pd.Series, name: str, dtype: str) -> pd.Series:
    """``column`` as ``dtype``, or a ValueError naming the file, the column and the first row
    that is not one (a parser's own message names neither). Times must carry their offset:
    a time without one would be read as UTC, which its writer may not have meant."""
    if name in _TIMESTAMPS:
        if pd.api.types.is_datetime64_any_dtype(column):
            if getattr(column.dt, "tz", None) is None:
                raise ValueError(f"{path}: {name} has no time zone; store it with its zone")
            return column.dt.tz_convert("UTC").dt.as_unit("s")
        text = column.astype("string")
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        naive = ~text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", na=False)
        bad = (parsed.isna() & text.notna()) | (naive & text.notna())
        if name == "timestamp":
            bad |= text.isna()  # every transaction has one; a genuine one has no report time
        _first_bad(path, name, bad, text, "an ISO 8601 time with its offset, e.g. "
                   "2018-04-01T00:00:31Z")  # fmt: skip
        return parsed.dt.as_unit("s")
    if dtype == "str":  # ids, as the wire contract takes them (an empty one is read as NaN)
        text, bad = id_text(column)
        _first_bad(path, name, bad, text, f"1 to {ID_MAX_LENGTH} characters")
        return text.astype(str)
    if dtype == "bool" and not pd.api.types.is_bool_dtype(column):  # "False" is a true str
        text = column.astype("string").str.strip().str.lower()
        good = text.isin(["true", "false", "1", "0"])
        _first_bad(path, name, ~good.fillna(False), column.astype("string"), "true or false")
        return text.isin(["true", "1"]).astype(bool)
    try:
        return column.astype(dtype)
    except (TypeError, ValueError):
        text = column.astype("string").str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        kind = "a whole number" if dtype.startswith("int") else "a number"
        _first_bad(path, name, numbers.isna() | (numbers % 1 != 0 if "int" in dtype else False),
                   text, kind)  # fmt: skip
        return numbers.astype(dtype)


def _first_bad(path: Path, name: str, bad: pd.Series, text: pd.Series, wanted: str) -> None:
    rows = np.flatnonzero(bad.to_numpy(dtype=bool))
    if len(rows):
        row = int(rows[0])
        raise ValueError(
            f"{path}: {name} must be {wanted}; data row {row + 1} holds {text.iloc[row]!r}"
            + (f" ({len(rows) - 1:,} more rows like it)" if len(rows) > 1 else "")
        )


def _check_columns(path: Path, columns: pd.Index) -> None:
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path} is not a transaction dataset: missing {', '.join(missing)}")
