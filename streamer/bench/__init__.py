"""``fraud-streamer bench``: the worker's throughput against two baselines, and its latency.

Same-run ratios, not absolute numbers. One run produces ONE backlog of simulated transactions
into a fresh input topic and lets three consumers work through it, one after the other, each in
its own consumer group (so each starts with the full backlog) and, where it keeps state, with
its own Redis database, filled first with the state the history before the backlog leaves
(:func:`.load.warm_state`: a worker in service does not start on empty windows):

(a) passthrough — consumes in the worker's batches and forwards, no work (:mod:`.agents`);
(b) naive — one event at a time, awaiting every send (:mod:`.agents`);
(c) the real worker (``python -m streamer worker``).

Throughput is read from Kafka, not from the processes: the outputs a variant wrote after its
first output millisecond, divided by the time from its first to its last output record's
timestamp (set by the variant's producer at send time). That leaves out start-up — process,
imports, group join, model load — which differs between variants and says nothing about
sustained speed; it is reported beside it. Each variant's CPU time and the time it waited for a
CPU are read from ``/proc`` too: on a shared machine events per CPU-second move less with the
neighbours' load than events per second, and the wait says how much of a latency they caused.

Latency is measured on the worker once it has drained the backlog: new transactions are sent at
a fixed rate, and each one's latency is the time its decision is consumed here minus the time it
was handed to the producer (both ``time.time()`` on this machine).

Modules: :mod:`.config` (sizes, targets, variants), :mod:`.load` (the simulated load and the
model), :mod:`.infra` (subprocesses, topics, Redis databases), :mod:`.measure` (throughput and
latency), :mod:`.report` (verdicts and the table), :mod:`.run` (one run, start to clean-up).
"""

from streamer.bench.config import TARGETS, BenchConfig, BenchError, Target
from streamer.bench.report import render
from streamer.bench.run import prepare_bench, run_bench

__all__ = ["TARGETS", "BenchConfig", "BenchError", "Target", "prepare_bench", "render",
           "run_bench"]
