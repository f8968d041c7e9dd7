"""The worker against a scripted master on loopback: tasks, cache, cancel, leave, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from cluster_helpers import (
    HOST,
    TEST_TIMEOUT,
    TOKEN,
    GatedExecutor,
    ScriptedMaster,
    recv_skipping,
    small_data,
    step_until,
)
from forest_helpers import assert_same_tree

from aioforest import RandomForestClassifier
from aioforest.cluster import Backoff, Worker
from aioforest.cluster._protocol import (
    Bye,
    Cancel,
    DatasetPayload,
    Heartbeat,
    Register,
    Result,
    Task,
    TaskFailed,
    Welcome,
    decode,
)
from aioforest.cluster._worker import DatasetCache
from aioforest.data import Binner
from aioforest.tree._plan import ForestPlan, fit_trees
from aioforest.wire import AuthenticationError, ConnectionClosed


def dataset_and_plan(seed: int = 0) -> tuple[DatasetPayload, ForestPlan, Any]:
    X, y = small_data(n=180, d=5, seed=seed)
    forest = RandomForestClassifier(n_estimators=10, random_state=seed)
    job = forest.fit_job(X, y)
    bins, codes = Binner(255).fit_transform(X)
    return DatasetPayload.build(bins, codes, job.y, None), job.plan, (bins, codes)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``worker`` in a task; on exit make sure it has stopped."""
    task = asyncio.ensure_future(worker.run())
    try:
        yield task
    finally:
        if not task.done():
            worker.stop(drain=False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.wait([task])
            if not task.done():
                task.cancel()
                await asyncio.wait([task])


@pytest.mark.asyncio
async def test_worker_registers_fits_tasks_and_leaves_on_bye() -> None:
    payload, plan, binned = dataset_and_plan(1)
    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        worker = Worker(HOST, master.port, TOKEN, processes=1, name="w-one")
        async with running(worker) as run_task:
            conn, reg = await master.registered()
            assert (reg.name, reg.slots, reg.datasets) == ("w-one", 1, ())
            await conn.send(payload.to_message())
            selectors: list[Any] = [None, (20, 160), np.array([3, 4, 50, 51, 52, 170], np.int64)]
            for task_id, rows in enumerate(selectors):
                task = Task(7, task_id, 0, payload.hash, plan, (0, 3, 5), rows)
                await conn.send(task.to_message())
                res = await recv_skipping(conn, "heartbeat")
                assert isinstance(res, Result)
                assert (res.job_id, res.task_id, res.attempt) == (7, task_id, 0)
                sel = slice(None) if rows is None else (
                    slice(*rows) if isinstance(rows, tuple) else rows
                )
                bins, codes = binned
                expected = fit_trees(plan, bins, codes[:, sel], payload.y[sel], None, [0, 3, 5])
                for got, want in zip(res.trees, expected, strict=True):
                    assert_same_tree(got, want)
            await conn.send(Bye("done").to_message())
            await run_task  # the worker returns after the master's bye
        assert worker.tasks_done == 3
        assert len(worker.cache) == 0  # shared memory freed on exit


@pytest.mark.asyncio
async def test_unknown_dataset_and_bad_rows_are_answered_not_dropped() -> None:
    payload, plan, _ = dataset_and_plan(2)
    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        executor = GatedExecutor()
        executor.gate.set()
        worker = Worker(HOST, master.port, TOKEN, processes=1, executor=executor)
        async with running(worker):
            conn, _ = await master.registered()
            await conn.send(Task(1, 0, 2, "00" * 32, plan, (0,)).to_message())
            failed = await recv_skipping(conn, "heartbeat")
            assert failed == TaskFailed(1, 0, 2, "missing-dataset", failed.detail)
            assert "00" * 32 in failed.detail
            await conn.send(payload.to_message())
            await conn.send(Task(1, 1, 0, payload.hash, plan, (0,), (0, 10_000)).to_message())
            failed = await recv_skipping(conn, "heartbeat")
            assert (failed.reason, failed.task_id) == ("error", 1)
            assert "exceed the dataset's 180 rows" in failed.detail
        executor.shutdown()


@pytest.mark.asyncio
async def test_cancel_drops_queued_tasks_and_heartbeats_report_load() -> None:
    payload, plan, _ = dataset_and_plan(3)
    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        executor = GatedExecutor()
        worker = Worker(HOST, master.port, TOKEN, processes=1, executor=executor)
        async with running(worker):
            conn, _ = await master.registered(heartbeat_interval=0.01)
            await conn.send(payload.to_message())
            for task_id in range(3):
                await conn.send(Task(4, task_id, 0, payload.hash, plan, (task_id,)).to_message())
            # The heartbeat shows one task running (held at the gate) and two queued.
            while True:
                beat = decode(await conn.recv())
                if beat == Heartbeat(running=1, queued=2, free=0):
                    break
            await conn.send(Cancel(4, (1, 2)).to_message())
            answers = {(m.task_id, m.reason) for m in [
                await recv_skipping(conn, "heartbeat"), await recv_skipping(conn, "heartbeat")
            ]}
            assert answers == {(1, "cancelled"), (2, "cancelled")}
            executor.gate.set()
            res = await recv_skipping(conn, "heartbeat")
            assert isinstance(res, Result) and res.task_id == 0
            assert executor.started == 1  # the cancelled tasks never reached the pool
        executor.shutdown()


@pytest.mark.asyncio
async def test_cancel_stops_a_running_task_through_the_shared_board() -> None:
    payload, plan, _ = dataset_and_plan(3)
    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        executor = GatedExecutor()
        worker = Worker(HOST, master.port, TOKEN, processes=1, executor=executor)
        async with running(worker):
            conn, _ = await master.registered(heartbeat_interval=0.01)
            await conn.send(payload.to_message())
            await conn.send(Task(4, 0, 0, payload.hash, plan, (0, 1)).to_message())
            while decode(await conn.recv()) != Heartbeat(running=1, queued=0, free=0):
                pass  # the task is in the "pool", held at the gate
            await conn.send(Cancel(4, (0,)).to_message())
            # The cancel sets the task's byte on the shared board; the fit, once it starts,
            # stops at its first level instead of growing two trees.
            await step_until(lambda: worker.cancelled_running == 1)
            executor.gate.set()
            answer = await recv_skipping(conn, "heartbeat")
            assert isinstance(answer, TaskFailed)
            assert (answer.task_id, answer.reason) == (0, "cancelled")
            assert "while running (cancelled at depth 0)" in answer.detail
            # The slot is free again and its board byte cleared: the next task runs normally.
            await conn.send(Task(4, 1, 0, payload.hash, plan, (2,)).to_message())
            res = await recv_skipping(conn, "heartbeat")
            assert isinstance(res, Result) and res.task_id == 1 and len(res.trees) == 1
        executor.shutdown()


@pytest.mark.asyncio
async def test_stop_reports_running_tasks_then_says_bye() -> None:
    payload, plan, _ = dataset_and_plan(4)
    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        executor = GatedExecutor()
        worker = Worker(HOST, master.port, TOKEN, processes=1, executor=executor)
        async with running(worker) as run_task:
            conn, _ = await master.registered()
            await conn.send(payload.to_message())
            await conn.send(Task(2, 0, 0, payload.hash, plan, (0,)).to_message())
            await conn.send(Task(2, 1, 0, payload.hash, plan, (1,)).to_message())
            await step_until(lambda: executor.started == 1 and worker.queued == 1)
            worker.stop()
            await step_until(lambda: worker.queued == 0)  # handed back (dropped) at once
            executor.gate.set()
            res = await recv_skipping(conn, "heartbeat")
            assert isinstance(res, Result) and res.task_id == 0
            bye = await recv_skipping(conn, "heartbeat")
            assert isinstance(bye, Bye) and "stopping" in bye.reason
            with pytest.raises(ConnectionClosed):
                await recv_skipping(conn, "heartbeat")
            await run_task
        assert executor.started == 1
        executor.shutdown()


@pytest.mark.asyncio
async def test_connection_retries_use_jittered_exponential_backoff() -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        # A bound but not listening port: connections are refused until the master starts.
        sock = socket.socket()
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
        delays: list[float] = []
        master_ready = asyncio.Event()
        masters: list[ScriptedMaster] = []

        async def fake_sleep(delay: float) -> None:
            delays.append(delay)
            if len(delays) == 3:
                sock.close()
                master = ScriptedMaster(port=port)
                await master.__aenter__()
                masters.append(master)
                master_ready.set()

        backoff = Backoff(initial=0.5, maximum=1.5, factor=2.0)
        worker = Worker(
            HOST, port, TOKEN, processes=1, executor=GatedExecutor(),
            backoff=backoff, rng=random.Random(11), sleep=fake_sleep,
        )
        try:
            async with running(worker) as run_task:
                await master_ready.wait()
                conn, _ = await masters[0].registered()
                await conn.send(Bye().to_message())
                await run_task
        finally:
            sock.close()
            for m in masters:
                await m.__aexit__(None, None, None)
        rng = random.Random(11)
        assert delays == [backoff.delay(n, rng) for n in (1, 2, 3)]
        for delay, nominal in zip(delays, (0.5, 1.0, 1.5), strict=True):
            assert nominal / 2 <= delay <= nominal
        assert worker.connect_failures == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("worker_token", [b"not the token", None])
async def test_authentication_failure_is_not_retried(worker_token: bytes | None) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        worker = Worker(
            HOST, master.port, worker_token, processes=1, executor=GatedExecutor(),
            sleep=fake_sleep,
        )
        with pytest.raises(AuthenticationError):
            await worker.run()
        assert isinstance(await master.connections.get(), AuthenticationError)
    assert slept == []


@pytest.mark.asyncio
async def test_gives_up_after_max_attempts() -> None:
    async def fake_sleep(delay: float) -> None:
        pass

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
        worker = Worker(
            HOST, port, TOKEN, processes=1, executor=GatedExecutor(),
            backoff=Backoff(max_attempts=3), sleep=fake_sleep,
        )
        async with asyncio.timeout(TEST_TIMEOUT):
            with pytest.raises(ConnectionError, match=f"{HOST}:{port} after 3 attempts"):
                await worker.run()


@pytest.mark.asyncio
async def test_reconnects_after_losing_the_master_and_reports_its_cache() -> None:
    payload, _, _ = dataset_and_plan(5)

    async def no_sleep(delay: float) -> None:
        pass

    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        worker = Worker(
            HOST, master.port, TOKEN, processes=1, executor=GatedExecutor(), sleep=no_sleep
        )
        async with running(worker) as run_task:
            conn, reg = await master.registered()
            assert reg.datasets == ()
            await conn.send(payload.to_message())
            # A heartbeat after the dataset proves it was stored (messages are handled in order).
            await conn.send(Task(1, 0, 0, "11" * 32, payload_plan(), (0,)).to_message())
            await recv_skipping(conn, "heartbeat")
            conn.abort()  # the master "crashes"
            conn2, reg2 = await master.registered()
            assert reg2 == Register(
                worker.name, 1, (payload.hash,), incarnation=worker.incarnation
            )
            assert reg.incarnation == reg2.incarnation != ""  # same process, same incarnation
            await conn2.send(Bye().to_message())
            await run_task


def payload_plan() -> ForestPlan:
    return dataset_and_plan(0)[1]


@pytest.mark.asyncio
async def test_a_dataset_whose_content_does_not_match_its_hash_drops_the_connection() -> None:
    payload, _, _ = dataset_and_plan(6)
    other, _, _ = dataset_and_plan(7)
    forged = DatasetPayload(
        payload.hash, other.codes, other.y, None, other.n_bins, other.is_categorical, other.edges
    )

    async def no_sleep(delay: float) -> None:
        pass

    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        worker = Worker(
            HOST, master.port, TOKEN, processes=1, executor=GatedExecutor(), sleep=no_sleep
        )
        async with running(worker) as run_task:
            conn, _ = await master.registered()
            await conn.send(forged.to_message())
            with pytest.raises(ConnectionClosed):
                await recv_skipping(conn, "heartbeat")
            conn2, reg = await master.registered()  # it reconnects, without the forged data
            assert reg.datasets == ()
            await conn2.send(Bye().to_message())
            await run_task


def test_dataset_cache_evicts_the_least_recently_used_unpinned_entry() -> None:
    cache = DatasetCache(max_entries=2)
    payloads = [dataset_and_plan(seed)[0] for seed in (10, 11, 12, 13)]
    try:
        cache.put(payloads[0])
        cache.put(payloads[1])
        cache.pin(payloads[0].hash)  # in use, and now the most recently used
        cache.put(payloads[2])
        assert cache.hashes() == (payloads[0].hash, payloads[2].hash)
        cache.put(payloads[3])  # over the limit, but the only evictable one is payloads[2]
        assert cache.hashes() == (payloads[0].hash, payloads[3].hash)
        entry = cache.get(payloads[3].hash)
        # Held row-major (samples x features), the layout the pool's fit_task reads.
        np.testing.assert_array_equal(entry.shared.arrays["codes"], payloads[3].codes.T)
        assert entry.shared.arrays["codes"].flags.c_contiguous
        assert entry.n_rows == payloads[3].n_rows
        cache.unpin(payloads[0].hash)
        cache.put(payloads[1])
        assert cache.hashes() == (payloads[3].hash, payloads[1].hash)
    finally:
        cache.close()
    assert len(cache) == 0


@pytest.mark.asyncio
async def test_a_master_that_keeps_hanging_up_is_retried_with_backoff_then_given_up() -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        worker = Worker(
            HOST, master.port, TOKEN, processes=1, executor=GatedExecutor(),
            backoff=Backoff(initial=0.2, maximum=0.8, max_attempts=3), sleep=fake_sleep,
        )
        run_task = asyncio.ensure_future(worker.run())
        for _ in range(3):
            conn = await master.connection()
            decode(await conn.recv(), expect=("register",))
            conn.abort()  # hang up before the welcome
        with pytest.raises(ConnectionError, match="after 3 attempts"):
            await run_task
    assert len(slept) == 2 and slept[0] <= 0.2 and 0.2 <= slept[1] <= 0.4
    assert worker.sessions == 0


@pytest.mark.asyncio
async def test_a_silent_master_is_left_after_its_heartbeat_timeout_and_reconnected_to() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), ScriptedMaster() as master:
        worker = Worker(HOST, master.port, TOKEN, processes=1, executor=GatedExecutor(),
                        backoff=Backoff(initial=0.01, maximum=0.01))
        async with running(worker) as run_task:
            conn = await master.connection()
            reg = decode(await conn.recv(), expect=("register",))
            # The welcome promises heartbeats within 0.2 s; then the "master" freezes.
            await conn.send(Welcome(reg.name, 0.05, heartbeat_timeout=0.2).to_message())
            conn2, reg2 = await master.registered()  # the worker gave up on it and came back
            assert reg2.incarnation == reg.incarnation
            assert worker.sessions == 1  # the second welcome is still being read
            await conn2.send(Bye().to_message())
            await run_task
        assert worker.sessions == 2
