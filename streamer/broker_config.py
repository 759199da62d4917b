"""The local Kafka broker's configuration and addresses, rendered without I/O.

`fraud-streamer stack up` writes these files at every start (a single-node KRaft cluster on
loopback, its secured listeners on the ports after the broker's); keeping them pure keeps them
testable line by line without a JVM.
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

from streamer import secure_listener
from streamer.processes import Endpoint
from streamer.secure_listener import SecureListener

__all__ = [
    "KAFKA_HEAP",
    "KAFKA_VERSION",
    "MIN_JAVA",
    "POM",
    "controller_endpoint",
    "java_major_version",
    "mtls_endpoint",
    "new_cluster_id",
    "render_log4j2",
    "render_server_properties",
    "sasl_plaintext_endpoint",
    "secure_endpoint",
]

KAFKA_VERSION = "4.1.1"
MIN_JAVA = 17
POM = Path(__file__).resolve().parent.parent / "stack" / "kafka" / "pom.xml"
KAFKA_HEAP = ["-Xms256m", "-Xmx512m"]


def controller_endpoint(broker: Endpoint) -> Endpoint:
    """The KRaft controller listens on the port after the broker's (9092 -> 9093)."""
    return Endpoint(broker.host, broker.port + 1)


def secure_endpoint(broker: Endpoint) -> Endpoint:
    """The SASL_SSL listener's address (9092 -> 9094; see :mod:`streamer.secure_listener`)."""
    return Endpoint(broker.host, secure_listener.secure_port(broker.port))


def mtls_endpoint(broker: Endpoint) -> Endpoint:
    """The SSL listener's address, client certificates required (9092 -> 9095)."""
    return Endpoint(broker.host, secure_listener.mtls_port(broker.port))


def sasl_plaintext_endpoint(broker: Endpoint) -> Endpoint:
    """The SASL_PLAINTEXT listener's address (9092 -> 9096)."""
    return Endpoint(broker.host, secure_listener.sasl_plaintext_port(broker.port))


def render_server_properties(
    broker: Endpoint, data_dir: Path, partitions: int, secure: SecureListener | None = None
) -> str:
    """The broker+controller configuration of a single-node KRaft cluster on loopback.

    Replication factors are 1 because there is one node. Topic auto-creation is off, as in
    docker-compose.yml: topics are created by ``streamer.kafka_topics.ensure_topics`` with the
    partition count the design needs, and a misspelt topic name fails instead of appearing.
    With ``secure``, the broker also listens with SASL_SSL on :func:`secure_endpoint`, with
    SSL (client certificates required) on :func:`mtls_endpoint` and with SASL_PLAINTEXT on
    :func:`sasl_plaintext_endpoint`.
    """
    controller = controller_endpoint(broker)
    listeners = [f"PLAINTEXT://{broker}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    if secure is not None:
        listeners += [
            f"SASL_SSL://{secure_endpoint(broker)}",
            f"SSL://{mtls_endpoint(broker)}",
            f"SASL_PLAINTEXT://{sasl_plaintext_endpoint(broker)}",
        ]
        protocols += ["SASL_SSL:SASL_SSL", "SSL:SSL", "SASL_PLAINTEXT:SASL_PLAINTEXT"]
    return "\n".join(
        [
            "# Written by `fraud-streamer stack up` at every start: change the settings instead.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{controller}",
            f"listeners={','.join([*listeners, f'CONTROLLER://{controller}'])}",
            f"advertised.listeners={','.join(listeners)}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={','.join(protocols)}",
            *(secure_listener.render_listener_properties(secure) if secure else []),
            f"log.dirs={data_dir}",
            f"num.partitions={partitions}",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


def render_log4j2(log_file: Path) -> str:
    """Kafka's log4j2 configuration: INFO to a rolling file, the chatty loggers at WARN."""
    return "\n".join(
        [
            "# Written by `fraud-streamer stack up` at every start.",
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = file",
            f"appender.file.fileName = {log_file}",
            f"appender.file.filePattern = {log_file}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = file",
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "logger.authorizer.name = kafka.authorizer.logger",
            "logger.authorizer.level = WARN",
            "logger.metadata.name = org.apache.kafka.metadata",
            "logger.metadata.level = WARN",
            "",
        ]
    )


def new_cluster_id() -> str:
    """A KRaft cluster id, as ``kafka-storage random-uuid`` makes one, without starting a JVM.

    Kafka's ``Uuid.toString`` is the URL-safe base64 of 16 random bytes, unpadded; like Kafka
    we avoid ids starting with ``-``, which a command line would take for an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def java_major_version(version_output: str) -> int | None:
    """The major version in ``java -version`` output: ``"1.8.0_392"`` is 8, ``"17.0.9"`` 17."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major
