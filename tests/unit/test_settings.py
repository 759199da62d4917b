"""Settings: defaults, environment overrides, and errors that name the variable to fix."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from streamer.settings import (
    ENV_PREFIX,
    MAX_MESSAGE_BYTES_CEILING,
    Settings,
    SettingsError,
    load_settings,
    unknown_variables,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No STREAMER_* variable and no .env file from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_point_at_the_local_stack() -> None:
    settings = load_settings()
    assert settings.bootstrap_servers == ["127.0.0.1:9092"]
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.partitions == 4
    assert settings.review_threshold < settings.decline_threshold
    assert settings.data_dir == Path(".stack")
    assert settings.topic_dead_letters == "dead-letters"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_KAFKA_BOOTSTRAP_SERVERS", " a:1, b:2 ,")
    monkeypatch.setenv("STREAMER_PARTITIONS", "8")
    monkeypatch.setenv("STREAMER_REVIEW_THRESHOLD", "0.3")
    settings = load_settings()
    assert settings.bootstrap_servers == ["a:1", "b:2"]
    assert settings.partitions == 8
    assert settings.review_threshold == 0.3


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STREAMER_TOPIC_ALERTS=alerts-v2\n")
    assert load_settings().topic_alerts == "alerts-v2"


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_PARTITIONS", "zero")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "STREAMER_PARTITIONS" in str(info.value)
    assert "'zero'" in str(info.value)


def test_every_invalid_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_PARTITIONS", "0")
    monkeypatch.setenv("STREAMER_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "STREAMER_PARTITIONS" in str(info.value)
    assert "STREAMER_KAFKA_SECURITY_PROTOCOL" in str(info.value)


def test_a_size_limit_above_what_a_dead_letter_can_carry_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMER_MAX_MESSAGE_BYTES", str(MAX_MESSAGE_BYTES_CEILING + 1))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "STREAMER_MAX_MESSAGE_BYTES" in str(info.value)
    assert f"less than or equal to {MAX_MESSAGE_BYTES_CEILING}" in str(info.value)
    monkeypatch.setenv("STREAMER_MAX_MESSAGE_BYTES", str(MAX_MESSAGE_BYTES_CEILING))
    assert load_settings().max_message_bytes == MAX_MESSAGE_BYTES_CEILING


def test_review_above_decline_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_REVIEW_THRESHOLD", "0.95")
    monkeypatch.setenv("STREAMER_DECLINE_THRESHOLD", "0.9")
    # a check across settings is given all of them: its message must not show the passwords
    monkeypatch.setenv("STREAMER_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("STREAMER_REDIS_URL", "redis://u:s3cret@127.0.0.1:6379/0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == (
        "invalid configuration:\n  settings: Value error, STREAMER_REVIEW_THRESHOLD (0.95) must "
        "not exceed STREAMER_DECLINE_THRESHOLD (0.9)"
    )


def test_exchange_rates_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_EXCHANGE_RATES", '{"USD": 0.86, "GBP": 1.14}')
    settings = load_settings()
    assert settings.base_currency == "EUR"
    assert settings.exchange_rates == {"USD": 0.86, "GBP": 1.14}


@pytest.mark.parametrize(
    ("rates", "named"),
    [
        ("USD=0.86", "STREAMER_EXCHANGE_RATES: not valid JSON"),
        ('{"usd": 0.86}', "STREAMER_EXCHANGE_RATES, key 'usd'"),
        ('{"USD": 0}', "STREAMER_EXCHANGE_RATES, USD: Input should be greater than 0"),
        ('{"USD": "inf"}', "STREAMER_EXCHANGE_RATES, USD: Input should be a finite number"),
        ('{"EUR": 2}', "gives the base currency EUR a rate of 2.0"),
        ('{"USD": true}', "STREAMER_EXCHANGE_RATES, USD: Value error, a rate is a number"),
    ],
)
def test_a_bad_exchange_rate_is_named(
    monkeypatch: pytest.MonkeyPatch, rates: str, named: str
) -> None:
    monkeypatch.setenv("STREAMER_EXCHANGE_RATES", rates)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert named in str(info.value)


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.partitions = 2  # type: ignore[misc]
    assert isinstance(settings, Settings)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@10.0.0.5:6379/2", "redis://:***@10.0.0.5:6379/2"),
        (
            "rediss://scorer:s3cret@cache.example.com:6380/1?ssl_ca_certs=/etc/ca.pem",
            "rediss://scorer:***@cache.example.com:6380/1?ssl_ca_certs=/etc/ca.pem",
        ),
        (  # the primary's password, and the Sentinels' own
            "redis+sentinel://:s3cret@s1,s2:26380/main/0?sentinel_password=t0p&socket_timeout=2",
            "redis+sentinel://:***@s1,s2:26380/main/0?sentinel_password=***&socket_timeout=2",
        ),
    ],
)
def test_the_redis_password_is_masked_for_messages(url: str, shown: str) -> None:
    settings = Settings(_env_file=None, redis_url=url)  # type: ignore[call-arg]
    assert settings.redis_url_redacted == shown


def test_a_dot_env_that_is_not_utf8_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_bytes(b"STREAMER_WEB_PORT=6066\n# caf\xe9\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=r"\.env in .* is not UTF-8 text .* save it as UTF-8"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "line", "name"),
    [
        ('STREAMER_PARTITIONS="3\n', 1, "STREAMER_PARTITIONS"),  # a quote left open
        ("STREAMER_WEB_PORT=6067\n\n  export STREAMER_KAFKA_SASL_PASSWORD='s3cret\n", 3,
         "STREAMER_KAFKA_SASL_PASSWORD"),
        ("STREAMER_WEB_PORT=6067\nSTREAMER WEB_HOST=0.0.0.0\n", 2, "STREAMER"),
    ],
)  # fmt: skip
def test_a_dot_env_line_python_dotenv_cannot_parse_is_named(
    tmp_path: Path, text: str, line: int, name: str
) -> None:
    """python-dotenv would skip it with a logged warning, and the command would run on the
    defaults of what it held (and exit 0)."""
    (tmp_path / ".env").write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == (
        f"invalid configuration: .env in {tmp_path}, line {line} ({name}): python-dotenv "
        "cannot parse it (a quote left open?); correct or remove it"
    )


EMPTY = "must not be empty (unset it to take the default)"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("STREAMER_KAFKA_BOOTSTRAP_SERVERS", "", EMPTY),
        ("STREAMER_MODEL_REGISTRY", " ", EMPTY),
        ("STREAMER_CONSUMER_GROUP", "", EMPTY),
        ("STREAMER_WEB_HOST", "", EMPTY),  # would bind every address
        ("STREAMER_KAFKA_SASL_USERNAME", "", EMPTY),
        ("STREAMER_KAFKA_SASL_PASSWORD", "", EMPTY),
        ("STREAMER_KAFKA_SSL_CAFILE", "", EMPTY),  # would be "."
        ("STREAMER_KAFKA_SSL_CERTFILE", " ", EMPTY),
        ("STREAMER_KAFKA_SSL_KEYFILE", "", EMPTY),
        ("STREAMER_TOPIC_DECISIONS", "", "a topic name is 1 to 249 letters, digits"),
        ("STREAMER_TOPIC_ALERTS", "my alerts", "a topic name is 1 to 249 letters, digits"),
        ("STREAMER_TOPIC_RATES", "..", "(not '.' or '..')"),
    ],
)
def test_an_empty_or_impossible_name_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """An empty variable would otherwise be taken as it is: Kafka at no address ("Unable to
    bootstrap from []"), a registry in the current directory, a topic the broker refuses."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert f"{variable}: " in str(info.value) and message in str(info.value), info.value


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"STREAMER_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:abc"},
         "bad port in '127.0.0.1:abc': 'abc' is not a number"),
        ({"STREAMER_KAFKA_BOOTSTRAP_SERVERS": "a:9092,b:99999"},
         "bad port in 'b:99999': 99999 is not 1-65535"),
        ({"STREAMER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
         "SASL_PLAINTEXT needs STREAMER_KAFKA_SASL_USERNAME and STREAMER_KAFKA_SASL_PASSWORD"),
        ({"STREAMER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMER_KAFKA_SASL_USERNAME": "u"},
         "SASL_SSL needs"),
        ({"STREAMER_INPUT_RETENTION_DAYS": "inf"},
         "STREAMER_INPUT_RETENTION_DAYS: Input should be a finite number"),
        ({"STREAMER_REDIS_TIMEOUT_S": "nan"}, "STREAMER_REDIS_TIMEOUT_S: Input should be a finite"),
    ],
)  # fmt: skip
def test_what_would_fail_only_in_a_client_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    """A port that is no number, SASL without credentials, an infinite time: aiokafka or the
    topic set-up would fail on them later, with a bare ``int()`` or overflow error."""
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings()


def test_brokers_without_a_port_or_on_ipv6_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_KAFKA_BOOTSTRAP_SERVERS", "localhost, [::1]:9092,[::1]")
    assert load_settings().bootstrap_servers == ["localhost", "[::1]:9092", "[::1]"]


def _refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    """The message refusing ``value`` for the variable ``name``, which must be the only one
    named; the problem as a value error of that variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"invalid configuration:\n  {name}: Value error, "), message
    return message


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ("[::1", "no ']' closes the IPv6 address in '[::1'"),  # aiokafka: a ValueError traceback
        ("::1:9092", "more than one ':' in '::1:9092' (an IPv6 address goes in brackets"),
        ("a:9092, :9092", "no host in ':9092'"),
        ("host:\u00b2", "bad port in 'host:\u00b2': '\u00b2' is not a number"),  # not isdigit()
        ("host:", "no port after the ':' in 'host:'"),
        ("kafka:9092/x", "bad port in 'kafka:9092/x'"),
        (",", "names no server"),
        (" , ", "names no server"),
    ],
)
def test_brokers_are_read_by_the_connection_check_s_rule(
    monkeypatch: pytest.MonkeyPatch, servers: str, message: str
) -> None:
    """The settings and the Kafka connection check read a server by one rule
    (``parse_host_port``): what one refuses, the other never sees."""
    assert message in _refused(monkeypatch, "STREAMER_KAFKA_BOOTSTRAP_SERVERS", servers)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://h",  # database 0
        "redis://h:6379/",
        "REDIS://Cache.Example.com:6379/15",
        "redis://[::1]/0",
        "redis://:p@ss@h:6379/2",  # an '@' in the password: the host is after the last one
        "rediss://u:p@h:6380/3?ssl_ca_certs=/etc/ca.pem&socket_timeout=2",
        "redis://h:6379/4?db=4",
        "unix:///run/redis.sock?db=2",
        "redis+sentinel://s1/main",
        "rediss+sentinel://:pw@s1,s2:26380,[::1]:26381/main/2?sentinel_password=a@b",
    ],
)
def test_every_redis_url_form_the_clients_take_is_taken(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("STREAMER_REDIS_URL", url)
    settings = load_settings()
    assert settings.redis_url == url
    assert "p@ss" not in settings.redis_url_redacted


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # each would load, then fail at the first command (urlsplit's "Invalid IPv6 URL"
        # traceback, a bad port) or be read otherwise than written (/x as db 0, /1/2 as 12)
        ("redis://[::1", "cannot be read as a URL (Invalid IPv6 URL)"),
        ("redis://h:6379/notanumber", "its path is the database number (/0, /1, …), not "
         "'/notanumber'"),
        ("redis://h/1/2", "its path is the database number (/0, /1, …), not '/1/2'"),
        ("redis://h/-1", "not '/-1'"),
        ("redis://h/\u00b2", "not '/\u00b2'"),
        ("redis://h:0/0", "bad port in 'h:0': 0 is not 1-65535 (the URL's host and port)"),
        ("redis://h:70000/0", "bad port in 'h:70000'"),
        ("redis://::1:6379/0", "more than one ':' in '::1:6379'"),
        ("redis:///0", "names no host, e.g. redis://127.0.0.1:6379/0"),
        ("redis://h/0?db=2", "it names database 0 in its path and 2 in db=: give one"),
        ("redis://h?db=-1", "db= in its query is a database number, not '-1'"),
        ("redis://h/0?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("localhost:6379", "begins with 'localhost:', no Redis URL scheme; give redis://"),
        ("127.0.0.1:6379", "has no Redis URL scheme"),
        ("unix://", "a unix:// URL names its socket"),
        ("redis+sentinel://s1/main/-1", "the database in a Sentinel URL is a number, not '-1'"),
        ("redis+sentinel://s1/main/0/extra", "is /<service>[/<db>]"),
        ("redis+sentinel://s1:port/main", "Sentinel 's1:port'"),
        ("redis+sentinel://[::1/main", "cannot be read as a URL"),
        ("redis+sentinel://s1/main/1?db=2", "database 1 in its path and 2 in db="),
    ],
)  # fmt: skip
def test_a_redis_url_the_clients_cannot_use_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    assert message in _refused(monkeypatch, "STREAMER_REDIS_URL", url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@h:6379/x",
        "rediss+sentinel://:s3cret@s1/main/x?sentinel_password=s3cret",
        "redis://:s3/cret@h:6379/0",  # a '/' in the password ends the host part: never shown
    ],
)
def test_a_refused_redis_url_s_password_is_not_shown(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("STREAMER_REDIS_URL", url)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "STREAMER_REDIS_URL" in str(info.value)
    assert "s3" not in str(info.value) and "cret" not in str(info.value), info.value


def test_the_feature_log_topic_may_be_empty_which_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMER_TOPIC_FEATURES", "")
    assert load_settings().topic_features == ""
    monkeypatch.setenv("STREAMER_TOPIC_FEATURES", "features.v-1_a")
    assert load_settings().topic_features == "features.v-1_a"


@pytest.mark.parametrize("value", [" ", "my features", "..", "x" * 250])
def test_a_feature_log_topic_that_is_no_name_gets_one_plain_message(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Not pydantic's line for each member of a union ("constrained-str: …", "literal['']:
    …")."""
    monkeypatch.setenv("STREAMER_TOPIC_FEATURES", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == (
        "invalid configuration:\n  STREAMER_TOPIC_FEATURES: Value error, a topic name is 1 to "
        "249 letters, digits, '.', '_' and '-' (not '.' or '..'); or empty to turn it off "
        f"(got {value!r})"
    )


def test_a_registry_that_is_a_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "transactions.csv"
    data.write_text("transaction_id\n")
    monkeypatch.setenv("STREAMER_MODEL_REGISTRY", str(data))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert f"STREAMER_MODEL_REGISTRY: Value error, {data} is a file; name the registry's " in str(
        info.value
    )


def test_a_misspelt_variable_is_named_with_the_setting_it_may_mean(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("STREAMER_REVIEW_TRESHOLD=0.3\nSTREAMER_DECLINE_THRESHOLD=0.95\n")
    environ = {
        "STREAMER_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "STREAMER_REDIS_URL": "redis://127.0.0.1:1/0",  # a setting
        "STREAMER_TEST_PROMTOOL": "/bin/promtool",  # the tests' own
        "STREAMER_WHATEVER": "x",
        "PATH": "/bin",
    }
    assert unknown_variables(environ, env_file) == [
        "STREAMER_KAFKA_BOOTSTRAP in the environment is not a setting and is ignored (did you "
        "mean STREAMER_KAFKA_BOOTSTRAP_SERVERS?)",
        f"STREAMER_REVIEW_TRESHOLD in {env_file} is not a setting and is ignored (did you mean "
        "STREAMER_REVIEW_THRESHOLD?)",
        "STREAMER_WHATEVER in the environment is not a setting and is ignored (see the README's "
        "configuration)",
    ]
