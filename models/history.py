"""Simulated history and its features for a span of days, built once and cached on disk.

Replaying the whole book-size history through the feature store takes about two minutes, but
an evaluation only reads a few months of it. A feature row is the same (up to float rounding of
the window sums) as soon as the replay started :data:`~models.protocol.WARMUP_DAYS` before it,
since no window reaches further back; so the history is simulated in full, as the book does, and
replayed from the warm-up start only.

The cache key hashes the simulation, the span and the source of every module that shapes a
feature, so editing the feature code can never serve stale rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

import models.dataset
import models.simulate
import streamer.features.definitions
import streamer.features.keys
import streamer.features.memory
import streamer.features.store
from models.dataset import FeatureSet, build_features
from models.files import replacing
from models.protocol import WARMUP_DAYS
from models.simulate import SimulationConfig, progress_total, simulate
from streamer.features.definitions import FEATURE_NAMES

__all__ = ["FRAME_COLUMNS", "HistorySpan", "cache_path", "check_span", "load_history"]

log = logging.getLogger(__name__)

#: The transaction columns kept beside the features.
FRAME_COLUMNS = (
    "transaction_id",
    "timestamp",
    "customer_id",
    "terminal_id",
    "amount",
    "is_fraud",
    "fraud_scenario",
)
_SHAPING: tuple[ModuleType, ...] = (
    models.simulate,
    models.dataset,
    streamer.features.definitions,
    streamer.features.keys,  # the order in which the twin adds a card's same-time amounts
    streamer.features.memory,
    streamer.features.store,
)
Progress = Callable[[str, int], Callable[[int], object]]


class HistorySpan:
    """Days ``[first_used, end)`` whose features are needed, replayed from the warm-up."""

    def __init__(self, first_used: pd.Timestamp, end: pd.Timestamp) -> None:
        self.first_used = pd.Timestamp(first_used).floor("D")
        self.end = pd.Timestamp(end).floor("D")
        self.replay_start = self.first_used - pd.Timedelta(days=WARMUP_DAYS)

    def describe(self) -> str:
        last = self.end - pd.Timedelta(days=1)
        return f"{self.replay_start:%Y-%m-%d}..{last:%Y-%m-%d}"


def _cache_key(config: SimulationConfig, span: HistorySpan) -> str:
    digest = hashlib.sha256()
    meta = {"config": asdict(config), "span": span.describe(), "features": FEATURE_NAMES}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    for module in _SHAPING:
        assert module.__file__ is not None
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def cache_path(config: SimulationConfig, span: HistorySpan, cache_dir: Path) -> Path:
    """Where :func:`load_history` keeps these features."""
    history = "book" if config.streams == "book" else f"seed{config.seed}"
    name = f"{history}_{span.describe()}_{_cache_key(config, span)}.parquet"
    return Path(cache_dir) / name


def check_span(config: SimulationConfig, span: HistorySpan) -> None:
    """Raise ValueError, saying what was asked and what there is, when ``span`` needs days the
    simulation does not have."""
    start = pd.Timestamp(config.start_date, tz="UTC")
    end = start + pd.Timedelta(days=config.n_days)
    if span.replay_start < start or span.end > end:
        raise ValueError(
            f"history {span.describe()} (with {WARMUP_DAYS} days of warm-up) falls outside the "
            f"simulated {start:%Y-%m-%d}..{end - pd.Timedelta(days=1):%Y-%m-%d}"
        )


def load_history(
    config: SimulationConfig,
    span: HistorySpan,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> FeatureSet:
    """Features of the simulated transactions in ``span`` (warm-up rows included, first).

    ``progress(description, total)`` returns an update callback (``tqdm(...).update`` fits).
    """
    check_span(config, span)
    path = None
    if cache_dir is not None:
        path = cache_path(config, span, cache_dir)
        cached = _read(path)
        if cached is not None:
            return cached
    full = simulate(config, progress=progress("simulate", progress_total(config)[0])
                    if progress else None)
    ts = full["timestamp"]
    part = full.loc[(ts >= span.replay_start) & (ts < span.end), list(FRAME_COLUMNS)]
    part = part.assign(reported_at=full["reported_at"])
    features = build_features(part, progress=progress("features", len(part)) if progress else None)
    features = FeatureSet(features.frame[list(FRAME_COLUMNS)], features.X)
    if path is not None:
        _write(path, features)
    return features


def _write(path: Path, features: FeatureSet) -> None:
    table = features.frame.copy()
    for j, name in enumerate(FEATURE_NAMES):
        table[name] = features.X[:, j]
    with replacing(path) as tmp:
        table.to_parquet(tmp, engine="pyarrow", index=False, compression="zstd")


def _read(path: Path) -> FeatureSet | None:
    """The cached features, or None when there are none to use: a cache file that cannot be
    read (cut short, or not this layout) is only a miss, built again and replaced."""
    if not path.is_file():
        return None
    try:
        table = pd.read_parquet(path, engine="pyarrow")
        X = np.ascontiguousarray(table[list(FEATURE_NAMES)].to_numpy(dtype=np.float64))
        frame = table[list(FRAME_COLUMNS)].reset_index(drop=True)
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        log.warning("cannot read the cached features %s (%s); building them again", path, exc)
        return None
    return FeatureSet(frame, X)
