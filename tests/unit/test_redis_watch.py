"""What counts as Redis losing the window state between two reads of its ``INFO``."""

from __future__ import annotations

from typing import Any

from streamer.redis_watch import KeyWatch, StateLoss


def _info(keys: int, run_id: str = "a", evicted: int = 0, db: int = 3) -> dict[str, Any]:
    info: dict[str, Any] = {"run_id": run_id, "evicted_keys": evicted}
    if keys:  # Redis lists no line for an empty database
        info[f"db{db}"] = {"keys": keys, "expires": keys}
    return info


def test_a_restart_that_lost_the_keys_is_a_loss_once() -> None:
    watch = KeyWatch(db=3)
    assert watch.observe({"": _info(5_000)}) == []  # the first read: nothing to compare
    assert watch.observe({"": _info(5_200)}) == []
    assert watch.observe({"": _info(40, run_id="b")}) == [StateLoss(5_200, 40, node="")]
    assert watch.observe({"": _info(90, run_id="b")}) == []
    loss = StateLoss(5_200, 40, node="")
    assert loss.describe(3).startswith("The Redis server restarted (its run_id changed) and holds")


def test_a_restart_that_kept_the_keys_is_not_a_loss_but_is_noted() -> None:
    watch = KeyWatch(db=3)
    watch.observe({"": _info(5_000)})
    assert watch.restarted == []
    assert watch.observe({"": _info(4_990, run_id="b")}) == []  # persistence reloaded them
    # what it had not saved is lost all the same: the worker warns of it
    assert watch.restarted == [StateLoss(5_000, 4_990, node="")]
    assert watch.observe({"": _info(4_995, run_id="b")}) == [] and watch.restarted == []
    # a restart that is a loss is not noted twice
    watch.observe({"": _info(10, run_id="c")})
    assert watch.restarted == []


def test_a_flush_without_a_restart_is_a_loss_of_the_store() -> None:
    watch = KeyWatch(db=3)
    watch.observe({"": _info(5_000)})
    assert watch.observe({"": _info(0)}) == [StateLoss(5_000, 0)]
    assert "fell from 5,000 to 0 at once" in StateLoss(5_000, 0).describe(3)


def test_only_the_worker_s_database_counts() -> None:
    watch = KeyWatch(db=3)
    watch.observe({"": {**_info(5_000), "db0": {"keys": 10}}})
    assert watch.observe({"": {**_info(5_000), "db0": {"keys": 0}}}) == []
    assert watch.keys({"db0": {"keys": 10}}) == 0 and watch.total == 5_000


def test_evictions_and_small_stores_and_expiries_are_not_a_loss() -> None:
    watch = KeyWatch(db=3)
    watch.observe({"": _info(5_000, evicted=10)})
    # evicted keys have their own warning
    assert watch.observe({"": _info(1_000, evicted=4_010)}) == []
    assert watch.observe({"": _info(950, evicted=4_010)}) == []  # a few expired
    young = KeyWatch(db=3)
    young.observe({"": _info(60)})
    assert young.observe({"": _info(0, run_id="b")}) == []


def test_a_cluster_reshard_or_failover_is_not_a_loss_but_a_node_restarted_empty_is() -> None:
    watch = KeyWatch(db=0)
    nodes = {"a:1": _info(3_000, db=0), "b:2": _info(3_000, db=0), "c:3": _info(3_000, db=0)}
    watch.observe(nodes)
    # slots moved from a to b: the total holds
    moved = {**nodes, "a:1": _info(1_000, db=0), "b:2": _info(5_000, db=0)}
    assert watch.observe(moved) == []
    # c lost to its replica d, which holds what c held
    failover = {"a:1": moved["a:1"], "b:2": moved["b:2"], "d:4": _info(3_000, "d", db=0)}
    assert watch.observe(failover) == []
    # b restarted empty: a third of the store, named by its node
    restarted = {**failover, "b:2": _info(0, "b2", db=0)}
    assert watch.observe(restarted) == [StateLoss(5_000, 0, node="b:2")]
