"""A throwaway Redis Cluster on 127.0.0.1, for the cluster-mode tests and benchmark: real
``redis-server`` processes in cluster mode, the hash slots split evenly between the primaries,
and optionally replicas of each (for the failover test), and optionally behind TLS only (as a
managed cluster with in-transit encryption is: clients, the cluster bus and replication all
over TLS, with the stack's certificate, see :mod:`streamer.redis_tls`).

The stack's own Redis is a single server; a cluster needs several, each with a second port
(its own + 10000) for the cluster bus, so whoever needs one starts it on free ports and stops it
when done (``redis-cli --cluster create`` does the same by hand).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from streamer import redis_tls
from streamer.processes import Endpoint

__all__ = [
    "SLOTS",
    "LocalCluster",
    "port_free",
    "slot_ranges",
    "start_cluster",
    "stop_processes",
    "wait_until",
]

SLOTS = 16384
BUS_OFFSET = 10000


def slot_ranges(nodes: int) -> list[tuple[int, int]]:
    """The inclusive slot range of each of ``nodes`` primaries, covering every slot once."""
    bounds = [SLOTS * i // nodes for i in range(nodes + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(nodes)]


@dataclass
class LocalCluster:
    """The nodes: the primaries first (``primaries`` of them), then their replicas."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    primaries: int = 0
    #: the nodes listen with TLS only, with these certificates (None: plain TCP only)
    tls: redis_tls.PeerTls | None = None

    def url(self, index: int = 0, db: int = 0) -> str:
        if self.tls is not None:
            endpoint = Endpoint("127.0.0.1", self.ports[index])
            return redis_tls.client_url(self.tls.server, endpoint, db)
        return f"redis://127.0.0.1:{self.ports[index]}/{db}"

    def node(self, index: int) -> redis.Redis:
        """A client on one node alone (for what a test asks a node itself)."""
        ca = None if self.tls is None else str(self.tls.server.cafile)
        return redis.Redis(
            port=self.ports[index], socket_timeout=5, ssl=ca is not None, ssl_ca_certs=ca
        )

    def node_id(self, index: int) -> str:
        with self.node(index) as client:
            return str(client.execute_command("CLUSTER", "MYID").decode())

    def flush(self) -> None:
        for i in range(self.primaries):  # replicas are read-only; they follow
            with self.node(i) as client:
                client.flushall()

    def role(self, index: int) -> str:
        """``master`` or ``slave``, as the node itself says."""
        with self.node(index) as client:
            return str(client.info("replication")["role"])

    def kill(self, index: int) -> None:
        """SIGKILL one node, as a crash would stop it."""
        self.processes[index].kill()
        self.processes[index].wait()

    def wait_for_failover(self, killed: int, timeout: float = 30.0) -> int:
        """Wait until a replica of the killed primary has taken over its slots and the cluster
        says ``ok`` again; returns that replica's index."""
        replicas = [i for i in range(self.primaries, len(self.ports))
                    if (i - self.primaries) % self.primaries == killed]  # fmt: skip
        alive = [i for i in range(len(self.ports)) if i != killed]
        promoted: list[int] = []

        def done() -> bool:
            promoted[:] = [i for i in replicas if self.role(i) == "master"]
            return bool(promoted) and all(_ready(self, i, len(self.ports)) for i in alive)

        wait_until(done, f"a replica of node {killed} to take over", timeout)
        return promoted[0]

    def stop(self) -> None:
        stop_processes(self.processes)


def _free_port_pair(start: int) -> int:
    """The first port from ``start`` that is free, and its cluster-bus port too."""
    for port in range(start, start + 2000):
        if all(port_free(p) for p in (port, port + BUS_OFFSET)):
            return port
    raise RuntimeError(f"no free port pair from {start}")


def port_free(port: int) -> bool:
    """True when a listener could bind ``port`` on 127.0.0.1 now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_cluster(
    root: Path,
    nodes: int = 3,
    first_port: int = 17400,
    replicas: int = 0,
    tls: redis_tls.PeerTls | None = None,
) -> LocalCluster:
    """Start ``nodes`` primaries (and ``replicas`` replicas of each), assign the primaries the
    slots, join them all, and wait until the cluster says it is ``ok`` on every node and each
    replica is in sync. With ``tls``, each node listens with TLS only, and the nodes speak TLS
    to each other too. Raises (with the nodes' logs) when it does not come up."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed (`fraud-streamer stack up` installs it)")
    root.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(ports=[], primaries=nodes, tls=tls)
    total = nodes * (1 + replicas)
    port = first_port
    for _ in range(total):
        port = _free_port_pair(port)
        cluster.ports.append(port)
        with (root / f"redis-{port}.log").open("wb") as log:
            listen = (
                ["--port", str(port)]
                if tls is None
                else [*tls.arguments(port), "--tls-cluster", "yes"]
            )
            command = [
                server,
                "--bind", "127.0.0.1",
                *listen,
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "2000",
                "--dir", str(root),
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        cluster.processes.append(process)
        port += 1
    try:
        wait_until(lambda: all(_answers(cluster, i) for i in range(total)), "the nodes to answer")
        for i, (low, high) in enumerate(slot_ranges(nodes)):
            with cluster.node(i) as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        with cluster.node(0) as client:
            for other in cluster.ports[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", other)
        wait_until(lambda: all(_ready(cluster, i, total) for i in range(total)), "cluster_state:ok")
        for i in range(nodes, total):
            with cluster.node(i) as client:
                client.execute_command("CLUSTER", "REPLICATE", cluster.node_id(i % nodes))
        wait_until(lambda: all(_in_sync(cluster, i) for i in range(nodes, total)), "the replicas")
    except BaseException:
        cluster.stop()
        logs = "\n".join(p.read_text() for p in sorted(root.glob("redis-*.log")))
        raise RuntimeError(f"the test Redis Cluster did not come up:\n{logs}") from None
    return cluster


def _answers(cluster: LocalCluster, index: int) -> bool:
    try:
        with cluster.node(index) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _ready(cluster: LocalCluster, index: int, nodes: int) -> bool:
    with cluster.node(index) as client:
        info = client.execute_command("CLUSTER", "INFO").decode()
    fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
    known = int(fields.get("cluster_known_nodes", 0))
    return fields.get("cluster_state") == "ok" and known == nodes


def _in_sync(cluster: LocalCluster, index: int) -> bool:
    with cluster.node(index) as client:
        info = client.info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def stop_processes(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every server, then wait for each (SIGKILL after 10 s)."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)
