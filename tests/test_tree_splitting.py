"""Stage 2: the best split of each node, from its histograms alone."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from tree_stage_helpers import random_level, table_of

from aioforest.tree._criterion import CRITERIA, Entropy, Gini, SquaredError, criterion_for
from aioforest.tree._histogram import (
    DrawnFeatures,
    LevelRows,
    build_histograms,
    node_totals,
)
from aioforest.tree._splitting import Candidates, RoundSplits, SplitRules, choose_splits


def _gini_weighted(counts: np.ndarray) -> float:
    w = counts.sum()
    return 0.0 if w == 0 else float(w - (counts**2).sum() / w)  # W * gini


def _round(table, rows, drawn, *, min_samples_leaf=1, scan=False, single=False):
    n_nodes = drawn.features.shape[0]
    total = np.ascontiguousarray(node_totals(rows, n_nodes, 3, True, None).T)
    hist = build_histograms(
        table, rows, drawn, n_channels=3, classification=True, integral=True,
        with_counts=min_samples_leaf > 1, prefer_dense=lambda *_: False,
        gini_scan_totals=total if scan else None,
    )
    rules = SplitRules(Gini(), table.n_bins, table.is_categorical, None, min_samples_leaf,
                       single)
    cand = Candidates(drawn, np.full(n_nodes, 99), total, None)
    return choose_splits(hist, cand, rules), total


def _brute_best(table, rows, drawn, node: int, min_samples_leaf: int = 1) -> float:
    """The largest weighted gini decrease of any allowed split of ``node``."""
    sel = rows.node == node
    r, w, y = rows.row[sel], rows.weight[sel], rows.y[sel]
    total = np.bincount(y, weights=w, minlength=3)
    best = -np.inf
    for slot in np.flatnonzero(drawn.valid[node]):
        f = drawn.features[node, slot]
        b = table.codes[r * table.n_features + f]
        nb = table.n_bins[f]
        miss = b == nb
        for t in range(nb):
            for missing_left in (False, True):
                left = (b <= t) & ~miss | (miss & missing_left)
                if t == nb - 1 and (missing_left or not miss.any()):
                    continue  # every value left: only "missing vs rest" is a split
                if missing_left and not miss.any():
                    continue
                if left.sum() < min_samples_leaf or (~left).sum() < min_samples_leaf:
                    continue
                lc = np.bincount(y[left], weights=w[left], minlength=3)
                if lc.sum() == 0 or lc.sum() == total.sum():
                    continue
                dec = _gini_weighted(total) - _gini_weighted(lc) - _gini_weighted(total - lc)
                best = max(best, dec)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_samples_leaf", [1, 7])
def test_the_chosen_split_is_the_best_of_every_threshold_and_missing_direction(
    seed: int, min_samples_leaf: int
) -> None:
    table, rows, drawn = random_level(seed, n_rows=120)
    splits, _ = _round(table, rows, drawn, min_samples_leaf=min_samples_leaf)
    for node in range(drawn.features.shape[0]):
        best = _brute_best(table, rows, drawn, node, min_samples_leaf)
        assert splits.found[node] == np.isfinite(best)
        if splits.found[node]:
            assert splits.improvement[node] == pytest.approx(best, rel=1e-9, abs=1e-9)
            assert splits.feature[node] in drawn.features[node][drawn.valid[node]]


def test_float32_scoring_keeps_exact_float64_improvements() -> None:
    table, rows, drawn = random_level(11, n_rows=150)
    exact, _ = _round(table, rows, drawn)
    single, _ = _round(table, rows, drawn, single=True)
    assert np.array_equal(exact.feature, single.feature)
    assert np.array_equal(exact.improvement, single.improvement)


def _assert_same_round(a: RoundSplits, b: RoundSplits) -> None:
    for name in ("found", "feature", "threshold_bin", "missing_left", "improvement", "lut",
                 "constant", "eligible", "chosen"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("seed", range(4))
def test_the_gini_scan_and_the_per_class_histograms_choose_bit_identical_splits(
    seed: int,
) -> None:
    table, rows, drawn = random_level(seed, n_rows=300, missing=False)
    _assert_same_round(_round(table, rows, drawn)[0], _round(table, rows, drawn, scan=True)[0])


def test_equal_gains_go_to_the_smaller_feature_and_constant_slots_do_not_count() -> None:
    # features 1 and 2 are copies; feature 0 is constant in the node
    codes = [[0, 0, 0], [0, 0, 0], [0, 1, 1], [0, 1, 1]]
    table = table_of(codes, [1, 2, 2])
    rows = LevelRows(np.arange(4), np.ones(4), np.array([0, 0, 1, 1]), np.zeros(4, np.int64))
    drawn = DrawnFeatures(np.array([[0, 2, 1]]), np.ones((1, 3), bool))
    total = np.ascontiguousarray(node_totals(rows, 1, 2, True, None).T)
    hist = build_histograms(table, rows, drawn, n_channels=2, classification=True,
                            integral=True, with_counts=False, prefer_dense=lambda *_: True)
    rules = SplitRules(Gini(), table.n_bins, table.is_categorical, None, 1, False)
    res = choose_splits(hist, Candidates(drawn, np.array([1]), total, None), rules)
    assert res.constant.tolist() == [[True, False, False]]
    # need 1: the constant slot 0 and the first non-constant slot (feature 2) count
    assert res.eligible.tolist() == [[True, True, False]]
    assert res.feature.tolist() == [2]
    hist = build_histograms(table, rows, drawn, n_channels=2, classification=True,
                            integral=True, with_counts=False, prefer_dense=lambda *_: True)
    res = choose_splits(hist, Candidates(drawn, np.array([2]), total, None), rules)
    assert res.feature.tolist() == [1]  # both copies count: the tie goes to feature 1


def test_a_categorical_split_is_the_best_subset_of_categories() -> None:
    # two classes: ordering categories by their share of the majority class finds the
    # best of all subsets (Breiman); brute force over every subset checks it
    rng = np.random.default_rng(7)
    n, n_cat = 400, 6
    cats = rng.integers(0, n_cat, n)
    p = rng.uniform(0.1, 0.9, n_cat)
    y = (rng.random(n) < p[cats]).astype(np.int64)
    table = table_of(cats[:, None], [n_cat], categorical=[True])
    rows = LevelRows(np.arange(n), np.ones(n), y, np.zeros(n, np.int64))
    drawn = DrawnFeatures(np.array([[0]]), np.ones((1, 1), bool))
    total = np.ascontiguousarray(node_totals(rows, 1, 2, True, None).T)
    hist = build_histograms(table, rows, drawn, n_channels=2, classification=True,
                            integral=True, with_counts=False, prefer_dense=lambda *_: False)
    rules = SplitRules(Gini(), table.n_bins, table.is_categorical, None, 1, False)
    res = choose_splits(hist, Candidates(drawn, np.array([1]), total, None), rules)
    left_set = set(np.flatnonzero(res.lut[0, :n_cat]).tolist())
    tot = np.bincount(y, minlength=2).astype(float)
    best, best_set = -np.inf, None
    for r in range(1, n_cat):
        for subset in itertools.combinations(range(n_cat), r):
            lc = np.bincount(y[np.isin(cats, subset)], minlength=2).astype(float)
            dec = _gini_weighted(tot) - _gini_weighted(lc) - _gini_weighted(tot - lc)
            if dec > best + 1e-12:
                best, best_set = dec, set(subset)
    assert res.improvement[0] == pytest.approx(best, rel=1e-12)
    assert left_set in (best_set, set(range(n_cat)) - best_set)


def _regression_round(rows: LevelRows, table: Any, drawn: DrawnFeatures) -> RoundSplits:
    total = np.ascontiguousarray(node_totals(rows, 1, 3, False, None).T)
    hist = build_histograms(table, rows, drawn, n_channels=3, classification=False,
                            integral=False, with_counts=False, prefer_dense=lambda *_: True)
    rules = SplitRules(SquaredError(), table.n_bins, table.is_categorical, None, 1, False)
    return choose_splits(hist, Candidates(drawn, np.array([1]), total, None), rules)


def test_squared_error_splits_where_the_variance_drops_most() -> None:
    x = np.array([0, 1, 2, 3, 4, 5])
    target = np.array([1.0, 1.1, 0.9, 5.0, 5.2, 4.8])
    table = table_of(x[:, None], [6])
    rows = LevelRows(np.arange(6), np.ones(6), target, np.zeros(6, np.int64))
    res = _regression_round(rows, table, DrawnFeatures(np.array([[0]]), np.ones((1, 1), bool)))
    assert res.threshold_bin.tolist() == [2]  # bins 0..2 left
    sse = lambda v: float(((v - v.mean()) ** 2).sum())  # noqa: E731
    assert res.improvement[0] == pytest.approx(sse(target) - sse(target[:3]) - sse(target[3:]))


def test_criterion_objects_compute_the_textbook_impurities() -> None:
    counts = np.array([[3.0, 1.0], [1.0, 1.0]])  # channel-major: 2 classes, 2 nodes
    p = counts / counts.sum(axis=0)
    np.testing.assert_allclose(Gini().impurity(counts), 1 - (p**2).sum(axis=0))
    np.testing.assert_allclose(Entropy().impurity(counts), -(p * np.log2(p)).sum(axis=0))
    y = np.array([1.0, 2.0, 4.0])
    moments = np.array([[3.0], [y.sum()], [(y**2).sum()]])
    np.testing.assert_allclose(SquaredError().impurity(moments), [y.var()])
    assert [criterion_for(name).name for name in CRITERIA] == list(CRITERIA)
    with pytest.raises(ValueError, match="unknown criterion 'gain'"):
        criterion_for("gain")


@pytest.mark.parametrize("scan", [False, True], ids=["histograms", "gini-scan"])
def test_splits_chosen_in_chunks_of_nodes_are_those_of_the_whole_round(
    monkeypatch: pytest.MonkeyPatch, scan: bool
) -> None:
    # Chunks of whole nodes, including chunks of nodes without a single cell (a node
    # whose every feature is known constant draws no valid slot), give every field of
    # the whole round's answer.
    import aioforest.tree._splitting as splitting

    table, rows, drawn = random_level(6, n_rows=600, n_nodes=12, missing=not scan)
    valid = drawn.valid.copy()
    valid[4:7] = valid[-2:] = False  # nodes with no feature to score, inside and last
    drawn = DrawnFeatures(drawn.features, valid)
    whole, _ = _round(table, rows, drawn, scan=scan)
    monkeypatch.setattr(splitting, "CHUNK_CELLS", 6)
    chunked, _ = _round(table, rows, drawn, scan=scan)
    assert not whole.found[4:7].any() and not whole.found[-2:].any()
    assert whole.found.sum() >= 5
    for name in RoundSplits.__dataclass_fields__:
        assert np.array_equal(getattr(whole, name), getattr(chunked, name)), name
