"""``streamer.kafka`` builds its clients from the settings without touching the network."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from streamer.kafka import KafkaSettingsError, client_options, make_consumer, make_producer
from streamer.kafka_topics import contract_topic_names, replication_factor
from streamer.settings import Settings


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def test_plaintext_options_carry_no_credentials() -> None:
    options = client_options(settings(kafka_bootstrap_servers="a:1,b:2"))
    assert options == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "PLAINTEXT"}


def test_sasl_options() -> None:
    options = client_options(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="scorer",
            kafka_sasl_password="s3cret",
        )
    )
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "scorer"
    assert options["sasl_plain_password"] == "s3cret"
    assert "ssl_context" not in options


def test_ssl_options_build_a_context(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_context(**kwargs: object) -> ssl.SSLContext:
        seen.update(kwargs)
        return ssl.create_default_context()

    monkeypatch.setattr("streamer.kafka.create_ssl_context", fake_context)
    options = client_options(
        settings(kafka_security_protocol="SSL", kafka_ssl_cafile=Path("/etc/ca.pem"))
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert seen == {"cafile": Path("/etc/ca.pem"), "certfile": None, "keyfile": None}


def test_unusable_tls_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    sasl = settings(
        kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=missing,
        kafka_sasl_username="scorer", kafka_sasl_password="s3cret",
    )  # fmt: skip
    with pytest.raises(KafkaSettingsError, match=f"STREAMER_KAFKA_SSL_CAFILE={missing}"):
        client_options(sasl)
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    with pytest.raises(KafkaSettingsError, match="cannot set up TLS"):
        client_options(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=not_pem))


class Recorder:
    def __init__(self, *topics: str, **options: object) -> None:
        self.topics = topics
        self.options = options


def test_producer_is_idempotent_and_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamer.kafka.AIOKafkaProducer", Recorder)
    producer = make_producer(settings(), linger_ms=50, client_id="sim")
    assert isinstance(producer, Recorder)
    assert producer.options["acks"] == "all"
    assert producer.options["enable_idempotence"] is True
    assert producer.options["linger_ms"] == 50
    assert producer.options["client_id"] == "sim"
    assert producer.options["bootstrap_servers"] == ["127.0.0.1:9092"]


def test_consumer_commits_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamer.kafka.AIOKafkaConsumer", Recorder)
    consumer = make_consumer(settings(), "transactions", "labels", group_id="g")
    assert isinstance(consumer, Recorder)
    assert consumer.topics == ("transactions", "labels")
    assert consumer.options["group_id"] == "g"
    assert consumer.options["enable_auto_commit"] is False
    assert consumer.options["auto_offset_reset"] == "earliest"


async def test_aiokafka_takes_the_options() -> None:
    """The constructors refuse an option they do not know (TypeError) or a value they cannot
    use (ValueError): what the other tests check as plain dicts, aiokafka itself takes. They
    do no I/O, so nothing needs to listen at the address."""
    producer = make_producer(settings(kafka_bootstrap_servers="127.0.0.1:1"))
    consumer = make_consumer(settings(kafka_bootstrap_servers="127.0.0.1:1"), "t", group_id="g")
    await producer.stop()
    await consumer.stop()


def test_contract_topics_follow_the_settings() -> None:
    names = contract_topic_names(settings(topic_alerts="alerts-v2"))
    assert names == ("transactions", "labels", "decisions", "alerts-v2", "dead-letters")


@pytest.mark.parametrize(
    ("configured", "brokers", "replicas"),
    [(None, 1, 1), (None, 2, 2), (None, 6, 3), (2, 6, 2), (5, 1, 5)],
)
def test_topics_are_replicated_on_up_to_three_brokers_unless_configured(
    configured: int | None, brokers: int, replicas: int
) -> None:
    # a configured factor the cluster cannot meet is the broker's to refuse, in its words
    chosen = replication_factor(settings(topic_replication_factor=configured), brokers)
    assert chosen == replicas
