"""aioforest on Dask against scikit-learn on Dask and against our own TCP cluster.

One ``distributed.LocalCluster`` of 2 worker processes with 1 thread each (the issue's
setup) serves every Dask row; our ``LocalCluster(2)`` (one pool process per worker) is
started for its own row only, so the two never compete for the 2 cores. Rows:

* ``sklearn on dask``   -- ``RandomForestClassifier(n_jobs=-1)`` under
  ``joblib.parallel_backend("dask", scatter=[X, y])``: the anchor.
* ``aioforest dask model`` / ``aioforest dask data`` -- ``forest.fit(X, y,
  cluster=client, mode=...)``.
* ``aioforest TCP cluster`` -- ``await LocalCluster(2).master.fit(forest, X, y)``.

Data:

* ``100k``: ``make_classification(100_000, 20, n_informative=10, n_classes=3,
  random_state=0)``, the numpy arrays given as they are (aioforest scatters them once).
* ``1M``: 1,000,000 x 20 as a dask array in 8 chunks, generated on the workers (chunk
  ``k`` from seed ``k``; three classes from a noisy nonlinear score), so the client never
  holds it while aioforest fits; the anchors then get it computed to numpy.

Columns: fit time (best of ``--repeat``), the ratio to scikit-learn on Dask and to our TCP
cluster, accuracy on a held-out 20% of the rows, whether the forest equals the local fit
(aioforest rows), and for aioforest on Dask the client's peak memory during the fit
(VmHWM after resetting it through ``/proc/self/clear_refs``) as a share of the data's
size. Speed is reported, never asserted.

    python benchmarks/bench_dask.py [--sizes 100k,1M] [--trees 50] [--trees-1m 20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _peak_reset() -> int:
    """Reset this process's peak RSS; return the RSS now (bytes)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _block(k: int, rows: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(k)
    X = rng.normal(size=(rows, d))
    score = X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 0.5 * X[:, 3] ** 2 + 0.3 * X[:, 4:10].sum(1)
    score += rng.normal(scale=0.5, size=rows)
    y = np.digitize(score, [-0.7, 0.4])
    return X, y


def _dask_million(n: int, d: int, chunks: int) -> tuple[Any, Any]:
    import dask
    import dask.array as da

    rows = n // chunks
    blocks = [dask.delayed(_block)(k, rows, d) for k in range(chunks)]
    X = da.concatenate([da.from_delayed(b[0], (rows, d), np.float64) for b in blocks])
    y = da.concatenate([da.from_delayed(b[1], (rows,), np.int64) for b in blocks])
    return X, y


def _best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _same(a: Any, b: Any) -> bool:
    return len(a.trees_) == len(b.trees_) and all(
        ta.arrays().keys() == tb.arrays().keys()
        and all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
                for x, y in zip(ta.arrays().values(), tb.arrays().values(), strict=True))
        for ta, tb in zip(a.trees_, b.trees_, strict=True))


def run_size(client: Any, label: str, trees: int, repeat: int) -> list[dict[str, Any]]:
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier as SkForest

    from aioforest import RandomForestClassifier
    from aioforest.cluster import LocalCluster

    if label == "1M":
        dX, dy = _dask_million(1_000_000, 20, 8)
        fit_X, fit_y = client.persist(dX), client.persist(dy)  # the rows live on the workers
        Xte, yte = _block(99, 100_000, 20)
        data_bytes = 1_000_000 * 20 * 8
    else:
        X, y = make_classification(100_000, 20, n_informative=10, n_classes=3, random_state=0)
        fit_X, fit_y, Xte, yte = X[20_000:], y[20_000:], X[:20_000], y[:20_000]
        data_bytes = fit_X.nbytes
    params = {"n_estimators": trees, "random_state": 0}
    rows: list[dict[str, Any]] = []
    forests: dict[str, Any] = {}
    if label == "1M":  # the client's memory with a model smaller than the rows
        for mode in ("model", "data"):
            before = _peak_reset()
            shallow = RandomForestClassifier(**params, max_depth=10).fit(
                fit_X, fit_y, cluster=client, mode=mode)
            rows.append({"row": f"aioforest dask {mode}, max_depth=10", "seconds": float("nan"),
                         "client_peak": (_status("VmHWM") - before) / data_bytes,
                         "accuracy": float(np.mean(shallow.predict(Xte) == yte))})
    for mode in ("model", "data"):
        before = _peak_reset()
        t, forests[mode] = _best(repeat, lambda m=mode: RandomForestClassifier(**params).fit(
            fit_X, fit_y, cluster=client, mode=m))
        rows.append({"row": f"aioforest dask {mode}", "seconds": t,
                     "client_peak": (_status("VmHWM") - before) / data_bytes,
                     "accuracy": float(np.mean(forests[mode].predict(Xte) == yte))})
    if label == "1M":  # the anchors need the rows here
        Xtr, ytr = client.compute([fit_X, fit_y], sync=True)
    else:
        Xtr, ytr = fit_X, fit_y
    t, local = _best(repeat, lambda: RandomForestClassifier(**params, n_jobs=2).fit(Xtr, ytr))
    rows.append({"row": "aioforest local n_jobs=2 (no cluster)", "seconds": t,
                 "accuracy": float(np.mean(local.predict(Xte) == yte))})
    for mode in ("model", "data"):
        next(r for r in rows if r["row"] == f"aioforest dask {mode}")["identical"] = _same(
            local, forests[mode])

    def sk_fit() -> Any:
        with joblib.parallel_backend("dask", scatter=[Xtr, ytr]):
            return SkForest(n_estimators=trees, n_jobs=-1, random_state=0).fit(Xtr, ytr)

    t, sk = _best(repeat, sk_fit)
    rows.insert(0, {"row": "sklearn on dask", "seconds": t,
                    "accuracy": float(np.mean(sk.predict(Xte) == yte))})

    async def tcp() -> tuple[float, Any]:
        async with LocalCluster(2) as cluster:
            return await _tcp_best(cluster, Xtr, ytr, params, repeat)

    t, tcp_forest = asyncio.run(tcp())
    rows.append({"row": "aioforest TCP cluster", "seconds": t,
                 "accuracy": float(np.mean(tcp_forest.predict(Xte) == yte)),
                 "identical": _same(local, tcp_forest)})
    return rows


async def _tcp_best(cluster: Any, X: Any, y: Any, params: dict[str, Any], repeat: int
                    ) -> tuple[float, Any]:
    from aioforest import RandomForestClassifier

    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = await cluster.master.fit(RandomForestClassifier(**params), X, y)
        best = min(best, time.perf_counter() - t)
    return best, out


def report(label: str, trees: int, rows: list[dict[str, Any]]) -> None:
    sk = next(r["seconds"] for r in rows if r["row"] == "sklearn on dask")
    tcp = next(r["seconds"] for r in rows if r["row"] == "aioforest TCP cluster")
    print(f"\n{label} x 20, {trees} trees, LocalCluster(2 workers x 1 thread)")
    print("| run | fit s | / sklearn on dask | / TCP cluster | accuracy | identical to local "
          "| client peak / data |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        peak = f"{r['client_peak']:.2f}" if "client_peak" in r else ""
        same = {True: "yes", False: "NO"}.get(r.get("identical"), "")  # type: ignore[call-overload]
        timed = r["seconds"] == r["seconds"]  # the memory-only rows are not timed (NaN)
        times = (f"{r['seconds']:.2f} | {r['seconds'] / sk:.2f} | {r['seconds'] / tcp:.2f}"
                 if timed else "– | – | –")
        print(f"| {r['row']} | {times} | {r['accuracy']:.4f} | {same} | {peak} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100k,1M")
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--trees-1m", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as lc, \
            distributed.Client(lc) as client:
        for label in args.sizes.split(","):
            trees = args.trees_1m if label == "1M" else args.trees
            report(label, trees, run_size(client, label, trees, args.repeat))


if __name__ == "__main__":
    main()
