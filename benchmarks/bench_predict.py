"""Prediction speed: aioforest's forest against scikit-learn's, on already fitted models.

Both forests have 50 fully grown trees (max_features="sqrt") and are fitted once; then
``predict_proba`` on the test rows is timed ``--repeat`` times, interleaved, and the fastest
run of each is kept (the machines are shared and noisy). scikit-learn predicts with
``n_jobs=2`` threads; aioforest's synchronous ``predict_proba`` uses one process. A third
column prototypes splitting the rows over a pool of two forked processes (the results come
back through shared memory; only row ranges cross the process boundary), to show what a
parallel synchronous predict would gain.

    python benchmarks/bench_predict.py                 # 100k, digits, breast_cancer
    python benchmarks/bench_predict.py --only 100k --repeat 15

Then two latency tables on the 100k forest:

* single-row ``predict_proba``: p50 and p99 over ``--single`` calls, aioforest (one
  process) against scikit-learn with ``n_jobs=1`` and ``n_jobs=2``;
* the event loop's lag while ``await forest.predict_async(X)`` runs on 240k rows (a
  ticker sleeps 1 ms and records how late it wakes: p50, p99 and max), beside the same
  rows predicted by scikit-learn in a thread (``asyncio.to_thread``), as an async
  service would call it. Goal: p99 < 5 ms, max < 50 ms.

Datasets: ``make_classification(n_samples=100_000, n_features=20, n_informative=10,
n_classes=3, random_state=0)`` fitted on the first 75,000 rows and predicted on the other
25,000; scikit-learn's bundled digits and breast_cancer with a stratified 75/25 split.
Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import shared_memory
from typing import Any

import numpy as np

N_TREES = 50

# The pool prototype: forked workers inherit the fitted model and the test rows.
_MODEL: Any = None
_X: np.ndarray[Any, Any] | None = None


def _datasets(names: list[str]) -> dict[str, tuple[Any, ...]]:
    from sklearn.datasets import load_breast_cancer, load_digits, make_classification
    from sklearn.model_selection import train_test_split

    out: dict[str, tuple[Any, ...]] = {}
    for name in names:
        if name == "100k":
            X, y = make_classification(
                n_samples=100_000, n_features=20, n_informative=10, n_classes=3, random_state=0
            )
            out[name] = (X[:75_000], X[75_000:], y[:75_000], y[75_000:])
            continue
        X, y = (load_digits if name == "digits" else load_breast_cancer)(return_X_y=True)
        out[name] = tuple(train_test_split(X, y, test_size=0.25, random_state=0, stratify=y))
    return out


def _best(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Fastest wall time of each function over ``repeat`` interleaved runs."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _predict_rows(name: str, lo: int, hi: int) -> None:
    """Pool task: predict rows [lo, hi) of the inherited test set into shared memory."""
    assert _X is not None
    shm = shared_memory.SharedMemory(name=name)
    try:
        proba = _MODEL.predict_proba(_X[lo:hi])
        out = np.ndarray((_X.shape[0], proba.shape[1]), dtype=np.float64, buffer=shm.buf)
        out[lo:hi] = proba
        del out
    finally:
        shm.close()


class _PoolPredict:
    """``predict_proba`` split into one contiguous row range per process."""

    def __init__(self, model: Any, X: np.ndarray[Any, Any], n_out: int, workers: int) -> None:
        global _MODEL, _X
        _MODEL, _X = model, X
        model.predict_proba(X[:2])  # build the flat forest before forking: workers share it
        self.n_rows = X.shape[0]
        self.workers = workers
        self.shm = shared_memory.SharedMemory(create=True, size=max(X.shape[0] * n_out * 8, 1))
        self.out = np.ndarray((X.shape[0], n_out), dtype=np.float64, buffer=self.shm.buf)
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        self()  # start the workers

    def __call__(self) -> np.ndarray[Any, Any]:
        step = -(-self.n_rows // self.workers)
        futures = [
            self.pool.submit(_predict_rows, self.shm.name, lo, min(lo + step, self.n_rows))
            for lo in range(0, self.n_rows, step)
        ]
        for f in futures:
            f.result()
        return self.out

    def close(self) -> None:
        self.pool.shutdown()
        del self.out
        self.shm.close()
        self.shm.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["100k", "digits", "breast_cancer"])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-pool", action="store_true", help="skip the 2-process prototype")
    parser.add_argument("--single", type=int, default=2000, help="single-row calls timed")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from sklearn.ensemble import RandomForestClassifier as SkForest

    from aioforest.ensemble import RandomForestClassifier

    rows = []
    for name, (X_tr, X_te, y_tr, _) in _datasets(args.only).items():
        ours = RandomForestClassifier(
            n_estimators=N_TREES, max_features="sqrt", random_state=0, n_jobs=1
        ).fit(X_tr, y_tr)
        theirs = SkForest(
            n_estimators=N_TREES, max_features="sqrt", random_state=0, n_jobs=2
        ).fit(X_tr, y_tr)
        fns: dict[str, Callable[[], object]] = {
            "aioforest": partial(ours.predict_proba, X_te),
            "scikit-learn": partial(theirs.predict_proba, X_te),
        }
        pool = None
        if not args.no_pool:
            pool = _PoolPredict(ours, X_te, len(ours.classes_), workers=2)
            fns["aioforest 2 procs"] = pool
        for fn in fns.values():
            fn()  # warm up
        best = _best(fns, args.repeat)
        if pool is not None:
            same = np.array_equal(pool(), ours.predict_proba(X_te))
            pool.close()
            assert same, "the pool prototype must give the single-process result"
        nodes = sum(t.node_count for t in ours.trees_) / N_TREES
        rows.append((name, X_te.shape[0], nodes, best))

    print("| dataset | test rows | nodes/tree | aioforest ms | scikit-learn ms | ratio "
          "| aioforest 2 procs ms | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n_test, nodes, best in rows:
        ours_t, sk_t = best["aioforest"], best["scikit-learn"]
        pool_t = best.get("aioforest 2 procs", float("nan"))
        print(f"| {name} | {n_test} | {nodes:.0f} | {1e3 * ours_t:.1f} | {1e3 * sk_t:.1f} | "
              f"{ours_t / sk_t:.2f} | {1e3 * pool_t:.1f} | {pool_t / sk_t:.2f} |")
    print(f"\n{N_TREES} trees; predict_proba; best of {args.repeat} runs; ratios are "
          "aioforest / scikit-learn (n_jobs=2), lower is better")
    if "100k" in args.only:
        _latency_tables(args.single)


def _latency_tables(n_calls: int) -> None:
    from sklearn.ensemble import RandomForestClassifier as SkForest

    from aioforest.ensemble import RandomForestClassifier

    X_tr, X_te, y_tr, _ = _datasets(["100k"])["100k"]
    ours = RandomForestClassifier(n_estimators=N_TREES, random_state=0, n_jobs=2)
    ours.fit(X_tr, y_tr)
    sk = {j: SkForest(n_estimators=N_TREES, random_state=0, n_jobs=j).fit(X_tr, y_tr)
          for j in (1, 2)}
    calls = {"aioforest": ours.predict_proba, "scikit-learn n_jobs=1": sk[1].predict_proba,
             "scikit-learn n_jobs=2": sk[2].predict_proba}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(n_calls):  # interleaved, one row each
        row = X_te[i % len(X_te)][None, :]
        for name, call in calls.items():
            t0 = time.perf_counter()
            call(row)
            times[name].append(time.perf_counter() - t0)
    print("\n| single-row predict_proba | p50 ms | p99 ms |\n|---|---|---|")
    for name, ts in times.items():
        arr = 1e3 * np.asarray(ts[10:])  # the first calls warm caches up
        print(f"| {name} | {np.percentile(arr, 50):.3f} | {np.percentile(arr, 99):.3f} |")

    X_big = np.concatenate([X_te] * 10)  # 250k rows
    X_big = X_big[:240_000]
    print("\n| 240k rows predicted in an async service | s | loop lag p50 ms | p99 ms | "
          "max ms |\n|---|---|---|---|---|")
    for name, predict in [
        ("await forest.predict_async(X)", lambda: ours.predict_async(X_big)),
        ("scikit-learn n_jobs=2 in asyncio.to_thread",
         lambda: asyncio.to_thread(sk[2].predict, X_big)),
    ]:
        elapsed, lags = asyncio.run(_lagged(predict))
        print(f"| {name} | {elapsed:.2f} | {np.percentile(lags, 50):.2f} | "
              f"{np.percentile(lags, 99):.2f} | {lags.max():.2f} |")


async def _lagged(predict: Callable[[], Any]) -> tuple[float, np.ndarray[Any, Any]]:
    """Seconds of ``await predict()`` (after one warm-up) and the loop's lags meanwhile."""
    await predict()
    lags: list[float] = []
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.001)
            lags.append((loop.time() - t - 0.001) * 1e3)

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    await predict()
    elapsed = time.perf_counter() - t0
    ticker.cancel()
    return elapsed, np.asarray(lags)


if __name__ == "__main__":
    main()
