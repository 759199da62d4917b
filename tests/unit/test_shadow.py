"""The shadow model outside the worker loop: how a worker follows it, and what status says."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from models.registry import Manifest, ModelRegistry
from streamer.cli.status import _model
from streamer.features.definitions import FEATURE_NAMES
from streamer.features.memory import InMemoryFeatureStore
from streamer.runtime import Runtime
from streamer.settings import Settings


def _tamper(registry: ModelRegistry, version: str) -> None:
    with (registry.root / version / "model.joblib").open("ab") as artifact:
        artifact.write(b"\0")


async def test_a_worker_follows_the_shadow_and_refuses_a_tampered_one(
    registry: ModelRegistry, add_version: Callable[..., Manifest], caplog: pytest.LogCaptureFixture
) -> None:
    for version in ("v1", "v2", "v3"):
        add_version(version)
    registry.promote("v1")
    runtime = Runtime(Settings(), store=InMemoryFeatureStore(), registry=registry)
    await runtime.refresh_model()
    assert runtime.model_version == "v1" and runtime.shadow() is None

    registry.set_shadow("v2")
    await runtime.refresh_model()
    shadow = runtime.shadow()
    assert shadow is not None and shadow.version == "v2"

    registry.set_shadow("v3")
    _tamper(registry, "v3")  # after it was set: the registry checked it then
    with caplog.at_level(logging.ERROR):
        await runtime.refresh_model()
    assert runtime.shadow() is None and runtime.model_version == "v1"
    assert "not scoring with shadow model v3" in caplog.text
    assert "does not match its manifest" in caplog.text

    registry.set_shadow("v2")
    await runtime.refresh_model()
    assert (shadow := runtime.shadow()) is not None and shadow.version == "v2"
    registry.promote("v2")  # a shadow promoted serves, and is not scored beside itself
    await runtime.refresh_model()
    assert runtime.model_version == "v2" and runtime.shadow() is None


def test_status_names_the_shadow_and_warns_when_it_cannot_be_scored(
    registry: ModelRegistry, add_version: Callable[..., Manifest]
) -> None:
    for version in ("v1", "v2"):
        add_version(version)
    registry.promote("v1")
    registry.set_shadow("v2")
    check = _model(Settings())
    assert (
        check.ok and "v1 promoted" in check.detail and "; shadow v2 (decisions on" in check.detail
    )
    assert check.warnings == [] and check.data["shadow"] == "v2"
    _tamper(registry, "v2")
    check = _model(Settings())
    assert check.ok and "the shadow is not scored" in check.warnings[0]
    # one trained on other features than the workers compute is not scored either
    add_version("v3", features=[*FEATURE_NAMES[:-1], "AN_OLD_FEATURE"])
    registry.set_shadow("v3")
    check = _model(Settings())
    assert check.ok and "model v3 expects features" in check.warnings[0], check.warnings


def test_status_refuses_a_promoted_model_the_workers_would_refuse(
    registry: ModelRegistry, add_version: Callable[..., Manifest]
) -> None:
    """Hash intact, features not the workers': no worker would start, so it is a problem."""
    add_version("old", features=[*FEATURE_NAMES[:-1], "AN_OLD_FEATURE"])
    registry.promote("old")
    check = _model(Settings())
    assert not check.ok and "model old expects features" in check.detail
    assert "retrain with `fraud-streamer train`" in check.detail
