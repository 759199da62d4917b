"""The project's asyncio Redis clients, built in one place from a URL.

redis-py's *asyncio* connections pack every command in Python even when hiredis is installed;
its sync connections use ``hiredis.pack_command`` (redis/redis-py#4176; the fix, #4191, is not
released). The worker sends two script calls per transaction in one pipeline, and packing them
took about a tenth of its CPU while draining a backlog (py-spy): 18 µs per ``EVALSHA`` in Python
against 2 µs with hiredis. Until redis-py does it itself, the connections made here pack with
hiredis exactly as redis-py's sync ``HiredisRespSerializer`` does — a command name holding a
space is split into words, a memoryview argument keeps the Python path — and the unit tests hold
the bytes to the Python packer's. Everything else is redis-py's, URL options included.
"""

from __future__ import annotations

from typing import Any

from hiredis import pack_command as hiredis_pack  # a dependency: redis[hiredis]
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection, parse_url
from redis.exceptions import DataError

__all__ = ["HiredisPackingConnection", "HiredisPackingSSLConnection", "connect"]


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
