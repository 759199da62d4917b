"""A run's verdicts against the targets, and the table printed for people."""

from __future__ import annotations

from typing import Any

from streamer.bench.config import TARGETS, VARIANTS

__all__ = ["render", "verdicts"]


def _per_cpu(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    x, y = a.get("events_per_cpu_s"), b.get("events_per_cpu_s")
    return round(x / y, 3) if x and y else None


def _memory(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    x, y = a.get("peak_rss_mib"), b.get("peak_rss_mib")
    return round(x / y, 2) if x and y else None


def verdicts(throughput: dict[str, dict[str, Any]], latency: dict[str, Any]) -> dict[str, Any]:
    """The ratios c/a and c/b (also per CPU-second, and of peak memory) and each target, met
    or missed."""
    a, b, c = (throughput[name]["events_per_s"] for name in ("passthrough", "naive", "worker"))
    values = {"c/a": c / a, "c/b": c / b, "p99_ms": latency["p99_ms"]}
    return {
        "ratios": {"c/a": round(values["c/a"], 3), "c/b": round(values["c/b"], 2)},
        # the same ratios per CPU-second of each variant: less sensitive to neighbours' load
        "ratios_per_cpu_s": {
            "c/a": _per_cpu(throughput["worker"], throughput["passthrough"]),
            "c/b": _per_cpu(throughput["worker"], throughput["naive"]),
        },
        # peak resident memory, the worker's over each baseline's (no target: reported)
        "ratios_peak_rss": {
            "c/a": _memory(throughput["worker"], throughput["passthrough"]),
            "c/b": _memory(throughput["worker"], throughput["naive"]),
        },
        "targets": [
            {
                "metric": t.metric,
                "op": t.op,
                "threshold": t.threshold,
                "value": round(values[t.metric], 3),
                "met": t.met(values[t.metric]),
            }
            for t in TARGETS
        ],
    }


def _pct(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "-"


def _num(value: float | None, spec: str, width: int) -> str:
    return f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}"


def _mark(met: bool | None) -> str:
    return {True: "pass", False: "MISS", None: "n/a"}[met]


def _latency_lines(lat: dict[str, Any], who: str) -> list[str]:
    ack = lat["producer_ack_ms"]
    return [
        f"  p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, "
        f"max {lat['max_ms']:.1f} ms",
        f"  {who} CPU used {_pct(lat['process']['cpu_share'])}, "
        f"CPU wait {_pct(lat['process']['runqueue_wait_share'])}",
        f"  the load's own sends, until the broker acknowledged them: p50 {ack['p50']:.1f} ms, "
        f"p99 {ack['p99']:.1f} ms",
    ]


def _memory_lines(results: dict[str, Any]) -> list[str]:
    """Each variant's memory through the backlog, and what the worker's windows take in
    Redis."""
    lines = [f"{'memory':<24}{'peak RSS MiB':>14}{'grew over the backlog MiB':>27}"]
    for name, (label, _) in VARIANTS.items():
        r = results["throughput"][name]
        grown = r.get("rss_growth_mib")
        shown = f"{grown:>+27,.1f}" if grown is not None else f"{'-':>27}"
        lines.append(f"{label:<24}{_num(r.get('peak_rss_mib'), ',.1f', 14)}{shown}")
    ratios = results["ratios_peak_rss"]
    lines.append(
        f"peak RSS: c/a {_num(ratios['c/a'], '.2f', 0)}x, c/b {_num(ratios['c/b'], '.2f', 0)}x "
        "(the peak includes start-up: imports, the model)"
    )
    load = results["load"]
    if load.get("warm_transactions") and load.get("warm_redis_bytes"):
        size, n = load["warm_redis_bytes"], load["warm_transactions"]
        lines.append(
            f"Redis: one worker's windows and pinned verdicts for those {n:,} transactions take "
            f"{size / 2**20:,.1f} MiB ({size / n:,.0f} bytes per transaction)"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    """The human-readable table of one run's results."""
    machine, load = results["machine"], results["load"]
    lines = [
        f"fraud-streamer bench: {load['events']:,} transactions, model {load['model_version']}, "
        f"{machine['cpu_count']} CPUs, Python {machine['python']}",
        "",
        f"{'variant':<24}{'events':>9}{'seconds':>9}{'events/s':>10}{'per CPU-s':>11}"
        f"{'CPU used':>10}{'CPU wait':>10}{'start-up s':>12}",
    ]
    for name, (label, _) in VARIANTS.items():
        r = results["throughput"][name]
        lines.append(
            f"{label:<24}{r['events']:>9,}{_num(r['seconds'], '.2f', 9)}"
            f"{_num(r['events_per_s'], ',.0f', 10)}{_num(r.get('events_per_cpu_s'), ',.0f', 11)}"
            f"{_pct(r.get('cpu_share')):>10}{_pct(r.get('runqueue_wait_share')):>10}"
            f"{_num(r['startup_s'], '.1f', 12)}"
        )
    per_cpu = results["ratios_per_cpu_s"]
    lines += [
        f"per CPU-second: c/a {_num(per_cpu['c/a'], '.2f', 0)}, "
        f"c/b {_num(per_cpu['c/b'], '.1f', 0)}",
        "CPU used / CPU wait: share of one core's time the process ran / was ready to run but "
        "had no CPU",
    ]
    if load.get("warm_transactions"):
        lines.append(
            f"(b) and (c) started on Redis state from {load['warm_transactions']:,} earlier "
            f"transactions, as a worker in service does"
        )
    if load["naive_events"] < load["events"]:
        lines.append(
            f"(b) ran on the first {load['naive_events']:,} events of the same backlog: "
            f"the rates compare, not the counts"
        )
    lines += ["", *_memory_lines(results)]
    lat, floor = results["latency"], results["latency_passthrough"]
    lines += [
        "",
        f"latency at {lat['rate']:,.0f}/s (achieved {lat['achieved_rate']:,.0f}/s), "
        f"{lat['received']:,}/{lat['sent']:,} decisions:",
        *_latency_lines(lat, "worker"),
        f"  the worker's agent busy {_pct(lat['agent_busy_share'])} of the phase "
        "(merging, Redis, waiting for scoring and publishing: near 100% a burst queues before it)",
        "  stages p50/p99: "
        + ", ".join(
            f"{name.replace('_', ' ')} {v['p50']:.1f}/{v['p99']:.1f} ms"
            for name, v in lat["stages_ms"].items()
        ),
        "  median latency per second of sending: "
        + " ".join(f"{v:.0f}" for v in lat["p50_ms_per_second"])
        + " ms",
        "  median acknowledgement of the sends, per second: "
        + " ".join(f"{v:.0f}" for v in lat["producer_ack_p50_ms_per_second"])
        + " ms",
        f"the same events through (a) passthrough, its own topic "
        f"({floor['received']:,}/{floor['sent']:,} records):",
        *_latency_lines(floor, "passthrough"),
        f"the worker's own share: p50 {lat['p50_ms'] - floor['p50_ms']:+.1f} ms, "
        f"p99 {lat['p99_ms'] - floor['p99_ms']:+.1f} ms",
        "",
    ]
    cost = results.get("model_cost")
    if cost:
        lines += [
            f"one model call, one thread, ms (the worker takes the flat path up to "
            f"{cost['flat_max_rows']} rows):",
            f"  {'rows':>5}{'scikit-learn':>14}{'flat':>8}",
        ]
        for row in cost["batches"]:
            lines.append(
                f"  {row['rows']:>5}{row['sklearn_ms']:>14.2f}{_num(row['flat_ms'], '.2f', 8)}"
            )
        lines.append("")
    lines.append(f"{'target':<10}{'value':>10}{'goal':>10}  result")
    for t in results["targets"]:
        goal = f"{t['op']} {t['threshold']:g}"
        lines.append(f"{t['metric']:<10}{t['value']:>10.2f}{goal:>10}  {_mark(t['met'])}")
    return "\n".join(lines)
