"""A fit's inputs on the cluster: partitions as futures, their schema, their codes.

Dask collections stay where dask holds them: each partition (a block of rows of a dask
array, a partition of a dask DataFrame) becomes a future on the workers and is scanned,
encoded, summarised and binned there. numpy and pandas inputs are cut into partitions
and scattered once, each to two workers, so that one lost worker loses no data. Only
summaries reach the client: row counts, features, labels, bin summaries.

The schema, classes and bins come out as a local fit's of the same rows would, whatever
the partitioning: categories are the union of every partition's, sorted; classes the
union of labels, sorted; bins are merged from partition-independent summaries.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._validation import Prepared
from ..data import Bins, Feature
from . import _tasks as tasks
from ._session import DaskSession

__all__ = ["DaskData", "is_dask_collection", "load", "row_blocks"]


def is_dask_collection(obj: object) -> bool:
    """Whether ``obj`` is a dask collection (array, DataFrame, Series), without importing
    dask."""
    return hasattr(type(obj), "__dask_graph__") and hasattr(obj, "to_delayed")


@dataclass
class DaskData:
    """The training rows, partition by partition, on the cluster."""

    raw: list[tuple[Any, Any, Any]]  # futures (or None) of each partition's X, y, weights
    offsets: npt.NDArray[np.int64]  # partition p holds rows offsets[p] .. offsets[p+1]-1
    prepared: Prepared  # the schema and classes, the rows described, not held
    target_max: float
    use_weights: bool
    encoded: list[Any]  # futures of each partition's encoded rows
    binned: list[Any] | None = None  # futures of each partition's codes

    @property
    def n_total(self) -> int:
        return int(self.offsets[-1])


def load(session: DaskSession, X: Any, y: Any, sample_weight: Any, classification: bool
         ) -> DaskData:
    """Partition, scan and encode the inputs (see the module docstring)."""
    if y is None:
        raise ValueError("a fit on Dask needs y (a dask array or Series, or an array)")
    raw = _partitions(session, X, y, sample_weight)
    scans = session.results(
        [session.submit(tasks.scan_part, p, *parts, classification)
         for p, parts in enumerate(raw)], "scanning the partitions")
    features, named = _merged_features(scans)
    n = np.array([s["n_rows"] for s in scans], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
    if offsets[-1] == 0:
        raise ValueError("cannot fit on 0 samples")
    if not features:
        raise ValueError("cannot fit on 0 features")
    classes, counts = _merged_classes(scans) if classification else (None, None)
    use_weights = _use_weights(scans)
    prep = Prepared.described(features, int(offsets[-1]), classes, counts, named=named)
    feats = tasks.features_to_json(features)
    encoded = [session.submit(tasks.encode_part, p, *parts, feats, classes, use_weights)
               for p, parts in enumerate(raw)]
    target_max = max(float(s["target_max"]) for s in scans)
    return DaskData(raw, offsets, prep, target_max, use_weights, encoded)


def learn_bins(session: DaskSession, data: DaskData, max_bins: int) -> Bins:
    """The bins of every partition's rows, as a local fit would learn them. The
    partitions' summaries (up to ``BIN_SAMPLE_ROWS`` sampled values per feature) merge
    on a worker; only the bins come here."""
    is_cat = data.prepared.is_categorical
    summaries = [session.submit(tasks.summarize_part, enc, int(data.offsets[p]), data.n_total,
                                max_bins, is_cat) for p, enc in enumerate(data.encoded)]
    fitted = session.submit(tasks.fit_bins, max_bins, is_cat, data.prepared.n_categories,
                            *summaries)
    (bins,) = session.results([fitted], "learning the bins")
    return tasks.bins_from_arrays(bins)


def bin_rows(session: DaskSession, data: DaskData, bins: Bins) -> None:
    """Bin every partition where it is; the encoded floats are then let go."""
    arrays = tasks.bins_to_arrays(bins)
    data.binned = [session.submit(tasks.bin_part, enc, arrays) for enc in data.encoded]
    data.encoded = []


def _partitions(session: DaskSession, X: Any, y: Any, sw: Any) -> list[tuple[Any, Any, Any]]:
    if is_dask_collection(X):
        blocks, sizes = row_blocks(X)
        rows = None if any(math.isnan(c) for c in sizes) else [int(c) for c in sizes]
        ys = _aligned(session, y, len(blocks), rows, "y")
        ws = _aligned(session, sw, len(blocks), rows, "sample_weight")
        futures = session.client.compute([*blocks, *[v for v in (*ys, *ws) if _lazy(v)]])
        it = iter(futures)
        xs = [next(it) for _ in blocks]
        ys = [next(it) if _lazy(v) else v for v in ys]
        ws = [next(it) if _lazy(v) else v for v in ws]
        return list(zip(xs, ys, ws, strict=True))
    return _scattered(session, X, y, sw)


def row_blocks(X: Any) -> tuple[list[Any], list[float]]:
    """A dask array's or DataFrame's blocks of whole rows (delayed) and their row counts
    (NaN where dask does not know them)."""
    if not hasattr(X, "chunks"):  # a DataFrame: one block per partition
        blocks = list(X.to_delayed())
        return blocks, [math.nan] * len(blocks)
    if X.ndim != 2:
        raise ValueError(f"X should be a 2-D dask array, got {X.ndim} dimensions")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    return list(X.to_delayed()[:, 0]), [float(c) for c in X.chunks[0]]


def _lazy(value: Any) -> bool:
    return value is not None and hasattr(value, "__dask_graph__")


def _aligned(session: DaskSession, v: Any, n_blocks: int, rows: list[int] | None, what: str
             ) -> list[Any]:
    """``v`` (y or weights) cut like X's partitions: delayed blocks, or scattered pieces."""
    if v is None:
        return [None] * n_blocks
    if is_dask_collection(v):
        if not hasattr(v, "chunks"):  # a Series
            parts = list(v.to_delayed())
        else:
            if rows is not None and tuple(v.chunks[0]) != tuple(rows):
                v = v.rechunk((tuple(rows),))
            parts = list(v.to_delayed().ravel())
        if len(parts) != n_blocks:
            raise ValueError(f"{what} has {len(parts)} partitions and X {n_blocks}: give "
                             "them the same partitions (or chunks)")
        return parts
    if rows is None:
        raise ValueError(f"X's partition sizes are unknown, so a local {what} cannot be cut "
                         "to match: pass a dask collection partitioned like X")
    arr = v.to_numpy() if hasattr(v, "to_numpy") else np.asarray(v)
    if arr.shape[0] != sum(rows):
        raise ValueError(f"{what} has {arr.shape[0]} rows and X {sum(rows)}")
    cuts = np.cumsum(rows)[:-1]
    return list(session.client.scatter(np.split(arr, cuts), hash=False))


def _scattered(session: DaskSession, X: Any, y: Any, sw: Any) -> list[tuple[Any, Any, Any]]:
    """numpy or pandas inputs cut into partitions and scattered once (two copies each)."""
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows and y {len(y)}")
    # at least one partition per worker thread, so that every worker sums histograms
    size = max(1, min(session.options.partition_rows, -(-n // session.threads())))
    bounds = [*range(0, n, size), n] if n else [0, 0]

    def take(v: Any, lo: int, hi: int) -> Any:
        if v is None:
            return None
        return v.iloc[lo:hi] if hasattr(v, "iloc") else np.asarray(v)[lo:hi]

    pieces = [(take(X, lo, hi), take(y, lo, hi), take(sw, lo, hi))
              for lo, hi in itertools.pairwise(bounds)]
    client = session.client
    flat = client.scatter([v for p in pieces for v in p if v is not None], hash=False)
    copies = min(2, session.workers())
    if copies > 1:
        client.replicate(flat, n=copies)
    it = iter(flat)
    return [tuple(next(it) if v is not None else None for v in p)  # type: ignore[misc]
            for p in pieces]


def _merged_features(scans: list[dict[str, Any]]) -> tuple[tuple[Feature, ...], bool]:
    """Every partition's features in one schema: categories the union, sorted."""
    first = tasks.features_from_json(scans[0]["features"])
    cats: list[set[str]] = [set(f.categories) for f in first]
    for p, scan in enumerate(scans[1:], start=1):
        feats = tasks.features_from_json(scan["features"])
        if [f.name for f in feats] != [f.name for f in first]:
            raise ValueError(f"partition {p} has the columns {[f.name for f in feats][:8]}, "
                             f"partition 0 {[f.name for f in first][:8]}")
        for j, (a, b) in enumerate(zip(first, feats, strict=True)):
            if a.kind != b.kind:
                raise ValueError(f"column {a.name!r} is {b.kind} in partition {p} but "
                                 f"{a.kind} in partition 0")
            cats[j] |= set(b.categories)
    merged = tuple(f if f.kind != "categorical" else Feature(f.name, f.kind,
                                                             tuple(sorted(cats[j])))
                   for j, f in enumerate(first))
    return merged, bool(scans[0]["named"])


def _merged_classes(scans: list[dict[str, Any]]
                    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    classes = np.unique(np.concatenate([np.asarray(s["labels"]) for s in scans]))
    counts = np.zeros(classes.size, dtype=np.int64)
    for s in scans:
        labels = np.asarray(s["labels"])
        np.add.at(counts, np.searchsorted(classes, labels), s["label_counts"])
    return classes, counts


def _use_weights(scans: list[dict[str, Any]]) -> bool:
    weights = [s["weights"] for s in scans]
    if all(w is None for w in weights):
        return False
    if any(w is None for w in weights):
        raise ValueError("sample_weight is missing for some partitions")
    if sum(w["sum"] for w in weights) <= 0:
        raise ValueError("sample_weight sums to zero: nothing to learn from")
    return not all(w["all_one"] for w in weights)
