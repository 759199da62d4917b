"""The task dump follows each task's await chain down to what it waits on, and says which
switch keeps a partition from being read; the stall watch speaks once per stall, and only when
work waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any

from streamer.stalls import PartitionState, StallWatch, format_partitions, format_tasks


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


def _partition(name: str, **changes: Any) -> PartitionState:
    fields: dict[str, Any] = dict(
        tp=name, end=1224, next_read=1100, fetch_position=1100, fetched_waiting=False,
        active=True, paused=False, buffered=False, fetch_paused=False, held=0,
    )  # fmt: skip
    return PartitionState(**{**fields, **changes})


def test_each_partition_says_how_much_is_left_and_which_switch_is_off() -> None:
    report = format_partitions(
        [
            _partition("tx[1]", active=False, buffered=True, fetched_waiting=True, held=7),
            _partition("tx[0]", end=None),
            _partition("tx[2]", end=1000, active=False, paused=True, fetch_paused=True),
        ]
    )
    assert report.splitlines() == [
        "the partitions owned, each:",
        "  tx[0]: ? to read (next 1100, end None, aiokafka at 1100), 0 held by the merge; "
        "asked for",
        "  tx[1]: 124 to read (next 1100, end 1224, aiokafka at 1100), 7 held by the merge; "
        "not asked for, held back by a full stream buffer, fetched records waiting in aiokafka",
        "  tx[2]: 0 to read (next 1100, end 1000, aiokafka at 1100), 0 held by the merge; "
        "not asked for, paused by the worker, paused in aiokafka",
    ]
