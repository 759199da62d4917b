"""The README documents every setting and the two commands CI and users rely on."""

import re
from pathlib import Path

from streamer.settings import ENV_PREFIX, Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _documented_variables() -> set[str]:
    """The variables the Configuration section's tables name in their first column; a cell
    such as `X_USERNAME` / `_PASSWORD` names X_USERNAME and X_PASSWORD."""
    section = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first, *more = re.findall(r"`([A-Z_]+)`", line.split(" | ", 1)[0])
        names.add(first)
        names.update(first.rsplit("_", 1)[0] + suffix for suffix in more)
    return names


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = _documented_variables()
    settings = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "settings missing from README.md's Configuration"
    assert documented - settings == set(), "README.md's Configuration names unknown settings"


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
