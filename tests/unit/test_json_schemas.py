"""The committed JSON Schema files must be what the models generate today."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from schemas import RFC3339_PATTERN, Decision, Transaction, generate


def test_committed_json_schemas_are_up_to_date() -> None:
    stale = generate.stale_files()
    assert not stale, f"stale JSON Schema files {stale}: run `python -m schemas.generate`"


def test_rendering_is_deterministic() -> None:
    first = generate.render()
    assert first == generate.render()
    assert sorted(first) == [
        "alert.json",
        "dead_letter.json",
        "decision.json",
        "label.json",
        "transaction.json",
    ]
    for text in first.values():
        assert text.endswith("}\n")
        assert (
            json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            == text
        )


def test_check_mode_names_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert generate.main(["--check", "--out", str(tmp_path)]) == 0

    (tmp_path / "label.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "decision.json").unlink()
    (tmp_path / "old_model.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    for name in ("label.json", "decision.json", "old_model.json"):
        assert name in err
    assert "transaction.json" not in err


def test_transaction_schema_states_the_contract() -> None:
    schema = json.loads(generate.render()["transaction.json"])
    assert schema["required"] == [
        "transaction_id",
        "timestamp",
        "customer_id",
        "terminal_id",
        "amount",
    ]
    props = schema["properties"]
    assert props["currency"]["default"] == "EUR"
    assert props["currency"]["pattern"] == "^[A-Z]{3}$"
    assert props["amount"]["minimum"] == 0
    assert props["timestamp"]["pattern"] == RFC3339_PATTERN
    assert (props["customer_id"]["minLength"], props["customer_id"]["maxLength"]) == (1, 64)


def test_time_pattern_agrees_with_the_examples() -> None:
    pattern = re.compile(RFC3339_PATTERN)
    for ok in ("2018-04-01T00:00:31Z", "2018-04-01T02:00:31+02:00", "2018-04-01T00:00:31.5-05:30"):
        assert pattern.fullmatch(ok)
    for bad in ("2018-04-01T00:00:31", "2018-04-01", "2018-04-01 00:00:31Z", "2018-04-01T00:00Z"):
        assert not pattern.fullmatch(bad)


def test_output_schemas_require_every_field() -> None:
    rendered = generate.render()
    for name in ("decision.json", "alert.json", "dead_letter.json"):
        schema = json.loads(rendered[name])
        assert set(schema["required"]) == set(schema["properties"]), name
    letter = json.loads(rendered["dead_letter.json"])
    assert letter["properties"]["raw_encoding"]["enum"] == ["utf-8", "base64"]
    assert {"type": "null"} in letter["properties"]["key"]["anyOf"]


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((generate.JSON_DIR / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


DECISION = {
    "transaction_id": "tx-1", "customer_id": "c-1", "terminal_id": "t-1", "amount": 12.5,
    "currency": "EUR", "timestamp": "2018-04-01T00:00:31Z", "score": 0.97,
    "decision": "decline", "reasons": [{"code": "MODEL_SCORE", "description": "high"}],
    "model_version": "v1", "decided_at": "2026-12-04T10:00:00.5Z", "processing_ms": 3.2,
}  # fmt: skip


def test_the_schema_files_take_what_the_models_take_and_refuse_what_they_refuse() -> None:
    """A producer in another language validates against the files alone: they must agree with
    the models on the messages they take and on the rules JSON Schema can state."""
    decision = _validator("decision.json")
    assert Decision.model_validate(DECISION) and decision.is_valid(DECISION)
    approved = {**DECISION, "decision": "approve", "reasons": []}
    assert Decision.model_validate(approved) and decision.is_valid(approved)
    unexplained = {**DECISION, "reasons": []}  # a decline must say why
    with pytest.raises(ValueError, match="needs at least one reason"):
        Decision.model_validate(unexplained)
    assert not decision.is_valid(unexplained)
    assert not decision.is_valid({**DECISION, "decision": "review", "reasons": []})

    transaction = _validator("transaction.json")
    tx = {key: DECISION[key] for key in ("transaction_id", "customer_id", "terminal_id",
                                         "amount", "timestamp")}  # fmt: skip
    assert Transaction.model_validate(tx) and transaction.is_valid(tx)
    for refused in (
        {**tx, "timestamp": "2018-04-01T00:00:31"},  # no offset
        {**tx, "amount": -1},
        {**tx, "currency": "eur"},
        {**tx, "customer_id": "x" * 65},
        {k: v for k, v in tx.items() if k != "terminal_id"},
    ):
        with pytest.raises(ValueError):
            Transaction.model_validate(refused)
        assert not transaction.is_valid(refused), refused
