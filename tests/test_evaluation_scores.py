"""One R^2 and one accuracy everywhere, compared with scikit-learn's.

``r2_score`` and ``accuracy_score`` follow ``sklearn.metrics`` (``force_finite=True``), and
every estimator's ``score`` and ``oob_score_`` give the same numbers.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import sklearn.metrics as skm

from aioforest.ensemble import BaggingClassifier, RandomForestClassifier, RandomForestRegressor
from aioforest.evaluation import UndefinedMetricWarning, accuracy_score, r2_score
from aioforest.tree import DecisionTreeClassifier, DecisionTreeRegressor


def _quiet_sk_r2(y: Any, p: Any, w: Any = None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(skm.r2_score(y, p, sample_weight=w))


@pytest.mark.parametrize("seed", range(5))
def test_r2_score_matches_scikit_learn_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=50)
    p = y + rng.normal(scale=0.5, size=50)
    w = rng.uniform(0.0, 3.0, size=50)
    assert r2_score(y, p) == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    assert r2_score(y, p, sample_weight=w) == pytest.approx(
        skm.r2_score(y, p, sample_weight=w), rel=1e-12
    )
    assert r2_score(y, p, sample_weight=w) != pytest.approx(r2_score(y, p), rel=1e-9)


@pytest.mark.parametrize(
    ("y", "p"),
    [
        ([3.0, 3.0, 3.0], [3.0, 3.0, 3.0]),  # constant and perfect
        ([3.0, 3.0, 3.0], [3.0, 2.0, 3.0]),  # constant, not perfect
        ([0.1, 0.1, 0.1], [0.1, 0.1, 0.1]),  # a mean that rounds
        ([1.0, 2.0, 4.0], [1.0, 2.0, 4.0]),  # perfect
        ([1.0, 2.0, 4.0], [4.0, 2.0, 1.0]),  # worse than the mean
    ],
)
def test_r2_score_follows_scikit_learn_on_constant_targets_and_perfect_fits(
    y: list[float], p: list[float]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        ours = r2_score(y, p)
        weighted = r2_score(y, p, sample_weight=[1.0, 0.5, 2.0])
    assert ours == _quiet_sk_r2(y, p)
    assert weighted == pytest.approx(_quiet_sk_r2(y, p, [1.0, 0.5, 2.0]), rel=1e-12)


def test_r2_score_warns_only_where_scikit_learn_forces_a_finite_value() -> None:
    with pytest.warns(UndefinedMetricWarning, match="y_true is constant"):
        assert r2_score([2.0, 2.0], [2.0, 1.0]) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r2_score([2.0, 2.0], [2.0, 2.0]) == 1.0


def test_zero_weights_drop_samples() -> None:
    y, p = np.array([1.0, 2.0, 3.0, 10.0]), np.array([1.5, 2.0, 2.5, -4.0])
    w = np.array([1.0, 1.0, 1.0, 0.0])
    assert r2_score(y, p, sample_weight=w) == pytest.approx(r2_score(y[:3], p[:3]))
    labels = np.array(["a", "b", "a", "b"])
    predicted = np.array(["a", "a", "a", "a"])
    assert accuracy_score(labels, predicted, sample_weight=w) == pytest.approx(2 / 3)


@pytest.mark.parametrize("bad", [[1.0, -1.0], [0.0, 0.0], [1.0], [1.0, np.nan]])
def test_bad_sample_weights_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="sample_weight"):
        r2_score([1.0, 2.0], [1.0, 2.0], sample_weight=bad)
    with pytest.raises(ValueError, match="sample_weight"):
        accuracy_score([1, 2], [1, 2], sample_weight=bad)


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_score_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array(["x", "y", "z"]), size=40)
    p = np.where(rng.random(40) < 0.6, y, rng.choice(np.array(["x", "y", "z"]), size=40))
    w = rng.uniform(0.0, 2.0, size=40)
    assert accuracy_score(y, p) == pytest.approx(skm.accuracy_score(y, p), rel=1e-12)
    assert accuracy_score(y, p, sample_weight=w) == pytest.approx(
        skm.accuracy_score(y, p, sample_weight=w), rel=1e-12
    )


def test_accuracy_score_checks_lengths_and_warns_when_empty() -> None:
    with pytest.raises(ValueError, match="same length"):
        accuracy_score([1, 2], [1])
    with pytest.warns(UndefinedMetricWarning, match="accuracy"):
        assert accuracy_score([], []) == 0.0


def _regression_data(seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 4))
    return X, X[:, 0] * 2.0 + np.sin(X[:, 1]) + rng.normal(scale=0.3, size=120)


@pytest.mark.parametrize("cls", [DecisionTreeRegressor, RandomForestRegressor])
def test_regressor_score_is_scikit_learns_r2(cls: type[Any]) -> None:
    X, y = _regression_data(1)
    model = cls(random_state=0, max_depth=3).fit(X[:80], y[:80])
    w = np.random.default_rng(2).uniform(0.1, 2.0, size=40)
    pred = model.predict(X[80:])
    assert model.score(X[80:], y[80:]) == pytest.approx(skm.r2_score(y[80:], pred), rel=1e-12)
    assert model.score(X[80:], y[80:], sample_weight=w) == pytest.approx(
        skm.r2_score(y[80:], pred, sample_weight=w), rel=1e-12
    )


@pytest.mark.parametrize("cls", [DecisionTreeRegressor, RandomForestRegressor])
def test_a_perfect_fit_of_a_constant_target_scores_one(cls: type[Any]) -> None:
    X, _ = _regression_data(3)
    y = np.full(X.shape[0], 4.25)
    model = cls(random_state=0).fit(X, y)
    assert model.score(X, y) == 1.0 == skm.r2_score(y, model.predict(X))


def test_oob_score_of_a_perfect_fit_on_a_constant_target_is_one() -> None:
    X, _ = _regression_data(4)
    y = np.full(X.shape[0], -1.5)
    forest = RandomForestRegressor(n_estimators=20, oob_score=True, random_state=0).fit(X, y)
    assert np.allclose(forest.oob_prediction_, -1.5)
    assert forest.oob_score_ == 1.0


def test_oob_scores_are_scikit_learns_metrics_of_the_oob_predictions() -> None:
    X, y = _regression_data(5)
    reg = RandomForestRegressor(n_estimators=25, oob_score=True, random_state=1).fit(X, y)
    assert reg.oob_score_ == pytest.approx(skm.r2_score(y, reg.oob_prediction_), rel=1e-12)
    labels = np.where(y > np.median(y), "hi", "lo")
    clf = RandomForestClassifier(n_estimators=25, oob_score=True, random_state=1).fit(X, labels)
    oob_labels = clf.classes_[np.argmax(clf.oob_decision_function_, axis=1)]
    assert clf.oob_score_ == pytest.approx(skm.accuracy_score(labels, oob_labels), rel=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DecisionTreeClassifier(max_depth=2, random_state=0),
        lambda: RandomForestClassifier(n_estimators=5, max_depth=2, random_state=0),
        lambda: BaggingClassifier(n_estimators=5, random_state=0),
    ],
)
def test_classifier_score_honours_sample_weight(make: Any) -> None:
    X, y = _regression_data(6)
    labels = np.where(y > 0.5, 1, 0)
    model = make().fit(X[:60], labels[:60])
    pred = model.predict(X[60:])
    w = np.random.default_rng(7).uniform(0.0, 5.0, size=60)
    assert model.score(X[60:], labels[60:]) == pytest.approx(
        skm.accuracy_score(labels[60:], pred), rel=1e-12
    )
    assert model.score(X[60:], labels[60:], sample_weight=w) == pytest.approx(
        skm.accuracy_score(labels[60:], pred, sample_weight=w), rel=1e-12
    )
    wrong = (pred != labels[60:]).astype(np.float64)
    if wrong.any():  # weighting only the mistakes drives the score to zero
        assert model.score(X[60:], labels[60:], sample_weight=wrong) == 0.0
