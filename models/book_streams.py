"""The handbook's own random streams: its published dataset, transaction for transaction.

:func:`models.simulate.simulate` draws from independent ``numpy.random.Generator`` streams and
is vectorised; it follows the book's distributions but not its random numbers, so its seed 0 is
*a* history like the book's, not *the* book's. The book's results are measured on one particular
history, and some of its numbers depend on that draw as much as on the model (Card Precision@100
is bounded by how many compromised cards are detectable on each test day). To compare on the very
same data, this module replays the book's generator call for call:

- customer profiles from the legacy global ``RandomState`` seeded 0 (x, y, mean amount, activity
  per customer, in that order), terminal profiles from one seeded 1 (x, y per terminal);
- each customer's transactions from a ``RandomState`` and a :class:`random.Random` both seeded with
  the customer's number: per day a Poisson count, per transaction a normal time of day (dropped
  outside the day, and then no amount is drawn), a normal amount (a negative one redrawn
  uniformly), and the terminal picked with ``random.choice`` from the reachable ones in index
  order;
- scenario 2's terminals and scenario 3's customers of day ``d`` as pandas' ``sample(n,
  random_state=d)`` picks them (``RandomState(d).permutation(n)[:k]``), for days ``0 ..
  last_day - 1``; scenario 3's transactions with ``random.Random(d).sample`` over the candidates
  in time order, amounts multiplied by 5 each time a transaction is picked (overlapping
  compromises of one customer compound, as in the book).

Legacy ``RandomState`` and ``random.Random`` streams are frozen across versions, so this is
exact up to the order of transactions in the same second (the book sorts with an unstable
sort; we keep generation order), which can only matter for scenario 3 when two candidates of one
day share a second. It is a Python loop over about 1.75 million transactions: it takes tens of
seconds where the vectorised simulator takes one or two, so it is used to anchor the evaluation,
not for load.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from models.simulate import (
    CUSTOMER_DAYS,
    CUSTOMER_FRAUD_FACTOR,
    CUSTOMER_FRAUD_SHARE,
    CUSTOMERS_PER_DAY,
    LOCATION_MAX,
    MAX_MEAN_TX_PER_DAY,
    MEAN_AMOUNT_RANGE,
    SCENARIO1_AMOUNT,
    SECONDS_PER_DAY,
    TERMINAL_DAYS,
    TERMINALS_PER_DAY,
    TIME_MEAN,
    TIME_STD,
    Profiles,
    SimulationConfig,
)

__all__ = ["BOOK_FRAUDS", "BOOK_TRANSACTIONS", "book_profiles", "book_transactions"]

#: What the book reports for its dataset (5,000 customers, 10,000 terminals, 183 days, r = 5).
BOOK_TRANSACTIONS = 1_754_155
BOOK_FRAUDS = 14_681

_CUSTOMER_PROFILE_SEED, _TERMINAL_PROFILE_SEED = 0, 1


def book_profiles(config: SimulationConfig) -> Profiles:
    """Customer and terminal profiles, drawn one scalar at a time in the book's order."""
    rs = np.random.RandomState(_CUSTOMER_PROFILE_SEED)
    rows = np.array(
        [
            (
                rs.uniform(0, LOCATION_MAX),
                rs.uniform(0, LOCATION_MAX),
                rs.uniform(*MEAN_AMOUNT_RANGE),
                rs.uniform(0, MAX_MEAN_TX_PER_DAY),
            )
            for _ in range(config.n_customers)
        ]
    ).reshape(config.n_customers, 4)
    rs = np.random.RandomState(_TERMINAL_PROFILE_SEED)
    terminals = np.array(
        [(rs.uniform(0, LOCATION_MAX), rs.uniform(0, LOCATION_MAX))
         for _ in range(config.n_terminals)]
    ).reshape(config.n_terminals, 2)
    return Profiles(rows[:, :2], rows[:, 2], rows[:, 2] / 2, rows[:, 3], terminals)


def _reachable(profiles: Profiles, customer: int, radius: float) -> list[int]:
    """The terminals closer than ``radius``, in index order (what ``random.choice`` indexes)."""
    dist = np.sqrt(np.sum(np.square(profiles.customer_xy[customer] - profiles.terminal_xy),
                          axis=1))
    return np.flatnonzero(dist < radius).tolist()


def _customer_transactions(
    profiles: Profiles, customer: int, reachable: list[int], n_days: int
) -> tuple[list[int], list[int], list[float]]:
    """One customer's (seconds, terminal, amount) in the book's draw order."""
    rs = np.random.RandomState(customer)
    py = random.Random(customer)
    rate = profiles.mean_nb_tx_per_day[customer]
    mean, std = profiles.mean_amount[customer], profiles.std_amount[customer]
    seconds: list[int] = []
    terminals: list[int] = []
    amounts: list[float] = []
    for day in range(n_days):
        for _ in range(rs.poisson(rate)):
            time_tx = int(rs.normal(TIME_MEAN, TIME_STD))
            if not 0 < time_tx < SECONDS_PER_DAY:
                continue
            amount = rs.normal(mean, std)
            if amount < 0:
                amount = rs.uniform(0, mean * 2)
            amount = float(np.round(amount, decimals=2))
            if reachable:
                seconds.append(time_tx + day * SECONDS_PER_DAY)
                terminals.append(py.choice(reachable))
                amounts.append(amount)
    return seconds, terminals, amounts


def _sample_ids(population: int, k: int, day: int) -> np.ndarray:
    """pandas' ``Series.sample(n=k, random_state=day)`` positions over ``range(population)``."""
    return np.random.RandomState(day).permutation(population)[: min(k, population)]


def book_transactions(
    config: SimulationConfig, progress: Callable[[int], object] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer, terminal, seconds, amount, scenario), sorted by time, from the book's streams.

    ``progress`` is called with the number of customers done, every 100 customers.
    """
    profiles = book_profiles(config)
    parts: list[tuple[np.ndarray, ...]] = []
    for c in range(config.n_customers):
        times, terminals, amounts = _customer_transactions(
            profiles, c, _reachable(profiles, c, config.radius), config.n_days
        )
        parts.append((np.full(len(times), c, dtype=np.int64), np.asarray(terminals, np.int64),
                      np.asarray(times, np.int64), np.asarray(amounts, np.float64)))
        if progress is not None and (c + 1) % 100 == 0:
            progress(100)
    if progress is not None and config.n_customers % 100:
        progress(config.n_customers % 100)
    customer, terminal, seconds, amount = (
        np.concatenate(column) for column in zip(*parts, strict=True)
    )
    order = np.argsort(seconds, kind="stable")
    customer, terminal, seconds, amount = (customer[order], terminal[order], seconds[order],
                                           amount[order])
    day = seconds // SECONDS_PER_DAY

    scenario = np.zeros(len(amount), dtype=np.int64)
    scenario[amount > SCENARIO1_AMOUNT] = 1
    last_day = int(day.max()) if len(day) else 0
    for d in range(last_day):
        in_days = (day >= d) & (day < d + TERMINAL_DAYS)
        hit = _sample_ids(config.n_terminals, TERMINALS_PER_DAY, d)
        scenario[in_days & np.isin(terminal, hit)] = 2
    for d in range(last_day):
        in_days = (day >= d) & (day < d + CUSTOMER_DAYS)
        hit = _sample_ids(config.n_customers, CUSTOMERS_PER_DAY, d)
        candidates = np.flatnonzero(in_days & np.isin(customer, hit)).tolist()
        chosen = random.Random(d).sample(candidates, k=len(candidates) // CUSTOMER_FRAUD_SHARE)
        amount[chosen] = np.round(amount[chosen] * CUSTOMER_FRAUD_FACTOR, 2)
        scenario[chosen] = 3
    return customer, terminal, seconds, amount, scenario
