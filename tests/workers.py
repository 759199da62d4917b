"""Fixtures that run the real worker against the local Kafka and Redis, for the integration
and end-to-end tiers (registered by ``tests/conftest.py``).

Each test gets its own topics, consumer group, Redis database and web port, so tests do not see
each other's data; the worker runs as a real subprocess (``python -m streamer worker``), which
is what lets a test SIGKILL it mid-stream.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd
import pytest
from redis.asyncio import Redis

from models.dataset import build_features
from models.registry import ModelRegistry
from models.simulate import SimulationConfig, simulate
from models.train import fit_best
from streamer.features.definitions import FEATURE_NAMES
from streamer.kafka_topics import contract_topics
from streamer.settings import Settings
from tests.integration.harness import WorkerEnv

_db_numbers = itertools.count(1)
_ports = itertools.count(16100)


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    """A small simulated population: enough history to train on and to replay."""
    return simulate(SimulationConfig(n_customers=400, n_terminals=800, n_days=80, seed=7))


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


def private_env(stack: Settings, registry: ModelRegistry, data_dir: Path) -> dict[str, str]:
    """``STREAMER_*`` values that give workers their own topics, consumer group, Redis
    database (not flushed here), web port, registry and data directory on the shared stack:
    what one test's workers read and write is neither another test's nor a user's demo."""
    suffix = uuid.uuid4().hex[:8]
    db = next(_db_numbers) % 16 or 1
    base_url = stack.redis_url.rsplit("/", 1)[0]
    return {
        "STREAMER_TOPIC_TRANSACTIONS": f"tx-{suffix}",
        "STREAMER_TOPIC_LABELS": f"labels-{suffix}",
        "STREAMER_TOPIC_DECISIONS": f"decisions-{suffix}",
        "STREAMER_TOPIC_ALERTS": f"alerts-{suffix}",
        "STREAMER_TOPIC_DEAD_LETTERS": f"dead-{suffix}",
        "STREAMER_TOPIC_SHADOW_DECISIONS": f"shadow-{suffix}",
        "STREAMER_TOPIC_RATES": f"rates-{suffix}",
        "STREAMER_TOPIC_BLOCKLISTS": f"blocklists-{suffix}",
        "STREAMER_CONSUMER_GROUP": f"worker-{suffix}",
        "STREAMER_REDIS_URL": f"{base_url}/{db}",
        "STREAMER_MODEL_REGISTRY": str(registry.root),
        "STREAMER_WEB_PORT": str(next(_ports)),
        "STREAMER_DATA_DIR": str(data_dir),
        "STREAMER_PARTITIONS": "4",
    }


def settings_of(stack: Settings, overrides: dict[str, str]) -> Settings:
    """The settings a worker started with :func:`private_env`'s values has, as the test sees
    them (the stack's brokers)."""
    return Settings(**{k.removeprefix("STREAMER_").lower(): v for k, v in overrides.items()},
                    kafka_bootstrap_servers=stack.kafka_bootstrap_servers)  # fmt: skip


@pytest.fixture
async def worker_env(
    stack: Settings, registry: ModelRegistry, tmp_path: Path
) -> AsyncIterator[WorkerEnv]:
    overrides = private_env(stack, registry, tmp_path / "data")
    env = {**os.environ, **overrides}
    settings = settings_of(stack, overrides)
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
