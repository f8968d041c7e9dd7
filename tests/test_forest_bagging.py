"""BaggingClassifier: GoLearn's BaggedModel, deterministic, with feature subsets per member."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from forest_helpers import assert_same_tree, classification_data
from sklearn.neighbors import KNeighborsClassifier

from aioforest import BaggingClassifier, DecisionTreeClassifier

F64 = npt.NDArray[np.float64]


class SignOfFirstColumn:
    """Votes class code 1 when the first column it sees is positive, else 0."""

    def fit(self, X: F64, y: npt.NDArray[np.int64]) -> SignOfFirstColumn:
        return self

    def predict(self, X: F64) -> npt.NDArray[np.int64]:
        return (np.asarray(X)[:, 0] > 0).astype(np.int64)


class Recorder:
    """Remembers what it was fitted on; predicts class code 0."""

    def fit(self, X: F64, y: npt.NDArray[Any]) -> Recorder:
        self.X_seen = np.array(X)
        self.y_seen = np.array(y)
        return self

    def predict(self, X: F64) -> npt.NDArray[np.int64]:
        return np.zeros(len(X), dtype=np.int64)


def _data() -> tuple[F64, npt.NDArray[np.int64]]:
    return classification_data(n=150, d=5, seed=21)


def _draws(bag: BaggingClassifier) -> tuple[list[list[int]], list[list[int]]]:
    return (
        [list(map(int, f)) for f in bag.estimators_features_],
        [list(map(int, r)) for r in bag.estimators_samples_],
    )


def test_fixed_random_state_is_deterministic_with_aioforest_trees() -> None:
    X, y = _data()

    def make(seed: int) -> BaggingClassifier:
        return BaggingClassifier(
            DecisionTreeClassifier(), n_estimators=6, max_features=3, random_state=seed
        ).fit(X, y)

    a, b, c = make(4), make(4), make(5)
    assert _draws(a) == _draws(b)
    for ma, mb in zip(a.estimators_, b.estimators_, strict=True):
        assert_same_tree(ma.tree_, mb.tree_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert _draws(a) != _draws(c)
    assert a.score(X, y) > 0.9


def test_members_see_only_their_rows_and_features_paired_with_their_labels() -> None:
    X, y = _data()
    labels = np.array(["x", "y", "z"], dtype=object)[y]
    bag = BaggingClassifier(Recorder(), n_estimators=5, max_features=2, random_state=1)
    bag.fit(X, labels)
    assert list(bag.classes_) == ["x", "y", "z"]
    for member, feats, rows in zip(
        bag.estimators_, bag.estimators_features_, bag.estimators_samples_, strict=True
    ):
        assert len(feats) == 2 and len(set(feats.tolist())) == 2
        assert len(rows) == len(y)
        np.testing.assert_array_equal(member.X_seen, X[np.ix_(rows, feats)])
        # Labels stay paired with their rows (GoLearn's bootstrap views mixed them up).
        np.testing.assert_array_equal(bag.classes_[member.y_seen], labels[rows])
    assert len({tuple(f) for f in bag.estimators_features_}) > 1


def test_members_are_fitted_on_their_feature_subset_only() -> None:
    X, y = _data()
    for estimator in (DecisionTreeClassifier(), KNeighborsClassifier(n_neighbors=3)):
        bag = BaggingClassifier(estimator, n_estimators=4, max_features=0.4, random_state=2)
        bag.fit(X, y)
        assert all(m.n_features_in_ == 2 for m in bag.estimators_)
        # Member votes recomputed from each member's own columns give the bag's answer.
        votes = np.zeros((len(X), 3), dtype=np.int64)
        for m, feats in zip(bag.estimators_, bag.estimators_features_, strict=True):
            votes[np.arange(len(X)), m.predict(X[:, feats])] += 1
        np.testing.assert_array_equal(bag.predict_proba(X), votes / 4)
        np.testing.assert_array_equal(bag.predict(X), bag.classes_[votes.argmax(axis=1)])


def test_majority_vote_ties_go_to_the_class_that_sorts_first() -> None:
    X_train = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    y_train = np.array(["b", "a", "b", "a"], dtype=object)
    # Find (deterministically) a seed whose two members see different columns.
    for seed in range(50):
        bag = BaggingClassifier(
            SignOfFirstColumn(), n_estimators=2, max_features=1, random_state=seed
        ).fit(X_train, y_train)
        if {int(f[0]) for f in bag.estimators_features_} == {0, 1}:
            break
    else:
        pytest.fail("no seed in range(50) gives members with different features")
    assert list(bag.classes_) == ["a", "b"]
    X = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    proba = bag.predict_proba(X)
    np.testing.assert_array_equal(proba, [[0.5, 0.5], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0]])
    # Both tied rows go to "a", whichever member voted for it.
    assert bag.predict(X).tolist() == ["a", "a", "b", "a"]


@pytest.mark.parametrize(
    "estimator",
    [
        # Slow: each pool process has to import scikit-learn to unpickle the estimator.
        pytest.param(KNeighborsClassifier(n_neighbors=3), id="sklearn-knn",
                     marks=pytest.mark.slow),
        pytest.param(DecisionTreeClassifier(max_depth=4), id="aioforest-tree"),
    ],
)
def test_n_jobs_two_gives_the_same_votes(estimator: Any) -> None:
    X, y = _data()
    kw: dict[str, Any] = {"n_estimators": 6, "max_features": 3, "random_state": 7}
    one = BaggingClassifier(estimator, n_jobs=1, **kw).fit(X, y)
    two = BaggingClassifier(estimator, n_jobs=2, **kw).fit(X, y)
    assert _draws(one) == _draws(two)
    np.testing.assert_array_equal(one.predict_proba(X), two.predict_proba(X))
    np.testing.assert_array_equal(one.predict(X), two.predict(X))


def test_default_estimator_subspace_alias_and_parameter_errors() -> None:
    X, y = _data()
    default = BaggingClassifier(n_estimators=3, feature_subspace=2, random_state=0).fit(X, y)
    assert all(isinstance(m, DecisionTreeClassifier) for m in default.estimators_)
    alias = BaggingClassifier(n_estimators=3, max_features=2, random_state=0).fit(X, y)
    assert _draws(default) == _draws(alias)
    with pytest.raises(ValueError, match="feature_subspace"):
        BaggingClassifier(max_features=2, feature_subspace=3).fit(X, y)
    with pytest.raises(ValueError, match="n_estimators"):
        BaggingClassifier(n_estimators=0).fit(X, y)
    with pytest.raises(ValueError, match="max_features"):
        BaggingClassifier(max_features=9).fit(X, y)
    with pytest.raises(TypeError, match="fit and predict"):
        BaggingClassifier(estimator=object()).fit(X, y)


def test_without_bootstrap_each_member_sees_every_row_once() -> None:
    X, y = _data()
    bag = BaggingClassifier(
        Recorder(), n_estimators=3, bootstrap=False, random_state=0
    ).fit(X, y)
    for rows, member in zip(bag.estimators_samples_, bag.estimators_, strict=True):
        np.testing.assert_array_equal(rows, np.arange(len(y)))
        np.testing.assert_array_equal(member.X_seen, X)
