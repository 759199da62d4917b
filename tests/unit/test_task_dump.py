"""The task dump follows each task's await chain down to what it waits on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any

from streamer.task_dump import format_tasks


class _Actor:
    """Awaitable through a coroutine's own iterator, as Faust's agent actors are."""

    def __init__(self, gate: asyncio.Event) -> None:
        self._coro = _outer(gate)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()


async def _batches(gate: asyncio.Event) -> AsyncIterator[int]:
    await gate.wait()
    yield 1


async def _outer(gate: asyncio.Event) -> None:
    async for _ in _batches(gate):
        pass


async def _run_actor(actor: _Actor) -> None:
    await actor


async def test_the_chain_goes_through_awaitables_and_async_generators() -> None:
    gate = asyncio.Event()
    task = asyncio.create_task(_run_actor(_Actor(gate)), name="stuck-agent")
    await asyncio.sleep(0.01)
    try:
        line = next(ln for ln in format_tasks().splitlines() if "stuck-agent" in ln)
        steps = [step.split(" (")[0] for step in line.split(": ", 1)[1].split(" -> ")]
        assert steps == ["_run_actor", "_outer", "_batches", "Event.wait", "awaits a future"]
        assert "test_task_dump.py:" in line  # each frame says where it is
    finally:
        gate.set()
        await task
    assert "stuck-agent" not in format_tasks()
