"""``fraud-streamer dashboard``: one page for every worker, fed by the topics they write."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import click

from streamer.cli import pass_settings
from streamer.settings import Settings

#: how often the consumer group's members and lag are asked for
GROUP_POLL_S = 5.0


@click.command("dashboard")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to serve on.  [default: STREAMER_DASHBOARD_PORT, 6070]",
)
@click.option(
    "--window-minutes",
    type=click.IntRange(1, 24 * 60),
    default=15,
    show_default=True,
    help="How far back the counts go (read back from Kafka at start).",
)
@click.option(
    "--repeat-minutes",
    type=click.IntRange(0, 24 * 60),
    default=10,
    show_default=True,
    help="A record a worker publishes again after a crash is counted once if it comes back "
    "within this long (the page remembers ~70 bytes per record for it; 0: count repeats).",
)
@pass_settings
def dashboard(
    settings: Settings, port: int | None, window_minutes: int, repeat_minutes: int
) -> None:
    """Serve the fleet's page: the decisions, alerts and dead letters of every worker, and
    the workers' consumer group (members, records not yet read).

    Each worker's own page (its STREAMER_WEB_PORT) shows only its partitions, and goes away
    with it; this one reads STREAMER_TOPIC_DECISIONS, STREAMER_TOPIC_ALERTS and
    STREAMER_TOPIC_DEAD_LETTERS — every worker's output — from --window-minutes ago on, and
    asks Kafka every 5 s about the group STREAMER_CONSUMER_GROUP. It publishes nothing (it
    creates the contract's topics if they are missing, as a worker would) and joins no group:
    run it anywhere that reaches Kafka, as many as you like. JSON at /api/fleet;
    /healthz answers 503 while Kafka does not.
    """
    host, port = settings.web_host, port or settings.dashboard_port
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a normal way to stop it
        asyncio.run(_serve(settings, host, port, window_minutes * 60.0, repeat_minutes * 60.0))


async def _serve(
    settings: Settings, host: str, port: int, window_s: float, repeat_window_s: float
) -> None:
    from aiohttp import web

    from streamer.fleet import FleetView
    from streamer.kafka import KafkaUnusable
    from streamer.kafka_reading import topics_partitions
    from streamer.kafka_topics import ensure_contract_topics

    try:
        await ensure_contract_topics(settings)  # as a worker would: it may start after us
    except KafkaUnusable as exc:
        raise click.ClickException(str(exc)) from None
    view = FleetView(window_s, repeat_window_s=repeat_window_s)
    handlers = {
        settings.topic_decisions: view.add_decision,
        settings.topic_alerts: view.add_alert,
        settings.topic_dead_letters: view.add_dead_letter,
    }
    tps = [tp for found in (await topics_partitions(settings, list(handlers))).values()
           for tp in found or []]  # fmt: skip
    runner = web.AppRunner(_web_app(view))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {exc.strerror or exc} (another dashboard? choose "
            "another port with --port or STREAMER_DASHBOARD_PORT)"
        ) from None
    click.echo(
        f"dashboard: http://{host}:{port}/ — every worker's decisions, alerts and dead letters "
        f"of the last {window_s / 60:.0f} min, and consumer group {settings.consumer_group!r}",
        err=True,
    )
    stop = asyncio.Event()  # SIGTERM (a container's stop) or Ctrl-C: a clean exit
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    work: asyncio.Future[Any] = asyncio.gather(
        _follow(settings, tps, handlers, window_s), _watch_group(settings, view)
    )
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([work, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        work.cancel()  # a no-op when it failed: its exception is then the outcome below
        stopping.cancel()
        outcomes = await asyncio.gather(work, stopping, return_exceptions=True)
        await runner.cleanup()
    outcome = outcomes[0]
    if isinstance(outcome, Exception):
        raise click.ClickException(f"stopped reading Kafka: {type(outcome).__name__}: {outcome}")


def _web_app(view: Any) -> Any:
    from aiohttp import web

    from streamer.dashboard import page

    html = page("fleet.html")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def api(request: web.Request) -> web.Response:
        return web.json_response(view.snapshot(time.time()))

    async def health(request: web.Request) -> web.Response:
        status, body = view.health()
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/api/fleet", api)
    app.router.add_get("/healthz", health)
    return app


async def _follow(
    settings: Settings, tps: list[Any], handlers: dict[str, Any], window_s: float
) -> None:
    """Read the output topics from ``window_s`` ago (by record time) and follow them."""
    from streamer.kafka import make_consumer, running

    consumer = make_consumer(settings, group_id=None, isolation_level="read_committed")
    async with running(consumer):
        consumer.assign(tps)
        since = int((time.time() - window_s) * 1000)
        # The ends are read first and sought explicitly: where no record is that recent, every
        # record before this end is older, and one written after it (a worker starting beside
        # the dashboard) is read. ``seek_to_end`` would resolve the end later and skip it.
        ends = await consumer.end_offsets(tps)
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since))
        for tp in tps:
            at = found.get(tp)
            consumer.seek(tp, ends[tp] if at is None else at.offset)
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                handle = handlers[tp.topic]
                for record in records:
                    handle(record.value)


async def _watch_group(settings: Settings, view: Any) -> None:
    """Keep the view's group state current; a failed look is shown, not fatal."""
    from aiokafka.errors import KafkaError

    from streamer.fleet import GroupState
    from streamer.kafka_reading import consumer_group_state, topics_partitions

    inputs = [settings.topic_transactions, settings.topic_labels]
    # the partitions once: a topic's count does not change under running workers
    tps = [tp for found in (await topics_partitions(settings, inputs)).values()
           for tp in found or []]  # fmt: skip
    while True:
        try:
            members, lag = await consumer_group_state(settings, settings.consumer_group, tps)
            view.group, view.group_problem = GroupState(members, lag), None
        except (KafkaError, OSError) as exc:
            view.group_problem = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(GROUP_POLL_S)
