"""Single decision trees: ``DecisionTreeClassifier`` and ``DecisionTreeRegressor``.

A tree is grown by the same level-wise histogram engine as the forests (a forest of one tree,
without bootstrap). ``DecisionTreeClassifier(criterion="entropy", max_features=None)`` is
GoLearn's ID3 tree, with its bugs fixed: every threshold is considered, and the split
attribute is compared against every other one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base import BaseEstimator
from .._validation import (
    UNLIMITED_DEPTH,
    Prepared,
    check_criterion,
    check_fraction,
    check_int,
    check_min_impurity_decrease,
    prepare,
    resolve_class_weight,
    resolve_count,
    resolve_max_features,
    resolve_seed,
)
from ..data import Binner, Bins
from ._arrays import TreeArrays
from ._model import ClassifierMixin, RegressorMixin, TreeModel, register_model
from ._plan import ForestPlan, fit_trees

__all__ = ["DecisionTreeClassifier", "DecisionTreeRegressor", "plan_for"]


def plan_for(
    est: Any,
    prep: Prepared,
    *,
    seed: int,
    bootstrap: bool,
    max_samples: object = None,
    feature_subspace: object = None,
) -> ForestPlan:
    """Validate an estimator's growth parameters against the data; resolve them to a plan."""
    classification = prep.classes is not None
    n, d = prep.X.shape
    criterion = check_criterion(est.criterion, classification)
    max_depth = (
        UNLIMITED_DEPTH if est.max_depth is None else check_int("max_depth", est.max_depth, 1)
    )
    min_split = resolve_count("min_samples_split", est.min_samples_split, n, 2)
    min_leaf = resolve_count("min_samples_leaf", est.min_samples_leaf, n, 1)
    n_draws = n if max_samples is None else resolve_count("max_samples", max_samples, n, 1)
    if max_samples is not None and isinstance(max_samples, int) and max_samples > n:
        raise ValueError(f"max_samples={max_samples} is more than the {n} samples of X")
    subspace = (
        None
        if feature_subspace is None
        else resolve_max_features(feature_subspace, d, name="feature_subspace")
    )
    class_weight = (
        resolve_class_weight(est.class_weight, prep.classes,  # type: ignore[arg-type]
                             prep.counts_per_class())
        if classification
        else None
    )
    return ForestPlan(
        criterion=criterion,
        n_classes=int(prep.classes.size) if prep.classes is not None else 0,
        max_depth=max_depth,
        min_samples_split=min_split,
        min_samples_leaf=min_leaf,
        min_weight_fraction_leaf=check_fraction(
            "min_weight_fraction_leaf", est.min_weight_fraction_leaf, 0.5
        ),
        min_impurity_decrease=check_min_impurity_decrease(est.min_impurity_decrease),
        max_features=resolve_max_features(est.max_features, subspace or d),
        bootstrap=bool(bootstrap),
        n_draws=n_draws,
        feature_subspace=subspace,
        class_weight=class_weight,
        seed=seed,
    )


class _BaseDecisionTree(BaseEstimator, TreeModel):
    _classification: bool
    random_state: Any
    max_bins: int

    def fit(self, X: object, y: object = None, sample_weight: object = None) -> Any:
        """Grow the tree on ``X`` (array, DataFrame or Dataset) and ``y``."""
        prep = prepare(X, y, sample_weight, classification=self._classification)
        plan = plan_for(self, prep, seed=resolve_seed(self.random_state), bootstrap=False)
        bins, codes = Binner(self.max_bins).fit_transform(
            prep.X, prep.is_categorical, prep.n_categories, prep.sample_weight
        )
        (tree,) = fit_trees(plan, bins, codes, prep.y, prep.sample_weight, [0])
        self._set_fitted(prep, bins, tree)
        return self

    def _set_fitted(self, prep: Prepared, bins: Bins, tree: TreeArrays) -> None:
        self.tree_ = tree
        self.trees_ = [tree]
        self.bins_ = bins
        self.features_ = prep.features
        self.n_features_in_ = prep.X.shape[1]
        if prep.feature_names is not None:
            self.feature_names_in_ = np.array(prep.feature_names, dtype=object)
        if prep.classes is not None:
            self.classes_ = prep.classes

    def get_depth(self) -> int:
        self._check_is_fitted()
        return self.tree_.max_depth

    def get_n_leaves(self) -> int:
        self._check_is_fitted()
        return self.tree_.n_leaves


@register_model
class DecisionTreeClassifier(_BaseDecisionTree, ClassifierMixin):
    """A classification tree grown level by level on binned features.

    Parameters follow scikit-learn. ``criterion="entropy"`` grows ID3-style trees
    (information gain); ``max_features`` features are drawn at each node (None: all).
    Categorical features split natively; missing values learn their own direction.
    """

    _classification = True

    def __init__(
        self,
        *,
        criterion: str = "gini",
        max_depth: int | None = None,
        min_samples_split: int | float = 2,
        min_samples_leaf: int | float = 1,
        min_weight_fraction_leaf: float = 0.0,
        min_impurity_decrease: float = 0.0,
        max_features: int | float | str | None = None,
        class_weight: dict[Any, float] | str | None = None,
        max_bins: int = 255,
        random_state: int | None = None,
    ) -> None:
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.min_impurity_decrease = min_impurity_decrease
        self.max_features = max_features
        self.class_weight = class_weight
        self.max_bins = max_bins
        self.random_state = random_state


@register_model
class DecisionTreeRegressor(_BaseDecisionTree, RegressorMixin):
    """A regression tree (squared error) grown level by level on binned features."""

    _classification = False

    def __init__(
        self,
        *,
        criterion: str = "squared_error",
        max_depth: int | None = None,
        min_samples_split: int | float = 2,
        min_samples_leaf: int | float = 1,
        min_weight_fraction_leaf: float = 0.0,
        min_impurity_decrease: float = 0.0,
        max_features: int | float | str | None = None,
        max_bins: int = 255,
        random_state: int | None = None,
    ) -> None:
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.min_impurity_decrease = min_impurity_decrease
        self.max_features = max_features
        self.max_bins = max_bins
        self.random_state = random_state

    class_weight = None  # regression has no classes; plan_for reads this
