"""The two baselines that ``fraud-streamer bench`` compares the worker with, as Faust apps.

* ``passthrough`` consumes the transactions topic with the worker's batching and forwards each
  raw value to the decisions topic, doing no work: the ceiling that Faust and Kafka allow.
* ``naive`` scores one event at a time — validate, one Redis round trip, one ``predict_proba``,
  then wait for each send to be acknowledged before taking the next event — which is what a
  hand-built request/response scorer does. It runs the worker's own pipeline on batches of one,
  so the decisions are the same, but calls scikit-learn's ``predict_proba`` as such a scorer
  would: the worker's flat tree path (:mod:`streamer.flat_trees`) is part of what it adds.

Both read their topics, group and Redis from the ``Settings`` like the worker. Run one with
``python -m streamer.bench.agents passthrough|naive``; the bench starts them as subprocesses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Sequence
from typing import Any

import faust

from streamer.app import app_options, raw_topic
from streamer.pipeline import InputMessage
from streamer.runtime import Runtime
from streamer.settings import Settings
from streamer.transport import WorkerApp

__all__ = ["VARIANTS", "create_naive_app", "create_passthrough_app", "main"]

VARIANTS = ("passthrough", "naive")


def _app(settings: Settings, *, linger_s: float) -> faust.App:
    """A Faust app with the worker's consumer, producer and buffer options."""
    options = {**app_options(settings, data_subdir="bench"), "producer_linger": linger_s}
    return WorkerApp(settings.consumer_group, **options, web_enabled=False)


def create_passthrough_app(settings: Settings) -> faust.App:
    """Consume and forward in the worker's batches: send all, then wait for every ack.

    It sends the way the worker does (``EventFlow.publish``), so that c/a measures the
    worker's work and nothing else: change both together.
    """
    app = _app(settings, linger_s=0.002)
    source = raw_topic(app, settings.topic_transactions)
    sink = settings.topic_decisions

    @app.agent(source, concurrency=1)
    async def passthrough(stream: Any) -> None:
        async for events in stream.take_events(
            settings.batch_max, within=settings.batch_within_ms / 1000
        ):
            producer = await app.maybe_start_producer()
            pending: list[Awaitable[Any]] = []
            for event in events:
                message = event.message
                pending.append(
                    await producer.send(sink, message.key, message.value, None, None, None)
                )
            await asyncio.gather(*pending)

    return app


def create_naive_app(settings: Settings, runtime: Runtime | None = None) -> faust.App:
    """Score one event at a time and wait for each output's ack before the next event.

    The producer does not linger: a scorer that waits on every send gains nothing from it, and
    lingering would charge the baseline for a delay it never asked for.
    """
    runtime = runtime or Runtime(settings, flat_trees=False)
    app = _app(settings, linger_s=0.0)
    source = raw_topic(app, settings.topic_transactions)
    decisions = raw_topic(app, settings.topic_decisions)
    alerts = raw_topic(app, settings.topic_alerts)
    dead_letters = raw_topic(app, settings.topic_dead_letters)

    @app.agent(source, concurrency=1)
    async def naive(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            sent_ms = round(m.timestamp * 1000)  # Faust gives the record's time in seconds
            pipeline = await runtime.pipeline()
            out = await pipeline.transactions(
                [InputMessage(m.topic, m.partition, m.offset, m.key, m.value, sent_ms)]
            )
            sends: tuple[tuple[Any, Sequence[tuple[bytes | None, bytes]]], ...] = (
                (decisions, out.decisions),
                (alerts, out.alerts),
                (dead_letters, out.dead_letters),
            )
            for topic, records in sends:
                for key, value in records:
                    await (await topic.send(key=key, value=value, force=True))

    return app


def main(argv: list[str] | None = None) -> None:
    """Run one baseline until it is stopped (SIGTERM or Ctrl-C)."""
    parser = argparse.ArgumentParser(
        prog="python -m streamer.bench.agents", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("variant", choices=VARIANTS)
    # not "warn": at warn and above Faust sets the root logger to DEBUG (see streamer.bench.config)
    parser.add_argument("--loglevel", "-l", default="info")
    args = parser.parse_args(argv)
    # as in `fraud-streamer worker`: one scoring thread, set before scikit-learn loads
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from faust import Worker

    from streamer.settings import load_settings

    settings = load_settings()
    (settings.data_dir / "bench").mkdir(parents=True, exist_ok=True)
    if args.variant == "passthrough":
        app = create_passthrough_app(settings)
    else:
        app = create_naive_app(settings)
    Worker(app, loglevel=args.loglevel, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
