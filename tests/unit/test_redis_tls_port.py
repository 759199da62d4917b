"""The local Redis's TLS port: its redis-server options, its client URL, and stale material."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from redis.asyncio.connection import SSLConnection, parse_url

from streamer import redis_tls
from streamer.processes import Endpoint
from streamer.redis_client import redis_problem
from streamer.redis_tls import RedisTls
from streamer.secure_listener import SecureListener


def test_the_server_options_open_the_tls_port_beside_the_plain_one(tmp_path: Path) -> None:
    tls = RedisTls(tmp_path / "tls", tmp_path / "ca.pem")
    options = redis_tls.server_arguments(tls, redis_tls.tls_port(16379))
    pairs = dict(zip(options[::2], options[1::2], strict=True))
    assert pairs == {
        "--tls-port": "16380",
        "--tls-cert-file": str(tmp_path / "tls" / "redis.crt"),
        "--tls-key-file": str(tmp_path / "tls" / "redis.key"),
        "--tls-ca-cert-file": str(tmp_path / "ca.pem"),
        "--tls-auth-clients": "optional",
    }


def test_the_client_url_is_rediss_with_the_ca_redis_py_reads(tmp_path: Path) -> None:
    tls = RedisTls(tmp_path, tmp_path / "a dir" / "ca.pem")
    url = redis_tls.client_url(tls, Endpoint("127.0.0.1", 6380), db=3)
    assert url.startswith("rediss://127.0.0.1:6380/3?ssl_ca_certs=")
    options = parse_url(url)
    assert options["connection_class"] is SSLConnection
    assert (options["host"], options["port"], options["db"]) == ("127.0.0.1", 6380, 3)
    assert unquote(options["ssl_ca_certs"]) == str(tmp_path / "a dir" / "ca.pem")
    assert parse_url(redis_tls.client_url(tls, Endpoint("::1", 6380)))["host"] == "::1"


def test_material_made_before_its_ca_was_remade_is_not_used(tmp_path: Path) -> None:
    ca = SecureListener(tmp_path / "ca", "u", "p", "s")
    ca.directory.mkdir()
    assert redis_tls.load(tmp_path / "tls", None) is None
    assert redis_tls.load(tmp_path / "tls", ca) is None  # never made
    tls = RedisTls(tmp_path / "tls", ca.cafile)
    tls.directory.mkdir()
    for path in (tls.certfile, tls.keyfile, ca.cafile):
        path.write_text("x")
    os.utime(ca.cafile, (1_000, 1_000))
    os.utime(tls.certfile, (2_000, 2_000))
    assert redis_tls.load(tls.directory, ca) == tls
    os.utime(ca.cafile, (3_000, 3_000))  # the CA was made again after the certificate
    assert redis_tls.load(tls.directory, ca) is None


async def test_an_unusable_ca_file_is_named_before_connecting(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    not_pem = tmp_path / "ca.p12"
    not_pem.write_bytes(b"\x30\x82binary")
    for cafile in (missing, not_pem):
        url = f"rediss://127.0.0.1:1/0?ssl_ca_certs={cafile}"  # nothing listens on port 1
        problem = await redis_problem(url, url)
        assert problem is not None
        assert problem.startswith(f"ssl_ca_certs={cafile} in STREAMER_REDIS_URL cannot be read")
