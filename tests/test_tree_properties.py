"""Properties of fitted trees: perfect fits on distinct points, the best split, growth limits."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioforest import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

F64 = npt.NDArray[np.float64]

finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def distinct_points(draw: st.DrawFn) -> tuple[F64, npt.NDArray[np.int64]]:
    """Distinct rows (by value: 0.0 and -0.0 are the same point) with random labels.

    At most 255 rows, so that every distinct value gets its own bin and splits are exact.
    """
    d = draw(st.integers(1, 4))
    rows = draw(
        st.lists(
            st.lists(finite, min_size=d, max_size=d).map(tuple),
            min_size=2, max_size=60, unique_by=lambda row: row,
        )
    )
    labels = draw(st.lists(st.integers(0, 2), min_size=len(rows), max_size=len(rows)))
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64)


@settings(max_examples=30, deadline=None)
@given(distinct_points())
def test_tree_classifies_distinct_training_points_perfectly(
    data: tuple[F64, npt.NDArray[np.int64]],
) -> None:
    X, y = data
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    assert np.array_equal(tree.predict(X), y)
    assert tree.score(X, y) == 1.0


@settings(max_examples=15, deadline=None)
@given(distinct_points(), st.sampled_from(["gini", "entropy"]))
def test_unbagged_full_feature_forest_classifies_distinct_points_perfectly(
    data: tuple[F64, npt.NDArray[np.int64]], criterion: str
) -> None:
    X, y = data
    forest = RandomForestClassifier(
        n_estimators=3, bootstrap=False, max_features=None, criterion=criterion,
        random_state=0, n_jobs=1,
    ).fit(X, y)
    assert np.array_equal(forest.predict(X), y)


@settings(max_examples=20, deadline=None)
@given(distinct_points())
def test_regression_tree_reproduces_distinct_training_targets(
    data: tuple[F64, npt.NDArray[np.int64]],
) -> None:
    X, labels = data
    y = labels.astype(np.float64) * 1.5 - 0.25
    tree = DecisionTreeRegressor(random_state=0).fit(X, y)
    np.testing.assert_allclose(tree.predict(X), y, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "column",
    [
        [-1.7976931348623157e308, 1.7976931348623157e308],
        [5.69812408e294, -1.7976931348623157e308],
        [5e-324, -5e-324, 0.0],  # subnormal neighbours of zero
    ],
    ids=["full-range", "huge-gap", "subnormal"],
)
def test_extreme_magnitudes_split_exactly_and_silently(column: list[float]) -> None:
    """Midpoints between far-apart floats must not overflow (nor warn: warnings are errors)."""
    X = np.array(column).reshape(-1, 1)
    y = np.arange(len(column)) % 2
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    assert np.array_equal(tree.predict(X), y)
    assert np.isfinite(tree.tree_.threshold[tree.tree_.feature >= 0]).all()


def _brute_force_best(
    X: F64, y: npt.NDArray[Any], criterion: str
) -> tuple[float, int, float]:
    """(weighted impurity decrease, feature, threshold) of the best root split."""

    def weighted_impurity(v: npt.NDArray[Any]) -> float:
        if criterion == "squared_error":
            return float(v.size * v.var())
        _, counts = np.unique(v, return_counts=True)
        p = counts / v.size
        if criterion == "gini":
            return float(v.size * (1.0 - (p * p).sum()))
        return float(-v.size * (p * np.log2(p)).sum())

    parent = weighted_impurity(y)
    best = (-np.inf, -1, np.nan)
    for f in range(X.shape[1]):
        values = np.unique(X[:, f])
        for lo, hi in itertools.pairwise(values):
            thr = lo + (hi - lo) / 2
            left = X[:, f] <= thr
            gain = parent - weighted_impurity(y[left]) - weighted_impurity(y[~left])
            if gain > best[0] + 1e-9:
                best = (gain, f, thr)
    return best


@pytest.mark.parametrize("criterion", ["gini", "entropy", "squared_error"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_root_split_is_the_exhaustive_best(criterion: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(80, 4)), 2)
    if criterion == "squared_error":
        y: npt.NDArray[Any] = np.round(X[:, 1] * 2 + np.sin(X[:, 2]) + rng.normal(size=80), 3)
        stump: Any = DecisionTreeRegressor(max_depth=1, random_state=0)
    else:
        y = (X[:, 1] + X[:, 2] * X[:, 3] + rng.normal(size=80) > 0).astype(np.int64)
        y[rng.random(80) < 0.2] = 2
        stump = DecisionTreeClassifier(criterion=criterion, max_depth=1, random_state=0)
    stump.fit(X, y)
    gain, feature, threshold = _brute_force_best(X, y, criterion)
    t = stump.tree_
    assert t.feature[0] == feature
    assert t.threshold[0] == threshold
    assert np.isclose(t.improvement[0], gain, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("max_depth", [1, 2, 4])
def test_max_depth_and_min_samples_leaf_are_respected(max_depth: int) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 3))
    y = rng.integers(0, 3, 200)
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=7, random_state=0)
    tree.fit(X, y)
    assert tree.get_depth() == max_depth  # random labels: every level can still split
    t = tree.tree_
    leaves = t.feature < 0
    assert tree.get_n_leaves() == int(leaves.sum())
    assert t.n_node_samples[leaves].min() >= 7
    assert t.n_node_samples[leaves].sum() == 200
    proba = tree.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_min_samples_split_stops_small_nodes() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 2))
    y = rng.integers(0, 2, 120)
    t = DecisionTreeClassifier(min_samples_split=30, random_state=0).fit(X, y).tree_
    split = t.feature >= 0
    assert t.n_node_samples[split].min() >= 30


def test_regressor_leaf_values_are_means_and_forest_averages_trees() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(150, 3))
    y = X[:, 0] * 3 + rng.normal(size=150)
    tree = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, y)
    leaf = tree.apply(X)[:, 0]
    for node in np.unique(leaf):
        assert np.isclose(tree.tree_.value[node, 0], y[leaf == node].mean())
    forest = RandomForestRegressor(n_estimators=4, random_state=0, n_jobs=1).fit(X, y)
    per_tree = np.mean([est.predict(X) for est in forest.estimators_], axis=0)
    np.testing.assert_allclose(forest.predict(X), per_tree, rtol=1e-12)
