"""Stage 2 of a level: the best split of each node, from its summed histograms.

:func:`choose_splits` needs only the histograms of a round (:class:`~._histogram.Histograms`)
and the candidates' totals: never the rows. For every group (node, drawn feature) it takes
prefix sums over the bins in scan order (categories first ordered by their target
statistic), scores every threshold with both directions for missing values and the
"missing vs rest" split, and keeps each node's best; equal scores go to the first bin and
then to the smallest feature index.

Exact (int64) statistics are prefix-summed in integers and scored in float64, or in
float32 when the job chose ``single`` (counts below 2**24 stay exact: scoring moves half
the bytes, and the chosen splits' improvements are recomputed in float64).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._criterion import Criterion, Gini
from ._histogram import (
    DrawnFeatures,
    GiniScan,
    Histograms,
    consecutive_spans,
    run_sums,
    runs,
)

__all__ = ["CHUNK_CELLS", "Candidates", "RoundSplits", "SplitRules", "choose_splits"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]

_NEG = -np.inf
#: Below this many cells per group on average, per-group reductions use ``ufunc.at``
#: (reduceat pays a call per group); above, reduceat's contiguous loops are faster.
_SHORT_GROUPS = 12


@dataclass(frozen=True, eq=False)
class SplitRules:
    """What a split must satisfy and how it is scored: fixed for a whole job."""

    criterion: Criterion
    n_bins: npt.NDArray[np.int32]
    is_categorical: B1
    class_weight: F64 | None
    min_samples_leaf: int
    single: bool  # score in float32


@dataclass(frozen=True, eq=False)
class Candidates:
    """The nodes searched in one round: their drawn features and totals.

    ``need[i]``: how many more non-constant features node ``i`` must evaluate; only the
    slots up to that many non-constant ones count. ``total`` is channel-major
    ``(n_channels, s)``; ``min_weight_leaf`` a per-node weight, or None.
    """

    drawn: DrawnFeatures
    need: I64
    total: F64
    min_weight_leaf: F64 | None


@dataclass(frozen=True, eq=False)
class RoundSplits:
    """The best split of each candidate node in one round (arrays of length s, or (s, k))."""

    found: B1  # a valid split exists
    feature: I64
    threshold_bin: I64  # numeric: bins <= this go left
    missing_left: B1
    improvement: F64  # weighted impurity decrease (before dividing by the root weight)
    lut: B1  # (s, 256): does bin b go left? (filled for categorical splits only)
    constant: B1  # (s, k): the slot's feature is constant in the node
    eligible: B1  # (s, k): the slot counts (it comes before the node's need-th non-constant)
    chosen: I64  # (s,): index of the chosen cell, -1 where no split was found

    @classmethod
    def concatenate(cls, parts: Sequence[RoundSplits]) -> RoundSplits:
        """The splits of consecutive candidate ranges, as one."""
        if len(parts) == 1:
            return parts[0]
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts])
                      for name in cls.__dataclass_fields__})

    @classmethod
    def none(cls, s: int, k: int) -> RoundSplits:
        """No split for any of ``s`` nodes (no rows, or no feature to score)."""
        return cls(
            found=np.zeros(s, dtype=bool), feature=np.full(s, -1, dtype=np.int64),
            threshold_bin=np.zeros(s, dtype=np.int64), missing_left=np.zeros(s, dtype=bool),
            improvement=np.zeros(s), lut=np.zeros((s, 256), dtype=bool),
            constant=np.zeros((s, k), dtype=bool), eligible=np.zeros((s, k), dtype=bool),
            chosen=np.full(s, -1, dtype=np.int64),
        )


@dataclass(frozen=True, eq=False)
class _Scored:
    """Every cell's score in scan order, and what choosing a split needs of the groups."""

    ent_grp: I64
    ent_bin: I64
    miss: B1  # the cell is a missing-value bin
    score: F64  # -inf where no split may be made
    use_b: B1  # the score sends missing values left
    gstart: I64  # first cell of each present group
    gid: I64  # each cell's group
    has_miss: B1  # per group
    n_nonmissing: I64  # per group: non-missing cells
    w_left: F64  # non-missing weight left of each cell's threshold
    w_nm: F64  # per group: non-missing weight


#: Stage 2 scores the candidates in chunks of whole nodes of at most about this many
#: cells, for the reason of ``CHUNK_ELEMENTS``: its per-cell temporaries stay small enough
#: to be reused. With exact statistics a node's choice reads only its own cells, so chunks
#: never change a split. Float statistics are not cut: their prefix sums run through all
#: the cells in one pass, carrying each group's rounding into the next.
CHUNK_CELLS = 1 << 18


def choose_splits(
    hist: Histograms | GiniScan, cand: Candidates, rules: SplitRules
) -> RoundSplits:
    """Each candidate's best split in this round, from the round's histograms.

    The histograms are consumed: their arrays may be changed in place and are freed as
    soon as they are used up.
    """
    s, k = cand.drawn.shape
    exact = isinstance(hist, GiniScan) or hist.stats.dtype == np.int64
    if hist.cells.size <= CHUNK_CELLS or s == 1 or not exact:
        return _choose_chunk(hist, cand, rules)
    cells_per_node = k * hist.bins_per_group
    first = np.searchsorted(hist.cells, np.arange(s + 1) * cells_per_node)
    parts = []
    for span in consecutive_spans(np.diff(first), CHUNK_CELLS):
        lo, hi = int(first[span.start]), int(first[span.stop])
        drawn = DrawnFeatures(cand.drawn.features[span], cand.drawn.valid[span])
        if lo == hi:  # nodes without a cell (no feature to score): what _select gives
            parts.append(_no_cells(drawn, cand.need[span]))
            continue
        offset = span.start * cells_per_node
        part = _choose_chunk(_cells_slice(hist, lo, hi, offset), Candidates(
            drawn, cand.need[span], cand.total[:, span],
            None if cand.min_weight_leaf is None else cand.min_weight_leaf[span],
        ), rules)
        part.chosen[part.chosen >= 0] += lo
        parts.append(part)
    del hist
    return RoundSplits.concatenate(parts)


def _no_cells(drawn: DrawnFeatures, need: I64) -> RoundSplits:
    """The splits of nodes with no cell at all: none found, nothing constant, and their
    valid slots up to the need-th eligible, as :func:`_select` marks them."""
    out = RoundSplits.none(*drawn.shape)
    valid = drawn.valid
    out.eligible[:] = valid & ((np.cumsum(valid, axis=1) - valid) < need[:, None])
    return out


def _cells_slice(hist: Histograms | GiniScan, lo: int, hi: int, offset: int
                 ) -> Histograms | GiniScan:
    """Cells ``lo:hi`` of ``hist``, numbered from ``offset``."""
    cells = hist.cells[lo:hi] - offset
    if isinstance(hist, GiniScan):
        return GiniScan(cells, hist.sq[lo:hi], hist.tl[lo:hi], hist.w[lo:hi],
                        hist.bins_per_group)
    return Histograms(cells, hist.stats[:, lo:hi],
                      None if hist.counts is None else hist.counts[lo:hi],
                      hist.bins_per_group)


def _choose_chunk(
    hist: Histograms | GiniScan, cand: Candidates, rules: SplitRules
) -> RoundSplits:
    if isinstance(hist, GiniScan):
        return _choose_from_gini_scan(hist, cand, rules)
    cells, H, N, n_bins_d = hist.cells, hist.stats, hist.counts, hist.bins_per_group
    del hist
    k = cand.drawn.features.shape[1]
    ent_grp = cells // n_bins_d
    ent_bin = cells - ent_grp * n_bins_d
    del cells
    miss = ent_bin == rules.n_bins[cand.drawn.features.reshape(-1)[ent_grp]]
    if rules.is_categorical[cand.drawn.features.reshape(-1)[ent_grp]].any():
        ent_grp, ent_bin, miss, H, N = _order_categories(
            ent_grp, ent_bin, miss, H, N, k, cand, rules
        )
    if rules.min_samples_leaf <= 1:
        N = None
    return _score_and_select(ent_grp, ent_bin, miss, H, N, cand, rules)


def _order_categories(
    ent_grp: I64, ent_bin: I64, miss: B1, H: npt.NDArray[Any], N: I64 | None, k: int,
    cand: Candidates, rules: SplitRules,
) -> tuple[I64, I64, B1, npt.NDArray[Any], I64 | None]:
    """Put each categorical group's categories in the order of their target statistic.

    Classification orders by the share of the node's majority class, regression by the
    mean; missing values stay last; numeric groups keep bin order.
    """
    n_entries = ent_grp.size
    is_cat_ent = rules.is_categorical[cand.drawn.features.reshape(-1)[ent_grp]]
    ent_node = ent_grp // k
    if rules.criterion.classification:
        target = np.argmax(cand.total, axis=0)[ent_node]
        cw = rules.class_weight
        Hw = H * cw[:, None] if cw is not None else H
        stat = Hw[target, np.arange(n_entries)] / rules.criterion.weight(Hw)
        del Hw
    else:
        stat = H[1] / H[0]
    secondary = np.where(is_cat_ent, stat, ent_bin.astype(np.float64))
    secondary[miss] = np.inf
    order = np.lexsort((ent_bin, secondary, ent_grp))
    return (
        ent_grp[order], ent_bin[order], miss[order], H[:, order],
        None if N is None else N[order],
    )


def _group_prefix_sums(
    H: npt.NDArray[Any], miss: B1, any_miss: bool, gstart: I64, score_type: Any
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any] | None]:
    """(left, group totals of non-missing cells, missing cells' statistics).

    Prefix sums restart at every group: subtract the previous group's total at each group
    start, then one cumsum runs over all groups. Exact counts stay int64 through the sums
    (exact, and several times faster than a float cumsum) and become ``score_type`` after.
    """
    counts_in_h = H.dtype == np.int64
    h_miss = None
    if any_miss:
        h_miss = H[:, miss].astype(score_type)  # the missing values' statistics
        Hn = np.where(miss[None, :], H.dtype.type(0), H)
    else:
        # A copy in C order, as the scan always used: float sums over the channels run
        # in an order that follows the layout.
        Hn = np.ascontiguousarray(H)
    del H
    # integers: one running sum finds the groups' totals (reduceat pays a call per group)
    group_sum = run_sums(Hn, gstart) if counts_in_h else np.add.reduceat(Hn, gstart, axis=1)
    Hn[:, gstart[1:]] -= group_sum[:, :-1]
    np.cumsum(Hn, axis=1, out=Hn)
    if counts_in_h:
        return Hn.astype(score_type), group_sum.astype(score_type), h_miss
    return Hn, group_sum, h_miss


def _leaf_count_rule(
    N: I64, miss: B1, gstart: I64, gid: I64, last_nm: I64, min_samples_leaf: int
) -> tuple[B1, B1]:
    """Whether each threshold leaves ``min_samples_leaf`` rows on both sides, with missing
    values sent right (A) or left (B)."""
    n_present = gstart.size
    Nn = np.where(miss, 0, N)
    cn = np.cumsum(Nn)
    nbase = np.zeros(n_present, dtype=np.int64)
    nbase[1:] = cn[gstart[1:] - 1]
    n_left = cn - nbase[gid]
    n_nm = n_left[last_nm]
    n_miss = np.zeros(n_present, dtype=np.int64)
    n_miss[gid[miss]] = N[miss]
    ok_a = (n_left >= min_samples_leaf) & (n_nm[gid] - n_left + n_miss[gid] >= min_samples_leaf)
    ok_b = (n_left + n_miss[gid] >= min_samples_leaf) & (n_nm[gid] - n_left >= min_samples_leaf)
    return ok_a, ok_b


def _score_and_select(
    ent_grp: I64, ent_bin: I64, miss: B1, H: npt.NDArray[Any], N: I64 | None,
    cand: Candidates, rules: SplitRules,
) -> RoundSplits:
    """Score every threshold of every group and keep each node's best."""
    crit = rules.criterion
    k = cand.drawn.features.shape[1]
    n_entries = ent_grp.size
    any_miss = bool(miss.any())
    gstart, gid = runs(ent_grp)
    n_present = gstart.size
    gend = np.append(gstart[1:], n_entries)
    left, nm_total, h_miss = _group_prefix_sums(
        H, miss, any_miss, gstart, np.float32 if rules.single else np.float64
    )
    del H
    if rules.class_weight is not None:
        # Weighted only after the (exact, integer) prefix sums: a sum of non-integers would
        # carry rounding from one group into the next and tie a tree to its batch.
        cw = rules.class_weight[:, None]
        left *= cw
        nm_total = nm_total * cw
        h_miss = h_miss * cw if h_miss is not None else None
    has_miss = np.zeros(n_present, dtype=bool)
    m_total = None
    if h_miss is not None:
        idx = np.arange(n_entries)
        has_miss[gid[miss]] = True
        m_total = np.zeros_like(nm_total)
        m_total[:, gid[miss]] = h_miss
        del h_miss
        last_nm = gend - 1 - has_miss
        # option A: missing values go right (at the last non-missing cell: "missing vs rest")
        cand_a = ~miss & ((idx < last_nm[gid]) | has_miss[gid])
        # option B: missing values go left
        cand_b = ~miss & (idx < last_nm[gid]) & has_miss[gid]
    else:
        last_nm = gend - 1
        cand_a = np.ones(n_entries, dtype=bool)  # every cell but its group's last
        cand_a[last_nm] = False
        cand_b = np.zeros(0, dtype=bool)
    if N is not None:
        ok_a, ok_b = _leaf_count_rule(N, miss, gstart, gid, last_nm, rules.min_samples_leaf)
        cand_a &= ok_a
        if any_miss:
            cand_b &= ok_b
    total_g = nm_total + m_total if m_total is not None else nm_total
    right = np.repeat(total_g, gend - gstart, axis=1)
    right -= left
    with np.errstate(divide="ignore", invalid="ignore"):
        score = crit.proxy(left, right)
    if cand.min_weight_leaf is not None:
        # scikit-learn's min_weight_fraction_leaf, resolved per node to a weight
        mwl = cand.min_weight_leaf[ent_grp // k]
        w_left, w_right = crit.weight(left), crit.weight(right)
        cand_a &= (w_left >= mwl) & (w_right >= mwl)
        if m_total is not None:
            w_miss = crit.weight(m_total)[gid]
            cand_b &= (w_left + w_miss >= mwl) & (w_right - w_miss >= mwl)
    del right
    score[~cand_a] = _NEG
    use_b = _missing_left_option(score, left, m_total, total_g, gid, cand_b, crit)
    scored = _Scored(
        ent_grp=ent_grp, ent_bin=ent_bin, miss=miss, score=score, use_b=use_b, gstart=gstart,
        gid=gid, has_miss=has_miss, n_nonmissing=last_nm - gstart + 1,
        w_left=crit.weight(left), w_nm=crit.weight(nm_total),
    )
    res = _select(scored, cand, rules, improvements=not rules.single)
    if rules.single and res.chosen.size:
        _exact_improvements(res, left, nm_total, m_total, has_miss, gid, cand, crit)
    return res


def _missing_left_option(
    score: F64, left: npt.NDArray[Any], m_total: npt.NDArray[Any] | None,
    total_g: npt.NDArray[Any], gid: I64, cand_b: B1, crit: Criterion,
) -> B1:
    """Where sending missing values left scores better: mark it and raise ``score``."""
    use_b = np.zeros(score.size, dtype=bool)
    if m_total is None:
        return use_b
    ib = np.flatnonzero(cand_b)
    if ib.size:
        lb = left[:, ib] + m_total[:, gid[ib]]
        score_b = crit.proxy(lb, total_g[:, gid[ib]] - lb)
        better = score_b > score[ib]
        use_b[ib[better]] = True
        score[ib[better]] = score_b[better]
    return use_b


def _exact_improvements(
    res: RoundSplits, left: npt.NDArray[Any], nm_total: npt.NDArray[Any],
    m_total: npt.NDArray[Any] | None, has_miss: B1, gid: I64, cand: Candidates,
    crit: Criterion,
) -> None:
    """The chosen splits' improvements in float64 (importances, min_impurity_decrease)."""
    nodes = np.flatnonzero(res.found)
    u = res.chosen[nodes]
    lc = left[:, u].astype(np.float64)
    tg = (nm_total + m_total if m_total is not None else nm_total)[:, gid[u]].astype(
        np.float64
    )
    if m_total is not None:
        lc += np.where(res.missing_left[nodes] & has_miss[gid[u]], 1.0, 0.0) * (
            m_total[:, gid[u]].astype(np.float64)
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = crit.proxy(lc, tg - lc)
    res.improvement[nodes] = exact - crit.node_term(cand.total[:, nodes])


def _choose_from_gini_scan(scan: GiniScan, cand: Candidates, rules: SplitRules) -> RoundSplits:
    """Gini scores from a :class:`GiniScan`: three prefix sums instead of one per class.

    ``sum_c R_c^2 = sum_c T_c^2 - 2 sum_c T_c L_c + sum_c L_c^2``; every term is an exact
    integer in float64, so the scores equal the per-class path's bit for bit.
    """
    n_bins_d = scan.bins_per_group
    ent_grp = scan.cells // n_bins_d
    ent_bin = scan.cells - ent_grp * n_bins_d
    n_entries = ent_grp.size
    gstart, gid = runs(ent_grp)
    gend = np.append(gstart[1:], n_entries)
    stacked = np.stack([scan.sq, scan.tl, scan.w])
    del scan
    group_sum = np.add.reduceat(stacked, gstart, axis=1)
    stacked[:, gstart[1:]] -= group_sum[:, :-1]
    sq_left, tl_left, w_left = np.cumsum(stacked, axis=1)
    g_node = ent_grp[gstart] // cand.drawn.features.shape[1]
    t_sq = np.einsum("cs,cs->s", cand.total, cand.total)[g_node][gid]
    w_total = group_sum[2][gid]
    sq_right = t_sq - 2.0 * tl_left + sq_left
    with np.errstate(divide="ignore", invalid="ignore"):
        score = sq_left / w_left + sq_right / (w_total - w_left)
    score[np.arange(n_entries) >= (gend - 1)[gid]] = _NEG
    miss = np.zeros(n_entries, dtype=bool)
    scored = _Scored(
        ent_grp=ent_grp, ent_bin=ent_bin, miss=miss, score=score, use_b=miss, gstart=gstart,
        gid=gid, has_miss=np.zeros(gstart.size, dtype=bool), n_nonmissing=gend - gstart,
        w_left=w_left, w_nm=group_sum[2],
    )
    assert isinstance(rules.criterion, Gini)
    return _select(scored, cand, rules, improvements=True)


def _select(
    sc: _Scored, cand: Candidates, rules: SplitRules, *, improvements: bool
) -> RoundSplits:
    """Each node's best split, from every cell's score.

    Without ``improvements`` the caller computes the chosen splits' improvements itself.
    """
    feats = cand.drawn.features
    s, k = feats.shape
    n_entries = sc.ent_grp.size
    n_present = sc.gstart.size
    idx = np.arange(n_entries)
    # --- best cell per group, then best group per node ---------------------------------
    # (ufunc.at, not reduceat: groups are a cell or two at deep levels, and reduceat pays a
    # call per group; a maximum and a minimum do not depend on the order they are taken in)
    short = n_entries < _SHORT_GROUPS * n_present
    if short:
        seg_max = np.full(n_present, _NEG, dtype=sc.score.dtype)  # (a cast is slow here)
        np.maximum.at(seg_max, sc.gid, sc.score)
    else:
        seg_max = np.maximum.reduceat(sc.score, sc.gstart)
    is_best = sc.score == seg_max[sc.gid]
    is_best &= sc.score > _NEG
    first_best = np.where(is_best, idx, n_entries)
    if short:
        best_u = np.full(n_present, n_entries, dtype=np.int64)
        np.minimum.at(best_u, sc.gid, first_best)
    else:
        best_u = np.minimum.reduceat(first_best, sc.gstart)
    g_ids = sc.ent_grp[sc.gstart]
    g_node = g_ids // k
    g_slot = g_ids - g_node * k
    constant = np.zeros((s, k), dtype=bool)
    constant[g_node, g_slot] = (sc.n_nonmissing == 0) | ((sc.n_nonmissing == 1) & ~sc.has_miss)
    # Slots are in draw order: only those up to the need-th non-constant one count.
    valid = cand.drawn.valid
    nonconst = valid & ~constant
    eligible = valid & ((np.cumsum(nonconst, axis=1) - nonconst) < cand.need[:, None])
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
    threshold_bin[nodes] = sc.ent_bin[u]
    missing_left = np.zeros(s, dtype=bool)
    missing_left[nodes] = sc.use_b[u]
    # A node that saw no missing value on its feature sends future ones to the heavier side.
    no_miss = ~sc.has_miss[chosen_g]
    if no_miss.any():
        lw = sc.w_left[u]
        tw = sc.w_nm[chosen_g]
        heavier_left = lw >= tw - lw
        missing_left[nodes[no_miss]] = heavier_left[no_miss]
    improvement = np.zeros(s)
    if improvements:
        improvement[nodes] = best_gain[nodes] - rules.criterion.node_term(cand.total[:, nodes])
    lut = _left_tables(sc, rules, nodes, feature, chosen_g, best_u, missing_left, s)
    return RoundSplits(
        found=found, feature=feature, threshold_bin=threshold_bin, missing_left=missing_left,
        improvement=improvement, lut=lut, constant=constant, eligible=eligible,
        chosen=chosen,
    )


def _left_tables(
    sc: _Scored, rules: SplitRules, nodes: I64, feature: I64, chosen_g: I64, best_u: I64,
    missing_left: B1, s: int,
) -> B1:
    """Per node, whether bin b goes left; filled for categorical splits only (a numeric
    split is its threshold and ``missing_left``)."""
    lut = np.zeros((s, 256), dtype=bool)
    if not nodes.size:
        return lut
    cat_sel = rules.is_categorical[feature[nodes]]
    if cat_sel.any():
        cat_nodes = nodes[cat_sel]
        cat_groups = chosen_g[cat_sel]
        owner = np.full(sc.gstart.size, -1, dtype=np.int64)
        owner[cat_groups] = cat_nodes
        ent_owner = owner[sc.gid]
        take = (ent_owner >= 0) & ~sc.miss & (np.arange(sc.ent_grp.size) <= best_u[sc.gid])
        lut[ent_owner[take], sc.ent_bin[take]] = True
    # The missing-value bin of the split feature follows missing_left.
    lut[nodes, rules.n_bins[feature[nodes]]] = missing_left[nodes]
    return lut
