"""Fit a forest on a Dask cluster, both modes, and predict on a dask array.

    pip install 'aioforest[dask]'
    python examples/dask_fit.py [--scheduler tcp://host:8786]

Without ``--scheduler`` it starts a ``distributed.LocalCluster`` of 2 worker processes.
The data is generated on the workers, chunk by chunk, so it never passes through here.
"""

from __future__ import annotations

import argparse

import numpy as np


def chunk(k: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(k)
    X = rng.normal(size=(rows, 10))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scheduler", default=None)
    args = parser.parse_args()

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    import aioforest

    cluster = None if args.scheduler else LocalCluster(n_workers=2, threads_per_worker=1,
                                                       dashboard_address=None)
    with Client(args.scheduler or cluster) as client:
        parts = [dask.delayed(chunk)(k, 50_000) for k in range(4)]
        X = da.concatenate([da.from_delayed(p[0], (50_000, 10), np.float64) for p in parts])
        y = da.concatenate([da.from_delayed(p[1], (50_000,), np.int64) for p in parts])
        X, y = client.persist(X), client.persist(y)  # the rows stay on the workers

        for mode in ("model", "data"):
            forest = aioforest.RandomForestClassifier(n_estimators=20, random_state=0)
            forest.fit(X, y, cluster=client, mode=mode,
                       on_progress=lambda p, m=mode: print(
                           f"\r{m}: {p.done}/{p.total} trees", end=""))
            print()
        labels = forest.predict(X[:1000])  # a dask array, computed on the workers
        print("accuracy on the first 1000 rows:",
              float((labels == y[:1000]).mean().compute()))
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main()
