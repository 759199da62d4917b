"""``fraud-streamer demo``: the whole system, from nothing, on the local stack."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import click

from models.files import DATA_DIR
from streamer.cli import Finite, pass_settings
from streamer.settings import Settings
from streamer.stalls import StallWatch

POISON = [b"not json at all", b'{"transaction_id": "demo-bad", "amount": -5}', b"\xff\xfe"]


def _summary(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/summary", timeout=1) as r:
            return json.loads(r.read())
    except OSError:
        return None


class RunTally:
    """This run's transactions as the ``decisions`` topic shows them: each id once, by decision.

    The worker's own totals count all it decided since it started, including a backlog that an
    earlier, interrupted run left in Kafka; "all decided" read from them can come too early.
    This reads the topic from its end as it was before the replay and counts only the ids this
    run sends (an id decided twice, after a re-delivery, counts once).
    """

    def __init__(self, settings: Settings, ids: set[str]) -> None:
        self.expected = len(ids)
        self.decisions: Counter[str] = Counter()
        self.scores: dict[str, float] = {}  # each of this run's ids: its first decision's
        self.versions: Counter[str] = Counter()
        self._settings, self._ids, self._seen = settings, ids, set[str]()
        self._ready, self._stop = threading.Event(), threading.Event()
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def decided(self) -> int:
        return len(self._seen)

    def start(self, timeout: float = 30.0) -> None:
        """Start reading; returns once the topic's end is fixed, so nothing sent later is missed."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise click.ClickException(
                f"reading {self._settings.topic_decisions}: no answer in {timeout:.0f} s"
            )
        self.check()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def line(self) -> str:
        d = self.decisions
        return (
            f"decided {self.decided:,} of {self.expected:,} (approve {d['approve']:,} · "
            f"review {d['review']:,} · decline {d['decline']:,})"
        )

    def _run(self) -> None:
        import asyncio

        try:
            asyncio.run(self._consume())
        except BaseException as exc:  # raised in the main thread by start() or check()
            self._failure.append(exc)
            self._ready.set()

    def check(self) -> None:
        """Raise what stopped the reader, if anything did."""
        if self._failure:
            raise click.ClickException(
                f"reading {self._settings.topic_decisions} failed: {self._failure[0]}"
            )

    async def _consume(self) -> None:
        from streamer.kafka import make_consumer, running
        from streamer.kafka_reading import partitions_to_read

        settings = self._settings
        # the topic's own partitions: one made before may have more than STREAMER_PARTITIONS
        tps = await partitions_to_read(settings, settings.topic_decisions)
        if not tps:
            raise RuntimeError(f"there is no topic {settings.topic_decisions}")
        async with running(make_consumer(settings, group_id=None)) as consumer:
            consumer.assign(tps)
            for tp, end in (await consumer.end_offsets(tps)).items():
                consumer.seek(tp, end)
            self._ready.set()
            while not self._stop.is_set():
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        decision = json.loads(record.value)
                        tx = decision.get("transaction_id")
                        if tx in self._ids and tx not in self._seen:
                            self._seen.add(tx)
                            self.decisions[decision.get("decision")] += 1
                            self.scores[tx] = float(decision.get("score"))
                            self.versions[decision.get("model_version")] += 1


#: the demo gives up, naming what stopped, when nothing has moved for this long
STALL_S = 120.0


def _give_up_when_still(
    watch: StallWatch, now: float, *, counts: str, sending: bool, decided: int,
    summary: dict[str, Any] | None, log: Path,
) -> None:
    """Raise, saying which of them stopped, once neither the replay, the run's decisions nor
    the worker's totals have moved for ``watch``'s limit (the replay is meant to go on, so
    something always waits)."""
    state = (sending, decided, str((summary or {}).get("totals")))
    idle = watch.check(state, waiting=1, now=now)
    if idle is not None:
        raise click.ClickException(
            f"nothing moved for {idle:.0f} s: {counts}, the replay "
            f"{'still sending' if sending else 'done'}, the worker "
            f"{'not answering' if summary is None else 'idle'}; see {log}"
        )


def _status_line(tally: RunTally, summary: dict[str, Any]) -> str:
    t = summary.get("totals", {})
    return (
        f"{tally.line()}  alerts {t.get('alerts', 0):,}  dead letters {t.get('dead_letters', 0):,}"
        f"  labels {t.get('consumed_labels', 0):,}  model {summary.get('model_version')}"
    )


@click.command()
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1),
              help="Days of simulated traffic.")
@click.option("--customers", default=5000, show_default=True, type=click.IntRange(min=1),
              help="Simulated customers.")
@click.option("--terminals", default=10000, show_default=True, type=click.IntRange(min=1),
              help="Simulated terminals.")
@click.option(
    "--seed",
    default=2026,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of the replayed month (the model is trained on seed 0).",
)
@click.option(
    "--rate",
    type=Finite(min=0, min_open=True),
    default=None,
    help="Transactions per second to replay (default: as fast as possible).",
)
@click.option(
    "--keep-running/--exit-when-done",
    default=None,
    help="Keep the worker and dashboard up after the replay (default: when run from a terminal).",
)
@pass_settings
def demo(
    settings: Settings,
    days: int,
    customers: int,
    terminals: int,
    seed: int,
    rate: float | None,
    keep_running: bool | None,
) -> None:
    """Run the whole system: stack, model, worker, a month of traffic, live counts.

    \b
    1. start Kafka and Redis on 127.0.0.1 (reused when running)
    2. train and promote a model if the registry has none, or none for these features
    3. simulate a month of transactions for a fresh population
    4. start the worker (its page at http://127.0.0.1:STREAMER_WEB_PORT/) and the fleet's
       page (`fraud-streamer dashboard`, http://127.0.0.1:STREAMER_DASHBOARD_PORT/)
    5. replay the month into Kafka, labels included, plus a few malformed messages
    6. print live counts of this run's decisions, alerts and dead letters until all are decided
    """
    import asyncio

    from models.registry import ModelRegistry
    from models.simulate import SimulationConfig, simulate, write_dataset
    from streamer.cli.train import train
    from streamer.features.definitions import FEATURE_NAMES
    from streamer.kafka import make_producer
    from streamer.kafka_topics import contract_topics
    from streamer.stack import LocalStack, StackError

    click.echo("1/6 local stack", err=True)
    try:
        for state in LocalStack(settings).up():
            click.echo(f"    {state.describe()}", err=True)
    except StackError as exc:  # as `stack up` says it
        raise click.ClickException(str(exc)) from None

    registry = ModelRegistry(settings.model_registry)
    if registry.current_for(FEATURE_NAMES) is None:
        current = registry.current_version()
        why = "no model promoted yet" if current is None else \
            f"model {current} was trained on other features than this worker computes"
        click.echo(f"2/6 {why}: training one (a few minutes, once; "
                   "`fraud-streamer train` compares all candidates)", err=True)
        click.get_current_context().invoke(train, candidates="hist_gb,logreg")
    click.echo(f"2/6 model {registry.current_version()}", err=True)

    data = DATA_DIR / f"demo-{customers}x{terminals}-{days}d-seed{seed}.parquet"
    if not data.exists():
        click.echo(f"3/6 simulating {days} days → {data}", err=True)
        frame = simulate(
            SimulationConfig(n_customers=customers, n_terminals=terminals, n_days=days, seed=seed)
        )
        data.parent.mkdir(parents=True, exist_ok=True)
        write_dataset(frame, data)
    else:
        click.echo(f"3/6 reusing {data}", err=True)

    asyncio.run(contract_topics(settings))
    _check_port_free(settings.web_host, settings.web_port, "STREAMER_WEB_PORT")
    log_path = settings.data_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"4/6 starting the worker (log: {log_path})", err=True)
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streamer", "worker"], stdout=log, stderr=subprocess.STDOUT
        )
    fleet = _start_fleet_page(settings)
    try:
        _run_demo(settings, worker, data, rate, keep_running, make_producer)
    finally:
        for process in (worker, fleet):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def _start_fleet_page(settings: Settings) -> subprocess.Popen[bytes] | None:
    """``fraud-streamer dashboard`` beside the worker; the demo goes on without it (saying
    so) when its port is taken."""
    try:
        _check_port_free(settings.web_host, settings.dashboard_port, "STREAMER_DASHBOARD_PORT")
    except click.ClickException as exc:
        click.echo(f"    the fleet's page is not started: {exc.message}", err=True)
        return None
    log_path = settings.data_dir / "demo-dashboard.log"
    click.echo(
        f"    the fleet's page: http://127.0.0.1:{settings.dashboard_port}/ (log: {log_path})",
        err=True,
    )
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streamer", "dashboard"], stdout=log, stderr=subprocess.STDOUT
        )


def _quality_lines(settings: Settings, frame: Any, tally: RunTally) -> list[str]:
    """How well this run's decisions ranked the simulator's frauds — scored live, from the
    features in Redis, on a population the model never saw — beside the model's offline
    validation. Terminal windows count frauds only once labelled, a label delay after the
    transaction, so the run is also measured from then on, where those windows are filled."""
    import pandas as pd

    from models.metrics import decisions_quality
    from models.registry import ModelRegistry, RegistryError
    from streamer.features.definitions import LABEL_DELAY_DAYS

    def fmt(metrics: dict[str, float]) -> str:
        return (
            f"AUC ROC {metrics.get('auc_roc', float('nan')):.3f} · Average Precision "
            f"{metrics.get('average_precision', float('nan')):.3f} · Card Precision@100 "
            f"{metrics.get('card_precision_at_100', float('nan')):.3f}"
        )

    start = pd.to_datetime(frame["timestamp"], utc=True).min().floor("D")
    lines = [
        "quality of this run's scores against the simulator's truth (the replay starts from "
        "empty windows: a card's averages and a terminal's fraud counts fill over its first "
        "weeks, so early days score worse than the model's validation, measured on full ones):"
    ]
    for what, since in (
        ("all days", None),
        (f"from day {LABEL_DELAY_DAYS + 1}", start + pd.Timedelta(days=LABEL_DELAY_DAYS)),
    ):
        metrics, n, frauds = decisions_quality(frame, tally.scores, since=since)
        if frauds == 0 or frauds == n:
            lines.append(f"  {what}: {n:,} transactions, {frauds} frauds — too few to measure")
        else:
            lines.append(f"  {what}: {fmt(metrics)} ({n:,} transactions, {frauds:,} frauds)")
    if tally.versions:
        version = tally.versions.most_common(1)[0][0]
        try:
            manifest = ModelRegistry(settings.model_registry).manifest(version)
        except RegistryError:
            return lines
        validation = manifest.metrics.get("validation")
        if validation:
            lines.append(f"  model {version} on its validation week (offline): {fmt(validation)}")
    return lines


def _check_port_free(host: str, port: int, variable: str) -> None:
    """Fail now, by name, if something already listens on the port ``variable`` sets.

    Otherwise the demo would read that process's counts while its own worker fails to bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"{host}:{port} is taken ({exc.strerror}): another worker or demo may still be "
                f"running; stop it, or choose another port with {variable}"
            ) from None


def _wait_for_worker(settings: Settings, worker: subprocess.Popen[bytes]) -> None:
    """Until the worker's page answers; a worker that exits or takes over 90 s is an error."""
    deadline = time.monotonic() + 90
    while _summary(settings.web_port) is None:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise click.ClickException(
                f"the worker did not start; see {settings.data_dir}/demo-worker.log"
            )
        time.sleep(0.5)


def _send_poison(settings: Settings, make_producer: Any) -> None:
    """Send the malformed messages whose dead letters the demo shows."""
    import asyncio

    async def send() -> None:
        producer = make_producer(settings)
        await producer.start()
        try:
            for value in POISON:
                await producer.send_and_wait(settings.topic_transactions, value=value, key=b"demo")
        finally:
            await producer.stop()

    asyncio.run(send())


def _replay_and_count(
    settings: Settings,
    worker: subprocess.Popen[bytes],
    tally: RunTally,
    records: Any,
    rate: float | None,
) -> float:
    """Replay ``records`` from a thread and print the live counts every 2 s, until every
    transaction is decided (returns the seconds that took); stops with an error when the
    replay fails, the worker exits, or nothing moves for ``STALL_S``."""
    import asyncio

    from streamer.replay import replay

    failure: list[BaseException] = []

    def produce() -> None:
        try:
            asyncio.run(replay(settings, records, rate=rate))
        except BaseException as exc:  # reported below, in the main thread
            failure.append(exc)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    click.echo("6/6 live counts (Ctrl-C to stop)", err=True)
    started = time.monotonic()
    watch = StallWatch(STALL_S)
    while True:
        time.sleep(2)
        if failure:
            raise click.ClickException(f"replay failed: {failure[0]}")
        tally.check()
        if worker.poll() is not None:
            raise click.ClickException(
                f"the worker exited; see {settings.data_dir}/demo-worker.log"
            )
        summary = _summary(settings.web_port)
        _give_up_when_still(
            watch, time.monotonic(), counts=tally.line(), sending=producer.is_alive(),
            decided=tally.decided, summary=summary, log=settings.data_dir / "demo-worker.log",
        )  # fmt: skip
        if summary is None:
            continue
        click.echo(f"  {time.monotonic() - started:6.0f} s  {_status_line(tally, summary)}")
        if not producer.is_alive() and tally.decided >= tally.expected:
            return time.monotonic() - started


def _run_demo(
    settings: Settings,
    worker: subprocess.Popen[bytes],
    data: Path,
    rate: float | None,
    keep_running: bool | None,
    make_producer: Any,
) -> None:
    from models.simulate import read_dataset
    from streamer.replay import encode_labels, encode_transactions, merged_records

    port = settings.web_port
    _wait_for_worker(settings, worker)
    frame = read_dataset(data).sort_values(["timestamp", "transaction_id"])
    txs, labels = encode_transactions(frame), encode_labels(frame)
    tally = RunTally(settings, set(frame["transaction_id"]))
    tally.start()
    try:
        click.echo(
            f"5/6 replaying {len(txs):,} transactions and their labels "
            f"(dashboard: http://127.0.0.1:{port}/)",
            err=True,
        )
        _send_poison(settings, make_producer)
        seconds = _replay_and_count(settings, worker, tally, merged_records(txs, labels), rate)
    finally:
        tally.stop()
    click.echo(f"all {len(txs):,} transactions decided in {seconds:.0f} s")
    for line in _quality_lines(settings, frame, tally):
        click.echo(line)
    if keep_running is None:
        keep_running = sys.stdin.isatty()
    if keep_running:
        click.echo(
            f"worker still running: its page http://127.0.0.1:{port}/ , metrics "
            f"http://127.0.0.1:{port}/metrics , the fleet's page "
            f"http://127.0.0.1:{settings.dashboard_port}/ — Ctrl-C to stop"
        )
        with contextlib.suppress(KeyboardInterrupt):
            worker.wait()
