"""Prediction and fitted state shared by single trees and forests.

A fitted model holds its trees (:class:`TreeArrays`), the bin edges learned at fit time
(``bins_``, so that new rows are binned exactly as the training rows were) and the feature
schema (``features_``, so that categorical values map to the same codes).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .._base import not_fitted_error
from .._validation import check_array_input
from ..data import Bins, Feature, encode_features
from ..evaluation import accuracy_score, r2_score
from ._arrays import TreeArrays
from ._predict import FlatForest

__all__ = ["ClassifierMixin", "RegressorMixin", "TreeModel"]

_FLAT: weakref.WeakKeyDictionary[Any, tuple[tuple[int, int, int], FlatForest]] = (
    weakref.WeakKeyDictionary()
)

F64 = npt.NDArray[np.float64]


M = TypeVar("M", bound=type)
#: Estimator classes that model files can hold, by class name (see :func:`register_model`).
_MODELS: dict[str, type] = {}
ModelWriter = Callable[[Any, "str | os.PathLike[str]"], None]
_WRITER: ModelWriter | None = None


def register_model(cls: M) -> M:
    """Class decorator: model files may hold instances of ``cls`` (looked up by name)."""
    if _MODELS.setdefault(cls.__name__, cls) is not cls:
        raise ValueError(f"another model class is already registered as {cls.__name__!r}")
    return cls


def model_classes() -> Mapping[str, type]:
    """The registered model classes by name (read-only)."""
    return MappingProxyType(_MODELS)


def set_model_writer(writer: ModelWriter) -> None:
    """Install what :meth:`TreeModel.save` calls: ``aioforest.persistence`` sits above the
    estimators (it knows them through :func:`model_classes`) and registers its ``save``
    here when imported, which importing any part of ``aioforest`` does."""
    global _WRITER
    _WRITER = writer


#: Predicts for a lazy collection of rows (a dask array or DataFrame) where it lives:
#: ``predictor(model, X, method)``; registered by ``aioforest.dask`` on import.
CollectionPredictor = Callable[[Any, Any, str], Any]
_COLLECTIONS: CollectionPredictor | None = None


def set_collection_predictor(predictor: CollectionPredictor) -> None:
    """Install what ``predict`` / ``predict_proba`` call for a dask collection (the Dask
    backend sits above the estimators and registers itself when ``aioforest`` is
    imported, without importing dask)."""
    global _COLLECTIONS
    _COLLECTIONS = predictor


def _is_collection(X: object) -> bool:
    return _COLLECTIONS is not None and hasattr(type(X), "__dask_graph__") and hasattr(
        X, "to_delayed")


class TreeModel:
    """Mixin: the fitted state of one or more trees, and vectorised prediction over them."""

    trees_: list[TreeArrays]
    bins_: Bins
    features_: tuple[Feature, ...]
    n_features_in_: int

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "trees_"):
            raise not_fitted_error(self)

    def _flat_forest(self) -> FlatForest:
        # Cached outside the instance's __dict__, so that predicting never changes the
        # estimator's state (scikit-learn checks that).
        self._check_is_fitted()
        key = (id(self.trees_), len(self.trees_), id(self.bins_))
        cached = _FLAT.get(self)
        if cached is None or cached[0] != key:
            flat = self._build_flat_forest()
            flat.adopt_values(self.trees_)  # the leaf values once, not twice
            cached = (key, flat)
            _FLAT[self] = cached
        return cached[1]

    def _build_flat_forest(self) -> FlatForest:
        """The prediction table of the trees (forests with a pool build it in shared
        memory)."""
        return FlatForest(self.trees_, self.bins_)

    def _flat_forest_ready(self) -> bool:
        """Whether :meth:`_flat_forest` would return at once (nothing to build)."""
        cached = _FLAT.get(self)
        trees = getattr(self, "trees_", None)
        return (cached is not None and trees is not None
                and cached[0] == (id(trees), len(trees), id(self.bins_)))

    def _encode(self, X: object) -> F64:
        self._check_is_fitted()
        check_array_input(X)
        shape = getattr(X, "shape", None)
        if shape is not None and len(shape) == 2 and shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return np.asarray(encode_features(X, self.features_), dtype=np.float64)

    def _mean_value(self, X: object) -> F64:
        return self._flat_forest().mean_value(self._encode(X))

    def apply(self, X: object) -> npt.NDArray[np.int64]:
        """The leaf index reached in each tree, shape (n_samples, n_trees)."""
        flat = self._flat_forest()
        return flat.leaves(self._encode(X)) - flat.roots[None, :]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted model to ``path``; read it back with :func:`aioforest.load`."""
        if _WRITER is None:
            raise RuntimeError("no model writer is registered: import aioforest.persistence")
        _WRITER(self, path)

    @property
    def feature_importances_(self) -> F64:
        """Mean decrease in impurity, normalised per tree, averaged, normalised again."""
        self._check_is_fitted()
        total = np.zeros(self.n_features_in_)
        for tree in self.trees_:
            split = tree.feature >= 0
            imp = np.bincount(
                tree.feature[split], weights=tree.improvement[split], minlength=self.n_features_in_
            )
            s = imp.sum()
            if s > 0:
                total += imp / s
        s = total.sum()
        return total / s if s > 0 else total


class ClassifierMixin(TreeModel):
    """``predict``/``predict_proba``/``score`` for classifiers."""

    classes_: npt.NDArray[Any]
    _estimator_type = "classifier"

    @property
    def n_classes_(self) -> int:
        return int(self.classes_.size)

    def predict_proba(self, X: object) -> F64:
        """Class probabilities: the mean over trees of the leaf class frequencies (for a
        dask collection, a dask array computed on the workers)."""
        if _is_collection(X):
            assert _COLLECTIONS is not None
            return _COLLECTIONS(self, X, "predict_proba")  # type: ignore[no-any-return]
        return self._mean_value(X)

    def predict(self, X: object) -> npt.NDArray[Any]:
        """The most probable class; ties go to the class that sorts first (for a dask
        collection, a dask array computed on the workers)."""
        if _is_collection(X):
            assert _COLLECTIONS is not None
            return _COLLECTIONS(self, X, "predict")  # type: ignore[no-any-return]
        proba = self.predict_proba(X)
        labels: npt.NDArray[Any] = self.classes_[np.argmax(proba, axis=1)]
        return labels

    def score(self, X: object, y: object, sample_weight: npt.ArrayLike | None = None) -> float:
        """The (weighted) accuracy of ``predict(X)`` against ``y``: ``accuracy_score``."""
        return accuracy_score(np.asarray(y), self.predict(X), sample_weight=sample_weight)


class RegressorMixin(TreeModel):
    """``predict``/``score`` for regressors."""

    _estimator_type = "regressor"

    def predict(self, X: object) -> F64:
        """The mean over trees of the leaf values (for a dask collection, a dask array
        computed on the workers)."""
        if _is_collection(X):
            assert _COLLECTIONS is not None
            return _COLLECTIONS(self, X, "predict")  # type: ignore[no-any-return]
        return self._mean_value(X)[:, 0]

    def score(self, X: object, y: object, sample_weight: npt.ArrayLike | None = None) -> float:
        """The coefficient of determination R^2 (see :func:`~aioforest.evaluation.r2_score`)."""
        return r2_score(np.asarray(y), self.predict(X), sample_weight=sample_weight)
