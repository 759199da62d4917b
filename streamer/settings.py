"""All configuration, in one typed and frozen object.

Every value can be set by an environment variable named ``STREAMER_<FIELD>`` (for example
``STREAMER_KAFKA_BOOTSTRAP_SERVERS``) or in a ``.env`` file. Settings are read once, at the edge
(the CLI), and passed down; nothing below reads ``os.environ``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from streamer.features.definitions import RETENTION_DAYS
from streamer.processes import KAFKA_PORT, REDIS_PORT, parse_host_port
from streamer.redis_sentinel import is_sentinel_url, parse_sentinel_url

__all__ = [
    "ENV_PREFIX",
    "MAX_MESSAGE_BYTES_CEILING",
    "PRODUCER_MAX_REQUEST_BYTES",
    "Settings",
    "SettingsError",
    "load_settings",
    "unknown_variables",
]

ENV_PREFIX = "STREAMER_"

#: the most a Kafka request from the worker may hold (Faust's default, set explicitly)
PRODUCER_MAX_REQUEST_BYTES = 1_000_000
#: the largest STREAMER_MAX_MESSAGE_BYTES: a value under the limit that is not valid goes to
#: the dead letters whole, and JSON escapes each byte to at most six (``\u0001``), so its dead
#: letter must still fit in one producer request, or the worker could not publish it and would
#: stop on that record each time it read it
MAX_MESSAGE_BYTES_CEILING = 131_072

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
_TOPIC_RULE = "a topic name is 1 to 249 letters, digits, '.', '_' and '-' (not '.' or '..')"


def _topic_name(value: str) -> str:
    # what Kafka takes as a topic name: an empty one, or a space, would only fail later
    if value in (".", "..") or not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value):
        raise ValueError(_TOPIC_RULE)
    return value


def _topic_or_off(value: str) -> str:
    if value:
        try:
            return _topic_name(value)
        except ValueError:
            raise ValueError(f"{_TOPIC_RULE}; or empty to turn it off") from None
    return value


Topic = Annotated[str, AfterValidator(_topic_name)]
#: a topic, or "" for an output that is off
OptionalTopic = Annotated[str, AfterValidator(_topic_or_off)]


def _not_empty(value: object) -> object:
    # an empty variable is a mistake, not a request for the default (a path of "" is ".")
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty (unset it to take the default)")
    return value


Given = BeforeValidator(_not_empty)


def _not_a_file(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; name the registry's directory")
    return path


def _not_a_flag(value: object) -> object:
    """A rate is a number: JSON's ``true`` would otherwise pass for 1.0."""
    if isinstance(value, bool):
        raise ValueError("a rate is a number, not true or false")
    return value


Rate = Annotated[float, BeforeValidator(_not_a_flag), Field(gt=0, allow_inf_nan=False)]


def _servers(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _brokers_addressable(text: str) -> str:
    """The bootstrap servers, read by the rule of the connection check (``streamer.kafka``):
    aiokafka would fail on an unreadable one only when a client starts, with a traceback."""
    servers = _servers(text)
    if not servers:
        raise ValueError("names no server; give host:port, comma-separated")
    problems = []
    for server in servers:
        try:
            parse_host_port(server, default_port=KAFKA_PORT)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError(
            f"{'; '.join(problems)}; give host:port (IPv6 as [::1]:9092), comma-separated"
        )
    return text


#: the URL forms a Redis client is made from: redis-py's and ``streamer.redis_sentinel``'s
_REDIS_FORMS = (
    "redis://host:port/db, rediss://host:port/db, unix:///path/to/socket?db=N, or "
    "redis+sentinel://host[:port],host2[:port2]/service[/db] (rediss+sentinel:// with TLS)"
)


def _user_cut_short(parts: SplitResult) -> bool:
    """A '/', '?' or '#' left as it is in the URL's user name or password ends its host part
    early, and the '@' turns up after it (the host error would then show the password)."""
    if "@" in parts.netloc:
        return False
    names = (field.partition("=")[0] for field in parts.query.split("&"))
    return "@" in parts.path or "@" in parts.fragment or any("@" in name for name in names)


def _redis_url(url: str) -> str:
    """A URL that redis-py (or ``streamer.redis_sentinel``) can make a client of, and reads as
    it is written: it would fail on a bad host or port only at the first command, and reads
    ``/notanumber`` as database 0 and ``/1/2`` as database 12."""
    from redis.asyncio.connection import parse_url  # what the clients are made with

    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": a '[' without its ']'
        raise ValueError(
            f"cannot be read as a URL ({exc}): is a '[' of an IPv6 address left without its "
            "']'? (e.g. redis://[::1]:6379/0)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme != "unix" and _user_cut_short(parts):
        raise ValueError(
            "its user name or password holds a '/', '?' or '#', which ends the host part: "
            "percent-encode them (%2F, %3F, %23)"
        )
    options_url, path_db = url, None
    if is_sentinel_url(url):
        try:
            spec = parse_sentinel_url(url)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        path = [unquote(p) for p in parts.path.split("/") if p]
        if len(path) == 2:
            if not re.fullmatch(r"[0-9]+", path[1]):
                raise ValueError(f"the database in a Sentinel URL is a number, not {path[1]!r}")
            path_db = spec.db
        options_url = spec.primary_url
    elif scheme in ("redis", "rediss"):
        host = parts.netloc.rpartition("@")[2]
        if not host:
            raise ValueError(f"names no host, e.g. {scheme}://127.0.0.1:6379/0")
        try:
            parse_host_port(host, default_port=REDIS_PORT)
        except ValueError as exc:
            raise ValueError(f"{exc} (the URL's host and port)") from None
        path = [unquote(p) for p in parts.path.split("/") if p]
        if len(path) > 1 or (path and not re.fullmatch(r"[0-9]+", path[0])):
            raise ValueError(f"its path is the database number (/0, /1, …), not {parts.path!r}")
        path_db = int(path[0]) if path else None
    elif scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// URL names its socket, e.g. unix:///run/redis.sock?db=0")
    else:
        begins = f"begins with {parts.scheme + ':'!r}, no" if parts.scheme else "has no"
        raise ValueError(f"{begins} Redis URL scheme; give {_REDIS_FORMS}")
    query_db = parse_qs(parts.query).get("db", [None])[0]  # as redis-py reads it
    if query_db is not None:
        if not re.fullmatch(r"[0-9]+", query_db):
            raise ValueError(f"db= in its query is a database number, not {query_db!r}")
        if path_db is not None and int(query_db) != path_db:
            raise ValueError(
                f"it names database {path_db} in its path and {query_db} in db=: give one"
            )
    try:
        parse_url(options_url)
    except ValueError as exc:  # an option it cannot read, e.g. socket_timeout=soon
        raise ValueError(str(exc)) from None
    return url


class Settings(BaseSettings):
    """The worker's and the CLI's configuration; defaults work against the local stack."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,  # "inf" seconds or days would only fail (or hang) far from here
    )

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap_servers: Annotated[str, Given, AfterValidator(_brokers_addressable)] = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism, used with the SASL_* protocols."
    )
    kafka_sasl_username: Annotated[str | None, Given] = Field(None, description="SASL user name.")
    kafka_sasl_password: Annotated[SecretStr | None, Given] = Field(
        None, description="SASL password."
    )
    kafka_ssl_cafile: Annotated[Path | None, Given] = Field(
        None, description="CA bundle to verify the brokers."
    )
    kafka_ssl_certfile: Annotated[Path | None, Given] = Field(
        None, description="Client certificate (mutual TLS)."
    )
    kafka_ssl_keyfile: Annotated[Path | None, Given] = Field(
        None, description="Client private key (mutual TLS)."
    )
    consumer_group: Annotated[str, Given] = Field(
        "fraud-streamer", description="Consumer group (the Faust app id) of the workers."
    )
    kafka_session_timeout_s: float = Field(
        10.0, gt=0, description="A worker that stops heart-beating loses its partitions after "
        "this long (how fast a crashed worker's partitions move to the others)."
    )
    kafka_fetch_max_wait_ms: int = Field(
        20, ge=0, le=60_000, description="Longest time the broker holds a worker's fetch when "
        "it has no new records: the most a quiet partition can delay the others' next records "
        "(lower: lower latency, more fetch requests while idle)."
    )

    # --- topics (defaults from the wire contract) ---------------------------------------------
    topic_transactions: Topic = Field("transactions", description="Input: transactions.")
    topic_labels: Topic = Field("labels", description="Input: fraud labels.")
    topic_decisions: Topic = Field("decisions", description="Output: one decision per transaction.")
    topic_alerts: Topic = Field("alerts", description="Output: review and decline alerts.")
    topic_dead_letters: Topic = Field("dead-letters", description="Output: rejected input.")
    topic_features: OptionalTopic = Field(
        "", description="Optional output: the feature vector each decision was scored on "
        "(audit of training/serving skew); empty = off."
    )
    topic_shadow_decisions: Topic = Field(
        "decisions-shadow", description="Output: what the shadow model (`fraud-streamer models "
        "shadow`) would have decided, one record per decision, as the Decision schema; nothing "
        "while no shadow is set."
    )
    topic_rates: Topic = Field(
        "exchange-rates",
        description="Internal: the exchange rates set with `fraud-streamer rates`, the whole "
        "set after each change (one partition, compacted), from which `rebuild-state` and "
        "`rates restore` set them again in a Redis that lost them.",
    )
    topic_blocklists: Topic = Field(
        "blocklists",
        description="Internal: each change made with `fraud-streamer blocklist`, a record per id "
        "(one partition, compacted), from which `rebuild-state` and `blocklist restore` set the "
        "lists again in a Redis that lost them.",
    )
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of the topics we create.")
    topic_replication_factor: int | None = Field(
        None, ge=1, le=32, description="Replicas of each partition of the topics we create; "
        "unset: as many as there are brokers, at most 3."
    )
    max_message_bytes: int = Field(
        65536, ge=256, le=MAX_MESSAGE_BYTES_CEILING,
        description="Input values larger than this are dead-lettered (at most 131072: a "
        "value under it that is not valid is dead-lettered whole, and its dead letter, "
        "escaped as JSON, must fit in one of the worker's Kafka requests).",
    )
    input_retention_days: float = Field(
        60.0, gt=0, description="How long the input topics the project creates (transactions, "
        "labels) keep their records: `rebuild-state` replays them into Redis, and the feature "
        f"windows hold the last {RETENTION_DAYS} days. A topic that exists is left as it is "
        f"(`status` and `rebuild-state` warn when it keeps less than {RETENTION_DAYS} days)."
    )
    max_event_ahead_hours: float = Field(
        24.0, gt=0, description="Input records whose event time (a transaction's timestamp, a "
        "label's reported_at) is more than this after the time Kafka holds for the record (its "
        "producer's send time) are dead-lettered: an event cannot happen after it was sent, and "
        "one stamped far ahead would trim its card's and terminal's windows early."
    )

    # --- Redis -------------------------------------------------------------------------------
    redis_url: Annotated[str, Given, AfterValidator(_redis_url)] = Field(
        "redis://127.0.0.1:6379/0", description="Redis holding the features."
    )
    redis_cluster: bool = Field(
        False, description="STREAMER_REDIS_URL names one node of a Redis Cluster: the worker "
        "discovers the others and spreads the state over them by hash slot."
    )
    redis_retry_s: float = Field(
        30.0, ge=0, description="How long a batch's Redis calls are sent again while the "
        "connection fails (a server restarting, a cluster primary lost before its replica takes "
        "over) before the worker exits so that the batch is replayed; 0 exits at once."
    )
    redis_timeout_s: float = Field(
        5.0, gt=0, description="How long one batch's Redis round trip may take in all before "
        "it counts as failed and is sent again (see STREAMER_REDIS_RETRY_S)."
    )

    # --- decisions ---------------------------------------------------------------------------
    review_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Score at or above which a transaction is reviewed."
    )
    decline_threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="Score at or above which a transaction is declined."
    )
    amount_limit: float = Field(
        10_000.0, gt=0, description="Hard limit: larger amounts are declined by rule."
    )
    reasons_top_k: int = Field(3, ge=1, le=15, description="Model reasons given per alert.")
    base_currency: CurrencyCode = Field(
        "EUR", description="The currency of the amounts the model was trained on (the "
        "simulator's: EUR). Amounts in other currencies are converted to it before anything is "
        "computed from them: features, the card's windows, STREAMER_AMOUNT_LIMIT."
    )
    exchange_rates: dict[CurrencyCode, Rate] = Field(
        default_factory=dict, description="Units of STREAMER_BASE_CURRENCY that one unit of "
        'each other currency buys, as JSON, e.g. {"USD": 0.86, "GBP": 1.14}. A transaction in '
        "a currency without a rate is scored without its amount (not known) and sent to "
        "review at least, with a reason that says so. Read at start; `fraud-streamer rates "
        "set` changes rates while the workers run."
    )

    # --- model -------------------------------------------------------------------------------
    model_registry: Annotated[Path, Given, AfterValidator(_not_a_file)] = Field(
        Path("models/registry"), description="Directory of the model registry."
    )
    model_poll_seconds: float = Field(
        2.0, gt=0, description="How often workers look for a newly promoted model."
    )

    # --- worker ------------------------------------------------------------------------------
    batch_max: int = Field(500, ge=1, description="Most events scored in one batch.")
    batch_within_ms: float = Field(
        5.0, gt=0, description="Longest wait to fill a batch, in milliseconds."
    )
    commit_interval_s: float = Field(
        1.0, gt=0, description="How often workers commit the offsets of finished batches "
        "(longer: fewer commits, more re-deliveries after a crash)."
    )
    max_partition_skew_hours: float = Field(
        24.0, gt=0, description="How far past the earliest event time still to come from a "
        "partition records may be decided; later ones are held until it catches up (must stay "
        "well under the 7-day label delay)."
    )
    partition_idle_s: float = Field(
        5.0, gt=0, description="A partition whose queue ran dry and that delivers nothing for "
        "this long (records waiting, none delivered) stops holding the others back, so "
        "alignment never stalls."
    )
    shutdown_grace_s: float = Field(
        30.0, gt=0, description="After SIGTERM or SIGINT, how long a worker may take to stop "
        "cleanly before it exits anyway (nothing is lost: offsets follow durable outputs)."
    )
    drift_window_rows: int = Field(
        5_000, ge=0, le=1_000_000, description="Drift is measured over the last this many "
        "rows a worker scored, against the serving model's profile; 0 turns it off."
    )
    stall_warn_s: float = Field(
        60.0, gt=0, description="A worker that has records waiting (consumer lag, held by the "
        "merge, or in batches being decided) but has processed none for this long logs a "
        "warning with what each of its tasks is waiting on."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="The worker's log lines: `text` for people, or `json`, one object "
        "per line (time, level, logger, message; a traceback in `exc_info`) for a log shipper."
    )
    web_host: Annotated[str, Given] = Field(
        "127.0.0.1", description="Address the dashboard and /metrics bind to (0.0.0.0 in a "
        "container)."
    )
    web_port: int = Field(
        6066, ge=1, le=65535, description="Port of the worker's dashboard and /metrics."
    )
    dashboard_port: int = Field(
        6070, ge=1, le=65535, description="Port of `fraud-streamer dashboard`, the page for "
        "all workers (it binds to STREAMER_WEB_HOST)."
    )
    data_dir: Annotated[Path, Given] = Field(
        Path(".stack"), description="Local state: stack data, worker data."
    )

    @model_validator(mode="after")
    def _sasl_credentials_given(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and (self.kafka_sasl_username is None or self.kafka_sasl_password is None):
            raise ValueError(
                f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                f"{ENV_PREFIX}KAFKA_SASL_USERNAME and {ENV_PREFIX}KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        if self.review_threshold > self.decline_threshold:
            raise ValueError(
                f"{ENV_PREFIX}REVIEW_THRESHOLD ({self.review_threshold}) must not exceed "
                f"{ENV_PREFIX}DECLINE_THRESHOLD ({self.decline_threshold})"
            )
        return self

    @model_validator(mode="after")
    def _base_rate_is_one(self) -> Settings:
        rate = self.exchange_rates.get(self.base_currency, 1.0)
        if rate != 1.0:
            raise ValueError(
                f"{ENV_PREFIX}EXCHANGE_RATES gives the base currency {self.base_currency} a rate "
                f"of {rate}: leave it out (it is 1 by definition)"
            )
        return self

    @property
    def redis_url_redacted(self) -> str:
        """``redis_url`` with its passwords masked (a Sentinel URL's ``sentinel_password``
        too): the form for logs and messages."""
        parts = original = urlsplit(self.redis_url)
        if parts.password:
            user = f"{parts.username}:" if parts.username else ":"
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{user}***@{host}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(k == "sentinel_password" for k, _ in query):
            masked = [(k, "***" if k == "sentinel_password" else v) for k, v in query]
            parts = parts._replace(query=urlencode(masked, safe="*"))
        return self.redis_url if parts == original else urlunsplit(parts)

    @property
    def input_retention_ms(self) -> int:
        return round(self.input_retention_days * 86_400_000)

    @property
    def max_event_ahead_ms(self) -> int:
        return round(self.max_event_ahead_hours * 3_600_000)

    @property
    def bootstrap_servers(self) -> list[str]:
        return _servers(self.kafka_bootstrap_servers)


class SettingsError(Exception):
    """Invalid configuration, with every offending variable named."""


#: variables of this prefix that are not settings: the test suite's own
_NOT_SETTINGS = ("STREAMER_TEST_", "STREAMER_REQUIRE_STACK")


def unknown_variables(environ: Mapping[str, str], env_file: Path = Path(".env")) -> list[str]:
    """A warning for each ``STREAMER_*`` name, in the environment or in ``env_file``, that is
    no setting: a misspelt one is otherwise ignored without a word, and the command runs on
    the default (a worker believed to be pointed elsewhere reaches the local stack)."""
    names = {n: "the environment" for n in environ}
    if env_file.is_file():
        for name in dotenv_values(env_file):
            names.setdefault(name, str(env_file))
    known = [f"{ENV_PREFIX}{f.upper()}" for f in Settings.model_fields]
    out = []
    for name, where in sorted(names.items()):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper.startswith(_NOT_SETTINGS):
            continue
        close = get_close_matches(upper, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else " (see the README's configuration)"
        out.append(f"{name} in {where} is not a setting and is ignored{hint}")
    return out


#: settings whose value may hold a password: their errors do not show it
_SECRET = ("redis_url", "kafka_sasl_password")


def _dotenv_problem(env_file: object) -> str | None:
    """Where python-dotenv cannot parse ``env_file`` (a quote left open, a space in a name).

    It would skip that statement with no more than a logged warning, and the command would run
    on the defaults of the settings it held; the line is named, its value (perhaps a password)
    is not.
    """
    if not isinstance(env_file, str | Path) or not Path(env_file).is_file():
        return None
    with Path(env_file).open(encoding="utf-8") as stream:  # not UTF-8: load_settings says so
        for binding in parse_stream(stream):
            if binding.error:
                text = binding.original.string  # from the end of the statement before
                line = binding.original.line + text[: len(text) - len(text.lstrip())].count("\n")
                name = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)", text)
                return (
                    f"{env_file} in {Path.cwd()}, line {line}{f' ({name[1]})' if name else ''}: "
                    "python-dotenv cannot parse it (a quote left open?); correct or remove it"
                )
    return None


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning validation errors into one clear message."""
    try:
        problem = _dotenv_problem(overrides.get("_env_file", Settings.model_config.get("env_file")))
        if problem is not None:
            raise SettingsError(f"invalid configuration: {problem}")
        return Settings(**overrides)  # type: ignore[arg-type]
    except UnicodeDecodeError as exc:  # read before any variable: only .env can be the cause
        raise SettingsError(
            f"invalid configuration: .env in {Path.cwd()} is not UTF-8 text ({exc.reason} at "
            f"byte {exc.start}); save it as UTF-8 or remove it"
        ) from None
    except SourceError as exc:
        # a mapping's value that is not JSON: pydantic-settings names the field, not the text
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{field[1].upper()}" if field else "a setting"
        raise SettingsError(
            f"invalid configuration:\n  {name}: not valid JSON (e.g. {{\"USD\": 0.86}})"
        ) from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            head, *rest = err["loc"] or ("",)
            name = f"{ENV_PREFIX}{str(head).upper()}" if head else "settings"
            if rest and rest[-1] == "[key]":  # a mapping's key
                name += f", key {rest[0]!r}"
            elif rest:  # an entry of a mapping
                name += f", {'.'.join(str(p) for p in rest)}"
            # a check across settings gets all of them as its input, passwords included: its
            # message names the values it compared, and the input is not shown
            got = "" if not head or head in _SECRET else f" (got {err.get('input')!r})"
            lines.append(f"  {name}: {err['msg']}{got}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
