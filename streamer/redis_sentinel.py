"""The URL form of a Redis primary found through Sentinel, which redis-py has none of.

A single Redis server made highly available by Sentinel is reached through the Sentinels, not
at a fixed address: they say which server is the primary now, and name another after a
failover. redis-py's ``Sentinel`` does that discovery, but parses no URL for it, and the
worker is configured by one URL (``STREAMER_REDIS_URL``). So it takes the form that Prefect's
and docket's Redis URLs, and redisvl's, use::

    redis+sentinel://[user:password@]host[:port][,host2[:port2]...]/service[/db][?options]
    rediss+sentinel://...   (TLS to the primary and to the Sentinels)

The hosts are the Sentinels (port 26379 unless given), ``service`` the name they monitor the
primary under. The user and password are the primary's; ``sentinel_username`` and
``sentinel_password`` in the query authenticate to the Sentinels, and every other option is
redis-py's own URL option for the primary's connections (``ssl_ca_certs`` and the other
``ssl_*`` options apply to the Sentinels as well, so one private CA covers both). Pure
parsing, no I/O: :mod:`streamer.redis_client` makes the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from streamer.processes import parse_host_port

__all__ = ["SENTINEL_PORT", "SentinelUrl", "is_sentinel_url", "parse_sentinel_url"]

SENTINEL_PORT = 26379
_SCHEMES = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed Sentinel URL."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int
    #: a ``redis://`` (or ``rediss://``) URL of the primary with a stand-in host: what
    #: redis-py's ``parse_url`` reads the primary's connection options from
    primary_url: str
    #: ``username``/``password`` for the Sentinels themselves (empty: none)
    sentinel_auth: dict[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.primary_url.startswith("rediss:")


def is_sentinel_url(url: str) -> bool:
    """True when ``url`` names a primary through Sentinel (only the scheme is looked at)."""
    return urlsplit(url).scheme.lower() in _SCHEMES


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse a Sentinel URL; ``ValueError`` says what is wrong with it."""
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"not a Sentinel URL (redis+sentinel:// or rediss+sentinel://): {url}")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise ValueError("a Sentinel URL needs at least one Sentinel host")
    sentinels = []
    for member in hosts.split(","):
        try:
            endpoint = parse_host_port(member.strip(), default_port=SENTINEL_PORT)
        except ValueError as exc:
            raise ValueError(f"Sentinel {member!r}: {exc}") from None
        sentinels.append((endpoint.host, endpoint.port))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(
            "a Sentinel URL's path is /<service>[/<db>]: the name the Sentinels monitor the "
            f"primary under, then the database (got {parts.path or 'none'!r})"
        )
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ValueError(f"the database in a Sentinel URL is a number, not {path[1]!r}") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    auth = {k.removeprefix("sentinel_"): v for k, v in query if k in _SENTINEL_AUTH}
    rest = urlencode([(k, v) for k, v in query if k not in _SENTINEL_AUTH])
    primary = urlunsplit((scheme, f"{userinfo}{at}primary", f"/{db}", rest, ""))
    return SentinelUrl(sentinels, path[0], db, primary, auth)
