"""Data-parallel fits: workers read their partitions; the forest equals the local fit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cluster_helpers import HOST, TEST_TIMEOUT, TOKEN, in_process_cluster
from forest_helpers import assert_same_tree
from test_data_partitions import _lines, _write

import aioforest.cluster._data_parallel as data_parallel
from aioforest import Partitions, RandomForestClassifier
from aioforest.cluster import CheckpointError, Master, Worker
from aioforest.cluster._data_parallel import PartFailed, trees_per_batch
from aioforest.cluster._faults import Faults
from aioforest.cluster._protocol import PartRequest

N_ROWS = 1200
CUTS = {"1 file": [N_ROWS], "3 uneven": [100, 900, 200],
        "7 with a header-only one": [300, 0, 150, 150, 200, 1, 399]}


def _forest(**params: Any) -> RandomForestClassifier:
    return RandomForestClassifier(**{"n_estimators": 5, "random_state": 4, **params})


def _parts(tmp_path: Path, cut: list[int]) -> Partitions:
    _write(tmp_path, _lines(N_ROWS), cut)
    return Partitions(str(tmp_path / "part-*.csv"))


def _assert_same_forest(a: Any, b: Any) -> None:
    assert len(a.trees_) == len(b.trees_)
    for i, (s, t) in enumerate(zip(a.trees_, b.trees_, strict=True)):
        assert_same_tree(s, t, where=f"tree {i}: ")
    assert a.bins_.equals(b.bins_)
    assert list(a.classes_) == list(b.classes_) and a.features_ == b.features_


@pytest.fixture(autouse=True)
def _deep_subtrees(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small data: let the top levels grow level-wise over the workers and the nodes of at
    # most 60 instances finish on one worker, so every test crosses both.
    monkeypatch.setattr(data_parallel, "SUBTREE_MIN_ROWS", 60)
    monkeypatch.setattr(data_parallel, "SUBTREE_SHARE", 10**9)


@pytest.fixture(scope="module")
def local_forest(tmp_path_factory: pytest.TempPathFactory) -> Any:
    parts = _parts(tmp_path_factory.mktemp("whole"), [N_ROWS])
    return _forest(max_features=2).fit(parts)


@pytest.mark.asyncio
@pytest.mark.parametrize("cut", list(CUTS), ids=list(CUTS))
@pytest.mark.parametrize("n_workers", [1, 3])
async def test_a_data_parallel_fit_is_bit_identical_to_the_local_fit(
    tmp_path: Path, cut: str, n_workers: int, local_forest: Any
) -> None:
    # Categorical columns, a column numeric in some files only, missing values, three
    # classes: any partitioning, any number of workers, the same forest.
    parts = _parts(tmp_path, CUTS[cut])
    async with in_process_cluster(n_workers) as (master, _):
        forest = await master.fit(_forest(max_features=2), parts, mode="data")
    _assert_same_forest(forest, local_forest)
    assert np.array_equal(forest.feature_importances_, local_forest.feature_importances_)
    stats = forest.data_parallel_stats_
    assert stats["n_rows"] == N_ROWS and stats["rounds"] > 0 and stats["subtrees"] > 0


SUBTREES = {"level-wise only": 0, "whole trees": 10**6}


@pytest.mark.asyncio
@pytest.mark.parametrize("subtrees", list(SUBTREES), ids=list(SUBTREES))
async def test_wherever_the_subtrees_grow_the_forest_is_the_same(
    tmp_path: Path, subtrees: str, local_forest: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PLANET's local subtrees (rows shipped worker to worker, the owner grows the rest of
    # the subtree with the same driver) never change a tree: every level on all workers,
    # or every tree whole on one (the other tests: nodes of 60 instances or fewer).
    monkeypatch.setattr(data_parallel, "SUBTREE_MIN_ROWS", SUBTREES[subtrees])
    parts = _parts(tmp_path, CUTS["7 with a header-only one"])
    async with in_process_cluster(3) as (master, _):
        forest = await master.fit(_forest(max_features=2), parts, mode="data")
    _assert_same_forest(forest, local_forest)
    stats = forest.data_parallel_stats_
    assert (stats["rounds"] > 0) == (subtrees == "level-wise only")
    assert (stats["subtrees"] > 0) == (subtrees == "whole trees")
    if subtrees == "whole trees":  # each tree grew on one worker: its rows went there
        assert stats["subtrees"] == 5 and stats["rows_shipped"] > 0


@pytest.mark.asyncio
async def test_trees_grown_in_several_batches_are_the_same(
    tmp_path: Path, local_forest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aioforest.cluster._data_parallel as dp

    monkeypatch.setattr(dp, "BATCH_INSTANCES_PER_WORKER", 400)  # two trees a batch
    assert trees_per_batch(N_ROWS, 2, 5) == 1
    parts = _parts(tmp_path, [600, 600])
    async with in_process_cluster(2) as (master, _):
        forest = await master.fit(_forest(max_features=2), parts, mode="data")
    _assert_same_forest(forest, local_forest)


async def _killed_after_first_batch(tmp_path: Path) -> tuple[Partitions, Path]:
    """A checkpointed data-mode fit that dies when its first tree is done (its progress
    callback raises): the partitions and the checkpoint directory it leaves."""
    parts = _parts(tmp_path / "data", [600, 600])
    ckpt = tmp_path / "ckpt"

    def die(progress: Any) -> None:
        raise RuntimeError("killed after the first batch")

    async with in_process_cluster(2) as (master, _):
        with pytest.raises(RuntimeError, match="killed after the first batch"):
            await master.fit(_forest(max_features=2), parts, mode="data",
                             checkpoint_dir=ckpt, on_progress=die)
    return parts, ckpt


@pytest.mark.asyncio
async def test_a_checkpointed_data_parallel_fit_resumes_with_only_the_missing_trees(
    tmp_path: Path, local_forest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each batch's trees are saved when the batch ends. The first run dies after its first
    # batch; the second grows only the rest, and the forest is the local one.
    monkeypatch.setattr(data_parallel, "BATCH_INSTANCES_PER_WORKER", 400)  # a tree a batch
    parts, ckpt = await _killed_after_first_batch(tmp_path)
    async with in_process_cluster(2) as (master, _):
        forest = await master.fit(_forest(max_features=2), parts, mode="data",
                                  checkpoint_dir=ckpt, resume="require")
        assert master.status()["trees_resumed"] == 1
        batches = forest.data_parallel_stats_["batches"]
    assert batches == 4  # five trees, one saved
    _assert_same_forest(forest, local_forest)
    # a partition that changed since is another job: refused, saying why
    (tmp_path / "data" / "part-001.csv").write_text(
        (tmp_path / "data" / "part-001.csv").read_text().replace("red", "rose", 1))
    async with in_process_cluster(1) as (master, _):
        with pytest.raises(CheckpointError, match="data"):
            await master.fit(_forest(max_features=2), parts, mode="data",
                             checkpoint_dir=ckpt, resume="require")


@pytest.mark.asyncio
async def test_a_batch_killed_mid_growth_resumes_from_its_last_saved_level(
    tmp_path: Path, local_forest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checkpoints per round: the batch's nodes so far and its keep/route log are saved
    # between levels; the resumed fit replays the log on freshly loaded workers and goes
    # on from that level. Here the master "dies" right after its second save.
    monkeypatch.setattr(data_parallel, "ROUND_CHECKPOINT_SECONDS", 0.0)
    original = data_parallel._round_saver
    saves: list[int] = []

    def dying_saver(*args: Any) -> Any:
        save = original(*args)

        def save_then_die(depth: int, make_state: Any) -> None:
            save(depth, make_state)
            saves.append(depth)
            if len(saves) == 2:
                raise RuntimeError("master killed")

        return save_then_die

    parts = _parts(tmp_path / "data", [600, 600])
    ckpt = tmp_path / "ckpt"
    monkeypatch.setattr(data_parallel, "_round_saver", dying_saver)
    async with in_process_cluster(2) as (master, _):
        with pytest.raises(RuntimeError, match="master killed"):
            await master.fit(_forest(max_features=2), parts, mode="data", checkpoint_dir=ckpt)
    assert (ckpt / "round.aiof").exists() and saves == [1, 2]
    monkeypatch.setattr(data_parallel, "_round_saver", original)
    async with in_process_cluster(3) as (master, _):  # another cluster: it does not matter
        forest = await master.fit(_forest(max_features=2), parts, mode="data",
                                  checkpoint_dir=ckpt, resume="require")
    assert forest.data_parallel_stats_["levels_resumed"] == 2
    _assert_same_forest(forest, local_forest)
    assert not (ckpt / "round.aiof").exists()  # the batch is done: its trees are saved


class _CrashingWorker(Worker):
    """Loses its connection (as if killed) at its N-th data-parallel operation."""

    def crash(self, why: str) -> None:
        assert self.connection is not None
        self.crash_reason = why
        self.reconnect = False
        self.connection.abort()


@pytest.mark.asyncio
@pytest.mark.parametrize("at_op", [1, 2, 3, 9, 40], ids=lambda n: f"op{n}")
async def test_a_worker_lost_mid_fit_does_not_change_the_forest(
    tmp_path: Path, local_forest: Any, at_op: int
) -> None:
    # Op 1 is its scan, 2 its load, 3 the bins, then begin and the level operations: its
    # partitions move to the survivors, which read them again and replay the batch.
    parts = _parts(tmp_path, [300, 300, 300, 300])
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN) as master:
        healthy = [Worker(HOST, master.port, TOKEN, processes=1, name=f"ok{i}")
                   for i in range(2)]
        doomed = _CrashingWorker(HOST, master.port, TOKEN, processes=1, name="doomed",
                                 faults=Faults(crash_on_part_op=at_op))
        runs = [asyncio.ensure_future(w.run()) for w in [*healthy, doomed]]
        await master.wait_for_workers(3)
        forest = await master.fit(_forest(max_features=2), parts, mode="data")
        await master.close()
        await asyncio.wait(runs)
    assert doomed.crash_reason.startswith(f"data-parallel operation {at_op}")
    _assert_same_forest(forest, local_forest)
    assert forest.data_parallel_stats_["partitions_moved"] >= 1


class _CrashingAtOp(_CrashingWorker):
    """Lost at its first data-parallel operation called ``op``."""

    def __init__(self, *args: Any, op: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fatal_op = op

    async def _handle(self, msg: object) -> None:
        if isinstance(msg, PartRequest) and msg.op == self.fatal_op:
            self.crash(f"at its first {msg.op}")
            return
        await super()._handle(msg)


@pytest.mark.asyncio
@pytest.mark.parametrize("op", ["ship", "subtrees"])
async def test_a_worker_lost_while_shipping_or_growing_subtrees_does_not_change_the_forest(
    tmp_path: Path, local_forest: Any, op: str
) -> None:
    # Shipping only copies rows, so losing a holder or an owner means: its partitions move
    # (and are brought to the level), and the subtrees are shipped and grown again.
    parts = _parts(tmp_path, [300, 300, 300, 300])
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN) as master:
        healthy = [Worker(HOST, master.port, TOKEN, processes=1, name=f"ok{i}")
                   for i in range(2)]
        doomed = _CrashingAtOp(HOST, master.port, TOKEN, processes=1, name="doomed", op=op)
        runs = [asyncio.ensure_future(w.run()) for w in [*healthy, doomed]]
        await master.wait_for_workers(3)
        forest = await master.fit(_forest(max_features=2), parts, mode="data")
        await master.close()
        await asyncio.wait(runs)
    assert doomed.crash_reason == f"at its first {op}"
    _assert_same_forest(forest, local_forest)
    stats = forest.data_parallel_stats_
    assert stats["partitions_moved"] >= 1 and stats["subtrees"] > 0


@pytest.mark.asyncio
async def test_a_partition_missing_for_a_worker_is_a_clear_error_before_training(
    tmp_path: Path,
) -> None:
    parts = _parts(tmp_path, [400, 400, 400])
    (tmp_path / "part-001.csv").unlink()  # after the master listed it
    async with in_process_cluster(2) as (master, _):
        with pytest.raises(PartFailed, match=r"part-001\.csv: no such file"):
            await master.fit(_forest(), parts, mode="data")
        # the cluster is fine afterwards
        ok = _parts(tmp_path / "again", [600, 600])
        forest = await master.fit(_forest(), ok, mode="data")
    assert len(forest.trees_) == 5


@pytest.mark.asyncio
async def test_a_worker_whose_data_root_differs_reads_its_own_copy(tmp_path: Path) -> None:
    # The master's directory holds files of another dataset (it lists them only); the
    # workers' root holds the real ones: the forest is the real data's.
    real = _parts(tmp_path / "real", [500, 700])
    _write(tmp_path / "decoy", _lines(N_ROWS, seed=9), [500, 700])
    decoy = Partitions(str(tmp_path / "decoy" / "part-*.csv"))
    options = {"data_root": str(tmp_path / "real")}
    async with in_process_cluster(2, worker_options=options) as (master, _):
        forest = await master.fit(_forest(), decoy, mode="data")
    _assert_same_forest(forest, _forest().fit(real))


@pytest.mark.asyncio
async def test_data_mode_refuses_what_it_cannot_do_yet(tmp_path: Path) -> None:
    from aioforest import RandomForestRegressor

    parts = _parts(tmp_path, [600, 600])
    async with in_process_cluster(1) as (master, _):
        with pytest.raises(ValueError, match=r"pass X=aioforest\.Partitions"):
            await master.fit(_forest(), np.zeros((4, 2)), np.arange(4) % 2, mode="data")
        with pytest.raises(ValueError, match="needs Partitions"):
            await master.fit(RandomForestRegressor(), parts, mode="data")


def _regression_lines(n: int) -> list[str]:
    """The classification rows with a numeric target of awkward decimals in the label's
    place: float sums of it would depend on the order of the rows."""
    rng = np.random.default_rng(9)
    out = []
    for line in _lines(n):
        fields = line.split(",")
        signal = float(fields[0]) * 1000 / 7 + (30.0 if fields[1] == "red" else 0.0)
        fields[-1] = repr(signal + rng.normal() / 3)
        out.append(",".join(fields))
    return out


@pytest.mark.asyncio
@pytest.mark.parametrize("cut", [[N_ROWS], [300, 0, 150, 150, 200, 1, 399]],
                         ids=["1 file", "7 files"])
async def test_a_data_parallel_regression_is_bit_identical_to_the_local_fit(
    tmp_path: Path, cut: list[int]
) -> None:
    # Fixed-point targets make every regression sum exact, the OOB R² takes exact sums:
    # any partitioning, the same forest and the same score.
    from aioforest import RandomForestRegressor

    def forest() -> RandomForestRegressor:
        return RandomForestRegressor(n_estimators=20, random_state=2, max_features=3,
                                     min_samples_leaf=2, oob_score=True)

    whole = tmp_path / "whole"
    _write(whole, _regression_lines(N_ROWS), [N_ROWS])
    local = forest().fit(Partitions(str(whole / "part-*.csv"), task="regression"))
    cut_dir = tmp_path / "cut"
    _write(cut_dir, _regression_lines(N_ROWS), cut)
    parts = Partitions(str(cut_dir / "part-*.csv"), task="regression")
    async with in_process_cluster(2) as (master, _):
        remote = await master.fit(forest(), parts, mode="data")
    assert len(remote.trees_) == len(local.trees_)
    for i, (s, t) in enumerate(zip(remote.trees_, local.trees_, strict=True)):
        assert_same_tree(s, t, where=f"tree {i}: ")
    assert remote.oob_score_ == local.oob_score_
    assert 0.5 < local.oob_score_ < 1.0
    assert np.array_equal(remote.feature_importances_, local.feature_importances_)


@pytest.mark.asyncio
async def test_a_cancelled_data_parallel_fit_stops_and_the_cluster_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aioforest.cluster._data_parallel as dp

    first_round = asyncio.Event()
    loop = asyncio.get_running_loop()
    original = dp.RemoteRows.histograms

    def histograms(self: Any, request: Any) -> Any:
        loop.call_soon_threadsafe(first_round.set)
        return original(self, request)

    monkeypatch.setattr(dp.RemoteRows, "histograms", histograms)
    parts = _parts(tmp_path, [600, 600])
    async with in_process_cluster(2) as (master, _):
        fit = asyncio.ensure_future(master.fit(_forest(), parts, mode="data"))
        await first_round.wait()
        fit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fit
        assert master._part_sessions == {}
        forest = await master.fit(_forest(), _parts(tmp_path / "b", [1200]), mode="data")
    assert len(forest.trees_) == 5


@pytest.mark.asyncio
async def test_a_worker_that_joins_mid_fit_takes_partitions(
    tmp_path: Path, local_forest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aioforest.cluster._data_parallel as dp

    monkeypatch.setattr(dp, "BATCH_INSTANCES_PER_WORKER", 400)  # a batch per tree
    parts = _parts(tmp_path, [200, 200, 200, 200, 200, 200])
    original = dp.PartSession.admit_newcomers
    joined: list[Worker] = []

    async def admit(self: Any) -> None:
        if not joined:  # before the second batch: a third worker arrives
            worker = Worker(HOST, self.link.port, TOKEN, processes=1, name="late")
            joined.append(worker)
            runs.append(asyncio.ensure_future(worker.run()))
            await self.link.wait_for_workers(3)
        await original(self)

    monkeypatch.setattr(dp.PartSession, "admit_newcomers", admit)
    runs: list[asyncio.Future[None]] = []
    async with in_process_cluster(2) as (master, _):
        forest = await master.fit(_forest(max_features=2), parts, mode="data")
        assert forest.data_parallel_stats_["workers_joined"] == 1
        assert joined[0].parts.sessions == 0  # closed at the end
        await master.close()
        await asyncio.wait(runs)
    _assert_same_forest(forest, local_forest)


@pytest.mark.asyncio
async def test_the_out_of_bag_score_comes_from_the_workers_and_equals_the_local_one(
    tmp_path: Path,
) -> None:
    parts = _parts(tmp_path, [500, 0, 700])
    local = _forest(oob_score=True, n_estimators=30).fit(parts)
    async with in_process_cluster(2) as (master, _):
        forest = await master.fit(_forest(oob_score=True, n_estimators=30), parts,
                                  mode="data")
    _assert_same_forest(forest, local)
    assert forest.oob_score_ == local.oob_score_  # the same float, bit for bit
    assert 0.0 < forest.oob_score_ < 1.0


def test_subtrees_go_to_the_owner_with_the_least_work_largest_first() -> None:
    owners = data_parallel.balanced_owners(np.array([5, 100, 40, 60, 1]), 5, 2)
    assert owners.tolist() == [0, 0, 1, 1, 1]  # 100, 5 | 60, 40, 1: loads 105 and 101
    load = np.bincount(owners, weights=[5, 100, 40, 60, 1])
    assert load.max() - load.min() <= 5
    assert data_parallel.balanced_owners(None, 5, 2).tolist() == [0, 1, 0, 1, 0]


@pytest.mark.asyncio
async def test_a_saved_round_of_a_batch_whose_trees_were_saved_is_not_replayed(
    tmp_path: Path, local_forest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed between saving a batch's trees and forgetting its round: the round must not
    # be replayed onto the next batch.
    from aioforest.cluster._checkpoint import Checkpoint

    monkeypatch.setattr(data_parallel, "BATCH_INSTANCES_PER_WORKER", 400)  # a tree a batch
    monkeypatch.setattr(data_parallel, "ROUND_CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(Checkpoint, "clear_round", lambda self: None)
    parts, ckpt = await _killed_after_first_batch(tmp_path)
    assert (ckpt / "round.aiof").exists()  # tree 0's round, though tree 0 is saved
    monkeypatch.undo()
    monkeypatch.setattr(data_parallel, "BATCH_INSTANCES_PER_WORKER", 400)
    async with in_process_cluster(2) as (master, _):
        forest = await master.fit(_forest(max_features=2), parts, mode="data",
                                  checkpoint_dir=ckpt, resume="require")
    assert forest.data_parallel_stats_["levels_resumed"] == 0
    _assert_same_forest(forest, local_forest)


def test_subtree_records_that_are_not_proper_trees_are_refused() -> None:
    from aioforest.tree import NodeRecords

    bins = _tiny_bins()

    def records(left: list[int], right: list[int], feature: list[int], lut_rows: int = 0,
                local: list[int] | None = None) -> NodeRecords:
        n = len(left)
        return NodeRecords(
            tree=np.zeros(n, np.int64), local=np.array(local or list(range(n)), np.int64),
            feature=np.array(feature, np.int64), threshold_bin=np.zeros(n, np.int64),
            missing_left=np.zeros(n, bool), left=np.array(left, np.int64),
            right=np.array(right, np.int64), value=np.zeros((n, 3)), impurity=np.zeros(n),
            n=np.ones(n, np.int64), wn=np.ones(n), improvement=np.zeros(n),
            lut=np.zeros((lut_rows, 256), bool))

    problem = data_parallel._tree_problem
    assert problem(records([1, -1, -1], [2, -1, -1], [0, -1, -1]), 1, bins) == ""
    # a cycle out of the root's reach, a dangling child, repeated ids, a missing table
    assert "child of exactly one" in problem(
        records([-1, 2, 1, -1, -1], [-1, 3, 4, -1, -1], [-1, 0, 0, -1, -1]), 1, bins)
    assert "child of exactly one" in problem(records([1, -1, -1], [7, -1, -1], [0, -1, -1]),
                                             1, bins)
    assert "0..k-1" in problem(records([1, -1, -1], [2, -1, -1], [0, -1, -1],
                                       local=[0, 1, 1]), 1, bins)
    assert "category tables" in problem(records([1, -1, -1], [2, -1, -1], [1, -1, -1]),
                                        1, bins)
    assert "out of range" in problem(records([1, -1, -1], [2, -1, -1], [9, -1, -1]), 1, bins)
    assert "without its root" in problem(records([-1], [-1], [-1]), 2, bins)


def _tiny_bins() -> Any:
    from aioforest.data import Binner

    X = np.column_stack([np.arange(20.0), np.arange(20) % 3])
    return Binner().fit(X, np.array([False, True]), np.array([0, 3]))


def test_the_codes_an_owner_receives_count_against_the_batch_budget() -> None:
    # 1M rows on 2 workers: 320k in-bag instances a tree each; wide rows halve the batch
    assert trees_per_batch(10**6, 2, 100) == 26
    assert trees_per_batch(10**6, 2, 100, 32) == 13
    assert trees_per_batch(10**6, 2, 5, 32) == 5 and trees_per_batch(10**9, 2, 5, 32) == 1
