"""Stage 1: histograms of the rows in the open nodes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from tree_stage_helpers import brute_histogram, random_level

from aioforest.tree._histogram import (
    DrawnFeatures,
    GiniScan,
    Histograms,
    LevelRows,
    _entries_sorted_general,
    build_histograms,
    node_totals,
    run_sums,
    squares_from_limbs,
    sum_histograms,
)

PATHS = {"dense": lambda *_: True, "sorted": lambda *_: False}


def _build(table, rows, drawn, *, path, integral=True, with_counts=True, scan=None):
    return build_histograms(
        table, rows, drawn, n_channels=3, classification=True, integral=integral,
        with_counts=with_counts, prefer_dense=PATHS[path], gini_scan_totals=scan,
    )


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("integral", [True, False], ids=["counts", "float-weights"])
def test_histograms_count_every_row_in_its_cell(path: str, integral: bool) -> None:
    table, rows, drawn = random_level(1, float_weights=not integral)
    hist = _build(table, rows, drawn, path=path, integral=integral)
    assert isinstance(hist, Histograms)
    expected = brute_histogram(table, rows, drawn, 3, hist.bins_per_group)
    assert hist.cells.tolist() == sorted(expected)
    assert hist.stats.dtype == (np.int64 if integral else np.float64)
    got = {int(c): hist.stats[:, j] for j, c in enumerate(hist.cells)}
    for cell, want in expected.items():
        np.testing.assert_allclose(got[cell], want, rtol=1e-12)
    # counts: rows per cell
    counts = {}
    k = drawn.features.shape[1]
    for i in range(rows.size):
        for slot in range(k):
            if drawn.valid[rows.node[i], slot]:
                f = drawn.features[rows.node[i], slot]
                cell = (rows.node[i] * k + slot) * hist.bins_per_group + table.codes[
                    rows.row[i] * table.n_features + f]
                counts[int(cell)] = counts.get(int(cell), 0) + 1
    assert hist.counts is not None
    assert hist.counts.tolist() == [counts[c] for c in sorted(counts)]


def test_dense_and_sorted_paths_give_identical_arrays() -> None:
    table, rows, drawn = random_level(2)
    a = _build(table, rows, drawn, path="dense")
    b = _build(table, rows, drawn, path="sorted")
    assert isinstance(a, Histograms) and isinstance(b, Histograms)
    for name in ("cells", "stats", "counts"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("classification", [True, False], ids=["classes", "targets"])
def test_sorted_sums_add_each_cell_in_element_order_with_or_without_packed_keys(
    classification: bool,
) -> None:
    # Float sums depend on their order: each cell's must be the sum of its elements in
    # the order given, whether the cells fit the packed sort key or need the argsort.
    rng = np.random.default_rng(5)
    n = 5000
    cell = rng.integers(0, 40, n).astype(np.int64) * 1009
    w = rng.random(n) * 10.0 ** rng.integers(-8, 8, n)
    y = rng.integers(0, 3, n) if classification else rng.normal(size=n) * 1e6
    n_channels = 3 if classification else 2
    y_in = y if classification else w * y  # regression takes the weighted targets
    packed = _entries_sorted_general(cell, y_in, w, n_channels, classification, False)
    far = _entries_sorted_general(cell + (1 << 60), y_in, w, n_channels, classification,
                                  False)
    assert np.array_equal(far.cells - (1 << 60), packed.cells)
    for hist in (packed, far):
        assert hist.counts is not None
        assert hist.counts.tolist() == [int(np.sum(cell == c)) for c in packed.cells]
        for j, c in enumerate(packed.cells.tolist()):
            want = [0.0] * n_channels
            for i in np.flatnonzero(cell == c).tolist():  # element order, one by one
                if classification:
                    want[int(y[i])] += float(w[i])
                else:
                    want[0] += float(w[i])
                    want[1] += float(w[i] * y[i])
            assert hist.stats[:, j].tolist() == want


def test_run_sums_are_exact_even_where_the_running_sum_wraps() -> None:
    rng = np.random.default_rng(8)
    lengths = rng.integers(1, 9, 400)
    lengths[::7] = 300  # long runs beside cells of one or two
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    values = rng.integers(-(1 << 40), 1 << 40, (2, int(lengths.sum())))
    values[0, :50] = (1 << 62) // 50  # the running sum passes 2**63 ...
    values[0, 50:100] = -((1 << 62) // 50)  # ... and comes back
    got = run_sums(values, starts)
    ends = np.append(starts[1:], values.shape[1])
    want = [[sum(int(v) for v in row[a:b]) for a, b in zip(starts, ends, strict=True)]
            for row in values]
    assert got.tolist() == want


@pytest.mark.parametrize("all_drawn", [False, True], ids=["drawn", "every-feature"])
def test_exact_regression_histograms_equal_the_float_sums_of_integers(all_drawn: bool) -> None:
    # Integer weights and fixed-point targets take one sort and int64 run sums; the float
    # path sums the same integers (exactly, below 2**53): the arrays must be the same.
    table, rows, drawn = random_level(3, n_rows=3000, n_features=6, n_nodes=40, k=4,
                                      max_bin=30)
    if all_drawn:  # slot j is feature j: the elements are whole code rows
        valid = np.ones((40, 6), dtype=bool)
        valid[0, 2] = valid[5, 5] = False  # features constant in those nodes
        drawn = DrawnFeatures(np.tile(np.arange(6), (40, 1)), valid)
    y = np.random.default_rng(4).integers(-(1 << 30), 1 << 30, rows.size)
    rows = LevelRows(rows.row, rows.weight, y, rows.node)
    common = dict(n_channels=2, classification=False, with_counts=True,
                  prefer_dense=PATHS["sorted"])
    exact = build_histograms(table, rows, drawn, integral=True, **common)
    floats = build_histograms(table, LevelRows(rows.row, rows.weight, y.astype(np.float64),
                                               rows.node),
                              drawn, integral=False, **common)
    assert isinstance(exact, Histograms) and isinstance(floats, Histograms)
    assert exact.stats.dtype == np.int64
    assert np.array_equal(exact.cells, floats.cells)
    assert np.array_equal(exact.stats, floats.stats.astype(np.int64))
    assert np.array_equal(exact.counts, floats.counts)


def test_summing_the_histograms_of_row_partitions_gives_the_whole_in_any_order() -> None:
    # the data-parallel boundary: rows split over machines, integer sums, any order
    table, rows, drawn = random_level(3, n_rows=300)
    whole = _build(table, rows, drawn, path="sorted")
    assert isinstance(whole, Histograms)
    rng = np.random.default_rng(0)
    part_of = rng.integers(0, 3, rows.size)
    parts = []
    for p in range(3):
        sel = np.flatnonzero(part_of == p)
        h = _build(table, rows.take(sel), drawn, path="dense" if p == 1 else "sorted")
        assert isinstance(h, Histograms)
        parts.append(Histograms(h.cells, h.stats, h.counts, h.bins_per_group))
    for order in itertools.permutations(range(3)):
        total = sum_histograms([parts[i] for i in order])
        assert np.array_equal(total.cells, whole.cells)
        assert np.array_equal(total.stats, whole.stats)
        assert np.array_equal(total.counts, whole.counts)


def test_histograms_of_different_layouts_are_not_summed() -> None:
    h = Histograms(np.array([1]), np.ones((2, 1), np.int64), None, 4)
    with pytest.raises(ValueError, match="different layouts"):
        sum_histograms([h, Histograms(h.cells, h.stats, None, 5)])
    with pytest.raises(ValueError, match="at least one"):
        sum_histograms([])


def test_histograms_cross_as_plain_arrays_and_bad_ones_are_refused() -> None:
    table, rows, drawn = random_level(4)
    hist = _build(table, rows, drawn, path="sorted")
    assert isinstance(hist, Histograms)
    arrays = hist.arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    back = Histograms.from_arrays(arrays)
    assert np.array_equal(back.cells, hist.cells) and np.array_equal(back.stats, hist.stats)
    assert back.bins_per_group == hist.bins_per_group
    with pytest.raises(ValueError, match="strictly increasing"):
        Histograms.from_arrays(arrays | {"cells": arrays["cells"][::-1].copy()})
    with pytest.raises(ValueError, match="do not match"):
        Histograms.from_arrays(arrays | {"stats": arrays["stats"][:, :-1]})


def test_node_totals_are_per_node_class_weights_and_regression_moments() -> None:
    rows = LevelRows(np.arange(4), np.array([1.0, 2.0, 3.0, 1.0]), np.array([0, 1, 1, 0]),
                     np.array([0, 0, 1, 1]))
    total = node_totals(rows, 2, 2, True, np.array([1.0, 0.5]))
    assert total.tolist() == [[1.0, 1.0], [1.0, 1.5]]
    reg = LevelRows(rows.row, rows.weight, np.array([1.0, 2.0, 3.0, 5.0]), rows.node)
    moments = squares_from_limbs(node_totals(reg, 2, 3, False, None))
    assert moments.tolist() == [[3.0, 5.0, 9.0], [4.0, 14.0, 52.0]]


def test_fixed_point_squares_are_summed_exactly_in_limbs() -> None:
    # Targets of 31 bits: their squares need 62, beyond a float's 53; the limbs are exact
    # and the total is rounded once, so any cut of the rows gives the same Q.
    rng = np.random.default_rng(0)
    n = 5000
    q = rng.integers(-(2**31), 2**31, n)
    weight = rng.integers(0, 4, n).astype(np.float64)
    node = rng.integers(0, 3, n)
    rows = LevelRows(np.arange(n), weight, q, node)
    total = node_totals(rows, 3, 3, False, None)
    exact = [sum(int(w) * int(v) ** 2 for w, v, m in zip(weight, q, node, strict=True)
                 if m == k) for k in range(3)]
    assert squares_from_limbs(total)[:, 2].tolist() == [float(e) for e in exact]
    assert total[:, 1].tolist() == [
        float(sum(int(w) * int(v) for w, v, m in zip(weight, q, node, strict=True) if m == k))
        for k in range(3)]
    half = [LevelRows(np.arange(n)[s], weight[s], q[s], node[s])
            for s in (slice(0, 1234), slice(1234, n))]
    summed = node_totals(half[0], 3, 3, False, None) + node_totals(half[1], 3, 3, False, None)
    assert np.array_equal(squares_from_limbs(summed), squares_from_limbs(total))


def test_gini_scan_needs_no_missing_values_and_its_linear_parts_match_the_histograms() -> None:
    table, rows, drawn = random_level(5, missing=False)
    totals = np.ascontiguousarray(node_totals(rows, 3, 3, True, None).T)
    scan = _build(table, rows, drawn, path="sorted", with_counts=False, scan=totals)
    hist = _build(table, rows, drawn, path="sorted", with_counts=False)
    assert isinstance(scan, GiniScan) and isinstance(hist, Histograms)
    assert np.array_equal(scan.cells, hist.cells)
    # w is the cell's weight; tl the cell's classes weighted by the node's totals
    assert np.array_equal(scan.w, hist.stats.sum(axis=0).astype(np.float64))
    node = hist.cells // hist.bins_per_group // drawn.features.shape[1]
    assert np.array_equal(scan.tl, np.einsum("cn,cn->n", totals[:, node], hist.stats))
    with_missing = random_level(5, missing=True)
    assert isinstance(_build(*with_missing, path="sorted", with_counts=False, scan=totals),
                      Histograms)


def test_chunks_of_nodes_without_an_element_give_no_cells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Exact regression rounds are built in chunks of whole nodes; the last nodes of a
    # round may have rows but no feature left to score: their chunk adds nothing.
    import aioforest.tree._histogram as histogram

    table, rows, drawn = random_level(9, n_rows=900, n_nodes=9, max_bin=20)
    valid = drawn.valid.copy()
    valid[-3:] = False
    drawn = DrawnFeatures(drawn.features, valid)
    y = np.random.default_rng(2).integers(-1000, 1000, rows.size)
    rows = LevelRows(rows.row, rows.weight, y, rows.node)
    kwargs = dict(n_channels=2, classification=False, integral=True, with_counts=True,
                  prefer_dense=PATHS["sorted"])
    whole = build_histograms(table, rows, drawn, **kwargs)
    monkeypatch.setattr(histogram, "CHUNK_ELEMENTS", 40)
    chunked = build_histograms(table, rows, drawn, **kwargs)
    assert isinstance(whole, Histograms) and isinstance(chunked, Histograms)
    for name in ("cells", "stats", "counts"):
        assert np.array_equal(getattr(whole, name), getattr(chunked, name)), name
