"""The one clone: scikit-learn's semantics for aioforest and foreign estimators alike."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone as sk_clone
from sklearn.neighbors import KNeighborsClassifier

from aioforest.ensemble import BaggingClassifier
from aioforest.evaluation import clone, clone_estimator
from aioforest.tree import DecisionTreeClassifier


def test_one_clone_under_both_names() -> None:
    assert clone is clone_estimator


def test_nested_estimators_are_cloned_unfitted_not_deep_copied() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    inner = DecisionTreeClassifier(max_depth=2).fit(X, y)
    foreign = KNeighborsClassifier(n_neighbors=3).fit(X, y)
    for nested in (inner, foreign):
        bag = BaggingClassifier(nested, n_estimators=3, random_state=1)
        copy = clone(bag)
        assert copy.estimator is not nested
        assert copy.get_params(deep=True).keys() == sk_clone(bag).get_params(deep=True).keys()
        assert not hasattr(copy.estimator, "classes_")  # unfitted, as sklearn's clone gives


def test_bagging_a_foreign_estimator_clones_it_per_member() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    base = KNeighborsClassifier(n_neighbors=3)
    bag = BaggingClassifier(base, n_estimators=4, random_state=0).fit(X, y)
    members = bag.estimators_
    assert len({id(m) for m in members}) == 4 and all(m is not base for m in members)
    assert not hasattr(base, "classes_")
