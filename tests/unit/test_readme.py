"""The README documents every setting and the two commands CI and users rely on."""

import re
from pathlib import Path

from streamer.settings import ENV_PREFIX, Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    grouped = {"kafka_sasl_password": "_PASSWORD", "kafka_ssl_certfile": "_CERTFILE",
               "kafka_ssl_keyfile": "_KEYFILE"}
    for name in Settings.model_fields:
        needle = grouped.get(name, f"`{ENV_PREFIX}{name.upper()}`")
        assert needle in README, f"{ENV_PREFIX}{name.upper()} is not documented in README.md"


def test_quick_start_names_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_the_contents_link_to_headings_that_exist() -> None:
    """GitHub's anchors: a heading lower-cased, punctuation dropped, spaces made hyphens."""
    headings = re.findall(r"^#{2,3} (.+)$", README, flags=re.MULTILINE)
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    contents = README.split("**Contents:**", 1)[1].split("\n\n", 1)[0]
    linked = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(linked) >= 10
    assert set(linked) <= anchors, set(linked) - anchors
