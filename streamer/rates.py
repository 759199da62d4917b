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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streamer.currency import Currencies, check_rate
from streamer.features.keys import RATES_KEY
from streamer.redis_client import RedisClient
from streamer.settings import Settings

__all__ = ["InForce", "effective", "read", "remove", "write"]


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
        pairs = [part for code, rate in rates.items() for part in (code, repr(rate))]
        await client.eval(_REPLACE, 1, RATES_KEY, *pairs)
    elif rates:
        await client.hset(RATES_KEY, mapping={code: repr(rate) for code, rate in rates.items()})


async def remove(client: RedisClient, codes: Iterable[str]) -> int:
    """Withdraw these currencies' Redis rates; how many there were."""
    return int(await client.hdel(RATES_KEY, *codes))
