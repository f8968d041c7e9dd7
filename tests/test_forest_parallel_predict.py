"""Large predictions split across the pool: same bits as in-process, and memory stays valid.

Regression test: pool processes cache shared-memory segments; evicting a segment whose arrays
were still referenced once unmapped memory under a live array (a segfault on the third call).
"""

from __future__ import annotations

import numpy as np
import pytest

from aioforest import RandomForestClassifier, RandomForestRegressor
from aioforest.ensemble import _forest
from aioforest.tree import FlatForest


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12_000, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    return X, y


def test_parallel_predict_matches_in_process_bit_for_bit(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = data
    forest = RandomForestClassifier(n_estimators=40, max_depth=8, n_jobs=2, random_state=3)
    forest.fit(X[:2000], y[:2000])
    assert X.shape[0] * 40 >= _forest.PARALLEL_PREDICT_PAIRS  # takes the pool path
    expected = forest._flat_forest().mean_value(X)
    # More calls than the per-process segment cache holds: every call ships a new segment.
    for _ in range(12):
        assert np.array_equal(forest.predict_proba(X), expected)


def test_parallel_regression_predict_matches(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    target = X[:, 0] * 2.0 + y
    forest = RandomForestRegressor(n_estimators=40, max_depth=6, n_jobs=2, random_state=1)
    forest.fit(X[:1500], target[:1500])
    expected = forest._flat_forest().mean_value(X)[:, 0]
    assert np.array_equal(forest.predict(X), expected)


def test_predict_does_not_change_the_estimator_state(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    forest = RandomForestClassifier(n_estimators=40, max_depth=4, n_jobs=2, random_state=0)
    forest.fit(X[:1000], y[:1000])
    before = dict(vars(forest))
    forest.predict(X)
    assert vars(forest).keys() == before.keys()


def test_a_pool_forest_builds_its_table_in_shared_memory_and_keeps_values_once(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = data
    forest = RandomForestClassifier(n_estimators=12, max_depth=8, n_jobs=2, random_state=5)
    forest.fit(X[:3000], y[:3000])
    flat = forest._flat_forest()
    shared = _forest._SHARED.get(forest)
    assert shared is not None and shared.key == id(forest.trees_)  # published at fit
    segments = shared._shared.arrays
    for name in FlatForest.PARTS:  # the table's arrays are the shared segments themselves
        part = flat.parts()[name]
        assert part.size == 0 or np.shares_memory(part, segments[name]), name
    for tree, lo in zip(forest.trees_, flat.roots, strict=True):  # values kept once
        assert np.shares_memory(tree.value, flat.value)
        assert tree.value.shape == (tree.node_count, 2) and int(lo) >= 0
    serial = RandomForestClassifier(n_estimators=12, max_depth=8, n_jobs=1, random_state=5)
    serial.fit(X[:3000], y[:3000])
    assert _forest._SHARED.get(serial) is None  # no pool: a private table
    assert all(np.shares_memory(t.value, serial._flat_forest().value) for t in serial.trees_)
    np.testing.assert_array_equal(forest.predict_proba(X), serial.predict_proba(X))
    # n_jobs raised after a serial fit: the private table is copied to shared memory once
    serial.set_params(n_jobs=2)
    copied = serial._shared_model()
    assert copied.key == id(serial.trees_) and serial._shared_model() is copied
    assert not np.shares_memory(copied._shared.arrays["value"], serial._flat_forest().value)
    np.testing.assert_array_equal(
        copied.task(X[:500]), serial._flat_forest().mean_value(X[:500])
    )


def test_adopting_values_needs_the_trees_the_table_was_built_from() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, 3)), rng.integers(0, 2, 300)
    a = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    b = RandomForestClassifier(n_estimators=3, random_state=1).fit(X, y)
    with pytest.raises(ValueError, match="built from"):
        a._flat_forest().adopt_values(b.trees_)
    with pytest.raises(ValueError, match="2 trees"):
        a._flat_forest().adopt_values(a.trees_[:2])
