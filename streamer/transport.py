"""Faust's aiokafka transport, with the one change that makes pausing partitions safe.

Faust's ``Consumer.getmany`` fetches a batch of records for the *active* partitions and then
yields them one by one, skipping any record whose partition is no longer in the active set. That
set is the live object that ``pause_partitions`` edits, so pausing a partition while a fetched
batch is still being handed out silently drops the rest of that partition's records — and the
next commit moves past them. Event-time alignment (:mod:`streamer.alignment`) pauses partitions
from the agents, in exactly that window.

:class:`Consumer` hands ``getmany`` a copy of the active set instead: what was fetched for a
partition is delivered, and a pause takes effect from the next fetch on. Rebalances are not
affected (``getmany`` stops on a generation change or when flow stops, before looking at the set).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

__all__ = ["AlignedApp", "Consumer", "Transport"]


class Consumer(driver.Consumer):
    """aiokafka consumer whose fetched records are delivered even if their partition is paused."""

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:
        records, active = await super()._wait_next_records(timeout)
        return records, None if active is None else set(active)


class Transport(driver.Transport):
    """The aiokafka transport with :class:`Consumer`."""

    Consumer = Consumer


class AlignedApp(faust.App):
    """A Faust app on :class:`Transport` (``kafka://`` URLs only, as the worker uses)."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
