"""Categorical features split natively; missing values learn a direction; unseen categories
are treated as missing at predict time."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from aioforest import (
    Dataset,
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

N = 200


def _category_data(seed: int = 0) -> tuple[Dataset, npt.NDArray[np.object_]]:
    """Column ``cat`` in {a, b, c, d} plus a noise column; label: cat in {a, c}."""
    rng = np.random.default_rng(seed)
    cats = np.array(list("abcd"))[rng.integers(0, 4, N)]
    X = np.empty((N, 2), dtype=object)
    X[:, 0] = cats
    X[:, 1] = rng.normal(size=N)
    y = np.where(np.isin(cats, ["a", "c"]), "in", "out")
    ds = Dataset.from_arrays(X, y, feature_names=["cat", "noise"], categorical=["cat"])
    return ds, X


def _left_categories(model: Any, node: int = 0) -> set[str]:
    t = model.tree_
    categories = model.features_[int(t.feature[node])].categories
    mask = t.cat_left[t.cat_index[node]]
    return {c for c, m in zip(categories, mask, strict=False) if m}


def test_non_contiguous_category_set_is_learnt_by_one_split() -> None:
    ds, X = _category_data()
    assert ds.features[0].kind == "categorical"
    assert ds.features[0].categories == ("a", "b", "c", "d")
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(ds)
    assert stump.tree_.node_count == 3
    assert stump.tree_.feature[0] == 0
    assert _left_categories(stump) in ({"a", "c"}, {"b", "d"})
    assert stump.score(X, ds.y) == 1.0
    # An ordinal split on the codes (a < b < c < d) could not do this in one split.
    ordinal = DecisionTreeClassifier(max_depth=1, random_state=0).fit(
        ds.encoded(), np.asarray(ds.y)
    )
    assert ordinal.score(ds.encoded(), ds.y) < 1.0


def test_forest_of_stumps_learns_the_category_set() -> None:
    ds, X = _category_data(seed=1)
    forest = RandomForestClassifier(
        n_estimators=5, max_depth=1, max_features=None, random_state=0, n_jobs=1
    ).fit(ds)
    assert forest.score(X, ds.y) == 1.0
    for est in forest.estimators_:
        assert _left_categories(est) in ({"a", "c"}, {"b", "d"})


def test_numeric_values_declared_categorical_split_as_categories() -> None:
    rng = np.random.default_rng(2)
    codes = rng.integers(1, 5, N).astype(np.float64)  # 1..4
    X = np.column_stack([codes, rng.normal(size=N)])
    y = np.isin(codes, [1, 3]).astype(np.int64)
    ds = Dataset.from_arrays(X, y, categorical=[0])
    assert ds.features[0].categories == ("1", "2", "3", "4")
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(ds)
    assert _left_categories(stump) in ({"1", "3"}, {"2", "4"})
    assert stump.score(ds.X, y) == 1.0


def test_regression_groups_categories_by_mean_target() -> None:
    rng = np.random.default_rng(3)
    cats = np.array(list("abcd"))[rng.integers(0, 4, N)]
    means = {"a": 1.0, "b": 5.0, "c": 1.2, "d": 5.3}
    y = np.array([means[c] for c in cats]) + 0.01 * rng.normal(size=N)
    ds = Dataset.from_arrays(cats.reshape(-1, 1).astype(object), y, task="regression")
    stump = DecisionTreeRegressor(max_depth=1, random_state=0).fit(ds)
    assert _left_categories(stump) in ({"a", "c"}, {"b", "d"})
    forest = RandomForestRegressor(n_estimators=3, max_depth=2, random_state=0, n_jobs=1).fit(ds)
    assert forest.score(ds.X, y) > 0.99


def test_pandas_category_and_object_columns_are_categorical() -> None:
    ds, X = _category_data(seed=4)
    df = pd.DataFrame({"cat": pd.Categorical(X[:, 0]), "noise": X[:, 1].astype(float)})
    tree = DecisionTreeClassifier(max_depth=1, random_state=0).fit(df, ds.y)
    assert [f.kind for f in tree.features_] == ["categorical", "numeric"]
    assert list(tree.feature_names_in_) == ["cat", "noise"]
    assert tree.score(df, ds.y) == 1.0


@pytest.mark.parametrize("missing_class", [0, 1])
def test_missing_numeric_values_learn_their_direction(missing_class: int) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=400)
    y = (x > 0).astype(np.int64)
    missing = rng.random(400) < 0.25
    y[missing] = missing_class
    X = np.where(missing, np.nan, x).reshape(-1, 1)
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    t = stump.tree_
    assert t.feature[0] == 0
    assert -0.1 < t.threshold[0] < 0.1
    # Missing rows belong with the class-0 side (x <= thr, left) or the class-1 side (right).
    assert bool(t.missing_left[0]) == (missing_class == 0)
    assert stump.score(X, y) == 1.0
    assert list(stump.predict(np.array([[np.nan], [-1.0], [1.0]]))) == [missing_class, 0, 1]


def test_missingness_alone_is_learnt_by_one_split() -> None:
    """A feature whose only information is whether it is missing ("missing vs rest")."""
    rng = np.random.default_rng(6)
    missing = rng.random(100) < 0.4
    X = np.column_stack([np.where(missing, np.nan, 3.0), rng.normal(size=100)])
    y = missing.astype(np.int64)
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    assert stump.tree_.feature[0] == 0
    assert stump.score(X, y) == 1.0
    assert list(stump.predict(np.array([[np.nan, 0.0], [3.0, 0.0], [-50.0, 0.0]]))) == [1, 0, 0]


def test_missing_categories_learn_their_direction() -> None:
    ds, X = _category_data(seed=7)
    X = X.copy()
    y = np.asarray(ds.y).copy()
    holes = np.arange(N) % 5 == 0
    X[holes, 0] = None
    y[holes] = "in"  # missing categories behave like the {a, c} side
    ds_missing = Dataset.from_arrays(X, y, feature_names=["cat", "noise"], categorical=[0])
    tree = DecisionTreeClassifier(max_depth=1, random_state=0).fit(ds_missing)
    assert tree.score(X, y) == 1.0
    assert tree.predict(np.array([[None, 0.0]], dtype=object))[0] == "in"


def test_unseen_categories_at_predict_time_are_treated_as_missing() -> None:
    ds, _ = _category_data(seed=8)
    for model in (
        DecisionTreeClassifier(random_state=0).fit(ds),
        RandomForestClassifier(n_estimators=4, random_state=0, n_jobs=1).fit(ds),
    ):
        new = np.array([["e", 0.5], ["zzz", -1.0], [None, 0.5], [None, -1.0]], dtype=object)
        proba = model.predict_proba(new)
        assert proba.shape == (4, 2)
        np.testing.assert_array_equal(proba[0], proba[2])
        np.testing.assert_array_equal(proba[1], proba[3])
        assert set(model.predict(new)) <= {"in", "out"}


def test_nan_at_predict_time_on_a_feature_without_missing_values_at_fit() -> None:
    rng = np.random.default_rng(9)
    X = rng.normal(size=(100, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    forest = RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1).fit(X, y)
    Xn = X[:10].copy()
    Xn[:, 0] = np.nan
    proba = forest.predict_proba(Xn)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # Deterministic: the same rows always land in the same leaves.
    np.testing.assert_array_equal(forest.predict_proba(Xn), proba)
