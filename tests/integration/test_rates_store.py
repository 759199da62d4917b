"""Exchange rates kept in Redis (``fs:rates``), on a single server and on a Redis Cluster: set,
replaced in one step, withdrawn, and read back as the workers take them up."""

from __future__ import annotations

from streamer import rates
from streamer.redis_client import RedisClient
from streamer.settings import load_settings


async def test_rates_are_set_replaced_and_withdrawn(redis: RedisClient) -> None:
    settings = load_settings(exchange_rates={"USD": 0.86, "GBP": 1.14})
    await rates.write(redis, {"USD": 0.9, "JPY": 0.006})
    await redis.hset("fs:rates", "CHF", "-1")  # by hand: left out, with why
    in_force = await rates.effective(settings, redis)
    assert dict(in_force.currencies.rates) == {"USD": 0.9, "GBP": 1.14, "JPY": 0.006}
    assert in_force.from_redis == {"USD", "JPY"}
    assert list(in_force.problems) == ["CHF"]

    # a day's feed: exactly these, the others (the bad entry too) withdrawn in the same step
    await rates.write(redis, {"USD": 1 / 1.16}, replace=True)
    assert await rates.read(redis) == {"USD": repr(1 / 1.16)}
    in_force = await rates.effective(settings, redis)
    assert dict(in_force.currencies.rates) == {"USD": 1 / 1.16, "GBP": 1.14}  # bit for bit
    assert not in_force.problems

    assert await rates.remove(redis, ["USD", "JPY"]) == 1
    assert dict((await rates.effective(settings, redis)).currencies.rates) == {
        "USD": 0.86, "GBP": 1.14
    }  # fmt: skip
    await rates.write(redis, {}, replace=True)  # nothing given: every Redis rate withdrawn
    assert await rates.read(redis) == {}
