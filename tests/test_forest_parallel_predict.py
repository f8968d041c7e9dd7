"""Large predictions split across the pool: same bits as in-process, and memory stays valid.

Regression test: pool processes cache shared-memory segments; evicting a segment whose arrays
were still referenced once unmapped memory under a live array (a segfault on the third call).
"""

from __future__ import annotations

import numpy as np
import pytest

from aioforest import RandomForestClassifier, RandomForestRegressor
from aioforest.ensemble import _forest


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
