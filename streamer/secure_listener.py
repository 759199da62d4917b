"""The local broker's secured listeners, as managed Kafka services expect them.

The worker's Kafka options for TLS and SASL (``STREAMER_KAFKA_SECURITY_PROTOCOL`` and friends)
pass through three clients — aiokafka's, Faust's consumer and producer, and the admin client
that creates the topics — and a setting dropped by any of them only shows against a broker that
demands it. So the local stack's broker also listens with ``SASL_SSL`` on the broker's port + 2
(9092 -> 9094), with PLAIN and both SCRAM mechanisms, and with ``SSL`` requiring a client
certificate (mutual TLS, as Aiven's and MSK's certificate authentication) on the port + 3, and
with ``SASL_PLAINTEXT`` (the same users, no TLS) on the port + 4; the integration tests run the
real worker through each. The PLAINTEXT listener stays the default:
nothing else changes for a developer.

Everything the listener needs is made once with the JDK's ``keytool`` (Java is already needed
for Kafka) and kept under ``<data_dir>/kafka/secure/``:

    ca.p12, ca.pem       a private certificate authority (the client's STREAMER_KAFKA_SSL_CAFILE;
                         it signs Redis's TLS certificate too, see streamer.redis_tls)
    broker.p12           the broker's key and its certificate, signed by that CA, for loopback
    client.p12           a client's key and certificate, signed by that CA (mutual TLS)
    client.crt, .key     the same as PEM, which the clients read (converted with openssl)
    secrets.json         the generated passwords (mode 0600)
    client.env           STREAMER_* settings of a client of the SASL_SSL listener (mode 0600)
    mtls-client.env      STREAMER_* settings of a client of the SSL listener (mode 0600)
    scram-cluster-id     the Kafka cluster that has the SCRAM user (see ``LocalStack``)

The credentials are random per checkout and the listener binds to loopback only; they protect
nothing beyond this machine and exist to exercise the code paths.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamer.processes import Endpoint

__all__ = [
    "MECHANISMS",
    "PLAINTEXT_SASL_LISTENER",
    "SASL_USER",
    "SecureListener",
    "SecureListenerError",
    "client_env",
    "create_client_material",
    "create_material",
    "export_pem",
    "find_keytool",
    "load",
    "mtls_client_env",
    "mtls_port",
    "render_listener_properties",
    "sasl_plaintext_port",
    "scram_commands",
    "scram_format_arguments",
    "secure_port",
    "sign_keystore",
    "write_client_env",
    "write_mtls_client_env",
]

SASL_USER = "streamer"
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: the listeners' names in server.properties (Kafka lower-cases them in per-listener keys)
LISTENER = "SASL_SSL"
MTLS_LISTENER = "SSL"
PLAINTEXT_SASL_LISTENER = "SASL_PLAINTEXT"
VALIDITY_DAYS = 3650


class SecureListenerError(Exception):
    """The secured listener's material cannot be made or read; the message says why."""


@dataclass(frozen=True)
class SecureListener:
    """Where the secured listener is and what a client needs to connect to it."""

    directory: Path
    username: str
    password: str
    store_password: str

    @property
    def cafile(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_keystore(self) -> Path:
        """The authority's own key and certificate (it signs the servers' certificates)."""
        return self.directory / "ca.p12"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.p12"

    @property
    def env_file(self) -> Path:
        return self.directory / "client.env"

    @property
    def client_keystore(self) -> Path:
        return self.directory / "client.p12"

    @property
    def client_certfile(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_keyfile(self) -> Path:
        return self.directory / "client.key"

    @property
    def mtls_env_file(self) -> Path:
        return self.directory / "mtls-client.env"


def secure_port(broker_port: int) -> int:
    """The SASL_SSL listener's port: two after the broker's (the controller has the one after)."""
    return broker_port + 2


def mtls_port(broker_port: int) -> int:
    """The SSL listener's port (client certificates required): three after the broker's."""
    return broker_port + 3


def sasl_plaintext_port(broker_port: int) -> int:
    """The SASL_PLAINTEXT listener's port (the same users, no TLS): four after the broker's."""
    return broker_port + 4


# --- rendering (pure) ---------------------------------------------------------------------------


def render_listener_properties(listener: SecureListener) -> list[str]:
    """server.properties lines that configure the listeners, beyond their ``listeners`` entries.

    PLAIN users are listed in the JAAS line itself; SCRAM users live in the cluster metadata
    (see :func:`scram_format_arguments`). The SSL listener trusts client certificates signed by
    the CA (a PEM trust store, which Kafka reads since 2.7).
    """
    prefix, mtls = f"listener.name.{LISTENER.lower()}", f"listener.name.{MTLS_LISTENER.lower()}"
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{listener.username}="{listener.password}";'
    )
    return [
        f"sasl.enabled.mechanisms={','.join(MECHANISMS)}",
        *(
            f"listener.name.{name.lower()}.{line}"
            for name in (LISTENER, PLAINTEXT_SASL_LISTENER)
            for line in (
                f"plain.sasl.jaas.config={plain}",
                f"scram-sha-256.sasl.jaas.config={scram}",
                f"scram-sha-512.sasl.jaas.config={scram}",
            )
        ),
        *(
            f"{name}.{line}"
            for name in (prefix, mtls)
            for line in (
                "ssl.keystore.type=PKCS12",
                f"ssl.keystore.location={listener.keystore}",
                f"ssl.keystore.password={listener.store_password}",
                f"ssl.key.password={listener.store_password}",
            )
        ),
        f"{mtls}.ssl.truststore.type=PEM",
        f"{mtls}.ssl.truststore.location={listener.cafile}",
        f"{mtls}.ssl.client.auth=required",
    ]


def client_env(
    listener: SecureListener, endpoint: Endpoint, mechanism: str, protocol: str = LISTENER
) -> dict[str, str]:
    """The STREAMER_* settings of a client of a SASL listener (``protocol``: the SASL_SSL one,
    or the SASL_PLAINTEXT one), with ``mechanism``."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown SASL mechanism {mechanism!r}; one of {', '.join(MECHANISMS)}")
    tls = {"STREAMER_KAFKA_SSL_CAFILE": str(listener.cafile)} if protocol == LISTENER else {}
    return {
        "STREAMER_KAFKA_BOOTSTRAP_SERVERS": str(endpoint),
        "STREAMER_KAFKA_SECURITY_PROTOCOL": protocol,
        "STREAMER_KAFKA_SASL_MECHANISM": mechanism,
        "STREAMER_KAFKA_SASL_USERNAME": listener.username,
        "STREAMER_KAFKA_SASL_PASSWORD": listener.password,
        **tls,
    }


def mtls_client_env(listener: SecureListener, endpoint: Endpoint) -> dict[str, str]:
    """The STREAMER_* settings of a client of the SSL listener: TLS with its certificate."""
    return {
        "STREAMER_KAFKA_BOOTSTRAP_SERVERS": str(endpoint),
        "STREAMER_KAFKA_SECURITY_PROTOCOL": MTLS_LISTENER,
        "STREAMER_KAFKA_SSL_CAFILE": str(listener.cafile),
        "STREAMER_KAFKA_SSL_CERTFILE": str(listener.client_certfile),
        "STREAMER_KAFKA_SSL_KEYFILE": str(listener.client_keyfile),
    }


def scram_format_arguments(listener: SecureListener) -> list[str]:
    """Arguments of Kafka's ``StorageTool format`` that create the SCRAM user with the cluster."""
    return [
        argument
        for mechanism in MECHANISMS[1:]
        for argument in (
            "--add-scram",
            f"{mechanism}=[name={listener.username},password={listener.password}]",
        )
    ]


def scram_commands(listener: SecureListener, bootstrap: Endpoint) -> list[list[str]]:
    """Arguments of Kafka's ``ConfigCommand`` that add the SCRAM user to a running cluster
    formatted without it (one call per mechanism: Kafka refuses two for a user in one request).
    """
    return [
        [
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            str(bootstrap),
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            listener.username,
            "--add-config",
            f"{mechanism}=[password={listener.password}]",
        ]
        for mechanism in MECHANISMS[1:]
    ]


# --- material (files) ---------------------------------------------------------------------------


def load(directory: Path) -> SecureListener | None:
    """The listener whose material is in ``directory``, or None if it was never made."""
    try:
        stored = json.loads((directory / "secrets.json").read_text())
        listener = SecureListener(
            directory, stored["username"], stored["password"], stored["store_password"]
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        raise SecureListenerError(
            f"{directory / 'secrets.json'} is unreadable ({exc}); delete {directory} and run "
            "`fraud-streamer stack up` again to make new material"
        ) from None
    if not (listener.cafile.is_file() and listener.keystore.is_file()):
        return None
    return listener


def _write_private(path: Path, text: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _san(host: str) -> str:
    """The certificate's subject alternative names: the bind address, and localhost."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"dns:{host},dns:localhost,ip:127.0.0.1"
    return f"ip:{host},dns:localhost"


def find_keytool(java: str) -> str | None:
    """The JDK's keytool: beside ``java`` (the runtime that will serve the keystore), or on PATH."""
    beside = Path(java).resolve().parent / "keytool"
    return str(beside) if beside.is_file() else shutil.which("keytool")


def create_material(
    directory: Path, endpoint: Endpoint, keytool: str, echo: Callable[[str], object]
) -> SecureListener:
    """Make the CA, the broker's keystore and the passwords, unless they exist already."""
    existing = load(directory)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    echo(f"kafka: making a CA and a broker certificate for the SASL_SSL listener ({endpoint})")
    listener = SecureListener(
        directory, SASL_USER, secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    )
    store = ["-storetype", "PKCS12", "-storepass", listener.store_password]
    for leftover in (listener.ca_keystore, listener.keystore, listener.cafile):
        leftover.unlink(missing_ok=True)
    _keytool(keytool, [
        ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
         "-validity", str(VALIDITY_DAYS), "-dname", "CN=fraud-streamer local CA",
         "-ext", "bc:c", "-keystore", str(listener.ca_keystore), *store,
         "-keypass", listener.store_password],
        ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(listener.ca_keystore), *store,
         "-file", str(listener.cafile)],
    ])  # fmt: skip
    sign_keystore(listener, listener.keystore, "broker", keytool, endpoint.host)
    # the secrets last: their presence is what says the material is complete
    _write_private(
        directory / "secrets.json",
        json.dumps(
            {
                "username": listener.username,
                "password": listener.password,
                "store_password": listener.store_password,
            }
        ),
    )
    return listener


def _keytool(keytool: str, steps: list[list[str]]) -> None:
    for step in steps:
        result = subprocess.run(
            [keytool, *step], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise SecureListenerError(
                f"`keytool {step[0]}` failed (exit {result.returncode}) while making the local "
                f"stack's certificates:\n{result.stdout}{result.stderr}"
            )


def sign_keystore(
    ca: SecureListener, keystore: Path, alias: str, keytool: str, host: str | None = None
) -> None:
    """Make ``keystore`` (PKCS12, ``ca``'s store password): a key and its certificate, signed by
    ``ca``'s authority, with that authority's certificate beside it — a server's for ``host``,
    or without a host a client's (named ``alias``)."""
    store = ["-storetype", "PKCS12", "-storepass", ca.store_password]
    usage = ["-ext", f"SAN={_san(host)}", "-ext", "EKU=serverAuth"] if host else [
        "-ext", "EKU=clientAuth"
    ]  # fmt: skip
    keystore.unlink(missing_ok=True)
    csr, signed = keystore.with_suffix(".csr"), keystore.with_suffix(".signed.pem")
    _keytool(keytool, [
        ["-genkeypair", "-alias", alias, "-keyalg", "RSA", "-keysize", "2048",
         "-validity", str(VALIDITY_DAYS), "-dname", f"CN={host or alias}",
         "-keystore", str(keystore), *store, "-keypass", ca.store_password],
        ["-certreq", "-alias", alias, "-keystore", str(keystore), *store, "-file", str(csr)],
        ["-gencert", "-rfc", "-alias", "ca", "-keystore", str(ca.ca_keystore), *store,
         "-infile", str(csr), "-outfile", str(signed), "-validity", str(VALIDITY_DAYS),
         *usage],
        ["-importcert", "-noprompt", "-alias", "ca", "-file", str(ca.cafile),
         "-keystore", str(keystore), *store],
        ["-importcert", "-alias", alias, "-file", str(signed), "-keystore", str(keystore),
         *store],
    ])  # fmt: skip
    csr.unlink()
    signed.unlink()


def export_pem(
    keystore: Path, store_password: str, certfile: Path, keyfile: Path, openssl: str
) -> None:
    """Write a PKCS12 keystore's certificate and key as PEM files (0600), which Redis and
    Python's ``ssl`` read; keytool writes PKCS12 only. The certificate is written last: its
    presence says the pair is complete."""
    for what, out in (("-nocerts", keyfile), ("-clcerts", certfile.with_suffix(".tmp"))):
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        command = [
            openssl, "pkcs12", "-in", str(keystore), "-passin", "env:STORE_PASSWORD", "-nodes",
            what, *(["-nokeys"] if what == "-clcerts" else []), "-out", str(out),
        ]  # fmt: skip
        result = subprocess.run(
            command,
            env={**os.environ, "STORE_PASSWORD": store_password},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise SecureListenerError(
                f"`openssl pkcs12 {what}` failed (exit {result.returncode}) while converting "
                f"{keystore.name} to PEM:\n{result.stdout}{result.stderr}"
            )
        out.chmod(0o600)
    certfile.with_suffix(".tmp").rename(certfile)


def newer(path: Path, than: Path) -> bool:
    """True when ``path`` exists and was written no earlier than ``than`` (a certificate made
    before its CA was made again is stale)."""
    try:
        return path.stat().st_mtime >= than.stat().st_mtime
    except FileNotFoundError:
        return False


def create_client_material(
    listener: SecureListener, keytool: str, echo: Callable[[str], object]
) -> bool:
    """The client certificate of the SSL listener as PEM, made the first time; False (after
    saying why) when openssl, which converts it, is missing: the listener still runs."""
    if listener.client_keyfile.is_file() and newer(listener.client_certfile, listener.cafile):
        return True
    openssl = shutil.which("openssl")
    if openssl is None:
        echo("kafka: openssl is not on PATH, so no client certificate for the SSL listener")
        return False
    echo("kafka: making a client certificate for the SSL listener")
    sign_keystore(listener, listener.client_keystore, "fraud-streamer-client", keytool)
    export_pem(
        listener.client_keystore,
        listener.store_password,
        listener.client_certfile,
        listener.client_keyfile,
        openssl,
    )
    return True


def _write_env(path: Path, header: list[str], env: dict[str, str]) -> Path:
    lines = [*header, f"# Load into a shell with:  set -a; . {path}; set +a"]
    _write_private(path, "\n".join([*lines, *(f"{k}={v}" for k, v in env.items()), ""]))
    return path


def write_mtls_client_env(listener: SecureListener, endpoint: Endpoint) -> Path:
    """Write ``mtls-client.env``: the settings of a client of the SSL listener."""
    return _write_env(
        listener.mtls_env_file,
        ["# The local stack's SSL listener, client certificates required (`stack up` wrote it)."],
        mtls_client_env(listener, endpoint),
    )


def write_client_env(listener: SecureListener, endpoint: Endpoint) -> Path:
    """Write ``client.env``: the settings a client of the SASL_SSL listener needs."""
    return _write_env(
        listener.env_file,
        [
            "# The local stack's SASL_SSL listener (written by `fraud-streamer stack up`).",
            "# Any of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 works as the mechanism.",
        ],
        client_env(listener, endpoint, "SCRAM-SHA-512"),
    )
