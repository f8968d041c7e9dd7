"""Cluster fits against a local fit, side by side, on one machine.

Data: ``make_classification(n_samples=100_000, n_features=20, n_informative=10, n_classes=3,
random_state=0)``, trained on 75% of the rows; 50 trees. Rows:

* ``local n_jobs=1``     -- ``RandomForestClassifier(n_jobs=1).fit``: the one-process baseline.
* ``local n_jobs=2``     -- ``RandomForestClassifier(n_jobs=2).fit``.
* ``cluster 2x1``        -- ``LocalCluster(2)``: two worker processes with one pool process
  each, talking TCP over loopback (model-parallel; bit-identical to the local fit).
* ``cluster 1x2``        -- ``LocalCluster(1, processes_per_worker=2)``: one worker, two pool
  processes (the network part without a second connection).
* ``cluster 2x1 data``   -- ``LocalCluster(2)``, ``mode="shards"`` with 2 shards.

For each: fit time (best of ``--repeat``), the ratio to the local ``n_jobs=2`` fit, the bytes
the master sent (before compression, on the wire, and the ratio), and the lag of the master's
event loop during the fit (a ticker sleeps 1 ms and records how late it wakes; p50, p99
and max).
Speed is reported, never asserted. The seed project's 4-node figures (3.4x for 10 trees,
3.9x for 50 and 100) are put next to ours as a speedup per worker.

    python benchmarks/bench_cluster.py [--repeat 2] [--trees 50] [--rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from aioforest import RandomForestClassifier
from aioforest.cluster import LocalCluster, Master

#: The seed project's reported speedups on 4 nodes over one node.
SEED_NODES = 4
SEED_SPEEDUPS = {"10 trees": 3.4, "50/100 trees": 3.9}


class LagMeter:
    """How late the event loop wakes a coroutine that asks to sleep 1 ms."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.interval)
            self.lags.append(loop.time() - t - self.interval)

    def __enter__(self) -> LagMeter:
        self._task = asyncio.ensure_future(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def percentiles_ms(self) -> tuple[float, float, float]:
        """p50, p99 and max of the lags, in ms."""
        if not self.lags:
            return (float("nan"),) * 3
        arr = np.asarray(self.lags) * 1000
        return float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), float(arr.max())


def _data(n_rows: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_rows, n_features=20, n_informative=10, n_classes=3, random_state=0
    )
    n_train = int(0.75 * n_rows)
    return X[:n_train], y[:n_train]


def _forest(trees: int, n_jobs: int | None = None) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=n_jobs)


async def _timed_local(
    X: np.ndarray[Any, Any], y: np.ndarray[Any, Any], trees: int, n_jobs: int, repeat: int
) -> dict[str, Any]:
    best = float("inf")
    lag = (float("nan"),) * 3
    for _ in range(repeat):
        forest = _forest(trees, n_jobs)
        with LagMeter() as meter:
            t0 = time.perf_counter()
            # In a thread, as an application would: the loop's lag shows the GIL's share.
            await asyncio.to_thread(forest.fit, X, y)
            elapsed = time.perf_counter() - t0
        if elapsed < best:
            best, lag = elapsed, meter.percentiles_ms()
    return {"time": best, "lag": lag, "bytes": None}


async def _timed_cluster(
    X: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    trees: int,
    repeat: int,
    n_workers: int,
    per_worker: int,
    **fit_options: Any,
) -> dict[str, Any]:
    best = float("inf")
    lag = (float("nan"),) * 3
    sent: tuple[int, int] = (0, 0)
    async with LocalCluster(n_workers, per_worker) as cluster:
        master: Master = cluster.master
        for _ in range(repeat):
            before = master.status()["bytes"]
            forest = _forest(trees)
            with LagMeter() as meter:
                t0 = time.perf_counter()
                await master.fit(forest, X, y, **fit_options)
                elapsed = time.perf_counter() - t0
            after = master.status()["bytes"]
            if elapsed < best:
                best, lag = elapsed, meter.percentiles_ms()
            if not any(sent):  # the first fit ships the dataset; later ones find it cached
                sent = (
                    after["sent_raw"] - before["sent_raw"],
                    after["sent_wire"] - before["sent_wire"],
                )
    return {"time": best, "lag": lag, "bytes": sent}


def _mib(n: int) -> str:
    return f"{n / 2**20:8.2f}"


async def _main(args: argparse.Namespace) -> None:
    X, y = _data(args.rows)
    cores = os.cpu_count()
    print(
        f"bench_cluster: {X.shape[0]} training rows x {X.shape[1]} features, 3 classes, "
        f"{args.trees} trees, best of {args.repeat}; this machine has {cores} cores, so at "
        "most 2 processes fit trees at once in every row below."
    )
    runs: list[tuple[str, int, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("local n_jobs=1", 1, lambda: _timed_local(X, y, args.trees, 1, args.repeat)),
        ("local n_jobs=2", 1, lambda: _timed_local(X, y, args.trees, 2, args.repeat)),
        ("cluster 2x1", 2, lambda: _timed_cluster(X, y, args.trees, args.repeat, 2, 1)),
        ("cluster 1x2", 1, lambda: _timed_cluster(X, y, args.trees, args.repeat, 1, 2)),
        ("cluster 2x1 data", 2, lambda: _timed_cluster(
            X, y, args.trees, args.repeat, 2, 1, mode="shards", n_shards=2)),
    ]
    results: dict[str, dict[str, Any]] = {}
    for name, _, run in runs:
        results[name] = await run()
    base2 = results["local n_jobs=2"]["time"]
    base1 = results["local n_jobs=1"]["time"]
    print()
    print(f"{'setup':<18} {'fit s':>7} {'/local2':>8} {'speedup':>8} {'per wkr':>8} "
          f"{'raw MiB':>8} {'wire MiB':>8} {'compr':>6} {'lag p50':>8} {'lag p99':>8} "
          f"{'lag max':>8}")
    for name, workers, _ in runs:
        r = results[name]
        speedup = base1 / r["time"]
        if r["bytes"] is None:
            raw = wire = "       -"
            ratio = "     -"
        else:
            raw, wire = _mib(r["bytes"][0]), _mib(r["bytes"][1])
            ratio = f"{r['bytes'][0] / max(r['bytes'][1], 1):6.2f}"
        p50, p99, top = r["lag"]
        print(
            f"{name:<18} {r['time']:7.2f} {r['time'] / base2:8.2f} {speedup:7.2f}x "
            f"{speedup / workers:7.2f}x {raw} {wire} {ratio} {p50:7.2f}ms {p99:7.2f}ms {top:7.2f}ms"
        )
    print()
    print("speedup = local n_jobs=1 time / this time; per wkr = speedup / workers "
          "(a worker here has one core's share).")
    for label, s in SEED_SPEEDUPS.items():
        print(f"seed figures, {SEED_NODES} nodes, {label}: {s}x = {s / SEED_NODES:.2f}x per node")
    ours = base1 / results["cluster 2x1"]["time"] / 2
    print(
        f"ours, 2 workers x 1 process on {cores} cores: {ours:.2f}x per worker "
        "(the seed's nodes each had their own machine; ours share two cores with the master)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
