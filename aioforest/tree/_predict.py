"""Vectorised prediction over all trees of a forest, in plain NumPy.

Rows are binned with the training bin edges first, so that a split compares small codes:
``x <= threshold`` holds exactly when ``bin(x) <= threshold_bin``. The trees are then walked
one at a time over a block of rows, which keeps that tree's part of the node table in cache
(several at a time for small blocks, so that each array operation still covers enough
pairs), and each level costs a few whole-array operations:

* The top three levels of a tree take column-wise comparisons: the outcomes at its (at most
  seven) top split nodes form a 7-bit key, and a 128-entry table maps the key to the node
  reached at depth three.
* Below, every unfinished row advances one level per step: one gather of its node's packed
  record ``feature << 40 | left << 8 | (255 - threshold_bin)``, one gather of its code for
  that feature, and five integer operations. Adding the code to the record carries into the
  ``left`` field exactly when ``code > threshold_bin``, and since ``right == left + 1`` the
  carry picks the child. A leaf points at itself with threshold 255, so a row that reached
  one stays put; finished rows are dropped every other step once enough have finished.
* Missing values need no special case at numeric splits: when a block has some, each row is
  coded twice, once with missing values as 255 (above every threshold, so they go right) and
  once as 0 (they go left), and the records of nodes that send missing values left address
  the second copy (``feature + n_features``).
* Categorical splits (a set of categories goes left) are the exception: rows at such nodes
  are fixed up with a per-node 256-entry table.

Rows are binned by :class:`_GridBinner`, which gives exactly the codes of ``Bins.transform``
several times faster. Before a tree's records and leaf values are gathered at random, they
are read once front to back: streaming them into cache beats taking each miss in turn.

Results do not depend on the block size: leaves are exact, and the leaf values of a row are
summed over the trees exactly as ``value[leaves].sum(axis=1)`` sums them for two rows or more
(in tree order; pairwise for a single output), a lone row included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ..data import Bins
from ._arrays import TreeArrays

__all__ = ["Allocate", "FlatForest"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
#: Makes one array of a flat forest: (part name, shape, dtype) -> a new array.
Allocate = Callable[[str, tuple[int, ...], type], np.ndarray]
#: Called with (first row of the block, tree, leaf of every row of the block).
_Visit = Callable[[int, int, I64], None]

#: Rows per block: bounds the working memory; large enough that per-call overhead is small.
BLOCK_ROWS = 32768
#: ... and at most this many codes per block (wide data), so that they stay in cache.
_BLOCK_CODES = 2**21
#: Values binned at a time: keeps the binning temporaries in cache.
_BIN_VALUES = 2**16

_FEAT_SHIFT = 40
_LEFT_SHIFT = 8
_LEFT_MASK = (1 << 32) - 1
#: Levels resolved by the column-wise lookup at the top of each tree (7 split nodes at most).
_TOP_LEVELS = 3
#: ... and only for blocks of at least this many rows (below, its fixed cost dominates).
_TOP_MIN_ROWS = 2048
#: Aim for at least this many (row, tree) pairs per descent.
_GROUP_PAIRS = 32768
#: Check for finished rows every this many steps, and drop them when at most this fraction
#: of the rows is still moving (dropping costs a pass over the arrays).
_COMPACT_EVERY = 2
_COMPACT_BELOW = 0.75
#: Stream a tree's node records (values) into cache before a block of at least this many rows
#: gathers from them: each row visits a node per level (reads one value).
_TOUCH_NODES_ROWS = 64
_TOUCH_VALUES_ROWS = 512
#: Grid binning: a feature whose cells hold more edges than this is binned by searchsorted,
#: and so are the features beyond this many cells in all.
_MAX_EDGES_PER_CELL = 3
_MAX_CELLS = 2**20
#: FlatForest is built at most this many nodes at a time (bounds its temporaries).
_FLAT_GROUP = 1 << 16


def _allocate_private(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.empty(shape, dtype=dtype)


def _placed(allocate: Allocate, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` copied into arrays that ``allocate`` makes (as they are: private ones)."""
    if allocate is _allocate_private:
        return arrays
    out = {}
    for name, arr in arrays.items():
        out[name] = allocate(name, arr.shape, arr.dtype.type)
        out[name][...] = arr
    return out


class FlatForest:
    """All trees of a forest in one node table, ready for prediction."""

    #: The arrays that define a flat forest (what :meth:`parts` returns).
    PARTS = ("roots", "packed", "value", "missing_left", "cat_nodes", "cat_left")

    def __init__(
        self, trees: Sequence[TreeArrays], bins: Bins, allocate: Allocate | None = None
    ) -> None:
        """The node table of ``trees``; ``allocate`` makes its arrays (say in shared
        memory, so that pool processes map the table instead of a copy of it)."""
        allocate = _allocate_private if allocate is None else allocate
        if not trees:
            raise ValueError("a forest needs at least one tree")
        d = bins.n_features
        sizes = np.array([t.node_count for t in trees], dtype=np.int64)
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total = int(sizes.sum())
        if total >= 2**31 or 2 * d >= 2**23:
            raise ValueError("forest too large for the packed node table")
        if any(t.feature.size and int(t.feature.max()) >= d for t in trees):
            raise ValueError(f"a tree splits on a feature >= n_features={d}")
        n_bins = bins.n_bins.astype(np.int64)
        packed = allocate("packed", (total,), np.int64)
        value = allocate("value", (total, trees[0].value.shape[1]), np.float64)
        missing_left = allocate("missing_left", (total,), np.bool_)
        cat_nodes = []
        cat_sets = []
        # A group of trees at a time, written into the outputs: forest-wide int64
        # temporaries would cost ~100 bytes a node, all alive at once (the peak of a fit).
        start = 0
        while start < len(trees):
            stop = start + 1
            while stop < len(trees) and roots[stop] + sizes[stop] - roots[start] <= _FLAT_GROUP:
                stop += 1
            group = trees[start:stop]
            lo = int(roots[start])
            hi = lo + int(sizes[start:stop].sum())
            feature = np.concatenate([t.feature for t in group]).astype(np.int64)
            is_split = feature >= 0
            cat_index = [t.cat_index for t in group]  # rebuilt on access: once a tree
            is_num = is_split & (np.concatenate(cat_index) < 0)
            thr = np.concatenate([t.threshold_bin for t in group]).astype(np.int64)
            np.maximum(feature, 0, out=feature)
            # Numeric thresholds lie below the feature's missing-value code (the last real
            # bin at most), which is what lets missing values be coded 0 or 255 per node.
            limit = n_bins[feature] - 1
            bad = is_num & ((thr < 0) | (thr > limit))
            if bad.any():
                node = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"node {lo + node} of the forest has threshold_bin {thr[node]} outside "
                    f"[0, {limit[node]}] for feature {feature[node]}"
                )
            del limit, bad
            np.logical_and(
                np.concatenate([t.missing_left for t in group]).astype(bool), is_split,
                out=missing_left[lo:hi],
            )
            left = np.concatenate([t.left for t in group]).astype(np.int64)
            left += np.repeat(roots[start:stop], sizes[start:stop])
            np.copyto(left, np.arange(lo, hi, dtype=np.int64), where=~is_split)
            # Leaves and categorical nodes use threshold 255: no carry, so they go "left" (a
            # leaf to itself; a categorical node is fixed up).
            out = packed[lo:hi]
            np.left_shift(feature, _FEAT_SHIFT, out=out)
            left <<= _LEFT_SHIFT
            out |= left
            out |= np.where(is_num, 255 - thr, 0)
            del left, feature, thr
            value[lo:hi] = np.concatenate([t.value for t in group])
            for t, index, root in zip(group, cat_index, roots[start:stop], strict=True):
                idx = np.flatnonzero((t.feature >= 0) & (index >= 0))
                cat_nodes.append(idx + root)
                cat_sets.append(t.cat_left[index[idx]])
            start = stop
        cat_node_arr = np.concatenate(cat_nodes).astype(np.int64)
        cat_left = (
            np.concatenate(cat_sets) if cat_node_arr.size else np.zeros((0, 256), dtype=bool)
        )
        small = _placed(allocate, {"roots": roots, "cat_nodes": cat_node_arr, "cat_left": cat_left})
        self._init(
            bins, packed=packed, value=value, missing_left=missing_left,
            roots=small["roots"], cat_nodes=small["cat_nodes"], cat_left=small["cat_left"],
        )

    def adopt_values(self, trees: Sequence[TreeArrays]) -> None:
        """Point each tree's ``value`` at its rows of this table (the trees it was built
        from): the leaf values are then kept once, not twice."""
        if len(trees) != self.n_trees:
            raise ValueError(f"{len(trees)} trees for a table of {self.n_trees}")
        for tree, lo, hi in zip(trees, self.roots, self._ends, strict=True):
            rows = self.value[int(lo) : int(hi)]
            same = rows.shape == tree.value.shape and np.array_equal(
                rows, tree.value, equal_nan=True
            )
            if not same:
                raise ValueError("adopt_values needs the trees this table was built from")
            tree.value = rows

    @classmethod
    def from_parts(cls, bins: Bins, parts: dict[str, np.ndarray]) -> FlatForest:
        """Rebuild from :meth:`parts` (e.g. arrays mapped from shared memory)."""
        self = cls.__new__(cls)
        self._init(bins, **{name: parts[name] for name in cls.PARTS})
        return self

    def parts(self) -> dict[str, np.ndarray]:
        """The arrays that define this forest, by name (see :attr:`PARTS`)."""
        return {name: getattr(self, name) for name in self.PARTS}

    def _init(
        self,
        bins: Bins,
        *,
        roots: I64,
        packed: I64,
        value: F64,
        missing_left: npt.NDArray[np.bool_],
        cat_nodes: I64,
        cat_left: npt.NDArray[np.bool_],
    ) -> None:
        self.bins = bins
        self.roots = roots
        self.n_trees = int(roots.size)
        self.packed = packed
        self.value = value
        self.missing_left = missing_left
        self.cat_nodes = cat_nodes
        self.cat_left = cat_left
        total = packed.size
        self._ends = np.append(roots[1:], total)
        #: A descent takes at most this many steps; more means the child links form a cycle.
        self._max_steps = int((self._ends - roots).max()) + 2
        self._d = bins.n_features
        self._binner = _GridBinner(bins)
        self._packed_missing: I64 | None = None
        self._is_cat: npt.NDArray[np.bool_] | None = None
        if cat_nodes.size:
            self._is_cat = np.zeros(total, dtype=bool)
            self._is_cat[cat_nodes] = True
            self._cat_row = np.zeros(total, dtype=np.int64)
            self._cat_row[cat_nodes] = np.arange(cat_nodes.size, dtype=np.int64) * 256
            # 1 where the row goes right; code 255 is a missing (or unseen) category.
            right = ~cat_left.astype(bool)
            right[:, 255] = ~missing_left[cat_nodes]
            self._cat_right = right.astype(np.uint8).reshape(-1)
        # Built on first use: small inputs never use it.
        self._top: list[tuple[list[tuple[int, int, int, int]], I64] | None] = [None] * self.n_trees

    def _missing_table(self) -> I64:
        """``packed`` with the records of numeric nodes that send missing values left
        pointing at the second copy of the codes (where missing is 0)."""
        if self._packed_missing is None:
            is_num = (self.packed & 255) != 0  # leaves and categorical nodes store 0
            shift = np.where(is_num & self.missing_left, self._d, 0).astype(np.int64)
            self._packed_missing = self.packed + (shift << _FEAT_SHIFT)
        return self._packed_missing

    # --- the top levels -----------------------------------------------------------------------
    def _top_of_tree(self, root: int) -> tuple[list[tuple[int, int, int, int]], I64]:
        """The split nodes of the top levels as (feature, missing_left, threshold, row in the
        categorical table or -1), and the table from their outcome bits to the node reached."""
        packed = self.packed
        # Nodes in heap order over the top levels; below a leaf, the leaf repeats.
        heap = [root]
        splits: list[tuple[int, int, int, int]] = []
        bit_of: dict[int, int] = {}
        for h in range(2**_TOP_LEVELS - 1):
            node = heap[h]
            rec = int(packed[node])
            left = (rec >> _LEFT_SHIFT) & _LEFT_MASK
            if left == node:  # a leaf points at itself
                heap += [node, node]
                continue
            heap += [left, left + 1]
            cat = self._is_cat is not None and bool(self._is_cat[node])
            bit_of[h] = len(splits)
            splits.append((
                rec >> _FEAT_SHIFT,
                int(self.missing_left[node]),
                255 - (rec & 255),
                int(self._cat_row[node]) if cat else -1,
            ))
        keys = np.arange(2 ** len(splits), dtype=np.int64)
        h_at = np.zeros(keys.size, dtype=np.int64)
        for _ in range(_TOP_LEVELS):
            bit = np.zeros(keys.size, dtype=np.int64)
            for h, j in bit_of.items():
                here = h_at == h
                bit[here] = (keys[here] >> j) & 1
            h_at = 2 * h_at + 1 + bit
        table = np.array(heap, dtype=np.int64)[h_at]
        return splits, table

    def _top_nodes(self, tree: int, column: _Columns, n: int, missing: bool) -> I64:
        """The node each row reaches after the top levels of one tree."""
        top = self._top[tree]
        if top is None:
            top = self._top[tree] = self._top_of_tree(int(self.roots[tree]))
        splits, table = top
        if not splits:
            return np.full(n, table[0], dtype=np.int64)
        key = np.zeros(n, dtype=np.uint8)
        for feat, miss_left, thr, cat_row in reversed(splits):
            key += key  # Horner: the first split ends up as bit 0
            if cat_row >= 0:
                key += self._cat_right[cat_row : cat_row + 256].take(column(feat))
            else:
                col = column(feat + self._d if missing and miss_left else feat)
                key += np.greater(col, thr).view(np.uint8)
        return table.take(key.astype(np.intp))

    # --- descent -------------------------------------------------------------------------------
    def _descend(self, packed: I64, node: I64, codes: U8, row_base: I64) -> I64:
        """Walk every row from ``node`` down to its leaf; row ``i`` has its codes at
        ``codes[row_base[i]:]``."""
        is_cat = self._is_cat
        result = node  # replaced at the first check, before it is read
        active: I64 | None = None
        base = row_base
        for step in range(1, self._max_steps + 1):
            rec = packed[node]
            idx = rec >> _FEAT_SHIFT
            idx += base
            code = codes[idx]
            nxt = rec + code  # carries into ``left`` exactly when code > threshold
            nxt >>= _LEFT_SHIFT
            nxt &= _LEFT_MASK
            if is_cat is not None:
                at_cat = np.flatnonzero(is_cat[node])
                if at_cat.size:
                    right = self._cat_right[self._cat_row[node[at_cat]] + code[at_cat]]
                    nxt[at_cat] = ((rec[at_cat] >> _LEFT_SHIFT) & _LEFT_MASK) + right
            if step % _COMPACT_EVERY == 0:
                moved = np.flatnonzero(nxt != node)
                if moved.size <= _COMPACT_BELOW * nxt.size:
                    # Rows that stopped moving sit on their leaf; the others are overwritten
                    # later.
                    if active is None:
                        result = nxt
                        active = moved
                    else:
                        result[active] = nxt
                        active = active[moved]
                    if moved.size == 0:
                        return result
                    nxt = nxt[moved]
                    base = row_base[active]
            node = nxt
        raise ValueError("tree child links form a cycle")

    def _walk(self, X: F64, visit: _Visit) -> None:
        """Bin ``X`` block by block and call ``visit(lo, tree, leaves)`` for every tree."""
        X = self._binner.check(X)
        d = self._d

        def codes_of(lo: int, hi: int) -> U8:
            codes = np.empty((hi - lo, d), dtype=np.uint8)
            self._binner.codes(X[lo:hi], codes)
            return codes

        self._walk_codes(X.shape[0], codes_of, visit)

    def _walk_codes(self, n_rows: int, codes_of: Callable[[int, int], U8], visit: _Visit
                    ) -> None:
        """Call ``visit(lo, tree, leaves)`` for every tree, block by block of the codes
        (rows, features) that ``codes_of(lo, hi)`` gives."""
        block = self._block_rows()
        d = self._d
        for lo in range(0, n_rows, block):
            hi = min(lo + block, n_rows)
            n = hi - lo
            codes = codes_of(lo, hi)
            is_missing = codes == self._binner.missing_code
            missing = bool(is_missing.any())
            packed = self.packed
            if missing:
                # Twice per row: missing as 255 (goes right), then missing as 0 (goes left).
                both = np.empty((n, 2 * d), dtype=np.uint8)
                both[:, :d] = np.where(is_missing, np.uint8(255), codes)
                both[:, d:] = np.where(is_missing, np.uint8(0), codes)
                codes = both
                packed = self._missing_table()
            column = _Columns(codes)
            flat = codes.reshape(-1)
            row_base = np.arange(n, dtype=np.int64) * codes.shape[1]
            # Few rows: walk several trees at once, so that each array operation still
            # covers enough (row, tree) pairs to be worth its call.
            group = max(1, min(self.n_trees, _GROUP_PAIRS // n))
            top = n >= _TOP_MIN_ROWS
            base = np.tile(row_base, group) if group > 1 else row_base
            for t0 in range(0, self.n_trees, group):
                t1 = min(t0 + group, self.n_trees)
                if n >= _TOUCH_NODES_ROWS:
                    _touch(packed[self.roots[t0] : self._ends[t1 - 1]])
                if top:
                    tops = [self._top_nodes(t, column, n, missing) for t in range(t0, t1)]
                    node = tops[0] if len(tops) == 1 else np.concatenate(tops)
                else:
                    node = np.repeat(self.roots[t0:t1], n)
                leaf = self._descend(packed, node, flat, base[: node.size])
                for t in range(t0, t1):
                    visit(lo, t, leaf[(t - t0) * n : (t - t0 + 1) * n])

    def _block_rows(self) -> int:
        return max(1, min(BLOCK_ROWS, _BLOCK_CODES // max(self._d, 1)))

    # --- public --------------------------------------------------------------------------------
    def leaves(self, X: F64) -> npt.NDArray[np.int64]:
        """Global leaf index of every (row, tree) pair, shape (n_rows, n_trees)."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty((X.shape[0] if X.ndim == 2 else 0, self.n_trees), dtype=np.int64)

        def visit(lo: int, tree: int, leaf: I64) -> None:
            out[lo : lo + leaf.size, tree] = leaf

        self._walk(X, visit)
        return out

    def leaves_of_codes(self, codes: U8) -> npt.NDArray[np.int64]:
        """:meth:`leaves` of rows already binned by this forest's bins: ``codes`` is
        row-major ``(n_rows, n_features)`` (a training table's codes)."""
        if codes.ndim != 2 or codes.shape[1] != self._d:
            raise ValueError(f"codes have shape {codes.shape}, expected (n, {self._d})")
        out = np.empty((codes.shape[0], self.n_trees), dtype=np.int64)

        def visit(lo: int, tree: int, leaf: I64) -> None:
            out[lo : lo + leaf.size, tree] = leaf

        self._walk_codes(codes.shape[0], lambda lo, hi: codes[lo:hi], visit)
        return out

    def mean_value(self, X: F64) -> F64:
        """The average over trees of the leaf values reached (probabilities or means)."""
        X = np.asarray(X, dtype=np.float64)
        n_rows = X.shape[0] if X.ndim == 2 else 0
        value = self.value
        k = value.shape[1]
        out = np.zeros((n_rows, k), dtype=np.float64)
        if k == 1:
            # numpy sums a contiguous axis pairwise; a (rows, trees) block of at least two
            # rows gives every row the same order whatever the block (a single row would not).
            column = np.ascontiguousarray(value[:, 0])
            block = np.zeros((max(min(n_rows, self._block_rows()), 2), self.n_trees))

            def visit_one(lo: int, tree: int, leaf: I64) -> None:
                if leaf.size >= _TOUCH_VALUES_ROWS:
                    _touch(column[self.roots[tree] : self._ends[tree]])
                block[: leaf.size, tree] = column.take(leaf)
                if tree == self.n_trees - 1:
                    out[lo : lo + leaf.size, 0] = block.sum(axis=1)[: leaf.size]

            self._walk(X, visit_one)
        else:
            # Summed over trees in index order for every row, as numpy sums a middle axis.
            def visit_many(lo: int, tree: int, leaf: I64) -> None:
                if leaf.size >= _TOUCH_VALUES_ROWS:
                    _touch(value[self.roots[tree] : self._ends[tree]])
                out[lo : lo + leaf.size] += value.take(leaf, axis=0)

            self._walk(X, visit_many)
        out /= self.n_trees
        return out


def _touch(a: np.ndarray) -> None:
    """Read ``a`` once front to back. The gathers that follow hit it at random; streaming it
    into cache first is several times cheaper than taking each cache miss in turn."""
    np.bitwise_or.reduce(a.reshape(-1).view(np.uint64))


class _Columns:
    """Contiguous copies of code columns, made on first use (the top levels of all trees
    read only a few features)."""

    def __init__(self, codes: U8) -> None:
        self._codes = codes
        self._cache: dict[int, U8] = {}

    def __call__(self, feat: int) -> U8:
        col = self._cache.get(feat)
        if col is None:
            col = np.ascontiguousarray(self._codes[:, feat])
            self._cache[feat] = col
        return col


class _GridBinner:
    """Bins rows exactly as :meth:`Bins.transform` does, with far fewer comparisons.

    ``Bins.transform`` counts the edges below each value with a binary search. Here each numeric
    feature's edge range is cut into equal cells; a value's cell gives the number of edges in
    earlier cells from a table, and a few comparisons count the edges inside its own cell.
    The cell of a value is a monotone function of it (subtract, scale, clamp, floor), so
    every edge in an earlier cell is below the value and every edge in a later one above it:
    the count is exact. Features whose edges bunch up in a cell, and categorical features,
    go through ``Bins.transform`` itself.
    """

    def __init__(self, bins: Bins) -> None:
        d = bins.n_features
        self.d = d
        self.missing_code = bins.n_bins.astype(np.uint8)
        self.lo = np.zeros(d)
        self.scale = np.zeros(d)
        self.top_cell = np.zeros(d)
        cell_off = np.zeros(d, dtype=np.int64)
        edge_off = np.zeros(d, dtype=np.int64)
        starts: list[I64] = []
        edges: list[F64] = []
        n_cells = n_edges = 0
        self.steps = 0
        slow: list[int] = []
        for f in range(d):
            e = np.asarray(bins.edges[f], dtype=np.float64)
            grid = None
            if not bins.is_categorical[f] and n_cells + 32 * e.size < _MAX_CELLS:
                grid = self._grid(f, e)
            cell_off[f] = n_cells
            edge_off[f] = n_edges
            if grid is None:
                # Binned by ``Bins.transform``; the grid pass computes a harmless 0 for it.
                slow.append(f)
                self.lo[f] = self.scale[f] = self.top_cell[f] = 0.0
                start = np.zeros(1, dtype=np.int64)
                e = np.empty(0)
            else:
                start, steps = grid
                self.steps = max(self.steps, steps)
            starts.append(start + n_edges)
            edges.append(np.append(e, np.inf))
            n_cells += start.size
            n_edges += e.size + 1
        self.cell_off = cell_off
        self.edge_off = edge_off
        self.start = np.concatenate(starts)
        self.edges = np.concatenate(edges)
        self.slow = np.array(slow, dtype=np.int64)
        self.slow_bins = bins.select(self.slow)

    def _grid(self, f: int, e: F64) -> tuple[I64, int] | None:
        """Cell table of one numeric feature: ``start[c]`` = number of edges in cells before
        ``c`` (and the most edges one cell holds), or None when a grid does not help."""
        if e.size == 0:
            return np.zeros(1, dtype=np.int64), 0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            span = e[-1] - e[0]
            for n_cells in (4 * e.size, 32 * e.size):
                scale = n_cells / span if span > 0 else 0.0
                if not np.isfinite(scale) or not np.isfinite(e[0]):
                    return None
                self.lo[f], self.scale[f], self.top_cell[f] = e[0], scale, n_cells - 1
                cells = self._cells(e, e[0], scale, float(n_cells - 1))
                counts = np.bincount(cells, minlength=n_cells)
                if counts.max() <= _MAX_EDGES_PER_CELL:
                    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
                    return start, int(counts.max())
        return None

    @staticmethod
    def _cells(x: F64, lo: F64 | float, scale: F64 | float, top: F64 | float) -> I64:
        t = x - lo
        t *= scale
        np.fmax(t, 0.0, out=t)  # also maps NaN to cell 0
        np.fmin(t, top, out=t)
        return t.astype(np.intp)

    def check(self, X: F64) -> F64:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.d:
            raise ValueError(f"X has shape {X.shape}, expected (n_samples, {self.d}) features")
        return X

    def codes(self, X: F64, out: U8) -> None:
        """Write the codes of ``X`` into ``out`` (n_rows, n_features), as ``transform`` would
        (transposed)."""
        rows = max(1, _BIN_VALUES // max(self.d, 1))
        for lo in range(0, X.shape[0], rows):
            x = X[lo : lo + rows]
            with np.errstate(over="ignore", invalid="ignore"):
                cell = self._cells(x, self.lo, self.scale, self.top_cell)
            cell += self.cell_off
            b = self.start[cell]
            for _ in range(self.steps):
                b += x > self.edges[b]
            b -= self.edge_off
            block = out[lo : lo + rows]
            np.copyto(block, b, casting="unsafe")
            missing = np.isnan(x)
            if missing.any():
                np.copyto(block, np.broadcast_to(self.missing_code, block.shape), where=missing)
        if self.slow.size:
            out[:, self.slow] = self.slow_bins.transform(X[:, self.slow]).T
