"""``fraud-streamer quality``'s two renderings of a report: the operator's table and the JSON for
scripts (what the command measures is tested against a running worker, in integration)."""

from __future__ import annotations

import json

import pandas as pd

from models.live_quality import LiveQuality
from streamer.cli.quality import _as_json, _as_table

REPORT = [
    LiveQuality(
        "all",
        12_345,
        67,
        {"auc_roc": 0.9, "average_precision": 0.5, "card_precision_at_100": 0.25},
    ),
    # one class only: no AUC ROC or AP, and no CP@100 reported at all
    LiveQuality("v2", 10, 0, {"auc_roc": float("nan"), "average_precision": float("nan")}),
]


def test_the_table_has_a_row_per_group_and_nan_where_a_metric_cannot_be_computed() -> None:
    lines = _as_table(REPORT, "model").splitlines()
    assert lines[0].split() == ["model", "transactions", "frauds", "AUC", "ROC", "AP", "CP@100"]
    assert lines[1].split() == ["all", "12,345", "67", "0.900", "0.500", "0.250"]
    assert lines[2].split() == ["v2", "10", "0", "nan", "nan", "nan"]


def test_the_json_writes_null_for_a_metric_that_cannot_be_computed() -> None:
    cutoff = pd.Timestamp("2018-05-01T00:00:00Z")
    out = json.loads(_as_json(cutoff, REPORT))  # strict JSON: NaN would not parse back as null
    assert out["cutoff"] == "2018-05-01T00:00:00+00:00"
    assert out["report"][0] == {
        "group": "all", "transactions": 12_345, "frauds": 67,
        "metrics": {"auc_roc": 0.9, "average_precision": 0.5, "card_precision_at_100": 0.25},
    }  # fmt: skip
    assert out["report"][1]["metrics"] == {"auc_roc": None, "average_precision": None}
    assert json.loads(_as_json(None, []))["cutoff"] is None
