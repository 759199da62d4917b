"""A throwaway Redis primary with a replica and three Sentinels on 127.0.0.1, for the tests of
``redis+sentinel://`` URLs: real ``redis-server`` processes, the Sentinels in Sentinel mode
(``--sentinel``), a failover a SIGKILL away; optionally all behind TLS only (``rediss+sentinel``).

A single Redis server made highly available this way is what many self-run deployments use
instead of a cluster; the worker finds its primary through the Sentinels
(:mod:`streamer.redis_sentinel`). Whoever needs one starts it on free ports and stops it when
done, as :mod:`streamer.local_redis_cluster` does for a cluster.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

from streamer.local_redis_cluster import port_free, stop_processes, wait_until
from streamer.redis_tls import PeerTls

__all__ = ["LocalSentinel", "start_sentinel"]

#: how long the Sentinels wait before they call an unanswering primary down
DOWN_AFTER_MS = 1000


@dataclass
class LocalSentinel:
    """The data nodes (the first started as the primary) and the Sentinels watching them."""

    ports: list[int]
    sentinel_ports: list[int]
    service: str
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: every server listens with TLS only, with these certificates (None: plain TCP only)
    tls: PeerTls | None = None

    def url(self, db: int = 0) -> str:
        """The ``redis+sentinel://`` URL of the primary, through every Sentinel."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        if self.tls is None:
            return f"redis+sentinel://{hosts}/{self.service}/{db}"
        ca = quote(str(self.tls.server.cafile))
        return f"rediss+sentinel://{hosts}/{self.service}/{db}?ssl_ca_certs={ca}"

    def node(self, index: int, db: int = 0) -> redis.Redis:
        """A client on one data node alone."""
        return self.client_of(self.ports[index], db)

    def client_of(self, port: int, db: int = 0) -> redis.Redis:
        """A client of the server (data node or Sentinel) on ``port``."""
        ca = None if self.tls is None else str(self.tls.server.cafile)
        return redis.Redis(port=port, db=db, socket_timeout=5, ssl=ca is not None, ssl_ca_certs=ca)

    def primary(self) -> int:
        """The data node the Sentinels name as the primary now."""
        with self.client_of(self.sentinel_ports[0]) as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(self.service)
        return self.ports.index(int(port))

    def kill(self, index: int) -> None:
        """SIGKILL one data node, as a crash would stop it."""
        process = self.processes[self.ports[index]]
        process.kill()
        process.wait()

    def wait_for_failover(self, killed: int, timeout: float = 30.0) -> int:
        """Wait until the Sentinels name another node the primary and it says it is one;
        returns that node's index."""

        def done() -> bool:
            try:
                index = self.primary()
                with self.node(index) as node:
                    return index != killed and node.info("replication")["role"] == "master"
            except (redis.RedisError, ValueError):
                return False

        wait_until(done, f"the Sentinels to promote a replica of node {killed}", timeout)
        return self.primary()

    def stop(self) -> None:
        stop_processes(self.processes.values())


def _free_ports(count: int, start: int) -> list[int]:
    ports: list[int] = []
    port = start
    while len(ports) < count:
        if port_free(port):
            ports.append(port)
        port += 1
    return ports


def start_sentinel(
    root: Path,
    replicas: int = 1,
    sentinels: int = 3,
    first_port: int = 18600,
    tls: PeerTls | None = None,
) -> LocalSentinel:
    """Start a primary, ``replicas`` replicas of it and ``sentinels`` Sentinels (a quorum of
    two), and wait until every replica is in sync and every Sentinel knows them all. With
    ``tls``, every server listens with TLS only and speaks TLS to the others. Raises (with the
    logs) when it does not come up."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed (`fraud-streamer stack up` installs it)")
    root.mkdir(parents=True, exist_ok=True)
    ports = _free_ports(1 + replicas + sentinels, first_port)
    local = LocalSentinel(ports[: 1 + replicas], ports[1 + replicas :], "fraud-streamer", tls=tls)
    primary = local.ports[0]
    base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(root)]

    def listen(port: int) -> list[str]:
        return ["--port", str(port)] if tls is None else tls.arguments(port)

    for port in local.ports:
        follow = [] if port == primary else ["--replicaof", "127.0.0.1", str(primary)]
        local.processes[port] = _spawn(root, port, [server, *listen(port), *base, *follow])
    for port in local.sentinel_ports:
        config = root / f"sentinel-{port}.conf"  # a Sentinel rewrites its config: one each
        config.write_text(
            f"bind 127.0.0.1\ndir {root}\n"
            f"sentinel monitor {local.service} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {local.service} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {local.service} 10000\n"
        )
        command = [server, str(config), "--sentinel", *listen(port)]
        local.processes[port] = _spawn(root, port, command)
    try:
        wait_until(lambda: all(_in_sync(local, i) for i in range(1, len(local.ports))), "sync")
        wait_until(lambda: all(_knows_all(local, p) for p in local.sentinel_ports), "Sentinels")
    except BaseException:
        local.stop()
        logs = "\n".join(p.read_text() for p in sorted(root.glob("redis-*.log")))
        raise RuntimeError(f"the test Redis with Sentinels did not come up:\n{logs}") from None
    return local


def _spawn(root: Path, port: int, command: list[str]) -> subprocess.Popen[bytes]:
    with (root / f"redis-{port}.log").open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _in_sync(local: LocalSentinel, index: int) -> bool:
    try:
        with local.node(index) as node:
            info = node.info("replication")
    except redis.RedisError:
        return False
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def _knows_all(local: LocalSentinel, port: int) -> bool:
    """True when the Sentinel on ``port`` sees the primary, every replica and the others."""
    try:
        with local.client_of(port) as sentinel:
            state = sentinel.sentinel_master(local.service)
    except redis.RedisError:
        return False
    return (
        int(state.get("num-slaves", 0)) == len(local.ports) - 1
        and int(state.get("num-other-sentinels", 0)) == len(local.sentinel_ports) - 1
    )
