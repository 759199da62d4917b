"""Kafka with TLS and SASL, for real: the local broker's SASL_SSL listener (broker port + 2),
its SSL listener that requires client certificates (port + 3) and its SASL_PLAINTEXT listener
(port + 4).

The security settings pass through aiokafka's clients, Faust's consumer and producer and the
admin client that creates the topics; these tests run each of them against a broker that
refuses anything else, and check that a wrong password or an untrusted certificate is named as
such instead of as an unreachable broker.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest

from streamer.kafka import connection_problem
from streamer.kafka_topics import ensure_topics
from streamer.processes import Endpoint
from streamer.secure_listener import (
    MECHANISMS,
    PLAINTEXT_SASL_LISTENER,
    SecureListener,
    client_env,
    create_client_material,
    create_material,
    find_keytool,
    mtls_client_env,
)
from streamer.settings import Settings
from streamer.stack import LocalStack
from tests.integration.harness import (
    WorkerEnv,
    consume_until,
    decide_each_once,
    produce,
    refused_start,
)


@pytest.fixture(scope="module")
def secure(stack: Settings) -> tuple[SecureListener, Endpoint]:
    """The running broker's SASL_SSL listener; fails (never skips) when it is not there."""
    local = LocalStack(stack)
    listener = local.secure_listener()
    if listener is None or not local.secure_listening():
        pytest.fail(
            f"the broker has no SASL_SSL listener on {local.secure}: it was started before the "
            "listener existed, or by something else. `fraud-streamer stack down` and `stack up`.",
            pytrace=False,
        )
    return listener, local.secure


@pytest.fixture(scope="module")
def sasl_plaintext(
    stack: Settings, secure: tuple[SecureListener, Endpoint]
) -> tuple[SecureListener, Endpoint]:
    """The running broker's SASL_PLAINTEXT listener (the SASL_SSL one's users, no TLS)."""
    local = LocalStack(stack)
    if not local.sasl_plaintext_listening():
        pytest.fail(
            f"the broker has no SASL_PLAINTEXT listener on {local.sasl_plaintext}: it was started "
            "before the listener existed. `fraud-streamer stack down` and `stack up`.",
            pytrace=False,
        )
    return secure[0], local.sasl_plaintext


def _env(secure: tuple[SecureListener, Endpoint], mechanism: str, **changes: str) -> dict[str, str]:
    return {**client_env(*secure, mechanism), **changes}


def _plaintext_env(listener: tuple[SecureListener, Endpoint], mechanism: str) -> dict[str, str]:
    return client_env(*listener, mechanism, protocol=PLAINTEXT_SASL_LISTENER)


def _settings(base: Settings, env: dict[str, str]) -> Settings:
    """``base`` with the settings of ``env`` (STREAMER_* names), validated as at start-up."""
    changes = {k.removeprefix("STREAMER_").lower(): v for k, v in env.items()}
    return Settings(_env_file=None, **{**base.model_dump(), **changes})  # type: ignore[call-arg]


@pytest.mark.parametrize("tls", [True, False], ids=["SASL_SSL", "SASL_PLAINTEXT"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_each_sasl_mechanism_creates_produces_and_consumes(
    stack: Settings,
    secure: tuple[SecureListener, Endpoint],
    sasl_plaintext: tuple[SecureListener, Endpoint],
    mechanism: str,
    tls: bool,
) -> None:
    env = _env(secure, mechanism) if tls else _plaintext_env(sasl_plaintext, mechanism)
    settings = _settings(stack, env)
    assert await connection_problem(settings) is None
    topic = f"secured-{mechanism.lower()}-{uuid.uuid4().hex[:8]}"
    assert await ensure_topics(settings, [topic], partitions=1) == [topic]
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20)]
    await produce(settings, topic, list(sent))
    records = await consume_until(settings, topic, count=len(sent), timeout=60)
    assert [(r.key, r.value) for r in records] == sent


@pytest.mark.parametrize(("tls", "mechanism"), [(True, "SCRAM-SHA-512"), (False, "SCRAM-SHA-256")],
                         ids=["SASL_SSL", "SASL_PLAINTEXT"])  # fmt: skip
async def test_the_worker_scores_through_sasl(
    worker_env: WorkerEnv,
    secure: tuple[SecureListener, Endpoint],
    sasl_plaintext: tuple[SecureListener, Endpoint],
    replay_slice: pd.DataFrame,
    tls: bool,
    mechanism: str,
) -> None:
    env = _env(secure, mechanism) if tls else _plaintext_env(sasl_plaintext, mechanism)
    settings = _settings(worker_env.settings, env)
    await decide_each_once(worker_env, replay_slice.head(300), settings, **env)


async def test_a_wrong_password_without_tls_is_named(
    stack: Settings, sasl_plaintext: tuple[SecureListener, Endpoint]
) -> None:
    env = {**_plaintext_env(sasl_plaintext, "PLAIN"), "STREAMER_KAFKA_SASL_PASSWORD": "wrong"}
    problem = await connection_problem(_settings(stack, env))
    assert problem is not None and "refused SASL PLAIN authentication" in problem, problem


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"STREAMER_KAFKA_SASL_PASSWORD": "not-the-password"}, "refused SASL SCRAM-SHA-512"),
        ({"STREAMER_KAFKA_SSL_CAFILE": "{ca_p12}"}, "STREAMER_KAFKA_SSL_CAFILE"),
        ({"STREAMER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "closed the connection"),
    ],
    ids=["wrong password", "CA file not PEM", "plaintext client"],
)
def test_a_worker_with_wrong_security_settings_says_which(
    worker_env: WorkerEnv,
    secure: tuple[SecureListener, Endpoint],
    change: dict[str, str],
    named: str,
) -> None:
    ca_p12 = str(secure[0].directory / "ca.p12")
    changes = {k: v.format(ca_p12=ca_p12) for k, v in change.items()}
    last, stderr = refused_start({**worker_env.env, **_env(secure, "SCRAM-SHA-512", **changes)})
    assert last.startswith("Error: cannot"), stderr
    assert named in last, stderr


async def test_a_certificate_from_another_ca_is_named_as_untrusted(
    stack: Settings, secure: tuple[SecureListener, Endpoint], tmp_path: Path
) -> None:
    java = shutil.which("java")
    keytool = find_keytool(java) if java else None
    assert keytool, "keytool (with java) is needed, as for `stack up`"
    other = create_material(tmp_path, secure[1], keytool, print)  # another CA, same host
    env = _env(secure, "PLAIN", STREAMER_KAFKA_SSL_CAFILE=str(other.cafile))
    problem = await connection_problem(_settings(stack, env), timeout=10)
    assert problem is not None
    assert "does not trust" in problem
    assert "STREAMER_KAFKA_SSL_CAFILE" in problem


@pytest.fixture(scope="module")
def mtls(stack: Settings) -> tuple[SecureListener, Endpoint]:
    """The running broker's SSL listener (client certificates required) and its client's
    certificate; fails (never skips) when either is missing."""
    local = LocalStack(stack)
    listener = local.secure_listener()
    if listener is None or not local.mtls_listening() or not listener.client_keyfile.is_file():
        pytest.fail(
            f"the broker has no SSL listener on {local.mtls} or there is no client certificate "
            "(it needs openssl): `fraud-streamer stack down` and `stack up`.",
            pytrace=False,
        )
    return listener, local.mtls


async def test_the_worker_scores_through_tls_with_a_client_certificate(
    worker_env: WorkerEnv, mtls: tuple[SecureListener, Endpoint], replay_slice: pd.DataFrame
) -> None:
    env = mtls_client_env(*mtls)
    settings = _settings(worker_env.settings, env)
    await decide_each_once(worker_env, replay_slice.head(300), settings, **env)


async def test_a_missing_or_untrusted_client_certificate_is_named(
    stack: Settings, mtls: tuple[SecureListener, Endpoint], tmp_path: Path
) -> None:
    listener, endpoint = mtls
    env = mtls_client_env(listener, endpoint)
    assert await connection_problem(_settings(stack, env)) is None
    without = {k: v for k, v in env.items() if not k.endswith(("_CERTFILE", "_KEYFILE"))}
    problem = await connection_problem(_settings(stack, without), timeout=10)
    assert problem is not None and "requires one; set STREAMER_KAFKA_SSL_CERTFILE" in problem

    java = shutil.which("java")
    keytool = find_keytool(java) if java else None
    assert keytool, "keytool (with java) is needed, as for `stack up`"
    other = create_material(tmp_path, endpoint, keytool, print)  # another CA
    assert create_client_material(other, keytool, print)
    foreign = {
        **env,
        "STREAMER_KAFKA_SSL_CERTFILE": str(other.client_certfile),
        "STREAMER_KAFKA_SSL_KEYFILE": str(other.client_keyfile),
    }
    problem = await connection_problem(_settings(stack, foreign), timeout=10)
    assert problem is not None and "refused the client certificate" in problem


def test_a_worker_without_its_client_certificate_says_so_at_start(
    worker_env: WorkerEnv, mtls: tuple[SecureListener, Endpoint]
) -> None:
    env = mtls_client_env(*mtls)
    del env["STREAMER_KAFKA_SSL_CERTFILE"], env["STREAMER_KAFKA_SSL_KEYFILE"]
    last, stderr = refused_start({**worker_env.env, **env})
    assert last.startswith("Error: cannot") and "requires one" in last, stderr
    # and no traceback of aiokafka's refused connection after it (an unretrieved future)
    assert "Traceback" not in stderr, stderr
