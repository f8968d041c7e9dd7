"""Level-wise growth of a batch of trees on binned data.

All open nodes of all trees in the batch form one level; ``find_splits`` scores them in one
vectorised pass, so the Python overhead is paid per level, not per node or per tree. Each
tree's randomness comes only from its key (bootstrap weights are drawn by the caller from the
same key), and node ids are level-order ids within the tree, so a tree comes out the same
whichever batch it grows in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..data._binning import BinnedData
from ._arrays import TreeArrays
from ._criterion import impurity
from ._hashing import mix64
from ._splitter import Arithmetic, find_splits

__all__ = ["Arithmetic", "FitCancelled", "GrowParams", "TreeJob", "grow_trees"]


class FitCancelled(Exception):
    """Raised by :func:`grow_trees` when its ``should_stop`` callback says so."""

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
_ROUND_SALT = np.uint64(0xD1B54A32D192ED03)
_NODE_SALT = np.uint64(0x8CB92BA72F3D8DD7)


@dataclass(frozen=True)
class GrowParams:
    """Growth parameters, already validated and resolved to numbers."""

    criterion: str
    n_classes: int  # 0 for regression
    max_depth: int  # a huge number for "unlimited"
    min_samples_split: int
    min_samples_leaf: int
    min_weight_fraction_leaf: float
    min_impurity_decrease: float
    max_features: int  # features drawn per node


@dataclass(frozen=True)
class TreeJob:
    """One tree to grow: its random key, its in-bag rows and their weights."""

    key: int
    rows: I64
    weight: F64
    allowed_features: npt.NDArray[np.bool_] | None = None  # per-tree feature subspace


@dataclass
class _Records:
    tree: list[I64]
    local: list[I64]
    feature: list[I64]
    threshold_bin: list[I64]
    missing_left: list[npt.NDArray[np.bool_]]
    left: list[I64]
    right: list[I64]
    value: list[F64]
    impurity: list[F64]
    n: list[I64]
    wn: list[F64]
    improvement: list[F64]
    lut: list[npt.NDArray[np.bool_]]


def _draw_features(
    keys: npt.NDArray[np.uint64], local: I64, rounds: I64, excluded: npt.NDArray[np.bool_],
    k: int,
) -> tuple[I64, npt.NDArray[np.bool_]]:
    """k distinct features per node, uniformly among the non-excluded ones, in draw order.

    A node's features are ordered by a random key; taking them in that order is drawing
    without replacement. Excluded features get the largest key and come out invalid.
    """
    d = excluded.shape[1]
    node_key = mix64(local.astype(np.uint64) * _NODE_SALT)
    base = mix64(keys ^ node_key ^ (rounds.astype(np.uint64) * _ROUND_SALT))
    r = mix64(base[:, None] ^ mix64(np.arange(d, dtype=np.uint64) + np.uint64(1))[None, :])
    r[excluded] = _U64_MAX
    if k >= d or d <= 64:  # a short row sorts faster than it partitions, then sorts
        picks = np.argsort(r, axis=1, kind="stable")[:, :k].astype(np.int64)
    else:
        part = np.argpartition(r, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(r, part, axis=1), axis=1, kind="stable")
        picks = np.take_along_axis(part, order, axis=1).astype(np.int64)
    valid = np.take_along_axis(r, picks, axis=1) != _U64_MAX
    return picks, valid


def grow_trees(
    binned: BinnedData,
    y: I64 | F64,
    jobs: Sequence[TreeJob],
    params: GrowParams,
    exact: Arithmetic,
    class_weight: F64 | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[TreeArrays]:
    """Grow one tree per job; ``y`` holds class codes (classification) or targets.

    ``exact`` says how split statistics are summed and scored; it is the job's choice
    (``_plan.arithmetic``), so that no tree depends on the trees sharing its pass.

    ``should_stop`` is polled once per level: when it returns True the fit stops with
    :class:`FitCancelled` (a cluster worker uses it to drop a losing backup copy).
    """
    classification = params.n_classes > 0
    n_channels = params.n_classes if classification else 3
    d = binned.codes.shape[0]
    # Row-major copy: the k drawn features of one row then share a cache line.
    codes_flat = np.ascontiguousarray(binned.codes.T).reshape(-1)
    k = min(params.max_features, d)

    # --- instances: one per (tree, in-bag row) ---------------------------------------
    tree_keys = np.array([j.key & 0xFFFFFFFFFFFFFFFF for j in jobs], dtype=np.uint64)
    inst_row = np.concatenate([np.asarray(j.rows, dtype=np.int64) for j in jobs])
    inst_w = np.concatenate([np.asarray(j.weight, dtype=np.float64) for j in jobs])
    inst_tree = np.repeat(np.arange(len(jobs), dtype=np.int64), [len(j.rows) for j in jobs])
    keep = inst_w > 0
    inst_row, inst_w, inst_tree = inst_row[keep], inst_w[keep], inst_tree[keep]
    inst_y: I64 | F64 = (
        np.asarray(y, dtype=np.int64)[inst_row]
        if classification
        else np.asarray(y, dtype=np.float64)[inst_row]
    )
    allowed = np.ones((len(jobs), d), dtype=bool)
    for t, job in enumerate(jobs):
        if job.allowed_features is not None:
            allowed[t] = job.allowed_features
    constant_everywhere = binned.n_bins <= 1  # one real bin: never splittable unless missing
    # Open nodes: initially the roots; instances point at their open node.
    inst_node = inst_tree.copy()
    o_tree = np.arange(len(jobs), dtype=np.int64)
    o_local = np.zeros(len(jobs), dtype=np.int64)
    o_const = np.zeros((len(jobs), d), dtype=bool)
    o_rate = np.zeros(len(jobs))  # share of drawn features found constant at the parent
    next_local = np.ones(len(jobs), dtype=np.int64)
    root_weight = np.bincount(inst_tree, weights=inst_w, minlength=len(jobs))
    if class_weight is not None and classification:
        root_weight = np.bincount(
            inst_tree, weights=inst_w * class_weight[inst_y], minlength=len(jobs)
        )
    # Features with one bin and no missing value anywhere are constant in every node.
    has_missing = np.zeros(d, dtype=bool)
    if constant_everywhere.any():
        for f in np.flatnonzero(constant_everywhere):
            has_missing[f] = bool(np.any(binned.codes[f] == binned.n_bins[f]))
    o_const[:] = constant_everywhere & ~has_missing

    rec = _Records(*([] for _ in range(13)))
    depth = 0
    while o_tree.size:
        if should_stop is not None and should_stop():
            raise FitCancelled(f"cancelled at depth {depth}")
        m = o_tree.size
        total: npt.NDArray[Any]
        # --- node statistics -------------------------------------------------------
        n_node = np.bincount(inst_node, minlength=m)
        if classification:
            total = np.bincount(
                inst_node * n_channels + inst_y, weights=inst_w, minlength=m * n_channels
            ).reshape(m, n_channels)
            if class_weight is not None:
                total = total * class_weight
        else:
            yv = inst_y.astype(np.float64)
            total = np.stack(
                [
                    np.bincount(inst_node, weights=inst_w, minlength=m),
                    np.bincount(inst_node, weights=inst_w * yv, minlength=m),
                    np.bincount(inst_node, weights=inst_w * yv * yv, minlength=m),
                ],
                axis=1,
            )
        imp = impurity(params.criterion, np.ascontiguousarray(total.T))
        if classification:
            value = total / total.sum(axis=1, keepdims=True)
            pure = np.count_nonzero(total, axis=1) <= 1
        else:
            mean = total[:, 1] / total[:, 0]
            value = mean[:, None]
            pure = imp <= np.finfo(np.float64).eps * np.maximum(1.0, mean * mean)
        splittable = (
            ~pure
            & (depth < params.max_depth)
            & (n_node >= params.min_samples_split)
            & (n_node >= 2 * params.min_samples_leaf)
        )
        min_weight_leaf = None
        if params.min_weight_fraction_leaf > 0:
            min_weight_leaf = np.asarray(
                params.min_weight_fraction_leaf * root_weight[o_tree], dtype=np.float64
            )
            splittable &= total.sum(axis=1) >= 2 * min_weight_leaf if classification else (
                total[:, 0] >= 2 * min_weight_leaf
            )
        n_splittable = int(np.count_nonzero(splittable))
        if n_splittable < m:
            # Instances of nodes that cannot split end in a leaf here: drop them before the
            # split search, which then reads (and copies) only the others.
            keep = splittable[inst_node]
            inst_row, inst_w, inst_y, inst_node = (
                inst_row[keep], inst_w[keep], inst_y[keep], inst_node[keep]
            )
            del keep
        # --- split search -------------------------------------------------------------
        # Breiman/scikit-learn semantics: draw features without replacement until
        # ``max_features`` non-constant ones were evaluated (or none is left); features
        # found constant do not count, and children inherit that knowledge. To need fewer
        # passes, a node draws extra features when its parent met many constant ones; only
        # those up to its k-th non-constant one count, exactly as if drawn one by one.
        s_gain = np.full(m, -np.inf)
        s_feature = np.full(m, -1, dtype=np.int64)
        s_thr = np.zeros(m, dtype=np.int64)
        s_ml = np.zeros(m, dtype=bool)
        s_impr = np.zeros(m)
        s_lut = np.zeros((m, 256), dtype=bool)
        cand = np.flatnonzero(splittable)
        need = np.full(m, k, dtype=np.int64)
        visited = np.zeros((m, d), dtype=bool)
        n_eval = np.zeros(m, dtype=np.int64)
        n_const = np.zeros(m, dtype=np.int64)
        draw_round = 0
        while cand.size:
            excluded = o_const[cand] | ~allowed[o_tree[cand]] | visited[cand]
            avail = d - excluded.sum(axis=1)
            # expected share of constants: this node's so far, else its parent's
            seen = n_eval[cand]
            rate_now = np.where(seen > 0, n_const[cand] / np.maximum(seen, 1), o_rate[cand])
            n_draw = np.minimum(
                avail, np.ceil(need[cand] / np.maximum(1.0 - rate_now, 0.05)).astype(np.int64)
            )
            n_draw = np.maximum(n_draw, 1)
            feats, slot_valid = _draw_features(
                tree_keys[o_tree[cand]], o_local[cand], np.full(cand.size, draw_round),
                excluded, int(n_draw.max()),
            )
            slot_valid &= np.arange(feats.shape[1])[None, :] < n_draw[:, None]
            if cand.size == m:
                c_row, c_node, c_w, c_y = inst_row, inst_node, inst_w, inst_y
            else:
                remap = np.full(m, -1, dtype=np.int64)
                remap[cand] = np.arange(cand.size)
                c_node = remap[inst_node]
                del remap
                if cand.size == n_splittable:  # every instance's node is a candidate
                    c_row, c_w, c_y = inst_row, inst_w, inst_y
                else:
                    sel = c_node >= 0
                    c_row, c_node, c_w, c_y = (
                        inst_row[sel], c_node[sel], inst_w[sel], inst_y[sel]
                    )
                    del sel
            res = find_splits(
                codes_flat=codes_flat, n_features=d, n_bins=binned.n_bins,
                is_categorical=binned.is_categorical, inst_row=c_row,
                inst_node=c_node, inst_w=c_w, inst_y=c_y,
                node_total=np.ascontiguousarray(total[cand].T), feats=feats,
                slot_valid=slot_valid, need=need[cand], criterion=params.criterion,
                n_channels=n_channels, class_weight=class_weight, exact=exact,
                min_samples_leaf=params.min_samples_leaf,
                min_weight_leaf=None if min_weight_leaf is None else min_weight_leaf[cand],
            )
            rows_c, slots_c = np.nonzero(res.constant & slot_valid)
            o_const[cand[rows_c], feats[rows_c, slots_c]] = True
            rows_v, slots_v = np.nonzero(res.eligible)
            visited[cand[rows_v], feats[rows_v, slots_v]] = True
            n_eval[cand] += res.eligible.sum(axis=1)
            n_const[cand] += (res.eligible & res.constant).sum(axis=1)
            # Keep the better split across rounds; equal gains go to the smaller feature.
            better = res.found & (
                (res.improvement > s_gain[cand])
                | ((res.improvement == s_gain[cand]) & (res.feature < s_feature[cand]))
            )
            upd = cand[better]
            s_gain[upd] = res.improvement[better]
            s_feature[upd] = res.feature[better]
            s_thr[upd] = res.threshold_bin[better]
            s_ml[upd] = res.missing_left[better]
            s_impr[upd] = res.improvement[better]
            s_lut[upd] = res.lut[better]
            need[cand] -= (res.eligible & ~res.constant).sum(axis=1)
            left_to_draw = (~(o_const[cand] | ~allowed[o_tree[cand]] | visited[cand])).any(axis=1)
            cand = cand[(need[cand] > 0) & left_to_draw]
            draw_round += 1
            del res, c_row, c_node, c_w, c_y  # before the next round allocates its own
        rate = np.where(n_eval > 0, n_const / np.maximum(n_eval, 1), o_rate)
        split_found = (s_feature >= 0) & (
            s_impr / root_weight[o_tree] + np.finfo(np.float64).eps
            >= params.min_impurity_decrease
        )
        s_feature[~split_found] = -1
        s_impr[~split_found] = 0.0
        # --- record this level's nodes ----------------------------------------------
        split_nodes = np.flatnonzero(split_found)
        n_split = split_nodes.size
        sp_tree = o_tree[split_nodes]
        # children get consecutive level-order ids within their tree
        first = np.searchsorted(sp_tree, sp_tree, side="left")
        rank = np.arange(n_split) - first
        left_local = np.full(m, -1, dtype=np.int64)
        right_local = np.full(m, -1, dtype=np.int64)
        left_local[split_nodes] = next_local[sp_tree] + 2 * rank
        right_local[split_nodes] = left_local[split_nodes] + 1
        next_local += 2 * np.bincount(sp_tree, minlength=len(jobs))
        rec.tree.append(o_tree)
        rec.local.append(o_local)
        rec.feature.append(s_feature)
        rec.threshold_bin.append(s_thr)
        rec.missing_left.append(s_ml)
        rec.left.append(left_local)
        rec.right.append(right_local)
        rec.value.append(value)
        rec.impurity.append(imp)
        rec.n.append(n_node.astype(np.int64))
        rec.wn.append(np.asarray(total[:, 0] if not classification else total.sum(axis=1)))
        rec.improvement.append(s_impr)
        # Only categorical splits keep their table (a numeric one is its threshold).
        rec.lut.append(s_lut[split_nodes[binned.is_categorical[s_feature[split_nodes]]]])
        if n_split == 0:
            break
        # --- move instances to children; drop those that reached a leaf ----------------
        child_of = np.full(m, -1, dtype=np.int64)
        child_of[split_nodes] = np.arange(n_split) * 2
        c = child_of[inst_node]
        alive = c >= 0
        inst_row, inst_w, inst_y, inst_node = (
            inst_row[alive], inst_w[alive], inst_y[alive], inst_node[alive]
        )
        c = c[alive]
        split_feature = s_feature[inst_node]
        b = codes_flat[inst_row * d + split_feature]
        # numeric: bins up to the threshold go left; the missing bin follows missing_left
        goes_left = b <= s_thr[inst_node]
        missing = b == binned.n_bins[split_feature]
        if missing.any():
            goes_left[missing] = s_ml[inst_node[missing]]
        del split_feature, missing
        cat_node = binned.is_categorical[np.maximum(s_feature, 0)] & split_found
        if cat_node.any():
            ci = np.flatnonzero(cat_node[inst_node])
            goes_left[ci] = s_lut[inst_node[ci], b[ci]]
        inst_node = c + (~goes_left).astype(np.int64)
        o_tree = np.repeat(sp_tree, 2)
        o_local = np.column_stack([left_local[split_nodes], right_local[split_nodes]]).ravel()
        o_const = np.repeat(o_const[split_nodes], 2, axis=0)
        o_rate = np.repeat(rate[split_nodes], 2)
        depth += 1
    return _assemble(rec, len(jobs), binned)


def _column(
    parts: list[npt.NDArray[Any]], order: npt.NDArray[np.intp], dtype: Any
) -> npt.NDArray[Any]:
    """One column of all records, in node order; the record list is emptied."""
    out = np.concatenate(parts)[order].astype(dtype, copy=False)
    parts.clear()
    return out


def _assemble(rec: _Records, n_trees: int, binned: BinnedData) -> list[TreeArrays]:
    """Each tree's arrays, nodes in level order, from the per-level records.

    Every column is sorted once for the whole batch (each record list is dropped as soon as
    it is used) and the trees' arrays are slices of these columns.
    """
    tree = np.concatenate(rec.tree)
    local = np.concatenate(rec.local)
    rec.tree.clear()
    rec.local.clear()
    order = np.lexsort((local, tree))
    del local
    bounds = np.searchsorted(tree[order], np.arange(n_trees + 1))
    del tree

    feature_rec = np.concatenate(rec.feature)
    rec.feature.clear()
    # The categorical split tables were recorded in record order: find each node's row.
    cat_rec = (feature_rec >= 0) & binned.is_categorical[np.maximum(feature_rec, 0)]
    lut_row = np.full(feature_rec.size, -1, dtype=np.int64)
    lut_row[cat_rec] = np.arange(int(np.count_nonzero(cat_rec)))
    lut_row = lut_row[order]
    luts = np.concatenate(rec.lut) if rec.lut else np.zeros((0, 256), dtype=bool)
    rec.lut.clear()
    feature = feature_rec[order].astype(np.int32)
    del feature_rec, cat_rec
    threshold_bin = _column(rec.threshold_bin, order, np.int64)
    missing_left = _column(rec.missing_left, order, np.bool_)
    left = _column(rec.left, order, np.int32)
    right = _column(rec.right, order, np.int32)
    value = _column(rec.value, order, np.float64)
    impurity_ = _column(rec.impurity, order, np.float64)
    n_samples = _column(rec.n, order, np.int64)
    weighted = _column(rec.wn, order, np.float64)
    improvement = _column(rec.improvement, order, np.float64)
    del order
    # All features' edges in one array, each followed by +inf (the "missing vs rest" split
    # sends every non-missing value left).
    flat_edges = np.concatenate([np.append(e, np.inf) for e in binned.edges])
    edge_offsets = np.concatenate([[0], np.cumsum([e.size + 1 for e in binned.edges])[:-1]])
    edge_offsets = edge_offsets.astype(np.int64)
    out = []
    for t in range(n_trees):
        lo, hi = bounds[t], bounds[t + 1]
        feat = feature[lo:hi]
        thr_bin = threshold_bin[lo:hi]
        is_split = feat >= 0
        cat_split = is_split & binned.is_categorical[np.maximum(feat, 0)]
        threshold = np.full(feat.size, np.nan)
        num = np.flatnonzero(is_split & ~cat_split)
        threshold[num] = flat_edges[edge_offsets[feat[num]] + thr_bin[num]]
        cat_nodes = np.flatnonzero(cat_split)
        cat_index = np.full(feat.size, -1, dtype=np.int32)
        cat_index[cat_nodes] = np.arange(cat_nodes.size, dtype=np.int32)
        cat_left = luts[lut_row[lo:hi][cat_nodes]]
        # The missing bin of a categorical feature is not a category: keep only real ones.
        for j, i in enumerate(cat_nodes):
            cat_left[j, binned.n_bins[feat[i]]:] = False
        out.append(
            TreeArrays(
                feature=feat,
                threshold=threshold,
                threshold_bin=np.where(is_split, thr_bin, 0).astype(np.int16),
                missing_left=missing_left[lo:hi],
                left=left[lo:hi],
                right=right[lo:hi],
                value=value[lo:hi],
                impurity=impurity_[lo:hi],
                n_node_samples=n_samples[lo:hi],
                weighted_n_node_samples=weighted[lo:hi],
                improvement=improvement[lo:hi],
                cat_index=cat_index,
                cat_left=cat_left,
            )
        )
    return out
