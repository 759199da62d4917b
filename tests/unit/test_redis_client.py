"""Commands packed with hiredis are byte for byte what redis-py's own asyncio packer sends."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from streamer.redis_client import (
    HiredisPackingConnection,
    HiredisPackingSentinelSSLConnection,
    HiredisPackingSSLConnection,
    combined_info,
    connect,
    eviction_warning,
    redis_problem,
)

COMMANDS = [
    # what the feature store sends: script calls with str, int and repr(float) arguments
    ("EVALSHA", "a" * 40, 3, "c:{c-1}:tx", "c:{c-1}:amt", "c:{c-1}:first", "tx-9", 1533081600000,
     repr(123.45)),
    ("SMISMEMBER", "blocklist:customer", "c-1", "c-2"),
    ("SCRIPT LOAD", "return 1"),  # a command name with a space is split into words
    (b"CLIENT SETNAME", b"worker"),
    ("SET", "k\u00e9y", b"\x00\xffbinary", -7),
    ("SET", "k", bytearray(b"ba")),
    ("SET", "k", memoryview(b"mv")),  # memoryviews keep redis-py's own path
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_hiredis_packing_matches_redis_py(command: tuple[object, ...]) -> None:
    expected = b"".join(bytes(c) for c in Connection().pack_command(*command))
    packed = HiredisPackingConnection().pack_command(*command)
    assert b"".join(bytes(c) for c in packed) == expected
    if not any(isinstance(a, memoryview) for a in command):
        assert len(packed) == 1  # one buffer: hiredis packed it


def test_a_pipeline_packs_the_same() -> None:
    commands = [c for c in COMMANDS if not any(isinstance(a, memoryview) for a in c)]
    expected = b"".join(Connection().pack_commands(commands))
    assert b"".join(HiredisPackingConnection().pack_commands(commands)) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@127.0.0.1:6390/3", HiredisPackingConnection),
        ("rediss://127.0.0.1:6390/0", HiredisPackingSSLConnection),
        ("unix:///tmp/redis.sock?db=2", UnixDomainSocketConnection),
    ],
)
async def test_connect_keeps_the_url_options(url: str, expected: type) -> None:
    client = connect(url, socket_timeout=3.0)
    pool = client.connection_pool
    assert pool.connection_class is expected
    assert issubclass(pool.connection_class, SSLConnection) == url.startswith("rediss")
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == 3.0
    if url.startswith("redis://"):
        assert (kwargs["password"], kwargs["port"], kwargs["db"]) == ("pw", 6390, 3)
    await client.aclose()


async def test_a_sentinel_client_packs_with_hiredis_and_shares_tls_with_the_sentinels() -> None:
    """No Sentinel is asked (nothing is sent): only what the client would connect with."""
    client = connect(
        "rediss+sentinel://:pw@s1,s2:26380/main/2?ssl_ca_certs=/etc/ca.pem&sentinel_password=t",
        socket_timeout=3.0,
    )
    pool = client.connection_pool
    assert pool.connection_class is HiredisPackingSentinelSSLConnection
    assert pool.service_name == "main"
    kwargs = pool.connection_kwargs
    assert (kwargs["password"], kwargs["db"], kwargs["socket_timeout"]) == ("pw", 2, 3.0)
    sentinels = pool.sentinel_manager.sentinels
    assert [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in sentinels
    ] == [("s1", 26379), ("s2", 26380)]
    first = sentinels[0].connection_pool.connection_kwargs
    assert (first["ssl_ca_certs"], first["password"]) == ("/etc/ca.pem", "t")
    assert issubclass(sentinels[0].connection_pool.connection_class, SSLConnection)
    await client.aclose()


async def test_a_cluster_client_packs_with_hiredis_on_every_node_it_makes() -> None:
    client = connect("rediss://127.0.0.1:6390/0", cluster=True, socket_timeout=3.0)
    manager = client.nodes_manager
    assert manager.connection_kwargs["connection_class"] is HiredisPackingSSLConnection
    assert {n.connection_class for n in manager.startup_nodes.values()} == {
        HiredisPackingSSLConnection
    }
    await client.aclose()


def test_a_cluster_is_reported_as_the_sum_of_its_primaries() -> None:
    one = {"used_memory": 100, "maxmemory": 1000, "evicted_keys": 2, "maxmemory_policy": "x"}
    two = {"used_memory": 50, "maxmemory": 500, "evicted_keys": 1, "maxmemory_policy": "x"}
    assert combined_info({"": one}) == one  # a single server, as it is
    both = combined_info({"a:1": one, "b:2": two})
    assert (both["used_memory"], both["maxmemory"], both["evicted_keys"]) == (150, 1500, 3)
    assert both["maxmemory_policy"] == "x"
    # a primary without a limit: the store as a whole has none
    assert combined_info({"a:1": one, "b:2": {**two, "maxmemory": 0}})["maxmemory"] == 0


@pytest.mark.parametrize(
    ("memory", "warned"),
    [
        ({"maxmemory": 0, "maxmemory_policy": "allkeys-lru"}, False),  # no limit: evicts nothing
        ({"maxmemory": 2**30, "maxmemory_policy": "noeviction"}, False),  # refuses writes
        ({"maxmemory": 2**30, "maxmemory_policy": "volatile-lru"}, True),  # the keys have TTLs
        ({"maxmemory": 2**30, "maxmemory_policy": "allkeys-lfu"}, True),
    ],
)
def test_a_redis_that_may_evict_the_state_is_named(memory: dict[str, object], warned: bool) -> None:
    warning = eviction_warning({**memory, "maxmemory_human": "1.00G"}, "redis://h:6379/0")
    assert (warning is not None) == warned
    if warning:
        assert "redis://h:6379/0" in warning and "maxmemory 1.00G" in warning
        assert f"maxmemory-policy {memory['maxmemory_policy']}" in warning
        assert "noeviction" in warning


async def _refusing_select(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A Redis configured with fewer databases than the URL's number: SELECT is refused with
    the server's own error, anything else (CLIENT SETINFO, PING) answered +OK."""
    while (line := await reader.readline()).startswith(b"*"):
        words = []
        for _ in range(int(line[1:])):
            await reader.readline()  # $<length>
            words.append((await reader.readline()).strip().upper())
        refused = words[0] == b"SELECT"
        writer.write(b"-ERR DB index is out of range\r\n" if refused else b"+OK\r\n")
        await writer.drain()
    writer.close()


async def test_a_database_beyond_the_server_s_is_named_not_taken_for_a_password() -> None:
    server = await asyncio.start_server(_refusing_select, "127.0.0.1", 0)  # a free port
    url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/16"
    try:
        problem = await redis_problem(url, "R", timeout=5)
    finally:
        server.close()
    assert problem == (
        "Redis at R has no database 16: the database number in STREAMER_REDIS_URL is beyond "
        "the server's `databases` (it has 0 to databases - 1; 16 unless configured)"
    )
