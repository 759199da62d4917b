"""The local stack's pure logic: addresses, rendered configuration, messages, process checks.
Starts no server."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamer import processes, secure_listener, stack
from streamer.broker_config import (
    java_major_version,
    mtls_endpoint,
    new_cluster_id,
    render_log4j2,
    render_server_properties,
    sasl_plaintext_endpoint,
    secure_endpoint,
)
from streamer.cli import cli
from streamer.processes import Endpoint, parse_host_port
from streamer.secure_listener import (
    SecureListener,
    client_env,
    mtls_client_env,
    scram_commands,
    scram_format_arguments,
)
from streamer.settings import Settings
from streamer.stack import (
    LocalStack,
    StackError,
    StackPaths,
    kafka_endpoint,
    missing_tools_message,
    redis_endpoint,
    redis_install_commands,
    tail,
)


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return dict(pairs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9092", Endpoint("127.0.0.1", 9092)),
        (" localhost:19092 ", Endpoint("localhost", 19092)),
        ("[::1]:9094", Endpoint("::1", 9094)),
    ],
)
def test_parse_host_port(text: str, expected: Endpoint) -> None:
    assert parse_host_port(text) == expected


def test_parse_host_port_default_and_errors() -> None:
    assert parse_host_port("127.0.0.1", default_port=6379).port == 6379
    for bad in ("127.0.0.1", "127.0.0.1:abc", ":9092", "127.0.0.1:0", "127.0.0.1:70000"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


def test_endpoint_text() -> None:
    assert str(Endpoint("127.0.0.1", 9092)) == "127.0.0.1:9092"
    assert str(Endpoint("::1", 9092)) == "[::1]:9092"


def test_ports_come_from_the_settings() -> None:
    assert kafka_endpoint(settings()) == Endpoint("127.0.0.1", 9092)
    assert redis_endpoint(settings()) == Endpoint("127.0.0.1", 6379)
    local = settings(
        kafka_bootstrap_servers="localhost:19092", redis_url="redis://:secret@localhost:16379/2"
    )
    assert kafka_endpoint(local) == Endpoint("127.0.0.1", 19092)
    assert redis_endpoint(local) == Endpoint("127.0.0.1", 16379)
    assert redis_endpoint(settings(redis_url="redis://[::1]/0")) == Endpoint("::1", 6379)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"kafka_bootstrap_servers": "10.0.0.5:9092"}, "STREAMER_KAFKA_BOOTSTRAP_SERVERS"),
        ({"kafka_bootstrap_servers": "kafka:29092"}, "STREAMER_KAFKA_BOOTSTRAP_SERVERS"),
        ({"kafka_bootstrap_servers": "127.0.0.1:1,127.0.0.1:2"}, "BOOTSTRAP_SERVERS"),
        ({"kafka_security_protocol": "SSL"}, "STREAMER_KAFKA_SECURITY_PROTOCOL"),
        ({"redis_url": "redis://redis.example.com:6379/0"}, "STREAMER_REDIS_URL"),
        ({"redis_url": "rediss://127.0.0.1:6379/0"}, "STREAMER_REDIS_URL"),
    ],
)
def test_the_local_stack_only_runs_on_loopback(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(StackError, match=variable):
        LocalStack(settings(**overrides))


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    config = properties(render_server_properties(Endpoint("127.0.0.1", 19092), tmp_path, 6))
    assert config["process.roles"] == "broker,controller"
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert config["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert config["controller.quorum.voters"] == f"{config['node.id']}@127.0.0.1:19093"
    assert config["log.dirs"] == str(tmp_path)
    assert config["num.partitions"] == "6"
    assert config["auto.create.topics.enable"] == "false"
    assert config["group.initial.rebalance.delay.ms"] == "0"
    # one broker: every internal topic must be satisfied by it alone
    single = {k: v for k, v in config.items() if k.endswith(("replication.factor", "min.isr"))}
    assert {
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    } <= single.keys(), single
    assert set(single.values()) == {"1"}, single


def test_server_properties_with_the_secured_listeners(tmp_path: Path) -> None:
    secure = SecureListener(tmp_path / "secure", "streamer", "pw-1", "store-2")
    broker = Endpoint("127.0.0.1", 19092)
    config = properties(render_server_properties(broker, tmp_path, 6, secure))
    advertised = (
        "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094,SSL://127.0.0.1:19095,"
        "SASL_PLAINTEXT://127.0.0.1:19096"
    )
    assert config["listeners"] == f"{advertised},CONTROLLER://127.0.0.1:19093"
    assert config["advertised.listeners"] == advertised
    assert config["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    assert config["inter.broker.listener.name"] == "PLAINTEXT"  # the broker's own traffic
    assert config["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    for name in ("sasl_ssl", "sasl_plaintext"):  # the same users on both SASL listeners
        assert 'user_streamer="pw-1";' in config[f"listener.name.{name}.plain.sasl.jaas.config"]
        assert "ScramLoginModule" in config[f"listener.name.{name}.scram-sha-512.sasl.jaas.config"]
    for name in ("sasl_ssl", "ssl"):
        assert config[f"listener.name.{name}.ssl.keystore.location"] == str(secure.keystore)
        assert config[f"listener.name.{name}.ssl.keystore.password"] == "store-2"
    # the SSL listener demands a client certificate signed by the stack's CA
    assert config["listener.name.ssl.ssl.client.auth"] == "required"
    assert config["listener.name.ssl.ssl.truststore.type"] == "PEM"
    assert config["listener.name.ssl.ssl.truststore.location"] == str(secure.cafile)
    assert "listener.name.sasl_ssl.ssl.client.auth" not in config
    assert secure_endpoint(broker) == Endpoint("127.0.0.1", 19094)
    assert mtls_endpoint(broker) == Endpoint("127.0.0.1", 19095)
    assert sasl_plaintext_endpoint(broker) == Endpoint("127.0.0.1", 19096)


def test_the_ssl_listeners_client_settings(tmp_path: Path) -> None:
    secure = SecureListener(tmp_path, "streamer", "pw-1", "store-2")
    env = mtls_client_env(secure, Endpoint("127.0.0.1", 9095))
    loaded = settings(**{k.removeprefix("STREAMER_").lower(): v for k, v in env.items()})
    assert loaded.bootstrap_servers == ["127.0.0.1:9095"]
    assert loaded.kafka_security_protocol == "SSL"
    assert (loaded.kafka_ssl_cafile, loaded.kafka_ssl_certfile, loaded.kafka_ssl_keyfile) == (
        tmp_path / "ca.pem",
        tmp_path / "client.crt",
        tmp_path / "client.key",
    )


def test_the_secure_listeners_client_settings_and_scram_user(tmp_path: Path) -> None:
    secure = SecureListener(tmp_path, "streamer", "pw-1", "store-2")
    env = client_env(secure, Endpoint("127.0.0.1", 9094), "SCRAM-SHA-256")
    loaded = settings(**{k.removeprefix("STREAMER_").lower(): v for k, v in env.items()})
    assert loaded.bootstrap_servers == ["127.0.0.1:9094"]
    assert loaded.kafka_security_protocol == "SASL_SSL"
    assert loaded.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert loaded.kafka_sasl_password is not None
    assert loaded.kafka_sasl_password.get_secret_value() == "pw-1"
    assert loaded.kafka_ssl_cafile == tmp_path / "ca.pem"
    with pytest.raises(ValueError, match="GSSAPI"):
        client_env(secure, Endpoint("127.0.0.1", 9094), "GSSAPI")
    assert scram_format_arguments(secure) == [
        "--add-scram", "SCRAM-SHA-256=[name=streamer,password=pw-1]",
        "--add-scram", "SCRAM-SHA-512=[name=streamer,password=pw-1]",
    ]  # fmt: skip
    # one request per mechanism: Kafka refuses two credentials of a user in one
    commands = scram_commands(secure, Endpoint("127.0.0.1", 9092))
    assert [c[-1] for c in commands] == [
        "SCRAM-SHA-256=[password=pw-1]",
        "SCRAM-SHA-512=[password=pw-1]",
    ]


def test_the_secure_listener_material_is_missing_or_unreadable(tmp_path: Path) -> None:
    assert secure_listener.load(tmp_path) is None
    (tmp_path / "secrets.json").write_text("{not json")
    with pytest.raises(secure_listener.SecureListenerError, match="delete"):
        secure_listener.load(tmp_path)


def test_log4j2_config_writes_to_the_data_dir(tmp_path: Path) -> None:
    rendered = properties(render_log4j2(tmp_path / "s.log"))
    config = {key.strip(): value.strip() for key, value in rendered.items()}
    assert config["appender.file.fileName"] == str(tmp_path / "s.log")
    assert config["rootLogger.level"] == "INFO"
    assert config["logger.request.level"] == "WARN"


def test_paths_stay_under_the_data_dir(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    for path in (paths.kafka_config, paths.kafka_pid, paths.classpath, paths.redis_pid):
        assert path.is_relative_to(tmp_path)


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for text in ids:
        assert len(text) == 22 and not text.startswith("-")
        assert len(base64.urlsafe_b64decode(text + "==")) == 16


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.9" 2023-10-17', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("no java here", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


def test_missing_tools_message_says_what_to_install() -> None:
    message = missing_tools_message(["java", "mvn"])
    assert "java and mvn are not on PATH" in message
    assert "apt-get install openjdk-17-jre-headless maven" in message
    assert "docker compose up" in message and "docker-compose.yml" in message


def test_missing_java_stops_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(stack.shutil, "which", lambda name: None)
    local = LocalStack(settings(data_dir=tmp_path))
    with pytest.raises(StackError) as info:
        local._java()
    assert "java and mvn" in str(info.value)
    assert "openjdk-17-jre-headless" in str(info.value)
    assert not any(tmp_path.iterdir()), "nothing written"


def test_redis_install_only_when_allowed() -> None:
    root = redis_install_commands(euid=0, passwordless_sudo=False)
    assert root is not None
    assert [c[-2:] for c in root] == [["apt-get", "update"], ["-y", "redis-server"]]
    sudo = redis_install_commands(euid=1000, passwordless_sudo=True)
    assert sudo is not None and all(c[:2] == ["sudo", "-n"] for c in sudo)
    assert redis_install_commands(euid=1000, passwordless_sudo=False) is None


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99"
    assert tail(tmp_path / "missing.log") == ""
    log.write_text("ERROR boom\njava.lang.X: y\n\tat a.b(C.java:1)\nCaused by: z\n\t... 6 more\n")
    assert tail(log) == "ERROR boom\njava.lang.X: y\nCaused by: z", "stack frames left out"


def test_pid_files_recognise_only_the_recorded_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    processes.write_pid(pid_file, os.getpid(), Endpoint("127.0.0.1", 6379))
    assert processes.read_pid(pid_file) == os.getpid()
    assert processes.recorded_address(pid_file) == "127.0.0.1:6379"

    if Path("/proc/self/stat").exists():  # start times are only known on Linux
        pid_file.write_text(f"{os.getpid()}\n1\n")  # same pid, another start time: recycled
        assert processes.read_pid(pid_file) is None
        assert not pid_file.exists()

    done = subprocess.Popen(["true"])
    done.wait()
    processes.write_pid(pid_file, done.pid, Endpoint("127.0.0.1", 6379))
    assert processes.read_pid(pid_file) is None


# the main thread leaves (as a killed JVM's does first) while another thread keeps a socket open
_MAIN_THREAD_GONE_FIRST = """
import ctypes, socket, sys, threading
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
threading.Thread(target=lambda: sys.stdin.read()).start()  # ends when stdin is closed
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_process_whose_main_thread_is_a_zombie_is_alive_until_its_last_thread_ends() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN_THREAD_GONE_FIRST],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    port = int(proc.stdout.readline())
    stat = Path(f"/proc/{proc.pid}/stat")
    deadline = time.monotonic() + 10
    while stat.read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the main thread did not exit"
        time.sleep(0.01)
    # what `stack up` checks after killing the broker: gone, and its ports free
    assert processes.alive(proc.pid)
    assert processes.port_open("127.0.0.1", port)
    proc.stdin.close()  # the other thread ends, and the process with it
    deadline = time.monotonic() + 10
    while processes.alive(proc.pid):
        assert time.monotonic() < deadline, "the process did not end"
        time.sleep(0.01)
    assert not processes.port_open("127.0.0.1", port)


def test_cli_documents_the_commands() -> None:
    result = CliRunner().invoke(cli, ["stack", "--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status"):
        assert command in result.output
    for command in ("up", "down", "status"):
        assert CliRunner().invoke(cli, ["stack", command, "--help"]).exit_code == 0
