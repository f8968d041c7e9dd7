"""A fitted tree keeps only what its bins cannot rebuild, and reports the same arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from forest_helpers import assert_same_tree, classification_data, regression_data

from aioforest import RandomForestClassifier, RandomForestRegressor
from aioforest.data import Dataset
from aioforest.persistence import load_bytes, save_bytes
from aioforest.tree import TreeArrays

REBUILT = {"threshold", "right", "cat_index", "weighted_n_node_samples"}


def _mixed(weighted: bool) -> tuple[Dataset, Any]:
    X, y = classification_data(n=400, d=4, seed=3)
    cat = np.random.default_rng(3).integers(0, 5, size=400).astype(float)
    y = np.where(cat == 2, 0, y)  # the category carries signal: categorical splits happen
    X = np.column_stack([cat, X])
    X[::17, 1] = np.nan
    ds = Dataset.from_arrays(X, y, categorical=[0])
    weights = np.random.default_rng(4).uniform(0.5, 2.0, size=400) if weighted else None
    return ds, weights


def _as_given(tree: TreeArrays) -> TreeArrays:
    """The same tree holding every array, as a peer or an old file would give it."""
    return TreeArrays.from_arrays({k: v.copy() for k, v in tree.arrays().items()})


@pytest.mark.parametrize(("weighted", "bootstrap", "weights_kept_as"),
                         [(False, False, None), (False, True, np.int32), (True, True, np.float64)])
def test_a_fitted_forest_keeps_only_what_its_bins_cannot_rebuild(
    weighted: bool, bootstrap: bool, weights_kept_as: Any
) -> None:
    ds, weights = _mixed(weighted)
    forest = RandomForestClassifier(n_estimators=4, random_state=0, n_jobs=2,
                                    bootstrap=bootstrap).fit(ds, sample_weight=weights)
    assert any((t.cat_index >= 0).any() for t in forest.trees_), "no categorical split"
    for tree in forest.trees_:
        kept = tree.stored_arrays()
        # Without weights the bootstrap counts are whole numbers; without bootstrap either,
        # they are the node counts.
        expect = set() if weights_kept_as is None else {"weighted_n_node_samples"}
        assert set(kept) == set(TreeArrays.STORED) | expect
        if weights_kept_as is not None:
            assert kept["weighted_n_node_samples"].dtype == weights_kept_as
        assert kept["n_node_samples"].dtype == np.int32
        # The rebuilt arrays are what a tree holding all of them reports.
        given = _as_given(tree)
        assert set(given.stored_arrays()) >= REBUILT
        assert_same_tree(tree, given)
        assert tree.n_node_samples.dtype == np.int64
        given.compact(forest.bins_)
        assert set(given.stored_arrays()) == set(kept)
        assert_same_tree(tree, given)


def test_rebuilt_arrays_follow_their_definitions() -> None:
    ds, _ = _mixed(weighted=False)
    forest = RandomForestClassifier(n_estimators=3, random_state=1, bootstrap=False).fit(ds)
    bins = forest.bins_
    for tree in forest.trees_:
        split = np.flatnonzero(tree.feature >= 0)
        leaf = np.flatnonzero(tree.feature < 0)
        np.testing.assert_array_equal(tree.right[split], tree.left[split] + 1)
        assert (tree.right[leaf] == -1).all()
        numeric = [i for i in split if not bins.is_categorical[tree.feature[i]]]
        for i in numeric:
            edges = np.append(bins.edges[tree.feature[i]], np.inf)
            assert tree.threshold[i] == edges[tree.threshold_bin[i]]
        assert np.isnan(np.delete(tree.threshold, numeric)).all()
        cats = [i for i in split if bins.is_categorical[tree.feature[i]]]
        np.testing.assert_array_equal(tree.cat_index[cats], np.arange(len(cats)))
        assert (np.delete(tree.cat_index, cats) == -1).all()
        np.testing.assert_array_equal(tree.weighted_n_node_samples, tree.n_node_samples)


def test_an_array_that_disagrees_with_its_rebuilt_form_is_kept_as_given() -> None:
    X, y = regression_data(n=200)
    forest = RandomForestRegressor(n_estimators=2, random_state=0).fit(X, y)
    arrays = {k: v.copy() for k, v in forest.trees_[0].arrays().items()}
    node = int(np.flatnonzero(arrays["feature"] >= 0)[0])
    arrays["threshold"][node] += 0.5  # say, a midpoint from another library
    arrays["weighted_n_node_samples"][0] = 1e9
    tree = TreeArrays.from_arrays(arrays)
    tree.compact(forest.bins_)
    kept = tree.stored_arrays()
    assert "threshold" in kept and "weighted_n_node_samples" in kept and "right" not in kept
    assert tree.threshold[node] == arrays["threshold"][node]
    assert tree.weighted_n_node_samples[0] == 1e9


def test_a_tree_without_its_bins_needs_every_array() -> None:
    X, y = regression_data(n=100)
    tree = RandomForestRegressor(n_estimators=1, random_state=0).fit(X, y).trees_[0]
    with pytest.raises(ValueError, match="lack"):
        TreeArrays.from_arrays(tree.stored_arrays())
    with pytest.raises(ValueError, match="without its bins needs threshold"):
        TreeArrays(**{k: v for k, v in tree.stored_arrays().items()})


def test_a_loaded_forest_is_as_compact_as_a_fitted_one() -> None:
    X, y = regression_data(n=300)
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y)
    loaded = load_bytes(save_bytes(forest))
    for a, b in zip(forest.trees_, loaded.trees_, strict=True):
        kept = b.stored_arrays()
        assert set(a.stored_arrays()) == set(kept)
        assert set(kept) == {*TreeArrays.STORED, "weighted_n_node_samples"}
        assert kept["weighted_n_node_samples"].dtype == np.int32
        assert_same_tree(a, b)
