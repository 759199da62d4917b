"""The Faust app: topics and agents, wiring only.

One agent reads transactions and labels together. It takes events in batches with manual
acknowledgement (``take_events``), has :class:`~streamer.pipeline.Pipeline` validate them, and
holds them in the event-time merge (:mod:`streamer.alignment`), which releases them in
event-time order: a transaction at its time, a label at its report time (label partitions are
strict, so every label reported at or before a transaction is applied before it is decided,
however the two topics' fetches interleave). Each released batch's labels are applied and its
transactions enriched in Redis, in release order; a second task, ``settle_released``, then
decides them (model, rules, reasons), sends every output without waiting on each, awaits all
acknowledgements, and only then acks its events — so an input offset is committed only after the
outputs it caused are durable. Splitting the work there lets one batch's Redis round trip run
while the previous batch is scored and published. A crash before the ack replays the batch,
and the idempotent feature store and deterministic scoring make the replay produce the same
decisions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Iterable
from typing import Any, NamedTuple, NoReturn, cast

import faust
from faust.auth import SASLCredentials, SSLCredentials
from faust.types import TP

from models.drift import PSI_ACT, PSI_WATCH
from streamer.alignment import EventTimeMerger, RebalanceGate
from streamer.input_keys import KeyReport
from streamer.kafka import client_options
from streamer.metrics import Metrics
from streamer.pipeline import (
    BatchOutput,
    InputMessage,
    Pipeline,
    Prepared,
    Received,
    in_label_order,
)
from streamer.redis_client import combined_info, database
from streamer.redis_watch import KeyWatch
from streamer.runtime import Runtime
from streamer.settings import PRODUCER_MAX_REQUEST_BYTES, Settings
from streamer.stalls import StallWatch, format_partitions, format_tasks
from streamer.transport import Consumer, WorkerApp

__all__ = ["app_options", "create_app", "raw_topic"]

log = logging.getLogger("streamer.worker")

#: How often the consumer lag metric is refreshed.
LAG_INTERVAL_S = 1.0
#: How often Redis's memory and evictions are read (INFO).
REDIS_INFO_INTERVAL_S = 10.0
#: how often the drift gauges are recomputed (and a drifted input warned about)
DRIFT_INTERVAL_S = 10.0


def _credentials(settings: Settings) -> Any:
    options = client_options(settings)
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        return SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            ssl_context=options.get("ssl_context"),
            mechanism=settings.kafka_sasl_mechanism,
        )
    if protocol == "SSL":
        return SSLCredentials(options["ssl_context"])
    return None


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


def app_options(settings: Settings, *, data_subdir: str = "worker") -> dict[str, Any]:
    """Options of the worker's :class:`WorkerApp`; the bench's baseline agents use the same."""
    return {
        "broker": [f"kafka://{server}" for server in settings.bootstrap_servers],
        "broker_credentials": _credentials(settings),
        "store": "memory://",
        "datadir": str(settings.data_dir / data_subdir),
        "topic_partitions": settings.partitions,
        "topic_allow_declare": False,  # `fraud-streamer worker` creates the contract topics
        "topic_disable_leader": True,
        "producer_acks": -1,
        "producer_max_request_size": PRODUCER_MAX_REQUEST_BYTES,
        "producer_linger": 0.002,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": settings.commit_interval_s,
        "broker_session_timeout": settings.kafka_session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.kafka_session_timeout_s / 3),
        "stream_publish_on_commit": False,
        # events held by the event-time merge stay unacked on purpose: a rebalance or shutdown
        # must not wait for them (they are re-read by whoever owns the partition next)
        "stream_wait_empty": False,
        # small stream buffers and per-partition fetches (a few hundred records each, not
        # ~3,000) keep what the event-time merge holds small (see alignment); a record larger
        # than this is still fetched whole (Kafka returns at least one batch)
        "stream_buffer_maxsize": settings.batch_max * 2,
        "consumer_max_fetch_size": 64 * 1024,
        # read by WorkerApp's transport: Faust's own 1.5 s lets quiet partitions stall busy ones
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


def raw_topic(app: faust.App, *names: str) -> Any:
    """A topic (or several, read as one) of bytes: decoding is the pipeline's job, so bad input
    becomes a dead letter."""
    return app.topic(
        *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def create_app(settings: Settings, runtime: Runtime | None = None) -> faust.App:
    """Build the worker app. No I/O happens until Faust starts it."""
    runtime = runtime or Runtime(settings)
    metrics: Metrics = runtime.metrics
    app = WorkerApp(
        settings.consumer_group,
        **app_options(settings),
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_in_thread=False,
    )

    label_topic = settings.topic_labels
    inputs = raw_topic(app, settings.topic_transactions, label_topic)

    async def publish(out: BatchOutput) -> None:
        """Send every record of the batch, then wait for all acknowledgements together.

        The records go straight to the transport producer: Faust's ``Topic.send`` yields to the
        event loop on every message (``maybe_start_producer`` is stampede-guarded, which
        sleeps), so aiokafka would ship a batch as a dozen few-record requests, each waiting for
        its acks=all round trip before the next may leave.
        """
        producer = await app.maybe_start_producer()
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

    merger: EventTimeMerger[TP, _Held] = EventTimeMerger(
        max_skew_ms=int(settings.max_partition_skew_hours * 3_600_000),
        idle_ms=int(settings.partition_idle_s * 1000),
        queue_max=settings.batch_max * 2,
        strict=lambda tp: tp.topic == label_topic,
        exact=lambda held: held.received.mark is not None and not held.received.mark.is_fraud,
    )
    gate: RebalanceGate[TP] = RebalanceGate()  # records read before a rebalance stay out
    merging = asyncio.Lock()
    stall_watch = StallWatch(settings.stall_warn_s)
    in_flight = [0]  # records released by the merge and not yet acked
    unrated: set[str] = set()  # currencies without a rate, warned of once
    miskeyed = KeyReport()
    source: list[Any] = []  # the input stream, once the agent runs: acks go through it
    # released batches past Redis, in release order, for settle_released: at most one waits
    # while one is settled, so the store works at most two batches ahead of publishing
    settling: asyncio.Queue[_Released] = asyncio.Queue(maxsize=1)

    def fail(stage: str, records: int) -> NoReturn:
        # Faust acks a take_events batch even when its body raises; exiting here instead
        # leaves the batch uncommitted, so the next worker replays it. Nothing is lost.
        log.critical(
            "a batch of %d records failed %s; exiting so it is replayed",
            records,
            stage,
            exc_info=True,
        )
        logging.shutdown()
        os._exit(70)

    async def decide_released() -> None:
        """Take the batches the event-time merge releases through the feature store (a batch's
        labels first, a withdrawal in its place: see ``in_label_order``) and hand them, in
        release order, to ``settle_released``, which decides, publishes and acks them.

        The store's round trip is most of a batch's wait; splitting the work in two lets it
        overlap the previous batch's model call and publishing. Redis still sees every batch
        in release order, one after the other, so the features are those of serial processing.
        """
        if not source:
            return
        consumer = cast(Consumer, app.consumer)
        async with merging:
            busy_since = time.perf_counter()
            pipeline = await runtime.pipeline()
            while True:
                # a rebalance can take partitions away during any await below; what they held
                # was never acked, and their next owner reads it again
                assigned = consumer.assignment()
                merger.retain(assigned)
                merger.expect(consumer.start_offsets(assigned), _now_ms())
                batch = merger.release(consumer.end_offset, _now_ms(), settings.batch_max)
                if not batch:
                    break
                in_flight[0] += len(batch)
                started = time.perf_counter()
                steps: list[_Step] = []
                for labels, txs in in_label_order(batch, lambda held: held.received):
                    labelled = prepared = None
                    try:
                        if labels:
                            marks = [held.received for held in labels]
                            labelled = await pipeline.apply_labels(marks)
                        if txs:
                            prepared = await pipeline.prepare([held.received for held in txs])
                    except Exception:
                        fail("in the feature store", len(batch))
                    steps.append(_Step(labelled, len(labels), prepared, txs))
                await settling.put(_Released(batch, steps, pipeline, started))
            merger.retain(consumer.assignment())
            pause, resume = merger.flow()
            if pause:
                consumer.pause_partitions(pause)
            if resume:
                consumer.resume_partitions(resume)
            now = _now_ms()
            metrics.partition_skew.set(merger.skew_ms(consumer.end_offset, now) / 1000)
            metrics.set_pending(
                transactions=merger.pending_ms(consumer.end_offset, now),
                labels=merger.pending_ms(consumer.end_offset, now, strict=True),
            )
            metrics.held.set(merger.held)
            metrics.busy.inc(time.perf_counter() - busy_since)

    @app.task
    async def settle_released() -> None:
        """Decide, publish and ack the batches ``decide_released`` has taken through the store,
        one at a time, in release order.

        A held event is acked only here, after its outputs are published: until then its
        offset is not committed, so a crash re-delivers it (and the store, idempotent per
        transaction, gives it the features it had).
        """
        while True:
            released = await settling.get()
            try:
                await finish(released)
            except Exception:
                # whatever fails here (publishing above all), no more of the batch may be acked
                # and the agent must not wait for this task: exit, and the batch is replayed
                fail("while deciding and publishing", len(released.batch))

    async def finish(released: _Released) -> None:
        """One released batch: decide each step, publish its outputs, then ack its events."""
        for step in released.steps:
            if step.labelled is not None:
                await publish(step.labelled)
            out = None
            if step.prepared is not None:
                out = await released.pipeline.settle(step.prepared)
                await publish(out)
            seconds = time.perf_counter() - released.started
            if step.labelled is not None:
                metrics.observe_batch("labels", step.labelled, seconds, step.labels)
                miskeyed.add(step.labelled.key_mismatches, step.labelled.key_mismatch)
            if out is not None:
                metrics.observe_batch("transactions", out, seconds, len(step.txs))
                miskeyed.add(out.key_mismatches, out.key_mismatch)
                warn_unrated(out.unconverted.keys() - unrated)
                runtime.observe_drift(out)
                metrics.observe_decided(held.received.ts_ms for held in step.txs)
                metrics.observe_ages(
                    settings.topic_transactions,
                    (held.event.message.timestamp for held in step.txs),
                    time.time(),
                )
        stream = source[0]
        for held in released.batch:
            await stream.ack(held.event)
        in_flight[0] -= len(released.batch)

    def warn_unrated(currencies: set[str]) -> None:
        for currency in sorted(currencies):
            unrated.add(currency)
            log.warning(
                "transactions in %s are scored without their amount and reviewed at least: "
                "there is no rate from %s to %s (STREAMER_EXCHANGE_RATES, or `fraud-streamer "
                "rates set`; streamer_unconverted_transactions_total counts them)",
                currency,
                currency,
                settings.base_currency,
            )

    @app.agent(inputs, concurrency=1)
    async def merge_inputs(stream: Any) -> None:
        source[:] = [stream]
        async for events in stream.take_events(
            settings.batch_max, within=settings.batch_within_ms / 1000
        ):
            consumed_at = time.perf_counter()
            now = _now_ms()
            generation = app.consumer_generation_id
            labels = [e for e in events if e.message.topic == label_topic]
            txs = [e for e in events if e.message.topic != label_topic]
            try:  # before the references below are taken, Faust would ack the batch
                pipeline = await runtime.pipeline()  # the first loads the model
                validated = [
                    *pipeline.receive_labels(_messages(labels), consumed_at),
                    *pipeline.receive(_messages(txs), consumed_at),
                ]
            except Exception:
                fail("before it could be decided", len(events))
            for event, received in zip([*labels, *txs], validated, strict=True):
                # take_events acks the batch when this step ends; the extra reference keeps
                # the offset uncommitted until decide_released has published the decision
                event.message.incref()
                message = received.message
                tp = TP(message.topic, message.partition)
                if not gate.admits(tp, event.message.generation_id, generation):
                    # read before a rebalance: the merge has forgotten the records before it,
                    # so deciding it now could put a card's transactions out of order. It is
                    # never acked; the partition's owner reads it again.
                    continue
                merger.add(
                    tp,
                    message.offset,
                    received.ts_ms,
                    _Held(event, received),
                    now,
                )
            metrics.busy.inc(time.perf_counter() - consumed_at)  # the rest counts in there
            await decide_released()

    @app.timer(0.5)
    async def release_idle() -> None:
        # no new transactions wake no agent: held ones whose wait is over are decided here
        await decide_released()

    @app.on_partitions_revoked.connect
    async def drop_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # held events of a revoked partition were never acked: its next owner reads them again
        (revoked,) = args
        gate.revoke(revoked, app.consumer_generation_id)
        merger.forget(revoked)

    def partition_report() -> str:
        # for a stall's report: which of the switches that reading depends on are off
        consumer = cast(Consumer, app.consumer)
        held = {tp: len(queue) for tp, queue in merger.queues.items()}
        try:
            return format_partitions(consumer.partition_states(held))
        except Exception as exc:  # a report must not take the worker down
            return f"the partitions owned: not readable now ({exc!r})"

    app.partition_report = partition_report

    @app.timer(LAG_INTERVAL_S)
    async def report_lag() -> None:
        consumer = cast(Consumer, app.consumer)
        lags = consumer.lag()
        metrics.set_lag({(tp.topic, tp.partition): n for tp, n in lags.items()})
        waiting = sum(lags.values()) + merger.held + in_flight[0]
        stalled = stall_watch.check(metrics.processed, waiting, time.monotonic())
        if stalled is not None:
            log.warning(
                "no record processed for %.0f s with %d waiting (%d in batches being "
                "decided, %d held by the merge); what each task waits on:\n%s\n%s",
                stalled,
                waiting,
                in_flight[0],
                merger.held,
                format_tasks(),
                partition_report(),
            )

    drifted: set[str] = set()  # inputs warned about, until they come back under PSI_WATCH

    @app.timer(DRIFT_INTERVAL_S)
    async def report_drift() -> None:
        values = runtime.drift()
        metrics.set_drift(values)
        for name, value in (values or {}).items():
            if value >= PSI_ACT and name not in drifted:
                drifted.add(name)
                log.warning(
                    "model input %s has drifted: PSI %.2f over the last rows scored, against "
                    "the profile of model %s (above %.2f it no longer looks like what the "
                    "model was made for: retrain, or look for a producer that changed)",
                    name,
                    value,
                    runtime.model_version,
                    PSI_ACT,
                )
            elif value < PSI_WATCH:
                drifted.discard(name)

    key_watch = KeyWatch(db=database(settings.redis_url))

    @app.timer(REDIS_INFO_INTERVAL_S)
    async def report_redis() -> None:
        infos = await runtime.redis_infos()
        if infos is None:
            return
        info = combined_info(infos)
        losses = key_watch.observe(infos)
        metrics.redis_keys.set(key_watch.total)
        for loss in losses:
            metrics.redis_state_losses.inc()
            log.error(
                "%s: the window state was lost, and features count fewer transactions than "
                "happened until it is rebuilt: run `fraud-streamer rebuild-state` (README: "
                "Replay and rebuilding Redis)",
                loss.describe(key_watch.db),
            )
        for restart in key_watch.restarted:
            log.warning(
                "%s: writes it had not saved before it stopped are lost unless its persistence "
                "writes every command through (appendfsync always); if not, run `fraud-streamer "
                "rebuild-state` (README: Replay and rebuilding Redis)",
                restart.describe(key_watch.db),
            )
        evicted = metrics.set_redis(info)
        if evicted:
            log.warning(
                "Redis evicted %d keys in the last %.0f s (maxmemory %s, maxmemory-policy %s): "
                "window state was lost, and features will count fewer transactions than "
                "happened until it is rebuilt; see the README's Operations",
                evicted,
                REDIS_INFO_INTERVAL_S,
                info.get("maxmemory_human"),
                info.get("maxmemory_policy"),
            )

    @app.timer(settings.model_poll_seconds)
    async def follow_promotions() -> None:
        await runtime.refresh_model()

    @app.timer(settings.model_poll_seconds)
    async def follow_rates() -> None:
        await runtime.refresh_rates()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        body, content_type = metrics.exposition()
        # aiohttp refuses a charset inside content_type=, so the header is set as is
        return web.bytes(body, headers={"Content-Type": content_type})

    @app.page("/")
    async def dashboard(web: Any, request: Any) -> Any:
        return web.html(runtime.dashboard_html())

    @app.page("/healthz")
    async def health(web: Any, request: Any) -> Any:
        # a liveness probe: answered while the event loop runs, 503 once records have waited
        # STREAMER_STALL_WARN_S with none processed (a supervisor restarts the worker; its
        # unacked records are read again by whoever owns their partitions next)
        stalled = stall_watch.stalled_for(time.monotonic())
        if stalled is not None and stalled >= settings.stall_warn_s:
            return web.json({"status": "stalled", "stalled_s": round(stalled, 1)}, status=503)
        return web.json({"status": "ok"})

    @app.page("/api/alerts")
    async def alerts(web: Any, request: Any) -> Any:
        return web.json(metrics.latest_alerts())

    @app.page("/api/summary")
    async def summary(web: Any, request: Any) -> Any:
        shadow = runtime.shadow()
        shadow_version = shadow.version if shadow is not None else None
        return web.json(metrics.summary(runtime.model_version, shadow_version, runtime.currencies))

    app.runtime = runtime  # type: ignore[attr-defined]
    return app
