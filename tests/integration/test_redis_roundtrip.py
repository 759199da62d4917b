"""The local Redis answers through ``redis.asyncio``, the client the feature store uses."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from streamer.settings import Settings


async def test_set_get_and_pipeline(stack: Settings) -> None:
    client = aioredis.from_url(stack.redis_url)
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        assert await client.set(f"{prefix}key", "value", ex=60)
        assert await client.get(f"{prefix}key") == b"value"
        assert 0 < await client.ttl(f"{prefix}key") <= 60

        # One round trip, applied atomically; adding the same member twice counts it once,
        # which is how feature windows stay idempotent per transaction id.
        async with client.pipeline(transaction=True) as pipe:
            pipe.incrby(f"{prefix}count", 2)
            pipe.hset(f"{prefix}hash", mapping={"a": "1", "b": "2"})
            pipe.zadd(f"{prefix}window", {"tx-1": 1.0, "tx-2": 2.0})
            pipe.zadd(f"{prefix}window", {"tx-1": 1.0})
            pipe.zcard(f"{prefix}window")
            results = await pipe.execute()
        assert results == [2, 2, 2, 0, 2]
        assert await client.hgetall(f"{prefix}hash") == {b"a": b"1", b"b": b"2"}
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
