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

Datasets: ``make_classification(n_samples=100_000, n_features=20, n_informative=10,
n_classes=3, random_state=0)`` fitted on the first 75,000 rows and predicted on the other
25,000; scikit-learn's bundled digits and breast_cancer with a stratified 75/25 split.
Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
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


if __name__ == "__main__":
    main()
