"""Data-parallel shards placed on several workers (``replicas``)."""

from __future__ import annotations

import numpy as np
import pytest
from cluster_helpers import in_process_cluster, small_data
from forest_helpers import assert_same_forest

from aioforest import RandomForestClassifier


@pytest.mark.asyncio
async def test_with_two_replicas_a_shards_tasks_run_on_either_holder() -> None:
    X, y = small_data(n=200, d=4, seed=2)
    forests = {}
    statuses = {}
    for replicas in (1, 2):
        async with in_process_cluster(2) as (master, _):
            forest = RandomForestClassifier(n_estimators=6, random_state=5)
            await master.fit(forest, X, y, mode="shards", n_shards=1, replicas=replicas,
                             task_size=1)
            statuses[replicas] = master.status()
        forests[replicas] = forest
    # One holder: the shard stays on the first worker, which fits every tree.
    one = statuses[1]
    assert one["datasets_sent"] == 1
    assert sorted(one["tasks_done_by_worker"].values()) == [0, 6]
    # Two holders: once the first is out of credits the second receives the shard too,
    # and both fit some of its trees.
    two = statuses[2]
    assert two["datasets_sent"] == 2
    assert sorted(two["tasks_done_by_worker"]) == ["w0", "w1"]
    assert all(n >= 1 for n in two["tasks_done_by_worker"].values())
    assert sum(two["tasks_done_by_worker"].values()) == 6
    # Where a tree was fitted does not change it.
    assert_same_forest(forests[1], forests[2])
    np.testing.assert_array_equal(forests[1].predict_proba(X), forests[2].predict_proba(X))


@pytest.mark.asyncio
async def test_replicas_must_be_a_positive_integer() -> None:
    X, y = small_data(n=40, d=3)
    async with in_process_cluster(1) as (master, _):
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="replicas must be an integer >= 1"):
                await master.fit(RandomForestClassifier(n_estimators=2), X, y, mode="shards",
                                 replicas=bad)
        with pytest.raises(ValueError, match="replicas needs mode='shards'"):
            await master.fit(RandomForestClassifier(n_estimators=2), X, y, replicas=2)


def test_cli_shards_and_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    from aioforest.master import main

    argv = ["--mode", "shards", "--shards", "1", "--replicas", "2", "--local-workers", "2",
            "--trees", "4", "--seed", "1", "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("tasks per worker"))
    assert "local-1: " in line and "local-2: " in line  # the one shard ran on both holders


def test_cli_rejects_replicas_and_cv_where_they_do_not_apply(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aioforest.master import main

    for argv, message in [
        (["--replicas", "2"], "--replicas needs --mode shards"),
        (["--replicas", "0", "--mode", "shards"], "expected an integer >= 1"),
        (["--cv", "1"], "expected an integer >= 2"),
        (["--cv", "3", "--mode", "shards"], "--cv cannot be combined"),
        (["--cv", "3", "--oob"], "--cv cannot be combined"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert message in capsys.readouterr().err
