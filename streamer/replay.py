"""Replay a dataset into Kafka: transactions in event-time order, each label by its report time.

This is how history (simulated or exported) reaches a running worker: a transaction is sent
when the replay's clock reaches it, and a fraud's label is in Kafka by the time the stream's
event time reaches the label's ``reported_at`` — sent an hour of event time ahead, which the
worker cannot tell from the order in which a bank would learn of them (a label counts from its
report time on, whenever it arrives).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd

from streamer.kafka import make_producer
from streamer.settings import Settings

__all__ = [
    "BARRIER",
    "LABEL_LEAD_MS",
    "ReplayStats",
    "encode_labels",
    "encode_transactions",
    "merged_records",
    "replay",
]

Record = tuple[str, bytes, bytes]  # (topic kind, key, value)
#: not a record: the labels sent so far must be acknowledged before the replay goes on
BARRIER: Record = ("barrier", b"", b"")
#: how far ahead of its report time (in event time) a replayed label is sent
LABEL_LEAD_MS = 3_600_000


def _rfc3339(series: pd.Series) -> list[str]:
    """Times as the contract writes them, in UTC, to the microsecond where they have one."""
    ts = pd.to_datetime(series, utc=True)
    whole = ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    fraction = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return list(whole.where(ts.dt.microsecond == 0, fraction))


def encode_transactions(frame: pd.DataFrame) -> list[tuple[int, bytes, bytes]]:
    """(event time ms, key, Transaction JSON) per row, in the frame's order; with the row's
    ``currency`` when the frame has that column and the row a value there (the contract's
    default, EUR, otherwise)."""
    times = _rfc3339(frame["timestamp"])
    ms = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[ms, UTC]").astype("int64")
    currencies = frame["currency"] if "currency" in frame.columns else [None] * len(frame)
    out = []
    for t, tid, cid, term, amount, stamp, currency in zip(
        ms,
        frame["transaction_id"],
        frame["customer_id"],
        frame["terminal_id"],
        frame["amount"],
        times,
        currencies,
        strict=True,
    ):
        value = json.dumps(
            {
                "transaction_id": tid,
                "timestamp": stamp,
                "customer_id": cid,
                "terminal_id": term,
                "amount": float(amount),
                **({"currency": currency} if isinstance(currency, str) else {}),  # not NaN
            },
            separators=(",", ":"),
        )
        out.append((int(t), cid.encode(), value.encode()))
    return out


def encode_labels(frame: pd.DataFrame) -> list[tuple[int, bytes, bytes]]:
    """(report time ms, key, Label JSON) per fraud of a simulated frame, by report time."""
    frauds = frame[frame["is_fraud"].astype(bool) & frame["reported_at"].notna()]
    if frauds.empty:
        return []
    tx_times = _rfc3339(frauds["timestamp"])
    rep_times = _rfc3339(frauds["reported_at"])
    rep_ms = pd.to_datetime(frauds["reported_at"], utc=True).astype("datetime64[ms, UTC]")
    out = []
    for r, tid, cid, term, txt, rept in zip(
        rep_ms.astype("int64"),
        frauds["transaction_id"],
        frauds["customer_id"],
        frauds["terminal_id"],
        tx_times,
        rep_times,
        strict=True,
    ):
        value = json.dumps(
            {
                "transaction_id": tid,
                "customer_id": cid,
                "terminal_id": term,
                "tx_timestamp": txt,
                "is_fraud": True,
                "reported_at": rept,
            },
            separators=(",", ":"),
        )
        out.append((int(r), cid.encode(), value.encode()))
    out.sort(key=lambda rec: rec[0])
    return out


def merged_records(
    transactions: list[tuple[int, bytes, bytes]],
    labels: list[tuple[int, bytes, bytes]],
    lead_ms: int = LABEL_LEAD_MS,
) -> Iterator[Record]:
    """Transactions in order, each label ``lead_ms`` of event time before its report time, and
    a barrier before the first transaction at or after a report time.

    The worker needs a label in Kafka before any transaction at or after its report time (see
    :func:`replay`), and applying it early changes nothing: it counts from its report time on.
    Sent ahead, its acknowledgement is normally back by the barrier, so the replay rarely
    waits there, and the transactions keep their pace.
    """
    sent = due = 0  # labels sent so far; labels whose report time the stream has reached
    for t, key, value in transactions:
        while sent < len(labels) and labels[sent][0] <= t + lead_ms:
            yield "labels", labels[sent][1], labels[sent][2]
            sent += 1
        if due < sent and labels[due][0] <= t:
            while due < sent and labels[due][0] <= t:
                due += 1
            yield BARRIER
        yield "transactions", key, value


@dataclass
class ReplayStats:
    transactions: int = 0
    labels: int = 0
    seconds: float = 0.0


async def replay(
    settings: Settings,
    records: Iterator[Record],
    *,
    rate: float | None = None,
    progress: Callable[[int], object] | None = None,
) -> ReplayStats:
    """Send records (rate: transactions per second, None = as fast as possible).

    Transaction sends are not awaited one by one; the producer batches them, and every send is
    confirmed before this returns, so a finished replay is durable in Kafka. Labels are the
    exception: at a :data:`BARRIER` the replay waits until Kafka has acknowledged every label
    sent so far. Kafka orders nothing across partitions, and a worker that keeps up reads a
    transaction as soon as it is written; the worker holds transactions back only for labels
    it can see coming (:mod:`streamer.alignment`), so a label must be in Kafka before any
    transaction at or after its report time is. Labels go through a producer of their own that
    does not linger, so an acknowledgement takes one round trip.
    """
    topics = {"transactions": settings.topic_transactions, "labels": settings.topic_labels}
    producer = make_producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    label_producer = make_producer(settings, linger_ms=0)
    await producer.start()
    await label_producer.start()
    stats = ReplayStats()
    started = time.perf_counter()
    pending: list[asyncio.Future] = []
    labels_sent: list[asyncio.Future] = []
    try:
        for kind, key, value in records:
            if kind == "labels":
                labels_sent.append(await label_producer.send(topics[kind], value=value, key=key))
                stats.labels += 1
                continue
            if kind == BARRIER[0]:
                await asyncio.gather(*labels_sent)
                labels_sent.clear()
                continue
            pending.append(await producer.send(topics[kind], value=value, key=key))
            stats.transactions += 1
            if progress is not None:
                progress(1)
            if rate:
                ahead = stats.transactions / rate - (time.perf_counter() - started)
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending, *labels_sent)
    finally:
        await producer.stop()
        await label_producer.stop()
    stats.seconds = time.perf_counter() - started
    return stats
