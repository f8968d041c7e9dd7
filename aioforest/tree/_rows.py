"""Where a level's rows live: the one interface between the growth driver and the data.

The driver (:mod:`._builder`) never touches rows. Each level it asks a :class:`RowSource`
for sums over the rows in the open nodes (node totals, histograms) and tells it where the
rows go (which nodes stop, which splits were chosen). Three sources exist:

* :class:`LocalRows`: every row in this process (a local fit, a pool task);
* :class:`SummedRows`: rows cut into parts, each a source of its own, whose answers are
  summed (the reference for data-parallel growth, and its test double);
* the cluster's remote source, whose parts are workers (``aioforest.cluster``).

With integer weights every sum is of integers, so any cut of the rows gives the same sums
bit for bit, and the same tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ._histogram import (
    CodeTable,
    DrawnFeatures,
    GiniScan,
    Histograms,
    LevelRows,
    build_histograms,
    grouped_order,
    node_totals,
    sum_histograms,
)
from ._routing import NodeSplits, route_rows

__all__ = [
    "LOCAL_ROUND_CELLS", "ROUND_CELLS",
    "HistogramRequest", "LocalRows", "NodeRecords", "RowSource", "SubtreeRows", "SubtreeStart",
    "SummedRows", "prefer_dense",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]

#: Dense histograms cost about one pass per (cell, channel), present or not; sorted ones
#: a sort and some passes per element, and one per present (cell, channel). So dense wins
#: while the empty cells (times channels) are fewer than this many times the elements.
#: Either path gives the same numbers.
DENSE_CELLS_PER_ELEMENT = 1.0

#: How many cells one histogram request of a source whose rows are elsewhere covers at
#: most, about: the driver cuts a round over more nodes into node groups (Spark's
#: ``maxMemoryInMB``), each built, summed and scored in turn. Each group is a round trip,
#: so they are few and large. With exact sums the cut never changes a split (each node's
#: choice reads its own cells only); float sums always take this cut. It bounds the memory
#: of a round on every machine.
ROUND_CELLS = 1 << 22

#: The same for rows in this process, where a group costs no round trip (the driver uses
#: it for exact regression, see ``_splitter``). A group's temporaries (its histograms and
#: the int64 per-element arrays that build them, a few MiB each) then stay under glibc's
#: 32 MiB trim threshold (``aioforest._malloc``): the memory one group frees is reused by
#: the next, instead of being handed back and faulted in again page by page, which had
#: taken a third of a regression fit. They also fit the caches better, and the process's
#: peak memory is lower.
LOCAL_ROUND_CELLS = 1 << 18


def prefer_dense(n_cells: int, n_channels: int, n_elements: int) -> bool:
    """Whether to build a round's histograms dense (see ``DENSE_CELLS_PER_ELEMENT``)."""
    # cells left empty, if the elements fell into them uniformly at random
    empty = n_cells * float(np.exp(-n_elements / max(n_cells, 1)))
    return n_channels * empty <= DENSE_CELLS_PER_ELEMENT * n_elements


@dataclass(frozen=True, eq=False)
class HistogramRequest:
    """One search round's histograms: what the driver asks of every part of the rows.

    ``candidates`` are indices among the level's ``n_nodes`` open nodes; ``drawn`` their
    features (row ``i`` for candidate ``i``). ``all_splittable``: the candidates are every
    node that still has rows. ``gini_scan_totals`` (candidates' class totals,
    channel-major) allows the one-process :class:`GiniScan` form; a source whose rows are
    cut ignores it and returns summable :class:`Histograms`, which score the same.
    """

    candidates: I64
    n_nodes: int
    all_splittable: bool
    drawn: DrawnFeatures
    n_channels: int
    classification: bool
    integral: bool
    with_counts: bool
    gini_scan_totals: F64 | None = None


@dataclass(frozen=True, eq=False)
class SubtreeStart:
    """Open nodes whose rows are few enough to finish their subtrees in one place (PLANET's
    in-memory build): each becomes the root of a subtree grown by the same driver.

    ``nodes`` are positions among the level's open nodes; per subtree (one per node):
    ``tree`` (its tree in the batch), ``path`` key, ``constant`` features, ``constant_rate``
    and ``root_weight`` (its tree's root weight, for the rules relative to it); ``depth``
    is the level's; ``instances`` the nodes' instance counts. A subtree grows from these
    alone: its feature draws are keyed by paths, so it comes out as it would have in the
    level-wise growth.
    """

    nodes: I64
    n_nodes: int
    tree: I64
    path: npt.NDArray[np.uint64]
    constant: B1
    constant_rate: F64
    root_weight: F64
    depth: int
    instances: I64 | None = None  # per subtree, where known: to balance the owners' work

    @property
    def size(self) -> int:
        return int(self.nodes.size)


@dataclass(frozen=True, eq=False)
class NodeRecords:
    """Grown nodes as plain columns (one entry per node): what subtrees grown elsewhere
    send back. ``tree`` is the subtree, ``local`` its level-order id in the subtree
    (0 is the subtree's root), ``left``/``right`` children's ids (-1 for a leaf); ``lut``
    holds one row per categorical split, in record order."""

    tree: I64
    local: I64
    feature: I64
    threshold_bin: I64
    missing_left: B1
    left: I64
    right: I64
    value: F64
    impurity: F64
    n: I64
    wn: F64
    improvement: F64
    lut: B1

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Plain arrays, for a wire."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> NodeRecords:
        """The records :meth:`arrays` wrote; ``ValueError`` when they are malformed."""
        return cls(**{name: np.asarray(arrays[name]) for name in cls.__dataclass_fields__})


@dataclass(frozen=True, eq=False)
class SubtreeRows:
    """The instances of some nodes, taken out of a source: enough to grow their subtrees
    anywhere (each instance carries its row's codes)."""

    codes: npt.NDArray[np.uint8]  # (instances, n_features), row-major
    y: npt.NDArray[Any]
    weight: F64
    subtree: I64

    @staticmethod
    def concat(parts: Sequence[SubtreeRows]) -> SubtreeRows:
        return SubtreeRows(
            np.concatenate([p.codes for p in parts]), np.concatenate([p.y for p in parts]),
            np.concatenate([p.weight for p in parts]),
            np.concatenate([p.subtree for p in parts]),
        )

    def local(self, template: CodeTable) -> LocalRows:
        """These instances as a :class:`LocalRows` over a table of their own codes."""
        n = int(self.weight.size)
        table = CodeTable(np.ascontiguousarray(self.codes).reshape(-1), template.n_features,
                          template.n_bins, template.is_categorical)
        return LocalRows(table, LevelRows(np.arange(n, dtype=np.int64), self.weight, self.y,
                                          self.subtree))


#: How a source grows subtrees from their rows: the driver's own function.
GrowHere = Callable[[SubtreeStart, "LocalRows"], NodeRecords]


class RowSource(Protocol):
    """The rows of one batch of trees, level by level (see the module docstring).

    Calls come in level order: ``node_totals``, then ``keep_nodes`` when some nodes stop,
    then one ``histograms`` per search round, then ``route`` when any node split. Node
    indices are positions among the level's open nodes, in the driver's order.
    """

    #: About how many cells one :meth:`histograms` request should cover (see
    #: ``ROUND_CELLS``); a performance choice that never changes a tree.
    round_cells: int

    def missing_in(self, features: I64) -> B1:
        """Whether any row has a missing value on each of ``features``."""
        ...

    def node_totals(self, n_nodes: int, n_channels: int, classification: bool
                    ) -> tuple[I64, npt.NDArray[Any]]:
        """Each open node's row count and statistics, node-major ``(n_nodes, n_channels)``
        (class counts for classification, weight / weighted sum / weighted sum of squares
        of the target for regression; no class weights applied)."""
        ...

    def keep_nodes(self, keep: B1) -> None:
        """Rows of nodes not in ``keep`` end in a leaf: drop them."""
        ...

    def histograms(self, request: HistogramRequest) -> Histograms | GiniScan:
        """The histograms of the candidates' rows on their drawn features."""
        ...

    def route(self, splits: NodeSplits) -> None:
        """Move every row to its child (see :func:`route_rows`); leaves' rows drop out."""
        ...

    def grow_subtrees(self, start: SubtreeStart, grow_here: GrowHere) -> NodeRecords:
        """Grow the subtrees of ``start``'s nodes where their rows can meet (``grow_here``
        on a :class:`LocalRows` holding them all), and drop those rows from this source."""
        ...


class LocalRows:
    """Every row of the batch in this process: one instance per (tree, in-bag row).

    A level cut into many node groups first puts its rows in buckets of consecutive nodes
    (a stable sort of the bucket: rows keep their order within a bucket, so no sum changes
    and the codes are still read in increasing row order), and each group's rows are then
    in a slice of a few buckets: the level reads its rows once, not once per group.
    """

    round_cells = LOCAL_ROUND_CELLS

    def __init__(self, table: CodeTable, rows: LevelRows) -> None:
        self.table = table
        self.rows = rows
        self._buckets: tuple[int, I64] | None = None  # (nodes per bucket, bucket starts)

    @classmethod
    def of_trees(
        cls, table: CodeTable, row_sets: Sequence[tuple[I64, F64]], y: I64 | F64,
        classification: bool,
    ) -> LocalRows:
        """Each tree's (in-bag rows, weights), every instance at its tree's root; rows of
        zero weight are left out."""
        row = np.concatenate([np.asarray(r, dtype=np.int64) for r, _ in row_sets])
        weight = np.concatenate([np.asarray(w, dtype=np.float64) for _, w in row_sets])
        tree = np.repeat(np.arange(len(row_sets), dtype=np.int64),
                         [len(r) for r, _ in row_sets])
        keep = weight > 0
        row, weight, tree = row[keep], weight[keep], tree[keep]
        # integer regression targets are fixed point (``Arithmetic.target_shift``): kept so
        y_rows: I64 | F64 = (
            np.asarray(y, dtype=np.int64)[row]
            if classification or np.asarray(y).dtype.kind in "iu"
            else np.asarray(y, dtype=np.float64)[row]
        )
        return cls(table, LevelRows(row, weight, y_rows, tree.copy()))

    def missing_in(self, features: I64) -> B1:
        t = self.table
        n_rows = t.codes.size // max(t.n_features, 1)
        out = np.zeros(features.size, dtype=bool)
        for i, f in enumerate(features.tolist()):
            column = t.codes[f : n_rows * t.n_features : t.n_features]
            out[i] = bool(np.any(column == t.n_bins[f]))
        return out

    def node_totals(self, n_nodes: int, n_channels: int, classification: bool
                    ) -> tuple[I64, npt.NDArray[Any]]:
        rows = self.rows
        counts = np.bincount(rows.node, minlength=n_nodes).astype(np.int64, copy=False)
        return counts, node_totals(rows, n_nodes, n_channels, classification, None)

    def keep_nodes(self, keep: B1) -> None:
        self._keep(keep[self.rows.node])

    def _keep(self, rows: B1) -> None:
        """Keep the rows marked (in their order: buckets shrink but stay in order)."""
        self.rows = self.rows.take(rows)
        if self._buckets is not None:
            per, starts = self._buckets
            kept = np.bincount(self.rows.node // per, minlength=starts.size - 1)
            np.cumsum(kept, out=starts[1:])

    def histograms(self, request: HistogramRequest) -> Histograms | GiniScan:
        c_rows = self._candidate_rows(request)
        return build_histograms(
            self.table, c_rows, request.drawn, n_channels=request.n_channels,
            classification=request.classification, integral=request.integral,
            with_counts=request.with_counts, prefer_dense=prefer_dense,
            gini_scan_totals=request.gini_scan_totals,
        )

    def _candidate_rows(self, request: HistogramRequest) -> LevelRows:
        """The candidates' rows, their node indices remapped to candidates."""
        rows, cand = self.rows, request.candidates
        if cand.size == request.n_nodes:
            return rows
        if cand.size == 0:
            return rows.take(np.zeros(0, dtype=np.int64))
        if cand.size > 1 and not bool(np.all(cand[1:] > cand[:-1])):
            raise ValueError("histogram candidates must be ascending node indices")
        if self._buckets is None:
            if cand.size * _BUCKET_FROM_GROUPS > request.n_nodes:
                return _select_nodes(rows, cand, 0, request.n_nodes, request.all_splittable)
            self._bucket_rows(request.n_nodes, cand.size)
            rows = self.rows
        assert self._buckets is not None
        per, starts = self._buckets
        # candidates are ascending: their rows lie in the buckets from the first's to the last's
        first, last = int(cand[0]) // per, int(cand[-1]) // per
        lo, hi = int(starts[first]), int(starts[last + 1])
        span = LevelRows(rows.row[lo:hi], rows.weight[lo:hi], rows.y[lo:hi],
                         rows.node[lo:hi])
        return _select_nodes(span, cand, first * per, (last + 1 - first) * per, False)

    def _bucket_rows(self, n_nodes: int, group_nodes: int) -> None:
        """Put the rows in buckets of consecutive nodes, a few per group of
        ``group_nodes`` nodes."""
        n_buckets = min(-(-n_nodes // group_nodes) * _BUCKETS_PER_GROUP, 1 << 15)
        per = -(-n_nodes // n_buckets)
        order, starts = grouped_order(self.rows.node // per, -(-n_nodes // per))
        self.rows = self.rows.take(order)
        self._buckets = (per, starts)

    def route(self, splits: NodeSplits) -> None:
        self.rows = route_rows(self.table, self.rows, splits)
        self._buckets = None

    def take_subtrees(self, nodes: I64, n_nodes: int, remove: bool = True) -> SubtreeRows:
        """The instances of ``nodes`` (of the level's ``n_nodes``), with their codes and
        their subtree (position in ``nodes``); they leave this source unless ``remove`` is
        False (a cluster ships copies, and drops them with the level's ``keep_nodes``)."""
        index = np.full(n_nodes, -1, dtype=np.int64)
        index[nodes] = np.arange(nodes.size)
        sub = index[self.rows.node]
        mine = sub >= 0
        taken = self.rows.take(mine)
        t = self.table
        codes = t.codes.reshape(-1, t.n_features)[taken.row] if t.n_features else (
            np.zeros((taken.size, 0), dtype=np.uint8))
        if remove:
            self._keep(~mine)
        return SubtreeRows(codes, taken.y, taken.weight, sub[mine])

    def grow_subtrees(self, start: SubtreeStart, grow_here: GrowHere) -> NodeRecords:
        rows = self.take_subtrees(start.nodes, start.n_nodes)
        return grow_here(start, rows.local(self.table))


#: A level whose node groups are expected to be at least this many (judged by the share of
#: the nodes in its first group) puts its rows in buckets: one sort then costs less than
#: reading all rows once per group.
_BUCKET_FROM_GROUPS = 4
#: Buckets per expected group: a group reads the rows of its buckets, about
#: ``1 + 1 / _BUCKETS_PER_GROUP`` of its own.
_BUCKETS_PER_GROUP = 4


def _select_nodes(rows: LevelRows, cand: I64, base: int, n_nodes: int, all_rows: bool
                  ) -> LevelRows:
    """The rows of nodes ``cand`` (ascending; ``rows`` hold nodes ``base`` to ``base +
    n_nodes`` only), their node indices remapped to positions in ``cand``; ``all_rows``:
    every row's node is known to be in ``cand``."""
    remap = np.full(n_nodes, -1, dtype=np.int64)
    remap[cand - base] = np.arange(cand.size)
    c_node = remap[rows.node - base] if base else remap[rows.node]
    del remap
    if all_rows:
        return LevelRows(rows.row, rows.weight, rows.y, c_node)
    sel = c_node >= 0
    if bool(sel.all()):
        return LevelRows(rows.row, rows.weight, rows.y, c_node)
    return rows.take(sel, c_node[sel])


class SummedRows:
    """Rows cut into parts, each a :class:`RowSource`; every answer is the sum of theirs.

    Histograms are summed with :func:`sum_histograms`, totals and counts elementwise, in
    part order. With integer weights the sums are exact, so the cut never changes a tree.
    """

    def __init__(self, parts: Sequence[RowSource]) -> None:
        if not parts:
            raise ValueError("SummedRows needs at least one part")
        self.parts = list(parts)
        self.round_cells = min(p.round_cells for p in self.parts)

    def missing_in(self, features: I64) -> B1:
        out = np.zeros(features.size, dtype=bool)
        for part in self.parts:
            out |= part.missing_in(features)
        return out

    def node_totals(self, n_nodes: int, n_channels: int, classification: bool
                    ) -> tuple[I64, npt.NDArray[Any]]:
        answers = [p.node_totals(n_nodes, n_channels, classification) for p in self.parts]
        counts = answers[0][0].copy()
        total = np.array(answers[0][1], dtype=np.float64)
        for c, t in answers[1:]:
            counts += c
            total += t
        return counts, total

    def keep_nodes(self, keep: B1) -> None:
        for part in self.parts:
            part.keep_nodes(keep)

    def histograms(self, request: HistogramRequest) -> Histograms:
        summable = request_without_scan(request)
        parts = []
        for part in self.parts:
            hist = part.histograms(summable)
            if not isinstance(hist, Histograms):
                raise TypeError(f"a part answered {type(hist).__name__}, not Histograms")
            parts.append(hist)
        return sum_histograms(parts)

    def route(self, splits: NodeSplits) -> None:
        for part in self.parts:
            part.route(splits)

    def take_subtrees(self, nodes: I64, n_nodes: int, remove: bool = True) -> SubtreeRows:
        taken = []
        for part in self.parts:
            if not isinstance(part, LocalRows | SummedRows):
                raise TypeError(f"cannot take rows out of a {type(part).__name__}")
            taken.append(part.take_subtrees(nodes, n_nodes, remove))
        return SubtreeRows.concat(taken)

    def grow_subtrees(self, start: SubtreeStart, grow_here: GrowHere) -> NodeRecords:
        # the parts' rows meet in one place (a worker, in a cluster), in part order
        first = self.parts[0]
        while isinstance(first, SummedRows):
            first = first.parts[0]
        if not isinstance(first, LocalRows):
            raise TypeError(f"cannot grow subtrees on a {type(first).__name__}")
        rows = self.take_subtrees(start.nodes, start.n_nodes)
        return grow_here(start, rows.local(first.table))


def request_without_scan(request: HistogramRequest) -> HistogramRequest:
    """The same request, asking for summable :class:`Histograms` only."""
    if request.gini_scan_totals is None:
        return request
    return HistogramRequest(
        request.candidates, request.n_nodes, request.all_splittable, request.drawn,
        request.n_channels, request.classification, request.integral, request.with_counts,
    )
