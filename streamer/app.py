"""The Faust app: topics, agents, timers and pages, wiring only.

One agent reads transactions and labels together, in batches with manual acknowledgement
(``take_events``); what happens to a record from there until its offset may be committed —
the event-time merge, the feature store, deciding, publishing, the ack — is
:class:`~streamer.event_flow.EventFlow`'s. The timers refresh the metrics and warn the operator
(:mod:`streamer.worker_reports`, and the flow's stall check), and follow promotions and
exchange rates; the pages serve the metrics, the dashboard and the liveness probe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.auth import SASLCredentials, SSLCredentials

from streamer.event_flow import EventFlow
from streamer.kafka import client_options
from streamer.metrics import Metrics
from streamer.runtime import Runtime
from streamer.settings import PRODUCER_MAX_REQUEST_BYTES, Settings
from streamer.transport import WorkerApp
from streamer.worker_reports import DriftReport, RedisReport

__all__ = ["app_options", "create_app", "raw_topic"]

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
    """Build the worker app: its input topics, agent, tasks, timers and pages, each handed to
    the object that does the work (:class:`~streamer.event_flow.EventFlow`, the reports). No
    I/O happens until Faust starts it."""
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
    flow = EventFlow(app, settings, runtime)
    inputs = raw_topic(app, settings.topic_transactions, settings.topic_labels)
    app.agent(inputs, concurrency=1, name="merge_inputs")(flow.take)
    app.task(flow.settle_released)
    # no new records wake no agent: held ones whose wait is over are decided here
    app.timer(0.5, name="release_idle")(flow.decide_released)
    app.timer(LAG_INTERVAL_S, name="report_lag")(_run(flow.report_lag))
    app.timer(DRIFT_INTERVAL_S, name="report_drift")(_run(DriftReport(runtime).report))
    app.timer(REDIS_INFO_INTERVAL_S, name="report_redis")(
        RedisReport(runtime, REDIS_INFO_INTERVAL_S).report
    )
    app.timer(settings.model_poll_seconds, name="follow_promotions")(runtime.refresh_model)
    app.timer(settings.model_poll_seconds, name="follow_rates")(runtime.refresh_rates)
    app.partition_report = flow.partition_report

    @app.on_partitions_revoked.connect
    async def drop_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        (revoked,) = args
        flow.revoke(revoked)

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
        stalled = flow.stalled_for()
        if stalled is not None:
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


def _run(report: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """A synchronous report as the coroutine function a Faust timer takes."""

    async def run() -> None:
        report()

    return run
