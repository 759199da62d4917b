"""The worker's path for one record: validated, held in the event-time merge, through the
feature store, decided, published, and only then acknowledged.

:class:`EventFlow` owns what that path keeps between batches — the merge, the rebalance gate,
the queue between the store and the decisions, and the count of records in flight — so that
:mod:`streamer.app` only registers Faust's agents and timers and hands each its method here.

Records reach :meth:`EventFlow.take` in ``take_events`` batches. Each is validated by the
:class:`~streamer.pipeline.Pipeline` and held in the merge (:mod:`streamer.alignment`), which
releases them in event-time order: a transaction at its time, a label at its report time (label
partitions are strict, so every label reported at or before a transaction is applied before it
is decided, however the two topics' fetches interleave). :meth:`EventFlow.decide_released` takes
each released batch through Redis — its labels applied, its transactions enriched, in release
order — and queues it; :meth:`EventFlow.settle_released`, a task of its own, decides it (model,
rules, reasons), sends every output without waiting on each, awaits all acknowledgements, and
only then acks its events — so an input offset is committed only after the outputs it caused
are durable. Splitting the work there lets one batch's Redis round trip run while the previous
batch is scored and published. A crash before the ack replays the batch, and the idempotent
feature store and deterministic scoring make the replay produce the same decisions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Iterable
from typing import Any, NamedTuple, NoReturn, cast

from faust.types import TP

from streamer.alignment import EventTimeMerger, RebalanceGate
from streamer.input_keys import KeyReport
from streamer.pipeline import (
    BatchOutput,
    InputMessage,
    Pipeline,
    Prepared,
    Received,
    in_label_order,
)
from streamer.runtime import Runtime
from streamer.settings import Settings
from streamer.stalls import StallWatch, format_partitions, format_tasks
from streamer.transport import Consumer, WorkerApp

__all__ = ["EventFlow", "exit_for_replay"]

log = logging.getLogger("streamer.worker")


class _Held(NamedTuple):
    """An event waiting in the event-time merge, with what it was validated to."""

    event: Any
    received: Received


class _Step(NamedTuple):
    """One step of a released batch (see ``in_label_order``) past the feature store: its
    labels' output (dead letters), and its transactions, prepared for deciding."""

    labelled: BatchOutput | None
    labels: int
    prepared: Prepared | None
    txs: list[_Held]


class _Released(NamedTuple):
    """A batch the event-time merge released, through the store, waiting to be settled."""

    batch: list[_Held]
    steps: list[_Step]
    pipeline: Pipeline
    started: float  # time.perf_counter() when its first store call began


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def _messages(events: Iterable[Any]) -> list[InputMessage]:
    return [
        # Faust gives the record's time in seconds
        InputMessage(m.topic, m.partition, m.offset, m.key, m.value, round(m.timestamp * 1000))
        for m in (e.message for e in events)
    ]


def exit_for_replay(stage: str, records: int) -> NoReturn:
    """Exit the worker at once, leaving a failed batch uncommitted.

    Faust acks a ``take_events`` batch even when its body raises; exiting instead leaves the
    batch's offsets uncommitted, so whoever owns its partitions next replays it. Nothing is
    lost. Called from an ``except`` block, so the log line carries the traceback.
    """
    log.critical(
        "a batch of %d records failed %s; exiting so it is replayed",
        records,
        stage,
        exc_info=True,
    )
    logging.shutdown()
    os._exit(70)


class EventFlow:
    """The records one worker has read and not yet acknowledged, and the steps they go
    through (module docstring)."""

    def __init__(self, app: WorkerApp, settings: Settings, runtime: Runtime) -> None:
        self.app = app
        self.settings = settings
        self.runtime = runtime
        self.metrics = runtime.metrics
        self.label_topic = settings.topic_labels
        self.merger: EventTimeMerger[TP, _Held] = EventTimeMerger(
            max_skew_ms=int(settings.max_partition_skew_hours * 3_600_000),
            idle_ms=int(settings.partition_idle_s * 1000),
            queue_max=settings.batch_max * 2,
            strict=lambda tp: tp.topic == self.label_topic,
            exact=lambda held: held.received.mark is not None and not held.received.mark.is_fraud,
        )
        self.gate: RebalanceGate[TP] = RebalanceGate()  # records read before a rebalance stay out
        self.stall_watch = StallWatch(settings.stall_warn_s)
        self.in_flight = 0  # records released by the merge and not yet acked
        self.miskeyed = KeyReport()
        self._merging = asyncio.Lock()
        self._unrated: set[str] = set()  # currencies without a rate, warned of once
        self._source: Any = None  # the input stream, once the agent runs: acks go through it
        # released batches past Redis, in release order, for settle_released: at most one
        # waits while one is settled, so the store works at most two batches ahead of publishing
        self._settling: asyncio.Queue[_Released] = asyncio.Queue(maxsize=1)

    @property
    def _consumer(self) -> Consumer:
        return cast(Consumer, self.app.consumer)

    async def take(self, stream: Any) -> None:
        """The input agent's body: validate each ``take_events`` batch, hold it in the merge,
        and decide what the merge releases."""
        self._source = stream
        settings = self.settings
        async for events in stream.take_events(
            settings.batch_max, within=settings.batch_within_ms / 1000
        ):
            consumed_at = time.perf_counter()
            now = _now_ms()
            generation = self.app.consumer_generation_id
            labels = [e for e in events if e.message.topic == self.label_topic]
            txs = [e for e in events if e.message.topic != self.label_topic]
            try:  # before the references below are taken, Faust would ack the batch
                pipeline = await self.runtime.pipeline()  # the first loads the model
                validated = [
                    *pipeline.receive_labels(_messages(labels), consumed_at),
                    *pipeline.receive(_messages(txs), consumed_at),
                ]
            except Exception:
                exit_for_replay("before it could be decided", len(events))
            for event, received in zip([*labels, *txs], validated, strict=True):
                # take_events acks the batch when this step ends; the extra reference keeps
                # the offset uncommitted until settle_released has published the decision
                event.message.incref()
                message = received.message
                tp = TP(message.topic, message.partition)
                if not self.gate.admits(tp, event.message.generation_id, generation):
                    # read before a rebalance: the merge has forgotten the records before it,
                    # so deciding it now could put a card's transactions out of order. It is
                    # never acked; the partition's owner reads it again.
                    continue
                self.merger.add(tp, message.offset, received.ts_ms, _Held(event, received), now)
            self.metrics.busy.inc(time.perf_counter() - consumed_at)  # the rest counts in there
            await self.decide_released()

    async def decide_released(self) -> None:
        """Take the batches the event-time merge releases through the feature store (a batch's
        labels first, a withdrawal in its place: see ``in_label_order``) and hand them, in
        release order, to :meth:`settle_released`, which decides, publishes and acks them.

        The store's round trip is most of a batch's wait; splitting the work in two lets it
        overlap the previous batch's model call and publishing. Redis still sees every batch
        in release order, one after the other, so the features are those of serial processing.
        Also called on a timer: no new records wake no agent, and held ones whose wait is over
        are released here.
        """
        if self._source is None:
            return
        consumer, merger = self._consumer, self.merger
        async with self._merging:
            busy_since = time.perf_counter()
            pipeline = await self.runtime.pipeline()
            while True:
                # a rebalance can take partitions away during any await below; what they held
                # was never acked, and their next owner reads it again
                assigned = consumer.assignment()
                merger.retain(assigned)
                merger.expect(consumer.start_offsets(assigned), _now_ms())
                batch = merger.release(consumer.end_offset, _now_ms(), self.settings.batch_max)
                if not batch:
                    break
                self.in_flight += len(batch)
                started = time.perf_counter()
                steps = await self._through_store(pipeline, batch)
                await self._settling.put(_Released(batch, steps, pipeline, started))
            merger.retain(consumer.assignment())
            pause, resume = merger.flow()
            if pause:
                consumer.pause_partitions(pause)
            if resume:
                consumer.resume_partitions(resume)
            now = _now_ms()
            self.metrics.partition_skew.set(merger.skew_ms(consumer.end_offset, now) / 1000)
            self.metrics.set_pending(
                transactions=merger.pending_ms(consumer.end_offset, now),
                labels=merger.pending_ms(consumer.end_offset, now, strict=True),
            )
            self.metrics.held.set(merger.held)
            self.metrics.busy.inc(time.perf_counter() - busy_since)

    @staticmethod
    async def _through_store(pipeline: Pipeline, batch: list[_Held]) -> list[_Step]:
        """Apply a released batch's labels and enrich its transactions, step by step."""
        steps: list[_Step] = []
        for labels, txs in in_label_order(batch, lambda held: held.received):
            labelled = prepared = None
            try:
                if labels:
                    labelled = await pipeline.apply_labels([held.received for held in labels])
                if txs:
                    prepared = await pipeline.prepare([held.received for held in txs])
            except Exception:
                exit_for_replay("in the feature store", len(batch))
            steps.append(_Step(labelled, len(labels), prepared, txs))
        return steps

    async def settle_released(self) -> None:
        """Decide, publish and ack the batches :meth:`decide_released` has taken through the
        store, one at a time, in release order (a task of its own, for ever).

        A held event is acked only here, after its outputs are published: until then its
        offset is not committed, so a crash re-delivers it (and the store, idempotent per
        transaction, gives it the features it had).
        """
        while True:
            released = await self._settling.get()
            try:
                await self._finish(released)
            except Exception:
                # whatever fails here (publishing above all), no more of the batch may be acked
                # and the agent must not wait for this task: exit, and the batch is replayed
                exit_for_replay("while deciding and publishing", len(released.batch))

    async def _finish(self, released: _Released) -> None:
        """One released batch: decide each step, publish its outputs, then ack its events."""
        metrics = self.metrics
        for step in released.steps:
            if step.labelled is not None:
                await self.publish(step.labelled)
            out = None
            if step.prepared is not None:
                out = await released.pipeline.settle(step.prepared)
                await self.publish(out)
            seconds = time.perf_counter() - released.started
            if step.labelled is not None:
                metrics.observe_batch("labels", step.labelled, seconds, step.labels)
                self.miskeyed.add(step.labelled.key_mismatches, step.labelled.key_mismatch)
            if out is not None:
                metrics.observe_batch("transactions", out, seconds, len(step.txs))
                self.miskeyed.add(out.key_mismatches, out.key_mismatch)
                self._warn_unrated(out.unconverted.keys() - self._unrated)
                self.runtime.observe_drift(out)
                metrics.observe_decided(held.received.ts_ms for held in step.txs)
                metrics.observe_ages(
                    self.settings.topic_transactions,
                    (held.event.message.timestamp for held in step.txs),
                    time.time(),
                )
        for held in released.batch:
            await self._source.ack(held.event)
        self.in_flight -= len(released.batch)

    async def publish(self, out: BatchOutput) -> None:
        """Send every record of the batch, then wait for all acknowledgements together.

        The records go straight to the transport producer: Faust's ``Topic.send`` yields to the
        event loop on every message (``maybe_start_producer`` is stampede-guarded, which
        sleeps), so aiokafka would ship a batch as a dozen few-record requests, each waiting for
        its acks=all round trip before the next may leave.
        """
        settings = self.settings
        producer = await self.app.maybe_start_producer()
        pending: list[Awaitable[Any]] = []
        for topic, records in (
            (settings.topic_decisions, out.decisions),
            (settings.topic_alerts, out.alerts),
            (settings.topic_dead_letters, out.dead_letters),
            (settings.topic_features, out.features),  # empty unless the feature log is on
            (settings.topic_shadow_decisions, out.shadow_decisions),  # empty without a shadow
        ):
            for key, value in records:
                pending.append(await producer.send(topic, key, value, None, None, None))
        await asyncio.gather(*pending)

    def _warn_unrated(self, currencies: set[str]) -> None:
        for currency in sorted(currencies):
            self._unrated.add(currency)
            log.warning(
                "transactions in %s are scored without their amount and reviewed at least: "
                "there is no rate from %s to %s (STREAMER_EXCHANGE_RATES, or `fraud-streamer "
                "rates set`; streamer_unconverted_transactions_total counts them)",
                currency,
                currency,
                self.settings.base_currency,
            )

    def revoke(self, revoked: Any) -> None:
        """Partitions taken away: what they held was never acked, and their next owner reads
        it again; records of them read before the rebalance are kept out from now on."""
        self.gate.revoke(revoked, self.app.consumer_generation_id)
        self.merger.forget(revoked)

    def partition_report(self) -> str:
        """For a stall's report: each partition owned, what the merge holds of it, and which of
        the switches its reading depends on are off."""
        held = {tp: len(queue) for tp, queue in self.merger.queues.items()}
        try:
            return format_partitions(self._consumer.partition_states(held))
        except Exception as exc:  # a report must not take the worker down
            return f"the partitions owned: not readable now ({exc!r})"

    def report_lag(self) -> None:
        """Refresh the lag gauges, and warn when records wait and none is processed."""
        lags = self._consumer.lag()
        self.metrics.set_lag({(tp.topic, tp.partition): n for tp, n in lags.items()})
        waiting = sum(lags.values()) + self.merger.held + self.in_flight
        stalled = self.stall_watch.check(self.metrics.processed, waiting, time.monotonic())
        if stalled is not None:
            log.warning(
                "no record processed for %.0f s with %d waiting (%d in batches being "
                "decided, %d held by the merge); what each task waits on:\n%s\n%s",
                stalled,
                waiting,
                self.in_flight,
                self.merger.held,
                format_tasks(),
                self.partition_report(),
            )

    def stalled_for(self) -> float | None:
        """Seconds records have waited with none processed, once past the warning's limit."""
        stalled = self.stall_watch.stalled_for(time.monotonic())
        if stalled is not None and stalled >= self.settings.stall_warn_s:
            return stalled
        return None
