"""The project's asyncio Redis clients, built in one place from a URL.

redis-py's *asyncio* connections pack every command in Python even when hiredis is installed;
its sync connections use ``hiredis.pack_command`` (redis/redis-py#4176; the fix, #4191, is not
released). The worker sends two script calls per transaction in one pipeline, and packing them
took about a tenth of its CPU while draining a backlog (py-spy): 18 µs per ``EVALSHA`` in Python
against 2 µs with hiredis. Until redis-py does it itself, the connections made here pack with
hiredis exactly as redis-py's sync ``HiredisRespSerializer`` does — a command name holding a
space is split into words, a memoryview argument keeps the Python path — and the unit tests hold
the bytes to the Python packer's. Everything else is redis-py's, URL options included.

:func:`redis_problem` is the start-up check that turns a wrong URL, password or address into
one line that names it.
"""

from __future__ import annotations

from typing import Any

from hiredis import pack_command as hiredis_pack  # a dependency: redis[hiredis]
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection, parse_url
from redis.exceptions import AuthenticationError, DataError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["HiredisPackingConnection", "HiredisPackingSSLConnection", "connect", "redis_problem"]


class _HiredisPacking:
    """Mixin for a redis-py asyncio connection: ``pack_command`` through hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if any(isinstance(a, memoryview) for a in args):
            return super().pack_command(*args)  # type: ignore[misc]
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            packed = tuple(bytes(a) if isinstance(a, bytearray) else a for a in args)
            return [hiredis_pack(packed)]  # type: ignore[arg-type]
        except TypeError as exc:
            raise DataError(str(exc)) from None


class HiredisPackingConnection(_HiredisPacking, Connection):
    """A TCP connection that packs commands with hiredis."""


class HiredisPackingSSLConnection(_HiredisPacking, SSLConnection):
    """A TLS connection (``rediss://``) that packs commands with hiredis."""


_PACKING: dict[type, type] = {
    Connection: HiredisPackingConnection,
    SSLConnection: HiredisPackingSSLConnection,
}


def connect(url: str, **options: Any) -> Redis:
    """An asyncio client for ``url`` (``redis://``, ``rediss://``, ``unix://``), as
    ``Redis.from_url`` would make it, whose TCP and TLS connections pack with hiredis.

    The client owns its pool: ``await client.aclose()`` closes both.
    """
    kwargs = {**options, **parse_url(url)}
    base = kwargs.pop("connection_class", Connection)
    pool = ConnectionPool(connection_class=_PACKING.get(base, base), **kwargs)
    return Redis.from_pool(pool)


async def redis_problem(url: str, shown: str, timeout: float = 5.0) -> str | None:
    """Why Redis at ``url`` cannot be used, in words (``shown``: the URL without its
    password); None when it answers PING.

    A worker that only found out at its first batch would exit mid-stream with a traceback;
    this is asked once at start, so a wrong URL or password is a one-line error instead.
    """
    client = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await client.ping()
    except AuthenticationError:
        return f"Redis at {shown} refused the user name or password in STREAMER_REDIS_URL"
    except ResponseError as exc:  # NOAUTH: a password is required and none was given
        return f"Redis at {shown} refused PING: {exc} (does STREAMER_REDIS_URL need a password?)"
    except RedisTimeoutError:
        return f"Redis at {shown} did not answer within {timeout:.0f} s"
    except RedisConnectionError as exc:
        return f"cannot reach Redis at {shown}: {exc} (is it running? `fraud-streamer stack up`)"
    except (RedisError, OSError, ValueError) as exc:
        return f"cannot use Redis at {shown}: {type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None
