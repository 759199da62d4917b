"""The ``fraud-streamer`` command line.

Each command lives in its own module and is imported only when it runs (or when ``--help``
lists it), so ``fraud-streamer stack up`` does not pay for importing scikit-learn or Faust.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from streamer.features.definitions import RETENTION_DAYS
from streamer.settings import Settings, SettingsError, load_settings, unknown_variables

__all__ = [
    "chosen",
    "main",
    "pass_settings",
    "record_in_kafka",
    "state_horizon",
    "with_redis",
    "writable",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "stack": "streamer.cli.stack:stack",
    "worker": "streamer.cli.worker:worker",
    "simulate": "streamer.cli.simulate:simulate",
    "produce": "streamer.cli.produce:produce",
    "train": "streamer.cli.train:train",
    "evaluate": "streamer.cli.evaluate:evaluate",
    "models": "streamer.cli.models:models",
    "blocklist": "streamer.cli.blocklist:blocklist",
    "rates": "streamer.cli.rates:rates",
    "score-batch": "streamer.cli.score_batch:score_batch",
    "bench": "streamer.cli.bench:bench",
    "demo": "streamer.cli.demo:demo",
    "quality": "streamer.cli.quality:quality",
    "dead-letters": "streamer.cli.dead_letters:dead_letters",
    "dashboard": "streamer.cli.dashboard:dashboard",
    "status": "streamer.cli.status:status",
    "rebuild-state": "streamer.cli.rebuild:rebuild_state",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if _importable(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


def _importable(name: str) -> bool:
    module_name = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fraud-streamer", prog_name="fraud-streamer")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """fraud-streamer: real-time card fraud scoring on Kafka and Redis.

    The system's settings (Kafka, Redis, topics, thresholds, the model registry, ...) come
    from environment variables STREAMER_<NAME> or a .env file in the current directory (see
    the README's configuration table); a command's own options are given as flags. Typical
    local session:

    \b
      fraud-streamer stack up        # Kafka + Redis on 127.0.0.1
      fraud-streamer train           # simulate data, train, register, promote a model
      fraud-streamer worker          # score transactions -> decisions / alerts
      fraud-streamer produce         # replay simulated transactions and labels
    """
    ctx.ensure_object(dict)
    if ctx.invoked_subcommand not in _LOGGING:
        # a command turns each Kafka failure into one error line that names it; aiokafka's own
        # line for each failed connection (printed bare: nothing else is set up) came first
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


#: the commands that run a service and log as one (their logging is set up where they start)
_LOGGING = frozenset({"worker", "dashboard"})


def get_settings(ctx: click.Context) -> Settings:
    """The settings of this invocation, read once from the environment."""
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings()
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        for problem in unknown_variables(os.environ):
            click.echo(f"warning: {problem}", err=True)
    settings = obj["settings"]
    assert isinstance(settings, Settings)
    return settings


def pass_settings(f: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: call the command with the ``Settings`` as its first argument."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(f, get_settings(ctx), *args, **kwargs)

    return click.decorators.update_wrapper(wrapper, f)


def state_horizon(f: F) -> F:
    """Decorator: write how many days of event time the feature state keeps where a command's
    docstring (its ``--help``) says ``{state_days}``.

    That horizon follows from the widest window and the label delay (``RETENTION_DAYS``); a
    number written into the help by hand would go stale when either changes. Put it right above
    the function, so that click reads the docstring once it is filled in.
    """
    if not f.__doc__ or "{state_days}" not in f.__doc__:
        raise TypeError(f"{f.__name__}'s docstring does not say {{state_days}}")
    f.__doc__ = f.__doc__.replace("{state_days}", f"{RETENTION_DAYS} days")
    return f


def with_redis(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action`` on a client of the workers' Redis (``STREAMER_REDIS_URL``), after the
    start-up check that names a wrong URL, password or address as a CLI error."""
    from streamer.redis_client import connect, redis_problem

    async def run() -> T:
        cluster = settings.redis_cluster
        problem = await redis_problem(
            settings.redis_url, settings.redis_url_redacted, cluster=cluster
        )
        if problem:
            raise click.ClickException(problem)
        client = connect(settings.redis_url, cluster=cluster)
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def record_in_kafka(
    settings: Settings,
    write: Callable[[], Awaitable[object]],
    topic: str,
    *,
    done: str,
    what: str,
    lost: str,
) -> None:
    """Run ``write``, which records in Kafka (``topic``) a change already made in Redis; if
    Kafka does not take it, a CLI error saying what was ``done``, that ``what`` was not
    recorded, and what a Redis that loses its state would then miss (``lost``). The change
    stands: the workers read Redis."""
    from streamer.kafka import failure_reason

    async def run() -> None:
        started = time.monotonic()
        try:
            await write()
        except Exception as exc:
            problem = await failure_reason(settings, exc, started)
            raise click.ClickException(
                f"{done}, but {what} could not be recorded on {topic} at "
                f"{settings.kafka_bootstrap_servers}{problem}; run the command again once "
                f"Kafka answers, or a Redis that loses {lost}"
            ) from None

    asyncio.run(run())


def chosen(given: str, known: Iterable[str], option: str) -> list[str]:
    """The names in a comma-separated option, each one of ``known``; a usage error naming
    what is wrong otherwise (an unknown name, or none at all)."""
    known = list(known)
    names = [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown: {', '.join(unknown)}; choose from {', '.join(known)}", param_hint=option
        )
    if not names:
        raise click.BadParameter(
            f"name at least one of {', '.join(known)}", param_hint=option
        )
    return names


class Finite(click.FloatRange):
    """``click.FloatRange`` without nan and inf, which it lets through (nan fails no comparison
    with a bound, inf passes a lower one), to fail later as a traceback or run for ever."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def writable(path: Path) -> None:
    """A CLI error naming why ``path`` cannot be written, before the command's work rather
    than after it (:func:`models.files.check_writable`)."""
    from models.files import check_writable

    try:
        check_writable(path)
    except FileExistsError as exc:  # mkdir(exist_ok=True) raises it where a file is in the way
        msg = f"cannot write {path}: {exc.filename} is not a directory"
        raise click.ClickException(msg) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"cannot write {path}: {where}{exc.strerror or exc}") from None


def main() -> None:
    """Console-script entry point."""
    try:
        sys.exit(cli.main(prog_name="fraud-streamer", standalone_mode=True))
    except Exception as exc:
        # TLS files that cannot be used are found only when a command's first Kafka client is
        # made, deep in whichever command it is: the message names the variables, not a frame
        from streamer.kafka import KafkaSettingsError

        if not isinstance(exc, KafkaSettingsError):
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
