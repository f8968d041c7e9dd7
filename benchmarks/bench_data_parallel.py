"""Data-parallel mode: rows stay on the workers; every worker helps grow every tree.

Data: ``make_classification(n_features=20, n_informative=10, n_classes=3, random_state=0)``
written as CSV partition files (``--rows`` rows in ``--files`` files). It reports:

1. **fit time** on ``LocalCluster(2)`` in ``mode="data"`` (the workers read the files)
   against ``mode="model"`` (the master reads them and sends the binned rows) and a local
   ``n_jobs=2`` fit of the same ``Partitions``, and whether the three forests are
   identical; the test accuracy of each (on 20% of rows held out);
2. **wire**: histogram rounds, bytes per round and in total, against the binned data;
3. **the master's peak RSS** in data mode at several sizes (``--rss-rows``), from a CLI
   master (``python -m aioforest.master --mode data``) with its local workers, measured
   as ``VmHWM`` in the master process itself;
4. **CSV read throughput**: ``aioforest.data.read_partition`` against pandas' C parser
   on the same file.

Speed is reported, never asserted.

    python benchmarks/bench_data_parallel.py [--rows 1000000] [--files 8] [--trees 20]
        [--rss-rows 250000 1000000 4000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from aioforest import Partitions, RandomForestClassifier
from aioforest.cluster import LocalCluster
from aioforest.data import read_partition

REPO = Path(__file__).resolve().parents[1]


def write_partitions(directory: Path, n_rows: int, n_files: int, seed: int = 0
                     ) -> tuple[Partitions, np.ndarray, np.ndarray]:
    """CSV files of ``n_rows`` rows of make_classification; also 20% held out (X, y)."""
    from sklearn.datasets import make_classification

    n_test = n_rows // 4
    X, y = make_classification(n_samples=n_rows + n_test, n_features=20, n_informative=10,
                               n_classes=3, random_state=seed)
    directory.mkdir(parents=True, exist_ok=True)
    header = ",".join(f"f{j}" for j in range(20)) + ",label"
    bounds = np.linspace(0, n_rows, n_files + 1).astype(int)
    for k in range(n_files):
        lo, hi = bounds[k], bounds[k + 1]
        block = np.column_stack([X[lo:hi], y[lo:hi]])
        np.savetxt(directory / f"part-{k:03d}.csv", block, delimiter=",", header=header,
                   comments="", fmt=["%.6g"] * 20 + ["%d"])
    Xt = np.round(X[n_rows:].astype(np.float64), 6)
    return Partitions(str(directory / "part-*.csv")), Xt, y[n_rows:]


def _same(a: Any, b: Any) -> bool:
    return all(
        np.array_equal(s.arrays()[k], t.arrays()[k], equal_nan=True)
        for s, t in zip(a.trees_, b.trees_, strict=True) for k in s.arrays()
    )


def _accuracy(forest: Any, X: np.ndarray, y: np.ndarray) -> float:
    pred = forest.predict(X)
    return float(np.mean(np.asarray(pred).astype(float).astype(int) == y))


async def fits(parts: Partitions, trees: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    params = {"n_estimators": trees, "random_state": 1}
    t = time.perf_counter()
    local = RandomForestClassifier(n_jobs=2, **params).fit(parts)
    out["local n_jobs=2"] = (time.perf_counter() - t, local)
    async with LocalCluster(2) as cluster:
        for mode in ("model", "data"):
            forest = RandomForestClassifier(**params)
            before = cluster.master.status()["bytes"]
            t = time.perf_counter()
            await cluster.master.fit(forest, parts, mode=mode)
            out[f"LocalCluster(2) {mode}"] = (time.perf_counter() - t, forest)
            after = cluster.master.status()["bytes"]
            out[f"wire {mode}"] = {k: after[k] - before[k] for k in after}
    return out


#: Printed by a child after its fit: its peak RSS. VmHWM, not getrusage: Linux carries
#: ru_maxrss across exec, so a child would report this benchmark's own peak.
_PRINT_PEAK = (
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
    "print('PEAK_RSS_KIB', hwm.split()[1])\n"
)


def _peak_rss_run(code: str, args: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout) of ``python -c code args`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, check=True)
    elapsed = time.perf_counter() - t
    kib = next(int(line.split()[1]) for line in done.stdout.splitlines()
               if line.startswith("PEAK_RSS_KIB"))
    return elapsed, kib / 1024, done.stdout


def master_rss(directory: Path, trees: int) -> tuple[float, float, str]:
    """(seconds, peak RSS of the master in MiB, its report) of a CLI data-mode fit."""
    code = ("import sys\nfrom aioforest.master import main\nrc = main(sys.argv[1:])\n"
            + _PRINT_PEAK + "sys.exit(rc)\n")
    seconds, mib, out = _peak_rss_run(code, [
        "--data", str(directory / "part-*.csv"), "--mode", "data", "--trees", str(trees),
        "--seed", "1", "--quiet"])
    report = next((line for line in out.splitlines() if "data-parallel:" in line), "")
    return seconds, mib, report


def master_rss_bounded(directory: Path, trees: int, max_depth: int) -> tuple[float, float]:
    """(seconds, the master's peak RSS in MiB) of a data-mode fit of trees of bounded
    depth: the model stays small, so what is left is the master's own memory."""
    code = (
        "import asyncio, sys\n"
        "from aioforest import Partitions, RandomForestClassifier\n"
        "from aioforest.cluster import LocalCluster\n"
        "async def fit():\n"
        "    async with LocalCluster(2) as cluster:\n"
        "        forest = RandomForestClassifier(n_estimators=int(sys.argv[2]), "
        "max_depth=int(sys.argv[3]), random_state=1)\n"
        "        await cluster.master.fit(forest, Partitions(sys.argv[1]), mode='data')\n"
        "asyncio.run(fit())\n" + _PRINT_PEAK
    )
    seconds, mib, _ = _peak_rss_run(code, [str(directory / "part-*.csv"), str(trees),
                                           str(max_depth)])
    return seconds, mib


def csv_throughput(path: Path) -> tuple[float, float]:
    """MiB/s of read_partition and of pandas.read_csv on ``path`` (best of 2)."""
    import pandas as pd

    size = path.stat().st_size / 2**20
    options = Partitions([str(path)], target="label").options()
    ours, theirs = [], []
    for _ in range(2):
        t = time.perf_counter()
        read_partition(str(path), options)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        pd.read_csv(path)
        theirs.append(time.perf_counter() - t)
    return size / min(ours), size / min(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--trees", type=int, default=20)
    parser.add_argument("--rss-rows", type=int, nargs="*", default=[250_000, 1_000_000,
                                                                     4_000_000])
    parser.add_argument("--rss-trees", type=int, default=2)
    parser.add_argument("--only-rss", action="store_true", help="skip the fit comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.only_rss:
            compare(root, args)
        print(f"\n## master peak RSS, --mode data, {args.rss_trees} trees\n")
        print("| rows | fit s (CLI, fully grown) | master peak RSS MiB | fit s (max_depth=10) "
              "| master peak RSS MiB | report (fully grown) |")
        print("|---|---|---|---|---|---|")
        for n in args.rss_rows:
            directory = root / f"rss-{n}"
            write_partitions(directory, n, args.files)
            seconds, mib, report = master_rss(directory, args.rss_trees)
            b_seconds, b_mib = master_rss_bounded(directory, args.rss_trees, 10)
            print(f"| {n} | {seconds:.1f} | {mib:.0f} | {b_seconds:.1f} | {b_mib:.0f} | "
                  f"{report.strip()} |", flush=True)


def compare(root: Path, args: argparse.Namespace) -> None:
    parts, Xt, yt = write_partitions(root / "main", args.rows, args.files)
    results = asyncio.run(fits(parts, args.trees))
    base = results["local n_jobs=2"]
    print(f"\n## fit: {args.rows} rows x 20 in {args.files} files, {args.trees} trees\n")
    print("| run | fit s | / local | / model mode | identical to local | accuracy |")
    print("|---|---|---|---|---|---|")
    model_s = results["LocalCluster(2) model"][0]
    runs = {k: v for k, v in results.items() if not k.startswith("wire")}
    for name, (seconds, forest) in runs.items():
        print(f"| {name} | {seconds:.1f} | {seconds / base[0]:.2f} | "
              f"{seconds / model_s:.2f} | {_same(forest, base[1])} | "
              f"{_accuracy(forest, Xt, yt):.4f} |")
    stats = results["LocalCluster(2) data"][1].data_parallel_stats_
    binned = args.rows * 20
    print("\n## wire (data mode)\n")
    print("| rounds | histogram arrays in | per round | on the wire in / out (gzip) | "
          "model mode on the wire out | binned data |")
    print("|---|---|---|---|---|---|")
    wire, model_wire = results["wire data"], results["wire model"]
    print(f"| {stats['rounds']} | {stats['hist_bytes'] / 2**20:.1f} MiB | "
          f"{stats['hist_bytes'] / max(stats['rounds'], 1) / 2**10:.1f} KiB | "
          f"{wire['received_wire'] / 2**20:.1f} / {wire['sent_wire'] / 2**20:.1f} MiB | "
          f"{model_wire['sent_wire'] / 2**20:.1f} MiB | {binned / 2**20:.1f} MiB |")
    print(f"\nlocal subtrees: {stats['subtrees']} grown whole on one worker, "
          f"{stats['rows_shipped']} instances sent from worker to worker "
          f"(~{stats['rows_shipped'] * 44 / 2**20:.0f} MiB before gzip, not through the master)")
    grow_s, wait_s = stats["grow_seconds"], stats["wait_seconds"]
    print(f"\ndriver: {grow_s:.1f} s growing ({stats['levels']} levels, {stats['batches']} "
          f"batches), of which {wait_s:.1f} s waiting for the workers (histograms, routing, "
          f"the wire) and {grow_s - wait_s:.1f} s choosing splits on the master")
    print("\n## CSV read throughput (one partition file)\n")
    ours, pandas_rate = csv_throughput(root / "main" / "part-000.csv")
    print("| reader | MiB/s | / pandas |")
    print("|---|---|---|")
    print(f"| aioforest read_partition | {ours:.1f} | {ours / pandas_rate:.3f} |")
    print(f"| pandas.read_csv | {pandas_rate:.1f} | 1.000 |")


if __name__ == "__main__":
    main()
