"""Exchange rates kept in Redis (``fs:rates``), on a single server and on a Redis Cluster: set,
replaced in one step, withdrawn, and read back as the workers take them up; recorded in Kafka,
and restored from there to a Redis that lost them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from click.testing import CliRunner
from redis import Redis as SyncRedis

from streamer import rates
from streamer.cli import cli
from streamer.redis_client import RedisClient
from streamer.settings import Settings, load_settings
from tests.integration.harness import cli_without_kafka, produce


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


async def test_rates_are_recorded_in_kafka_and_restored_to_a_redis_that_lost_them(
    redis: RedisClient, stack: Settings
) -> None:
    settings = stack.model_copy(update={"topic_rates": f"rates-{uuid.uuid4().hex[:8]}"})
    assert await rates.recorded(settings) is None  # nothing recorded yet: no topic
    await rates.record(settings, {"USD": "0.9"})
    await rates.record(settings, {"USD": "0.91", "JPY": "0.006"})
    assert await rates.recorded(settings) == {"USD": "0.91", "JPY": "0.006"}  # the last one

    await rates.write(redis, {"GBP": 1.1})
    assert await rates.restore(settings, redis) is None  # Redis holds a rate: left as it is
    assert await rates.read(redis) == {"GBP": "1.1"}
    await rates.write(redis, {}, replace=True)  # as after a loss
    assert await rates.restore(settings, redis) == {"USD": "0.91", "JPY": "0.006"}
    assert await rates.read(redis) == {"USD": "0.91", "JPY": "0.006"}
    await rates.write(redis, {}, replace=True)

    # a record someone else wrote there is named, not read as rates
    await produce(settings, settings.topic_rates, [(b"fs:rates", b'{"USD": 0.9}')])
    with pytest.raises(rates.NotARecord, match=r"is not a set of rates .*KeyError\('rates'\)"):
        await rates.recorded(settings)


def test_a_change_kafka_does_not_take_is_set_and_said_so(stack: Settings) -> None:
    """`rates set` writes Redis first (the workers take the rate up), then records it in
    Kafka; when Kafka does not answer, the command fails with what was done and what was not.
    A Redis that holds no rate may have lost them: then nothing is changed without Kafka."""
    url = stack.redis_url.rsplit("/", 1)[0] + "/14"
    SyncRedis.from_url(url).delete("fs:rates")
    try:
        result, _ = cli_without_kafka(stack, "rates", "set", "USD=0.9")
        assert result.exit_code == 1, result.output
        assert "nothing listens at 127.0.0.1:1" in result.output, result.output
        assert result.output.rstrip().endswith("nothing was changed"), result.output
        assert SyncRedis.from_url(url).hgetall("fs:rates") == {}

        SyncRedis.from_url(url).hset("fs:rates", "GBP", "1.1")
        result, _ = cli_without_kafka(stack, "rates", "set", "USD=0.9")
        assert result.exit_code == 1, result.output
        said = (
            "the rates are set in Redis, and the workers take them up, but they could not be "
            "recorded on exchange-rates at 127.0.0.1:1: nothing listens at 127.0.0.1:1"
        )
        assert said in " ".join(result.output.split()), result.output
        assert SyncRedis.from_url(url).hgetall("fs:rates") == {b"GBP": b"1.1", b"USD": b"0.9"}
    finally:
        SyncRedis.from_url(url).delete("fs:rates")


def test_a_change_after_redis_lost_its_rates_keeps_the_recorded_ones(stack: Settings) -> None:
    """Each change records the whole hash, and the topic is compacted to its last record: a
    change made to a Redis that lost its rates must not record only itself, or every other
    rate would be gone from Kafka too. The recorded ones are restored first."""
    topic = f"rates-{uuid.uuid4().hex[:8]}"
    url = stack.redis_url.rsplit("/", 1)[0] + "/13"
    env = {"STREAMER_REDIS_URL": url, "STREAMER_TOPIC_RATES": topic,
           "STREAMER_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers}  # fmt: skip
    settings = stack.model_copy(update={"topic_rates": topic})
    redis = SyncRedis.from_url(url)
    redis.delete("fs:rates")
    try:
        result = CliRunner().invoke(cli, ["rates", "set", "USD=0.9", "GBP=1.1"], env=env)
        assert result.exit_code == 0, result.output
        redis.delete("fs:rates")  # Redis loses its state
        result = CliRunner().invoke(cli, ["rates", "set", "JPY=0.006"], env=env)
        assert result.exit_code == 0, result.output
        assert "Redis held no rates: first restored GBP=1.1, USD=0.9 from" in result.output
        want = {"USD": "0.9", "GBP": "1.1", "JPY": "0.006"}
        assert {k.decode(): v.decode() for k, v in redis.hgetall("fs:rates").items()} == want
        assert asyncio.run(rates.recorded(settings)) == want

        redis.delete("fs:rates")  # lost again: a withdrawal keeps the others too
        result = CliRunner().invoke(cli, ["rates", "unset", "GBP"], env=env)
        assert result.exit_code == 0, result.output
        assert asyncio.run(rates.recorded(settings)) == {"USD": "0.9", "JPY": "0.006"}
        # a day's feed gives the whole set: nothing is restored before it
        redis.delete("fs:rates")
        result = CliRunner().invoke(cli, ["rates", "set", "--replace", "USD=0.8"], env=env)
        assert result.exit_code == 0 and "restored" not in result.output, result.output
        assert asyncio.run(rates.recorded(settings)) == {"USD": "0.8"}
    finally:
        redis.delete("fs:rates")
