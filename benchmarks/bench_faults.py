"""Fault injection, measured: how much a crash, a flaky network, a master restart or a slow
worker costs a cluster fit, and proof that nothing is lost and the model does not change.

Every scenario trains the same forest (``--trees`` trees, one per task, ``--rows`` x 20
noisy features, fixed seed) on two local worker processes with one pool process each, and
compares it with the failure-free run:

* ``failure-free``            -- ``LocalCluster(2)``, nothing goes wrong (the baseline).
* ``1: kill -9 a worker``     -- SIGKILL a worker that is running a task, once a quarter of
  the trees are in; no replacement: the survivor finishes alone.
* ``3: cut a connection/0.5s``-- the workers reach the master through a proxy that aborts a
  random worker connection every half second; workers reconnect and re-register.
* ``4: kill -9 the master``   -- ``python -m aioforest.master --checkpoint-dir`` with two
  ``python -m aioforest.worker`` processes; the master is SIGKILLed once a quarter of the
  trees are checkpointed and restarted with ``--resume`` (job time: first start to the end
  of the resumed run; compared with the same command-line job run without a kill).
* ``5: one worker 5x slower`` -- one worker holds every result for 4x its fit time
  (``--inject-fault slowdown=5``); with backup copies (the default) and without.

Columns: job time, its ratio to the failure-free run, trees refitted (trees in task copies
started again after a fault: retries and backup copies; for the master restart, the trees
the resumed run fitted, which must equal the ones not checkpointed at the kill), trees lost
(must be 0) and whether the forest is bit-identical to the failure-free one (must be yes).
Speed is reported, never asserted: a shared 2-core machine is noisy.

    python benchmarks/bench_faults.py [--trees 40] [--rows 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aioforest import FitProgress, RandomForestClassifier, load
from aioforest.cluster import LocalCluster, Master
from aioforest.testing import ChaosProxy

SEED = 3
TOKEN = "bench-faults-token"


@dataclass
class Row:
    scenario: str
    seconds: float
    refitted: int | str
    lost: int
    identical: bool
    note: str = ""
    baseline: float | None = None  # what "vs failure-free" divides by (default: row 1)


def _data(n_rows: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, 20))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=n_rows) > 0).astype(np.int64)
    return X, y + (X[:, 3] > 1)


def _same(a: Any, b: Any) -> bool:
    """Bit-identical forests: every array of every tree equal, in order."""
    if len(a.trees_) != len(b.trees_):
        return False
    for ta, tb in zip(a.trees_, b.trees_, strict=True):
        fa, fb = ta.arrays(), tb.arrays()
        if fa.keys() != fb.keys():
            return False
        # Bytes, not values: NaN thresholds (leaves) and -0.0 must match too.
        if not all(
            fa[k].dtype == fb[k].dtype and fa[k].shape == fb[k].shape
            and np.ascontiguousarray(fa[k]).tobytes() == np.ascontiguousarray(fb[k]).tobytes()
            for k in fa
        ):
            return False
    return True


def _forest(trees: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=trees, random_state=SEED)


def _lost(forest: Any, trees: int) -> int:
    return trees - len(forest.trees_)


async def _failure_free(X: Any, y: Any, trees: int) -> tuple[Row, Any]:
    async with LocalCluster(2) as cluster:
        forest = _forest(trees)
        t0 = time.perf_counter()
        await cluster.master.fit(forest, X, y, task_size=1)
        seconds = time.perf_counter() - t0
        refitted = cluster.master.status()["trees_refitted"]
    return Row("failure-free", seconds, refitted, _lost(forest, trees), True), forest


def _busy(master: Master) -> str:
    workers = master.status()["workers"]
    running = [n for n, w in workers.items() if w["load"].get("running", 0) > 0]
    return str(sorted(running or [n for n, w in workers.items() if w["outstanding"] > 0])[0])


async def _kill_worker(X: Any, y: Any, trees: int, ref: Any) -> Row:
    async with LocalCluster(2) as cluster:
        master = cluster.master
        killed: list[str] = []

        def kill(p: FitProgress) -> None:
            if not killed and p.done >= trees // 4:
                killed.append(_busy(master))
                index = int(killed[0].rsplit("-", 1)[1]) - 1
                os.kill(cluster.processes[index].pid, signal.SIGKILL)

        forest = _forest(trees)
        t0 = time.perf_counter()
        await master.fit(forest, X, y, task_size=1, on_progress=kill)
        seconds = time.perf_counter() - t0
        status = master.status()
    return Row("1: kill -9 a worker mid-task", seconds, status["trees_refitted"],
               _lost(forest, trees), _same(forest, ref), "survivor finishes alone")


async def _cut_connections(X: Any, y: Any, trees: int, ref: Any) -> Row:
    env = dict(os.environ, AIOFOREST_TOKEN=TOKEN)
    rng = random.Random(1)
    async with Master(token=TOKEN) as master, ChaosProxy(master.port) as proxy:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "aioforest.worker", "--connect",
                f"127.0.0.1:{proxy.port}", "--processes", "1", "--name", f"chaos-{i}",
                env=env, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            for i in range(2)
        ]
        try:
            await master.wait_for_workers(2, timeout=60)
            forest = _forest(trees)
            t0 = time.perf_counter()
            fit = asyncio.ensure_future(master.fit(forest, X, y, task_size=1))
            await proxy.cut_until(fit, rng)
            seconds = time.perf_counter() - t0
            status = master.status()
        finally:
            await master.close()
            for p in procs:
                try:
                    await asyncio.wait_for(p.wait(), 10)
                except TimeoutError:
                    p.kill()
                    await p.wait()
    return Row("3: cut a worker connection every 0.5 s", seconds, status["trees_refitted"],
               _lost(forest, trees), _same(forest, ref), f"{proxy.cuts} connections cut")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _cli_job(
    workdir: Path, csv: Path, trees: int, kill_at: int | None
) -> tuple[float, Any, str, int]:
    """Run the command-line master + 2 workers; optionally kill -9 and resume the master.

    Returns (seconds, forest, the final master's stdout, trees checkpointed at the kill).
    """
    port = _free_port()
    ckpt = workdir / f"ckpt-{kill_at}"
    model = workdir / f"model-{kill_at}.aiof"
    env = dict(os.environ, AIOFOREST_TOKEN=TOKEN)
    args = [
        sys.executable, "-m", "aioforest.master", "--data", str(csv), "--trees", str(trees),
        "--seed", str(SEED), "--workers", "2", "--port", str(port), "--task-size", "1",
        "--checkpoint-dir", str(ckpt), "--out", str(model), "--quiet",
    ]
    pipe = asyncio.subprocess.PIPE
    t0 = time.perf_counter()
    master = await asyncio.create_subprocess_exec(*args, env=env, stdout=pipe, stderr=pipe)
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aioforest.worker", "--connect", f"127.0.0.1:{port}",
            "--processes", "1", env=env, stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,  # "lost the master" warnings, by design
        )
        for _ in range(2)
    ]
    saved = 0
    if kill_at is not None:
        while len(list(ckpt.glob("tree-*.aiof"))) < kill_at:
            if master.returncode is not None:
                raise RuntimeError("the master ended before the kill")
            await asyncio.sleep(0.005)
        master.kill()
        await master.wait()
        saved = len(list(ckpt.glob("tree-*.aiof")))
        master = await asyncio.create_subprocess_exec(
            *args, "--resume", env=env, stdout=pipe, stderr=pipe
        )
    out, err = await master.communicate()
    seconds = time.perf_counter() - t0
    if master.returncode != 0:
        raise RuntimeError(f"master failed: {err.decode()}")
    for w in workers:
        await w.wait()
    return seconds, load(model), out.decode(), saved


async def _kill_master(X: Any, y: Any, trees: int, ref: Any) -> tuple[Row, Row]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv = work / "data.csv"
        header = ",".join([*(f"f{i}" for i in range(X.shape[1])), "label"])
        np.savetxt(csv, np.column_stack([X, y]), delimiter=",", header=header, comments="",
                   fmt="%.17g")
        base_s, base_forest, _, _ = await _cli_job(work, csv, trees, None)
        seconds, forest, out, saved = await _cli_job(work, csv, trees, max(1, trees // 4))
    fitted = trees - saved
    line = next((ln for ln in out.splitlines() if "trees resumed" in ln), "")
    ok = f"{saved} trees resumed, {fitted} fitted" in line
    base = Row("4: (command line, no kill)", base_s, 0, _lost(base_forest, trees),
               _same(base_forest, ref), "the same CLI job without a kill", base_s)
    row = Row("4: kill -9 the master, --resume", seconds, fitted, _lost(forest, trees),
              _same(forest, ref),
              f"{saved} trees saved at the kill; resumed run fitted the other {fitted}"
              + ("" if ok else f" (unexpected output: {line!r})"), base_s)
    return base, row


async def _slow_worker(X: Any, y: Any, trees: int, ref: Any, backups: bool) -> Row:
    options: dict[str, Any] = {"backup_min_seconds": 0.0}
    if not backups:
        options["backup_factor"] = None
    async with LocalCluster(
        2, worker_args=[[], ["--inject-fault", "slowdown=5"]], **options
    ) as cluster:
        forest = _forest(trees)
        t0 = time.perf_counter()
        await cluster.master.fit(forest, X, y, task_size=1)
        seconds = time.perf_counter() - t0
        status = cluster.master.status()
    name = "5: one worker 5x slower" + ("" if backups else ", backups off")
    note = (f"{status['backups']} backups, {status['backups_won']} won" if backups
            else "no backup copies")
    return Row(name, seconds, status["trees_refitted"], _lost(forest, trees),
               _same(forest, ref), note)


def _print(rows: list[Row], base: float) -> None:
    head = (f"{'scenario':<40} {'time s':>7} {'vs failure-free':>15} {'trees refitted':>14} "
            f"{'trees lost':>10} {'model identical':>15}  note")
    print(head)
    print("-" * len(head))
    for r in rows:
        ref = r.baseline or base
        print(f"{r.scenario:<40} {r.seconds:7.2f} {r.seconds / ref:14.2f}x {r.refitted!s:>14} "
              f"{r.lost:>10} {'yes' if r.identical else 'NO':>15}  {r.note}")


async def _main(args: argparse.Namespace) -> None:
    X, y = _data(args.rows)
    trees = args.trees
    print(f"bench_faults: {args.rows} rows x {X.shape[1]} features, {trees} trees (1 per task), "
          f"2 workers x 1 process, seed {SEED}, {os.cpu_count()} cores\n")
    base_row, ref = await _failure_free(X, y, trees)
    rows = [base_row]
    rows.append(await _kill_worker(X, y, trees, ref))
    rows.append(await _cut_connections(X, y, trees, ref))
    cli_base, resumed = await _kill_master(X, y, trees, ref)
    rows += [cli_base, resumed]
    rows.append(await _slow_worker(X, y, trees, ref, backups=True))
    rows.append(await _slow_worker(X, y, trees, ref, backups=False))
    print("(the master-restart rows run the command line, so they are compared with the same "
          "command-line job without a kill; the others with 'failure-free')\n")
    _print(rows, base_row.seconds)
    if any(r.lost or not r.identical for r in rows):
        raise SystemExit("a scenario lost trees or changed the model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=int, default=40)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    from aioforest._runtime import run

    # The master's "lost worker" warnings are the scenarios working as intended.
    logging.getLogger("aioforest").setLevel(logging.ERROR)

    run(_main(args))


if __name__ == "__main__":
    main()
