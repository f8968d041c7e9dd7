"""aioforest's random forest against scikit-learn (and LightGBM's rf mode), side by side.

50 trees, fully grown, ``max_features`` at each library's default ("sqrt" for classifiers,
all features for regressors), the same number of processes/threads for everyone (2 by
default). For each dataset it prints fit and predict time, peak memory, the test score
(accuracy, or R² for the regression datasets), the saved model's size and load time, and
the ratios aioforest / scikit-learn. Speed is reported, never asserted.

    python benchmarks/bench_forest.py                # all datasets
    python benchmarks/bench_forest.py --only 100k    # digits, breast_cancer, 100k, 500k,
                                                     # diabetes, reg100k (make_regression)

Each fit is run ``--repeat`` times and the fastest is kept: the machines are shared and noisy.
Peak memory is the peak PSS (proportional set size: a page shared by k processes counts
1/k in each, so shared memory counts once) above the resting level, summed over the
process and its worker processes, sampled every 10 ms during one fit + predict in a fresh
process, measured the same way for every library. Model size: our model file
(``aioforest.persistence.save``) against a pickle of the scikit-learn model (what joblib
writes); load time is reading it back, best of three.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

N_TREES = 50


REGRESSION = {"diabetes", "reg100k"}
DATASETS = ["digits", "breast_cancer", "100k", "500k", "diabetes", "reg100k"]


def _datasets(names: list[str]) -> dict[str, tuple[Any, ...]]:
    from sklearn.datasets import (
        load_breast_cancer,
        load_diabetes,
        load_digits,
        make_classification,
        make_regression,
    )
    from sklearn.model_selection import train_test_split

    out = {}
    for name in names:
        if name == "digits":
            X, y = load_digits(return_X_y=True)
        elif name == "breast_cancer":
            X, y = load_breast_cancer(return_X_y=True)
        elif name == "diabetes":
            X, y = load_diabetes(return_X_y=True)
        elif name == "reg100k":
            X, y = make_regression(n_samples=100_000, n_features=20, n_informative=10,
                                   noise=10.0, random_state=0)
        else:
            n = {"100k": 100_000, "500k": 500_000}[name]
            X, y = make_classification(
                n_samples=n, n_features=20, n_informative=10, n_classes=3, random_state=0
            )
        stratify = None if name in REGRESSION else y
        out[name] = tuple(train_test_split(X, y, test_size=0.25, random_state=0,
                                           stratify=stratify))
    return out


def _models(n_jobs: int, n_train: int = 100_000, regression: bool = False
            ) -> dict[str, Callable[[], Any]]:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    import aioforest

    if regression:
        return {
            "aioforest": lambda: aioforest.RandomForestRegressor(
                n_estimators=N_TREES, n_jobs=n_jobs, random_state=0),
            "scikit-learn": lambda: RandomForestRegressor(
                n_estimators=N_TREES, n_jobs=n_jobs, random_state=0),
        }
    models: dict[str, Callable[[], Any]] = {
        "aioforest": lambda: aioforest.RandomForestClassifier(
            n_estimators=N_TREES, max_features="sqrt", n_jobs=n_jobs, random_state=0
        ),
        "scikit-learn": lambda: RandomForestClassifier(
            n_estimators=N_TREES, max_features="sqrt", n_jobs=n_jobs, random_state=0
        ),
    }
    try:
        import lightgbm

        models["lightgbm-rf"] = lambda: lightgbm.LGBMClassifier(
            # fully grown: as many leaves as a bootstrap sample can fill (capped for memory)
            boosting_type="rf", n_estimators=N_TREES, max_depth=-1, histogram_pool_size=1024,
            num_leaves=min(max(int(0.632 * n_train), 2), 2**16),
            min_child_samples=1, min_child_weight=1e-5, subsample=0.632, subsample_freq=1,
            colsample_bynode=0.25, n_jobs=n_jobs, random_state=0, verbose=-1,
        )
    except ImportError:
        pass
    return models


def _score(pred: Any, y: Any, regression: bool) -> float:
    if regression:
        return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - np.mean(y)) ** 2))
    return float(np.mean(pred == y))


def _run_once(make: Callable[[], Any], data: tuple[Any, ...], regression: bool = False
              ) -> tuple[float, float, float, Any]:
    X_tr, X_te, y_tr, y_te = data
    model = make()
    t0 = time.perf_counter()
    model.fit(X_tr, y_tr)
    t1 = time.perf_counter()
    pred = model.predict(X_te)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, _score(pred, y_te, regression), model


def _model_file(lib: str, model: Any, directory: str) -> tuple[float, float]:
    """The saved model's size (MiB) and the best of three load times (s)."""
    import pickle

    from aioforest.persistence import load, save

    path = os.path.join(directory, f"{lib}.model")
    if lib == "aioforest":
        save(model, path)
        read: Callable[[], Any] = lambda: load(path)  # noqa: E731
    else:
        with open(path, "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)

        def read() -> Any:
            with open(path, "rb") as f:
                return pickle.load(f)  # our own file, just written: the anchor's format
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        read()
        times.append(time.perf_counter() - t0)
    return os.path.getsize(path) / 2**20, min(times)


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (pool workers fork from a server, not from us)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _total_pss_kib() -> int:
    return sum(_pss_kib(pid) for pid in _descendants(os.getpid()))


def _peak_child(args: tuple[str, str, int]) -> float:
    """Peak PSS growth (MiB) of one fit+predict, summed over this process and its workers.

    A warm-up run starts any worker pool first; then a thread samples the summed PSS every
    10 ms while the real run goes on, and the peak above the level before it is reported.
    """
    import threading

    lib, name, n_jobs = args
    data = _datasets([name])[name]
    regression = name in REGRESSION
    make = _models(n_jobs, len(data[2]), regression)[lib]
    _run_once(make, (data[0][:200], data[1][:50], data[2][:200], data[3][:50]), regression)
    base = _total_pss_kib()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _total_pss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _run_once(make, data, regression)
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _total_pss_kib())
    return (peak[0] - base) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=DATASETS, choices=DATASETS)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--no-lightgbm", action="store_true",
                        help="leave LightGBM out (its rf mode is slow for fully grown trees)")
    parser.add_argument("--memory-probe", nargs=3, metavar=("LIB", "DATASET", "N_JOBS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.memory_probe:
        lib, name, n_jobs = args.memory_probe
        print(_peak_child((lib, name, int(n_jobs))))
        return
    datasets = _datasets(args.only)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name, data in datasets.items():
            rows += _compare(name, data, args, directory)
    header = ("dataset", "library", "fit s", "predict s", "peak PSS MiB", "score",
              "model MiB", "load s", "fit ratio", "predict ratio", "memory ratio",
              "model ratio", "load ratio", "score diff")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.0f} | {r[5]:.4f} | "
              f"{r[6]:.1f} | {r[7]:.3f} | {r[8]:.2f} | {r[9]:.2f} | {r[10]:.2f} | "
              f"{r[11]:.2f} | {r[12]:.2f} | {r[13]:+.4f} |")
    print(f"\n{N_TREES} trees, fully grown, max_features at each library's default, "
          f"n_jobs={args.n_jobs}; best of {args.repeat} runs; ratios are aioforest / "
          "scikit-learn (lower is better); score: accuracy, or R² for diabetes and reg100k")


def _compare(name: str, data: tuple[Any, ...], args: argparse.Namespace, directory: str
             ) -> list[tuple[Any, ...]]:
    regression = name in REGRESSION
    models = _models(args.n_jobs, len(data[2]), regression)
    if args.no_lightgbm:
        models.pop("lightgbm-rf", None)
    results: dict[str, tuple[float, ...]] = {}
    for lib, make in models.items():
        small = (data[0][:200], data[1][:50], data[2][:200], data[3][:50])
        _run_once(make, small, regression)  # warm up
        fits, preds, score, model = [], [], 0.0, None
        for _ in range(args.repeat):
            f, p, score, model = _run_once(make, data, regression)
            fits.append(f)
            preds.append(p)
        size, load_s = (_model_file(lib, model, directory) if lib != "lightgbm-rf"
                        else (float("nan"), float("nan")))
        mem = float("nan")
        if not args.no_memory:
            probe = subprocess.run(
                [sys.executable, __file__, "--memory-probe", lib, name, str(args.n_jobs)],
                capture_output=True, text=True, check=True,
            )
            mem = float(probe.stdout.strip().splitlines()[-1])
        results[lib] = (min(fits), min(preds), mem, score, size, load_s)
    ref = results["scikit-learn"]
    return [
        (name, lib, fit, pred, mem, score, size, load_s, fit / ref[0], pred / ref[1],
         mem / ref[2], size / ref[4], load_s / ref[5], score - ref[3])
        for lib, (fit, pred, mem, score, size, load_s) in results.items()
    ]


if __name__ == "__main__":
    main()
