"""``python -m aioforest.master``: train a random forest on a cluster of workers.

With ``--cv K`` it cross-validates instead of training one forest (see
:meth:`aioforest.cluster.Master.cross_validate`). With no worker option it starts two local
worker processes (the embedded default); with
``--local-workers N`` it starts N; with ``--workers N`` it listens for N external workers
(``aioforest-worker --connect HOST:PORT``) and prints the address it listens on. Forest
options default to :class:`~aioforest.RandomForestClassifier`'s defaults, so
``--trees 30 --seed 5`` trains the same forest as
``RandomForestClassifier(n_estimators=30, random_state=5).fit(read_csv(FILE))``.

Exit status: 0 on success, 1 when training fails, 2 for bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.util
import logging
import math
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import orjson

from ._runtime import int_argument, run
from ._validation import Prepared
from .cluster import (
    CheckpointError,
    ClusterError,
    ClusterTLS,
    LocalCluster,
    Master,
    checkpoint_spec,
    is_loopback,
)
from .dashboard import parse_bind
from .data import DataError, Dataset, Partitions, read_csv
from .datasets import path as dataset_path
from .ensemble import FitProgress, RandomForestClassifier, RandomForestRegressor
from .evaluation import accuracy, accuracy_score, cross_validated_metric, r2_score
from .persistence import save
from .wire import check_tls_pair, load_token, server_ssl_context

__all__ = [
    "JsonLogHandler", "ProgressLine", "build_parser", "main", "parse_class_weight", "parse_count",
    "parse_max_features", "resolve_task",
]

#: ``--task auto``: a numeric target with more distinct values than this is regression.
AUTO_MAX_CLASSES = 50
#: A classification target with more classes than this (or than half the rows) is refused.
MAX_CLASSES = 10_000

EXIT_FAILED = 1
EXIT_USAGE = 2

_EXAMPLES = """\
examples:
  # two local worker processes (the default) on the bundled iris data
  python -m aioforest.master --trees 50 --seed 1
  # a CSV file, target column by name, model saved for later
  aioforest-master --data train.csv --target label --trees 200 --out model.aiof
  # data-parallel: the workers read the partitions, every worker helps grow every tree
  aioforest-master --data 'big/part-*.csv' --mode data --workers 4 --token-file token
  aioforest-worker --connect master:7341 --token-file token --data-root /mnt/big  # each
  # an approximation: each tree sees one of 4 row shards, each held by 2 workers
  aioforest-master --data big.csv --mode shards --shards 4 --replicas 2 --local-workers 4
  # every tree checkpointed at once; after a crash, continue where it stopped
  aioforest-master --data train.csv --trees 500 --checkpoint-dir ckpt/ --out model.aiof
  aioforest-master --data train.csv --trees 500 --checkpoint-dir ckpt/ --out model.aiof --resume
  # a numeric target trains a regressor (R² and RMSE); --task forces either
  aioforest-master --data prices.csv --target price --trees 100 --out prices.aiof
  aioforest-master --data grades.csv --target grade --task regression
  # 10-fold cross-validation: per-fold accuracy, mean and variance (data sent once)
  python -m aioforest.master --cv 10 --trees 50 --seed 1
  # external workers on other machines (a token is required off loopback)
  aioforest-master --data train.csv --bind 0.0.0.0 --port 7341 --token-file token --workers 3
  aioforest-worker --connect master.example:7341 --token-file token   # on each worker
  # a live status page on http://127.0.0.1:8787/ (JSON at /status.json, Prometheus at /metrics)
  aioforest-master --data train.csv --trees 500 --dashboard 8787
  # the page for everyone on the network: it asks for the token (or a Bearer header)
  aioforest-master --data train.csv --token-file token --dashboard 0.0.0.0:8787
  # the same over mutual TLS
  aioforest-master ... --tls-cert master.pem --tls-key master.key --tls-ca ca.pem --workers 3
  aioforest-worker ... --tls-ca ca.pem --tls-cert worker.pem --tls-key worker.key
"""


def parse_max_features(text: str) -> int | float | str | None:
    """``sqrt``/``log2``, ``all``/``none`` (every feature), an integer count or a fraction."""
    lowered = text.strip().lower()
    if lowered in ("sqrt", "log2"):
        return lowered
    if lowered in ("all", "none"):
        return None
    try:
        return int(lowered)
    except ValueError:
        pass
    try:
        return float(lowered)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected sqrt, log2, all, an integer or a fraction, got {text!r}"
        ) from None


def parse_count(text: str) -> int | float:
    """``--min-samples-leaf`` and friends: an integer count, or a fraction like 0.01."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}"
                                         ) from None


def parse_class_weight(text: str) -> str | dict[str, float]:
    """``--class-weight``: ``balanced``, ``balanced_subsample`` or ``A=2,B=0.5``."""
    if text in ("balanced", "balanced_subsample"):
        return text
    weights: dict[str, float] = {}
    for item in text.split(","):
        label, sep, value = item.rpartition("=")
        try:
            weights[label] = float(value)
        except ValueError:
            label = ""
        if not sep or not label:
            raise argparse.ArgumentTypeError(
                f"expected balanced, balanced_subsample or LABEL=WEIGHT,..., got {item!r}")
    return weights


def _target(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _add_data_arguments(data: argparse._ArgumentGroup) -> None:
    data.add_argument("--data", metavar="FILE",
                      help="CSV file with a header row, or a glob of partition files "
                           "('dir/part-*.csv', sorted; quote it) with the same header "
                           "(default: the bundled iris data)")
    data.add_argument("--target", type=_target, metavar="COL",
                      help="label column: name or 0-based index (default: the last column)")
    data.add_argument("--trees", type=int_argument(1), metavar="N",
                      help="number of trees (default: the estimator's, 100)")
    data.add_argument("--seed", type=int_argument(0), metavar="S",
                      help="random_state (default: a fresh seed)")
    data.add_argument("--max-features", type=parse_max_features, metavar="F",
                      help="features tried per split: sqrt (default), log2, all, N or a fraction")
    tree = data  # the forest's parameters: defaults are the estimator's, it checks them
    tree.add_argument("--max-depth", type=int_argument(1), metavar="D",
                      help="deepest level of a tree (default: grown until pure)")
    tree.add_argument("--min-samples-split", type=parse_count, metavar="N",
                      help="fewest samples to split a node: a count, or a fraction of the "
                      "rows (default 2)")
    tree.add_argument("--min-samples-leaf", type=parse_count, metavar="N",
                      help="fewest samples in a leaf: a count or a fraction (default 1)")
    tree.add_argument("--criterion", metavar="C",
                      help="split quality: gini (default), entropy or log_loss; "
                      "squared_error for regression")
    tree.add_argument("--class-weight", type=parse_class_weight, metavar="W",
                      help="balanced, balanced_subsample, or weights per class as "
                      "LABEL=W,LABEL=W (classification; default: all 1)")
    tree.add_argument("--max-samples", type=parse_count, metavar="N",
                      help="rows drawn per tree: a count or a fraction (default: all)")
    tree.add_argument("--bootstrap", action=argparse.BooleanOptionalAction, default=None,
                      help="draw each tree's rows with replacement (default: yes)")
    tree.add_argument("--max-bins", type=int_argument(2), metavar="B",
                      help="histogram bins per feature, at most 255 (default 255)")
    data.add_argument("--task", choices=("auto", "classification", "regression"),
                      default="auto",
                      help="auto (default): regression when every target value is a number "
                      f"and they are not integers, or more than {AUTO_MAX_CLASSES} distinct "
                      "ones; else classification (in --mode data, auto is classification: "
                      "the master does not read the files)")
    data.add_argument("--oob", action="store_true",
                      help="also report the out-of-bag accuracy (model mode only)")
    data.add_argument("--mode", choices=("model", "data", "shards"), default="model",
                      help="model: whole trees on all rows, data sent to every worker "
                           "(default); data: the workers read the partitions of --data "
                           "themselves and all grow every tree (histogram aggregation; the "
                           "same forest as model mode, rows never reach the master); "
                           "shards: an approximation, tree i on row shard i%%K only")
    data.add_argument("--shards", type=int_argument(1), metavar="K",
                      help="row shards for --mode shards (default: the number of workers)")
    data.add_argument("--replicas", type=int_argument(1), default=1, metavar="R",
                      help="workers holding each shard for --mode shards (default 1)")
    data.add_argument("--cv", type=int_argument(2), metavar="K",
                      help="K-fold cross-validation instead of one fit: per-fold accuracy, "
                           "mean and variance (folds seeded by --seed)")
    data.add_argument("--out", metavar="MODEL", help="save the fitted model to this file")
    data.add_argument("--task-size", type=int_argument(1), metavar="N",
                      help="trees per task (default: balanced between batching and spreading)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioforest-master",
        description="Train a random forest on a cluster of aioforest workers.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(parser.add_argument_group("data and forest"))
    ckpt = parser.add_argument_group("checkpoints and fault tolerance")
    ckpt.add_argument("--checkpoint-dir", metavar="DIR",
                      help="write every finished tree to DIR at once (atomically), so that a "
                           "killed job can be continued with --resume")
    ckpt.add_argument("--resume", action="store_true",
                      help="continue the killed job whose checkpoint is in --checkpoint-dir: "
                           "same data and parameters (checked), only missing trees are fitted; "
                           "without --seed, the checkpoint's seed is used")
    ckpt.add_argument("--max-attempts", type=int_argument(1), default=3, metavar="N",
                      help="fail the job when one task was running on N workers that died "
                           "(default 3)")
    ckpt.add_argument("--heartbeat-interval", type=float, default=0.5, metavar="SECONDS",
                      help="how often workers report (default 0.5)")
    ckpt.add_argument("--heartbeat-timeout", type=float, default=5.0, metavar="SECONDS",
                      help="drop a worker silent this long and redo its tasks (default 5)")
    ckpt.add_argument("--no-backups", action="store_true",
                      help="never start backup copies of straggling tasks")
    net = parser.add_argument_group("cluster")
    net.add_argument("--bind", default="127.0.0.1", metavar="HOST",
                     help="address to listen on (default 127.0.0.1; others need a token)")
    net.add_argument("--port", type=int_argument(0), default=0, metavar="P",
                     help="port to listen on (default 0: a free port, printed)")
    net.add_argument("--token-file", metavar="FILE",
                     help="file holding the cluster token (default: $AIOFOREST_TOKEN)")
    who = net.add_mutually_exclusive_group()
    who.add_argument("--workers", type=int_argument(1), metavar="N",
                     help="wait for N external workers to connect")
    who.add_argument("--local-workers", type=int_argument(1), metavar="N",
                     help="start N local worker processes (default: 2)")
    net.add_argument("--processes-per-worker", type=int_argument(1), default=1, metavar="N",
                     help="pool processes of each local worker (default 1)")
    net.add_argument("--wait-timeout", type=float, default=300.0, metavar="SECONDS",
                     help="how long to wait for external workers (default 300)")
    net.add_argument("--dashboard", type=_dashboard_bind, metavar="[HOST:]PORT",
                     help="serve a live status page (HTML, /status.json, Prometheus "
                          "/metrics) on HOST (default 127.0.0.1); off loopback it asks for "
                          "the cluster token. Needs aioforest[dashboard]")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="the master's certificate (chain); turns TLS on")
    tls.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert")
    tls.add_argument("--tls-ca", metavar="FILE",
                     help="CA that signed the master's and the workers' certificates: workers "
                          "must present one (mutual TLS); local workers trust it and get "
                          "--tls-worker-cert/--tls-worker-key")
    tls.add_argument("--tls-worker-cert", metavar="FILE",
                     help="certificate for the local workers (with --tls-ca)")
    tls.add_argument("--tls-worker-key", metavar="FILE", help="key of --tls-worker-cert")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="json: one JSON object per line on stderr (progress, worker "
                        "joined/left/lost, task failures, every log record), and the final "
                        "report as one JSON object on stdout")
    return parser


class ProgressLine:
    """Progress on ``stream``: trees done, trees per second, ETA.

    On a terminal, one live line rewritten in place (at most ~10 times a second). Anywhere
    else (a log file, CI, a pipe), plain lines ending in a newline, with no carriage
    return: at most one every ``log_interval`` seconds, and always the last one.
    ``clock`` is injectable for tests.
    """

    def __init__(self, stream: TextIO, enabled: bool, min_interval: float = 0.1, *,
                 log_interval: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 as_json: bool = False) -> None:
        self.stream = stream
        self.enabled = enabled
        self.as_json = as_json
        self.live = _is_terminal(stream) and not as_json
        self.shown = False
        self.min_interval = min_interval if self.live else log_interval
        self.clock = clock
        self._last = -math.inf

    def __call__(self, p: FitProgress) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if p.done < p.total and now - self._last < self.min_interval:
            return  # rate-limited, and always the last one
        self._last = now
        if self.as_json:
            self.stream.write(_json_line({
                "event": "progress", "done": p.done, "total": p.total,
                "trees_per_second": round(p.trees_per_second, 3),
                "eta_seconds": round(p.eta, 3) if np.isfinite(p.eta) else None}))
            self.stream.flush()
            return
        eta = f"{p.eta:6.1f}s" if np.isfinite(p.eta) else "     ?"
        text = f"trees {p.done}/{p.total}  {p.trees_per_second:8.1f} trees/s  ETA {eta}"
        self.stream.write(f"\r{text}" if self.live else f"{text}\n")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown and self.live:
            self.stream.write("\n")
            self.stream.flush()


def _json_line(obj: dict[str, Any]) -> str:
    return orjson.dumps({"time": round(time.time(), 3), **obj}).decode() + "\n"


class JsonLogHandler(logging.Handler):
    """Log records as JSON lines: ``event`` (a record's ``extra={"event": ...}``, else
    ``log``), ``level``, ``message`` and the event's own fields."""

    FIELDS = ("worker", "slots", "reason", "task")

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            obj: dict[str, Any] = {"event": getattr(record, "event", "log"),
                                   "level": record.levelname.lower(),
                                   "message": record.getMessage()}
            obj |= {k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)}
            self.stream.write(_json_line(obj))
            self.stream.flush()
        except Exception:  # logging must not raise
            self.handleError(record)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _say(args: argparse.Namespace, text: str, **fields: Any) -> None:
    """A line on stdout: the text, or with ``--log-format json`` the fields as JSON."""
    print(_json_line(fields) if args.log_format == "json" else text, end=(
        "" if args.log_format == "json" else "\n"), flush=True)


def _say_dashboard(args: argparse.Namespace, master: Master) -> None:
    if master.dashboard is not None:
        url = master.dashboard.url
        _say(args, f"dashboard on {url}", event="dashboard", url=url)


@contextlib.asynccontextmanager
async def _cluster(args: argparse.Namespace, token: bytes | None) -> AsyncIterator[Master]:
    if args.workers is not None:
        context = (
            server_ssl_context(args.tls_cert, args.tls_key, args.tls_ca)
            if args.tls_cert is not None else None
        )
        async with Master(args.bind, args.port, token, ssl=context,
                          **_master_options(args)) as master:
            _say(args, f"master listening on {master.address}; waiting for {args.workers} "
                 "workers", event="listening", address=master.address, workers=args.workers)
            _say_dashboard(args, master)
            await master.wait_for_workers(args.workers, timeout=args.wait_timeout)
            yield master
    else:
        n = args.local_workers if args.local_workers is not None else 2
        tls = None
        if args.tls_cert is not None:
            tls = _cluster_tls(args)
        async with LocalCluster(
            n, args.processes_per_worker, token, tls=tls, **_master_options(args)
        ) as cluster:
            _say(args, f"started {n} local workers; master on {cluster.master.address}",
                 event="listening", address=cluster.master.address, workers=n)
            _say_dashboard(args, cluster.master)
            yield cluster.master


def _dashboard_bind(text: str) -> tuple[str, int]:
    try:
        return parse_bind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _master_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "dashboard": args.dashboard,
        # the page over HTTPS with the master's certificate, without asking the browser
        # for a client certificate (--tls-ca is for workers)
        "dashboard_ssl": (server_ssl_context(args.tls_cert, args.tls_key)
                          if args.dashboard is not None and args.tls_cert is not None
                          else None),
        "max_attempts": args.max_attempts,
        "heartbeat_interval": args.heartbeat_interval,
        "heartbeat_timeout": args.heartbeat_timeout,
        "backup_factor": None if args.no_backups else 3.0,
    }


def resolve_task(ds: Dataset, task: str) -> Dataset:
    """The dataset with the labels of ``task`` (``auto``: the rule in ``--help``); a
    classification with an absurd number of classes is refused (``ValueError``)."""
    labels = [str(v) for v in np.asarray(ds.y).tolist()]
    numbers = _as_numbers(labels)
    if task == "auto":
        regression = numbers is not None and (
            bool(np.any(numbers != np.round(numbers))) or np.unique(numbers).size
            > AUTO_MAX_CLASSES)
        task = "regression" if regression else "classification"
    if task == "regression":
        if numbers is None:
            bad = next(v for v in labels if _as_numbers([v]) is None)
            raise ValueError(f"--task regression needs a numeric target; {bad!r} is not one")
        return ds.with_labels(numbers, task="regression")
    n_classes = len(set(labels))
    if n_classes > MAX_CLASSES or (n_classes > 2 and n_classes > ds.n_samples / 2):
        raise ValueError(
            f"the target has {n_classes} classes in {ds.n_samples} rows: that is not a "
            "classification (for a numeric target, use --task regression)")
    return ds


def _as_numbers(texts: Sequence[str]) -> npt.NDArray[np.float64] | None:
    try:
        values = np.array([float(t) for t in texts], dtype=np.float64)
    except ValueError:
        return None
    return values if bool(np.isfinite(values).all()) else None


def _estimator(args: argparse.Namespace, task: str = "classification") -> Any:
    params: dict[str, Any] = {}
    if args.trees is not None:
        params["n_estimators"] = args.trees
    if args.seed is not None:
        params["random_state"] = args.seed
    if args.max_features is not None:
        params["max_features"] = args.max_features
    if args.oob:
        params["oob_score"] = True
    for name in ("max_depth", "min_samples_split", "min_samples_leaf", "criterion",
                 "max_samples", "bootstrap", "max_bins"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if task == "regression":
        if args.class_weight is not None:
            raise ValueError("--class-weight applies to classification, not regression")
        if args.criterion is None:
            params.pop("criterion", None)
        return RandomForestRegressor(**params)
    if args.class_weight is not None:
        params["class_weight"] = args.class_weight
    return RandomForestClassifier(**params)


async def _cross_validate(args: argparse.Namespace, ds: Dataset, token: bytes | None) -> int:
    forest = _estimator(args)
    progress = ProgressLine(sys.stderr, not args.quiet, as_json=args.log_format == "json")
    async with _cluster(args, token) as master:
        t0 = time.perf_counter()
        try:
            matrices = await master.cross_validate(
                forest, ds, folds=args.cv, random_state=args.seed, on_progress=progress
            )
        finally:
            progress.end()
        elapsed = time.perf_counter() - t0
        status = master.status()
    accuracies = [accuracy(cm) for cm in matrices]
    print(f"{args.cv}-fold cross-validation on {ds.n_samples} rows in {elapsed:.2f} s")
    for i, acc in enumerate(accuracies, 1):
        print(f"fold {i}: accuracy {acc:.4f}")
    # GoLearn's GetCrossValidatedMetric: the mean and the population variance over folds.
    mean, variance = cross_validated_metric(matrices, accuracy)
    print(f"accuracy mean {mean:.4f}  variance {variance:.6f}  (std {math.sqrt(variance):.4f})")
    print(f"datasets sent: {status['datasets_sent']}")
    return 0


async def _train(args: argparse.Namespace, ds: Dataset | Partitions, token: bytes | None
                 ) -> int:
    if args.cv is not None:
        assert isinstance(ds, Dataset)
        return await _cross_validate(args, ds, token)
    forest = _estimator(args, ds.task)
    progress = ProgressLine(sys.stderr, not args.quiet, as_json=args.log_format == "json")
    async with _cluster(args, token) as master:
        t0 = time.perf_counter()
        try:
            await master.fit(
                forest, ds, mode=args.mode, n_shards=args.shards, replicas=args.replicas,
                on_progress=progress, checkpoint_dir=args.checkpoint_dir, task_size=args.task_size,
                resume="require" if args.resume else "new",
            )
        finally:
            progress.end()
        elapsed = time.perf_counter() - t0
        status = master.status()
    if args.log_format == "json":
        print(_json_line(_json_report(args, forest, ds, elapsed, status)), end="")
        if args.out:
            save(forest, args.out)
        return 0
    _report_fit(args, forest, ds, elapsed)
    if getattr(forest, "oob_score_", None) is not None:
        what = "R²" if ds.task == "regression" else "accuracy"
        print(f"out-of-bag {what}: {forest.oob_score_:.4f}")
    per_worker = ", ".join(f"{k}: {v}" for k, v in sorted(status["tasks_done_by_worker"].items()))
    if args.mode != "data":
        print(f"tasks per worker: {per_worker}")
    if args.checkpoint_dir is not None:
        print(
            f"checkpoint {args.checkpoint_dir}: {status['trees_resumed']} trees resumed, "
            f"{status['trees_fitted']} fitted"
        )
    print(f"datasets sent: {status['datasets_sent']}")
    print(
        f"faults: {status['workers_lost']} workers lost, {status['retries']} tasks retried, "
        f"{status['backups']} backup copies ({status['backups_won']} won), "
        f"{status['discarded_results']} results discarded"
    )
    b = status["bytes"]
    print(
        f"bytes sent: {_size(b['sent_raw'])} before compression, {_size(b['sent_wire'])} on "
        f"the wire; received: {_size(b['received_raw'])} before, {_size(b['received_wire'])} on "
        "the wire"
    )
    if args.out:
        save(forest, args.out)
        print(f"model saved to {args.out}")
    return 0


def _json_report(args: argparse.Namespace, forest: Any, ds: Dataset | Partitions,
                 elapsed: float, status: dict[str, Any]) -> dict[str, Any]:
    """The final report of ``--log-format json``: what the text report says, as fields."""
    report: dict[str, Any] = {
        "event": "report", "estimator": type(forest).__name__, "trees": len(forest.trees_),
        "features": len(forest.features_), "mode": args.mode, "seconds": round(elapsed, 3),
        "workers_lost": status["workers_lost"], "retries": status["retries"],
        "backups": status["backups"], "results_discarded": status["discarded_results"],
        "bytes": status["bytes"], "tasks_per_worker": status["tasks_done_by_worker"],
        "model": args.out,
    }
    if isinstance(ds, Dataset):
        report["rows"] = ds.n_samples
        report |= {f"training_{k}": v for k, v in _training_scores(forest, ds).items()}
    else:
        report["rows"] = forest.data_parallel_stats_["n_rows"]
        report["data_parallel"] = forest.data_parallel_stats_
    if getattr(forest, "oob_score_", None) is not None:
        report["oob_score"] = forest.oob_score_
    return report


def _report_fit(args: argparse.Namespace, forest: Any, ds: Dataset | Partitions,
                elapsed: float) -> None:
    if isinstance(ds, Partitions):
        stats = forest.data_parallel_stats_
        print(
            f"trained {len(forest.trees_)} trees on {stats['n_rows']} rows x "
            f"{len(forest.features_)} features in {len(ds.paths)} partitions in "
            f"{elapsed:.2f} s (mode data)"
        )
        print(
            f"data-parallel: {stats['rounds']} histogram rounds, "
            f"{_size(stats['hist_bytes'])} of histograms received, "
            f"{stats['subtrees']} subtrees grown on one worker "
            f"({stats['rows_shipped']} rows sent worker to worker), "
            f"{stats['partitions_moved']} partitions moved after worker losses"
        )
        return
    print(
        f"trained {len(forest.trees_)} trees on {ds.n_samples} rows x "
        f"{len(forest.features_)} features in {elapsed:.2f} s (mode {args.mode})"
    )
    scores = _training_scores(forest, ds)
    if "r2" in scores:
        print(f"training R²: {scores['r2']:.4f}  RMSE: {scores['rmse']:.6g}")
    else:
        print(f"training accuracy: {scores['accuracy']:.4f}")


def _training_scores(forest: Any, ds: Dataset) -> dict[str, float]:
    """Accuracy, or R² and RMSE, of the forest on its training rows (one prediction)."""
    truth, pred = np.asarray(ds.y), np.asarray(forest.predict(ds))
    if ds.task != "regression":
        return {"accuracy": accuracy_score(truth, pred)}
    y, p = truth.astype(np.float64), pred.astype(np.float64)
    return {"r2": r2_score(y, p), "rmse": math.sqrt(float(np.mean((p - y) ** 2)))}


#: Parameter names in the classes' errors, and the options that set them.
_OPTION_OF = {
    "heartbeat_interval": "--heartbeat-interval",
    "heartbeat_timeout": "--heartbeat-timeout",
    "n_shards": "--shards",
    "replicas": "--replicas",
    "oob_score=True": "--oob",
    "max_depth": "--max-depth",
    "min_samples_split": "--min-samples-split",
    "min_samples_leaf": "--min-samples-leaf",
    "criterion": "--criterion",
    "class_weight": "--class-weight",
    "max_samples": "--max-samples",
    "bootstrap=True": "--bootstrap",
    "bootstrap": "--bootstrap",
    "max_bins": "--max-bins",
    "mode='shards'": "--mode shards",
    "worker_cert": "--tls-worker-cert",
    "worker_key": "--tls-worker-key",
    "ca": "--tls-ca",
}


def _in_option_terms(message: str) -> str:
    pattern = "|".join(re.escape(name) for name in sorted(_OPTION_OF, key=len, reverse=True))
    return re.sub(rf"(?<![\w-])({pattern})(?![\w-])", lambda m: _OPTION_OF[m[1]], message)


def _check_options(args: argparse.Namespace) -> None:
    """Let the classes refuse bad options (``ValueError``) before any worker starts."""
    Master.check_heartbeats(args.heartbeat_interval, args.heartbeat_timeout)
    Master.check_fit_options(_estimator(args), args.mode, args.shards, args.replicas)
    check_tls_pair(args.tls_cert, args.tls_key, ("--tls-cert", "--tls-key"))
    if args.tls_cert is None:
        if args.tls_ca or args.tls_worker_cert or args.tls_worker_key:
            raise ValueError("--tls-ca and --tls-worker-cert need --tls-cert/--tls-key")
    elif args.workers is None:
        _cluster_tls(args)
    if args.cv is not None and (args.mode != "model" or args.out or args.oob):
        raise ValueError("--cv cannot be combined with --mode shards, --out or --oob")
    if args.resume and args.checkpoint_dir is None:
        raise ValueError("--resume needs --checkpoint-dir (the directory of the killed job)")
    if args.cv is not None and args.checkpoint_dir is not None:
        raise ValueError("--checkpoint-dir applies to one fit, not --cv")


def _described(ds: Dataset) -> Prepared:
    """``ds`` by its schema only: planning a fit on it costs nothing per row (the class
    counts are placeholders: only the parameters are being checked)."""
    classes = np.array(ds.classes, dtype=object) if ds.task == "classification" else None
    counts = np.ones(len(ds.classes), dtype=np.int64) if classes is not None else None
    return Prepared.described(ds.features, ds.n_samples, classes, counts)


def _network_problem(args: argparse.Namespace, token: bytes | None) -> str:
    """Why the master or its dashboard cannot listen where asked (empty if they can)."""
    if args.workers is not None and token is None and not is_loopback(args.bind):
        return (f"--bind {args.bind} needs a token (--token-file or AIOFOREST_TOKEN): "
                "without one anyone who can reach the port could join")
    if args.dashboard is None:
        return ""
    host = args.dashboard[0]
    if importlib.util.find_spec("aiohttp") is None:
        return "--dashboard needs aiohttp: pip install 'aioforest[dashboard]'"
    if token is None and not is_loopback(host):
        return (f"--dashboard {host} needs a token (--token-file or AIOFOREST_TOKEN): "
                "the page asks for it off loopback")
    return ""


def _cluster_tls(args: argparse.Namespace) -> ClusterTLS:
    return ClusterTLS(args.tls_ca, args.tls_cert, args.tls_key,
                      args.tls_worker_cert, args.tls_worker_key)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aioforest-master`` / ``python -m aioforest.master``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        _check_options(args)
    except ValueError as exc:
        parser.error(_in_option_terms(str(exc)))
    spec = None
    if args.resume:  # before any worker starts: is there anything to resume?
        try:
            spec = checkpoint_spec(args.checkpoint_dir)
        except CheckpointError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if spec is None:
            print(
                f"{prog}: error: nothing to resume in {args.checkpoint_dir}: it holds no "
                "checkpoint (drop --resume to start a new job)",
                file=sys.stderr,
            )
            return EXIT_FAILED
    if args.checkpoint_dir is not None and args.seed is None:
        # A checkpoint is only resumable with a fixed seed: take the killed job's, or draw
        # one now and record it (it is printed, and stored in the checkpoint).
        seed = spec.get("params", {}).get("random_state") if spec is not None else None
        args.seed = seed if isinstance(seed, int) else secrets.randbelow(2**31)
        print(f"random_state: {args.seed}", flush=True)
    try:
        token = load_token(args.token_file)
    except (OSError, ValueError) as exc:
        print(f"{prog}: error: cannot read the token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = _network_problem(args, token)
    if problem:
        parser.error(problem)
    source = args.data if args.data is not None else str(dataset_path("iris_headers.csv"))
    target = args.target if args.target is not None else -1
    try:
        ds: Dataset | Partitions
        if args.mode == "data":  # the master only lists the files: workers read them
            ds = Partitions(source, target=target, task=(
                "regression" if args.task == "regression" else "classification"))
        else:
            read = (Partitions(source, target=target).read() if glob.has_magic(source)
                    else read_csv(source, target=target))
            ds = resolve_task(read, args.task)
    except (OSError, DataError) as exc:
        print(f"{prog}: error: cannot read {source}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"{prog}: error: {source}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.cv is not None and ds.task == "regression":
        parser.error("--cv reports confusion matrices: it needs a classification target")
    if isinstance(ds, Dataset):  # the estimator checks its parameters now, on the data's
        try:  # schema, rather than once the workers are up
            _estimator(args, ds.task).job_for(_described(ds))
        except ValueError as exc:
            parser.error(_in_option_terms(str(exc)))
    if args.log_format == "json":
        handler = JsonLogHandler(sys.stderr)
        log = logging.getLogger("aioforest")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    try:
        return run(_train(args, ds, token))
    except (ClusterError, ValueError, TimeoutError, OSError) as exc:  # ssl.SSLError is one
        print(f"{prog}: error: {type(exc).__name__}: {_in_option_terms(str(exc))}",
              file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
