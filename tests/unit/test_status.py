"""How ``fraud-streamer status`` lays its checks out."""

from __future__ import annotations

from streamer.cli.status import Check, render


def test_each_part_on_its_line_aligned_with_its_warning_under_it() -> None:
    text = render([
        Check("kafka", True, "127.0.0.1:9092, 1 broker(s)", warning="not created yet: alerts"),
        Check("workers", False, "no worker in group 'g'"),
    ])  # fmt: skip
    assert text.splitlines() == [
        "kafka    ok       127.0.0.1:9092, 1 broker(s)",
        "         warning  not created yet: alerts",
        "workers  PROBLEM  no worker in group 'g'",
    ]
