"""``python -m aioforest``: a short demo on the bundled iris data; ``python -m aioforest
predict ...`` and ``python -m aioforest info ...`` apply and describe a saved model.

Fits a forest on a process pool without blocking the event loop (a ticker keeps running and
a progress line updates per tree), cross-validates GoLearn-style, and prints the results.
"""

from __future__ import annotations

import asyncio
import sys

from . import RandomForestClassifier, cross_validate, cross_validated_metric, read_csv
from ._commands import info_main, predict_main
from ._runtime import run
from .csp import WaitGroup
from .datasets import path
from .evaluation import accuracy, summary


async def _demo() -> None:
    iris = read_csv(path("iris_headers.csv"))
    print(f"iris: {iris.n_samples} rows, features {iris.feature_names}")
    forest = RandomForestClassifier(n_estimators=50, max_features=2, n_jobs=2, random_state=7)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    wg = WaitGroup()
    wg.go(ticker())
    async for p in forest.iter_fit_async(iris):
        print(f"\rtrees {p.done}/{p.total}  {p.trees_per_second:6.1f} trees/s  "
              f"ETA {p.eta:5.2f}s", end="", flush=True)
    done.set()
    await wg.wait()
    print(f"\nthe event loop ran {ticks} ticks while the forest was fitted in the pool")
    matrices = cross_validate(
        RandomForestClassifier(n_estimators=10, max_features=2, random_state=1),
        iris, folds=5, random_state=1,
    )
    mean, var = cross_validated_metric(matrices, accuracy)
    print(summary(sum(matrices[1:], matrices[0])))
    print(f"5-fold cross-validated accuracy: {mean:.4f} (variance {var:.5f})")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "predict":
        return predict_main(args[1:])
    if args and args[0] == "info":
        return info_main(args[1:])
    if args:
        print("usage: python -m aioforest [predict --model M --data FILE [--out F] [--proba] "
              "| info --model M]", file=sys.stderr)
        return 2
    run(_demo())
    return 0


if __name__ == "__main__":
    sys.exit(main())
