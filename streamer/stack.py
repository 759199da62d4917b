"""The local stack: a real Apache Kafka broker (KRaft, one node) and a real Redis on loopback.

Development machines run no Docker engine, and fakes would hide exactly the behaviour the
worker depends on (group rebalances, committed offsets, server-side scripts). So the stack runs
the real servers as plain background processes, with everything they write under the
git-ignored ``settings.data_dir``:

    <data_dir>/kafka/  server.properties, log4j2.properties, classpath.txt, data/, logs/, kafka.pid,
                       secure/ (the secured listeners' CA, keystores and client settings)
    <data_dir>/redis/  dump.rdb, redis.log, redis.pid,
                       tls/ (the TLS port's certificate and key, see streamer.redis_tls)

Kafka's jars come from Maven Central through ``stack/kafka/pom.xml`` (resolved once into the
local Maven repository; the stack caches the classpath). Ports come from the settings, so the
stack always listens where the worker and the tests will connect. A service found answering on
its port without our pid file is reused and never stopped: ``down`` stops only what ``up``
started. No output of its own: progress goes to the ``echo`` callback the caller passes.
The broker's configuration files are rendered by :mod:`streamer.broker_config`, and the
processes are started, recorded and stopped by :mod:`streamer.processes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from streamer import redis_tls, secure_listener
from streamer.broker_config import (
    KAFKA_HEAP,
    KAFKA_VERSION,
    MIN_JAVA,
    POM,
    controller_endpoint,
    java_major_version,
    mtls_endpoint,
    new_cluster_id,
    render_log4j2,
    render_server_properties,
    sasl_plaintext_endpoint,
    secure_endpoint,
)
from streamer.processes import (
    REDIS_PORT,
    Endpoint,
    listening_pid,
    parse_host_port,
    read_pid,
    recorded_address,
    spawn,
    stop,
    succeeds,
    write_pid,
)
from streamer.redis_tls import RedisTls
from streamer.secure_listener import SecureListener, SecureListenerError
from streamer.settings import ENV_PREFIX, Settings

__all__ = [
    "LocalStack",
    "ServiceState",
    "StackError",
    "StackPaths",
    "kafka_endpoint",
    "missing_tools_message",
    "redis_endpoint",
    "redis_install_commands",
    "tail",
]

JAVA_PACKAGES = "openjdk-17-jre-headless maven"
REDIS_PACKAGE = "redis-server"

Echo = Callable[[str], None]


class StackError(Exception):
    """The local stack cannot do what was asked; the message says why and what to do."""


def _bind_host(host: str, variable: str) -> str:
    """The loopback address to bind for ``host``; the stack never listens beyond this machine."""
    if host == "localhost":
        return "127.0.0.1"
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return host
    raise StackError(
        f"{variable} names host {host!r}: the local stack only runs on loopback "
        "(127.0.0.1, ::1 or localhost). Unset it for the local stack, or point it at your "
        "own services and do not use `stack up`."
    )


def kafka_endpoint(settings: Settings) -> Endpoint:
    """Where the local broker must listen: the single loopback bootstrap server."""
    variable = f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS"
    servers = settings.bootstrap_servers
    if len(servers) != 1:
        raise StackError(f"{variable} lists {len(servers)} servers; the local stack runs one.")
    if settings.kafka_security_protocol != "PLAINTEXT":
        raise StackError(
            f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL is {settings.kafka_security_protocol}: the "
            "local stack is run with its PLAINTEXT settings (its SASL_SSL listener's client "
            "settings are in <data dir>/kafka/secure/client.env; unset them for `stack`)."
        )
    try:
        endpoint = parse_host_port(servers[0])
    except ValueError as exc:
        raise StackError(f"{variable}: {exc}") from None
    return Endpoint(_bind_host(endpoint.host, variable), endpoint.port)


def redis_endpoint(settings: Settings) -> Endpoint:
    """Where the local Redis must listen, from the ``redis://`` URL."""
    variable = f"{ENV_PREFIX}REDIS_URL"
    parts = urlsplit(settings.redis_url)
    if parts.scheme != "redis":
        raise StackError(
            f"{variable} must be a redis:// URL for the local stack (it is run with its plain "
            "port; `stack up` prints the rediss:// URL of its TLS port, the plain one + 1)."
        )
    try:
        endpoint = parse_host_port(parts.netloc.rpartition("@")[2], default_port=REDIS_PORT)
    except ValueError as exc:
        raise StackError(f"{variable}: {exc}") from None
    return Endpoint(_bind_host(endpoint.host, variable), endpoint.port)


class StackPaths:
    """Where the stack keeps each file; ``root`` is the absolute ``settings.data_dir``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kafka = root / "kafka"
        self.kafka_config = self.kafka / "server.properties"
        self.kafka_log4j = self.kafka / "log4j2.properties"
        self.kafka_data = self.kafka / "data"
        self.kafka_log = self.kafka / "logs" / "server.log"
        self.kafka_console = self.kafka / "logs" / "console.log"
        self.kafka_pid = self.kafka / "kafka.pid"
        self.kafka_secure = self.kafka / "secure"
        self.scram_marker = self.kafka_secure / "scram-cluster-id"
        self.classpath = self.kafka / "classpath.txt"
        self.maven_log = self.kafka / "logs" / "maven.log"
        self.redis = root / "redis"
        self.redis_log = self.redis / "redis.log"
        self.redis_pid = self.redis / "redis.pid"
        self.redis_tls = self.redis / "tls"


def missing_tools_message(missing: list[str]) -> str:
    """What to install when ``java`` or ``mvn`` is missing, and the container alternative."""
    return (
        f"the local Kafka needs Java {MIN_JAVA}+ and Maven, but {' and '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not on PATH.\n"
        f"  Install them (Debian/Ubuntu: `apt-get install {JAVA_PACKAGES}`; macOS: "
        "`brew install openjdk@17 maven`),\n"
        "  or run the whole system in containers instead: `docker compose up` "
        "(see docker-compose.yml)."
    )


def redis_install_commands(euid: int, passwordless_sudo: bool) -> list[list[str]] | None:
    """The apt commands that install Redis here, or None when we may not install packages.

    Installing is only attempted non-interactively: as root, or through ``sudo -n``.
    """
    if euid == 0:
        prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    elif passwordless_sudo:
        prefix = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    else:
        return None
    return [[*prefix, "apt-get", "update"], [*prefix, "apt-get", "install", "-y", REDIS_PACKAGE]]


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist yet).

    Indented lines (Java stack frames) are left out: the messages and their ``Caused by:``
    lines say what went wrong, and the frames would push them off the screen.
    """
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip() and not line[0].isspace()]
    return "\n".join(kept[-lines:])


def _relative(path: Path) -> str:
    """``path`` relative to the working directory when below it: shorter messages."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- probes -------------------------------------------------------------------------------------


def _kafka_answers(settings: Settings, endpoint: Endpoint) -> bool:
    """True when a broker on ``endpoint`` answers a metadata request and lists itself."""
    if not endpoint.listening():
        return False
    from streamer.kafka import fetch_broker_ids  # aiokafka only when Kafka is there

    try:
        return bool(asyncio.run(fetch_broker_ids(settings, timeout=3.0)))
    except Exception:
        return False


def _redis_answers(settings: Settings, endpoint: Endpoint) -> bool:
    """True when a Redis on ``endpoint`` answers PING."""
    if not endpoint.listening():
        return False
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2.0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# --- the stack ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceState:
    """What runs for one service: where, which process, and whether this stack started it."""

    name: str
    endpoint: Endpoint
    pid: int | None
    ours: bool
    answering: bool
    elsewhere: str = ""  # where our process listens, when the settings now name another port

    @property
    def owner(self) -> str:
        pid = f"pid {self.pid}" if self.pid else "pid unknown"
        return f"{pid}, {'' if self.ours else 'not '}started by fraud-streamer"

    def describe(self) -> str:
        """One line for ``stack status``."""
        if self.elsewhere:
            return (
                f"{self.name:<6} running   {self.elsewhere}  ({self.owner}), but the settings "
                f"now say {self.endpoint}: run `fraud-streamer stack down` first"
            )
        if self.answering:
            return f"{self.name:<6} running   {self.endpoint}  ({self.owner})"
        if self.pid:
            return f"{self.name:<6} starting  {self.endpoint}  ({self.owner}; not answering yet)"
        return f"{self.name:<6} stopped   {self.endpoint}"


class LocalStack:
    """Starts, inspects and stops the local Kafka and Redis of one checkout."""

    def __init__(self, settings: Settings, echo: Echo = print) -> None:
        self.settings = settings
        self.paths = StackPaths(settings.data_dir.resolve())
        self.kafka = kafka_endpoint(settings)
        self.secure = secure_endpoint(self.kafka)
        self.mtls = mtls_endpoint(self.kafka)
        self.sasl_plaintext = sasl_plaintext_endpoint(self.kafka)
        self.redis = redis_endpoint(settings)
        self.redis_tls_endpoint = Endpoint(self.redis.host, redis_tls.tls_port(self.redis.port))
        self.echo = echo

    # public ------------------------------------------------------------------------------------

    def status(self) -> list[ServiceState]:
        """The state of both services, without changing anything."""
        return [self._state("kafka"), self._state("redis")]

    def secure_listener(self) -> SecureListener | None:
        """The SASL_SSL listener's credentials and CA, if `up` has made them; None otherwise.

        Whether the running broker listens there too is another matter: one started before
        the listener existed does not (:meth:`secure_listening` tells).
        """
        try:
            return secure_listener.load(self.paths.kafka_secure)
        except SecureListenerError as exc:
            raise StackError(str(exc)) from None

    def secure_listening(self) -> bool:
        """True when something accepts connections on the SASL_SSL listener's port."""
        return self.secure.listening()

    def mtls_listening(self) -> bool:
        """True when something accepts connections on the SSL listener's port."""
        return self.mtls.listening()

    def sasl_plaintext_listening(self) -> bool:
        """True when something accepts connections on the SASL_PLAINTEXT listener's port."""
        return self.sasl_plaintext.listening()

    def redis_tls(self) -> RedisTls | None:
        """The files of Redis's TLS port, if `up` has made them; None otherwise (and, as for
        the SASL_SSL listener, a Redis started before they existed does not listen there)."""
        return redis_tls.load(self.paths.redis_tls, self.secure_listener())

    def redis_tls_listening(self) -> bool:
        """True when something accepts connections on Redis's TLS port."""
        return self.redis_tls_endpoint.listening()

    def up(self, timeout: float = 90.0) -> list[ServiceState]:
        """Start what is not running, then wait until both services answer."""
        kafka, redis = self.status()
        for state in (kafka, redis):
            if state.elsewhere:
                raise StackError(
                    f"{state.name} started here runs on {state.elsewhere} (pid {state.pid}), but "
                    f"the settings now say {state.endpoint}: `fraud-streamer stack down` first."
                )
        for state in (kafka, redis):
            if state.answering:
                self.echo(f"{state.name}: already running on {state.endpoint} ({state.owner})")
        if kafka.answering and redis.answering:
            return [kafka, redis]
        start_kafka = not kafka.answering and kafka.pid is None
        start_redis = not redis.answering and redis.pid is None
        variable = "KAFKA_BOOTSTRAP_SERVERS"
        if start_kafka and self.kafka.listening():
            raise self._port_taken(self.kafka, "(not answering as Kafka)", variable)
        if start_kafka and (controller := controller_endpoint(self.kafka)).listening():
            raise self._port_taken(controller, "(Kafka's controller: broker port + 1)", variable)
        if start_kafka and self.secure.listening():
            raise self._port_taken(
                self.secure, "(Kafka's SASL_SSL listener: broker port + 2)", variable
            )
        if start_kafka and self.mtls.listening():
            raise self._port_taken(self.mtls, "(Kafka's SSL listener: broker port + 3)", variable)
        if start_kafka and self.sasl_plaintext.listening():
            raise self._port_taken(
                self.sasl_plaintext, "(Kafka's SASL_PLAINTEXT listener: broker port + 4)", variable
            )
        if start_redis and self.redis.listening():
            raise self._port_taken(self.redis, "(not answering as Redis)", "REDIS_URL")
        if start_redis and self.redis_tls_endpoint.listening():
            raise self._port_taken(
                self.redis_tls_endpoint, "(Redis's TLS port: its port + 1)", "REDIS_URL"
            )
        # Everything that can fail early does, before anything is started.
        redis_server = self._redis_server() if start_redis else None
        java = self._java() if start_kafka or start_redis else None  # keytool: certificates
        classpath = self._classpath() if start_kafka else None
        secure = self._secure_material(java) if java is not None else None
        if redis_server is not None and java is not None and secure is not None:
            self._start_redis(redis_server, self._redis_tls_material(java, secure))
        if java is not None and classpath is not None and secure is not None:
            self._start_kafka(java, classpath, secure)
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        self._wait("redis", deadline)
        self._wait("kafka", deadline)
        if java is not None and classpath is not None and secure is not None:
            self._add_scram_user(java, classpath, secure)
        self.echo(f"stack ready in {time.monotonic() - started:.1f}s")
        return self.status()

    def down(self, grace: float = 30.0) -> list[str]:
        """Stop the services this stack started (by pid file); leave any other alone."""
        messages = []
        for name, pid_file in (("kafka", self.paths.kafka_pid), ("redis", self.paths.redis_pid)):
            pid = read_pid(pid_file)
            if pid is None:
                state = self._state(name)
                if state.answering:
                    messages.append(f"{name}: left running on {state.endpoint} ({state.owner})")
                else:
                    messages.append(f"{name}: not running")
                continue
            forced = stop(pid, grace)
            pid_file.unlink(missing_ok=True)
            how = f"killed after {grace:.0f}s grace" if forced else "stopped"
            messages.append(f"{name}: {how} (pid {pid})")
        return messages

    # inspection --------------------------------------------------------------------------------

    def _state(self, name: str) -> ServiceState:
        if name == "kafka":
            endpoint, pid_file = self.kafka, self.paths.kafka_pid
            answering = _kafka_answers(self.settings, endpoint)
        else:
            endpoint, pid_file = self.redis, self.paths.redis_pid
            answering = _redis_answers(self.settings, endpoint)
        pid = read_pid(pid_file)
        if pid is not None:
            recorded = recorded_address(pid_file)
            if recorded and recorded != str(endpoint):  # the settings changed since `up`
                return ServiceState(name, endpoint, pid, True, False, elsewhere=recorded)
            return ServiceState(name, endpoint, pid, ours=True, answering=answering)
        other = listening_pid(endpoint.port) if answering else None
        return ServiceState(name, endpoint, other, ours=False, answering=answering)

    @staticmethod
    def _port_taken(endpoint: Endpoint, what: str, variable: str) -> StackError:
        pid = listening_pid(endpoint.port)
        who = f"process {pid}" if pid else "another program"
        return StackError(
            f"port {endpoint.port} {what} is taken by {who}: stop it, or choose another port "
            f"({ENV_PREFIX}{variable})."
        )

    def _wait(self, name: str, deadline: float) -> None:
        """Poll until ``name`` answers; fail early if its process dies, with its log."""
        while True:
            state = self._state(name)
            if state.answering:
                return
            if state.pid is None:  # our pid file is dropped when the process is gone
                raise StackError(f"{name} exited during start-up.\n{self._log_tail(name)}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not answer in time.\n{self._log_tail(name)}")
            time.sleep(0.25)

    def _log_tail(self, name: str) -> str:
        logs = (
            [self.paths.kafka_console, self.paths.kafka_log]
            if name == "kafka"
            else [self.paths.redis_log]
        )
        parts = [f"--- {_relative(p)} (last lines) ---\n{tail(p)}" for p in logs if tail(p)]
        return "\n".join(parts) or "(no log output)"

    # Redis -------------------------------------------------------------------------------------

    def _redis_server(self) -> str:
        """The redis-server binary, installed with apt when missing and we may."""
        found = shutil.which("redis-server")
        if found:
            return found
        sudo = shutil.which("sudo") is not None and succeeds(["sudo", "-n", "true"])
        commands = redis_install_commands(os.geteuid(), sudo)
        if commands is None or shutil.which("apt-get") is None:
            raise StackError(
                "redis-server is not installed. Install the package "
                f"(Debian/Ubuntu: `apt-get install {REDIS_PACKAGE}`; macOS: `brew install "
                "redis`), or use `docker compose up` (see docker-compose.yml)."
            )
        self.echo(f"redis: installing {REDIS_PACKAGE} with apt-get (first run only)…")
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise StackError(f"`{' '.join(command)}` failed:\n{result.stdout}{result.stderr}")
        found = shutil.which("redis-server")
        if not found:
            raise StackError(f"{REDIS_PACKAGE} was installed but redis-server is not on PATH.")
        return found

    def _redis_tls_material(self, java: str, ca: SecureListener) -> RedisTls | None:
        """The TLS port's certificate and key, signed by the stack's CA; made the first time."""
        try:
            return redis_tls.create_material(
                self.paths.redis_tls, ca, self.redis_tls_endpoint, self._keytool(java), self.echo
            )
        except (SecureListenerError, OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(str(exc)) from None

    def _start_redis(self, redis_server: str, tls: RedisTls | None) -> None:
        self.paths.redis.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server,
            "--bind", self.redis.host,
            "--port", str(self.redis.port),
            "--dir", str(self.paths.redis),
            "--daemonize", "no",
            "--appendonly", "no",
        ]  # fmt: skip
        if tls is not None:
            command += redis_tls.server_arguments(tls, self.redis_tls_endpoint.port)
        pid = spawn(command, self.paths.redis_log, self.paths.redis)
        write_pid(self.paths.redis_pid, pid, self.redis)
        log = _relative(self.paths.redis_log)
        also = f", TLS on {self.redis_tls_endpoint}" if tls is not None else ""
        self.echo(f"redis: starting redis-server on {self.redis}{also} (pid {pid}, log {log})")

    # Kafka -------------------------------------------------------------------------------------

    def _java(self) -> str:
        """The java binary, after checking everything the broker needs is installed."""
        java = shutil.which("java")
        missing = [] if java else ["java"]
        if shutil.which("mvn") is None and not self._classpath_cached():
            missing.append("mvn")
        if java is None or missing:
            raise StackError(missing_tools_message(missing))
        output = subprocess.run(
            [java, "-version"], capture_output=True, text=True, check=False
        ).stderr
        major = java_major_version(output)
        if major is not None and major < MIN_JAVA:
            raise StackError(
                f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, but `java` is Java {major}.\n"
                + missing_tools_message(["a recent java"]).split("\n", 1)[1]
            )
        return java

    def _pom_hash(self) -> str:
        if not POM.is_file():
            raise StackError(
                f"{POM} is missing: the local stack runs from a source checkout "
                "(`pip install -e .`)."
            )
        return hashlib.sha256(POM.read_bytes()).hexdigest()

    def _classpath_cached(self) -> str | None:
        """The cached classpath, if it was resolved from this pom and every jar still exists."""
        try:
            header, classpath = self.paths.classpath.read_text().split("\n")[:2]
        except (OSError, ValueError):
            return None
        jars = classpath.split(os.pathsep)
        if header != f"# pom-sha256 {self._pom_hash()}" or not all(map(os.path.isfile, jars)):
            return None
        return classpath

    def _classpath(self) -> str:
        """Kafka's classpath; the first time, Maven resolves (and downloads) the jars."""
        cached = self._classpath_cached()
        if cached:
            return cached
        self.paths.maven_log.parent.mkdir(parents=True, exist_ok=True)
        self.echo(f"kafka: resolving Kafka {KAFKA_VERSION} jars with Maven (first run only)…")
        output = self.paths.kafka / "classpath.tmp"
        command = [
            "mvn", "-B", "-Dstyle.color=never", "-f", str(POM),
            "dependency:build-classpath", f"-Dmdep.outputFile={output}",
        ]  # fmt: skip
        downloads = 0
        with self.paths.maven_log.open("w") as log:
            proc = subprocess.Popen(
                command, cwd=self.paths.kafka, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if line.startswith("Downloaded from"):
                    downloads += 1
                    if downloads % 25 == 0:
                        self.echo(f"kafka:   {downloads} files downloaded…")
            proc.wait()
        if proc.returncode != 0 or not output.is_file():
            raise StackError(
                f"Maven could not resolve Kafka's jars (exit {proc.returncode}).\n"
                f"--- {_relative(self.paths.maven_log)} ---\n{tail(self.paths.maven_log)}"
            )
        classpath = output.read_text().strip()
        output.unlink()
        self.paths.classpath.write_text(f"# pom-sha256 {self._pom_hash()}\n{classpath}\n")
        self.echo(f"kafka: {len(classpath.split(os.pathsep))} jars resolved")
        return classpath

    @staticmethod
    def _keytool(java: str) -> str:
        found = secure_listener.find_keytool(java)
        if found is None:
            raise StackError(
                "keytool (part of every Java runtime) is not next to java nor on PATH: it makes "
                "the certificates of Kafka's SASL_SSL listener and of Redis's TLS port."
            )
        return found

    def _secure_material(self, java: str) -> SecureListener:
        """The secured listeners' CA, keystores, client certificate and passwords; made with
        keytool (and openssl) the first time."""
        keytool = self._keytool(java)
        try:
            secure = secure_listener.create_material(
                self.paths.kafka_secure, self.secure, keytool, self.echo
            )
            secure_listener.create_client_material(secure, keytool, self.echo)
        except (SecureListenerError, OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(str(exc)) from None
        return secure

    def _cluster_id(self) -> str:
        with contextlib.suppress(OSError):
            for line in (self.paths.kafka_data / "meta.properties").read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.partition("=")[2].strip()
        return ""

    def _add_scram_user(self, java: str, classpath: str, secure: SecureListener) -> None:
        """Make sure the SCRAM mechanisms have their user, then write the client settings.

        A cluster formatted by this stack got the user at formatting (and the marker file
        names its cluster id); one formatted before the listener existed gets it here, once.
        """
        marker, cluster = self.paths.scram_marker, self._cluster_id()
        if not (marker.is_file() and marker.read_text().strip() == cluster):
            self.echo("kafka: adding the SCRAM user to a cluster formatted without it")
            for arguments in secure_listener.scram_commands(secure, self.kafka):
                result = subprocess.run(
                    [java, "-Xmx128m", "-cp", classpath, *arguments],
                    capture_output=True, text=True, check=False, timeout=120,
                )  # fmt: skip
                if result.returncode != 0:
                    output = f"{result.stdout}{result.stderr}".replace(secure.password, "***")
                    raise StackError(
                        f"adding the SCRAM user of Kafka's SASL_SSL listener failed (exit "
                        f"{result.returncode}):\n{output}"
                    )
            marker.write_text(f"{cluster}\n")
        secure_listener.write_client_env(secure, self.secure)
        if secure.client_keyfile.is_file():  # made with the rest, when openssl is there
            secure_listener.write_mtls_client_env(secure, self.mtls)

    def _start_kafka(self, java: str, classpath: str, secure: SecureListener) -> None:
        paths = self.paths
        paths.kafka_log.parent.mkdir(parents=True, exist_ok=True)
        paths.kafka_data.mkdir(parents=True, exist_ok=True)
        paths.kafka_config.write_text(
            render_server_properties(self.kafka, paths.kafka_data, self.settings.partitions, secure)
        )
        paths.kafka_log4j.write_text(render_log4j2(paths.kafka_log))
        jvm = [java, f"-Dlog4j2.configurationFile={paths.kafka_log4j}", "-cp", classpath]
        if not (paths.kafka_data / "meta.properties").exists():
            self.echo(f"kafka: formatting a new KRaft cluster in {_relative(paths.kafka_data)}")
            cluster = new_cluster_id()
            result = subprocess.run(
                [*jvm, "-Xmx256m", "kafka.tools.StorageTool", "format", "--ignore-formatted",
                 "-t", cluster, "-c", str(paths.kafka_config),
                 *secure_listener.scram_format_arguments(secure)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                output = f"{result.stdout}{result.stderr}".replace(secure.password, "***")
                raise StackError(
                    f"formatting Kafka's storage failed:\n{output}\n{tail(paths.kafka_log)}"
                )
            paths.scram_marker.write_text(f"{cluster}\n")
        command = [
            *jvm, *KAFKA_HEAP, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            "kafka.Kafka", str(paths.kafka_config),
        ]  # fmt: skip
        pid = spawn(command, paths.kafka_console, paths.kafka)
        write_pid(paths.kafka_pid, pid, self.kafka)
        self.echo(
            f"kafka: starting Apache Kafka {KAFKA_VERSION} on {self.kafka}, SASL_SSL on "
            f"{self.secure}, SSL on {self.mtls}, SASL_PLAINTEXT on {self.sasl_plaintext} "
            f"(pid {pid}, log {_relative(paths.kafka_log)})"
        )
