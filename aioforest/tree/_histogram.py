"""Stage 1 of a level: histograms of the rows in the open nodes.

For the candidate nodes of one search round, each with ``k`` drawn features ("slots"), a
*group* is one (node, slot) pair and a *cell* one (group, bin) pair. :func:`build_histograms`
returns, for every non-empty cell in increasing cell order, its statistics per channel
(:class:`Histograms`). Two ways build them and both give the same numbers:

* dense: ``np.bincount`` over every cell, cheap while the cells are few (top levels);
* sorted: one ``np.sort`` of keys that pack (cell) above (class, count), then run lengths;
  cheap when the cells far outnumber the rows (deep levels).

With integer weights (bootstrap counts) the statistics are int64 and exact: histograms
built where rows live can be summed (:func:`sum_histograms`) in any order and give the
histograms of all the rows, bit for bit. That is the boundary between machines in
data-parallel growth: only :class:`Histograms` (plain arrays) crosses it.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CHUNK_ELEMENTS",
    "REGRESSION_TOTALS",
    "CodeTable",
    "DrawnFeatures",
    "GiniScan",
    "Histograms",
    "LevelRows",
    "build_histograms",
    "consecutive_spans",
    "grouped_order",
    "node_totals",
    "run_starts",
    "run_sums",
    "runs",
    "squares_from_limbs",
    "sum_histograms",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class CodeTable:
    """The binned training rows as tree growth reads them.

    ``codes`` is the row-major code matrix, flattened: the code of row ``r`` on feature
    ``f`` is ``codes[r * n_features + f]`` (the k drawn features of one row then share a
    cache line). ``n_bins[f]`` counts feature ``f``'s real bins; code ``n_bins[f]`` is its
    missing-value bin.
    """

    codes: npt.NDArray[np.uint8]
    n_features: int
    n_bins: npt.NDArray[np.int32]
    is_categorical: B1

    def code(self, rows: I64, features: I64) -> npt.NDArray[np.uint8]:
        """The codes of ``rows`` on ``features`` (same shape, paired element-wise)."""
        out: npt.NDArray[np.uint8] = self.codes[rows * self.n_features + features]
        return out


@dataclass(frozen=True, eq=False)
class LevelRows:
    """The rows in a level's open nodes: one instance per (tree, in-bag row).

    ``node`` is each instance's index among the nodes being processed, ``weight`` its
    in-bag weight (a bootstrap count, times any sample weight) and ``y`` its class code or
    target.
    """

    row: I64
    weight: F64
    y: I64 | F64
    node: I64

    @property
    def size(self) -> int:
        return int(self.row.size)

    def take(self, keep: B1 | I64, node: I64 | None = None) -> LevelRows:
        """The instances selected by ``keep``, with new node indices if given."""
        return LevelRows(
            self.row[keep], self.weight[keep], self.y[keep],
            self.node[keep] if node is None else node,
        )


@dataclass(frozen=True, eq=False)
class DrawnFeatures:
    """The features each candidate node scores in one round, in draw order.

    ``features[i, j]`` is slot ``j`` of candidate ``i``; only slots with ``valid`` set are
    used (nodes draw different numbers of features).
    """

    features: I64
    valid: B1

    @property
    def shape(self) -> tuple[int, int]:
        s, k = self.features.shape
        return int(s), int(k)


@dataclass(frozen=True, eq=False)
class Histograms:
    """The statistics of every non-empty (node, slot, bin) cell of one round.

    ``cells`` are cell ids ``(node * k + slot) * bins_per_group + bin`` in increasing order;
    ``stats`` their statistics, channel-major ``(n_channels, n_cells)``: int64 (exact) with
    integer weights, float64 otherwise; ``counts`` their row counts, or None when no rule
    needs them (``min_samples_leaf`` of 1).
    """

    cells: I64
    stats: npt.NDArray[Any]
    counts: I64 | None
    bins_per_group: int

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Plain arrays, for a wire or a file."""
        out: dict[str, npt.NDArray[Any]] = {
            "cells": self.cells, "stats": self.stats,
            "bins_per_group": np.array([self.bins_per_group], dtype=np.int64),
        }
        if self.counts is not None:
            out["counts"] = self.counts
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> Histograms:
        cells = np.asarray(arrays["cells"], dtype=np.int64)
        stats = np.asarray(arrays["stats"])
        counts = arrays.get("counts")
        if stats.ndim != 2 or stats.shape[1] != cells.size or cells.ndim != 1:
            raise ValueError(f"histogram stats {stats.shape} do not match {cells.size} cells")
        if counts is not None and np.shape(counts) != cells.shape:
            raise ValueError(f"histogram counts {np.shape(counts)} != cells {cells.shape}")
        if cells.size > 1 and not bool(np.all(cells[1:] > cells[:-1])):
            raise ValueError("histogram cells must be strictly increasing")
        return cls(cells, stats, None if counts is None else np.asarray(counts, np.int64),
                   int(np.asarray(arrays["bins_per_group"]).reshape(-1)[0]))


@dataclass(frozen=True, eq=False)
class GiniScan:
    """Gini's class-count-independent form of the histograms (many classes, one process).

    Per non-empty cell, in cell order: the increments of ``sum_c L_c^2`` (``sq``), of
    ``sum_c T_c*L_c`` (``tl``) and of ``W_L`` (``w``) as the cell's rows join the left side
    of a scan in bin order, ``L_c`` being the left count of class ``c`` and ``T_c`` the
    node's. ``tl`` and ``w`` are sums over rows and could be summed across machines; ``sq``
    depends on the rows before the cell, so this form stays where all rows are.
    """

    cells: I64
    sq: F64
    tl: F64
    w: F64
    bins_per_group: int


def run_starts(sorted_values: npt.NDArray[Any]) -> tuple[I64, B1]:
    """For a sorted, non-empty array: the start of each run of equal values, and whether
    each element starts one."""
    new = np.empty(sorted_values.size, dtype=bool)
    new[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    return np.flatnonzero(new), new


def runs(sorted_values: npt.NDArray[Any]) -> tuple[I64, I64]:
    """For a sorted array: the start of each run of equal values, and each element's run."""
    starts, new = run_starts(sorted_values)
    run = np.cumsum(new, dtype=np.int64)
    run -= 1
    return starts, run


def grouped_order(group: npt.NDArray[Any], n_groups: int) -> tuple[I64, I64]:
    """A stable order that groups elements by their small group number, and where each
    group starts in it (``n_groups + 1`` bounds): a radix sort while the numbers fit 16
    bits, so each group's elements keep their order."""
    small = group.astype(np.uint16 if n_groups <= 1 << 16 else np.int64, copy=False)
    order = np.argsort(small, kind="stable")
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(small, minlength=n_groups), out=starts[1:])
    return order, starts


def run_sums(values: I64, starts: I64) -> I64:
    """The sums of the runs of integer ``values`` (along the last axis) that begin at
    ``starts`` (ascending, the first 0: the runs cover every value), from one running sum.

    ``np.add.reduceat`` pays a call per run, which is most of its time when runs are short
    (deep levels: a cell or two each). Differences of a running sum are exact for integers,
    even where the running sum wraps around, as long as each run's sum fits in int64.
    """
    running = np.cumsum(values, axis=-1)
    ends = np.empty(starts.size, dtype=np.int64)
    ends[:-1] = starts[1:]
    ends[-1:] = values.shape[-1]
    ends -= 1
    out: I64 = running[..., ends]
    out[..., 1:] -= out[..., :-1].copy()
    return out


def node_totals(
    rows: LevelRows, n_nodes: int, n_channels: int, classification: bool,
    class_weight: F64 | None,
) -> npt.NDArray[Any]:
    """Each node's statistics, node-major ``(n_nodes, n_channels)`` (class-weighted).

    Regression gives ``REGRESSION_TOTALS`` columns: W, S and the sum of squares Q as three
    limbs (:func:`squares_from_limbs` makes the (W, S, Q) the criteria read). With
    fixed-point targets (``rows.y`` integers, see ``_plan.arithmetic``) every column is an
    exact sum: the limbs are the weighted sums of 21-bit pieces of ``y**2``, each below
    2**53, so totals summed over any cut of the rows are the same bit for bit. Float targets
    put all of Q in the last limb.
    """
    if classification:
        total = np.bincount(
            rows.node * n_channels + rows.y, weights=rows.weight, minlength=n_nodes * n_channels
        ).reshape(n_nodes, n_channels)
        return total * class_weight if class_weight is not None else total
    yv = rows.y.astype(np.float64)
    out = np.zeros((n_nodes, REGRESSION_TOTALS))
    out[:, 0] = np.bincount(rows.node, weights=rows.weight, minlength=n_nodes)
    wy = rows.weight * yv
    out[:, 1] = np.bincount(rows.node, weights=wy, minlength=n_nodes)
    if rows.y.dtype.kind == "f":
        out[:, 4] = np.bincount(rows.node, weights=wy * yv, minlength=n_nodes)
        return out
    y2 = rows.y.astype(np.int64) ** 2  # below 2**62 (at most 31 bits of target)
    for column, shift in ((2, 42), (3, 21), (4, 0)):
        limb = ((y2 >> shift) & _LIMB_MASK).astype(np.float64)
        limb *= rows.weight
        out[:, column] = np.bincount(rows.node, weights=limb, minlength=n_nodes)
    return out


#: Columns of a regression node total: W, S, and Q in three limbs.
REGRESSION_TOTALS = 5
_LIMB_MASK = (1 << 21) - 1


def squares_from_limbs(total: F64) -> F64:
    """(W, S, Q) per node from :func:`node_totals`' regression columns (node-major)."""
    q = total[:, 2] * float(1 << 21)
    q += total[:, 3]
    q *= float(1 << 21)
    q += total[:, 4]
    return np.column_stack([total[:, 0], total[:, 1], q])


def sum_histograms(parts: Sequence[Histograms]) -> Histograms:
    """The histograms of the union of the rows that ``parts`` were built from.

    Integer statistics are exact, so the result does not depend on the order of ``parts``;
    float statistics are summed in the order given.
    """
    if not parts:
        raise ValueError("sum_histograms needs at least one part")
    bins_per_group = parts[0].bins_per_group
    if any(p.bins_per_group != bins_per_group for p in parts):
        raise ValueError("histograms of different layouts cannot be summed")
    if len(parts) == 1:
        return parts[0]
    cells = np.concatenate([p.cells for p in parts])
    order = np.argsort(cells, kind="stable")
    cells = cells[order]
    starts, _ = runs(cells) if cells.size else (np.zeros(0, np.int64), None)
    stats = np.concatenate([p.stats for p in parts], axis=1)[:, order]
    with_counts = all(p.counts is not None for p in parts)
    counts = None
    if with_counts:  # no cells at all (parts without the candidates' rows): no counts
        counts = np.add.reduceat(
            np.concatenate([p.counts for p in parts if p.counts is not None])[order], starts
        ) if cells.size else np.zeros(0, dtype=np.int64)
    if cells.size:
        stats = np.add.reduceat(stats, starts, axis=1)
    return Histograms(cells[starts], stats, counts, bins_per_group)


def _entries_sorted_packed(
    keys: npt.NDArray[Any], payload_bits: int, w_bits: int, cls_bits: int,
    n_channels: int, with_counts: bool,
) -> Histograms:
    """Histograms from sorted keys ``cell << payload_bits | class << w_bits | count``."""
    kt = keys.dtype.type
    cells = keys >> kt(payload_bits)
    starts, run = runs(cells)
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
    return Histograms(ent_cells, stats.astype(np.int64), counts, 0)


def _sorted_cells(cell: I64) -> tuple[npt.NDArray[Any], I64]:
    """``cell`` sorted, and the order that sorts it.

    While a cell and an element's position fit one 64-bit key together, sorting the keys
    is several times faster than an argsort (and gives the stable order).
    """
    pos_bits = max(int(cell.size).bit_length(), 1)
    if int(cell.max(initial=0)).bit_length() + pos_bits > 64:
        order = np.argsort(cell)
        return cell[order], order
    keys = cell.astype(np.uint64)
    keys <<= np.uint64(pos_bits)
    keys |= np.arange(cell.size, dtype=np.uint64)
    keys.sort()
    order = (keys & np.uint64((1 << pos_bits) - 1)).astype(np.int64)
    keys >>= np.uint64(pos_bits)
    return keys, order


def _entries_sorted_general(
    cell: I64, y: npt.NDArray[Any], w: F64, n_channels: int, classification: bool,
    integral: bool,
) -> Histograms:
    """Histograms via a sort of the cells, for weights or targets that cannot be packed;
    ``y`` is the class or the weighted target ``w * y``.

    The sort only finds the distinct cells and each element's entry; the sums then run
    over the elements in their given order, so float sums add up in the same order
    whatever order the sort leaves equal cells in.
    """
    cells_sorted, order = _sorted_cells(cell)
    starts, run = runs(cells_sorted)
    ent_cells = cells_sorted[starts].astype(np.int64)
    del cells_sorted
    n_entries = starts.size
    entry = np.empty_like(run)
    entry[order] = run
    del order, run
    counts = np.diff(np.append(starts, cell.size))
    del starts
    if classification:
        index = y.astype(np.int64)
        index *= n_entries
        index += entry
        del entry
        stats: npt.NDArray[Any] = np.bincount(
            index, weights=w, minlength=n_entries * n_channels
        ).reshape(n_channels, n_entries)
    else:
        stats = np.empty((2, n_entries))
        stats[0] = np.bincount(entry, weights=w, minlength=n_entries)
        stats[1] = np.bincount(entry, weights=y, minlength=n_entries)  # y is w * y here
    return Histograms(
        ent_cells, stats.astype(np.int64) if integral else stats, counts, 0
    )


def _entries_dense(
    cell: I64, n_cells: int, y: npt.NDArray[Any], w: F64, n_channels: int,
    classification: bool, integral: bool, with_counts: bool,
) -> Histograms:
    """Histograms via dense bincounts over every cell.

    ``y`` is the class (classification; scratch: it becomes the (class, cell) index in
    place) or the weighted target ``w * y`` (regression). Weights are positive, so a cell
    is present where its weight is; elements are counted only when ``with_counts``.
    """
    counts_all = np.bincount(cell, minlength=n_cells) if with_counts else None
    if classification:
        index = np.asarray(y, dtype=np.int64)
        index *= n_cells
        index += cell
        full = np.bincount(index, weights=w, minlength=n_cells * n_channels).reshape(
            n_channels, n_cells
        )
        del index
        present = np.flatnonzero(full.any(axis=0) if counts_all is None else counts_all)
        stats = full[:, present]
        del full
    else:
        w_full = np.bincount(cell, weights=w, minlength=n_cells)
        present = np.flatnonzero(w_full if counts_all is None else counts_all)
        stats = np.stack([w_full[present],
                          np.bincount(cell, weights=y, minlength=n_cells)[present]])
    return Histograms(
        present.astype(np.int64), stats.astype(np.int64) if integral else stats,
        None if counts_all is None else counts_all[present], 0,
    )


@dataclass(frozen=True, eq=False)
class _Elements:
    """The bin of every used (instance, slot) element of a round.

    Either ``bins`` is ``(n_inst, k)`` with ``valid`` (None: all used) marking the used
    elements, or ``pairs`` lists the used (instance, slot) pairs and ``bins`` is flat.
    """

    bins: npt.NDArray[np.uint8]
    valid: B1 | None
    pairs: tuple[I64, I64] | None
    count: int
    per_instance: I64 | None = None  # with ``valid``: each instance's used slots

    def instances(self, n_instances: int) -> I64:
        """The instance of every used element, in element order."""
        if self.pairs is not None:
            return self.pairs[0]
        each = np.arange(n_instances, dtype=np.int64)
        k = self.bins.shape[1] if self.bins.ndim == 2 else 1
        return np.repeat(each, k if self.per_instance is None else self.per_instance)


def _elements(table: CodeTable, rows: LevelRows, drawn: DrawnFeatures) -> _Elements:
    # Nodes draw different numbers of features. While most slots are used, every
    # (instance, slot) pair is built and the unused ones are compressed out at the end:
    # whole-row np.take gathers are several times faster than gathering pairs one by one.
    # Otherwise (a round where a few nodes draw many features) only the used pairs are.
    k = drawn.features.shape[1]
    valid: B1 | None = None
    if not bool(drawn.valid.all()):
        valid = np.take(drawn.valid, rows.node, axis=0).reshape(-1)
    n_elements = rows.size * k if valid is None else int(np.count_nonzero(valid))
    if valid is not None and 2 * n_elements < valid.size:
        flat = np.flatnonzero(valid)
        del valid
        e_inst, e_slot = np.divmod(flat, k)
        del flat
        bins = table.code(
            rows.row[e_inst], drawn.features.reshape(-1)[rows.node[e_inst] * k + e_slot]
        )
        return _Elements(bins, None, (e_inst, e_slot), n_elements)
    per_instance = None if valid is None else drawn.valid.sum(axis=1)[rows.node]
    if k == table.n_features and bool((drawn.features == np.arange(k)).all()):
        # slot j is feature j for every node: the elements are the rows' whole code rows
        bins = np.take(table.codes.reshape(-1, k), rows.row, axis=0)
        return _Elements(bins, valid, None, n_elements, per_instance)
    idx = np.take(drawn.features, rows.node, axis=0)
    idx += (rows.row * table.n_features)[:, None]
    return _Elements(table.codes[idx], valid, None, n_elements, per_instance)


def _packed_keys(
    el: _Elements, rows: LevelRows, k: int, n_bins_d: int, payload_bits: int, w_bits: int,
    n_cells: int,
) -> npt.NDArray[Any]:
    """Sorted ``cell << payload | class << w_bits | count`` keys of every used element.

    Built from an instance part, a slot part and the bin, without materialising group ids;
    32-bit keys sort faster, and most levels fit.
    """
    kt: Any = np.uint32 if n_cells.bit_length() + payload_bits <= 32 else np.uint64
    pb = kt(payload_bits)
    inst_part = (rows.node.astype(kt) * kt(k * n_bins_d)) << pb
    inst_part |= (rows.y.astype(kt) << kt(w_bits)) | rows.weight.astype(kt)
    slot_part = (np.arange(k, dtype=kt) * kt(n_bins_d)) << pb
    keys = el.bins.astype(kt)
    keys <<= pb
    if el.pairs is not None:
        keys += inst_part[el.pairs[0]]
        keys += slot_part[el.pairs[1]]
    else:
        keys += inst_part[:, None]
        keys += slot_part[None, :]
        keys = keys.reshape(-1) if el.valid is None else keys.reshape(-1)[el.valid]
    del inst_part
    keys.sort()
    return keys


def _element_cells(
    el: _Elements, rows: LevelRows, k: int, n_bins_d: int, classification: bool
) -> tuple[I64, npt.NDArray[Any], F64]:
    """The cell, class (classification) or weighted target ``w * y`` (regression: one
    product per instance, not per element), and weight of every used element."""
    y = rows.y if classification else rows.weight * rows.y
    if el.pairs is not None:
        e_inst, e_slot = el.pairs
        cell = rows.node[e_inst] * (k * n_bins_d) + e_slot * n_bins_d + el.bins
        return cell, y[e_inst], rows.weight[e_inst]
    cell = (rows.node * (k * n_bins_d))[:, None] + (
        np.arange(k, dtype=np.int64) * n_bins_d
    )[None, :]
    cell += el.bins
    cell = cell.reshape(-1)
    if el.valid is not None:
        cell = cell[el.valid]
    # each instance's y and weight, once per used slot (a repeat, not a repeat and a mask)
    each = k if el.per_instance is None else el.per_instance
    return cell, np.repeat(y, each), np.repeat(rows.weight, each)


def _entries_sorted_exact(el: _Elements, rows: LevelRows, k: int, n_bins_d: int,
                          n_cells: int, with_counts: bool) -> Histograms | None:
    """Regression histograms with exact sums (integer weights and fixed-point targets)
    from one sort of ``cell << pos | position`` keys; None where the keys do not fit.

    After the sort each cell's elements are a run, and each element's instance gives its
    weight and weighted target: the cells' sums are int64 sums over their runs, exact, so
    the order of the elements in a run does not matter (the float path keeps it).
    """
    n_el = el.count
    pos_bits = max(int(n_el).bit_length(), 1)
    if n_cells.bit_length() + pos_bits > 64 or rows.y.dtype.kind not in "iu":
        return None
    u64 = np.uint64
    if el.pairs is not None:
        e_inst, e_slot = el.pairs
        keys = rows.node[e_inst].astype(u64) * u64(k * n_bins_d)
        keys += e_slot.astype(u64) * u64(n_bins_d)
        keys += el.bins
    else:
        keys = (rows.node.astype(u64) * u64(k * n_bins_d))[:, None] + (
            np.arange(k, dtype=u64) * u64(n_bins_d))[None, :]
        keys += el.bins
        keys = keys.reshape(-1) if el.valid is None else keys.reshape(-1)[el.valid]
    keys <<= u64(pos_bits)
    keys |= np.arange(n_el, dtype=u64)
    keys.sort()
    position = (keys & u64((1 << pos_bits) - 1)).astype(np.intp)
    keys >>= u64(pos_bits)
    starts, _ = run_starts(keys)
    cells = keys[starts].view(np.int64)  # below 2**63
    del keys
    inst = el.instances(rows.size)[position]
    del position
    w = rows.weight.astype(np.int64)
    stats = np.empty((2, starts.size), dtype=np.int64)
    stats[0] = run_sums(w[inst], starts)
    w *= rows.y.astype(np.int64, copy=False)
    stats[1] = run_sums(w[inst], starts)
    counts = np.diff(starts, append=n_el) if with_counts else None
    return Histograms(cells, stats, counts, n_bins_d)


#: Stage 1 runs over the candidates in chunks of whole nodes of at most about this many
#: elements. A chunk's per-element temporaries (a few MiB each) then stay under glibc's
#: 32 MiB trim and mmap thresholds (see ``aioforest._malloc``), so the freed ones are reused
#: instead of being handed back and faulted in again page by page (that had cost a third
#: of a regression fit), and they fit the CPU caches better. Chunks never change a
#: histogram (a node's cells are built from its own rows, in their order); they are cut
#: for exact regression sums only: float prefix sums run on through the cells of a chunk
#: (see ``choose_splits``), so float trees keep the cut they always had.
CHUNK_ELEMENTS = 1 << 18


def consecutive_spans(cost: npt.NDArray[Any], budget: float) -> list[slice]:
    """Consecutive index ranges of about ``budget`` total ``cost`` each (at least one index
    each); each index joins the range its first unit of cost falls in."""
    if cost.size == 0 or float(cost.sum()) <= budget:
        return [slice(0, cost.size)]
    span = ((np.cumsum(cost) - cost) // budget).astype(np.int64)
    bounds = [*np.flatnonzero(np.diff(span, prepend=-1)).tolist(), cost.size]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def build_histograms(
    table: CodeTable,
    rows: LevelRows,
    drawn: DrawnFeatures,
    *,
    n_channels: int,
    classification: bool,
    integral: bool,
    with_counts: bool,
    prefer_dense: Callable[[int, int, int], bool],
    gini_scan_totals: F64 | None = None,
) -> Histograms | GiniScan:
    """The histograms of ``rows`` on each candidate's drawn features.

    ``rows.node`` indexes the candidates (rows of ``drawn``). ``prefer_dense(n_cells,
    n_channels, n_elements)`` chooses the dense or the sorted path. With
    ``gini_scan_totals`` (the candidates' class totals, channel-major) the result is a
    :class:`GiniScan` where that form applies (exact integer weights and no missing
    value), else :class:`Histograms`. The candidates are taken in chunks of about
    ``CHUNK_ELEMENTS`` elements, and a chunk's per-element temporaries are dropped as soon
    as they are used, which bounds the peak memory at a few of them.
    """
    k = drawn.features.shape[1]
    n_bins_d = int(table.n_bins[drawn.features[drawn.valid]].max(initial=1)) + 1
    build = functools.partial(
        _build_chunk, table, n_bins_d=n_bins_d, n_channels=n_channels,
        classification=classification, integral=integral, with_counts=with_counts,
        prefer_dense=prefer_dense,
    )
    s = drawn.features.shape[0]
    per_node = np.bincount(rows.node, minlength=s) * drawn.valid.sum(axis=1)
    spans = consecutive_spans(per_node, CHUNK_ELEMENTS)
    if len(spans) == 1 or classification or not integral:
        # Only exact regression is cut: its sorted path's int64 temporaries are what
        # overflowed malloc's thresholds; class histograms sort packed 32-bit keys, and
        # cut ones measured slower at 500k rows (their code gathers, cut by node, lose
        # the increasing row order of a whole level's rows).
        return build(rows, drawn, gini_scan_totals)
    parts = []
    for span, chunk_rows in zip(spans, _rows_by_span(rows, spans, s), strict=True):
        hist = build(chunk_rows, DrawnFeatures(drawn.features[span], drawn.valid[span]), None)
        assert isinstance(hist, Histograms)
        hist.cells[:] += span.start * k * n_bins_d
        parts.append(hist)
    return Histograms(
        np.concatenate([p.cells for p in parts]),
        np.concatenate([p.stats for p in parts], axis=1),
        np.concatenate([p.counts for p in parts if p.counts is not None])
        if all(p.counts is not None for p in parts) else None,
        n_bins_d,
    )


def _rows_by_span(rows: LevelRows, spans: list[slice], s: int) -> list[LevelRows]:
    """The rows of each span of candidates, node indices relative to the span's first, in
    their given order within a node (a stable radix sort of their span)."""
    span_of_node = np.repeat(np.arange(len(spans)), [sp.stop - sp.start for sp in spans])
    order, bounds = grouped_order(span_of_node[rows.node], len(spans))
    out = []
    for i, sp in enumerate(spans):
        take = order[bounds[i]:bounds[i + 1]]
        out.append(LevelRows(rows.row[take], rows.weight[take], rows.y[take],
                             rows.node[take] - sp.start))
    return out


def _build_chunk(
    table: CodeTable,
    rows: LevelRows,
    drawn: DrawnFeatures,
    gini_scan_totals: F64 | None,
    *,
    n_bins_d: int,
    n_channels: int,
    classification: bool,
    integral: bool,
    with_counts: bool,
    prefer_dense: Callable[[int, int, int], bool],
) -> Histograms | GiniScan:
    """:func:`build_histograms` of one chunk (cells numbered from its first candidate)."""
    k = drawn.features.shape[1]
    # a part of cut rows may hold none of the candidates' rows, a chunk no element at all
    if rows.size == 0 or not drawn.valid.any():
        return Histograms(
            np.zeros(0, dtype=np.int64),
            np.zeros((n_channels, 0), dtype=np.int64 if integral else np.float64),
            np.zeros(0, dtype=np.int64) if with_counts else None, n_bins_d,
        )
    el = _elements(table, rows, drawn)
    n_cells = drawn.features.shape[0] * k * n_bins_d
    dense = prefer_dense(n_cells, n_channels, el.count)
    if classification and integral and not dense:
        cls_bits = max(int(n_channels - 1).bit_length(), 1)
        w_bits = max(int(rows.weight.max(initial=1)).bit_length(), 1)
        payload_bits = cls_bits + w_bits
        if n_cells.bit_length() + payload_bits <= 63:
            keys = _packed_keys(el, rows, k, n_bins_d, payload_bits, w_bits, n_cells)
            del el
            if gini_scan_totals is not None:
                scan = _gini_scan(
                    keys, payload_bits, w_bits, cls_bits, n_channels, n_bins_d,
                    drawn.features, table.n_bins, gini_scan_totals,
                )
                if scan is not None:
                    return scan
            hist = _entries_sorted_packed(
                keys, payload_bits, w_bits, cls_bits, n_channels, with_counts
            )
            return Histograms(hist.cells, hist.stats, hist.counts, n_bins_d)
    if integral and not classification and not dense:
        exact = _entries_sorted_exact(el, rows, k, n_bins_d, n_cells, with_counts)
        if exact is not None:
            return exact
    cell, e_y, e_w = _element_cells(el, rows, k, n_bins_d, classification)
    del el
    if dense:
        # (rows of no weight are dropped where rows start; counted anyway if any is left)
        counted = with_counts or not bool(rows.weight.min(initial=1.0) > 0)
        hist = _entries_dense(cell, n_cells, e_y, e_w, n_channels, classification, integral,
                              counted)
    else:
        hist = _entries_sorted_general(cell, e_y, e_w, n_channels, classification, integral)
    del cell, e_y, e_w
    return Histograms(hist.cells, hist.stats, hist.counts, n_bins_d)


def _gini_scan(
    keys: npt.NDArray[Any], payload_bits: int, w_bits: int, cls_bits: int, n_channels: int,
    n_bins_d: int, feats: I64, n_bins: npt.NDArray[np.int32], node_total: F64,
) -> GiniScan | None:
    """The :class:`GiniScan` of sorted packed keys (None: not applicable).

    Scanning a group's elements in bin order, adding an element of class c and count w to
    the left side raises sum_c L_c^2 by 2*w*L_c + w^2 and sum_c T_c*L_c by w*T_c, where L_c
    is the count of class c before it. Those increments are summed per cell. All sums are
    of integers, so they are exact.
    """
    k = feats.shape[1]
    n = keys.size
    kt = keys.dtype.type
    # Per-element arrays are dropped as soon as they are used up (they dominate the memory).
    cells = keys >> kt(payload_bits)
    starts, run = runs(cells)
    ent_cells = cells[starts].astype(np.int64)
    ent_grp = ent_cells // n_bins_d
    if np.any(ent_cells - ent_grp * n_bins_d == n_bins[feats.reshape(-1)[ent_grp]]):
        return None  # missing values: the general path handles their direction
    e_grp = (cells // kt(n_bins_d)).astype(np.int64)
    del cells
    ys = ((keys >> kt(w_bits)) & kt((1 << cls_bits) - 1)).astype(np.int64)
    ws = (keys & kt((1 << w_bits) - 1)).astype(np.float64)
    before = _same_class_before(e_grp, ys, ws, n_channels, n)
    if before is None:
        return None
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
    return GiniScan(ent_cells, inc_sq.astype(np.float64, copy=False),
                    inc_tl.astype(np.float64, copy=False), inc_w.astype(np.float64, copy=False),
                    n_bins_d)


def _same_class_before(
    e_grp: I64, ys: I64, ws: F64, n_channels: int, n: int
) -> F64 | None:
    """Each element's count of its class earlier in its group (None: keys do not fit).

    Orders elements by (group, class), keeping their scan position in the low bits, and
    takes exclusive running sums.
    """
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
    seg_starts, seg_id = runs(key2)
    del key2
    w2 = ws[pos2]
    running = np.cumsum(w2)
    running -= w2
    del w2
    running -= running[seg_starts][seg_id]
    del seg_id
    before = np.empty(n)
    before[pos2] = running
    return before
