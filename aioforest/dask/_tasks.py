"""What runs on the Dask workers: pure functions of plain data.

Every function here takes and returns numpy arrays, numbers, strings and lists (besides
the user's own partitions, which dask already holds), never one of our objects, so what
crosses dask's wire is plain data. A partition's level state is a dict of arrays too
(:func:`state_rows` turns it back into a :class:`~aioforest.tree.LocalRows`); each
operation returns a new state and leaves its input alone, so dask can recompute any
state from its lineage after losing a worker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .._malloc import tune_malloc
from .._validation import check_labels
from ..data import (
    Binner,
    Bins,
    BinSummary,
    Feature,
    as_dataset,
    as_target,
    encode_features,
    is_dataframe,
)
from ..tree import (
    Arithmetic,
    CodeTable,
    DrawnFeatures,
    FlatForest,
    ForestPlan,
    HistogramRequest,
    Histograms,
    LevelRows,
    LocalRows,
    NodeSplits,
    SubtreeRows,
    SubtreeStart,
    TreeArrays,
    code_table,
    fit_trees,
    grow_subtrees_here,
    partition_oob_sums,
    partition_rows,
    sum_histograms,
    tree_spec,
)

Arrays = dict[str, npt.NDArray[Any]]


class PartitionError(ValueError):
    """A partition the fit cannot use; the text names the partition and the problem."""


# --- describing and encoding partitions ----------------------------------------------------
def features_to_json(features: tuple[Feature, ...]) -> list[list[Any]]:
    return [[f.name, f.kind, list(f.categories)] for f in features]


def features_from_json(data: list[list[Any]]) -> tuple[Feature, ...]:
    return tuple(Feature(str(name), kind, tuple(cats)) for name, kind, cats in data)


def scan_part(index: int, X: Any, y: Any, sw: Any, classification: bool) -> dict[str, Any]:
    """What the client needs to know of one partition: its rows, its features as inferred
    from its own values, its labels (classification) or largest |target|, its weights."""
    try:
        labels = check_labels(y, classification)
        ds = as_dataset(X, labels, task="classification" if classification else "regression")
        encoded = ds.encoded()
        n = encoded.shape[0]
        if np.isinf(encoded).any():
            r, c = np.argwhere(np.isinf(encoded))[0]
            raise ValueError(f"X contains infinity at row {r} of the partition, column {c}")
        out: dict[str, Any] = {
            "n_rows": n, "features": features_to_json(ds.features),
            "named": is_dataframe(X), "target_max": 0.0,
        }
        if classification:
            uniq, counts = np.unique(np.asarray(ds.y), return_counts=True)
            out["labels"], out["label_counts"] = uniq, counts.astype(np.int64)
        else:
            target = np.asarray(labels, dtype=np.float64)
            if not np.isfinite(target).all():
                raise ValueError("y contains NaN or infinity")
            out["target_max"] = float(np.max(np.abs(target), initial=0.0))
        out["weights"] = _weight_summary(sw, n)
        return out
    except (ValueError, TypeError) as exc:
        raise PartitionError(f"partition {index}: {exc}") from None


def _weight_summary(sw: Any, n: int) -> dict[str, Any] | None:
    if sw is None:
        return None
    w = np.asarray(sw, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight has shape {w.shape}, expected ({n},)")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    return {"sum": float(w.sum()), "all_one": bool(np.all(w == 1.0))}


def encode_part(index: int, X: Any, y: Any, sw: Any, features: list[list[Any]],
                classes: npt.NDArray[Any] | None, use_weights: bool) -> Arrays:
    """The partition encoded in the job's schema: ``X`` float64, ``y`` class codes (int64)
    or targets (float64), ``sw`` (empty when the job has no weights)."""
    tune_malloc()  # dask's workers trim malloc's heap at 64 KiB: see aioforest._malloc
    try:
        schema = features_from_json(features)
        # the features in the job's schema, the labels as a Dataset holds them: one pass
        Xe = np.ascontiguousarray(encode_features(X, schema), dtype=np.float64)
        labels, _ = as_target(check_labels(y, classes is not None), Xe.shape[0],
                              "classification" if classes is not None else "regression")
        if classes is not None:
            values = np.asarray(labels)
            codes = np.searchsorted(classes, values)
            if codes.size and (codes.max() >= classes.size
                               or not np.array_equal(classes[codes], values)):
                raise ValueError("a label is not among the classes the scan found")
            target: npt.NDArray[Any] = codes.astype(np.int64)
        else:
            target = np.asarray(labels, dtype=np.float64)
        weights = (np.asarray(sw, dtype=np.float64) if use_weights and sw is not None
                   else np.ones(Xe.shape[0]) if use_weights else np.zeros(0))
        return {"X": Xe, "y": target, "sw": weights}
    except (ValueError, TypeError) as exc:
        raise PartitionError(f"partition {index}: {exc}") from None


def summarize_part(enc: Arrays, offset: int, n_total: int, max_bins: int,
                   is_categorical: npt.NDArray[np.bool_]) -> Arrays:
    """The partition's bin summary (partition-independent: sampled by global row id)."""
    X = enc["X"]
    ids = offset + np.arange(X.shape[0])
    sw = enc["sw"] if enc["sw"].size else None
    return Binner(max_bins).summarize(X, is_categorical, row_ids=ids, n_total=n_total,
                                      sample_weight=sw).arrays()


def fit_bins(max_bins: int, is_categorical: npt.NDArray[np.bool_],
             n_categories: npt.NDArray[np.int64], *summaries: Arrays) -> Arrays:
    """The bins of the rows the partitions' summaries describe."""
    bins = Binner(max_bins).fit_summaries([BinSummary.from_arrays(s) for s in summaries],
                                          is_categorical, n_categories)
    return bins_to_arrays(bins)


def bins_to_arrays(bins: Bins) -> Arrays:
    return {"n_bins": bins.n_bins, "is_categorical": bins.is_categorical,
            "edge_counts": np.array([e.size for e in bins.edges], dtype=np.int64),
            "edges": (np.concatenate(bins.edges) if bins.edges else np.zeros(0))}


def bins_from_arrays(arrays: Arrays) -> Bins:
    cuts = np.cumsum(arrays["edge_counts"])[:-1]
    edges = tuple(np.split(arrays["edges"], cuts)) if arrays["edge_counts"].size else ()
    return Bins(np.asarray(arrays["n_bins"], dtype=np.int32),
                np.asarray(arrays["is_categorical"], dtype=bool), edges)


def bin_part(enc: Arrays, bins: Arrays) -> Arrays:
    """The partition's codes, feature-major ``(n_features, rows)`` uint8, with its labels."""
    tune_malloc()  # dask's workers trim malloc's heap at 64 KiB: see aioforest._malloc
    return {"codes": bins_from_arrays(bins).transform(enc["X"]), "y": enc["y"],
            "sw": enc["sw"]}


def rows_of(binned: Arrays) -> int:
    return int(binned["y"].shape[0])


# --- model mode ----------------------------------------------------------------------------
def concat_parts(*binned: Arrays) -> Arrays:
    """Every partition's codes in one dataset (a worker's copy, made once)."""
    return {"codes": np.ascontiguousarray(np.concatenate([b["codes"] for b in binned], axis=1)),
            "y": np.concatenate([b["y"] for b in binned]),
            "sw": np.concatenate([b["sw"] for b in binned])}


def fit_batch(data: Arrays, plan: dict[str, Any], bins: Arrays, indices: list[int]
              ) -> list[Arrays]:
    """Trees ``indices`` of the forest, on the whole dataset: each tree's arrays."""
    tune_malloc()  # dask's workers trim malloc's heap at 64 KiB: see aioforest._malloc
    sw = data["sw"] if data["sw"].size else None
    trees = fit_trees(ForestPlan.from_json(plan), bins_from_arrays(bins), data["codes"],
                      data["y"], sw, indices)
    return [t.arrays() for t in trees]


def tree_from_arrays(arrays: Arrays) -> TreeArrays:
    return TreeArrays.from_arrays(arrays)


# --- data mode: a partition's level state ---------------------------------------------------
def start_batch(binned: Arrays, bins: Arrays, plan: dict[str, Any], trees: list[int],
                offset: int, n_total: int, target_shift: int) -> Arrays:
    """The partition's share of a batch of trees, every instance at its tree's root."""
    tune_malloc()  # dask's workers trim malloc's heap at 64 KiB: see aioforest._malloc
    b = bins_from_arrays(bins)
    table = code_table(b, binned["codes"])
    local = partition_rows(ForestPlan.from_json(plan), trees, table, binned["y"], offset,
                           n_total, target_shift)
    return _state(table, local.rows)


def _state(table: CodeTable, rows: LevelRows) -> Arrays:
    return {"codes": table.codes, "n_features": np.array([table.n_features]),
            "n_bins": table.n_bins, "is_categorical": table.is_categorical,
            "row": rows.row, "weight": rows.weight, "y": rows.y, "node": rows.node}


def state_rows(state: Arrays) -> LocalRows:
    tune_malloc()  # dask's workers trim malloc's heap at 64 KiB: see aioforest._malloc
    table = CodeTable(state["codes"], int(state["n_features"][0]), state["n_bins"],
                      state["is_categorical"])
    return LocalRows(table, LevelRows(state["row"], state["weight"], state["y"],
                                      state["node"]))


def missing_in(state: Arrays, features: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    return state_rows(state).missing_in(features)


def node_totals(state: Arrays, n_nodes: int, n_channels: int, classification: bool
                ) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    counts, total = state_rows(state).node_totals(n_nodes, n_channels, classification)
    return counts, np.ascontiguousarray(total)


def keep_nodes(state: Arrays, keep: npt.NDArray[np.bool_]) -> Arrays:
    local = state_rows(state)
    local.keep_nodes(keep)
    return _state(local.table, local.rows)


def histograms(state: Arrays, args: dict[str, Any], arrays: Arrays) -> Arrays:
    request = HistogramRequest(
        arrays["candidates"], int(args["n_nodes"]), bool(args["all_splittable"]),
        DrawnFeatures(arrays["features"], arrays["valid"]),
        n_channels=int(args["n_channels"]), classification=bool(args["classification"]),
        integral=bool(args["integral"]), with_counts=bool(args["with_counts"]),
    )
    hist = state_rows(state).histograms(request)
    if not isinstance(hist, Histograms):  # never: the request has no Gini-scan totals
        raise TypeError(f"a partition answered {type(hist).__name__}, not Histograms")
    return hist.arrays()


def sum_histograms_of(*parts: Arrays) -> Arrays:
    """The partitions' histograms summed, on a worker: the client receives one (the stats
    are integers, so the order of the sums does not matter)."""
    return sum_histograms([Histograms.from_arrays(p) for p in parts]).arrays()


def route(state: Arrays, split: Arrays) -> Arrays:
    local = state_rows(state)
    local.route(NodeSplits(split["feature"], split["threshold_bin"], split["missing_left"],
                           split["improvement"], split["lut"]))
    return _state(local.table, local.rows)


def take_subtrees(state: Arrays, nodes: npt.NDArray[np.int64], n_nodes: int) -> Arrays:
    """The instances of ``nodes`` (an owner's share of a level's local subtrees)."""
    taken = state_rows(state).take_subtrees(nodes, n_nodes, remove=False)
    return {"codes": taken.codes, "y": taken.y, "weight": taken.weight,
            "subtree": taken.subtree}


def drop_nodes(state: Arrays, nodes: npt.NDArray[np.int64], n_nodes: int) -> Arrays:
    """The state without the rows of ``nodes`` (their subtrees grow elsewhere)."""
    keep = np.ones(n_nodes, dtype=bool)
    keep[nodes] = False
    return keep_nodes(state, keep)


def grow_owned(bins: Arrays, plan: dict[str, Any], trees: list[int], exact: list[Any],
               start: Arrays, depth: int, *pieces: Arrays) -> Arrays:
    """Grow the subtrees ``start`` describes (one owner's) from the rows every partition
    took for them: the driver's own ``grow_subtrees_here``. ``start["subtrees"]`` are their
    ids among the level's, which the records carry back."""
    tune_malloc()  # dask's workers trim malloc's heap at 64 KiB: see aioforest._malloc
    b, forest = bins_from_arrays(bins), ForestPlan.from_json(plan)
    owned = start["subtrees"]
    rows = SubtreeRows.concat([SubtreeRows(p["codes"], p["y"], p["weight"], p["subtree"])
                               for p in pieces])
    template = CodeTable(np.zeros(0, np.uint8), b.n_features, b.n_bins, b.is_categorical)
    here = rows.local(template)
    sub = SubtreeStart(np.arange(owned.size, dtype=np.int64), owned.size, start["tree"],
                       start["path"], start["constant"], start["constant_rate"],
                       start["root_weight"], depth)
    specs = [tree_spec(forest, i, b.n_features) for i in trees]
    class_weight = (np.asarray(forest.class_weight, dtype=np.float64)
                    if forest.class_weight is not None else None)
    records = grow_subtrees_here(b, specs, forest.grow_params(),
                                 Arithmetic(bool(exact[0]), bool(exact[1]), int(exact[2])),
                                 class_weight, sub, here).arrays()
    records["tree"] = owned[records["tree"]]
    return records


def oob_sums(binned: Arrays, bins: Arrays, plan: dict[str, Any], forest: Arrays,
             offset: int, n_total: int, mean: float | None) -> list[Any]:
    """The partition's out-of-bag sums (exact integers as decimal strings)."""
    tune_malloc()  # dask's workers trim malloc's heap at 64 KiB: see aioforest._malloc
    b = bins_from_arrays(bins)
    flat = FlatForest.from_parts(b, forest)
    sums = partition_oob_sums(ForestPlan.from_json(plan), flat, code_table(b, binned["codes"]),
                              binned["y"], offset, n_total, mean)
    return [sums[0], sums[1], *(str(s) for s in sums[2:])]
