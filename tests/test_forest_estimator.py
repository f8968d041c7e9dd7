"""Estimator conventions (parameters, cloning, learned attributes) and bad parameters/inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from forest_helpers import classification_data, regression_data
from sklearn.base import clone as sk_clone
from sklearn.model_selection import train_test_split

from aioforest import (
    BaggingClassifier,
    Dataset,
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from aioforest._base import NotFittedError, clone

ESTIMATOR_CLASSES = [
    RandomForestClassifier, RandomForestRegressor, DecisionTreeClassifier, DecisionTreeRegressor,
    BaggingClassifier,
]


def _fit_data(est: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    if isinstance(est, RandomForestRegressor | DecisionTreeRegressor):
        return regression_data(n=120, d=4, seed=3)
    return classification_data(n=120, d=4, seed=3)


def _small(cls: type[Any], **params: Any) -> Any:
    """An estimator of ``cls`` that fits fast: few members, in this process."""
    est = cls(**params)
    if "n_estimators" in est.get_params():
        est.set_params(n_estimators=5, n_jobs=1)
    return est


# --- parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ESTIMATOR_CLASSES)
def test_get_params_set_params_round_trip(cls: type[Any]) -> None:
    est = cls()
    params = est.get_params()
    assert params, "every estimator has parameters"
    assert all(getattr(est, name) is value for name, value in est.get_params(deep=False).items())
    assert est.set_params(**est.get_params(deep=False)) is est
    assert est.get_params() == params
    rebuilt = cls(**est.get_params(deep=False))
    assert rebuilt.get_params() == params
    with pytest.raises(ValueError, match="no_such_parameter"):
        est.set_params(no_such_parameter=1)


def test_parameters_are_stored_as_given_and_not_changed_by_fit() -> None:
    weights = {0: 2.0, 1: 1.0}
    est = RandomForestClassifier(
        n_estimators=4, max_features=0.5, class_weight=weights, max_samples=0.8,
        min_samples_leaf=0.01, random_state=3, n_jobs=1,
    )
    assert est.max_features == 0.5 and isinstance(est.max_features, float)
    assert est.class_weight is weights
    before = est.get_params()
    X, y = classification_data(n=120, d=4, seed=3)
    est.fit(X, y)
    after = est.get_params()
    assert after == before
    assert est.class_weight is weights and weights == {0: 2.0, 1: 1.0}
    assert est.min_samples_leaf == 0.01
    assert "max_features=0.5" in repr(est) and "n_estimators=4" in repr(est)
    assert "criterion" not in repr(est)  # defaults are left out


def test_unfitted_estimators_hold_no_learned_attributes() -> None:
    for cls in ESTIMATOR_CLASSES:
        est = cls()
        learned = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
        assert learned == [], (cls.__name__, learned)


@pytest.mark.parametrize("cls", ESTIMATOR_CLASSES)
def test_clone_gives_an_unfitted_copy_with_equal_parameters(cls: type[Any]) -> None:
    est = _small(cls, random_state=7)
    X, y = _fit_data(est)
    est.fit(X, y)
    for copy in (clone(est), sk_clone(est)):
        assert type(copy) is cls
        assert copy is not est
        assert copy.get_params() == est.get_params()
        assert not hasattr(copy, "n_features_in_")


def test_clone_and_nested_parameters_of_bagging() -> None:
    inner = DecisionTreeClassifier(max_depth=3)
    bag = BaggingClassifier(inner, n_estimators=3)
    params = bag.get_params(deep=True)
    assert params["estimator__max_depth"] == 3
    assert params["estimator"] is inner
    copy = clone(bag)
    assert copy.estimator is not inner
    assert copy.estimator.get_params() == inner.get_params()
    bag.set_params(estimator__max_depth=5, n_estimators=4)
    assert inner.max_depth == 5 and bag.n_estimators == 4
    assert copy.estimator.max_depth == 3


# --- learned attributes ----------------------------------------------------------------------
def test_classifier_learned_attributes() -> None:
    X, y_codes = classification_data(n=200, d=5, seed=4)
    labels = np.array(["lo", "mid", "hi"], dtype=object)[y_codes]
    forest = RandomForestClassifier(n_estimators=6, random_state=0, n_jobs=1).fit(X, labels)
    assert list(forest.classes_) == ["hi", "lo", "mid"]  # sorted
    assert forest.n_classes_ == 3
    assert forest.n_features_in_ == 5
    assert not hasattr(forest, "feature_names_in_")  # a plain array has no names
    assert set(forest.predict(X)) <= {"hi", "lo", "mid"}
    proba = forest.predict_proba(X)
    assert proba.shape == (200, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(forest.predict(X), forest.classes_[proba.argmax(axis=1)])
    assert forest.score(X, labels) > 0.95


def test_feature_names_in_only_from_dataframes_and_datasets() -> None:
    X, y = classification_data(n=100, d=3, seed=5)
    df = pd.DataFrame(X, columns=["alpha", "beta", "gamma"])
    ds = Dataset.from_arrays(X, y, feature_names=["a1", "a2", "a3"])
    for est in (RandomForestClassifier(n_estimators=2, n_jobs=1), DecisionTreeClassifier()):
        assert list(est.fit(df, y).feature_names_in_) == ["alpha", "beta", "gamma"]
        assert list(est.fit(ds).feature_names_in_) == ["a1", "a2", "a3"]
        fresh = clone(est).fit(X, y)
        assert not hasattr(fresh, "feature_names_in_")
    # Predicting from a DataFrame matches columns by name.
    forest = RandomForestClassifier(n_estimators=3, random_state=0, n_jobs=1).fit(df, y)
    np.testing.assert_array_equal(
        forest.predict_proba(df[["gamma", "alpha", "beta"]]), forest.predict_proba(df)
    )


@pytest.mark.parametrize("cls", [RandomForestClassifier, RandomForestRegressor])
def test_feature_importances_sum_to_one_and_find_the_signal(cls: type[Any]) -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 5))
    y: np.ndarray[Any, Any] = X[:, 2] * 4 + 0.2 * rng.normal(size=300)
    if cls is RandomForestClassifier:
        y = (y > 0).astype(np.int64)
    forest = cls(n_estimators=8, random_state=0, n_jobs=1).fit(X, y)
    imp = forest.feature_importances_
    assert imp.shape == (5,)
    assert np.isclose(imp.sum(), 1.0)
    assert (imp >= 0).all()
    assert int(np.argmax(imp)) == 2
    tree = DecisionTreeRegressor(random_state=0).fit(X, X[:, 2] * 4)
    assert np.isclose(tree.feature_importances_.sum(), 1.0)


def test_oob_score_is_close_to_a_held_out_score() -> None:
    X, y = classification_data(n=600, d=6, seed=7)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    forest = RandomForestClassifier(
        n_estimators=40, oob_score=True, random_state=0, n_jobs=1
    ).fit(X_tr, y_tr)
    held_out = forest.score(X_te, y_te)
    assert abs(forest.oob_score_ - held_out) < 0.06, (forest.oob_score_, held_out)
    assert forest.oob_decision_function_.shape == (len(y_tr), 3)
    Xr, yr = regression_data(n=300, d=5, seed=7)
    reg = RandomForestRegressor(
        n_estimators=20, oob_score=True, random_state=0, n_jobs=1
    ).fit(Xr[:200], yr[:200])
    assert abs(reg.oob_score_ - reg.score(Xr[200:], yr[200:])) < 0.1
    assert reg.oob_prediction_.shape == (200,)


def test_estimators_are_decision_trees_that_predict() -> None:
    X, y = classification_data(n=150, d=4, seed=8)
    forest = RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1).fit(X, y)
    members = forest.estimators_
    assert len(members) == 5
    assert all(type(m) is DecisionTreeClassifier for m in members)
    for m in members:
        np.testing.assert_array_equal(m.classes_, forest.classes_)
        assert m.n_features_in_ == 4
        assert m.predict(X).shape == (150,)
    mean = np.mean([m.predict_proba(X) for m in members], axis=0)
    np.testing.assert_allclose(forest.predict_proba(X), mean, rtol=1e-12, atol=1e-15)
    reg = RandomForestRegressor(n_estimators=3, random_state=0, n_jobs=1).fit(X, y * 1.5)
    assert all(type(m) is DecisionTreeRegressor for m in reg.estimators_)


def test_apply_returns_one_leaf_per_tree() -> None:
    X, y = classification_data(n=80, d=3, seed=9)
    forest = RandomForestClassifier(n_estimators=4, random_state=0, n_jobs=1).fit(X, y)
    leaves = forest.apply(X)
    assert leaves.shape == (80, 4)
    for t, tree in enumerate(forest.trees_):
        assert (tree.feature[leaves[:, t]] == -1).all()


# --- bad parameters --------------------------------------------------------------------------
BAD_FOREST_PARAMS = [
    ("n_estimators", 0), ("n_estimators", 2.5), ("max_features", "bogus"), ("max_features", 0.0),
    ("max_depth", 0), ("criterion", "foo"), ("class_weight", "x"), ("max_samples", 2.0),
    ("n_jobs", 0), ("min_samples_split", 1), ("min_samples_leaf", 0), ("max_bins", 1),
    ("max_bins", 256), ("random_state", -1), ("min_weight_fraction_leaf", 0.6),
    ("min_impurity_decrease", -1.0), ("feature_subspace", 0),
]


@pytest.mark.parametrize(("name", "value"), BAD_FOREST_PARAMS)
def test_bad_forest_parameter_raises_value_error_naming_it(name: str, value: Any) -> None:
    X, y = classification_data(n=40, d=3, seed=0)
    est = RandomForestClassifier(n_estimators=2, n_jobs=1).set_params(**{name: value})
    with pytest.raises(ValueError, match=name):
        est.fit(X, y)


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_depth", 0), ("criterion", "gini"), ("max_features", "bogus"), ("max_bins", 1)],
)
def test_bad_regression_tree_parameter_raises_value_error_naming_it(name: str, value: Any) -> None:
    X, y = regression_data(n=40, d=3, seed=0)
    with pytest.raises(ValueError, match=name):
        DecisionTreeRegressor().set_params(**{name: value}).fit(X, y)


def test_parameter_conflicts_raise_value_errors() -> None:
    X, y = classification_data(n=40, d=3, seed=0)
    with pytest.raises(ValueError, match="oob_score"):
        RandomForestClassifier(n_estimators=2, oob_score=True, bootstrap=False).fit(X, y)
    with pytest.raises(ValueError, match="max_features"):
        RandomForestClassifier(n_estimators=2, max_features=4).fit(X, y)
    with pytest.raises(ValueError, match="max_samples"):
        RandomForestClassifier(n_estimators=2, max_samples=41).fit(X, y)
    with pytest.raises(ValueError, match="class_weight"):
        DecisionTreeClassifier(class_weight={"nope": 2.0}).fit(X, y)


# --- bad inputs ------------------------------------------------------------------------------
def test_nan_labels_are_rejected() -> None:
    X, y = classification_data(n=40, d=3, seed=0)
    y_nan = y.astype(np.float64)
    y_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RandomForestClassifier(n_estimators=2, n_jobs=1).fit(X, y_nan)
    with pytest.raises(ValueError, match="NaN"):
        RandomForestRegressor(n_estimators=2, n_jobs=1).fit(X, y_nan)
    labels = np.array(["a", "b"] * 20, dtype=object)
    labels[5] = None
    with pytest.raises(ValueError, match=r"y\[5\]: missing label"):
        DecisionTreeClassifier().fit(X, labels)


def test_one_dimensional_x_is_rejected_with_a_hint() -> None:
    X, y = classification_data(n=40, d=3, seed=0)
    with pytest.raises(ValueError, match="reshape"):
        RandomForestClassifier(n_estimators=2, n_jobs=1).fit(X[:, 0], y)
    forest = RandomForestClassifier(n_estimators=2, n_jobs=1).fit(X, y)
    with pytest.raises(ValueError, match="reshape"):
        forest.predict(X[0])


def test_other_bad_inputs() -> None:
    X, y = classification_data(n=40, d=3, seed=0)
    with pytest.raises(ValueError, match="infinity"):
        RandomForestClassifier(n_estimators=2, n_jobs=1).fit(np.where(X > 1.5, np.inf, X), y)
    with pytest.raises(ValueError):
        RandomForestClassifier(n_estimators=2, n_jobs=1).fit(X, y[:-1])
    with pytest.raises(ValueError, match="0 sample"):
        RandomForestClassifier(n_estimators=2, n_jobs=1).fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="continuous"):
        DecisionTreeClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="sample_weight"):
        RandomForestClassifier(n_estimators=2, n_jobs=1).fit(X, y, sample_weight=-np.ones(40))


@pytest.mark.parametrize("cls", ESTIMATOR_CLASSES)
def test_wrong_feature_count_at_predict(cls: type[Any]) -> None:
    est = _small(cls, random_state=0)
    X, y = _fit_data(est)
    est.fit(X, y)
    with pytest.raises(ValueError, match=r"features|columns"):
        est.predict(X[:, :3])
    with pytest.raises(ValueError, match=r"features|columns"):
        est.predict(np.hstack([X, X[:, :1]]))


@pytest.mark.parametrize("cls", ESTIMATOR_CLASSES)
def test_predict_before_fit_raises_not_fitted_error(cls: type[Any]) -> None:
    X, _ = classification_data(n=10, d=4, seed=0)
    est = cls()
    with pytest.raises(NotFittedError, match="not fitted"):
        est.predict(X)
    if hasattr(est, "predict_proba"):
        with pytest.raises(NotFittedError, match="not fitted"):
            est.predict_proba(X)


def test_learned_properties_before_fit_raise_not_fitted_error() -> None:
    forest = RandomForestClassifier()
    with pytest.raises(NotFittedError):
        _ = forest.estimators_
    with pytest.raises(NotFittedError):
        _ = forest.feature_importances_
    with pytest.raises(NotFittedError):
        DecisionTreeClassifier().get_depth()
