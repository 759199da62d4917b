"""``fraud-streamer worker``: run the scoring worker."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable

import click

from streamer.cli import pass_settings
from streamer.logs import LEVELS, early_json_logging, mode_logging_config
from streamer.settings import Settings


@click.command()
@click.option(
    "--loglevel",
    "-l",
    default="info",
    show_default=True,
    type=click.Choice(list(LEVELS)),
    help="Log level of the worker.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="text (for people), or json: one object per line, for a log shipper "
    "[default: STREAMER_LOG_FORMAT, else text].",
)
@pass_settings
def worker(settings: Settings, loglevel: str, log_format: str | None) -> None:
    """Consume transactions and labels; publish decisions, alerts and dead letters.

    Run several (same STREAMER_CONSUMER_GROUP) to share the partitions. The dashboard and the
    Prometheus metrics are served on STREAMER_WEB_HOST:STREAMER_WEB_PORT (/ and /metrics). A
    model must be promoted in STREAMER_MODEL_REGISTRY first (`fraud-streamer train`).

    \b
    Signals: TERM or INT  stop cleanly (exit anyway after STREAMER_SHUTDOWN_GRACE_S)
             USR1         log what each task waits on (also logged by itself after
                          STREAMER_STALL_WARN_S without progress while records wait)
             USR2         write every thread's stack to stderr
    """
    # One scoring thread per worker process: scale out with processes (partitions), not
    # threads. OpenMP's thread pool in scikit-learn's predict costs ~10x under CPU contention
    # on small batches. Must be set before scikit-learn loads its OpenMP runtime.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    log_format = log_format or settings.log_format
    say: Callable[[str], None] = functools.partial(click.echo, err=True)
    warn: Callable[[str], None] = lambda message: say(f"warning: {message}")  # noqa: E731
    if log_format == "json":  # the start-up lines as JSON too
        early_json_logging(LEVELS[loglevel])
        log = logging.getLogger("streamer.worker")
        say, warn = log.info, log.warning
    from models.registry import ModelRegistry, RegistryError
    from streamer.app import create_app
    from streamer.kafka import KafkaUnusable
    from streamer.kafka_topics import ensure_contract_topics, retention_warnings
    from streamer.redis_client import eviction_risk, redis_problem
    from streamer.scoring import check_features
    from streamer.shutdown import DeadlineWorker

    try:
        manifest = ModelRegistry(settings.model_registry).verified_current()
        check_features(manifest)
        version = manifest.version
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        asyncio.run(ensure_contract_topics(settings))
        short = asyncio.run(retention_warnings(settings))
    except KafkaUnusable as exc:
        raise click.ClickException(str(exc)) from None
    for short_kept in short:
        warn(short_kept)
    redis = (settings.redis_url, settings.redis_url_redacted)
    problem = asyncio.run(redis_problem(*redis, cluster=settings.redis_cluster))
    if problem:
        raise click.ClickException(problem)
    risk = asyncio.run(eviction_risk(*redis, cluster=settings.redis_cluster))
    if risk:
        warn(risk)
    say(
        f"worker: model {version}, brokers {settings.kafka_bootstrap_servers}, "
        f"redis {settings.redis_url_redacted}{' (cluster)' if settings.redis_cluster else ''}, "
        f"dashboard http://{settings.web_host}:{settings.web_port}/"
    )
    (settings.data_dir / "worker").mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    runner = DeadlineWorker(
        app,
        loglevel=LEVELS[loglevel],
        logging_config=mode_logging_config(log_format),
        quiet=True,
        grace_s=settings.shutdown_grace_s,
    )
    # At warn and above Faust keeps a start-up spinner and, for it, sets the root logger to
    # DEBUG: every debug() call on the hot path (several per message in aiokafka and Faust)
    # would then build a LogRecord. Without the spinner the root logger keeps --loglevel.
    runner.spinner = None
    runner.execute_from_commandline()
