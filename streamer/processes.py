"""Background processes on this machine: starting them detached, recording and checking
their pids, stopping them, and probing ports (:class:`Endpoint`) — what the local stack does
with its servers.

A pid file records the process's start time besides its pid, so a pid the kernel has since
given to another process is not mistaken for ours (nor stopped).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KAFKA_PORT",
    "REDIS_PORT",
    "Endpoint",
    "alive",
    "listening_pid",
    "parse_host_port",
    "port_open",
    "read_pid",
    "recorded_address",
    "spawn",
    "start_ticks",
    "stop",
    "succeeds",
    "write_pid",
]

#: the ports an address without one means, as the Kafka and Redis clients read it
KAFKA_PORT = 9092
REDIS_PORT = 6379


def start_ticks(pid: int) -> str | None:
    """The process start time (Linux /proc), which tells a pid apart from a recycled one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie child is reaped and counts as gone).

    A process killed with many threads (a JVM) shows its main thread as a zombie at once, while
    the others are still exiting and its sockets still open: it is gone only once it is a
    zombie with no other thread left, or no longer there at all.
    """
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True  # no /proc here: the signal said it exists
    if state != "Z":
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False  # reaped while we looked


def write_pid(path: Path, pid: int, address: object) -> None:
    """Record the pid, its start time and the address it serves (to notice a changed port)."""
    path.write_text(f"{pid}\n{start_ticks(pid) or ''}\n{address}\n")


def recorded_address(path: Path) -> str:
    try:
        return path.read_text().split("\n")[2].strip()
    except (OSError, IndexError):
        return ""


def read_pid(path: Path) -> int | None:
    """The pid recorded in ``path`` if that very process still runs; else drop the file."""
    try:
        lines = path.read_text().split("\n")
        pid = int(lines[0])
    except (OSError, ValueError):
        return None
    recorded = lines[1].strip() if len(lines) > 1 else ""
    if alive(pid) and (not recorded or start_ticks(pid) in (None, recorded)):
        return pid
    path.unlink(missing_ok=True)
    return None


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on ``host``:``port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listening_pid(port: int) -> int | None:
    """Best effort (Linux): the pid of the process listening on TCP ``port``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def stop(pid: int, grace: float) -> bool:
    """SIGTERM the process group ``pid`` leads, SIGKILL after ``grace`` s; True if forced."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return sig is signal.SIGKILL
            time.sleep(0.1)
    return True


def spawn(command: list[str], log: Path, cwd: Path) -> int:
    """Start ``command`` detached (own session, no terminal) so it outlives the CLI."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def succeeds(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=5, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass(frozen=True)
class Endpoint:
    """A host and port the stack binds to and probes."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def listening(self, timeout: float = 0.3) -> bool:
        """True when something accepts TCP connections here."""
        return port_open(self.host, self.port, timeout)


def parse_host_port(text: str, default_port: int | None = None) -> Endpoint:
    """Parse ``host:port`` (IPv6 as ``[::1]:port``; ``:port`` may be left out when there is a
    ``default_port``); raises ``ValueError`` saying what is wrong with ``text``.

    Stricter than ``urlsplit``, which lets through what aiokafka and redis-py fail on later
    (an unclosed ``[``, a second colon, an empty port) or read otherwise (a path or a user).
    """
    given = text.strip()
    if given.startswith("["):
        host, closed, rest = given[1:].partition("]")
        if not closed:
            raise ValueError(f"no ']' closes the IPv6 address in {text!r}")
        if rest and not rest.startswith(":"):
            raise ValueError(f"only :port may follow the ']' in {text!r}")
        colon, port_text = rest[:1], rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets in {text!r} is not an IPv6 address") from None
    else:
        host, colon, port_text = given.partition(":")
        if ":" in port_text:
            raise ValueError(
                f"more than one ':' in {text!r} (an IPv6 address goes in brackets: [::1]:port)"
            )
        if re.search(r"[\s\[\]/?#@,]", host):  # a URL's user, path or query; a list's comma
            raise ValueError(f"{host!r} in {text!r} is not a host name or address")
    if not host:
        raise ValueError(f"no host in {text!r}")
    if colon and not port_text:
        raise ValueError(f"no port after the ':' in {text!r}")
    if colon and not re.fullmatch(r"[0-9]+", port_text):  # isdigit() takes "²", int() not
        raise ValueError(f"bad port in {text!r}: {port_text!r} is not a number")
    port = int(port_text) if colon else default_port
    if port is None:
        raise ValueError(f"no port in {text!r}")
    if not 0 < port < 65_536:
        raise ValueError(f"bad port in {text!r}: {port} is not 1-65535")
    return Endpoint(host.lower(), port)
