"""How ``fraud-streamer status`` lays its checks out."""

from __future__ import annotations

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError

from streamer.cli.status import Check, render


def test_each_part_on_its_line_aligned_with_its_warnings_under_it() -> None:
    text = render([
        Check("kafka", True, "127.0.0.1:9092, 1 broker(s)", ["not created yet: alerts", "x"]),
        Check("workers", False, "no worker in group 'g'"),
    ])  # fmt: skip
    assert text.splitlines() == [
        "kafka    ok       127.0.0.1:9092, 1 broker(s)",
        "         warning  not created yet: alerts",
        "         warning  x",
        "workers  PROBLEM  no worker in group 'g'",
    ]


async def test_a_group_kafka_will_not_describe_is_a_problem_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a new cluster the group coordinator may not exist yet; with ACLs the group may be
    refused. Kafka answered the connection check, so the workers' line says what it said."""
    import streamer.kafka_reading
    from streamer.cli.status import _workers
    from streamer.settings import Settings

    async def refused(*_: object) -> None:
        raise GroupCoordinatorNotAvailableError("coordinator loading")

    monkeypatch.setattr(streamer.kafka_reading, "consumer_group_state", refused)
    check = await _workers(Settings(), {})
    assert not check.ok
    assert check.detail.startswith("unknown: Kafka did not describe group 'fraud-streamer': ")
    assert "GroupCoordinatorNotAvailableError" in check.detail
