"""``fraud-streamer blocklist`` against the real Redis."""

from __future__ import annotations

from click.testing import CliRunner

from streamer.cli import cli
from streamer.settings import Settings


def test_add_list_remove(stack: Settings) -> None:
    env = {"STREAMER_REDIS_URL": stack.redis_url.rsplit("/", 1)[0] + "/13"}
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    run("blocklist", "remove", "terminal", "t-1", "t-2", "t-3")
    assert "2 terminal(s) added" in run("blocklist", "add", "terminal", "t-1", "t-2")
    assert "0 terminal(s) added (1 already blocked)" in run("blocklist", "add", "terminal", "t-1")
    assert run("blocklist", "list", "terminal").split() == ["t-1", "t-2"]
    assert "1 terminal(s) removed" in run("blocklist", "remove", "terminal", "t-1")
    assert run("blocklist", "list", "terminal").split() == ["t-2"]
    run("blocklist", "remove", "terminal", "t-2")


def test_unreachable_redis_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        cli, ["blocklist", "list", "customer"], env={"STREAMER_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert result.exit_code == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.output
