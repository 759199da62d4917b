"""The batch pipeline without Kafka or Redis: decisions, alerts, dead letters, rules, reasons."""

from __future__ import annotations

import json
import re
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from models.registry import LoadedModel, Manifest
from schemas import Alert, DeadLetter, Decision
from streamer.currency import UNCONVERTED, Currencies
from streamer.features.definitions import FEATURE_NAMES, FraudMark
from streamer.features.memory import InMemoryFeatureStore
from streamer.pipeline import InputMessage, Pipeline, Received, in_label_order
from streamer.rules import Policy
from streamer.scoring import FLAT_MAX_ROWS, Scorer

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _scorer(version: str = "unit-1", cut: float = 200.0, *, forest: bool = False) -> Scorer:
    """A model whose fraud probability rises with the amount (feature 0), past ``cut``: a
    logistic regression, or a small random forest (scikit-learn's trees work in float32)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 400, size=(400, len(FEATURE_NAMES)))
    y = (X[:, 0] > cut).astype(int)
    model = (
        RandomForestClassifier(n_estimators=5, random_state=0)
        if forest
        else LogisticRegression(max_iter=1000)
    ).fit(X, y)
    manifest = Manifest(
        version=version,
        created="2026-01-01T00:00:00Z",
        algorithm="logreg",
        features=list(FEATURE_NAMES),
        sha256="-",
        baseline=[50.0] * len(FEATURE_NAMES),
    )
    return Scorer(LoadedModel(model, manifest))


def _tx(
    i: int, amount: float, customer: str = "c1", currency: str | None = None, terminal: str = "t1"
) -> bytes:
    return json.dumps(
        {
            "transaction_id": f"tx{i}",
            "timestamp": f"2018-04-01T10:00:{i:02d}Z",
            "customer_id": customer,
            "terminal_id": terminal,
            "amount": amount,
            **({"currency": currency} if currency else {}),
        }
    ).encode()


def _msgs(values: list[bytes | None]) -> list[InputMessage]:
    return [InputMessage("transactions", 0, i, b"k", v) for i, v in enumerate(values)]


def _stable(decision: bytes) -> bytes:
    """A published decision, as bytes, without the values of the two fields a re-delivery may
    change (the contract: repeats are byte-identical apart from those)."""
    assert set(json.loads(decision)) >= {"decided_at", "processing_ms"}
    return re.sub(rb'("(?:decided_at|processing_ms)":)("[^"]*"|[-+.eE0-9]+)', rb"\1", decision)


@pytest.fixture
def pipeline() -> Pipeline:
    scorer = _scorer()
    return Pipeline(
        store=InMemoryFeatureStore(),
        scorer=lambda: scorer,
        policy=Policy(review_threshold=0.5, decline_threshold=0.9, amount_limit=1000.0),
        max_bytes=4096,
        clock=lambda: NOW,
    )


async def test_every_valid_transaction_gets_one_decision_and_bad_ones_a_dead_letter(
    pipeline: Pipeline,
) -> None:
    out = await pipeline.transactions(_msgs([_tx(1, 10.0), b"{oops", _tx(2, 380.0), None]))
    decisions = [Decision.model_validate_json(v) for _, v in out.decisions]
    assert [d.transaction_id for d in decisions] == ["tx1", "tx2"]
    assert decisions[0].decision == "approve" and decisions[0].reasons == []
    assert decisions[1].decision in ("review", "decline") and decisions[1].reasons
    assert all(d.model_version == "unit-1" for d in decisions)
    letters = [DeadLetter.model_validate_json(v) for _, v in out.dead_letters]
    assert [d.offset for d in letters] == [1, 3]
    assert letters[0].errors[0].type == "json_invalid"



def test_records_are_validated_on_arrival_with_their_event_time(pipeline: Pipeline) -> None:
    received = pipeline.receive(_msgs([_tx(1, 10.0), b"{oops"]), consumed_at=1.0)
    assert received[0].transaction is not None
    assert received[0].ts_ms == 1_522_576_801_000  # 2018-04-01T10:00:01Z, in epoch ms
    assert received[1].transaction is None and received[1].ts_ms is None
    assert received[1].errors and received[1].errors[0].type == "json_invalid"


async def test_alerts_follow_review_and_decline(pipeline: Pipeline) -> None:
    out = await pipeline.transactions(
        _msgs([_tx(1, 390.0), _tx(2, 5.0, customer="c2"), _tx(3, 200.0, customer="c3")])
    )
    decided = {d.transaction_id: d.decision
               for d in (Decision.model_validate_json(v) for _, v in out.decisions)}
    assert decided == {"tx1": "decline", "tx2": "approve", "tx3": "review"}
    alerts = [Alert.model_validate_json(v) for _, v in out.alerts]
    assert [(a.transaction_id, a.decision, a.severity) for a in alerts] == [
        ("tx1", "decline", "high"),
        ("tx3", "review", "medium"),
    ]


async def test_rules_decline_and_come_first_in_reasons(pipeline: Pipeline) -> None:
    store = pipeline._store
    await store.blocklist_add("customer", ["bad"])
    out = await pipeline.transactions(_msgs([_tx(1, 5.0, customer="bad"), _tx(2, 5000.0)]))
    first, second = (Decision.model_validate_json(v) for _, v in out.decisions)
    assert first.decision == "decline" and first.reasons[0].code == "RULE_CUSTOMER_BLOCKED"
    assert first.score == 1.0
    assert second.decision == "decline" and second.reasons[0].code == "RULE_AMOUNT_LIMIT"


async def test_a_blocked_terminal_declines_whatever_the_card(pipeline: Pipeline) -> None:
    store = pipeline._store
    await store.blocklist_add("terminal", ["skimmer"])
    await store.blocklist_add("customer", ["bad"])
    out = await pipeline.transactions(_msgs([
        _tx(1, 5.0, terminal="skimmer"), _tx(2, 5.0, customer="bad", terminal="skimmer"),
        _tx(3, 5.0, customer="c3"),
    ]))  # fmt: skip
    at_skimmer, both, elsewhere = (Decision.model_validate_json(v) for _, v in out.decisions)
    assert at_skimmer.decision == "decline" and at_skimmer.score == 1.0
    assert [r.code for r in at_skimmer.reasons][:1] == ["RULE_TERMINAL_BLOCKED"]
    assert [r.code for r in both.reasons][:2] == ["RULE_CUSTOMER_BLOCKED", "RULE_TERMINAL_BLOCKED"]
    assert elsewhere.decision == "approve"


async def test_reasons_name_the_feature_that_drove_the_score(pipeline: Pipeline) -> None:
    out = await pipeline.transactions(_msgs([_tx(1, 395.0)]))
    (decision,) = (Decision.model_validate_json(v) for _, v in out.decisions)
    assert decision.reasons[0].code == "TX_AMOUNT"
    assert "395.00" in decision.reasons[0].description


async def test_replayed_batch_gives_identical_decisions(pipeline: Pipeline) -> None:
    batch = _msgs([_tx(i, 50.0 * i) for i in range(1, 8)])
    first = await pipeline.transactions(batch)
    again = await pipeline.transactions(batch)
    assert [_stable(v) for _, v in first.decisions] == [_stable(v) for _, v in again.decisions]


async def test_batches_prepared_ahead_of_settling_decide_as_one_after_the_other() -> None:
    """The worker takes the next batch through the store before the previous one is scored
    (``prepare`` runs ahead of ``settle``): the decisions must be those of serial processing,
    and each batch is scored by the model serving when it is settled."""
    serving = {"model": _scorer("v1")}

    def make() -> Pipeline:
        return Pipeline(
            store=InMemoryFeatureStore(),
            scorer=lambda: serving["model"],
            policy=Policy(review_threshold=0.5, decline_threshold=0.9, amount_limit=1000.0),
            max_bytes=4096,
            clock=lambda: NOW,
            log_features=True,
        )

    first, second = _msgs([_tx(i, 40.0 * i) for i in (1, 2, 3)]), _msgs([_tx(4, 90.0), b"{"])
    ahead = make()
    prepared = [await ahead.prepare(ahead.receive(batch, 0.0)) for batch in (first, second)]
    settled = [await ahead.settle(prepared[0])]
    serving["model"] = _scorer("v2")  # a promotion lands between the two batches
    settled.append(await ahead.settle(prepared[1]))

    serving["model"] = _scorer("v1")
    serial = make()
    expected = [await serial.transactions(first)]
    serving["model"] = _scorer("v2")
    expected.append(await serial.transactions(second))

    for got, want in zip(settled, expected, strict=True):
        assert [_stable(v) for _, v in got.decisions] == [_stable(v) for _, v in want.decisions]
        assert got.features == want.features  # the vectors, bit for bit (JSON floats)
        assert len(got.dead_letters) == len(want.dead_letters)
    assert [Decision.model_validate_json(v).model_version for _, v in settled[1].decisions] == [
        "v2"
    ]
    # the second batch's card window holds the first batch's three transactions, and its own
    (logged,) = (json.loads(v)["features"] for _, v in settled[1].features)
    assert logged["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 4, logged


@pytest.mark.parametrize("checked", [True, False])
async def test_a_transaction_stamped_far_after_its_record_leaves_its_card_alone(
    checked: bool,
) -> None:
    """Accepted, a transaction dated 2099 would move its card's windows to 2099, trimming the
    card's history: the next transaction would find it empty. Refused, it changes nothing."""
    pipeline = Pipeline(
        store=InMemoryFeatureStore(),
        scorer=_scorer,
        policy=Policy(review_threshold=0.5, decline_threshold=0.9, amount_limit=1000.0),
        max_bytes=4096,
        max_ahead_ms=3_600_000 if checked else None,
        clock=lambda: NOW,
        log_features=True,
    )
    sent_ms = 1_522_576_800_000  # 2018-04-01T10:00:00Z, the records' Kafka time
    future = _tx(9, 10.0).replace(b"2018-04-01T10:00:09Z", b"2099-01-01T00:00:00Z")
    values = [_tx(1, 10.0), _tx(2, 10.0), future, _tx(3, 10.0)]
    messages = [InputMessage("transactions", 0, i, b"c1", v, sent_ms)
                for i, v in enumerate(values)]  # fmt: skip
    outs = [await pipeline.transactions([m]) for m in messages]
    last = json.loads(outs[-1].features[0][1])["features"]
    if checked:
        (letter,) = (DeadLetter.model_validate_json(v) for _, v in outs[2].dead_letters)
        assert letter.errors[0].type == "event_after_record"
        assert last["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 3  # tx1, tx2 and itself
    else:  # what the check prevents
        assert outs[2].decisions and last["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1


async def test_bad_labels_are_dead_lettered(pipeline: Pipeline) -> None:
    good = json.dumps(
        {
            "transaction_id": "tx1",
            "customer_id": "c1",
            "terminal_id": "t1",
            "tx_timestamp": "2018-04-01T10:00:00Z",
            "is_fraud": True,
            "reported_at": "2018-04-08T10:00:00Z",
        }
    ).encode()
    received = pipeline.receive_labels(_msgs([good, b'{"is_fraud": "yes"}']), consumed_at=0.0)
    # a label's event time is its report time: from then on it counts
    assert [r.ts_ms for r in received] == [1523181600000, None]
    assert received[0].mark is not None and received[0].mark.tx_ts_ms == 1522576800000
    out = await pipeline.apply_labels(received)
    assert len(out.dead_letters) == 1


async def test_the_feature_log_holds_the_vector_each_decision_was_scored_on() -> None:
    scorer = _scorer()
    store = InMemoryFeatureStore()
    pipeline = Pipeline(
        store=store,
        scorer=lambda: scorer,
        policy=Policy(review_threshold=0.5, decline_threshold=0.9, amount_limit=1000.0),
        max_bytes=4096,
        log_features=True,
        clock=lambda: NOW,
    )
    out = await pipeline.transactions(_msgs([_tx(1, 10.0), b"{oops", _tx(2, 380.0)]))
    records = [json.loads(v) for _, v in out.features]
    assert [r["transaction_id"] for r in records] == ["tx1", "tx2"]
    assert all(r["model_version"] == "unit-1" for r in records)
    vectors = np.array([[r["features"][n] for n in FEATURE_NAMES] for r in records])
    scores = [Decision.model_validate_json(v).score for _, v in out.decisions]
    np.testing.assert_array_equal(scorer.score(vectors), scores)


async def test_the_feature_log_is_off_by_default(pipeline: Pipeline) -> None:
    out = await pipeline.transactions(_msgs([_tx(1, 10.0)]))
    assert out.decisions and out.features == []


async def test_a_shadow_model_s_decisions_go_beside_the_published_ones() -> None:
    """The shadow is scored on the same features and judged by the same rules and
    thresholds; the published decisions are the live model's, as without a shadow."""
    live, shadow = _scorer(), _scorer("unit-shadow", cut=100.0)
    policy = Policy(review_threshold=0.5, decline_threshold=0.9, amount_limit=1000.0)

    def pipeline(with_shadow: bool) -> Pipeline:
        return Pipeline(store=InMemoryFeatureStore(), scorer=lambda: live,
                        shadow=lambda: shadow if with_shadow else None, policy=policy,
                        max_bytes=4096, log_features=True, clock=lambda: NOW)  # fmt: skip

    batch = _msgs([_tx(1, 10.0), _tx(2, 150.0), _tx(3, 380.0), b"{oops", _tx(4, 5000.0)])
    out = await pipeline(True).transactions(batch)
    alone = await pipeline(False).transactions(batch)

    def timeless(records: list[tuple[bytes, bytes]]) -> list[dict[str, object]]:
        return [{**json.loads(v), "processing_ms": None} for _, v in records]

    assert timeless(out.decisions) == timeless(alone.decisions) and not alone.shadow_decisions
    seen = [Decision.model_validate_json(v) for _, v in out.shadow_decisions]
    published = [Decision.model_validate_json(v) for _, v in out.decisions]
    assert [d.transaction_id for d in seen] == ["tx1", "tx2", "tx3", "tx4"]
    assert {d.model_version for d in seen} == {"unit-shadow"}
    vectors = np.array([[json.loads(v)["features"][n] for n in FEATURE_NAMES]
                        for _, v in out.features])  # fmt: skip
    assert [d.score for d in seen[:3]] == list(shadow.score(vectors[:3]))
    assert seen[1].decision != "approve" and published[1].decision == "approve"  # 150
    assert seen[1].reasons[0].code == "MODEL_SCORE"
    assert seen[3].decision == "decline" and seen[3].score == 1.0  # over the amount limit
    assert seen[3].reasons == published[3].reasons[:1]
    assert seen[3].reasons[0].code.startswith("RULE")
    assert sum(out.shadow_outcomes.values()) == 4
    assert out.shadow_outcomes[(seen[1].decision, False)] == 1


def test_labels_go_before_their_batchs_transactions_but_a_withdrawal_keeps_its_place() -> None:
    msg = InputMessage("t", 0, 0, None, None)

    def mark(is_fraud: bool) -> Received:
        return Received(msg, 0.0, mark=FraudMark("x", "t1", 0, 1, is_fraud), is_label=True)

    tx, refused_label = Received(msg, 0.0), Received(msg, 0.0, errors=[], is_label=True)
    fraud, withdrawal = mark(True), mark(False)
    # one step when only fraud marks: a mark counts from its report time, so early is harmless
    items = [tx, fraud, tx, refused_label]
    assert in_label_order(items, lambda r: r) == [([fraud, refused_label], [tx, tx])]
    # the transactions before a withdrawal must still see the mark it withdraws
    items = [fraud, tx, withdrawal, tx, fraud, tx]
    assert in_label_order(items, lambda r: r) == [([fraud], [tx]), ([withdrawal, fraud], [tx, tx])]
    assert in_label_order([withdrawal, tx], lambda r: r) == [([withdrawal], [tx])]
    assert in_label_order([], lambda r: r) == [([], [])]


def _in(
    currencies: Currencies, shadow: Scorer | None = None, store: InMemoryFeatureStore | None = None
) -> Pipeline:
    live = _scorer()
    policy = Policy(
        review_threshold=0.5, decline_threshold=0.9, amount_limit=1000.0, currencies=currencies
    )
    return Pipeline(store=store or InMemoryFeatureStore(), scorer=lambda: live,
                    shadow=lambda: shadow, policy=policy, max_bytes=4096, log_features=True,
                    clock=lambda: NOW)  # fmt: skip


async def test_amounts_in_another_currency_are_scored_in_the_models() -> None:
    """A card paying in dollars is scored as if it had paid the same in euros: its windows,
    its features and the amount limit all see the converted amount; the decision echoes the
    amount and currency the producer wrote."""
    rates = Currencies("EUR", {"USD": 0.5})
    dollars = await _in(rates).transactions(
        _msgs([_tx(1, 100.0, currency="USD"), _tx(2, 790.0, currency="USD"),
               _tx(3, 1900.0, currency="USD")])
    )
    euros = await _in(rates).transactions(
        _msgs([_tx(1, 50.0), _tx(2, 395.0, currency="EUR"), _tx(3, 950.0)])
    )
    assert dollars.features == euros.features  # the same vectors, bit for bit
    paid = [Decision.model_validate_json(v) for _, v in dollars.decisions]
    same = [Decision.model_validate_json(v) for _, v in euros.decisions]
    assert [(d.amount, d.currency) for d in paid] == [(100.0, "USD"), (790.0, "USD"),
                                                      (1900.0, "USD")]  # fmt: skip
    assert [(d.score, d.decision, d.reasons) for d in paid] == [
        (d.score, d.decision, d.reasons) for d in same
    ]
    assert paid[1].reasons[0].code == "TX_AMOUNT" and "395.00" in paid[1].reasons[0].description
    # 1,900 dollars are 950 euros: under the 1,000 limit, where 1,900 euros would not be
    assert all(r.code != "RULE_AMOUNT_LIMIT" for r in paid[2].reasons)
    assert dollars.unconverted == {}


async def test_a_currency_without_a_rate_is_reviewed_on_what_is_known() -> None:
    """Its amount means nothing the model knows: it is neither read as euros nor held to the
    amount limit. The features computed from it take their typical values, so it is scored on
    the rest, never approved on that score, with the reason first; the shadow is judged the
    same way."""
    pipeline = _in(Currencies("EUR", {"USD": 0.5}), shadow=_scorer("unit-shadow"))
    out = await pipeline.transactions(
        _msgs([_tx(1, 10.0, "c-yen", currency="JPY"), _tx(2, 10.0, "c-eur", currency="EUR"),
               _tx(3, 5000.0, "c-chf", currency="CHF")])
    )
    yen, euro, francs = (Decision.model_validate_json(v) for _, v in out.decisions)
    vectors = [json.loads(v)["features"] for _, v in out.features]
    unknown = ("TX_AMOUNT", "CUSTOMER_AMOUNT_RATIO_30DAY", "CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY",
               "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW")  # fmt: skip
    for name in unknown:  # the model's typical value (its manifest's baseline: 50)
        assert vectors[0][name] == vectors[2][name] == 50.0, name
    assert vectors[1]["TX_AMOUNT"] == 10.0
    assert euro.decision == "approve"
    # 10 yen and 5,000 francs, in units the model does not know, are scored the same: 5,000
    # read as euros would be over the limit and declined
    assert yen.decision == francs.decision == "review"
    assert yen.score == pytest.approx(francs.score, rel=1e-9)
    assert yen.score < 0.5  # reviewed for want of a rate, not for its score
    for flagged in (yen, francs):
        assert flagged.reasons[0].code == UNCONVERTED
        named = {r.code for r in flagged.reasons}
        assert not named & {"RULE_AMOUNT_LIMIT", *unknown}, named
    assert yen.reasons[0].description.startswith(
        "the amount is in JPY, which has no exchange rate to EUR"
    )
    assert "scored without its amount" in yen.reasons[0].description
    assert out.unconverted == {"JPY": 1, "CHF": 1}
    assert [Alert.model_validate_json(v).transaction_id for _, v in out.alerts] == ["tx1", "tx3"]
    shadow = [Decision.model_validate_json(v) for _, v in out.shadow_decisions]
    assert [d.decision for d in shadow] == ["review", "approve", "review"]
    assert shadow[0].reasons[0].code == UNCONVERTED


async def test_an_id_used_for_another_transaction_is_refused_and_counts_nowhere() -> None:
    """Ids are unique by contract. A producer that sends another transaction under an id already
    decided has it dead-lettered, not decided on the first one's features; a re-delivery of the
    first is still decided as before; and the refused one counts in no window, also at a card
    that had not seen the id (its terminal had)."""
    pipeline = Pipeline(
        store=InMemoryFeatureStore(),
        scorer=_scorer,
        policy=Policy(review_threshold=0.5, decline_threshold=0.9, amount_limit=1000.0),
        max_bytes=4096,
        clock=lambda: NOW,
        log_features=True,
    )
    first = _tx(1, 10.0)
    out = await pipeline.transactions(_msgs([first, _tx(1, 20.0), first, _tx(1, 10.0, "c2")]))
    assert [_stable(v) for _, v in out.decisions] == [_stable(out.decisions[0][1])] * 2
    letters = [DeadLetter.model_validate_json(v) for _, v in out.dead_letters]
    assert [d.offset for d in letters] == [1, 3]
    for letter in letters:
        (error,) = letter.errors
        assert (error.type, error.loc) == ("transaction_id_reused", ["transaction_id"])
        assert "'tx1' was already used by another transaction" in error.msg
    after = await pipeline.transactions(_msgs([_tx(2, 10.0, "c2")]))
    (logged,) = (json.loads(v)["features"] for _, v in after.features)
    assert logged["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1  # itself only: c2's tx1 taken back


async def test_records_keyed_other_than_by_their_card_are_decided_and_counted(
    pipeline: Pipeline,
) -> None:
    """The contract keys input by customer_id (a card's records in one partition, in order);
    a record under another key, or none, is still decided, and counted with an example."""
    messages = [InputMessage("transactions", 3, i, key, _tx(i, 10.0))
                for i, key in enumerate([b"c1", b"k1", None])]  # fmt: skip
    out = await pipeline.transactions(messages)
    assert len(out.decisions) == 3
    assert out.key_mismatches == 2
    assert out.key_mismatch is not None
    assert out.key_mismatch.describe() == "transactions[3]@1 has key 'k1', customer_id 'c1'"
    label = json.dumps({"transaction_id": "tx1", "customer_id": "c1", "terminal_id": "t1",
                        "tx_timestamp": "2018-04-01T10:00:01Z", "is_fraud": True,
                        "reported_at": "2018-04-02T10:00:00Z"}).encode()  # fmt: skip
    labels = [InputMessage("labels", 0, i, key, label) for i, key in enumerate([b"c1", b"x"])]
    applied = await pipeline.apply_labels(pipeline.receive_labels(labels, consumed_at=0.0))
    assert applied.key_mismatches == 1 and not applied.dead_letters


async def test_a_repeat_after_a_rate_change_is_the_same_decision() -> None:
    """Workers restarted one at a time with a new rate re-deliver what the old ones published
    but had not committed: the repeat keeps the amount its card's window first recorded, and
    whether it had a rate then, so it is decided as before (the contract: byte-identical apart
    from the decision times) — a rate changed, added or withdrawn in between."""
    store = InMemoryFeatureStore()
    # 1,900 dollars: 950 euros at 0.5, under the 1,000 limit; 1,140 at 0.6, over it
    batch = _msgs([_tx(1, 100.0, currency="USD"), _tx(2, 760.0, currency="USD"),
                   _tx(4, 1900.0, "c2", currency="USD"), _tx(5, 10.0, "c3", currency="JPY"),
                   _tx(6, 10.0, "c4", currency="GBP")])  # fmt: skip
    before = Currencies("EUR", {"USD": 0.5, "GBP": 1.2})  # no yen
    after = Currencies("EUR", {"USD": 0.6, "JPY": 0.006})  # a yen rate, no pound
    first = await _in(before, store=store).transactions(batch)
    again = await _in(after, store=store).transactions(batch)
    assert [_stable(v) for _, v in again.decisions] == [_stable(v) for _, v in first.decisions]
    assert again.features == first.features
    yen, pounds = (Decision.model_validate_json(v) for _, v in first.decisions[3:])
    assert yen.decision == "review" and yen.reasons[0].code == UNCONVERTED
    assert pounds.decision == "approve"
    assert again.unconverted == first.unconverted == {"JPY": 1}
    fresh = await _in(Currencies("EUR", {"USD": 0.6}), store=store).transactions(
        _msgs([_tx(3, 760.0, currency="USD")])
    )
    (logged,) = (json.loads(v)["features"] for _, v in fresh.features)
    assert logged["TX_AMOUNT"] == 760.0 * 0.6  # a new transaction gets the new rate


def test_the_two_conversions_agree_to_the_bit() -> None:
    """The worker converts one amount at a time, score-batch a column: the same numbers."""
    rates = Currencies("EUR", {"USD": 0.8613, "GBP": 1.1402, "JPY": 0.0057})
    rng = np.random.default_rng(1)
    amounts = np.round(rng.uniform(0, 5000, 2000), 2)
    codes = rng.choice(np.array(["EUR", "USD", "GBP", "JPY", "CHF"]), 2000)
    column, converted = rates.to_base_column(amounts, codes)
    one_by_one = [rates.to_base(float(a), str(c)) for a, c in zip(amounts, codes, strict=True)]
    assert column.tolist() == [a for a, _ in one_by_one]
    assert converted.tolist() == [ok for _, ok in one_by_one]
    assert converted.tolist() == [c != "CHF" for c in codes]
    assert (column[codes == "EUR"] == amounts[codes == "EUR"]).all()
    assert (column[codes == "CHF"] == amounts[codes == "CHF"]).all()  # as written


@pytest.mark.parametrize("forest", [False, True])
async def test_amounts_too_large_for_the_model_are_declined_by_the_limit(forest: bool) -> None:
    """The contract takes any finite amount. 1e39 does not fit scikit-learn's trees (float32),
    a card's sum of two 1e308 ones is infinite, and 1e308 in cents would not fit a reason:
    each is declined by the amount limit, with a reason an analyst reads, in a batch the model
    scores through scikit-learn (over FLAT_MAX_ROWS rows), and the others are decided."""
    scorer = _scorer(forest=forest)
    pipeline = Pipeline(store=InMemoryFeatureStore(), scorer=lambda: scorer,
                        policy=Policy(amount_limit=1000.0), max_bytes=4096,
                        clock=lambda: NOW)  # fmt: skip

    def tx(i: int, amount: float, customer: str) -> bytes:
        at = f"2018-04-01T10:{i // 60:02d}:{i % 60:02d}Z"
        return json.dumps({"transaction_id": f"tx{i}", "timestamp": at, "customer_id": customer,
                           "terminal_id": "t1", "amount": amount}).encode()  # fmt: skip

    values = [tx(i, 5.0 + i % 50, f"c{i}") for i in range(FLAT_MAX_ROWS + 50)]
    values += [tx(900, 1e39, "big"), tx(901, 1e308, "huge"), tx(902, 1e308, "huge")]
    out = await pipeline.transactions(_msgs(values))
    decided = {d.transaction_id: d for d in (Decision.model_validate_json(v)
                                             for _, v in out.decisions)}  # fmt: skip
    assert len(decided) == len(values) and not out.dead_letters
    for big in ("tx900", "tx901", "tx902"):
        assert decided[big].decision == "decline"
        assert decided[big].reasons[0].code == "RULE_AMOUNT_LIMIT"
    assert decided["tx900"].reasons[0].description == (
        "amount 1e+39 EUR is over the limit of 1000.00 EUR"
    )
    assert decided["tx902"].reasons[0].description == (
        "amount 1e+308 EUR is over the limit of 1000.00 EUR"
    )
    # the model's reasons show the amount as it is, not float32's largest that the model read
    assert not any("340282" in r.description for r in decided["tx901"].reasons)
    if forest:  # the regression's score stays at 1 with any one feature at its typical value
        (amount_reason,) = (r for r in decided["tx901"].reasons if r.code == "TX_AMOUNT")
        assert amount_reason.description.startswith("transaction amount: 1e+308 (typical ")
    assert decided["tx5"].decision == "approve"


MEDIAN_RATIO = "CUSTOMER_AMOUNT_RATIO_MEDIAN_30DAY"


def _median_ratio_scorer() -> Scorer:
    """A model whose fraud probability rises with the amount's ratio to the card's median,
    every feature's typical value 1: that ratio is named in the reasons of a flagged row."""
    ratio = FEATURE_NAMES.index(MEDIAN_RATIO)
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, size=(400, len(FEATURE_NAMES)))
    model = LogisticRegression(max_iter=1000).fit(X, (X[:, ratio] > 5).astype(int))
    manifest = Manifest(version="ratio-1", created="2026-01-01T00:00:00Z", algorithm="logreg",
                        features=list(FEATURE_NAMES), sha256="-",
                        baseline=[1.0] * len(FEATURE_NAMES))  # fmt: skip
    return Scorer(LoadedModel(model, manifest))


async def test_a_huge_amount_on_a_card_with_history_is_decided_with_reasons_that_fit() -> None:
    """1e200 EUR on a card whose other amounts are about 50 is 2e198 times its median. Such a
    ratio, written out in full in a reason, was longer than the schema's 256 characters: the
    batch failed each time it was read again, and the worker stopped there."""
    scorer = _median_ratio_scorer()
    pipeline = Pipeline(store=InMemoryFeatureStore(), scorer=lambda: scorer, policy=Policy(),
                        max_bytes=4096, clock=lambda: NOW)  # fmt: skip
    values = [_tx(i, 48.0 + i) for i in range(5)] + [_tx(9, 1e200)]
    out = await pipeline.transactions(_msgs(values))
    decided = [Decision.model_validate_json(v) for _, v in out.decisions]
    assert len(decided) == len(values) and not out.dead_letters
    huge = decided[-1]
    assert huge.decision == "decline"
    (named,) = (r for r in huge.reasons if r.code == MEDIAN_RATIO)
    assert named.description.startswith(
        "amount relative to the median of this card's other transactions in the last 30 days: "
        "2e+198x (typical 1.0x; the score would be "
    ), named.description


async def test_a_ratio_past_float64_s_range_is_infinite_without_a_warning_per_batch() -> None:
    """1e308 EUR on a card whose median is a cent is past float64's range: the ratio is
    infinite (the model reads float32's largest), decided like any other, and NumPy's overflow
    warning does not go to the worker's log."""
    scorer = _median_ratio_scorer()
    pipeline = Pipeline(store=InMemoryFeatureStore(), scorer=lambda: scorer,
                        policy=Policy(amount_limit=1e309), max_bytes=4096,
                        clock=lambda: NOW)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = await pipeline.transactions(_msgs([_tx(0, 0.01), _tx(1, 1e308)]))
    assert len(out.decisions) == 2 and not out.dead_letters
    huge = Decision.model_validate_json(out.decisions[1][1])
    (named,) = (r for r in huge.reasons if r.code == MEDIAN_RATIO)
    assert ": infx (typical 1.0x; " in named.description, named.description


async def test_a_dead_letter_says_when_its_record_was_read_not_when_it_was_released() -> None:
    """The event-time merge may hold a refused record behind earlier ones for a while; its
    dead letter's received_at is when the worker read it (the contract's words)."""
    times = iter([datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 12, 0, 9,
                                                                      tzinfo=UTC)])  # fmt: skip
    scorer = _scorer()
    pipeline = Pipeline(store=InMemoryFeatureStore(), scorer=lambda: scorer,
                        policy=Policy(), max_bytes=4096, clock=lambda: next(times))  # fmt: skip
    received = pipeline.receive(_msgs([b"{oops"]), consumed_at=0.0)  # read at 12:00:00
    out = await pipeline.decide(received)  # released and refused at 12:00:09
    (letter,) = (DeadLetter.model_validate_json(v) for _, v in out.dead_letters)
    assert letter.received_at == datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


async def test_a_reused_id_s_dead_letter_says_when_its_record_was_read() -> None:
    """A transaction refused for its reused id is found out only once the merge released it
    and the store looked at it; its dead letter's received_at is still when it was read."""
    read = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    now = [read]
    pipeline = Pipeline(store=InMemoryFeatureStore(), scorer=_scorer, policy=Policy(),
                        max_bytes=4096, clock=lambda: now[0])  # fmt: skip
    await pipeline.decide(pipeline.receive(_msgs([_tx(1, 10.0)]), consumed_at=0.0))
    received = pipeline.receive(_msgs([_tx(1, 20.0)]), consumed_at=0.0)
    now[0] = read + timedelta(seconds=9)
    out = await pipeline.decide(received)  # released and refused 9 s after it was read
    (letter,) = (DeadLetter.model_validate_json(v) for _, v in out.dead_letters)
    assert letter.errors[0].type == "transaction_id_reused"
    assert letter.received_at == read


def _policy() -> Policy:
    return Policy(review_threshold=0.5, decline_threshold=0.9, amount_limit=1000.0)


async def test_a_repeat_is_published_as_first_decided_after_a_promotion_and_a_block() -> None:
    """The contract: a transaction decided twice gets the same decision both times. Between two
    deliveries a model that flags what the first approved is promoted, and a card is blocked;
    the repeats still publish their first verdicts, while a new transaction is decided by the
    model and blocklist in force."""
    live = [_scorer("unit-1")]
    store = InMemoryFeatureStore()
    pipeline = Pipeline(store=store, scorer=lambda: live[0], policy=_policy(), max_bytes=4096,
                        clock=lambda: NOW)  # fmt: skip
    batch = _msgs([_tx(1, 150.0), _tx(2, 390.0, customer="c2")])
    first = await pipeline.transactions(batch)
    assert [json.loads(v)["decision"] for _, v in first.decisions] == ["approve", "decline"]
    live[0] = _scorer("unit-2", cut=100.0)
    await store.blocklist_add("customer", ["c2"])

    again = await pipeline.transactions(batch)
    assert [_stable(v) for _, v in again.decisions] == [_stable(v) for _, v in first.decisions]
    assert again.alerts == first.alerts  # the same clock: byte for byte
    assert again.repeats == {True: 2}  # both would be decided otherwise now
    assert again.outcomes == {"approve": 1, "decline": 1}

    fresh = await pipeline.transactions(_msgs([_tx(3, 150.0), _tx(4, 5.0, customer="c2")]))
    now = [Decision.model_validate_json(v) for _, v in fresh.decisions]
    assert [d.model_version for d in now] == ["unit-2", "unit-2"]
    assert now[0].decision != "approve"
    assert now[1].reasons[0].code == "RULE_CUSTOMER_BLOCKED"


async def test_two_workers_deciding_one_transaction_at_once_publish_one_verdict() -> None:
    """Both read the features before either pinned (one of them about to lose the partition):
    the second to pin publishes the first one's verdict, not its own model's."""
    store = InMemoryFeatureStore()
    old, new = _scorer("unit-1"), _scorer("unit-2", cut=100.0)
    leaving, joining = (
        Pipeline(
            store=store, scorer=lambda s=s: s, policy=_policy(), max_bytes=4096, clock=lambda: NOW
        )
        for s in (old, new)
    )
    batch = _msgs([_tx(1, 150.0)])
    ahead = await joining.prepare(joining.receive(batch, 0.0))
    first = await leaving.transactions(batch)
    second = await joining.settle(ahead)
    assert [_stable(v) for _, v in second.decisions] == [_stable(v) for _, v in first.decisions]
    assert json.loads(second.decisions[0][1])["model_version"] == "unit-1"
    assert second.repeats == {True: 1}


async def test_an_unreadable_pinned_verdict_is_logged_and_replaced_by_the_one_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What is published is pinned, also when the pin found could not be read: a later repeat
    (after a promotion) publishes that decision again."""
    store = InMemoryFeatureStore()
    live = [_scorer("unit-1")]
    pipeline = Pipeline(store=store, scorer=lambda: live[0], policy=_policy(), max_bytes=4096,
                        clock=lambda: NOW)  # fmt: skip
    batch = _msgs([_tx(1, 390.0)])
    first = await pipeline.transactions(batch)
    store._customers["c1"].pins["tx1"] = (b"not a verdict", b"")
    with caplog.at_level("ERROR", logger="streamer.pipeline"):
        again = await pipeline.transactions(batch)
    assert [_stable(v) for _, v in again.decisions] == [_stable(v) for _, v in first.decisions]
    assert again.repeats == {}
    assert "transaction 'tx1' is decided anew: its pinned verdict is unreadable" in caplog.text
    live[0] = _scorer("unit-2", cut=100.0)
    third = await pipeline.transactions(batch)
    assert [_stable(v) for _, v in third.decisions] == [_stable(v) for _, v in first.decisions]
    assert third.repeats == {True: 1}
