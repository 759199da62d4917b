"""The local Redis's TLS port, for ``rediss://`` URLs, as managed Redis services require.

Managed Redis (ElastiCache with in-transit encryption, Azure Cache for Redis on 6380, Redis
Cloud) is reached over TLS, and the worker's TLS connections are a class of their own (see
:mod:`streamer.redis_client`): code that only ever met a plain Redis could drop an ``ssl_*``
option or the hiredis packing on that path without any test noticing. So the local stack's
Redis also listens with TLS on its port + 1 (6379 -> 6380), with a certificate signed by the
stack's own authority (the one Kafka's SASL_SSL listener uses, see
:mod:`streamer.secure_listener`), and the integration tests run the worker and the blocklist
CLI through it. Clients need no certificate of their own, as with most managed services, but
one that presents a certificate must present one signed by the stack's CA
(``tls-auth-clients optional``): the Kafka SSL listener's client certificate serves for
mutual TLS here too (redis-py's ``ssl_certfile`` and ``ssl_keyfile`` URL options).

Kept under ``<data_dir>/redis/tls/``, made once by ``stack up``:

    redis.p12            the server's key and certificate, made with keytool
    redis.crt, redis.key the same as PEM, which redis-server reads (converted with openssl)

The plain port stays the default: nothing changes for a developer.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from streamer.secure_listener import SecureListener, export_pem, newer, sign_keystore

if TYPE_CHECKING:
    from streamer.processes import Endpoint

__all__ = [
    "PeerTls",
    "RedisTls",
    "client_url",
    "create_material",
    "load",
    "server_arguments",
    "tls_port",
]


@dataclass(frozen=True)
class RedisTls:
    """The TLS port's files: the server's certificate and key, and the authority clients trust."""

    directory: Path
    cafile: Path

    @property
    def keystore(self) -> Path:
        return self.directory / "redis.p12"

    @property
    def certfile(self) -> Path:
        return self.directory / "redis.crt"

    @property
    def keyfile(self) -> Path:
        return self.directory / "redis.key"


def tls_port(port: int) -> int:
    """The TLS port: the one after the plain port (6379 -> 6380, as Azure Cache uses)."""
    return port + 1


def server_arguments(tls: RedisTls, port: int, *, require_client_certs: bool = False) -> list[str]:
    """redis-server options that open the TLS port beside the plain one; clients may present a
    certificate signed by the CA, or, with ``require_client_certs``, must."""
    return [
        "--tls-port", str(port),
        "--tls-cert-file", str(tls.certfile),
        "--tls-key-file", str(tls.keyfile),
        "--tls-ca-cert-file", str(tls.cafile),
        "--tls-auth-clients", "yes" if require_client_certs else "optional",
    ]  # fmt: skip


@dataclass(frozen=True)
class PeerTls:
    """Certificates for Redis servers that connect to each other over TLS (a cluster's bus,
    replication, Sentinels): each server's own (``server``), and the one a server presents
    when it connects to another, which checks it as a client's — a certificate made for a
    server is refused there — both signed by the stack's authority."""

    server: RedisTls
    client_certfile: Path
    client_keyfile: Path

    def arguments(self, port: int) -> list[str]:
        """redis-server options: TLS only, on ``port``, and to the servers it connects to."""
        return [
            "--port", "0",
            *server_arguments(self.server, port),
            "--tls-replication", "yes",
            "--tls-client-cert-file", str(self.client_certfile),
            "--tls-client-key-file", str(self.client_keyfile),
        ]  # fmt: skip


def client_url(tls: RedisTls, endpoint: Endpoint, db: int = 0) -> str:
    """The ``rediss://`` URL of the TLS port: redis-py reads ``ssl_ca_certs`` from the query."""
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    return f"rediss://{host}:{endpoint.port}/{db}?ssl_ca_certs={quote(str(tls.cafile))}"


def load(directory: Path, ca: SecureListener | None) -> RedisTls | None:
    """The TLS port's files in ``directory`` if ``stack up`` made them for ``ca``; else None."""
    if ca is None:
        return None
    tls = RedisTls(directory, ca.cafile)
    return tls if tls.keyfile.is_file() and newer(tls.certfile, ca.cafile) else None


def create_material(
    directory: Path,
    ca: SecureListener,
    endpoint: Endpoint,
    keytool: str,
    echo: Callable[[str], object],
) -> RedisTls | None:
    """The TLS port's files, made the first time; None (after saying why) without openssl.

    Redis reads PEM and keytool writes PKCS12 only, so openssl converts; a machine without the
    openssl program still gets a plain Redis, and only the TLS tests fail.
    """
    existing = load(directory, ca)  # (none either when the CA was made again since)
    if existing is not None:
        return existing
    tls = RedisTls(directory, ca.cafile)
    openssl = shutil.which("openssl")
    if openssl is None:
        echo("redis: openssl is not on PATH, so Redis starts without its TLS port")
        return None
    echo(f"redis: making a certificate for the TLS port ({endpoint})")
    directory.mkdir(parents=True, exist_ok=True)
    sign_keystore(ca, tls.keystore, "redis", keytool, endpoint.host)
    export_pem(tls.keystore, ca.store_password, tls.certfile, tls.keyfile, openssl)
    return tls
