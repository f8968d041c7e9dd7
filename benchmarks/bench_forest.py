"""aioforest's random forest against scikit-learn (and LightGBM's rf mode), side by side.

50 trees, max_features="sqrt", fully grown trees, the same number of processes/threads for
everyone (2 by default). For each dataset it prints fit time, predict time, peak memory and
test accuracy, and the ratios aioforest / scikit-learn. Speed is reported, never asserted.

    python benchmarks/bench_forest.py               # all datasets
    python benchmarks/bench_forest.py --only 100k   # one of: digits, breast_cancer, 100k, 500k

Each fit is run ``--repeat`` times and the fastest is kept: the machines are shared and noisy.
Peak memory is the peak RSS growth during one fit + predict in a fresh process, summed over
that process and any worker processes it uses, measured the same way for every library.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

N_TREES = 50


def _datasets(names: list[str]) -> dict[str, tuple[Any, ...]]:
    from sklearn.datasets import load_breast_cancer, load_digits, make_classification
    from sklearn.model_selection import train_test_split

    out = {}
    for name in names:
        if name == "digits":
            X, y = load_digits(return_X_y=True)
        elif name == "breast_cancer":
            X, y = load_breast_cancer(return_X_y=True)
        else:
            n = {"100k": 100_000, "500k": 500_000}[name]
            X, y = make_classification(
                n_samples=n, n_features=20, n_informative=10, n_classes=3, random_state=0
            )
        out[name] = tuple(train_test_split(X, y, test_size=0.25, random_state=0, stratify=y))
    return out


def _models(n_jobs: int, n_train: int = 100_000) -> dict[str, Callable[[], Any]]:
    from sklearn.ensemble import RandomForestClassifier

    import aioforest

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


def _run_once(make: Callable[[], Any], data: tuple[Any, ...]) -> tuple[float, float, float]:
    X_tr, X_te, y_tr, y_te = data
    model = make()
    t0 = time.perf_counter()
    model.fit(X_tr, y_tr)
    t1 = time.perf_counter()
    pred = model.predict(X_te)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, float(np.mean(pred == y_te))


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


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _peak_child(args: tuple[str, str, int]) -> float:
    """Peak RSS growth (MiB) of one fit+predict, summed over this process and its workers.

    A warm-up run starts any worker pool first; then every process's peak-RSS counter is
    reset (``/proc/PID/clear_refs``) and the growth over the resident size is summed.
    """
    lib, name, n_jobs = args
    data = _datasets([name])[name]
    make = _models(n_jobs, len(data[2]))[lib]
    _run_once(make, (data[0][:200], data[1][:50], data[2][:200], data[3][:50]))
    pids = _descendants(os.getpid())
    base = {pid: _status_kib(pid, "VmRSS") for pid in pids}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
    _run_once(make, data)
    pids = _descendants(os.getpid())
    return sum(max(_status_kib(p, "VmHWM") - base.get(p, 0), 0) for p in pids) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["digits", "breast_cancer", "100k", "500k"])
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
    for name, data in datasets.items():
        models = _models(args.n_jobs, len(data[2]))
        if args.no_lightgbm:
            models.pop("lightgbm-rf", None)
        results: dict[str, tuple[float, float, float, float]] = {}
        for lib, make in models.items():
            _run_once(make, (data[0][:200], data[1][:50], data[2][:200], data[3][:50]))  # warm up
            fits, preds, acc = [], [], 0.0
            for _ in range(args.repeat):
                f, p, acc = _run_once(make, data)
                fits.append(f)
                preds.append(p)
            mem = float("nan")
            if not args.no_memory:
                probe = subprocess.run(
                    [sys.executable, __file__, "--memory-probe", lib, name, str(args.n_jobs)],
                    capture_output=True, text=True, check=True,
                )
                mem = float(probe.stdout.strip().splitlines()[-1])
            results[lib] = (min(fits), min(preds), mem, acc)
        ref = results["scikit-learn"]
        for lib, (fit, pred, mem, acc) in results.items():
            rows.append((name, lib, fit, pred, mem, acc, fit / ref[0], pred / ref[1], mem / ref[2],
                         100 * (acc - ref[3])))
    header = ("dataset", "library", "fit s", "predict s", "peak MiB", "accuracy",
              "fit ratio", "predict ratio", "memory ratio", "acc diff (pts)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.0f} | {r[5]:.4f} | "
              f"{r[6]:.2f} | {r[7]:.2f} | {r[8]:.2f} | {r[9]:+.2f} |")
    print(f"\n{N_TREES} trees, max_features='sqrt', fully grown, n_jobs={args.n_jobs}; "
          f"best of {args.repeat} runs; ratios are aioforest / scikit-learn (lower is better)")


if __name__ == "__main__":
    main()
