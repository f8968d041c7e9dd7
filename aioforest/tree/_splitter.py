"""Histogram split search for every open node of a level in one vectorised pass.

Each open node has ``k`` drawn features ("slots"); a *group* is one (node, slot) pair. For
every group we need the statistics of each non-empty bin, in bin order. Two ways build them,
and both give the same numbers:

* dense: ``np.bincount`` over (group, bin, class) cells, cheap while the cells are few
  (the top levels of a tree);
* sorted: one ``np.sort`` of uint64 keys that pack (group, bin) above (class, count), then
  run lengths; cheap when the cells far outnumber the samples (deep levels).

With integer weights (bootstrap counts) every sum is exact, so a tree does not depend on the
path taken or on which other trees share the pass. Non-integer sums (regression, sample
weights) are only ever formed within one tree, in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._criterion import chansum, node_term, proxy

__all__ = ["Arithmetic", "LevelSplits", "find_splits"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]

_NEG = -np.inf
#: From this many classes on, gini scores use the class-count-independent scan. Below it,
#: per-class integer prefix sums are cheaper (measured: 15 classes 0.79 s against 0.93 s,
#: 20 classes 0.85 s against 0.74 s).
INCREMENTAL_MIN_CLASSES = 18
#: Dense histograms cost about one pass per (cell, channel), present or not; sorted ones
#: a sort and some passes per element, and one per present (cell, channel). So dense wins
#: while the empty cells (times channels) are fewer than this many times the elements.
#: Either path gives the same numbers.
DENSE_CELLS_PER_ELEMENT = 1.0


def _dense_is_cheaper(n_cells: int, n_channels: int, n_elements: int) -> bool:
    """Whether to build a level's histograms dense (see ``DENSE_CELLS_PER_ELEMENT``)."""
    # cells left empty, if the elements fell into them uniformly at random
    empty = n_cells * float(np.exp(-n_elements / max(n_cells, 1)))
    return n_channels * empty <= DENSE_CELLS_PER_ELEMENT * n_elements


@dataclass(frozen=True)
class Arithmetic:
    """How split statistics are summed and scored, chosen once per job (``_plan.arithmetic``).

    ``integral``: all weights are integers and sums are exact. ``single``: score in float32.
    """

    integral: bool
    single: bool


@dataclass
class LevelSplits:
    """The best split of each candidate node (arrays of length s, or (s, k))."""

    found: B1  # a valid split exists
    feature: I64
    threshold_bin: I64  # numeric: bins <= this go left
    missing_left: B1
    improvement: F64  # weighted impurity decrease (before dividing by the root weight)
    lut: B1  # (s, 256): does bin b go left? (filled for categorical splits only)
    constant: B1  # (s, k): the slot's feature is constant in the node
    eligible: B1  # (s, k): the slot counts (it comes before the node's need-th non-constant)
    chosen: I64  # (s,): index of the chosen entry, -1 where no split was found


def _runs(cells: npt.NDArray[Any]) -> tuple[I64, I64]:
    """For a sorted array: the start of each run of equal values, and each element's run."""
    new = np.empty(cells.size, dtype=bool)
    new[0] = True
    np.not_equal(cells[1:], cells[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    run = np.cumsum(new, dtype=np.int64)
    run -= 1
    return starts, run


def _entries_sorted_packed(
    keys: npt.NDArray[Any], payload_bits: int, w_bits: int, cls_bits: int,
    n_channels: int, with_counts: bool,
) -> tuple[I64, npt.NDArray[Any], npt.NDArray[Any] | None]:
    """Entries from sorted keys ``cell << payload_bits | class << w_bits | count``."""
    kt = keys.dtype.type
    cells = keys >> kt(payload_bits)
    starts, run = _runs(cells)
    n_elements = cells.size
    ent_cells = cells[starts].astype(np.int64)
    del cells
    n_entries = starts.size
    # channel-major: index = class * n_entries + entry
    ys = ((keys >> kt(w_bits)) & kt((1 << cls_bits) - 1)).astype(np.int64)
    ys *= n_entries
    ys += run
    del run
    ws = (keys & kt((1 << w_bits) - 1)).astype(np.float64)
    stats = np.bincount(ys, weights=ws, minlength=n_entries * n_channels).reshape(
        n_channels, n_entries
    )
    del ys, ws
    counts = np.diff(np.append(starts, n_elements)) if with_counts else None
    # integer counts: their prefix sums are exact, and integer cumsum is fast
    return ent_cells, stats.astype(np.int64), counts


def _entries_sorted_general(
    cell: I64, y: npt.NDArray[Any], w: F64, n_channels: int, classification: bool,
    integral: bool,
) -> tuple[I64, npt.NDArray[Any], npt.NDArray[Any]]:
    """Entries via a stable argsort, for weights or targets that cannot be packed."""
    order = np.argsort(cell, kind="stable")
    cells_sorted = cell[order]
    starts, run = _runs(cells_sorted)
    n_entries = starts.size
    ws = w[order]
    if classification:
        stats = np.bincount(
            y[order].astype(np.int64) * n_entries + run, weights=ws,
            minlength=n_entries * n_channels,
        ).reshape(n_channels, n_entries)
    else:
        yv = y.astype(np.float64)[order]
        wy = ws * yv
        stats = np.stack(
            [
                np.bincount(run, weights=ws, minlength=n_entries),
                np.bincount(run, weights=wy, minlength=n_entries),
                np.bincount(run, weights=wy * yv, minlength=n_entries),
            ]
        )
    counts = np.diff(np.append(starts, cells_sorted.size))
    return cells_sorted[starts], (stats.astype(np.int64) if integral else stats), counts


def _entries_dense(
    cell: I64, n_cells: int, y: npt.NDArray[Any], w: F64, n_channels: int,
    classification: bool, integral: bool,
) -> tuple[I64, npt.NDArray[Any], npt.NDArray[Any]]:
    """Entries via dense bincounts over every (group, bin) cell.

    With classification, ``y`` is scratch: it becomes the (class, cell) index in place.
    """
    counts_all = np.bincount(cell, minlength=n_cells)
    present = np.flatnonzero(counts_all)
    if classification:
        index = np.asarray(y, dtype=np.int64)
        index *= n_cells
        index += cell
        full = np.bincount(index, weights=w, minlength=n_cells * n_channels).reshape(
            n_channels, n_cells
        )
        del index
        stats = full[:, present]
        del full
    else:
        yv = y.astype(np.float64)
        wy = w * yv
        stats = np.stack(
            [
                np.bincount(cell, weights=w, minlength=n_cells)[present],
                np.bincount(cell, weights=wy, minlength=n_cells)[present],
                np.bincount(cell, weights=wy * yv, minlength=n_cells)[present],
            ]
        )
    return (
        present.astype(np.int64),
        stats.astype(np.int64) if integral else stats,
        counts_all[present],
    )


def find_splits(
    *,
    codes_flat: npt.NDArray[np.uint8],
    n_features: int,
    n_bins: npt.NDArray[np.int32],
    is_categorical: B1,
    inst_row: I64,
    inst_node: I64,
    inst_w: F64,
    inst_y: I64 | F64,
    node_total: F64,
    feats: I64,
    slot_valid: B1,
    need: I64,
    criterion: str,
    n_channels: int,
    class_weight: F64 | None,
    exact: Arithmetic,
    min_samples_leaf: int,
    min_weight_leaf: F64 | None = None,
) -> LevelSplits:
    """Best split for each of the ``s = feats.shape[0]`` candidate nodes.

    ``codes_flat`` is the row-major code matrix, flattened. ``inst_node`` gives each
    instance's candidate index in [0, s); ``node_total`` holds each
    node's (class-weighted) statistics, channel-major (n_channels, s).

    The temporaries hold several arrays of one value per (instance, drawn feature)
    element; each is dropped as soon as it is used up, which bounds the peak memory of a
    level at a few of them.
    """
    s, k = feats.shape
    classification = criterion != "squared_error"
    n_groups = s * k
    n_inst = inst_row.size
    valid_feats = feats[slot_valid]
    if n_inst == 0 or valid_feats.size == 0:
        return LevelSplits(
            found=np.zeros(s, dtype=bool), feature=np.full(s, -1, dtype=np.int64),
            threshold_bin=np.zeros(s, dtype=np.int64), missing_left=np.zeros(s, dtype=bool),
            improvement=np.zeros(s), lut=np.zeros((s, 256), dtype=bool),
            constant=np.zeros((s, k), dtype=bool), eligible=np.zeros((s, k), dtype=bool),
            chosen=np.full(s, -1, dtype=np.int64),
        )
    n_bins_d = int(n_bins[valid_feats].max(initial=1)) + 1
    single = exact.single
    # --- the bin of every (instance, drawn feature) element --------------------------------
    all_valid = bool(slot_valid.all())
    # Nodes draw different numbers of features. While most slots are used, every
    # (instance, slot) pair is built and the unused ones are compressed out at the end:
    # whole-row np.take gathers are several times faster than gathering pairs one by one.
    # Otherwise (a pass where a few nodes draw many features) only the used pairs are.
    valid: B1 | None = None
    pairs: tuple[I64, I64] | None = None  # (instance, slot) of each element
    if not all_valid:
        valid = np.take(slot_valid, inst_node, axis=0).reshape(-1)
    n_elements = n_inst * k if valid is None else int(np.count_nonzero(valid))
    if valid is not None and 2 * n_elements < valid.size:
        flat = np.flatnonzero(valid)
        del valid
        valid = None
        e_inst, e_slot = np.divmod(flat, k)
        del flat
        pairs = (e_inst, e_slot)
        e_bins = codes_flat[
            inst_row[e_inst] * n_features + feats.reshape(-1)[inst_node[e_inst] * k + e_slot]
        ]
    else:
        idx = np.take(feats, inst_node, axis=0)
        idx += (inst_row * n_features)[:, None]
        e_bins = codes_flat[idx]  # (n_inst, k)
        del idx
    n_cells = n_groups * n_bins_d
    use_dense = _dense_is_cheaper(n_cells, n_channels, n_elements)
    packed = False
    cls_bits = w_bits = payload_bits = 0
    if classification and exact.integral and not use_dense:
        cls_bits = max(int(n_channels - 1).bit_length(), 1)
        w_bits = max(int(inst_w.max(initial=1)).bit_length(), 1)
        payload_bits = cls_bits + w_bits
        packed = n_cells.bit_length() + payload_bits <= 63
    # [cells, H, N], handed over to _best_splits (see there)
    entries: list[Any]
    if packed:
        # keys = (group * n_bins_d + bin) << payload | class << w_bits | count, built from
        # an instance part, a slot part and the bin, without materialising group ids.
        # 32-bit keys sort faster; most levels fit.
        kt: Any = np.uint32 if n_cells.bit_length() + payload_bits <= 32 else np.uint64
        pb = kt(payload_bits)
        inst_part = (inst_node.astype(kt) * kt(k * n_bins_d)) << pb
        inst_part |= (inst_y.astype(kt) << kt(w_bits)) | inst_w.astype(kt)
        slot_part = (np.arange(k, dtype=kt) * kt(n_bins_d)) << pb
        keys = e_bins.astype(kt)
        del e_bins
        keys <<= pb
        if pairs is not None:
            keys += inst_part[pairs[0]]
            keys += slot_part[pairs[1]]
        else:
            keys += inst_part[:, None]
            keys += slot_part[None, :]
            keys = keys.reshape(-1) if valid is None else keys.reshape(-1)[valid]
        del inst_part
        keys.sort()
        if (
            criterion == "gini" and class_weight is None and min_samples_leaf == 1
            and min_weight_leaf is None and n_channels >= INCREMENTAL_MIN_CLASSES
            and not is_categorical[valid_feats].any()
        ):
            res = _gini_incremental(
                keys, payload_bits=payload_bits, w_bits=w_bits, cls_bits=cls_bits,
                n_channels=n_channels, n_bins_d=n_bins_d, feats=feats, slot_valid=slot_valid,
                need=need, n_bins=n_bins, is_categorical=is_categorical, node_total=node_total,
            )
            if res is not None:
                return res
        entries = list(
            _entries_sorted_packed(
                keys, payload_bits, w_bits, cls_bits, n_channels, min_samples_leaf > 1
            )
        )
        del keys
    else:
        e_y: npt.NDArray[Any]
        if pairs is not None:
            e_inst, e_slot = pairs
            cell = inst_node[e_inst] * (k * n_bins_d) + e_slot * n_bins_d + e_bins
            e_y, e_w = inst_y[e_inst], inst_w[e_inst]
        else:
            cell = (inst_node * (k * n_bins_d))[:, None] + (
                np.arange(k, dtype=np.int64) * n_bins_d
            )[None, :]
            cell += e_bins
            cell = cell.reshape(-1)
            e_y = np.repeat(inst_y, k)
            e_w = np.repeat(inst_w, k)
            if valid is not None:
                cell, e_y, e_w = cell[valid], e_y[valid], e_w[valid]
        del e_bins, pairs
        if use_dense:
            entries = list(
                _entries_dense(
                    cell, n_cells, e_y, e_w, n_channels, classification, exact.integral
                )
            )
        else:
            entries = list(
                _entries_sorted_general(
                    cell, e_y, e_w, n_channels, classification, exact.integral
                )
            )
        del cell, e_y, e_w
    return _best_splits(
        entries=entries, n_bins_d=n_bins_d, feats=feats, slot_valid=slot_valid, need=need,
        n_bins=n_bins, is_categorical=is_categorical, node_total=node_total,
        criterion=criterion, class_weight=class_weight, min_samples_leaf=min_samples_leaf,
        min_weight_leaf=min_weight_leaf, single=single,
    )


def _gini_incremental(
    keys: npt.NDArray[Any],
    *,
    payload_bits: int,
    w_bits: int,
    cls_bits: int,
    n_channels: int,
    n_bins_d: int,
    feats: I64,
    slot_valid: B1,
    need: I64,
    n_bins: npt.NDArray[np.int32],
    is_categorical: B1,
    node_total: F64,
) -> LevelSplits | None:
    """Gini scores with work independent of the number of classes (None: not applicable).

    With many classes the per-class prefix sums dominate. Instead, scanning a group's
    elements in bin order, adding an element of class c and count w to the left side raises
    sum_c L_c^2 by 2*w*L_c + w^2 and sum_c T_c*L_c by w*T_c, where L_c is the count of class
    c before it. Those increments are summed per (group, bin) and prefix-summed: three
    arrays instead of one per class. All sums are of integers, so they are exact.
    ``keys`` must be sorted (cell << payload | class << w_bits | count).
    """
    k = feats.shape[1]
    n = keys.size
    kt = keys.dtype.type
    # Per-element arrays are dropped as soon as they are used up (they dominate the memory).
    cells = keys >> kt(payload_bits)
    starts, run = _runs(cells)
    ent_cells = cells[starts].astype(np.int64)
    ent_grp = ent_cells // n_bins_d
    ent_bin = ent_cells - ent_grp * n_bins_d
    if np.any(ent_bin == n_bins[feats.reshape(-1)[ent_grp]]):
        return None  # missing values: the general path handles their direction
    e_grp = (cells // kt(n_bins_d)).astype(np.int64)
    del cells
    ys = ((keys >> kt(w_bits)) & kt((1 << cls_bits) - 1)).astype(np.int64)
    ws = (keys & kt((1 << w_bits) - 1)).astype(np.float64)
    # Count of the same class earlier in the same group: order elements by (group, class),
    # keeping their scan position in the low bits, and take exclusive running sums.
    pos_bits = max(int(n).bit_length(), 1)
    gc = e_grp * n_channels + ys
    if int(gc[-1]).bit_length() + pos_bits > 63:
        return None
    key2 = gc.astype(np.uint64)
    del gc
    key2 <<= np.uint64(pos_bits)
    key2 |= np.arange(n, dtype=np.uint64)
    key2.sort()
    pos2 = (key2 & np.uint64((1 << pos_bits) - 1)).astype(np.int64)
    key2 >>= np.uint64(pos_bits)
    seg_starts, seg_id = _runs(key2)
    del key2
    w2 = ws[pos2]
    running = np.cumsum(w2)
    running -= w2
    del w2
    running -= running[seg_starts][seg_id]
    del seg_id
    before = np.empty(n)
    before[pos2] = running
    del running, pos2
    e_node = e_grp // k
    del e_grp
    t_e = node_total[ys, e_node]
    del ys, e_node
    n_entries = starts.size
    # ws * (2 * before + ws) and ws * t_e, computed in place
    before *= 2.0
    before += ws
    before *= ws
    inc_sq = np.bincount(run, weights=before, minlength=n_entries)
    del before
    t_e *= ws
    inc_tl = np.bincount(run, weights=t_e, minlength=n_entries)
    del t_e
    inc_w = np.bincount(run, weights=ws, minlength=n_entries)
    del run, ws
    gstart, gid = _runs(ent_grp)
    gend = np.append(gstart[1:], n_entries)
    stacked = np.stack([inc_sq, inc_tl, inc_w])
    group_sum = np.add.reduceat(stacked, gstart, axis=1)
    stacked[:, gstart[1:]] -= group_sum[:, :-1]
    sq_left, tl_left, w_left = np.cumsum(stacked, axis=1)
    g_node = ent_grp[gstart] // k
    t_sq = np.einsum("cs,cs->s", node_total, node_total)[g_node][gid]
    w_total = group_sum[2][gid]
    sq_right = t_sq - 2.0 * tl_left + sq_left
    with np.errstate(divide="ignore", invalid="ignore"):
        score = sq_left / w_left + sq_right / (w_total - w_left)
    last = gend - 1
    score[np.arange(n_entries) >= last[gid]] = _NEG
    miss = np.zeros(n_entries, dtype=bool)
    return _select(
        feats=feats, slot_valid=slot_valid, need=need, n_bins=n_bins,
        is_categorical=is_categorical, node_total=node_total, criterion="gini",
        ent_grp=ent_grp, ent_bin=ent_bin, miss=miss, score=score,
        use_b=miss, gstart=gstart, gid=gid, has_miss=np.zeros(gstart.size, dtype=bool),
        n_nonmissing=gend - gstart, w_left=w_left, w_nm=group_sum[2],
    )


def _best_splits(
    *,
    entries: list[Any],
    n_bins_d: int,
    feats: I64,
    slot_valid: B1,
    need: I64,
    n_bins: npt.NDArray[np.int32],
    is_categorical: B1,
    node_total: F64,
    criterion: str,
    class_weight: F64 | None,
    min_samples_leaf: int,
    min_weight_leaf: F64 | None,
    single: bool = False,
) -> LevelSplits:
    """Score every threshold of every group and keep each node's best.

    ``entries`` is ``[cells, H, N]``, handed over (the list is emptied) so that each array
    can be freed as soon as it is used up: ``cells`` are (group, bin) cell ids in increasing
    order, ``H`` their statistics (channel-major) and ``N`` their sample counts (None when
    ``min_samples_leaf`` is 1). An int64 H holds exact counts: its prefix sums are taken in
    integers (exact, and several times faster than a float cumsum) and scored in float64,
    or in float32 with ``single`` (counts below 2**24 stay exact: scoring moves half the
    bytes, and the chosen splits' improvements are recomputed in float64).
    """
    cells, H, N = entries
    entries.clear()
    counts_in_h = H.dtype == np.int64
    score_type = np.float32 if single else np.float64
    k = feats.shape[1]
    classification = criterion != "squared_error"
    n_entries = cells.size
    ent_grp = cells // n_bins_d
    ent_bin = cells - ent_grp * n_bins_d
    del cells
    ent_feat = feats.reshape(-1)[ent_grp]
    miss = ent_bin == n_bins[ent_feat]
    any_miss = bool(miss.any())
    # --- categorical groups: order categories by a target statistic --------------------
    is_cat_ent = is_categorical[ent_feat]
    del ent_feat
    if is_cat_ent.any():
        ent_node = ent_grp // k
        if classification:
            target = np.argmax(node_total, axis=0)[ent_node]
            Hw = H * class_weight[:, None] if class_weight is not None else H
            stat = Hw[target, np.arange(n_entries)] / chansum(Hw)
            del Hw
        else:
            stat = H[1] / H[0]
        secondary = np.where(is_cat_ent, stat, ent_bin.astype(np.float64))
        secondary[miss] = np.inf
        order = np.lexsort((ent_bin, secondary, ent_grp))
        del ent_node, stat, secondary
        ent_grp, ent_bin = ent_grp[order], ent_bin[order]
        miss, H = miss[order], H[:, order]
        N = None if N is None else N[order]
        del order
    del is_cat_ent
    if min_samples_leaf <= 1:
        del N
    # --- segmented prefix sums within each group ---------------------------------------
    gstart, gid = _runs(ent_grp)
    n_present = gstart.size
    gend = np.append(gstart[1:], n_entries)
    group_size = gend - gstart
    if any_miss:
        h_miss = H[:, miss].astype(score_type)  # the missing values' statistics
        Hn = np.where(miss[None, :], H.dtype.type(0), H)
    else:
        # Ours (the entries were handed over), in C order as the copy taken here always
        # was: float sums over the channels run in an order that follows the layout.
        Hn = np.ascontiguousarray(H)
    del H
    # Prefix sums that restart at every group: subtract the previous group's total at each
    # group start, then one cumsum runs over all groups.
    group_sum = np.add.reduceat(Hn, gstart, axis=1)
    Hn[:, gstart[1:]] -= group_sum[:, :-1]
    np.cumsum(Hn, axis=1, out=Hn)
    if counts_in_h:
        left = Hn.astype(score_type)
        group_sum = group_sum.astype(score_type)
    else:
        left = Hn
    del Hn
    nm_total = group_sum  # per group: statistics of the non-missing entries
    if class_weight is not None:
        # Weighted only after the (exact, integer) prefix sums: a sum of non-integers would
        # carry rounding from one group into the next and tie a tree to its batch.
        left *= class_weight[:, None]
        nm_total = nm_total * class_weight[:, None]
        if any_miss:
            h_miss = h_miss * class_weight[:, None]
    idx = np.arange(n_entries)
    if any_miss:
        has_miss = np.zeros(n_present, dtype=bool)
        has_miss[gid[miss]] = True
        m_total = np.zeros_like(nm_total)
        m_total[:, gid[miss]] = h_miss
        del h_miss
        last_nm = gend - 1 - has_miss
        # option A: missing values go right (at the last non-missing entry: "missing vs rest")
        cand_a = ~miss & ((idx < last_nm[gid]) | has_miss[gid])
        # option B: missing values go left
        cand_b = ~miss & (idx < last_nm[gid]) & has_miss[gid]
    else:
        has_miss = np.zeros(n_present, dtype=bool)
        last_nm = gend - 1
        cand_a = idx < last_nm[gid]
        cand_b = np.zeros(0, dtype=bool)
    n_nonmissing = last_nm - gstart + 1
    if min_samples_leaf > 1:
        Nn = np.where(miss, 0, N)
        cn = np.cumsum(Nn)
        nbase = np.zeros(n_present, dtype=np.int64)
        nbase[1:] = cn[gstart[1:] - 1]
        n_left = cn - nbase[gid]
        n_nm = n_left[last_nm]
        n_miss = np.zeros(n_present, dtype=np.int64)
        n_miss[gid[miss]] = N[miss]
        cand_a &= (n_left >= min_samples_leaf) & (
            n_nm[gid] - n_left + n_miss[gid] >= min_samples_leaf
        )
        if any_miss:
            cand_b &= (n_left + n_miss[gid] >= min_samples_leaf) & (
                n_nm[gid] - n_left >= min_samples_leaf
            )
    total_g = nm_total + m_total if any_miss else nm_total
    right = np.repeat(total_g, group_size, axis=1)
    right -= left
    with np.errstate(divide="ignore", invalid="ignore"):
        score = proxy(criterion, left, right)
    if min_weight_leaf is not None:
        # scikit-learn's min_weight_fraction_leaf, resolved per node to a weight
        mwl = min_weight_leaf[ent_grp // k]
        w_left = left[0] if not classification else chansum(left)
        w_right = right[0] if not classification else chansum(right)
        cand_a &= (w_left >= mwl) & (w_right >= mwl)
        if any_miss:
            w_miss = (m_total[0] if not classification else chansum(m_total))[gid]
            cand_b &= (w_left + w_miss >= mwl) & (w_right - w_miss >= mwl)
    del right
    score[~cand_a] = _NEG
    use_b = np.zeros(n_entries, dtype=bool)
    if any_miss:
        ib = np.flatnonzero(cand_b)
        if ib.size:
            lb = left[:, ib] + m_total[:, gid[ib]]
            score_b = proxy(criterion, lb, total_g[:, gid[ib]] - lb)
            better = score_b > score[ib]
            use_b[ib[better]] = True
            score[ib[better]] = score_b[better]
    w_left = left[0] if not classification else chansum(left)
    w_nm = nm_total[0] if not classification else chansum(nm_total)
    res = _select(
        feats=feats, slot_valid=slot_valid, need=need, n_bins=n_bins,
        is_categorical=is_categorical, node_total=node_total, criterion=criterion,
        ent_grp=ent_grp, ent_bin=ent_bin, miss=miss, score=score, use_b=use_b,
        gstart=gstart, gid=gid, has_miss=has_miss, n_nonmissing=n_nonmissing,
        w_left=w_left, w_nm=w_nm, improvements=not single,
    )
    if single and res.chosen.size:
        # exact improvements of the chosen splits (importances, min_impurity_decrease)
        nodes = np.flatnonzero(res.found)
        u = res.chosen[nodes]
        lc = left[:, u].astype(np.float64)
        tg = (nm_total + m_total if any_miss else nm_total)[:, gid[u]].astype(np.float64)
        if any_miss:
            lc += np.where(res.missing_left[nodes] & has_miss[gid[u]], 1.0, 0.0) * (
                m_total[:, gid[u]].astype(np.float64)
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            exact = proxy(criterion, lc, tg - lc)
        res.improvement[nodes] = exact - node_term(criterion, node_total[:, nodes])
    return res


def _select(
    *,
    feats: I64,
    slot_valid: B1,
    need: I64,
    n_bins: npt.NDArray[np.int32],
    is_categorical: B1,
    node_total: F64,
    criterion: str,
    ent_grp: I64,
    ent_bin: I64,
    miss: B1,
    score: F64,
    use_b: B1,
    gstart: I64,
    gid: I64,
    has_miss: B1,
    n_nonmissing: I64,
    w_left: F64,
    w_nm: F64,
    improvements: bool = True,
) -> LevelSplits:
    """Each node's best split, from every entry's score.

    Without ``improvements`` the caller computes the chosen splits' improvements itself.

    Entries are (group, bin) cells in scan order; ``score`` is -inf where no split may be
    made, ``use_b`` marks scores with missing values sent left, ``w_left`` is the
    non-missing weight left of each entry's threshold and ``w_nm`` each group's non-missing
    weight.
    """
    s, k = feats.shape
    n_entries = ent_grp.size
    n_present = gstart.size
    idx = np.arange(n_entries)
    # --- best entry per group, then best group per node ---------------------------------
    seg_max = np.maximum.reduceat(score, gstart)
    is_best = score == seg_max[gid]
    is_best &= score > _NEG
    best_u = np.minimum.reduceat(np.where(is_best, idx, n_entries), gstart)
    g_ids = ent_grp[gstart]
    g_node = g_ids // k
    g_slot = g_ids - g_node * k
    constant = np.zeros((s, k), dtype=bool)
    constant[g_node, g_slot] = (n_nonmissing == 0) | ((n_nonmissing == 1) & ~has_miss)
    # Slots are in draw order: only those up to the need-th non-constant one count.
    nonconst = slot_valid & ~constant
    eligible = slot_valid & ((np.cumsum(nonconst, axis=1) - nonconst) < need[:, None])
    gain = np.full((s, k), _NEG)
    gain[g_node, g_slot] = seg_max
    gain[~eligible] = _NEG
    best_gain = gain.max(axis=1)
    found = best_gain > _NEG
    tie_feats = np.where(gain == best_gain[:, None], feats, np.iinfo(np.int64).max)
    best_slot = np.argmin(tie_feats, axis=1)

    group_index = np.full(s * k, -1, dtype=np.int64)
    group_index[g_ids] = np.arange(n_present)
    nodes = np.flatnonzero(found)
    chosen_g = group_index[nodes * k + best_slot[nodes]]
    u = best_u[chosen_g]
    chosen = np.full(s, -1, dtype=np.int64)
    chosen[nodes] = u
    feature = np.full(s, -1, dtype=np.int64)
    feature[nodes] = feats[nodes, best_slot[nodes]]
    threshold_bin = np.zeros(s, dtype=np.int64)
    threshold_bin[nodes] = ent_bin[u]
    missing_left = np.zeros(s, dtype=bool)
    missing_left[nodes] = use_b[u]
    # A node that saw no missing value on its feature sends future ones to the heavier side.
    no_miss = ~has_miss[chosen_g]
    if no_miss.any():
        lw = w_left[u]
        tw = w_nm[chosen_g]
        heavier_left = lw >= tw - lw
        missing_left[nodes[no_miss]] = heavier_left[no_miss]
    improvement = np.zeros(s)
    if improvements:
        improvement[nodes] = best_gain[nodes] - node_term(criterion, node_total[:, nodes])
    # --- left-bin lookup tables ---------------------------------------------------------
    # (a numeric split is its threshold and missing_left: no table)
    lut = np.zeros((s, 256), dtype=bool)
    if nodes.size:
        cat_sel = is_categorical[feature[nodes]]
        if cat_sel.any():
            cat_nodes = nodes[cat_sel]
            cat_groups = chosen_g[cat_sel]
            owner = np.full(n_present, -1, dtype=np.int64)
            owner[cat_groups] = cat_nodes
            ent_owner = owner[gid]
            take = (ent_owner >= 0) & ~miss & (idx <= best_u[gid])
            lut[ent_owner[take], ent_bin[take]] = True
        # The missing-value bin of the split feature follows missing_left.
        lut[nodes, n_bins[feature[nodes]]] = missing_left[nodes]
    return LevelSplits(
        found=found, feature=feature, threshold_bin=threshold_bin, missing_left=missing_left,
        improvement=improvement, lut=lut, constant=constant, eligible=eligible,
        chosen=chosen,
    )
