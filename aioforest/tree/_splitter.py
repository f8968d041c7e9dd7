"""The split search of one level: rounds of feature draws, each through stages 1 and 2.

Breiman's and scikit-learn's semantics: a node draws features without replacement until
``max_features`` non-constant ones were evaluated (or none is left); features found
constant do not count, and children inherit that knowledge. To need fewer rounds, a node
draws extra features when its parent met many constant ones; only those up to its k-th
non-constant one count, exactly as if drawn one by one.

Each round builds the candidates' histograms (:mod:`._histogram`) and chooses their best
splits (:mod:`._splitting`); the best split over the rounds wins, equal gains going to the
smaller feature. The policies below pick between equivalent paths and never change a tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._criterion import Gini
from ._hashing import mix64
from ._histogram import DrawnFeatures, consecutive_spans
from ._routing import NodeSplits
from ._rows import ROUND_CELLS, HistogramRequest, RowSource
from ._splitting import Candidates, RoundSplits, SplitRules, choose_splits

__all__ = [
    "INCREMENTAL_MIN_CLASSES",
    "ROOT_PATH",
    "Arithmetic",
    "OpenNodes",
    "SearchSpace",
    "child_paths",
    "draw_features",
    "node_groups",
    "search_splits",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]

#: From this many classes on, gini scores use the class-count-independent scan
#: (``GiniScan``). Below it, per-class integer prefix sums are cheaper (measured: 15 classes
#: 0.79 s against 0.93 s, 20 classes 0.85 s against 0.74 s).
INCREMENTAL_MIN_CLASSES = 18

_U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
_ROUND_SALT = np.uint64(0xD1B54A32D192ED03)
_NODE_SALT = np.uint64(0x8CB92BA72F3D8DD7)


@dataclass(frozen=True)
class Arithmetic:
    """How split statistics are summed and scored, chosen once per job (``_plan.arithmetic``).

    ``integral``: all weights are integers and sums are exact. ``single``: score in float32.
    ``target_shift``: regression targets enter the sums as the integers
    ``rint(y * 2**target_shift)`` (fixed point), so their sums are exact too; values,
    impurities and improvements are scaled back by powers of two, which is exact.
    """

    integral: bool
    single: bool
    target_shift: int = 0


@dataclass(frozen=True, eq=False)
class SearchSpace:
    """What the split search needs besides the level: fixed for one ``grow_trees`` call."""

    rules: SplitRules
    tree_keys: npt.NDArray[np.uint64]  # per tree of the batch
    allowed: B1  # (n_trees, n_features): each tree's feature subspace
    max_features: int
    n_channels: int  # of a node's statistics
    hist_channels: int  # of a histogram cell
    integral: bool


@dataclass(frozen=True, eq=False)
class OpenNodes:
    """The open nodes of a level: their tree, level-order id, path key, and what their
    ancestors learned (``constant``: features constant in the node; ``constant_rate``: the
    share of drawn features the parent found constant).

    The path key names a node by its path from the root (:func:`child_paths`), not by its
    position in a level, so a node's feature draws do not depend on its cousins: a subtree
    can grow anywhere and draw the same features.
    """

    tree: I64
    local: I64
    path: npt.NDArray[np.uint64]
    constant: B1  # (m, n_features); the search marks the features it finds constant
    constant_rate: F64

    @property
    def size(self) -> int:
        return int(self.tree.size)


#: The path key of every root.
ROOT_PATH = np.uint64(0x243F6A8885A308D3)
_SIDE_SALT = np.array([0x13198A2E03707344, 0xA4093822299F31D0], dtype=np.uint64)


def child_paths(paths: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The (left, right) children's path keys of each node, interleaved."""
    out: npt.NDArray[np.uint64] = mix64(
        (np.repeat(paths, 2).reshape(-1, 2) ^ _SIDE_SALT[None, :]).reshape(-1)
    )
    return out


def draw_features(
    keys: npt.NDArray[np.uint64], paths: npt.NDArray[np.uint64], rounds: I64, excluded: B1,
    k: int,
) -> tuple[I64, B1]:
    """k distinct features per node, uniformly among the non-excluded ones, in draw order.

    A node's features are ordered by a random key of (tree key, path key, round, feature);
    taking them in that order is drawing without replacement. Excluded features get the
    largest key and come out invalid.
    """
    d = excluded.shape[1]
    node_key = mix64(paths * _NODE_SALT)
    base = mix64(keys ^ node_key ^ (rounds.astype(np.uint64) * _ROUND_SALT))
    r = mix64(base[:, None] ^ mix64(np.arange(d, dtype=np.uint64) + np.uint64(1))[None, :])
    r[excluded] = _U64_MAX
    if k >= d or d <= 64:  # a short row sorts faster than it partitions, then sorts
        picks = _order_of_keys(r)[:, :k]
    else:
        part = np.argpartition(r, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(r, part, axis=1), axis=1, kind="stable")
        picks = np.take_along_axis(part, order, axis=1).astype(np.int64)
    valid = np.take_along_axis(r, picks, axis=1) != _U64_MAX
    return picks, valid


def _order_of_keys(r: npt.NDArray[np.uint64]) -> I64:
    """Each row's stable argsort, by a faster unstable sort.

    A row's keys are distinct (``mix64`` is a bijection, applied to distinct inputs)
    except the excluded features' ``_U64_MAX``: those come last in both sorts, and the
    stable order of them, by feature, comes from a stable sort of the flags alone.
    """
    order = np.argsort(r, axis=1).astype(np.int64, copy=False)
    is_max = r == _U64_MAX
    if is_max.any():
        tail = np.take_along_axis(is_max, order, axis=1)
        flags_order = np.argsort(is_max, axis=1, kind="stable").astype(np.int64, copy=False)
        np.copyto(order, flags_order, where=tail)
    return order


@dataclass
class _Search:
    """The state of one level's search across rounds (arrays over the level's nodes)."""

    need: I64
    visited: B1
    n_eval: I64
    n_const: I64
    gain: F64
    feature: I64
    threshold_bin: I64
    missing_left: B1
    improvement: F64
    lut: B1

    @classmethod
    def start(cls, m: int, d: int, k: int) -> _Search:
        return cls(
            need=np.full(m, k, dtype=np.int64), visited=np.zeros((m, d), dtype=bool),
            n_eval=np.zeros(m, dtype=np.int64), n_const=np.zeros(m, dtype=np.int64),
            gain=np.full(m, -np.inf), feature=np.full(m, -1, dtype=np.int64),
            threshold_bin=np.zeros(m, dtype=np.int64), missing_left=np.zeros(m, dtype=bool),
            improvement=np.zeros(m), lut=np.zeros((m, 256), dtype=bool),
        )

    def keep_better(self, cand: I64, res: RoundSplits) -> None:
        """Keep the better split across rounds; equal gains go to the smaller feature."""
        better = res.found & (
            (res.improvement > self.gain[cand])
            | ((res.improvement == self.gain[cand]) & (res.feature < self.feature[cand]))
        )
        upd = cand[better]
        self.gain[upd] = res.improvement[better]
        self.feature[upd] = res.feature[better]
        self.threshold_bin[upd] = res.threshold_bin[better]
        self.missing_left[upd] = res.missing_left[better]
        self.improvement[upd] = res.improvement[better]
        self.lut[upd] = res.lut[better]


def search_splits(
    space: SearchSpace, nodes: OpenNodes, rows: RowSource, total: npt.NDArray[Any],
    splittable: B1, min_weight_leaf: F64 | None,
) -> tuple[NodeSplits, F64]:
    """Each node's best split over the draw rounds, and the share of drawn features found
    constant in it (its children's ``constant_rate``).

    ``rows`` holds only rows of splittable nodes; ``total`` is node-major.
    """
    m, d = nodes.constant.shape
    st = _Search.start(m, d, min(space.max_features, d))
    n_splittable = int(np.count_nonzero(splittable))
    cand = np.flatnonzero(splittable)
    draw_round = 0
    while cand.size:
        drawn = _draw_round(space, nodes, st, cand, draw_round)
        res = _search_round(space, rows, cand, drawn, st.need[cand], total, min_weight_leaf,
                            m, n_splittable)
        feats = drawn.features
        rows_c, slots_c = np.nonzero(res.constant & drawn.valid)
        nodes.constant[cand[rows_c], feats[rows_c, slots_c]] = True
        rows_v, slots_v = np.nonzero(res.eligible)
        st.visited[cand[rows_v], feats[rows_v, slots_v]] = True
        st.n_eval[cand] += res.eligible.sum(axis=1)
        st.n_const[cand] += (res.eligible & res.constant).sum(axis=1)
        st.keep_better(cand, res)
        st.need[cand] -= (res.eligible & ~res.constant).sum(axis=1)
        left_to_draw = (~_excluded(space, nodes, st, cand)).any(axis=1)
        cand = cand[(st.need[cand] > 0) & left_to_draw]
        draw_round += 1
        del res  # before the next round allocates its own
    rate = np.where(st.n_eval > 0, st.n_const / np.maximum(st.n_eval, 1), nodes.constant_rate)
    splits = NodeSplits(st.feature, st.threshold_bin, st.missing_left, st.improvement, st.lut)
    return splits, rate


def _excluded(space: SearchSpace, nodes: OpenNodes, st: _Search, cand: I64) -> B1:
    """Features a candidate may not draw: constant in it, outside its subspace, or seen."""
    return nodes.constant[cand] | ~space.allowed[nodes.tree[cand]] | st.visited[cand]


def _draw_round(
    space: SearchSpace, nodes: OpenNodes, st: _Search, cand: I64, draw_round: int
) -> DrawnFeatures:
    excluded = _excluded(space, nodes, st, cand)
    avail = excluded.shape[1] - excluded.sum(axis=1)
    if space.integral and bool((st.need[cand] >= avail).all()):
        # Every candidate scores all its features (max_features covers them): with exact
        # sums the order of the slots then changes nothing (every one counts, and equal
        # gains go to the smaller feature), so no draw is needed, and slot j is feature j.
        # (Float prefix sums run through the slots in order: they keep the drawn order.)
        d = excluded.shape[1]
        every = np.broadcast_to(np.arange(d, dtype=np.int64), (cand.size, d)).copy()
        return DrawnFeatures(every, ~excluded)
    # expected share of constants: this node's so far, else its parent's
    seen = st.n_eval[cand]
    rate_now = np.where(seen > 0, st.n_const[cand] / np.maximum(seen, 1),
                        nodes.constant_rate[cand])
    n_draw = np.minimum(
        avail, np.ceil(st.need[cand] / np.maximum(1.0 - rate_now, 0.05)).astype(np.int64)
    )
    n_draw = np.maximum(n_draw, 1)
    feats, valid = draw_features(
        space.tree_keys[nodes.tree[cand]], nodes.path[cand], np.full(cand.size, draw_round),
        excluded, int(n_draw.max()),
    )
    valid &= np.arange(feats.shape[1])[None, :] < n_draw[:, None]
    return DrawnFeatures(feats, valid)


def node_groups(weight: F64, n_slots: I64, max_bins: int, budget: int) -> list[slice]:
    """Consecutive candidate ranges of at most ``budget`` cells each (at least one node).

    A node has at most (its instances x its drawn slots) non-empty cells, and at most
    (bins x slots); with weights of at least 1 its instances are at most its weight.
    """
    return consecutive_spans(np.minimum(np.ceil(weight), max_bins + 1) * n_slots, budget)


def _group_cells(space: SearchSpace, rows: RowSource) -> int:
    """The cells of a node group: the source's choice for exact regression, whose int64
    sort keys and sums are the temporaries it sizes them for; ``ROUND_CELLS`` otherwise.
    Float prefix sums carry rounding across a group's nodes, so their trees keep the cut
    they always had, and class histograms (packed 32-bit keys) measured faster in large
    groups (at 500k rows, small ones cost 10-17% in per-group overheads)."""
    if space.integral and not space.rules.criterion.classification:
        return rows.round_cells
    return ROUND_CELLS


def _search_round(
    space: SearchSpace, rows: RowSource, cand: I64, drawn: DrawnFeatures, need: I64,
    total: npt.NDArray[Any], min_weight_leaf: F64 | None, m: int, n_splittable: int,
) -> RoundSplits:
    """Stages 1 and 2 for one round's candidates, in node groups of about the source's
    ``round_cells`` cells (exact sums)."""
    if not drawn.valid.any():
        return RoundSplits.none(*drawn.shape)
    rules = space.rules
    weight = total[cand].sum(axis=1) if rules.criterion.classification else total[cand, 0]
    groups = node_groups(np.asarray(weight, dtype=np.float64), drawn.valid.sum(axis=1),
                         int(rules.n_bins.max(initial=1)), _group_cells(space, rows))
    return RoundSplits.concatenate([
        _search_group(space, rows, cand[g], DrawnFeatures(drawn.features[g], drawn.valid[g]),
                      need[g], total, min_weight_leaf, m,
                      len(groups) == 1 and cand.size == n_splittable)
        for g in groups
    ])


def _search_group(
    space: SearchSpace, rows: RowSource, cand: I64, drawn: DrawnFeatures, need: I64,
    total: npt.NDArray[Any], min_weight_leaf: F64 | None, m: int, all_splittable: bool,
) -> RoundSplits:
    rules = space.rules
    candidates = Candidates(
        drawn, need, np.ascontiguousarray(total[cand].T),
        None if min_weight_leaf is None else min_weight_leaf[cand],
    )
    if not drawn.valid.any():
        return RoundSplits.none(*drawn.shape)
    scan = (
        isinstance(rules.criterion, Gini) and rules.class_weight is None
        and rules.min_samples_leaf == 1 and min_weight_leaf is None
        and space.n_channels >= INCREMENTAL_MIN_CLASSES
        and not rules.is_categorical[drawn.features[drawn.valid]].any()
    )
    hist = rows.histograms(HistogramRequest(
        cand, m, all_splittable, drawn, n_channels=space.hist_channels,
        classification=rules.criterion.classification, integral=space.integral,
        with_counts=rules.min_samples_leaf > 1,
        gini_scan_totals=candidates.total if scan else None,
    ))
    return choose_splits(hist, candidates, rules)
