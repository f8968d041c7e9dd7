"""Level-wise growth of a batch of trees on binned data: the growth driver.

All open nodes of all trees in the batch form one level. :func:`grow_level` runs it in
three stages, each in a module of its own:

1. **histograms** of the rows in the open nodes (:mod:`._histogram`), per (node, drawn
   feature, bin, channel), with the node totals;
2. **split choice** from the summed histograms (:mod:`._splitting`), over the rounds of
   feature draws (:mod:`._splitter`);
3. **routing** of every row to its child (:mod:`._routing`).

The Python overhead is paid per level, not per node or per tree. Each tree's randomness
comes only from its key (bootstrap weights are drawn by the caller from the same key), and
node ids are level-order ids within the tree, so a tree comes out the same whichever batch
it grows in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from ..data import Bins
from ._arrays import TreeArrays
from ._criterion import Criterion, criterion_for
from ._histogram import REGRESSION_TOTALS, CodeTable, squares_from_limbs
from ._routing import NodeSplits
from ._rows import GrowHere, LocalRows, NodeRecords, RowSource, SubtreeStart
from ._splitter import (
    ROOT_PATH,
    Arithmetic,
    OpenNodes,
    SearchSpace,
    child_paths,
    search_splits,
)
from ._splitting import SplitRules

__all__ = [
    "Arithmetic", "FitCancelled", "GrowParams", "GrowthState", "TreeJob", "TreeSpec",
    "code_table",
    "fixed_point_targets", "grow", "grow_level", "grow_subtrees_here", "grow_trees",
]


class FitCancelled(Exception):
    """Raised by :func:`grow_trees` when its ``should_stop`` callback says so."""


I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]


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
class TreeSpec:
    """What the driver knows of one tree: its random key and feature subspace (its rows
    live in the :class:`RowSource`)."""

    key: int
    allowed_features: B1 | None = None


@dataclass(frozen=True)
class TreeJob:
    """One tree to grow here: its random key, its in-bag rows and their weights."""

    key: int
    rows: I64
    weight: F64
    allowed_features: B1 | None = None  # per-tree feature subspace

    @property
    def spec(self) -> TreeSpec:
        return TreeSpec(self.key, self.allowed_features)


@dataclass(frozen=True, eq=False)
class Growth:
    """What growing one batch needs besides the level: the job's constants."""

    params: GrowParams
    space: SearchSpace
    criterion: Criterion
    class_weight: F64 | None
    root_weight: F64  # per tree: the (class-weighted) weight of its root; set at depth 0
    #: fixed-point targets' shift (values are scaled back by 2**-unit_shift), else 0
    unit_shift: int = 0
    #: nodes with at most this many instances finish their subtrees where their rows meet
    subtree_rows: int = 0
    grow_here: GrowHere | None = None


@dataclass(frozen=True, eq=False)
class NodeStats:
    """Each open node's statistics (node-major ``total``) and whether it may split."""

    total: npt.NDArray[Any]
    n_samples: I64
    impurity: F64
    value: F64
    weight: F64
    splittable: B1
    min_weight_leaf: F64 | None


@dataclass
class _Records:
    """The nodes of every level, appended level by level (see :func:`_assemble`)."""

    tree: list[I64] = field(default_factory=list)
    local: list[I64] = field(default_factory=list)
    feature: list[I64] = field(default_factory=list)
    threshold_bin: list[I64] = field(default_factory=list)
    missing_left: list[B1] = field(default_factory=list)
    left: list[I64] = field(default_factory=list)
    right: list[I64] = field(default_factory=list)
    value: list[F64] = field(default_factory=list)
    impurity: list[F64] = field(default_factory=list)
    n: list[I64] = field(default_factory=list)
    wn: list[F64] = field(default_factory=list)
    improvement: list[F64] = field(default_factory=list)
    lut: list[B1] = field(default_factory=list)
    stitched: bool = False  # subtrees were spliced in: ids are no longer level order

    def snapshot(self) -> NodeRecords:
        """Every record so far as one column each (the lists stay)."""
        out: dict[str, Any] = {}
        for name in NodeRecords.__dataclass_fields__:
            parts: list[npt.NDArray[Any]] = getattr(self, name)
            out[name] = (np.concatenate(parts) if parts else
                         np.zeros((0, 256), dtype=bool) if name == "lut" else np.zeros(0))
        return NodeRecords(**out)

    @classmethod
    def of(cls, columns: NodeRecords, stitched: bool) -> _Records:
        """Records continuing from a :meth:`snapshot`."""
        rec = cls(stitched=stitched)
        for name in NodeRecords.__dataclass_fields__:
            value = getattr(columns, name)
            if value.shape[0]:
                getattr(rec, name).append(value)
        return rec

    def columns(self) -> NodeRecords:
        """Every record as one column each (the lists are emptied)."""
        out = self.snapshot()
        for name in NodeRecords.__dataclass_fields__:
            getattr(self, name).clear()
        return out


@dataclass(frozen=True, eq=False)
class GrowthState:
    """Where a batch's growth stands between two levels: enough to continue it later
    (a checkpoint), given rows brought to the same level. Plain arrays and numbers."""

    depth: int
    nodes: OpenNodes
    next_local: I64
    root_weight: F64
    records: NodeRecords
    stitched: bool

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """(JSON fields, arrays), for a file."""
        arrays = {f"node_{f.name}": getattr(self.nodes, f.name) for f in fields(self.nodes)}
        arrays |= {f"rec_{k}": v for k, v in self.records.arrays().items()}
        arrays |= {"next_local": self.next_local, "root_weight": self.root_weight}
        return {"depth": self.depth, "stitched": self.stitched}, arrays

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]
                    ) -> GrowthState:
        """What :meth:`to_arrays` wrote; ``ValueError`` (naming the field) if malformed."""
        try:
            # writable copies: a file's arrays may be read-only views, and the search
            # marks constant features in place
            nodes = OpenNodes(**{f.name: np.array(arrays[f"node_{f.name}"])
                                 for f in fields(OpenNodes)})
            records = NodeRecords.from_arrays(
                {k: arrays[f"rec_{k}"] for k in NodeRecords.__dataclass_fields__})
            state = cls(int(meta["depth"]), nodes, np.asarray(arrays["next_local"], np.int64),
                        np.asarray(arrays["root_weight"], np.float64), records,
                        bool(meta["stitched"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"growth state: {exc!r:.200}") from None
        m = nodes.tree.size
        if not all(a.shape[:1] == (m,) for a in (nodes.local, nodes.path, nodes.constant,
                                                 nodes.constant_rate)):
            raise ValueError("growth state: the open nodes' arrays differ in length")
        return state


#: Called between levels with the next level's depth and a way to build the state there
#: (built only when wanted: it copies the records so far).
OnLevel = Callable[[int, Callable[[], GrowthState]], None]


def grow_trees(
    bins: Bins,
    codes: npt.NDArray[np.uint8],
    y: I64 | F64,
    jobs: Sequence[TreeJob],
    params: GrowParams,
    exact: Arithmetic,
    class_weight: F64 | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[TreeArrays]:
    """Grow one tree per job on ``codes`` (feature-major, binned by ``bins``), all rows in
    this process; ``y`` holds class codes (classification) or targets. See :func:`grow`."""
    table = code_table(bins, codes)
    classification = criterion_for(params.criterion).classification
    if not classification and exact.integral:
        y = fixed_point_targets(np.asarray(y, dtype=np.float64), exact.target_shift)
    rows = LocalRows.of_trees(table, [(j.rows, j.weight) for j in jobs], y, classification)
    return grow(bins, [j.spec for j in jobs], rows, params, exact, class_weight, should_stop)


def fixed_point_targets(y: F64, shift: int) -> I64:
    """Regression targets as the integers ``rint(y * 2**shift)`` (see ``Arithmetic``)."""
    return np.rint(np.ldexp(y, shift)).astype(np.int64)


def code_table(bins: Bins, codes: npt.NDArray[np.uint8]) -> CodeTable:
    """The codes (feature-major, binned by ``bins``) as tree growth reads them."""
    if codes.shape[0] != bins.n_features:
        raise ValueError(f"codes have {codes.shape[0]} features, the bins {bins.n_features}")
    # Row-major copy: the k drawn features of one row then share a cache line.
    return CodeTable(np.ascontiguousarray(codes.T).reshape(-1), codes.shape[0],
                     bins.n_bins, bins.is_categorical)


def grow(
    bins: Bins,
    trees: Sequence[TreeSpec],
    rows: RowSource,
    params: GrowParams,
    exact: Arithmetic,
    class_weight: F64 | None = None,
    should_stop: Callable[[], bool] | None = None,
    subtree_rows: int = 0,
    on_level: OnLevel | None = None,
    resume: GrowthState | None = None,
) -> list[TreeArrays]:
    """Grow one tree per spec on the rows of ``rows``, wherever they live: the driver.

    ``rows`` starts with every tree's in-bag rows at its root (tree ``t``'s root is node
    ``t``). ``exact`` says how split statistics are summed and scored; it is the job's
    choice (``_plan.arithmetic``), so that no tree depends on the trees sharing its pass.
    ``should_stop`` is polled once per level: when it returns True the fit stops with
    :class:`FitCancelled` (a cluster worker uses it to drop a losing backup copy).

    ``subtree_rows`` (exact sums only): a node with at most this many instances leaves the
    level-wise growth, and its rows meet in one place to grow the rest of its subtree
    (:meth:`RowSource.grow_subtrees`, PLANET's in-memory build). Node ids and feature draws
    do not depend on where a node grew, so the trees are the same with or without it.

    ``on_level`` is called between levels (see :data:`OnLevel`); ``resume`` continues from
    such a state, ``rows`` having been brought to that level (the same trees come out).
    """
    criterion = criterion_for(params.criterion)
    growth = _growth(bins, trees, params, exact, class_weight, criterion)
    if subtree_rows > 0 and exact.integral:
        here = functools.partial(grow_subtrees_here, bins, trees, params, exact, class_weight)
        growth = Growth(growth.params, growth.space, growth.criterion, growth.class_weight,
                        growth.root_weight, growth.unit_shift, subtree_rows, here)
    if resume is None:
        records = _Records()
        start = _Levels(_roots(bins, rows, len(trees)), 0,
                        np.ones(len(trees), dtype=np.int64))
    else:
        records = _Records.of(resume.records, resume.stitched)
        growth.root_weight[:] = resume.root_weight
        start = _Levels(resume.nodes, resume.depth, resume.next_local.copy())
    _grow_levels(growth, start, rows, records, should_stop, on_level)
    return _assemble(records, len(trees), bins)


@dataclass
class _Levels:
    nodes: OpenNodes
    depth: int
    next_local: I64


def grow_subtrees_here(
    bins: Bins, trees: Sequence[TreeSpec], params: GrowParams, exact: Arithmetic,
    class_weight: F64 | None, start: SubtreeStart, rows: LocalRows,
) -> NodeRecords:
    """The subtrees of ``start``'s nodes (of a batch of ``trees``), grown on ``rows``
    (which hold exactly their instances, ``rows.rows.node`` being the subtree)."""
    growth = _growth(bins, [trees[int(t)] for t in start.tree], params, exact, class_weight,
                     criterion_for(params.criterion))
    growth.root_weight[:] = start.root_weight
    nodes = OpenNodes(np.arange(start.size, dtype=np.int64), np.zeros(start.size, np.int64),
                      start.path.copy(), start.constant.copy(), start.constant_rate.copy())
    records = _Records()
    levels = _Levels(nodes, start.depth, np.ones(start.size, dtype=np.int64))
    _grow_levels(growth, levels, rows, records, None, None)
    return records.columns()


def _grow_levels(growth: Growth, at: _Levels, rows: RowSource, records: _Records,
                 should_stop: Callable[[], bool] | None, on_level: OnLevel | None) -> None:
    while at.nodes.size:
        if should_stop is not None and should_stop():
            raise FitCancelled(f"cancelled at depth {at.depth}")
        at.nodes = grow_level(growth, at.nodes, rows, at.depth, at.next_local, records)
        at.depth += 1
        if on_level is not None and at.nodes.size:
            on_level(at.depth, functools.partial(
                _state, growth, _Levels(at.nodes, at.depth, at.next_local.copy()), records))


def _state(growth: Growth, at: _Levels, records: _Records) -> GrowthState:
    """Copies: the next level's search marks constant features in place."""
    nodes = _take(at.nodes, np.ones(at.nodes.size, dtype=bool))
    return GrowthState(at.depth, nodes, at.next_local, growth.root_weight.copy(),
                       records.snapshot(), records.stitched)


def grow_level(
    growth: Growth, nodes: OpenNodes, rows: RowSource, depth: int, next_local: I64,
    records: _Records,
) -> OpenNodes:
    """One level: node statistics, then the three stages; returns the next level's nodes
    (``rows`` has moved to them).

    The level's nodes are appended to ``records``; ``next_local`` (per tree, the next free
    level-order id) advances by the children created.
    """
    stats = _node_stats(growth, nodes, rows, depth)
    detach = _detach(growth, stats, nodes, rows, depth, next_local, records)
    splittable = stats.splittable & ~detach if detach is not None else stats.splittable
    if int(np.count_nonzero(splittable)) < nodes.size:
        # Rows of nodes that cannot split end in a leaf here: drop them before the
        # search, which then reads (and copies) only the others.
        rows.keep_nodes(splittable)
    # stages 1 and 2, over the rounds of feature draws
    found, rate = search_splits(growth.space, nodes, rows, stats.total, splittable,
                                stats.min_weight_leaf)
    if growth.unit_shift:  # ldexp: exact, and no underflow of 2**-2s on its own
        found.improvement[:] = np.ldexp(found.improvement, -2 * growth.unit_shift)
    splits = _min_impurity_decrease(growth, nodes, found)
    if detach is None:
        children = _record(records, nodes, stats, splits, next_local, growth.space.rules)
    else:  # the detached nodes' records come with their subtrees
        kept = ~detach
        children = _record(records, _take(nodes, kept), _take(stats, kept),
                           _take(splits, kept), next_local, growth.space.rules)
    split_nodes = np.flatnonzero(splits.found)
    next_nodes = OpenNodes(
        children.tree, children.local, child_paths(nodes.path[split_nodes]),
        np.repeat(nodes.constant[split_nodes], 2, axis=0), np.repeat(rate[split_nodes], 2),
    )
    if next_nodes.size:
        rows.route(splits)  # stage 3
    return next_nodes


def _take(obj: Any, keep: B1) -> Any:
    """A per-node dataclass restricted to the nodes in ``keep``."""
    return type(obj)(**{
        f.name: (v[keep] if isinstance(v := getattr(obj, f.name), np.ndarray) else v)
        for f in fields(obj)
    })


def _detach(growth: Growth, stats: NodeStats, nodes: OpenNodes, rows: RowSource, depth: int,
            next_local: I64, records: _Records) -> B1 | None:
    """Send the level's small splittable nodes off to grow their subtrees where their rows
    meet, and splice those subtrees in; the detached nodes, or None."""
    if growth.grow_here is None:
        return None
    detach = stats.splittable & (stats.n_samples <= growth.subtree_rows)
    if not detach.any():
        return None
    which = np.flatnonzero(detach)
    start = SubtreeStart(
        which, nodes.size, nodes.tree[which], nodes.path[which], nodes.constant[which],
        nodes.constant_rate[which], growth.root_weight[nodes.tree[which]].copy(), depth,
        stats.n_samples[which],
    )
    grown = rows.grow_subtrees(start, growth.grow_here)
    _stitch(records, grown, start, nodes.local[which], next_local)
    return detach


def _stitch(records: _Records, sub: NodeRecords, start: SubtreeStart, root_local: I64,
            next_local: I64) -> None:
    """Append subtrees grown elsewhere: subtree ``i``'s root takes the id ``root_local[i]``
    its parent gave it, its other nodes fresh ids of its tree; ids are put back in level
    order when the trees are assembled."""
    if sub.tree.size and (sub.tree.min() < 0 or sub.tree.max() >= start.size):
        raise ValueError("subtree records name subtrees that were not asked for")
    n_nodes = np.bincount(sub.tree, minlength=start.size)
    if (n_nodes < 1).any():
        raise ValueError("a subtree came back without its root")
    extra = n_nodes - 1
    before = np.cumsum(extra) - extra  # fresh ids used by earlier subtrees...
    first = np.searchsorted(start.tree, start.tree, side="left")
    base = next_local[start.tree] + before - before[first]  # ...of the same tree
    np.add.at(next_local, start.tree, extra)

    def relabel(local: I64) -> I64:
        return np.where(local == 0, root_local[sub.tree], base[sub.tree] + local - 1)

    records.tree.append(start.tree[sub.tree])
    records.local.append(relabel(sub.local))
    records.left.append(np.where(sub.left >= 0, relabel(np.maximum(sub.left, 0)), -1))
    records.right.append(np.where(sub.right >= 0, relabel(np.maximum(sub.right, 0)), -1))
    for name in ("feature", "threshold_bin", "missing_left", "value", "impurity", "n", "wn",
                 "improvement", "lut"):
        getattr(records, name).append(getattr(sub, name))
    records.stitched = True


def _growth(
    bins: Bins, trees: Sequence[TreeSpec], params: GrowParams, exact: Arithmetic,
    class_weight: F64 | None, criterion: Criterion,
) -> Growth:
    allowed = np.ones((len(trees), bins.n_features), dtype=bool)
    for t, tree in enumerate(trees):
        if tree.allowed_features is not None:
            allowed[t] = tree.allowed_features
    space = SearchSpace(
        rules=SplitRules(criterion, bins.n_bins, bins.is_categorical, class_weight,
                         params.min_samples_leaf, exact.single),
        tree_keys=np.array([t.key & 0xFFFFFFFFFFFFFFFF for t in trees], dtype=np.uint64),
        allowed=allowed, max_features=params.max_features,
        n_channels=criterion.n_channels(params.n_classes),
        hist_channels=criterion.histogram_channels(params.n_classes), integral=exact.integral,
    )
    shift = 0 if criterion.classification or not exact.integral else exact.target_shift
    return Growth(params, space, criterion, class_weight, np.zeros(len(trees)), shift)


def _roots(bins: Bins, rows: RowSource, n_trees: int) -> OpenNodes:
    """Each tree's root; features with one bin and no missing value anywhere are constant
    in every node."""
    constant_everywhere = bins.n_bins <= 1
    has_missing = np.zeros(bins.n_features, dtype=bool)
    one_bin = np.flatnonzero(constant_everywhere).astype(np.int64)
    if one_bin.size:
        has_missing[one_bin] = rows.missing_in(one_bin)
    constant = np.zeros((n_trees, bins.n_features), dtype=bool)
    constant[:] = constant_everywhere & ~has_missing
    return OpenNodes(np.arange(n_trees, dtype=np.int64), np.zeros(n_trees, dtype=np.int64),
                     np.full(n_trees, ROOT_PATH, dtype=np.uint64), constant, np.zeros(n_trees))


def _node_stats(growth: Growth, nodes: OpenNodes, rows: RowSource, depth: int) -> NodeStats:
    """Totals, impurity, value and the stopping rules of every open node."""
    params, crit = growth.params, growth.criterion
    if crit.classification:
        n_node, total = rows.node_totals(nodes.size, growth.space.n_channels, True)
    else:
        n_node, limbs = rows.node_totals(nodes.size, REGRESSION_TOTALS, False)
        total = squares_from_limbs(limbs)  # only now rounded: the limbs were exact sums
    if crit.classification and growth.class_weight is not None:
        total = total * growth.class_weight
    imp = crit.impurity(np.ascontiguousarray(total.T))
    splittable = (
        ~crit.is_pure(total, imp)
        & (depth < params.max_depth)
        & (n_node >= params.min_samples_split)
        & (n_node >= 2 * params.min_samples_leaf)
    )
    weight = np.asarray(total.sum(axis=1) if crit.classification else total[:, 0])
    if depth == 0:  # node t is tree t's root
        growth.root_weight[:] = weight
    min_weight_leaf = None
    if params.min_weight_fraction_leaf > 0:
        min_weight_leaf = np.asarray(
            params.min_weight_fraction_leaf * growth.root_weight[nodes.tree], dtype=np.float64
        )
        splittable &= weight >= 2 * min_weight_leaf
    value = crit.leaf_value(total)
    if growth.unit_shift:  # fixed-point targets: back to the targets' units (exact)
        value = np.ldexp(value, -growth.unit_shift)
        imp = np.ldexp(imp, -2 * growth.unit_shift)
    return NodeStats(total, n_node, imp, value, weight, splittable, min_weight_leaf)


def _min_impurity_decrease(growth: Growth, nodes: OpenNodes, found: NodeSplits) -> NodeSplits:
    """Splits whose decrease (over the root weight) is below ``min_impurity_decrease``
    become leaves."""
    keep = (found.feature >= 0) & (
        found.improvement / growth.root_weight[nodes.tree] + np.finfo(np.float64).eps
        >= growth.params.min_impurity_decrease
    )
    found.feature[~keep] = -1
    found.improvement[~keep] = 0.0
    return found


@dataclass(frozen=True, eq=False)
class _Children:
    tree: I64
    local: I64

    @property
    def size(self) -> int:
        return int(self.tree.size)


def _record(
    rec: _Records, nodes: OpenNodes, stats: NodeStats, splits: NodeSplits, next_local: I64,
    rules: SplitRules,
) -> _Children:
    """Append the level's nodes; the split nodes' children get consecutive level-order ids
    within their tree (left then right, in node order)."""
    m = nodes.size
    split_nodes = np.flatnonzero(splits.found)
    sp_tree = nodes.tree[split_nodes]
    first = np.searchsorted(sp_tree, sp_tree, side="left")
    rank = np.arange(split_nodes.size) - first
    left_local = np.full(m, -1, dtype=np.int64)
    right_local = np.full(m, -1, dtype=np.int64)
    left_local[split_nodes] = next_local[sp_tree] + 2 * rank
    right_local[split_nodes] = left_local[split_nodes] + 1
    next_local += 2 * np.bincount(sp_tree, minlength=next_local.size)
    rec.tree.append(nodes.tree)
    rec.local.append(nodes.local)
    rec.feature.append(splits.feature)
    rec.threshold_bin.append(splits.threshold_bin)
    rec.missing_left.append(splits.missing_left)
    rec.left.append(left_local)
    rec.right.append(right_local)
    rec.value.append(stats.value)
    rec.impurity.append(stats.impurity)
    rec.n.append(stats.n_samples.astype(np.int64))
    rec.wn.append(stats.weight)
    rec.improvement.append(splits.improvement)
    # Only categorical splits keep their table (a numeric one is its threshold).
    rec.lut.append(splits.lut[split_nodes[rules.is_categorical[splits.feature[split_nodes]]]])
    return _Children(
        np.repeat(sp_tree, 2),
        np.column_stack([left_local[split_nodes], right_local[split_nodes]]).ravel(),
    )


def _column(
    parts: list[npt.NDArray[Any]], order: npt.NDArray[np.intp], dtype: Any
) -> npt.NDArray[Any]:
    """One column of all records, in node order; the record list is emptied."""
    out = np.concatenate(parts)[order].astype(dtype, copy=False)
    parts.clear()
    return out


def _level_order(rec: _Records) -> None:
    """Renumber every tree's nodes in level order (breadth first, left before right), the
    ids a level-wise growth gives: subtrees spliced in took other ids meanwhile."""
    tree = np.concatenate(rec.tree)
    local = np.concatenate(rec.local)
    left = np.concatenate(rec.left)
    right = np.concatenate(rec.right)
    span = int(local.max(initial=0)) + 1
    key = tree * span + local
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]

    def record_of(t: I64, node: I64) -> I64:
        found: I64 = order[np.searchsorted(sorted_key, t * span + node)]
        return found

    new_local = np.full(tree.size, -1, dtype=np.int64)
    used = np.zeros(int(tree.max(initial=-1)) + 1, dtype=np.int64)
    level = record_of(np.unique(tree), np.zeros(np.unique(tree).size, dtype=np.int64))
    while level.size:
        t = tree[level]  # grouped by tree, each tree's nodes in level order
        rank = np.arange(level.size) - np.searchsorted(t, t, side="left")
        new_local[level] = used[t] + rank
        used += np.bincount(t, minlength=used.size)
        split = left[level] >= 0
        parents = level[split]
        children = np.column_stack([left[parents], right[parents]]).ravel()
        level = record_of(np.repeat(tree[parents], 2), children)
    if (new_local < 0).any():
        raise ValueError("spliced subtrees left nodes unreachable from their root")
    is_split = left >= 0
    new_left = np.full(tree.size, -1, dtype=np.int64)
    new_right = np.full(tree.size, -1, dtype=np.int64)
    new_left[is_split] = new_local[record_of(tree[is_split], left[is_split])]
    new_right[is_split] = new_local[record_of(tree[is_split], right[is_split])]
    rec.local[:] = [new_local]
    rec.left[:] = [new_left]
    rec.right[:] = [new_right]
    rec.tree[:] = [tree]
    for name in ("feature", "threshold_bin", "missing_left", "value", "impurity", "n", "wn",
                 "improvement"):
        column: list[npt.NDArray[Any]] = getattr(rec, name)
        column[:] = [np.concatenate(column)]


def _assemble(rec: _Records, n_trees: int, bins: Bins) -> list[TreeArrays]:
    """Each tree's arrays, nodes in level order, from the per-level records.

    Every column is sorted once for the whole batch (each record list is dropped as soon as
    it is used) and the trees' arrays are slices of these columns.
    """
    if rec.stitched:
        _level_order(rec)
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
    cat_rec = (feature_rec >= 0) & bins.is_categorical[np.maximum(feature_rec, 0)]
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
    rec.right.clear()  # always left + 1: the trees rebuild it
    value = _column(rec.value, order, np.float64)
    impurity_ = _column(rec.impurity, order, np.float64)
    n_samples = _column(rec.n, order, np.int64)
    weighted = _column(rec.wn, order, np.float64)
    improvement = _column(rec.improvement, order, np.float64)
    del order
    out = []
    for t in range(n_trees):
        lo, hi = bounds[t], bounds[t + 1]
        feat = feature[lo:hi]
        thr_bin = threshold_bin[lo:hi]
        is_split = feat >= 0
        cat_split = is_split & bins.is_categorical[np.maximum(feat, 0)]
        cat_nodes = np.flatnonzero(cat_split)
        cat_left = luts[lut_row[lo:hi][cat_nodes]]
        # The missing bin of a categorical feature is not a category: keep only real ones.
        for j, i in enumerate(cat_nodes):
            cat_left[j, bins.n_bins[feat[i]]:] = False
        fitted = TreeArrays(
            feature=feat,
            threshold_bin=np.where(is_split, thr_bin, 0).astype(np.int16),
            missing_left=missing_left[lo:hi],
            left=left[lo:hi],
            value=value[lo:hi],
            impurity=impurity_[lo:hi],
            n_node_samples=n_samples[lo:hi],
            weighted_n_node_samples=weighted[lo:hi],
            improvement=improvement[lo:hi],
            cat_left=cat_left,
            bins=bins,
        )
        fitted.compact(bins)  # narrows the counts, drops the weights that equal them
        out.append(fitted)
    return out
