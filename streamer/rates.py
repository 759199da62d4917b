"""Exchange rates set while the workers run (``fraud-streamer rates``), kept in Redis.

``STREAMER_EXCHANGE_RATES`` is read once, when a process starts. Rates change every day, and
restarting every worker for each change is an operator's chore, so a rate can also be set in
Redis, which every worker already shares: the hash ``fs:rates`` (currency -> rate, as text).
Its entries replace or add to ``STREAMER_EXCHANGE_RATES`` currency by currency; the workers read
it every ``STREAMER_MODEL_POLL_SECONDS``, and ``rebuild-state`` when it starts.

A rate can change between a transaction's first delivery and its repeat: the card's stats keep
the amount first converted, and whether it could be, so the repeat is decided as before
(``customer.lua``). An entry the workers cannot use (written by hand, say) is left out, and
they say so in the log; ``fraud-streamer rates set`` refuses one before it is written.

Redis holds derived state that a restart without persistence loses, and Kafka is the source of
truth: so each change made with ``fraud-streamer rates`` is also recorded in Kafka, the whole
hash after it, in a compacted topic of its own (``STREAMER_TOPIC_RATES``), and
``rebuild-state`` (or ``rates restore``) sets the last one again in a Redis that has none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from streamer.currency import Currencies, check_rate
from streamer.features.keys import RATES_KEY
from streamer.kafka import make_producer, running
from streamer.kafka_reading import partitions_to_read, read_to_end
from streamer.kafka_topics import ensure_topics
from streamer.redis_client import RedisClient
from streamer.settings import Settings

__all__ = [
    "InForce",
    "NotARecord",
    "effective",
    "read",
    "record",
    "recorded",
    "remove",
    "restore",
    "write",
]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read(client: RedisClient) -> dict[str, str]:
    """The entries of ``fs:rates`` as stored (unchecked)."""
    raw = await client.hgetall(RATES_KEY)
    return {_text(k): _text(v) for k, v in raw.items()}


@dataclass(frozen=True, slots=True)
class InForce:
    """The rates in force: the settings' with the usable Redis entries over them."""

    currencies: Currencies
    #: currencies whose rate comes from Redis
    from_redis: frozenset[str]
    #: Redis entries left out, with why
    problems: Mapping[str, str]


async def effective(settings: Settings, client: RedisClient) -> InForce:
    """The rates in force now, as a worker takes them up."""
    usable: dict[str, float] = {}
    problems: dict[str, str] = {}
    for code, text in (await read(client)).items():
        try:
            usable[code] = check_rate(code, text, settings.base_currency)
        except ValueError as exc:
            problems[code] = str(exc)
    currencies = Currencies.from_settings(settings).with_rates(usable)
    return InForce(currencies, frozenset(usable), problems)


#: the hash's entries replaced by ARGV's pairs in one step: a worker never reads it half-done
_REPLACE = """
redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
"""


async def write(client: RedisClient, rates: Mapping[str, float], *, replace: bool = False) -> None:
    """Set these rates (checked by the caller with :func:`check_rate`); with ``replace``, the
    Redis rates become exactly these, in one atomic step."""
    if replace:
        await _replace(client, {code: repr(rate) for code, rate in rates.items()})
    elif rates:
        await client.hset(RATES_KEY, mapping={code: repr(rate) for code, rate in rates.items()})


async def _replace(client: RedisClient, entries: Mapping[str, str]) -> None:
    """Make the hash exactly these entries, in one step."""
    pairs = [part for entry in entries.items() for part in entry]
    await client.eval(_REPLACE, 1, RATES_KEY, *pairs)


async def remove(client: RedisClient, codes: Iterable[str]) -> int:
    """Withdraw these currencies' Redis rates; how many there were."""
    return int(await client.hdel(RATES_KEY, *codes))


class NotARecord(ValueError):
    """The last record on the rates topic is not one that ``record`` wrote."""


#: the key of every record on the rates topic: compaction keeps the last one only
_RECORD_KEY = RATES_KEY.encode()


async def record(settings: Settings, entries: Mapping[str, str]) -> None:
    """Record in Kafka the hash's entries after a change (creating the topic the first time);
    returns once the broker has them. Raises what aiokafka raises when Kafka cannot take it."""
    await ensure_topics(
        settings, [settings.topic_rates], partitions=1, configs={"cleanup.policy": "compact"}
    )
    value = json.dumps({"rates": dict(entries)}, sort_keys=True).encode()
    async with running(make_producer(settings)) as producer:
        await producer.send_and_wait(settings.topic_rates, value, key=_RECORD_KEY)


async def recorded(settings: Settings) -> dict[str, str] | None:
    """The entries last recorded in Kafka; None when nothing was ever recorded (no topic, or
    an empty one). Raises :class:`~streamer.kafka.KafkaUnusable` when Kafka cannot be read,
    :class:`NotARecord` when the last record is not one of ours."""
    found = await partitions_to_read(settings, settings.topic_rates)
    if found is None:
        return None
    last: list[dict[str, str]] = []

    def keep(message: ConsumerRecord[bytes, bytes]) -> None:
        try:
            entries = json.loads(message.value or b"")["rates"]
            last[:] = [{str(code): str(rate) for code, rate in entries.items()}]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NotARecord(
                f"the last record on {settings.topic_rates} (offset {message.offset}) is not "
                f'a set of rates ({{"rates": {{"USD": "0.86"}}}}): {exc!r}'
            ) from None

    await read_to_end(settings, settings.topic_rates, keep, tail=1)
    return last[0] if last else None


async def restore(settings: Settings, client: RedisClient) -> dict[str, str] | None:
    """Set the entries last recorded in Kafka in a Redis that holds none (it lost them); the
    entries set, or None when Redis has some or Kafka has none to give."""
    if await read(client):
        return None
    entries = await recorded(settings)
    if not entries:
        return None
    await _replace(client, entries)
    return entries
