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
one line that names it; :func:`eviction_risk` the one that warns of a Redis that may drop the
worker's state when it is full.

With ``cluster=True`` (``STREAMER_REDIS_CLUSTER``) the URL names any one node of a Redis Cluster
and the client is redis-py's ``RedisCluster``, which finds the others and follows the slots as
they move. Every key of an entity shares a hash tag (``streamer/features/keys.py``), so each
script still touches one slot, and a batch's pipeline becomes one round trip per node, sent
concurrently.

A ``redis+sentinel://`` URL (:mod:`streamer.redis_sentinel`) names a primary by the name its
Sentinels monitor it under: the client asks them where it is, and asks again when a connection
fails, so it follows a failover to the replica they promote.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Literal, cast, overload

from hiredis import pack_command as hiredis_pack  # a dependency: redis[hiredis]
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection, parse_url
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    DataError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamer.redis_sentinel import SentinelUrl, is_sentinel_url, parse_sentinel_url
from streamer.tls_alert import tls_alert

__all__ = [
    "HiredisPackingConnection",
    "HiredisPackingSSLConnection",
    "RedisClient",
    "SentinelRedis",
    "combined_info",
    "connect",
    "database",
    "eviction_risk",
    "eviction_warning",
    "node_infos",
    "redis_problem",
]

#: What :func:`connect` makes: one server, or a cluster client that routes by hash slot.
RedisClient = Redis | RedisCluster


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


class HiredisPackingSentinelConnection(_HiredisPacking, SentinelManagedConnection):
    """A TCP connection to the primary the Sentinels name, packing with hiredis."""


class HiredisPackingSentinelSSLConnection(_HiredisPacking, SentinelManagedSSLConnection):
    """A TLS connection to the primary the Sentinels name, packing with hiredis."""


_PACKING: dict[type, type] = {
    Connection: HiredisPackingConnection,
    SSLConnection: HiredisPackingSSLConnection,
}
_SENTINEL_PACKING: dict[type, type] = {
    Connection: HiredisPackingSentinelConnection,
    SSLConnection: HiredisPackingSentinelSSLConnection,
}


class SentinelRedis(Redis):
    """The primary's client, which closes its Sentinels' connections with its own."""

    connection_pool: SentinelConnectionPool

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in self.connection_pool.sentinel_manager.sentinels:
            await sentinel.aclose()


@overload
def connect(url: str, *, cluster: Literal[False] = False, **options: Any) -> Redis: ...
@overload
def connect(url: str, *, cluster: Literal[True], **options: Any) -> RedisCluster: ...
@overload
def connect(url: str, *, cluster: bool, **options: Any) -> RedisClient: ...
def connect(url: str, *, cluster: bool = False, **options: Any) -> RedisClient:
    """An asyncio client for ``url`` (``redis://``, ``rediss://``, ``unix://``), as
    ``Redis.from_url`` (or, with ``cluster``, ``RedisCluster.from_url``) would make it, whose
    TCP and TLS connections pack with hiredis; for a ``redis+sentinel://`` URL, a client of the
    primary its Sentinels name.

    The client owns its pool: ``await client.aclose()`` closes both.
    """
    if cluster:
        return _connect_cluster(url, **options)
    if is_sentinel_url(url):
        return _connect_sentinel(url, **options)
    kwargs = {**options, **parse_url(url)}
    base = kwargs.pop("connection_class", Connection)
    pool = ConnectionPool(connection_class=_PACKING.get(base, base), **kwargs)
    return Redis.from_pool(pool)


def _connect_cluster(url: str, **options: Any) -> RedisCluster:
    """``RedisCluster.from_url``, its nodes' connections packing with hiredis.

    ``RedisCluster`` takes no connection class; every node it discovers is built from its nodes
    manager's connection options, and the start-up nodes already exist, so both are set here,
    before the first command discovers the cluster.
    """
    client = RedisCluster.from_url(url, **options)
    manager = client.nodes_manager
    base = manager.connection_kwargs.get("connection_class", Connection)
    packing = _PACKING.get(base, base)
    manager.connection_kwargs["connection_class"] = packing
    for node in manager.startup_nodes.values():
        node.connection_class = packing
    return client


def _connect_sentinel(url: str, **options: Any) -> SentinelRedis:
    """A client of the primary that the URL's Sentinels name (redis-py's ``master_for``): each
    new connection asks them where the primary is, so a failover is followed on reconnect."""
    spec, kwargs, sentinel_kwargs = _sentinel_parts(url, **options)
    base = kwargs.pop("connection_class", Connection)
    sentinel = Sentinel(spec.sentinels, sentinel_kwargs=sentinel_kwargs)
    return cast(
        SentinelRedis,
        sentinel.master_for(
            spec.service,
            redis_class=SentinelRedis,
            connection_class=_SENTINEL_PACKING[base],
            **kwargs,
        ),
    )


def _sentinel_parts(url: str, **options: Any) -> tuple[SentinelUrl, dict[str, Any], dict[str, Any]]:
    """A Sentinel URL, the primary's connection options, and the Sentinels' own: the timeouts
    and, on a ``rediss+sentinel`` URL, the TLS options (one private CA for both), with the
    URL's ``sentinel_username``/``sentinel_password``."""
    spec = parse_sentinel_url(url)
    kwargs = {**options, **parse_url(spec.primary_url)}
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    shared = {k: v for k, v in kwargs.items() if k.startswith(("socket_", "ssl_"))}
    if spec.tls:
        shared["ssl"] = True
    return spec, kwargs, {**shared, **spec.sentinel_auth}


def database(url: str) -> int:
    """The database number a Redis URL names, any of the forms :func:`connect` takes."""
    return int(_url_options(url).get("db") or 0)


def _url_options(url: str) -> dict[str, Any]:
    """redis-py's connection options of a URL (of the primary, for a Sentinel URL);
    ``ValueError`` when it is not one."""
    if is_sentinel_url(url):
        return dict(parse_url(parse_sentinel_url(url).primary_url))
    return dict(parse_url(url))


async def node_infos(client: RedisClient, *sections: str) -> dict[str, dict[str, Any]]:
    """``INFO`` of each primary of a cluster by node name (``{"": …}`` for one server), the
    sections merged.

    One node at a time: redis-py returns a cluster-wide ``INFO`` keyed by node, except when it
    went to a single node; asking each primary alone keeps the answer's shape one.
    """
    if isinstance(client, RedisCluster):
        await client.initialize()
        return {
            node.name: await _merged_info(client, sections, target_nodes=node)
            for node in client.get_primaries()
        }
    return {"": await _merged_info(client, sections)}


async def _merged_info(client: RedisClient, sections: tuple[str, ...], **kw: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for section in sections:
        merged.update(await client.info(section, **kw))
    return merged


def combined_info(infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One ``INFO`` for the whole store, from :func:`node_infos`: memory used and evicted keys
    summed over the primaries; the memory limit summed when every primary has one (0, no limit,
    otherwise); anything else as the first primary reports it."""
    nodes = list(infos.values())
    if len(nodes) == 1:
        return dict(nodes[0])
    limits = [int(n.get("maxmemory", 0)) for n in nodes]
    limit = sum(limits) if all(limits) else 0
    return {
        **nodes[0],
        "used_memory": sum(int(n.get("used_memory", 0)) for n in nodes),
        "evicted_keys": sum(int(n.get("evicted_keys", 0)) for n in nodes),
        "maxmemory": limit,
        "maxmemory_human": f"{limit} bytes over {len(nodes)} primaries",
    }


async def redis_problem(
    url: str, shown: str, timeout: float = 5.0, *, cluster: bool = False
) -> str | None:
    """Why Redis at ``url`` cannot be used, in words (``shown``: the URL without its
    password); None when it answers PING and is what ``cluster`` says it is (with ``cluster``,
    when every node of the cluster answers too).

    A worker that only found out at its first batch would exit mid-stream with a traceback;
    this is asked once at start, so a wrong URL, password or TLS setting is a one-line error
    instead. redis-py reports a TLS port reached without TLS as a reset connection and the
    reverse as a timeout, so for those two this probes the port itself and says which it is.
    A cluster node used as a single server would answer MOVED to most keys mid-stream, and a
    single server has no slots to discover; either mismatch names the setting.
    """
    problem = _ca_file_problem(url) or _database_problem(url, cluster)
    if problem is None and is_sentinel_url(url):
        problem = await _sentinel_problem(url, shown, timeout, cluster)
    if problem is not None:
        return problem
    client = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await client.ping()
    except AuthenticationError:
        return f"Redis at {shown} refused the user name or password in {VARIABLE}"
    except ResponseError as exc:
        if "cluster mode" in str(exc):  # SELECT <db> on a cluster node
            return _cluster_mismatch(shown, node_is_cluster=True)
        if "DB index is out of range" in str(exc):  # SELECT <db> past the server's databases
            return (
                f"Redis at {shown} has no database {database(url)}: the database number in "
                f"{VARIABLE} is beyond the server's `databases` (it has 0 to databases - 1; "
                "16 unless configured)"
            )
        if isinstance(exc, AuthenticationWrongNumberOfArgsError):  # AUTH itself refused
            return f"Redis at {shown} refused PING: {exc} (does {VARIABLE} need a password?)"
        return f"Redis at {shown} refused PING: {exc}"
    except (RedisTimeoutError, RedisConnectionError) as exc:
        if is_sentinel_url(url):
            return f"the primary the Sentinels name for {shown} does not answer: {exc}"
        return await _unreachable(url, shown, exc, timeout)
    except (RedisError, OSError, ValueError) as exc:
        return f"cannot use Redis at {shown}: {type(exc).__name__}: {exc}"
    else:
        try:
            enabled = bool(int((await client.info("cluster")).get("cluster_enabled", 0)))
        except RedisError:  # INFO not allowed: trust the setting
            enabled = cluster
    finally:
        await client.aclose()
    if enabled != cluster:
        return _cluster_mismatch(shown, node_is_cluster=enabled)
    return await _cluster_problem(url, shown, timeout) if cluster else None


VARIABLE = "STREAMER_REDIS_URL"
CLUSTER_VARIABLE = "STREAMER_REDIS_CLUSTER"


def _database_problem(url: str, cluster: bool) -> str | None:
    """A database other than 0 in a cluster URL: a cluster has no other."""
    try:
        db = database(url)
    except ValueError as exc:
        return f"{VARIABLE} is not a Redis URL: {exc}"
    if cluster and db != 0:
        return (
            f"{VARIABLE} names database {db}, but a Redis Cluster ({CLUSTER_VARIABLE}=true) has "
            "only database 0: end the URL with /0 or no database"
        )
    return None


async def _sentinel_problem(url: str, shown: str, timeout: float, cluster: bool) -> str | None:
    """Why the primary of a Sentinel URL cannot be found: the cluster setting (a Sentinel's
    primary is a single server), no Sentinel answering, or none monitoring that name."""
    if cluster:
        return (
            f"{VARIABLE} names a primary through Sentinel, a single server: unset "
            f"{CLUSTER_VARIABLE} (a Redis Cluster needs no Sentinel)"
        )
    spec, _, sentinel_kwargs = _sentinel_parts(
        url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    monitored: set[str] = set()
    errors = []
    answered = False
    for host, port in spec.sentinels:
        client = Redis(host=host, port=port, **sentinel_kwargs)
        try:
            masters = await client.sentinel_masters()  # by name (a list under RESP3)
            names = masters if isinstance(masters, dict) else [m["name"] for m in masters]
            monitored |= {str(name) for name in names}
            answered = True
        except AuthenticationError:
            return (
                f"the Sentinel at {host}:{port} refused the sentinel_username or "
                f"sentinel_password in {VARIABLE} ({shown})"
            )
        except (RedisError, OSError) as exc:
            errors.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
        finally:
            await client.aclose()
    if not answered:
        return f"no Sentinel answers for {shown} ({'; '.join(errors)})"
    if spec.service not in monitored:
        known = ", ".join(repr(name) for name in sorted(monitored)) or "none"
        return (
            f"the Sentinels of {shown} monitor no primary named {spec.service!r} (they "
            f"monitor {known}): the path of {VARIABLE} is /<name>[/<db>]"
        )
    return None


def _cluster_mismatch(shown: str, *, node_is_cluster: bool) -> str:
    if node_is_cluster:
        return (
            f"Redis at {shown} is a node of a Redis Cluster: set {CLUSTER_VARIABLE}=true "
            "(and use database 0, the only one a cluster has)"
        )
    return (
        f"Redis at {shown} is a single server, not a cluster node (cluster_enabled:0): unset "
        f"{CLUSTER_VARIABLE}, or point {VARIABLE} at a node of the cluster"
    )


async def _cluster_problem(url: str, shown: str, timeout: float) -> str | None:
    """Why the cluster that ``url``'s node belongs to cannot be used: slots left uncovered,
    or a node it advertises that does not answer here (often an address that is reachable only
    inside the cluster's own network; see ``cluster-announce-ip``)."""
    client = connect(url, cluster=True, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await client.initialize()
        for node in client.get_nodes():
            try:
                await client.ping(target_nodes=node)
            except (RedisError, OSError) as exc:
                return (
                    f"Redis Cluster at {shown}: its node {node.name} does not answer "
                    f"({type(exc).__name__}: {exc}); every node the cluster advertises must "
                    "be reachable from the worker (see cluster-announce-ip)"
                )
    except (RedisClusterException, RedisError, OSError) as exc:
        return f"cannot use the Redis Cluster at {shown}: {type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None


async def eviction_risk(
    url: str, shown: str, timeout: float = 5.0, *, cluster: bool = False
) -> str | None:
    """:func:`eviction_warning` for the Redis at ``url`` (``shown``: without its password) or,
    with ``cluster``, for the first of its cluster's primaries it applies to; None also when
    ``INFO`` is not allowed (some managed services restrict it)."""
    client = connect(url, cluster=cluster, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        infos = await node_infos(client, "memory")
    except (RedisClusterException, RedisError, OSError):
        return None
    finally:
        await client.aclose()
    for name, memory in infos.items():
        warning = eviction_warning(memory, f"{shown} (node {name})" if name else shown)
        if warning is not None:
            return warning
    return None


def eviction_warning(memory: dict[str, Any], shown: str) -> str | None:
    """Why a Redis with this ``INFO memory`` may lose the worker's state, or None.

    Managed Redis services set a memory limit with an eviction policy by default (often
    ``volatile-lru``, which evicts keys that have a TTL — the worker gives every window key
    one). An evicted window silently makes features count fewer transactions than happened,
    and an evicted first-stats hash lets a re-delivered transaction be scored anew. With
    ``noeviction`` a full Redis refuses the write instead: the batch fails, the worker exits
    and the batch is replayed, which an operator sees. No limit (``maxmemory`` 0) evicts
    nothing.
    """
    limit = int(memory.get("maxmemory", 0))
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if limit == 0 or policy == "noeviction":
        return None
    human = memory.get("maxmemory_human", f"{limit} bytes")
    return (
        f"Redis at {shown} evicts keys when it reaches its memory limit (maxmemory {human}, "
        f"maxmemory-policy {policy}): window state evicted there makes features count fewer "
        "transactions than happened, without an error. Set maxmemory-policy noeviction (a "
        "full Redis then fails the batch, the worker exits and the batch is replayed), and "
        "give it room for the windows (see the README's Operations)"
    )


def _ca_file_problem(url: str) -> str | None:
    """Why the URL's ``ssl_ca_certs`` file cannot serve as the trusted authorities, if set."""
    try:
        cafile = _url_options(url).get("ssl_ca_certs")
    except ValueError as exc:
        return f"{VARIABLE} is not a Redis URL: {exc}"
    if cafile is None:
        return None
    try:
        ssl.create_default_context(cafile=str(cafile))
    except (OSError, ssl.SSLError) as exc:
        return f"ssl_ca_certs={cafile} in {VARIABLE} cannot be read as PEM CA certificates: {exc}"
    return None


async def _unreachable(url: str, shown: str, exc: RedisError, timeout: float) -> str:
    cause = exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"Redis at {shown} presented a certificate this client does not trust "
            f"({cause.verify_message}): set ssl_ca_certs in {VARIABLE} to its CA's PEM file"
        )
    options = parse_url(url)
    tls = options.get("connection_class") is SSLConnection
    host, port = options.get("host"), options.get("port", 6379)
    refused = None
    if isinstance(cause, ssl.SSLError) and "ALERT" in (cause.reason or ""):
        refused = cause.reason
    elif tls and host is not None and isinstance(cause, ConnectionResetError):
        context = _client_context(options.get("ssl_certfile"), options.get("ssl_keyfile"))
        refused = await tls_alert(host, port, context, timeout)
    if refused is not None and options.get("ssl_certfile"):
        return (
            f"Redis at {shown} refused the client certificate in ssl_certfile "
            f"({refused}): is it signed by a CA the server trusts?"
        )
    if refused is not None:
        return (
            f"Redis at {shown} refused a TLS client without a certificate ({refused}): it "
            "requires one; add ssl_certfile=<PEM> and ssl_keyfile=<PEM> to the URL"
        )
    if isinstance(cause, ConnectionRefusedError) or host is None:
        pass
    elif not tls and await _speaks_tls(host, port, timeout):
        return (
            f"Redis at {shown} expects TLS on that port: write the URL as rediss://… "
            "(with ?ssl_ca_certs=<CA file> when its certificate is from a private CA)"
        )
    elif tls and await _speaks_plain(host, port, timeout):
        return (
            f"Redis at {shown} does not speak TLS on that port: write the URL as redis://…, "
            "or use the port where the server takes TLS"
        )
    if isinstance(exc, RedisTimeoutError):
        return f"Redis at {shown} did not answer within {timeout:.0f} s"
    return f"cannot reach Redis at {shown}: {exc} (is it running? `fraud-streamer stack up`)"


def _client_context(certfile: Any, keyfile: Any) -> ssl.SSLContext:
    """A TLS context that presents the URL's client certificate, if any, and checks nothing of
    the server's: it is only for hearing the alert a server sends when it refuses the client."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


async def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """True when a TLS handshake with ``host:port`` completes (certificate not checked)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), timeout
        )
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


async def _speaks_plain(host: str, port: int, timeout: float) -> bool:
    """True when ``host:port`` answers a plain-text ``PING`` as Redis does (+PONG or -ERR)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    try:
        writer.write(b"PING\r\n")
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()
    return line[:1] in (b"+", b"-")
