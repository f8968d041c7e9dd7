"""Fault injection: crashed, frozen, cut-off, slow and poisonous workers, a killed master.

Every scenario checks the one thing that matters most: the forest is bit-identical to a
failure-free fit with the same seed, no tree lost and none accepted twice. The real-process
tests kill, stop and slow down actual ``python -m aioforest.worker`` processes (and, for the
resume test, the ``python -m aioforest.master`` process itself); each is bounded by a
timeout and stops by itself. Timing is never asserted: how *fast* the cluster recovers is
measured by ``benchmarks/bench_faults.py``.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cluster_helpers import (
    HOST,
    TEST_TIMEOUT,
    TOKEN,
    FakeWorker,
    finish,
    in_process_cluster,
    processes,
    python_env,
    small_data,
    step_until,
)
from forest_helpers import assert_same_forest

from aioforest import FitProgress, RandomForestClassifier, load, read_csv
from aioforest.cluster import CheckpointError, JobFailedError, LocalCluster, Master, Worker
from aioforest.cluster._protocol import Cancel, Result, Task
from aioforest.testing import ChaosProxy

#: Real-process scenarios get more time: several processes start, die and reconnect.
FAULT_TIMEOUT = 120.0


def fault_data(n: int = 6000, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy data that grows deep trees: each tree takes tens of milliseconds to fit."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=n) > 0).astype(np.int64)
    return X, y + (X[:, 3] > 1)


def reference(n_trees: int, seed: int, X: np.ndarray, y: np.ndarray) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=n_trees, random_state=seed).fit(X, y)


def busy_worker(master: Master) -> str:
    """A worker that is running a task right now (by its last heartbeat) or holds one."""
    workers = master.status()["workers"]
    running = [n for n, w in workers.items() if w["load"].get("running", 0) > 0]
    holding = [n for n, w in workers.items() if w["outstanding"] > 0]
    assert running or holding, workers
    return sorted(running or holding)[0]


def pid_of(cluster: LocalCluster, name: str) -> int:
    return cluster.processes[int(name.rsplit("-", 1)[1]) - 1].pid


# --------------------------------------------------------------------- 1. kill -9 a worker


@pytest.mark.asyncio
async def test_1_kill_9_a_worker_mid_task_gives_the_failure_free_model() -> None:
    X, y = fault_data()
    n_trees, seed = 24, 11
    killed: list[str] = []
    async with asyncio.timeout(FAULT_TIMEOUT), LocalCluster(2) as cluster:
        master = cluster.master

        def kill_a_busy_worker(p: FitProgress) -> None:
            if not killed:
                killed.append(busy_worker(master))
                os.kill(pid_of(cluster, killed[0]), signal.SIGKILL)

        forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed)
        await master.fit(forest, X, y, task_size=1, on_progress=kill_a_busy_worker)
        status = master.status()
    assert status["workers_lost"] == 1 and killed[0] not in status["workers"]
    assert status["retries"] >= 1  # its tasks were redone elsewhere
    assert status["trees_fitted"] == n_trees  # none lost, none accepted twice
    assert_same_forest(forest, reference(n_trees, seed, X, y))


# --------------------------------------------------------------------- 2. SIGSTOP / SIGCONT


@pytest.mark.asyncio
async def test_2_a_frozen_worker_is_dropped_its_tasks_redone_and_it_comes_back() -> None:
    X, y = fault_data()
    n_trees, seed = 20, 12
    frozen: list[int] = []
    async with asyncio.timeout(FAULT_TIMEOUT), LocalCluster(
        2, heartbeat_interval=0.2, heartbeat_timeout=2.0, backup_factor=None
    ) as cluster:
        master = cluster.master

        def freeze_a_busy_worker(p: FitProgress) -> None:
            if not frozen:
                frozen.append(pid_of(cluster, busy_worker(master)))
                os.kill(frozen[0], signal.SIGSTOP)

        forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed)
        try:
            await master.fit(forest, X, y, task_size=1, on_progress=freeze_a_busy_worker)
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        status = master.status()
        assert status["workers_lost"] == 1 and len(status["workers"]) == 1
        assert status["retries"] >= 1
        assert status["trees_fitted"] == n_trees
        # Thawed, the worker finds its connection gone, drops what it was doing and
        # reconnects; the master recognises the same process (no crash to count).
        await master.wait_for_workers(2)
        logs = "\n".join(line for tail in cluster.worker_stderr for line in tail)
        # (It sees either the closed connection or, its timer having run out while it was
        # stopped, the master's silence.)
        assert re.search(r"lost the master|the master at \S+ sent nothing", logs), logs
        # A second fit uses both workers again and still matches.
        again = RandomForestClassifier(n_estimators=6, random_state=seed)
        await master.fit(again, X, y, task_size=1)
        assert master.status()["trees_fitted"] == n_trees + 6
    assert_same_forest(forest, reference(n_trees, seed, X, y))
    assert_same_forest(again, reference(6, seed, X, y))


# --------------------------------------------------------------------- 3. chaos proxy


@pytest.mark.asyncio
async def test_3_cutting_a_random_worker_connection_every_half_second() -> None:
    X, y = fault_data(n=8000)
    n_trees, seed = 30, 13
    rng = random.Random(3)  # which connection to cut: reproducible
    async with asyncio.timeout(FAULT_TIMEOUT), Master(token=TOKEN) as master, \
            ChaosProxy(master.port) as proxy, processes() as procs:
        for i in range(2):
            await procs.spawn(
                "-m", "aioforest.worker", "--connect", f"{HOST}:{proxy.port}",
                "--processes", "1", "--name", f"chaos-{i}",
                env=python_env(AIOFOREST_TOKEN=TOKEN.decode()),
            )
        await master.wait_for_workers(2)
        forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed)
        fit = asyncio.ensure_future(master.fit(forest, X, y, task_size=1))
        await proxy.cut_until(fit, rng)
        status = master.status()
    assert proxy.cuts >= 1
    assert status["workers_lost"] >= 1
    assert status["trees_fitted"] == n_trees  # nothing doubled...
    assert_same_forest(forest, reference(n_trees, seed, X, y))  # ...nothing lost


# --------------------------------------------------------------------- 4. kill -9 the master


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.mark.asyncio
async def test_4_kill_9_the_master_and_resume_from_its_checkpoint(tmp_path: Path) -> None:
    X, y = fault_data(n=6000)
    n_trees, seed = 40, 14
    data = tmp_path / "data.csv"
    header = ",".join([*(f"f{i}" for i in range(X.shape[1])), "label"])
    rows = np.column_stack([X, y])
    np.savetxt(data, rows, delimiter=",", header=header, comments="", fmt="%.17g")
    ckpt, model = tmp_path / "ckpt", tmp_path / "model.aiof"
    port = free_port()
    env = python_env(AIOFOREST_TOKEN=TOKEN.decode())
    master_args = [
        "-m", "aioforest.master", "--data", str(data), "--trees", str(n_trees),
        "--seed", str(seed), "--workers", "2", "--port", str(port), "--task-size", "1",
        "--checkpoint-dir", str(ckpt), "--out", str(model), "--quiet",
    ]
    async with asyncio.timeout(FAULT_TIMEOUT), processes() as procs:
        first = await procs.spawn(*master_args, env=env)
        workers = [
            await procs.spawn("-m", "aioforest.worker", "--connect", f"{HOST}:{port}",
                              "--processes", "1", "--name", f"w{i}", env=env)
            for i in range(2)
        ]
        # Kill the master as soon as a few trees are on disk.
        while len(list(ckpt.glob("tree-*.aiof"))) < 3:
            assert first.returncode is None, await finish(first)
            await asyncio.sleep(0.01)
        first.kill()
        await first.wait()
        saved = len(list(ckpt.glob("tree-*.aiof")))
        assert 3 <= saved < n_trees
        second = await procs.spawn(*master_args, "--resume", env=env)
        code, out, err = await finish(second)
        assert code == 0, err
        for w in workers:  # the restarted master says bye at the end
            wcode, _, werr = await finish(w)
            assert wcode == 0, werr
    assert f"checkpoint {ckpt}: {saved} trees resumed, {n_trees - saved} fitted" in out
    # The workers reconnected and offered the data they cached: nothing was sent again.
    assert "datasets sent: 0" in out
    local = RandomForestClassifier(n_estimators=n_trees, random_state=seed)
    local.fit(read_csv(data))
    assert_same_forest(load(model), local)


@pytest.mark.asyncio
async def test_checkpoint_resume_in_process_refits_only_missing_trees(tmp_path: Path) -> None:
    X, y = small_data(n=400, d=6, seed=21)
    n_trees, seed = 12, 5
    ckpt = tmp_path / "ckpt"
    async with in_process_cluster(2) as (master, _):
        forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed)
        fit: asyncio.Future[Any] | None = None

        def stop_after_four(p: FitProgress) -> None:
            if p.done == 4:
                assert fit is not None
                fit.cancel()  # as if the master died here

        fit = asyncio.ensure_future(master.fit(
            forest, X, y, task_size=1, on_progress=stop_after_four, checkpoint_dir=ckpt
        ))
        with pytest.raises(asyncio.CancelledError):
            await fit
        saved = len(list(ckpt.glob("tree-*.aiof")))
        assert 4 <= saved < n_trees
        with pytest.raises(CheckpointError, match="already holds a checkpoint"):
            await master.fit(RandomForestClassifier(n_estimators=n_trees, random_state=seed),
                             X, y, checkpoint_dir=ckpt, resume="new")
        with pytest.raises(CheckpointError, match="random_state"):
            await master.fit(RandomForestClassifier(n_estimators=n_trees, random_state=6),
                             X, y, checkpoint_dir=ckpt)
        before = master.status()["trees_fitted"]
        resumed = RandomForestClassifier(n_estimators=n_trees, random_state=seed)
        await master.fit(resumed, X, y, task_size=1, checkpoint_dir=ckpt, resume="require")
        status = master.status()
        assert status["trees_resumed"] == saved
        assert status["trees_fitted"] - before == n_trees - saved
    assert len(list(ckpt.glob("tree-*.aiof"))) == n_trees
    assert_same_forest(resumed, reference(n_trees, seed, X, y))


# --------------------------------------------------------------------- 5. a 5x slower worker


@pytest.mark.asyncio
async def test_5_a_five_times_slower_worker_gets_backup_copies() -> None:
    X, y = fault_data()
    n_trees, seed = 24, 15
    async with asyncio.timeout(FAULT_TIMEOUT), LocalCluster(
        2, worker_args=[[], ["--inject-fault", "slowdown=5"]], backup_min_seconds=0.0
    ) as cluster:
        forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed)
        await cluster.master.fit(forest, X, y, task_size=1)
        status = cluster.master.status()
    assert status["backups"] >= 1 and status["backups_won"] >= 1
    assert status["workers_lost"] == 0
    assert status["trees_fitted"] == n_trees  # the losing copies were discarded
    assert_same_forest(forest, reference(n_trees, seed, X, y))


@pytest.mark.asyncio
async def test_backup_wins_the_original_is_cancelled_and_its_late_result_discarded() -> None:
    X, y = small_data(n=300, d=5, seed=22)
    n_trees = 6
    async with asyncio.timeout(TEST_TIMEOUT), Master(
        token=TOKEN, prefetch=0, backup_min_seconds=0.0
    ) as master, FakeWorker(master.port, "slow") as slow:
        forest = RandomForestClassifier(n_estimators=n_trees, random_state=4)
        fit = asyncio.ensure_future(master.fit(forest, X, y, task_size=1))
        held: Task | None = None
        while held is None:
            msg = await slow.recv()
            if isinstance(msg, Task):
                held = msg
        fast = Worker(HOST, master.port, TOKEN, processes=1, name="fast")
        fast_run = asyncio.ensure_future(fast.run())
        await fit  # the fast worker did every task, the held one as a backup copy
        status = master.status()
        assert status["backups"] == 1 and status["backups_won"] == 1
        assert status["tasks_done_by_worker"] == {"slow": 0, "fast": n_trees}
        cancel = await slow.recv()
        assert cancel == Cancel(held.job_id, (held.task_id,))
        # The slow copy answers anyway (say the cancel crossed its result): discarded.
        local = reference(n_trees, 4, X, y)
        late = tuple(local.trees_[i] for i in held.indices)
        await slow.send(Result(held.job_id, held.task_id, held.attempt, late))
        await step_until(lambda: master.status()["discarded_results"] == 1)
        assert master.status()["trees_fitted"] == n_trees
        await master.close()
        await fast_run
    assert_same_forest(forest, local)


# --------------------------------------------------------------------- 6. a poison task


@pytest.mark.asyncio
async def test_6_a_task_that_kills_every_worker_fails_the_job_after_max_attempts() -> None:
    X, y = fault_data(n=2000)
    crash = ["--inject-fault", "crash-on-tree=5"]
    async with asyncio.timeout(FAULT_TIMEOUT), LocalCluster(
        3, worker_args=[crash] * 3, max_attempts=3
    ) as cluster:
        forest = RandomForestClassifier(n_estimators=12, random_state=16)
        with pytest.raises(JobFailedError) as info:
            await cluster.master.fit(forest, X, y, task_size=1)
        status = cluster.master.status()
        codes = await asyncio.gather(*(p.wait() for p in cluster.processes))
    error = info.value
    assert 5 in error.trees and error.task_id is not None
    message = str(error)
    assert f"task {error.task_id} was running on 3 workers when they died" in message
    assert "max_attempts=3" in message and re.search(r"its trees: [\d, -]*\b5\b", message)
    assert status["workers_lost"] == 3
    assert codes == [-signal.SIGKILL] * 3


# --------------------------------------------------------------------- long chaos (slow)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_churn_kills_cuts_and_newcomers_for_a_long_job() -> None:
    """dask's test_stress_creation_and_deletion and test_chaos, combined: for a whole job,
    every few trees received either a random worker is SIGKILLed and replaced by a new
    process, or a random connection is cut (the first two: one of each); the forest still
    equals the failure-free one. Driven by the job's progress, not by the clock, so a fast
    machine cannot finish the job before the chaos starts."""
    X, y = fault_data(n=6000)
    n_trees, seed = 48, 17
    rng = random.Random(5)
    env = python_env(AIOFOREST_TOKEN=TOKEN.decode())
    async with asyncio.timeout(4 * FAULT_TIMEOUT), Master(
        token=TOKEN, max_attempts=1000
    ) as master, ChaosProxy(master.port) as proxy, processes() as procs:
        live: list[asyncio.subprocess.Process] = []

        async def spawn() -> None:
            live.append(await procs.spawn(
                "-m", "aioforest.worker", "--connect", f"{HOST}:{proxy.port}",
                "--processes", "1", env=env,
            ))

        for _ in range(3):
            await spawn()
        await master.wait_for_workers(3)
        forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed)
        received: asyncio.Queue[int] = asyncio.Queue()
        fit = asyncio.ensure_future(master.fit(
            forest, X, y, task_size=1, on_progress=lambda p: received.put_nowait(p.done),
        ))
        kills, actions = 0, 0
        while True:
            next_tree = asyncio.ensure_future(received.get())
            await asyncio.wait([fit, next_tree], return_when=asyncio.FIRST_COMPLETED)
            if not next_tree.done():
                next_tree.cancel()
                break
            if next_tree.result() % 6 != 2 or next_tree.result() >= n_trees:
                continue
            kill = rng.random() < 0.5 if actions >= 2 else actions == 0
            actions += 1
            if kill and live:
                victim = live.pop(rng.randrange(len(live)))
                victim.kill()
                kills += 1
                await spawn()
            else:
                proxy.cut_one(rng)
        await fit
        status = master.status()
    assert kills >= 1 and proxy.cuts >= 1
    assert status["trees_fitted"] == n_trees
    assert_same_forest(forest, reference(n_trees, seed, X, y))
