"""Fixtures for tests that run the real worker against the local Kafka and Redis.

Each test gets its own topics, consumer group, Redis database and web port, so tests do not see
each other's data; the worker runs as a real subprocess (``python -m streamer worker``), which
is what lets a test SIGKILL it mid-stream.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pandas as pd
import pytest
from redis.asyncio import Redis

from models.dataset import build_features
from models.registry import ModelRegistry
from models.simulate import SimulationConfig, simulate
from models.train import fit_best
from streamer.features.definitions import FEATURE_NAMES
from streamer.kafka import contract_topics
from streamer.local_redis_cluster import LocalCluster, start_cluster
from streamer.settings import Settings
from tests.integration.harness import WorkerEnv

_db_numbers = itertools.count(1)
_ports = itertools.count(16100)


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    """A small simulated population: enough history to train on and to replay."""
    return simulate(SimulationConfig(n_customers=400, n_terminals=800, n_days=80, seed=7))


@pytest.fixture(scope="session")
def redis_cluster(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """A Redis Cluster of three primaries on free ports, for the tests of cluster mode (after
    ``stack``, which has made sure redis-server is installed)."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, history: pd.DataFrame) -> ModelRegistry:
    """A registry holding one promoted model trained on ``history``."""
    root = tmp_path_factory.mktemp("registry")
    registry = ModelRegistry(root)
    features = build_features(history)
    result = fit_best(features, train_days=14, candidates=["hist_gb"])
    manifest = registry.register(
        result.estimator,
        algorithm="hist_gb",
        features=FEATURE_NAMES,
        baseline=result.baseline,
        profile=result.profile,
        version="test-model-a",
    )
    registry.promote(manifest.version)
    return registry


@pytest.fixture
async def worker_env(
    stack: Settings, registry: ModelRegistry, tmp_path: Path
) -> AsyncIterator[WorkerEnv]:
    suffix = uuid.uuid4().hex[:8]
    db = next(_db_numbers) % 16 or 1
    base_url = stack.redis_url.rsplit("/", 1)[0]
    overrides = {
        "STREAMER_TOPIC_TRANSACTIONS": f"tx-{suffix}",
        "STREAMER_TOPIC_LABELS": f"labels-{suffix}",
        "STREAMER_TOPIC_DECISIONS": f"decisions-{suffix}",
        "STREAMER_TOPIC_ALERTS": f"alerts-{suffix}",
        "STREAMER_TOPIC_DEAD_LETTERS": f"dead-{suffix}",
        "STREAMER_CONSUMER_GROUP": f"worker-{suffix}",
        "STREAMER_REDIS_URL": f"{base_url}/{db}",
        "STREAMER_MODEL_REGISTRY": str(registry.root),
        "STREAMER_WEB_PORT": str(next(_ports)),
        "STREAMER_DATA_DIR": str(tmp_path / "data"),
        "STREAMER_PARTITIONS": "4",
    }
    env = {**os.environ, **overrides}
    settings = Settings(
        **{k.removeprefix("STREAMER_").lower(): v for k, v in overrides.items()},
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
    )
    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()
    await redis.aclose()
    await contract_topics(settings)
    worker = WorkerEnv(settings, env, tmp_path)
    yield worker
    worker.stop_all()
    # leave the shared Redis as found: `bench` (and a user's own runs) claim empty databases,
    # and a second `make test` on a stack that is still up must find them empty too
    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()
    await redis.aclose()


@pytest.fixture
def cluster_worker_env(worker_env: WorkerEnv, redis_cluster: LocalCluster) -> WorkerEnv:
    """``worker_env`` with its state on the test Redis Cluster (``STREAMER_REDIS_CLUSTER``),
    emptied first: the cluster has one database, shared by the tests that use it."""
    redis_cluster.flush()
    url = redis_cluster.url()
    env = {**worker_env.env, "STREAMER_REDIS_URL": url, "STREAMER_REDIS_CLUSTER": "true"}
    settings = worker_env.settings.model_copy(update={"redis_url": url, "redis_cluster": True})
    return dataclasses.replace(worker_env, settings=settings, env=env)  # its workers stop with it


@pytest.fixture
def replay_slice(history: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """40 days of the history (inside the stores' retention, so nothing is trimmed)."""
    start = history["timestamp"].min() + pd.Timedelta(days=20)
    yield history[
        (history["timestamp"] >= start) & (history["timestamp"] < start + pd.Timedelta(days=40))
    ]
