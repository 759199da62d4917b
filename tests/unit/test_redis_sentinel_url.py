"""The ``redis+sentinel://`` URL form (no Sentinel needed: parsing only)."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import SSLConnection, parse_url

from streamer.redis_client import database
from streamer.redis_sentinel import SENTINEL_PORT, is_sentinel_url, parse_sentinel_url


def test_the_sentinels_the_primary_s_name_and_its_options_are_read() -> None:
    url = (
        "redis+sentinel://scorer:s3cret@s1,s2:26380,[::1]:26381/main/3"
        "?socket_timeout=2&sentinel_username=watch&sentinel_password=t0p"
    )
    spec = parse_sentinel_url(url)
    assert spec.sentinels == [("s1", SENTINEL_PORT), ("s2", 26380), ("::1", 26381)]
    assert (spec.service, spec.db, spec.tls) == ("main", 3, False)
    assert spec.sentinel_auth == {"username": "watch", "password": "t0p"}
    # the primary's own options, as redis-py reads them; the Sentinels' not among them
    primary = parse_url(spec.primary_url)
    assert (primary["username"], primary["password"], primary["db"]) == ("scorer", "s3cret", 3)
    assert primary["socket_timeout"] == 2.0
    assert "sentinel_password" not in spec.primary_url
    assert database(url) == 3


def test_a_tls_sentinel_url_makes_tls_connections_to_the_primary() -> None:
    spec = parse_sentinel_url("rediss+sentinel://s1/main?ssl_ca_certs=/etc/ca.pem")
    assert spec.tls and spec.db == 0
    primary = parse_url(spec.primary_url)
    assert primary["connection_class"] is SSLConnection
    assert primary["ssl_ca_certs"] == "/etc/ca.pem"


def test_only_the_sentinel_schemes_are_sentinel_urls() -> None:
    assert is_sentinel_url("redis+sentinel://s1/main")
    assert is_sentinel_url("REDISS+SENTINEL://s1/main")
    assert not is_sentinel_url("redis://127.0.0.1:6379/0")
    assert database("redis://127.0.0.1:6379/5") == 5


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis://h/0", "not a Sentinel URL"),
        ("redis+sentinel:///main", "at least one Sentinel host"),
        ("redis+sentinel://s1", "is /<service>[/<db>]"),
        ("redis+sentinel://s1/main/0/extra", "is /<service>[/<db>]"),
        ("redis+sentinel://s1/main/zero", "is a number, not 'zero'"),
        ("redis+sentinel://s1:port/main", "Sentinel 's1:port'"),
    ],
)
def test_a_malformed_sentinel_url_is_named(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_sentinel_url(url)
