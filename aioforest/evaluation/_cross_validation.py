"""k-fold cross-validation producing one ConfusionMatrix per fold.

GoLearn's ``GenerateCrossFoldValidationConfusionMatrices`` gave each row a random fold (unequal
and unstratified, from the global RNG) and refitted one shared classifier object. Here folds come
from :class:`aioforest.data.StratifiedKFold` (or :class:`~aioforest.data.KFold`) seeded by
``random_state``, and every fold fits its own fresh clone, so the result depends only on the
inputs, never on fold execution order or ``n_jobs``.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from aioforest._base import clone
from aioforest._validation import check_int
from aioforest.data import Dataset, IndexArray, KFold, RandomState, StratifiedKFold

from ._confusion import ConfusionMatrix, confusion_matrix, sort_labels

__all__ = ["SupportsFitPredict", "clone", "clone_estimator", "cross_validate"]


class SupportsFitPredict(Protocol):
    """An estimator: ``fit(dataset)`` or ``fit(X, y)``, then ``predict(X)`` → labels.

    Estimators that also have ``get_params()`` are cloned by re-construction from their params.
    """

    def fit(self, *args: Any, **kwargs: Any) -> object: ...

    def predict(self, X: Any, /) -> Any: ...


# (actual labels, predictions) for one fold's test rows.
_Pair = tuple[npt.NDArray[Any], Any]


#: The one clone (scikit-learn's semantics), under its evaluation-package name.
clone_estimator = clone


def _resolve_n_jobs(n_jobs: int | None, folds: int) -> int:
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be None, -1 or a positive int, got {n_jobs!r}")
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    return min(n_jobs, folds)


@dataclass(frozen=True, eq=False)
class CVInputs:
    """Checked cross-validation inputs: the data, its labels and every fold's row indices."""

    dataset: Dataset | None  # the data, when it is a Dataset
    X: npt.NDArray[Any] | None  # the data, when it is an array
    labels: npt.NDArray[Any]
    splits: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]


def cv_inputs(
    data: object,
    y: object,
    *,
    folds: int,
    stratified: bool,
    random_state: RandomState,
    shuffle: bool,
) -> CVInputs:
    """Validate ``cross_validate``'s data and compute its folds (also used by the cluster).

    Every split is materialised up front so a bad split fails before any model is fitted.
    """
    check_int("folds", folds, 2)
    rows: Dataset | npt.NDArray[Any]  # what the splitter counts rows of
    dataset: Dataset | None = None
    X: npt.NDArray[Any] | None = None
    if isinstance(data, Dataset):
        if y is not None:
            raise ValueError("y must be None when data is a Dataset; its labels come from data.y")
        if data.y is None:
            raise ValueError("cross_validate needs a labelled Dataset, but data.y is None")
        if data.task == "regression":
            raise ValueError(
                "cross_validate scores classifiers with confusion matrices, but this Dataset "
                "holds regression targets (task='regression')"
            )
        dataset = rows = data
        labels = np.asarray(data.y)
    else:
        X = rows = np.asarray(data)
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D array (rows, features), got shape {X.shape}")
        if y is None:
            raise ValueError("y is required when data is an array rather than a Dataset")
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise ValueError(f"y must be 1-D, got an array of shape {labels.shape}")
        if len(labels) != len(X):
            raise ValueError(
                f"X and y must have the same number of rows, got {len(X)} and {len(labels)}"
            )
    if len(labels) < folds:
        raise ValueError(f"cannot split {len(labels)} rows into {folds} folds")
    splitter = (StratifiedKFold if stratified else KFold)(
        n_splits=folds, shuffle=shuffle, random_state=random_state
    )
    splits = [
        (np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64))
        for train, test in splitter.split(rows, labels)
    ]
    return CVInputs(dataset=dataset, X=X, labels=labels, splits=splits)


def cross_validate(
    estimator: SupportsFitPredict,
    data: Dataset | npt.ArrayLike,
    y: npt.ArrayLike | None = None,
    *,
    folds: int = 5,
    stratified: bool = True,
    random_state: RandomState = None,
    shuffle: bool = True,
    n_jobs: int | None = None,
) -> list[ConfusionMatrix]:
    """Fit a fresh clone of ``estimator`` per fold and count its predictions on the held-out rows.

    ``data`` is either an :class:`aioforest.data.Dataset` (``y`` must then be ``None``; each fold
    calls ``clone.fit(data.take(train_idx))`` and ``clone.predict(data.take(test_idx).X)``) or
    a 2-D array ``X`` with labels ``y`` (``clone.fit(X[train], y[train])`` and
    ``clone.predict(X[test])``).

    Returns one :class:`ConfusionMatrix` per fold, in fold order. Every matrix carries all labels
    of ``y`` (plus any other label the estimator predicted), so they can be summed with ``sum()``
    and each row of the data is counted in exactly one fold. Folds are stratified by label unless
    ``stratified=False``; the same ``random_state`` gives the same folds. ``n_jobs`` > 1 (or -1
    for all CPUs) fits folds in threads; results do not depend on it.

    Reproducibility: an int ``random_state`` fixes the folds. The estimator's own parameters
    (including its ``random_state``) are passed to every fold's clone unchanged, deep-copied so
    that no clone consumes another's random stream: with a deterministic estimator, the same
    ``random_state`` gives the same matrices, sequentially or in threads.
    """
    check_int("folds", folds, 2)
    workers = _resolve_n_jobs(n_jobs, folds)

    inputs = cv_inputs(
        data, y, folds=folds, stratified=stratified, random_state=random_state, shuffle=shuffle
    )
    labels_y, splits = inputs.labels, inputs.splits
    if inputs.dataset is not None:
        ds = inputs.dataset

        def fit_predict(model: SupportsFitPredict, train: IndexArray, test: IndexArray) -> _Pair:
            test_ds = ds.take(test)
            model.fit(ds.take(train))
            return np.asarray(test_ds.y), model.predict(test_ds.X)

    else:
        X = inputs.X
        assert X is not None

        def fit_predict(model: SupportsFitPredict, train: IndexArray, test: IndexArray) -> _Pair:
            model.fit(X[train], labels_y[train])
            return labels_y[test], model.predict(X[test])

    all_labels: tuple[Hashable, ...] = sort_labels(set(labels_y.tolist()))

    def run_fold(fold: int) -> ConfusionMatrix:
        train, test = splits[fold]
        try:
            model = clone(estimator)
            truth, predicted = fit_predict(model, train, test)
            predicted = np.asarray(predicted)
            if predicted.shape != (len(test),):
                raise ValueError(
                    f"{type(model).__name__}.predict returned shape {predicted.shape} for "
                    f"{len(test)} test rows; expected ({len(test)},)"
                )
            return confusion_matrix(truth, predicted).with_labels(all_labels)
        except Exception as exc:
            exc.add_note(f"(in cross-validation fold {fold + 1} of {len(splits)})")
            raise

    if workers == 1:
        return [run_fold(i) for i in range(len(splits))]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aioforest-cv") as pool:
        return list(pool.map(run_fold, range(len(splits))))
