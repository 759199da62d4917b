"""The task dump follows each task's await chain down to what it waits on; the stall watch
speaks once per stall, and only when work waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any

from streamer.stalls import StallWatch, format_tasks


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
        assert "test_stalls.py:" in line  # each frame says where it is
    finally:
        gate.set()
        await task
    assert "stuck-agent" not in format_tasks()


def test_the_stall_watch_warns_once_per_stall_and_only_with_work_waiting() -> None:
    watch = StallWatch(after_s=60)
    assert watch.check(progress=0, waiting=5, now=0) is None
    assert watch.check(progress=0, waiting=5, now=59) is None
    assert watch.check(progress=0, waiting=5, now=61) == 61
    assert watch.check(progress=0, waiting=5, now=200) is None  # once per stall
    assert watch.check(progress=7, waiting=5, now=201) is None  # progress re-arms it
    assert watch.check(progress=7, waiting=5, now=262) == 61
    # idle with nothing to do is not a stall, however long
    idle = StallWatch(after_s=60)
    assert all(idle.check(progress=3, waiting=0, now=t) is None for t in range(0, 1000, 10))
    # and the clock of a stall starts when work is waiting, not when progress last moved
    assert idle.check(progress=3, waiting=1, now=1000) is None
    assert idle.check(progress=3, waiting=1, now=1059) is None
    assert idle.check(progress=3, waiting=1, now=1061) == 61


def test_how_long_work_has_waited_is_known_between_warnings() -> None:
    watch = StallWatch(after_s=10)
    assert watch.stalled_for(now=0) is None
    watch.check(progress=1, waiting=5, now=0)
    watch.check(progress=1, waiting=5, now=11)  # warned once here
    assert watch.check(progress=1, waiting=5, now=20) is None  # not again
    assert watch.stalled_for(now=20) == 20  # but still stalled
    watch.check(progress=2, waiting=5, now=21)  # progress
    assert watch.stalled_for(now=21) == 0
    watch.check(progress=2, waiting=0, now=22)  # nothing waiting
    assert watch.stalled_for(now=30) is None
