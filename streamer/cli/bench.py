"""``fraud-streamer bench``: the worker's throughput against two baselines, and its latency."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import click

from models.files import write_text
from streamer.cli import Finite, pass_settings, state_horizon
from streamer.settings import Settings


@click.command()
@click.option(
    "--events",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Transactions in the backlog that (a) and (c) consume.",
)
@click.option(
    "--naive-events",
    default=5_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many of them (b) scores: it is slow, and its rate is what is compared.",
)
@click.option(
    "--latency-rate",
    default=1_000.0,
    show_default=True,
    type=Finite(min=1),
    help="Transactions per second sent during the latency phase.",
)
@click.option(
    "--latency-seconds",
    default=20.0,
    show_default=True,
    type=Finite(min=0.1),
    help="Length of the latency phase.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results as JSON; its folder also gets the variants' logs and the bench's registry. "
    "[default: bench/bench.json in STREAMER_DATA_DIR, .stack/bench/bench.json locally]",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Simulation seed of the load.")
@pass_settings
@state_horizon
def bench(
    settings: Settings,
    events: int,
    naive_events: int,
    latency_rate: float,
    latency_seconds: float,
    out: Path | None,
    seed: int,
) -> None:
    """Measure the worker against a passthrough and a naive scorer, on the local stack.

    \b
    One backlog of simulated transactions goes into a fresh topic; each variant starts on it
    with its own consumer group and, where it keeps state, its own Redis database holding
    what the simulated history before the backlog leaves there (its last {state_days}), as a
    subprocess:
      (a) passthrough  consumes in the worker's batches, forwards each value, no work
      (b) naive        one event at a time: validate, one Redis round trip, one
                       predict_proba, and it awaits every send before the next event
      (c) worker       `python -m streamer worker`, the real thing

    \b
    Throughput = outputs after the first output millisecond / (last - first output record's
    Kafka timestamp): sustained speed, start-up excluded (reported separately). Latency: once
    (c) has drained the backlog, --latency-rate transactions/s are sent for --latency-seconds;
    per transaction, the time its decision is consumed minus the time it was handed to the
    producer (one clock, this machine), also split into consume-and-batch, pipeline and
    publish-and-deliver. The same events then go through a fresh (a) on a topic of its own:
    its latency is what Kafka and Faust take before the worker does any work. Reported:
    events/s of a, b, c; the same-run ratios c/a and c/b; latency p50/p95/p99 of c and of a,
    and their difference; on Linux, each process's CPU use and its wait for a CPU (the share
    of the time it was ready to run while others held the cores: a busy machine's noise).
    Memory: each process's peak resident size and how much it grew over the backlog, the
    worker's peak over each baseline's, and the Redis memory one worker's windows take per
    transaction of the warm state.

    \b
    Targets (reported as pass/MISS, never enforced): c/a >= 0.5, c/b >= 10, p99 <= 25 ms.
    The model is the promoted one in STREAMER_MODEL_REGISTRY when it fits, otherwise a small
    one trained into the --out folder on first use. Topics and Redis databases the run made
    are removed at the end, also on errors and Ctrl-C. The table goes to stdout, progress to
    stderr, the numbers to --out.
    """
    from streamer.bench import BenchConfig, BenchError, prepare_bench, render, run_bench

    config = BenchConfig(
        events=events,
        naive_events=naive_events,
        latency_rate=latency_rate,
        latency_seconds=latency_seconds,
        out=out or settings.data_dir / "bench" / "bench.json",  # a work folder of local state
        seed=seed,
    )

    def log(line: str) -> None:
        click.echo(f"bench: {line}", err=True)

    async def main() -> dict[str, Any]:
        # SIGTERM unwinds like Ctrl-C, so the variants' subprocesses are stopped either way
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run_bench(settings, prepared, env=dict(os.environ), log=log)

    try:
        prepared = prepare_bench(settings, config, log=log)
        results = asyncio.run(main())
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    except asyncio.CancelledError:
        raise click.Abort() from None
    write_text(config.out, json.dumps(results, indent=2) + "\n")
    click.echo(render(results))
    log(f"results written to {config.out}")
