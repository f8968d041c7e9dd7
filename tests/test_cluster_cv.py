"""Cross-validation on the cluster: the same matrices as local cross_validate, data sent once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cluster_helpers import in_process_cluster, small_data

from aioforest import FitProgress, RandomForestClassifier
from aioforest.cluster._protocol import DatasetPayload, Task
from aioforest.data import Bins
from aioforest.datasets import load_iris
from aioforest.evaluation import cross_validate


def _same(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.labels == y.labels
        np.testing.assert_array_equal(x.counts, y.counts)


@pytest.mark.asyncio
@pytest.mark.parametrize("stratified", [True, False])
async def test_cluster_cv_equals_local_cv_on_iris_and_sends_the_data_once(
    stratified: bool,
) -> None:
    iris = load_iris()
    forest = RandomForestClassifier(n_estimators=12, random_state=3)
    local = cross_validate(forest, iris, folds=5, stratified=stratified, random_state=7)
    seen: list[FitProgress] = []
    async with in_process_cluster(2) as (master, _):
        got = await master.cross_validate(
            forest, iris, folds=5, stratified=stratified, random_state=7,
            on_progress=seen.append,
        )
        status = master.status()
    _same(got, local)
    assert sum(int(cm.counts.sum()) for cm in got) == iris.n_samples
    # One raw dataset for all five folds: each worker received it at most once.
    assert 1 <= status["datasets_sent"] <= 2
    for w in status["workers"].values():
        assert w["datasets_received"] <= 1
    assert sum(status["tasks_done_by_worker"].values()) >= 5
    assert [p.done for p in seen] == list(range(1, 61))
    assert all(p.total == 60 for p in seen)


@pytest.mark.asyncio
async def test_cluster_cv_on_arrays_matches_local_and_bytes_stay_near_one_copy() -> None:
    X, y = small_data(n=300, d=6, seed=4)
    forest = RandomForestClassifier(n_estimators=8, random_state=1, max_features=2)
    local = cross_validate(forest, X, y, folds=4, random_state=2)
    async with in_process_cluster(1) as (master, _):
        got = await master.cross_validate(forest, X, y, folds=4, random_state=2)
        status = master.status()
        # A second run on the same data: the worker still holds the raw dataset (by
        # content hash), so only fold row indices and bins travel.
        again = await master.cross_validate(forest, X, y, folds=4, random_state=2)
        second = master.status()
    _same(got, local)
    _same(again, local)
    assert status["datasets_sent"] == 1
    assert second["datasets_sent"] == 1
    raw_message = X.nbytes + y.nbytes
    assert second["bytes"]["sent_raw"] - status["bytes"]["sent_raw"] < status["bytes"]["sent_raw"]
    assert status["bytes"]["sent_raw"] > raw_message


@pytest.mark.asyncio
async def test_a_fold_missing_a_class_gets_its_own_dataset_and_still_matches() -> None:
    # Unshuffled, unstratified folds put both rows of the rare class 0 in the first fold's
    # test rows: its training rows code classes 1, 2 as 0, 1, unlike the full data.
    X, y = small_data(n=60, d=4, seed=5)
    y = (y > 0).astype(np.int64) + 1
    y[[0, 1]] = 0
    forest = RandomForestClassifier(n_estimators=5, random_state=0)
    local = cross_validate(forest, X, y, folds=3, stratified=False, shuffle=False,
                           random_state=None)
    async with in_process_cluster(1) as (master, _):
        got = await master.cross_validate(
            forest, X, y, folds=3, stratified=False, shuffle=False
        )
        status = master.status()
    _same(got, local)
    assert status["datasets_sent"] == 2  # the shared raw dataset + the odd fold's own


@pytest.mark.asyncio
async def test_cluster_cv_rejects_bad_arguments() -> None:
    X, y = small_data(n=40, d=3)
    async with in_process_cluster(1) as (master, _):
        with pytest.raises(ValueError, match="folds must be an integer >= 2"):
            await master.cross_validate(RandomForestClassifier(), X, y, folds=1)
        with pytest.raises(TypeError, match="RandomForestClassifier"):
            await master.cross_validate(object(), X, y)
        with pytest.raises(ValueError, match="warm_start"):
            await master.cross_validate(RandomForestClassifier(warm_start=True), X, y)
        with pytest.raises(ValueError, match="y is required"):
            await master.cross_validate(RandomForestClassifier(), X)
        assert master.status()["datasets_sent"] == 0


def test_raw_dataset_and_binning_tasks_round_trip() -> None:
    X, y = small_data(n=30, d=3)
    raw = DatasetPayload.build_raw(X, y, None, np.zeros(3, dtype=bool))
    assert raw.is_raw
    got = DatasetPayload.from_message(raw.to_message())
    assert got.is_raw and got.hash == raw.hash == got.computed_hash()
    np.testing.assert_array_equal(got.codes, X.T)
    from aioforest.data import Binner
    from aioforest.tree._plan import ForestPlan

    bins = Binner(16).fit(X)
    plan = RandomForestClassifier(n_estimators=2, random_state=0).fit_job(X, y).plan
    assert isinstance(plan, ForestPlan)
    task = Task(1, 0, 0, raw.hash, plan, (0, 1), np.arange(0, 30, 2, dtype=np.int64), bins)
    back = Task.from_message(task.to_message())
    assert back.bins is not None
    np.testing.assert_array_equal(back.bins.n_bins, bins.n_bins)
    for a, b in zip(back.bins.edges, bins.edges, strict=True):
        np.testing.assert_array_equal(a, b)
    assert Task.from_message(Task(1, 0, 0, raw.hash, plan, (0,)).to_message()).bins is None


@pytest.mark.asyncio
async def test_a_failing_progress_callback_fails_the_run_and_stops_every_fold() -> None:
    X, y = small_data(n=90, d=3)

    def boom(p: FitProgress) -> None:
        raise RuntimeError("callback broke")

    async with in_process_cluster(1) as (master, _):
        with pytest.raises(RuntimeError, match="callback broke") as info:
            await master.cross_validate(
                RandomForestClassifier(n_estimators=4, random_state=0), X, y, folds=3,
                on_progress=boom,
            )
        assert any("cross-validation fold" in n for n in info.value.__notes__)
        assert master.status()["jobs"] == {}


def test_cli_cv_prints_the_local_cross_validation_accuracies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aioforest.evaluation import accuracy, cross_validated_metric
    from aioforest.master import main

    assert main(["--cv", "3", "--seed", "4", "--trees", "6", "--local-workers", "1", "-q"]) == 0
    out = capsys.readouterr().out
    local = cross_validate(
        RandomForestClassifier(n_estimators=6, random_state=4), load_iris(), folds=3,
        random_state=4,
    )
    for i, cm in enumerate(local, 1):
        assert f"fold {i}: accuracy {accuracy(cm):.4f}" in out
    mean, variance = cross_validated_metric(local)
    assert f"accuracy mean {mean:.4f}  variance {variance:.6f}" in out
    assert "datasets sent: 1" in out


@pytest.mark.asyncio
async def test_a_worker_bins_raw_rows_itself_and_refuses_mismatched_bins() -> None:
    import asyncio

    from cluster_helpers import HOST, TEST_TIMEOUT, TOKEN, ScriptedMaster, recv_skipping
    from forest_helpers import assert_same_tree

    from aioforest.cluster import Worker
    from aioforest.cluster._protocol import Bye, Result, TaskFailed
    from aioforest.data import Binner
    from aioforest.tree._plan import fit_trees

    X, y = small_data(n=120, d=4, seed=8)
    rows = np.arange(0, 120, 3, dtype=np.int64)
    job = RandomForestClassifier(n_estimators=3, random_state=4).fit_job(X[rows], y[rows])
    bins, fold_codes = Binner(255).fit_transform(X[rows])
    raw = DatasetPayload.build_raw(X, y, None, np.zeros(4, dtype=bool))
    binned_payload = DatasetPayload.build(bins, fold_codes, y[rows], None)
    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        worker = Worker(HOST, master.port, TOKEN, processes=1, name="w-raw")
        run = asyncio.ensure_future(worker.run())
        try:
            conn, _ = await master.registered()
            await conn.send(raw.to_message())
            await conn.send(binned_payload.to_message())
            await conn.send(Task(1, 0, 0, raw.hash, job.plan, (0, 2), rows, bins).to_message())
            res = await recv_skipping(conn, "heartbeat")
            assert isinstance(res, Result)
            want = fit_trees(job.plan, bins, fold_codes, job.y, None, [0, 2])
            for got, exp in zip(res.trees, want, strict=True):
                assert_same_tree(got, exp)
            for task, detail in [
                (Task(1, 1, 0, raw.hash, job.plan, (1,), rows), "must carry bins"),
                (Task(1, 2, 0, binned_payload.hash, job.plan, (1,), None, bins),
                 "must not carry bins"),
            ]:
                await conn.send(task.to_message())
                failed = await recv_skipping(conn, "heartbeat")
                assert isinstance(failed, TaskFailed)
                assert failed.reason == "error" and detail in failed.detail
            await conn.send(Bye("done").to_message())
            await run
        finally:
            if not run.done():
                worker.stop(drain=False)
                await asyncio.wait([run])


def _replace_array(msg: Any, name: str, value: Any, **fields: Any) -> Any:
    from aioforest.wire import Message

    arrays = list(msg.arrays)
    arrays[msg.fields["arrays"].index(name)] = value
    return Message(msg.type, {**msg.fields, **fields}, arrays)


def test_task_bins_are_checked_on_decode() -> None:
    from aioforest.cluster._protocol import MessageError

    X, y = small_data(n=30, d=3)
    raw = DatasetPayload.build_raw(X, y, None, np.zeros(3, dtype=bool))
    plan = RandomForestClassifier(n_estimators=1, random_state=0).fit_job(X, y).plan
    bins = Bins(np.array([3, 3, 3], np.int32), np.zeros(3, bool),
                tuple(np.array([0.0, 1.0]) for _ in range(3)))
    msg = Task(1, 0, 0, raw.hash, plan, (0,), None, bins).to_message()
    with pytest.raises(MessageError, match="bin_edge_counts"):
        Task.from_message(
            _replace_array(msg, "bin_edge_counts", np.array([2, 2, 1], dtype=np.int64))
        )
    with pytest.raises(MessageError, match=r"'bins'.*boolean"):
        Task.from_message(_replace_array(
            msg, "bin_edge_counts", np.array([2, 2, 2], dtype=np.int64), bins="yes"
        ))
    with pytest.raises(MessageError, match="placeholder"):
        DatasetPayload.from_message(
            _replace_array(raw.to_message(), "n_bins", np.full(3, 2, dtype=np.int32))
        )
