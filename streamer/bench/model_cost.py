"""What one model call costs the worker, by batch size: scikit-learn's loop against the flat path.

The end-to-end figures say how fast the worker is; this says how much of a batch goes to the
model, and what :mod:`streamer.flat_trees` saves at the batch sizes live traffic makes. Both
paths run in this process on one thread, as the worker runs them, on rows of the bench's own
history (its last ``FEATURE_DAYS`` days through the worker's feature code: windows are cut short
at the start, which changes the values a little, not the shape of the trees' paths).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BATCH_SIZES", "model_cost"]

BATCH_SIZES = (1, 10, 50, 100, 200, 500)
FEATURE_DAYS = 10


def _ms_per_call(call: Callable[[], object], budget_s: float) -> float:
    """Median wall time of one call, over as many calls as ``budget_s`` allows (at least 5)."""
    call()  # warm: first-call allocations are not what a running worker pays
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def model_cost(
    registry_root: Path,
    version: str,
    history: pd.DataFrame,
    *,
    sizes: Sequence[int] = BATCH_SIZES,
    budget_s: float = 0.5,
) -> dict[str, Any]:
    """Per batch size: ms per call of ``predict_proba`` and of the flat path (None if none)."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from models.dataset import build_features
    from models.registry import ModelRegistry
    from streamer.flat_trees import flat_predictor
    from streamer.scoring import FLAT_MAX_ROWS, one_thread

    estimator = ModelRegistry(registry_root).load(version).estimator
    one_thread(estimator)
    flat = flat_predictor(estimator)
    since = history["timestamp"].max() - pd.Timedelta(days=FEATURE_DAYS)
    X = build_features(history[history["timestamp"] >= since]).X
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    with threadpool_limits(1):
        for n in sizes:
            batch = X[rng.choice(len(X), size=n)]
            sklearn_ms = _ms_per_call(partial(estimator.predict_proba, batch), budget_s)
            flat_ms = None if flat is None else _ms_per_call(partial(flat, batch), budget_s)
            rows.append({"rows": n, "sklearn_ms": sklearn_ms, "flat_ms": flat_ms})
    return {"version": version, "flat_max_rows": FLAT_MAX_ROWS, "batches": rows}
