"""``BaggingClassifier``: GoLearn's ``meta.BaggedModel``, done deterministically.

Each member model ``i`` is a clone of ``estimator`` fitted on a bootstrap sample of rows and,
optionally, a random subset of features, both drawn from ``tree_key(seed, i)``. Rows are
materialised before fitting, so features and labels stay paired (GoLearn's bootstrap views
paired them wrongly). Prediction is a majority vote; ties go to the class that sorts first.
"""

from __future__ import annotations

import math
from concurrent.futures import as_completed
from typing import Any

import numpy as np
import numpy.typing as npt

from .._base import BaseEstimator
from .._validation import check_int, resolve_count, resolve_max_features, resolve_seed
from ..data import as_dataset
from ..evaluation import accuracy_score, clone
from ..tree import DecisionTreeClassifier, tree_key
from ._pool import effective_n_jobs, get_executor

__all__ = ["BaggingClassifier"]


def _member_draw(
    seed: int, index: int, n: int, n_draws: int, d: int, n_feats: int, bootstrap: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(tree_key(seed, index))
    rows = rng.integers(0, n, n_draws) if bootstrap else rng.permutation(n)[:n_draws]
    rows.sort()
    feats = np.arange(d) if n_feats >= d else np.sort(rng.choice(d, n_feats, replace=False))
    return rows.astype(np.int64), feats.astype(np.int64)


def _fit_members(
    estimator: Any, X: npt.NDArray[Any], y: npt.NDArray[Any], draws: list[tuple[int, Any, Any]],
    seed: int,
) -> list[tuple[int, Any]]:
    out = []
    for index, rows, feats in draws:
        model: Any = clone(estimator)
        if "random_state" in getattr(model, "get_params", dict)():
            model.set_params(random_state=tree_key(seed, index) >> 33)
        model.fit(X[np.ix_(rows, feats)], y[rows])
        out.append((index, model))
    return out


class BaggingClassifier(BaseEstimator):
    """Bagging of any classifier with ``fit``/``predict``.

    ``max_features`` (or its GoLearn name ``feature_subspace``; give one of them) is the
    number (int) or fraction (float) of features each member sees, drawn without
    replacement once per member. Members are fitted on the process pool when ``n_jobs`` is
    more than one (the estimator must then be picklable).
    """

    _estimator_type = "classifier"

    def __init__(
        self,
        estimator: Any = None,
        n_estimators: int = 10,
        *,
        max_samples: int | float = 1.0,
        max_features: int | float | None = None,
        feature_subspace: int | float | None = None,
        bootstrap: bool = True,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.feature_subspace = feature_subspace
        self.bootstrap = bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: object, y: object = None) -> BaggingClassifier:
        ds = as_dataset(X, y, task="classification")
        if ds.y is None:
            raise ValueError("y is required unless X is a Dataset with labels")
        Xa = np.asarray(ds.encoded())
        labels = np.asarray(ds.y)
        n, d = Xa.shape
        n_models = check_int("n_estimators", self.n_estimators, 1)
        if self.max_features is not None and self.feature_subspace is not None and (
            self.max_features != self.feature_subspace
        ):
            raise ValueError("give max_features or feature_subspace (its GoLearn name), not both")
        per_model = self.max_features if self.max_features is not None else self.feature_subspace
        n_feats = d if per_model is None else resolve_max_features(per_model, d)
        n_draws = resolve_count("max_samples", self.max_samples, n, 1)
        if n_draws > n and not self.bootstrap:
            raise ValueError(
                f"max_samples={n_draws} is more than the {n} samples without bootstrap"
            )
        estimator = self.estimator if self.estimator is not None else DecisionTreeClassifier()
        if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
            raise TypeError(f"estimator must have fit and predict, got {type(estimator).__name__}")
        self.classes_, y_codes = np.unique(labels, return_inverse=True)
        seed = resolve_seed(self.random_state)
        draws = [
            (i, *_member_draw(seed, i, n, n_draws, d, n_feats, self.bootstrap))
            for i in range(n_models)
        ]
        n_workers = min(effective_n_jobs(self.n_jobs), n_models)
        fitted: dict[int, Any] = {}
        if n_workers == 1:
            fitted.update(_fit_members(estimator, Xa, y_codes, draws, seed))
        else:
            executor = get_executor(n_workers)
            per_task = math.ceil(n_models / n_workers)
            futures = [
                executor.submit(_fit_members, estimator, Xa, y_codes,
                                draws[i : i + per_task], seed)
                for i in range(0, n_models, per_task)
            ]
            for fut in as_completed(futures):
                fitted.update(fut.result())
        self.estimators_ = [fitted[i] for i in range(n_models)]
        self.estimators_features_ = [feats for _, _, feats in draws]
        self.estimators_samples_ = [rows for _, rows, _ in draws]
        self.features_ = ds.features
        self.n_features_in_ = d
        return self

    def _votes(self, X: object) -> npt.NDArray[np.int64]:
        if not hasattr(self, "estimators_"):
            from .._base import not_fitted_error

            raise not_fitted_error(self)
        from ..data import encode_features

        Xa = np.asarray(encode_features(X, self.features_), dtype=np.float64)
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {Xa.shape[1]} features, expected {self.n_features_in_}")
        k = self.classes_.size
        votes = np.zeros((Xa.shape[0], k), dtype=np.int64)
        rows = np.arange(Xa.shape[0])
        for model, feats in zip(self.estimators_, self.estimators_features_, strict=True):
            pred = np.asarray(model.predict(Xa[:, feats])).astype(np.int64)
            votes[rows, pred] += 1
        return votes

    def predict_proba(self, X: object) -> npt.NDArray[np.float64]:
        """The fraction of members voting for each class."""
        votes = self._votes(X)
        share: npt.NDArray[np.float64] = votes / votes.sum(axis=1, keepdims=True)
        return share

    def predict(self, X: object) -> npt.NDArray[Any]:
        """Majority vote; a tie goes to the class that sorts first."""
        votes = self._votes(X)
        labels: npt.NDArray[Any] = self.classes_[np.argmax(votes, axis=1)]
        return labels

    def score(self, X: object, y: object, sample_weight: npt.ArrayLike | None = None) -> float:
        """The (weighted) accuracy of ``predict(X)`` against ``y``: ``accuracy_score``."""
        return accuracy_score(np.asarray(y), self.predict(X), sample_weight=sample_weight)
