"""Binning and the bootstrap depend on the rows, never on how they are cut into parts."""

from __future__ import annotations

import math

import numpy as np
import pytest

import aioforest.data._binning as binning
from aioforest.data import Binner, BinSummary
from aioforest.tree import ForestPlan, in_bag_counts, row_keys

CUTS = {
    "one part": [1000],
    "three uneven": [10, 700, 290],
    "seven with an empty one": [150, 150, 0, 200, 1, 299, 200],
}


def _data(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.normal(size=n),                       # many distinct values
        rng.integers(0, 5, n).astype(float),      # few
        np.round(rng.normal(size=n), 1),          # some
        rng.integers(0, 4, n).astype(float),      # categorical codes
    ])
    X[rng.random(X.shape) < 0.07] = np.nan
    return X


def _summaries(binner: Binner, X: np.ndarray, sizes: list[int], cat: np.ndarray
               ) -> list[BinSummary]:
    out, start = [], 0
    for size in sizes:
        part = X[start : start + size]
        ids = np.arange(start, start + size)
        summary = binner.summarize(part, cat, row_ids=ids, n_total=X.shape[0])
        out.append(BinSummary.from_arrays(summary.arrays()))  # as if over a wire
        start += size
    return out


@pytest.mark.parametrize("sample_rows", [10**9, 300], ids=["every row", "sampled"])
@pytest.mark.parametrize("cut", list(CUTS), ids=list(CUTS))
def test_the_same_rows_give_the_same_bins_in_any_cut(
    cut: str, sample_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Above BIN_SAMPLE_ROWS the quantiles come from a hashed sample (made small here so
    # the sample rule is exercised on little data).
    monkeypatch.setattr(binning, "BIN_SAMPLE_ROWS", sample_rows)
    X = _data(1000)
    cat = np.array([False, False, False, True])
    ncat = np.array([0, 0, 0, 4])
    binner = Binner(32)
    whole = binner.fit(X, cat, ncat)
    cut_bins = binner.fit_summaries(_summaries(binner, X, CUTS[cut], cat), cat, ncat)
    assert cut_bins.equals(whole)
    assert whole.n_bins[1] == 5  # few distinct values: every value its own bin
    assert whole.n_bins[0] == 32


def test_the_binning_sample_is_chosen_by_row_id_and_has_about_the_target_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(binning, "BIN_SAMPLE_ROWS", 2000)
    ids = np.arange(50_000)
    chosen = binning.in_bin_sample(ids, ids.size)
    assert 1800 < chosen.sum() < 2200
    # a row's membership depends on its id alone, not on which rows come with it
    assert np.array_equal(binning.in_bin_sample(ids[7::3], ids.size), chosen[7::3])
    assert binning.in_bin_sample(ids[:100], 1000).all()  # small data: every row


def test_sampled_bins_differ_from_exact_ones_only_above_the_sample_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X = _data(1000)[:, :1]
    exact = Binner(16).fit(X)
    monkeypatch.setattr(binning, "BIN_SAMPLE_ROWS", 1000)
    assert Binner(16).fit(X).equals(exact)
    monkeypatch.setattr(binning, "BIN_SAMPLE_ROWS", 200)
    assert not Binner(16).fit(X).equals(exact)


def test_a_malformed_bin_summary_is_refused_by_entry() -> None:
    arrays = Binner().summarize(_data(50)).arrays()
    good = dict(arrays)
    arrays["sample"] = arrays["sample"][::-1].copy()
    with pytest.raises(ValueError, match=r"sample\[0\]: values must be sorted"):
        BinSummary.from_arrays(arrays)
    arrays["sample_counts"] = good["sample_counts"] + 1
    with pytest.raises(ValueError, match="do not add up"):
        BinSummary.from_arrays(arrays)
    del arrays["sample_counts"]
    with pytest.raises(ValueError, match="missing entry 'sample_counts'"):
        BinSummary.from_arrays(arrays)
    wide = Binner().summarize(np.zeros((3, 5000)))  # one array per kind, any width
    assert len(wide.arrays()) == 4
    assert len(BinSummary.from_arrays(wide.arrays()).sample) == 5000


def _plan(**changes: object) -> ForestPlan:
    fields = dict(criterion="gini", n_classes=2, max_depth=10**9, min_samples_split=2,
                  min_samples_leaf=1, min_weight_fraction_leaf=0.0, min_impurity_decrease=0.0,
                  max_features=2, bootstrap=True, n_draws=20_000, feature_subspace=None,
                  class_weight=None, seed=11)
    fields.update(changes)
    return ForestPlan(**fields)  # type: ignore[arg-type]


def test_in_bag_counts_depend_on_the_row_id_and_tree_only() -> None:
    n = 20_000
    plan = _plan()
    keys = row_keys(np.arange(n))
    counts = in_bag_counts(plan, 3, keys, n)
    rng = np.random.default_rng(1)
    some = np.sort(rng.choice(n, 777, replace=False))
    assert np.array_equal(in_bag_counts(plan, 3, row_keys(some), n), counts[some])
    assert not np.array_equal(in_bag_counts(plan, 4, keys, n), counts)
    assert not np.array_equal(in_bag_counts(_plan(seed=12), 3, keys, n), counts)


@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_in_bag_counts_are_poisson_with_the_max_samples_mean(fraction: float) -> None:
    n = 200_000
    plan = _plan(n_draws=math.ceil(fraction * n))
    counts = in_bag_counts(plan, 0, row_keys(np.arange(n)), n)
    sd = math.sqrt(fraction / n)
    assert abs(counts.mean() - fraction) < 5 * sd
    p0 = math.exp(-fraction)
    assert abs(np.mean(counts == 0) - p0) < 5 * math.sqrt(p0 * (1 - p0) / n)
    p2 = fraction**2 / 2 * p0
    assert abs(np.mean(counts == 2) - p2) < 5 * math.sqrt(p2 * (1 - p2) / n)


def test_without_bootstrap_every_row_is_in_every_tree_once() -> None:
    keys = row_keys(np.arange(100))
    assert np.array_equal(in_bag_counts(_plan(bootstrap=False), 2, keys, 100), np.ones(100))
