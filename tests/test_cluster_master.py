"""The master with in-process workers and hand-driven fake workers, on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

import numpy as np
import pytest
from cluster_helpers import (
    HOST,
    TEST_TIMEOUT,
    TOKEN,
    FakeWorker,
    in_process_cluster,
    small_data,
    step_until,
)
from forest_helpers import assert_same_forest, assert_same_tree

from aioforest import FitProgress, RandomForestClassifier, RandomForestRegressor
from aioforest.cluster import (
    ClusterClosed,
    JobFailedError,
    Master,
    Worker,
    is_loopback,
)
from aioforest.cluster._protocol import (
    Bye,
    Cancel,
    DatasetPayload,
    Heartbeat,
    Register,
    Result,
    Task,
    TaskFailed,
    decode,
)
from aioforest.data import split_rows
from aioforest.tree._plan import fit_trees
from aioforest.wire import ConnectionClosed, open_connection


def cluster(n_workers: int = 2, **options: Any) -> Any:
    """A master plus ``n_workers`` in-process workers (one pool process each)."""
    return in_process_cluster(n_workers, **options)


async def start_worker(master: Master, name: str) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker(HOST, master.port, TOKEN, processes=1, name=name)
    return worker, asyncio.ensure_future(worker.run())


async def answer_task(fake: FakeWorker, datasets: dict[str, DatasetPayload]) -> Task:
    """Receive messages until a task arrives, fit it like a real worker, send the result."""
    while True:
        msg = await fake.recv()
        if isinstance(msg, DatasetPayload):
            datasets[msg.hash] = msg
        elif isinstance(msg, Task):
            break
    d = datasets[msg.dataset]
    trees = fit_trees(msg.plan, d.bins, d.codes, d.y, d.sample_weight, list(msg.indices))
    await fake.send(Result(msg.job_id, msg.task_id, msg.attempt, tuple(trees)))
    return msg


async def next_task(fake: FakeWorker) -> Task:
    while True:
        msg = await fake.recv()
        if isinstance(msg, Task):
            return msg


# --------------------------------------------------------------------------- fits


@pytest.mark.asyncio
@pytest.mark.parametrize("weights", [None, "integral", "fractional"])
async def test_model_parallel_fit_is_bit_identical_to_local_fit(weights: str | None) -> None:
    X, y = small_data(n=240, d=6, seed=1)
    sw = None
    if weights == "integral":
        sw = np.random.default_rng(2).integers(0, 4, y.size).astype(np.float64)
    elif weights == "fractional":
        sw = np.random.default_rng(3).uniform(0.1, 2.0, y.size)
    params: dict[str, Any] = dict(
        n_estimators=14, random_state=9, max_features=3, oob_score=True
    )
    local = RandomForestClassifier(**params).fit(X, y, sample_weight=sw)
    seen: list[FitProgress] = []
    async with cluster(2) as (master, _):
        forest = RandomForestClassifier(**params)
        assert await master.fit(forest, X, y, sw, on_progress=seen.append) is forest
        status = master.status()
    assert_same_forest(forest, local)
    assert forest.oob_score_ == local.oob_score_
    np.testing.assert_array_equal(forest.predict_proba(X), local.predict_proba(X))
    assert [p.done for p in seen] == list(range(1, 15))
    assert sorted(p.index for p in seen) == list(range(14))
    assert status["tasks"]["done_total"] >= 2
    assert sum(status["tasks_done_by_worker"].values()) == status["tasks"]["done_total"]


@pytest.mark.asyncio
async def test_the_master_checks_and_builds_result_trees_off_its_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aioforest.cluster import _master as master_module
    from aioforest.cluster import _protocol

    threads: list[bool] = []
    real = _protocol._DECODERS["result"]

    def spy(msg: Any) -> Any:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(msg)

    monkeypatch.setitem(_protocol._DECODERS, "result", spy)
    X, y = small_data(n=120, d=4, seed=6)
    local = RandomForestClassifier(n_estimators=4, random_state=1).fit(X, y)
    async with cluster(1) as (master, _):
        small = await master.fit(RandomForestClassifier(n_estimators=4, random_state=1), X, y)
        assert threads and all(threads)  # results of a few KiB: decoded on the loop
        threads.clear()
        # The rule is the wire's: from OFF_LOOP_FRAME_BYTES on, in a thread.
        monkeypatch.setattr(master_module, "OFF_LOOP_FRAME_BYTES", 1)
        big = await master.fit(RandomForestClassifier(n_estimators=4, random_state=1), X, y)
        assert threads and not any(threads)
    assert_same_forest(small, local)
    assert_same_forest(big, local)


@pytest.mark.asyncio
async def test_regressor_and_fit_async_with_a_cluster() -> None:
    X, _ = small_data(n=150, d=4, seed=4)
    y = X[:, 0] * 2 + np.sin(X[:, 1])
    local = RandomForestRegressor(n_estimators=6, random_state=2).fit(X, y)
    async with cluster(1) as (master, _):
        forest = RandomForestRegressor(n_estimators=6, random_state=2)
        assert await forest.fit_async(X, y, cluster=master) is forest
        streamed = RandomForestRegressor(n_estimators=6, random_state=2)
        done = [p.done async for p in streamed.iter_fit_async(X, y, cluster=master)]

        class OurLocalCluster:  # what fit_async reads of an aioforest LocalCluster
            pass

        ours = OurLocalCluster()
        ours.master = master  # type: ignore[attr-defined]
        via_local = await RandomForestRegressor(n_estimators=6, random_state=2).fit_async(
            X, y, cluster=ours)
        with pytest.raises(TypeError, match="fit_async"):
            RandomForestRegressor(n_estimators=2).fit(X, y, cluster=master)
    assert_same_forest(forest, local)
    assert_same_forest(streamed, local)
    assert_same_forest(via_local, local)
    assert done == [1, 2, 3, 4, 5, 6]


@pytest.mark.asyncio
async def test_warm_start_on_the_cluster_matches_a_local_warm_start() -> None:
    X, y = small_data(n=200, d=5, seed=5)
    local = RandomForestClassifier(n_estimators=4, random_state=1, warm_start=True).fit(X, y)
    local.set_params(n_estimators=9).fit(X, y)
    async with cluster(1) as (master, _):
        forest = RandomForestClassifier(n_estimators=4, random_state=1, warm_start=True)
        await master.fit(forest, X, y)
        forest.set_params(n_estimators=9)
        await master.fit(forest, X, y)
        with pytest.warns(UserWarning, match="fits no new tree"):
            await master.fit(forest, X, y)
    assert_same_forest(forest, local)


def expected_data_parallel(
    forest: RandomForestClassifier, X: np.ndarray, y: np.ndarray, n_shards: int
) -> list[Any]:
    """Tree i fitted on shard i % n_shards, computed here independently of the master."""
    job = forest.fit_job(X, y)
    bins, codes = job.bin()
    shards = split_rows(X.shape[0], n_shards, shuffle=True, random_state=job.plan.seed)
    trees = []
    for i in job.indices:
        rows = shards[i % n_shards]
        n_draws = max(1, round(job.plan.n_draws * rows.size / X.shape[0]))
        plan = dataclasses.replace(job.plan, n_draws=n_draws)
        trees.extend(fit_trees(plan, bins, codes[:, rows], job.y[rows], None, [i]))
    return trees


@pytest.mark.asyncio
async def test_data_parallel_on_three_shards() -> None:
    X, y = small_data(n=300, d=5, seed=6)
    params: dict[str, Any] = dict(n_estimators=9, random_state=4)
    expected = expected_data_parallel(RandomForestClassifier(**params), X, y, 3)
    forests = []
    for n_workers in (1, 2):
        async with cluster(n_workers) as (master, _):
            forest = RandomForestClassifier(**params)
            await master.fit(forest, X, y, mode="shards", n_shards=3)
            forests.append(forest)
    for forest in forests:
        assert len(forest.trees_) == 9
        for got, want in zip(forest.trees_, expected, strict=True):
            assert_same_tree(got, want)
        assert forest.score(X, y) > 0.8
    # The bins were learned once on all rows: the model predicts like any other forest.
    np.testing.assert_array_equal(forests[0].predict(X), forests[1].predict(X))


@pytest.mark.asyncio
async def test_data_parallel_workers_only_receive_their_shards() -> None:
    X, y = small_data(n=300, d=4, seed=7)
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        Master(token=TOKEN) as master,
        FakeWorker(master.port, "fake", slots=3) as fake,
    ):
        forest = RandomForestClassifier(n_estimators=6, random_state=3)
        fit = asyncio.ensure_future(
            master.fit(forest, X, y, mode="shards", n_shards=3, task_size=1)
        )
        datasets: dict[str, DatasetPayload] = {}
        for _ in range(6):
            await answer_task(fake, datasets)
        await fit
    assert sorted(d.n_rows for d in datasets.values()) == [100, 100, 100]
    assert_same_forest_trees(forest.trees_, expected_data_parallel(
        RandomForestClassifier(n_estimators=6, random_state=3), X, y, 3))


@pytest.mark.asyncio
async def test_data_parallel_places_one_shard_per_worker_by_default() -> None:
    X, y = small_data(n=400, d=5, seed=21)
    async with cluster(2) as (master, _):
        forest = RandomForestClassifier(n_estimators=8, random_state=2)
        await master.fit(forest, X, y, mode="shards", task_size=1)  # n_shards = 2 workers
        status = master.status()
    assert [w["datasets_received"] for w in status["workers"].values()] == [1, 1]
    assert status["tasks_done_by_worker"] == {"w0": 4, "w1": 4}
    assert_same_forest_trees(forest.trees_, expected_data_parallel(
        RandomForestClassifier(n_estimators=8, random_state=2), X, y, 2))


def assert_same_forest_trees(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for i, (ta, tb) in enumerate(zip(a, b, strict=True)):
        assert_same_tree(ta, tb, where=f"tree {i}: ")


@pytest.mark.asyncio
async def test_data_mode_refuses_what_it_does_not_support() -> None:
    X, y = small_data(n=50, d=3, seed=8)
    async with asyncio.timeout(TEST_TIMEOUT), Master() as master:
        with pytest.raises(ValueError, match="oob_score"):
            await master.fit(RandomForestClassifier(oob_score=True), X, y, mode="shards")
        with pytest.raises(ValueError, match="shards"):
            await master.fit(RandomForestClassifier(), X, y, mode="shards", n_shards=51)
        with pytest.raises(ValueError, match="mode"):
            await master.fit(RandomForestClassifier(), X, y, mode="rows")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_fit_checks_the_estimator_and_the_dataset_size() -> None:
    from aioforest import DecisionTreeClassifier
    from aioforest.wire import WireConfig

    X, y = small_data(n=300, d=4, seed=22)
    config = WireConfig(max_message_size=1000)
    async with asyncio.timeout(TEST_TIMEOUT), Master(config=config) as master:
        with pytest.raises(TypeError, match="DecisionTreeClassifier"):
            await master.fit(DecisionTreeClassifier(), X, y)
        with pytest.raises(ValueError, match="over the wire limit max_message_size=1000"):
            await master.fit(RandomForestClassifier(n_estimators=2), X, y)
        assert master.status()["jobs"] == {}


@pytest.mark.asyncio
async def test_concurrent_fits_share_the_workers() -> None:
    X1, y1 = small_data(n=200, d=5, seed=9)
    X2, y2 = small_data(n=150, d=3, seed=10)
    async with cluster(2) as (master, _):
        a = RandomForestClassifier(n_estimators=8, random_state=1)
        b = RandomForestClassifier(n_estimators=5, random_state=2, max_features=None)
        await asyncio.gather(
            master.fit(a, X1, y1, task_size=1), master.fit(b, X2, y2, task_size=1)
        )
        assert master.status()["jobs"] == {}
    assert_same_forest(a, RandomForestClassifier(n_estimators=8, random_state=1).fit(X1, y1))
    assert_same_forest(
        b, RandomForestClassifier(n_estimators=5, random_state=2, max_features=None).fit(X2, y2)
    )


# --------------------------------------------------------------------------- placement, churn


@pytest.mark.asyncio
async def test_a_worker_holding_the_dataset_gets_no_dataset_message_for_a_second_job() -> None:
    X, y = small_data(n=2000, d=8, seed=11)
    async with cluster(1) as (master, _):
        await master.fit(RandomForestClassifier(n_estimators=3, random_state=1), X, y)
        first = master.status()
        await master.fit(RandomForestClassifier(n_estimators=3, random_state=2), X, y)
        second = master.status()
    w1, w2 = first["workers"]["w0"], second["workers"]["w0"]
    assert w1["datasets_received"] == w2["datasets_received"] == 1
    assert second["datasets_sent"] == 1
    # The second job cost a few small task messages, far less than the 16 KB of codes.
    assert w2["messages_sent"] - w1["messages_sent"] == w2["tasks_sent"] - w1["tasks_sent"]
    assert w2["bytes_sent_raw"] - w1["bytes_sent_raw"] < 2000 * 8 // 4


@pytest.mark.asyncio
async def test_a_reconnecting_worker_announces_its_cache() -> None:
    X, y = small_data(n=120, d=4, seed=12)
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN, prefetch=0) as master:
        datasets: dict[str, DatasetPayload] = {}
        forest = RandomForestClassifier(n_estimators=2, random_state=5)
        async with FakeWorker(master.port, "fake") as fake:
            fit = asyncio.ensure_future(master.fit(forest, X, y, task_size=1))
            await answer_task(fake, datasets)
        (digest,) = datasets
        # The same worker comes back (a new connection) holding the dataset: no resend.
        async with FakeWorker(master.port, "fake", datasets=(digest,)) as again:
            msg = await again.recv()
            assert isinstance(msg, Task) and msg.dataset == digest
            d = datasets[digest]
            trees = fit_trees(msg.plan, d.bins, d.codes, d.y, None, list(msg.indices))
            await again.send(Result(msg.job_id, msg.task_id, msg.attempt, tuple(trees)))
            await fit
    assert_same_forest(forest, RandomForestClassifier(n_estimators=2, random_state=5).fit(X, y))


@pytest.mark.asyncio
async def test_a_worker_joining_mid_job_gets_work() -> None:
    X, y = small_data(n=200, d=5, seed=13)
    n_trees = 6
    # No backups: the newcomer must not take over the held task before the test says so.
    async with asyncio.timeout(TEST_TIMEOUT), Master(
        token=TOKEN, prefetch=0, backup_factor=None
    ) as master:
        async with FakeWorker(master.port, "slow") as slow:
            forest = RandomForestClassifier(n_estimators=n_trees, random_state=8)
            progress: list[FitProgress] = []
            five_done = asyncio.Event()

            def on_progress(p: FitProgress) -> None:
                progress.append(p)
                if p.done == n_trees - 1:
                    five_done.set()

            fit = asyncio.ensure_future(
                master.fit(forest, X, y, task_size=1, on_progress=on_progress)
            )
            held = await next_task(slow)  # the slow worker sits on its task
            _, late_task = await start_worker(master, "late")
            await five_done.wait()  # the newcomer did every other tree
            assert master.status()["tasks_done_by_worker"] == {"slow": 0, "late": n_trees - 1}
            assert not fit.done()
            await slow.conn.aclose(flush=False)  # type: ignore[union-attr]
            await fit  # the held task went back to the queue and to the newcomer
            assert held.indices[0] not in {p.index for p in progress[: n_trees - 1]}
            status = master.status()
            assert status["tasks_done_by_worker"]["late"] == n_trees
            assert status["workers_lost"] == 1
        await master.close()
        await late_task
    local = RandomForestClassifier(n_estimators=n_trees, random_state=8).fit(X, y)
    assert_same_forest(forest, local)


@pytest.mark.asyncio
async def test_a_silent_worker_is_dropped_after_the_heartbeat_timeout() -> None:
    X, y = small_data(n=100, d=3, seed=14)
    async with asyncio.timeout(TEST_TIMEOUT), Master(
        token=TOKEN, heartbeat_interval=0.05, heartbeat_timeout=0.5, prefetch=0
    ) as master, FakeWorker(master.port, "mute") as mute:
        assert mute.welcome is not None and mute.welcome.heartbeat_interval == 0.05
        forest = RandomForestClassifier(n_estimators=2, random_state=1)
        fit = asyncio.ensure_future(master.fit(forest, X, y, task_size=2))
        await next_task(mute)
        assert await mute.closed()  # no heartbeat: the master hangs up
        assert master.workers == []
        _, task = await start_worker(master, "alive")
        await fit
        await master.close()
        await task
    assert_same_forest(forest, RandomForestClassifier(n_estimators=2, random_state=1).fit(X, y))


@pytest.mark.asyncio
async def test_heartbeats_update_the_reported_load() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN) as master:
        async with FakeWorker(master.port, "hb", slots=3) as fake:
            assert master.status()["workers"]["hb"]["load"] == {}
            await fake.send(Heartbeat(running=2, queued=1, free=1))
            await step_until(lambda: bool(master.status()["workers"]["hb"]["load"]))
            load = master.status()["workers"]["hb"]["load"]
            assert load == {"running": 2, "queued": 1, "free": 1}
            await fake.send(Bye("bye"))
            assert await fake.closed()
        assert master.workers == []
        assert master.status()["workers_lost"] == 0  # a graceful leave


# --------------------------------------------------------------------------- failures


@pytest.mark.asyncio
async def test_a_task_error_fails_the_fit_with_the_workers_message() -> None:
    X, y = small_data(n=100, d=3, seed=15)
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        Master(token=TOKEN) as master,
        FakeWorker(master.port, "broken", slots=2) as fake,
    ):
        fit = asyncio.ensure_future(
            master.fit(RandomForestClassifier(n_estimators=4), X, y, task_size=1)
        )
        task = await next_task(fake)
        await fake.send(TaskFailed(task.job_id, task.task_id, task.attempt, "error",
                                   "MemoryError: out of memory"))
        with pytest.raises(JobFailedError, match="MemoryError: out of memory"):
            await fit
        # The other task it held is cancelled.
        while not isinstance(msg := await fake.recv(), Cancel):
            pass
        assert msg.job_id == task.job_id and msg.task_ids is not None


@pytest.mark.asyncio
async def test_a_result_that_does_not_match_its_task_drops_the_worker() -> None:
    X, y = small_data(n=100, d=3, seed=16)
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN, prefetch=0) as master:
        forest = RandomForestClassifier(n_estimators=3, random_state=6)
        async with FakeWorker(master.port, "liar") as liar:
            fit = asyncio.ensure_future(master.fit(forest, X, y, task_size=3))
            datasets: dict[str, DatasetPayload] = {}
            while not isinstance(msg := await liar.recv(), Task):
                datasets[msg.hash] = msg
            d = datasets[msg.dataset]
            trees = fit_trees(msg.plan, d.bins, d.codes, d.y, None, [0])  # one tree, not three
            await liar.send(Result(msg.job_id, msg.task_id, msg.attempt, tuple(trees)))
            assert await liar.closed()
        _, task = await start_worker(master, "honest")
        await fit
        assert master.status()["workers_lost"] == 1
        await master.close()
        await task
    assert_same_forest(forest, RandomForestClassifier(n_estimators=3, random_state=6).fit(X, y))


@pytest.mark.asyncio
async def test_cancelling_a_fit_cancels_its_tasks_on_the_workers() -> None:
    X, y = small_data(n=100, d=3, seed=17)
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        Master(token=TOKEN) as master,
        FakeWorker(master.port, "w", slots=2) as fake,
    ):
        forest = RandomForestClassifier(n_estimators=4)
        fit = asyncio.ensure_future(master.fit(forest, X, y, task_size=1))
        task = await next_task(fake)
        fit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fit
        while not isinstance(msg := await fake.recv(), Cancel):
            pass
        assert msg.job_id == task.job_id and task.task_id in (msg.task_ids or ())
        assert not hasattr(forest, "trees_")
        assert master.status()["jobs"] == {}


@pytest.mark.asyncio
async def test_closing_the_master_fails_running_fits_and_says_bye() -> None:
    X, y = small_data(n=100, d=3, seed=18)
    async with asyncio.timeout(TEST_TIMEOUT):
        master = await Master(token=TOKEN).start()
        async with FakeWorker(master.port, "w") as fake:
            fit = asyncio.ensure_future(master.fit(RandomForestClassifier(n_estimators=2), X, y))
            await next_task(fake)
            await master.close()
            with pytest.raises(ClusterClosed):
                await fit
            while not isinstance(msg := await fake.recv(), Bye):
                pass
            assert "shutting down" in msg.reason
        with pytest.raises(ClusterClosed):
            await master.fit(RandomForestClassifier(), X, y)


@pytest.mark.asyncio
async def test_registration_rules() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN) as master:
        # Another protocol version is refused with a reason.
        conn = await open_connection(HOST, master.port, token=TOKEN)
        await conn.send(Register("old", 1, version=99).to_message())
        bye = decode(await conn.recv())
        assert isinstance(bye, Bye) and "version 99" in bye.reason
        await conn.aclose(flush=False)
        # Something other than register first: the connection is dropped.
        conn = await open_connection(HOST, master.port, token=TOKEN)
        await conn.send(Heartbeat(0, 0, 1).to_message())
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await conn.aclose(flush=False)
        # Duplicate names get a suffix.
        async with FakeWorker(master.port, "same") as a, FakeWorker(master.port, "same") as b:
            assert a.welcome is not None and b.welcome is not None
            assert (a.welcome.name, b.welcome.name) == ("same", "same#2")
            assert master.workers == ["same", "same#2"]
        # A wrong token is counted and refused.
        with pytest.raises(Exception, match="rejected our authentication"):
            await open_connection(HOST, master.port, token=b"wrong")
        assert master.status()["auth_failures"] == 1


# --------------------------------------------------------------------------- setup, status


def test_refuses_a_non_loopback_bind_without_a_token() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        with pytest.raises(ValueError, match="without a token"):
            Master(host)
        Master(host, token=TOKEN)  # fine with a token
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        Master(host)
    with pytest.raises(ValueError, match="heartbeat"):
        Master(heartbeat_interval=5, heartbeat_timeout=5)


@pytest.mark.asyncio
async def test_status_reports_workers_tasks_and_bytes() -> None:
    X, y = small_data(n=500, d=6, seed=19)
    async with cluster(2) as (master, _):
        await master.fit(RandomForestClassifier(n_estimators=8, random_state=3), X, y)
        status = master.status()
    assert status["address"] == f"127.0.0.1:{master.port}"
    assert set(status["workers"]) == {"w0", "w1"}
    for info in status["workers"].values():
        assert info["slots"] == 1 and info["outstanding"] == 0
        assert info["datasets_received"] == 1
        assert set(info["load"]) <= {"running", "queued", "free"}
    assert status["tasks"]["queued"] == status["tasks"]["running"] == 0
    b = status["bytes"]
    assert 0 < b["sent_wire"] < b["sent_raw"]  # codes compress
    assert 0 < b["received_wire"] <= b["received_raw"]


@pytest.mark.asyncio
async def test_an_embedded_master_leaves_the_event_loop_free() -> None:
    X, y = small_data(n=3000, d=8, seed=20)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    seen: list[int] = []
    async with cluster(1) as (master, _):
        tick_task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        start = ticks
        forest = RandomForestClassifier(n_estimators=6, random_state=2)
        await master.fit(forest, X, y, task_size=1, on_progress=lambda p: seen.append(ticks))
        stop.set()
        await tick_task
    # The ticker ran before the first tree arrived (binning, hashing and sending happen
    # off the loop or between its turns) and kept running between trees.
    assert seen[0] > start
    assert seen[-1] > seen[0]
    assert len(seen) == 6


@pytest.mark.asyncio
async def test_the_master_sends_heartbeats_and_announces_its_timeout() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Master(
        token=TOKEN, heartbeat_interval=0.05, heartbeat_timeout=0.5
    ) as master, FakeWorker(master.port, "w") as fake:
        assert fake.welcome is not None and fake.welcome.heartbeat_timeout == 0.5
        assert fake.conn is not None
        for _ in range(3):  # an idle master still says it is alive, every interval
            assert decode(await fake.conn.recv()) == Heartbeat(0, 0, 0)
