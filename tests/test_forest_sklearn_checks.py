"""scikit-learn's estimator checks, and the estimators inside its Pipeline and GridSearchCV.

Two checks are expected to fail, by design:

* ``check_sample_weight_equivalence_on_dense_data`` (forests only): a bootstrap samples rows,
  so weight 2 is not the same as a repeated row once rows are resampled.
* ``check_dtype_object``: string columns are categorical features, not an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import DataConversionWarning as SkDataConversionWarning
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.exceptions import SkipTestWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator, estimator_checks_generator
from sklearn.utils.validation import check_is_fitted

from aioforest import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

FOREST_EXPECTED = {"check_sample_weight_equivalence_on_dense_data", "check_dtype_object"}
TREE_EXPECTED = {"check_dtype_object"}


def _estimators() -> list[Any]:
    return [
        pytest.param(DecisionTreeClassifier(random_state=0), TREE_EXPECTED, id="tree-clf"),
        pytest.param(DecisionTreeRegressor(random_state=0), TREE_EXPECTED, id="tree-reg"),
        pytest.param(
            RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1), FOREST_EXPECTED,
            id="forest-clf",
        ),
        pytest.param(
            RandomForestRegressor(n_estimators=5, random_state=0, n_jobs=1), FOREST_EXPECTED,
            id="forest-reg",
        ),
    ]


@contextmanager
def _sklearn_check_warnings() -> Iterator[None]:
    """Keep the suite's warnings-as-errors, except scikit-learn's own notices about the run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SkipTestWarning)
        warnings.filterwarnings("ignore", message=".*does not inherit from `sklearn.base")
        yield


def _check_name(check: Callable[..., Any]) -> str:
    return str(getattr(check, "func", check).__name__)


# check_supervised_y_2d is left to the full run and to the direct test below.
QUICK_CHECKS = {
    "check_estimator_cloneable",
    "check_no_attributes_set_in_init",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_estimators_unfitted",
    "check_n_features_in_after_fitting",
    "check_estimators_dtypes",
    "check_classifiers_train",
    "check_regressors_train",
    "check_supervised_y_no_nan",
    "check_fit_idempotent",
    "check_dict_unchanged",
    "check_get_params_invariance",
    "check_set_params",
    "check_fit2d_predict1d",
}


@pytest.mark.parametrize(("estimator", "expected"), _estimators())
def test_quick_subset_of_sklearn_checks(estimator: Any, expected: set[str]) -> None:
    ran, failed = set(), {}
    with _sklearn_check_warnings():
        for est, check in estimator_checks_generator(estimator, legacy=True):
            name = _check_name(check)
            if name not in QUICK_CHECKS:
                continue
            ran.add(name)
            try:
                check(est)
            except Exception as exc:  # collect every failure, then report them together
                failed[name] = f"{type(exc).__name__}: {exc}"
    assert len(ran) >= 12, ran
    assert not failed, failed


@pytest.mark.slow
@pytest.mark.parametrize(("estimator", "expected"), _estimators())
def test_full_sklearn_check_estimator(estimator: Any, expected: set[str]) -> None:
    with _sklearn_check_warnings():
        results = check_estimator(estimator, on_fail=None)
    failed = {
        r["check_name"]: str(r["exception"])[:300] for r in results if r["status"] == "failed"
    }
    unexpected = {k: v for k, v in failed.items() if k not in expected}
    assert not unexpected, unexpected
    assert len(results) > 40


def test_column_vector_y_warns_with_sklearns_data_conversion_warning() -> None:
    """scikit-learn's tooling (check_supervised_y_2d) listens for its own warning class."""
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = np.arange(30) % 3
    with pytest.warns(SkDataConversionWarning, match="column-vector y"):
        RandomForestClassifier(n_estimators=2, random_state=0, n_jobs=1).fit(X, y[:, None])


def test_not_fitted_error_is_sklearns() -> None:
    for est in (
        RandomForestClassifier(n_estimators=2), DecisionTreeRegressor(),
    ):
        with pytest.raises(SkNotFittedError):
            est.predict(np.zeros((2, 3)))
        with pytest.raises(SkNotFittedError):
            check_is_fitted(est)
    fitted = DecisionTreeClassifier().fit(np.eye(3), [0, 1, 1])
    check_is_fitted(fitted)


def test_forest_in_a_pipeline() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5)) * [1, 10, 100, 1000, 1]
    y = (X[:, 0] + X[:, 1] / 10 > 0).astype(np.int64)
    pipe = Pipeline(
        [("scale", StandardScaler()),
         ("forest", RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1))]
    )
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.95
    # Trees are invariant to monotone scaling: the same forest as without the scaler.
    bare = RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1).fit(
        StandardScaler().fit_transform(X), y
    )
    np.testing.assert_array_equal(pipe.predict_proba(X), bare.predict_proba(
        StandardScaler().fit(X).transform(X)
    ))
    pipe.set_params(forest__max_depth=1)
    assert pipe.named_steps["forest"].max_depth == 1
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,)


def test_grid_search_over_forest_parameters() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(150, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    search = GridSearchCV(
        RandomForestClassifier(n_estimators=8, random_state=0, n_jobs=1),
        {"max_depth": [1, None], "criterion": ["gini", "entropy"]},
        cv=3,
    )
    search.fit(X, y)
    assert search.best_params_["max_depth"] is None  # an interaction needs depth > 1
    assert isinstance(search.best_estimator_, RandomForestClassifier)
    assert len(search.best_estimator_.trees_) == 8
    assert search.score(X, y) > 0.9
    reg = GridSearchCV(
        DecisionTreeRegressor(random_state=0), {"min_samples_leaf": [1, 5]}, cv=3
    ).fit(X, X[:, 0] * 3)
    assert reg.best_score_ > 0.8
