"""cross_validate: stratified, reproducible k-fold evaluation returning per-fold matrices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.neighbors import NearestCentroid as SkNearestCentroid

from aioforest.data import Dataset
from aioforest.datasets import load_iris
from aioforest.evaluation import (
    ConfusionMatrix,
    accuracy,
    clone_estimator,
    cross_validate,
    cross_validated_metric,
)

IRIS_CLASSES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")


class NearestCentroid:
    """Tiny deterministic classifier: predict the class whose training mean is closest."""

    def __init__(self, shrink: float = 0.0, on_predict: Callable[[Any], None] | None = None):
        self.shrink = shrink
        self.on_predict = on_predict
        self.centroids_: npt.NDArray[np.float64] | None = None

    def get_params(self) -> dict[str, Any]:
        return {"shrink": self.shrink, "on_predict": self.on_predict}

    def fit(self, X: Any, y: Any = None) -> NearestCentroid:
        if y is None:  # an aioforest Dataset
            X, y = X.X, X.y
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        self.classes_: npt.NDArray[Any] = np.unique(y)
        overall = X.mean(axis=0)
        self.centroids_ = np.array(
            [
                (1 - self.shrink) * X[y == c].mean(axis=0) + self.shrink * overall
                for c in self.classes_
            ]
        )
        return self

    def predict(self, X: Any) -> npt.NDArray[Any]:
        assert self.centroids_ is not None, "predict before fit"
        X = np.asarray(X, dtype=np.float64)
        if self.on_predict is not None:
            self.on_predict(X)
        dist = ((X[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(self.classes_[np.argmin(dist, axis=1)])


class RandomGuesser:
    """Predicts labels drawn from its own seeded RNG: deterministic only if seeding is honoured."""

    def __init__(self, random_state: int | np.random.Generator | None = None) -> None:
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"random_state": self.random_state}

    def fit(self, X: Any, y: Any) -> RandomGuesser:
        self.classes_ = np.unique(y)
        self.rng_ = np.random.default_rng(self.random_state)
        return self

    def predict(self, X: Any) -> npt.NDArray[Any]:
        return self.rng_.choice(self.classes_, size=len(X))


class NoParams:
    """An estimator without get_params: cloned with deepcopy, keeping its constructor state."""

    def __init__(self, constant: str) -> None:
        self.constant = constant
        self.fitted = False

    def fit(self, X: Any, y: Any) -> None:
        self.fitted = True

    def predict(self, X: Any) -> list[str]:
        return [self.constant] * len(X)


@pytest.fixture(scope="module")
def iris_ds() -> Dataset:
    return load_iris()


@pytest.fixture(scope="module")
def iris(iris_ds: Dataset) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    assert iris_ds.y is not None
    return np.asarray(iris_ds.X), np.asarray(iris_ds.y)


def test_dataset_input_fits_on_datasets_and_predicts_on_x(iris_ds: Dataset) -> None:
    calls: list[tuple[str, type, int]] = []

    class Spy(NearestCentroid):
        def fit(self, X: Any, y: Any = None) -> Spy:
            assert y is None
            calls.append(("fit", type(X), len(X)))
            super().fit(X)
            return self

        def predict(self, X: Any) -> npt.NDArray[Any]:
            calls.append(("predict", type(X), len(X)))
            return super().predict(X)

    cms = cross_validate(Spy(), iris_ds, folds=5, random_state=0)
    assert calls == [("fit", Dataset, 120), ("predict", np.ndarray, 30)] * 5
    assert sum(cm.total for cm in cms) == 150
    for cm in cms:
        assert cm.labels == IRIS_CLASSES
        assert cm.counts.sum(axis=1).tolist() == [10, 10, 10]
    mean, variance = cross_validated_metric(cms)
    assert 0.85 <= mean <= 1.0
    assert 0.0 <= variance <= 0.03


def test_dataset_and_array_inputs_give_the_same_folds(
    iris_ds: Dataset, iris: tuple[npt.NDArray[Any], npt.NDArray[Any]]
) -> None:
    X, y = iris
    for stratified in (True, False):
        from_ds = cross_validate(NearestCentroid(), iris_ds, stratified=stratified, random_state=4)
        from_arrays = cross_validate(NearestCentroid(), X, y, stratified=stratified, random_state=4)
        assert from_ds == from_arrays


def test_dataset_input_errors(iris_ds: Dataset) -> None:
    assert iris_ds.y is not None
    with pytest.raises(ValueError, match="y must be None when data is a Dataset"):
        cross_validate(NearestCentroid(), iris_ds, iris_ds.y)
    unlabelled = iris_ds.with_labels(None)
    with pytest.raises(ValueError, match="needs a labelled Dataset"):
        cross_validate(NearestCentroid(), unlabelled)
    regression = Dataset.from_arrays(np.arange(20.0).reshape(10, 2), np.arange(10.0))
    with pytest.raises(ValueError, match="regression targets"):
        cross_validate(NearestCentroid(), regression)


def test_iris_five_stratified_folds(iris: tuple[npt.NDArray[Any], npt.NDArray[Any]]) -> None:
    X, y = iris
    cms = cross_validate(NearestCentroid(), X, y, folds=5, random_state=0)
    assert len(cms) == 5
    assert all(isinstance(cm, ConfusionMatrix) for cm in cms)
    assert all(cm.labels == IRIS_CLASSES for cm in cms)
    # Every row is tested exactly once across the folds...
    assert sum(cm.total for cm in cms) == 150
    assert sum(cms).counts.sum(axis=1).tolist() == [50, 50, 50]  # type: ignore[union-attr]
    # ...and each fold holds each class in proportion: 50 per class / 5 folds.
    for cm in cms:
        assert cm.counts.sum(axis=1).tolist() == [10, 10, 10]
    mean, variance = cross_validated_metric(cms, accuracy)
    assert 0.85 <= mean <= 1.0  # nearest centroid scores about 0.92 on iris
    assert 0.0 <= variance <= 0.03


def test_each_row_is_tested_exactly_once_and_never_trained_on_in_its_fold() -> None:
    n = 103  # not divisible by the fold count
    ids = np.arange(n, dtype=np.float64)
    X = np.column_stack([ids, np.zeros(n)])
    y = np.where(ids % 3 == 0, "p", "q")
    tested: list[npt.NDArray[np.float64]] = []

    class Recorder(NearestCentroid):
        def fit(self, X: Any, y: Any = None) -> Recorder:
            self.train_ids_ = set(np.asarray(X)[:, 0].tolist())
            super().fit(X, y)
            return self

        def predict(self, X: Any) -> npt.NDArray[Any]:
            test_ids = np.asarray(X)[:, 0]
            assert self.train_ids_.isdisjoint(test_ids.tolist())
            assert len(self.train_ids_) + len(test_ids) == n
            tested.append(test_ids)
            return super().predict(X)

    cms = cross_validate(Recorder(), X, y, folds=4, random_state=3)
    assert np.array_equal(np.sort(np.concatenate(tested)), ids)
    assert sum(cm.total for cm in cms) == n
    sizes = [len(t) for t in tested]
    assert len(sizes) == 4
    assert max(sizes) - min(sizes) <= 2  # stratification rounds per class: 2 classes here


def test_same_random_state_gives_identical_folds_and_matrices(
    iris: tuple[npt.NDArray[Any], npt.NDArray[Any]],
) -> None:
    X, y = iris
    seen: dict[int, list[list[float]]] = {1: [], 2: [], 3: []}

    def record(run: int) -> Callable[[Any], None]:
        return lambda batch: seen[run].append(np.asarray(batch).sum(axis=1).tolist())

    first = cross_validate(NearestCentroid(on_predict=record(1)), X, y, random_state=42)
    second = cross_validate(NearestCentroid(on_predict=record(2)), X, y, random_state=42)
    cross_validate(NearestCentroid(on_predict=record(3)), X, y, random_state=43)
    assert first == second
    assert seen[1] == seen[2]
    assert seen[1] != seen[3]


def test_estimator_randomness_is_reproducible_and_independent_of_n_jobs(
    iris: tuple[npt.NDArray[Any], npt.NDArray[Any]],
) -> None:
    X, y = iris
    runs = [
        cross_validate(RandomGuesser(random_state=7), X, y, random_state=1, n_jobs=jobs)
        for jobs in (None, 1, 2, -1)
    ]
    assert all(run == runs[0] for run in runs)
    # A guesser is bad: this also proves the matrices are not trivially identical.
    mean, _ = cross_validated_metric(runs[0])
    assert mean < 0.6


def test_generator_random_state_is_copied_not_shared(
    iris: tuple[npt.NDArray[Any], npt.NDArray[Any]],
) -> None:
    X, y = iris
    gen = np.random.default_rng(5)
    state_before = gen.bit_generator.state
    estimator = RandomGuesser(random_state=gen)
    first = cross_validate(estimator, X, y, random_state=0)
    assert gen.bit_generator.state == state_before  # the caller's generator is untouched
    assert cross_validate(estimator, X, y, random_state=0, n_jobs=2) == first


def test_original_estimator_is_not_fitted(iris: tuple[npt.NDArray[Any], npt.NDArray[Any]]) -> None:
    X, y = iris
    estimator = NearestCentroid(shrink=0.25)
    cross_validate(estimator, X, y, random_state=0)
    assert estimator.centroids_ is None
    plain = NoParams("Iris-setosa")
    cms = cross_validate(plain, X, y, random_state=0)
    assert not plain.fitted
    assert [cm.counts.sum(axis=0).tolist() for cm in cms] == [[30, 0, 0]] * 5


def test_clone_estimator() -> None:
    original = NearestCentroid(shrink=0.5)
    copy = clone_estimator(original)
    assert type(copy) is NearestCentroid
    assert copy is not original
    assert copy.shrink == 0.5
    mutable = NearestCentroid(shrink=0.5)
    mutable.shrink = [0.5]  # type: ignore[assignment]
    assert clone_estimator(mutable).shrink is not mutable.shrink  # params are deep-copied

    class Handle:  # like a lock or a socket: refuses to be deep-copied
        def __call__(self, X: Any) -> None: ...

        def __deepcopy__(self, memo: object) -> Handle:
            raise TypeError("cannot pickle 'Handle' object")

    handle = Handle()
    assert clone_estimator(NearestCentroid(on_predict=handle)).on_predict is handle  # shared
    sk = SkNearestCentroid(shrink_threshold=0.1)
    sk_copy = clone_estimator(sk)
    assert sk_copy is not sk
    assert sk_copy.get_params() == sk.get_params()

    class Broken(NearestCentroid):
        def get_params(self) -> dict[str, Any]:
            return {"shrink": 0.0, "unknown": 1}

    with pytest.raises(TypeError, match=r"cannot clone Broken.*\['shrink', 'unknown'\]"):
        clone_estimator(Broken())


def test_scikit_learn_estimators_work(iris: tuple[npt.NDArray[Any], npt.NDArray[Any]]) -> None:
    X, y = iris
    ours = cross_validate(NearestCentroid(), X, y, random_state=9)
    theirs = cross_validate(SkNearestCentroid(), X, y, random_state=9)
    assert ours == theirs


def test_unstratified_unshuffled_folds_are_contiguous(
    iris: tuple[npt.NDArray[Any], npt.NDArray[Any]],
) -> None:
    X, y = iris  # sorted by class in the file
    cms = cross_validate(NearestCentroid(), X, y, stratified=False, shuffle=False)
    assert [cm.total for cm in cms] == [30] * 5
    # Fold 1 tests only setosa rows, yet its matrix carries all three labels so folds sum.
    assert cms[0].labels == IRIS_CLASSES
    assert cms[0].counts.sum(axis=1).tolist() == [30, 0, 0]
    assert sum(cms).total == 150  # type: ignore[union-attr]


def test_unexpected_predicted_labels_extend_the_matrix(
    iris: tuple[npt.NDArray[Any], npt.NDArray[Any]],
) -> None:
    X, y = iris
    cms = cross_validate(NoParams("unknown"), X, y, random_state=0)
    assert all(cm.labels == (*IRIS_CLASSES, "unknown") for cm in cms)
    assert all(accuracy(cm) == 0.0 for cm in cms)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"folds": 1}, ValueError, "folds must be an integer >= 2, got 1"),
        ({"folds": 2.5}, ValueError, "folds must be an integer >= 2"),
        ({"folds": 200}, ValueError, "cannot split 150 rows into 200 folds"),
        ({"random_state": True}, TypeError, "random_state must be"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be None, -1 or a positive int, got 0"),
        ({"y": None}, ValueError, "y is required"),
    ],
)
def test_bad_arguments(
    iris: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    kwargs: dict[str, Any],
    error: type[Exception],
    pattern: str,
) -> None:
    X, y = iris
    call: dict[str, Any] = {"y": y, **kwargs}
    with pytest.raises(error, match=pattern):
        cross_validate(NearestCentroid(), X, **call)


def test_bad_shapes(iris: tuple[npt.NDArray[Any], npt.NDArray[Any]]) -> None:
    X, y = iris
    with pytest.raises(ValueError, match=r"X must be a 2-D array.*\(150,\)"):
        cross_validate(NearestCentroid(), X[:, 0], y)
    with pytest.raises(ValueError, match="same number of rows, got 150 and 149"):
        cross_validate(NearestCentroid(), X, y[:-1])
    with pytest.raises(ValueError, match=r"y must be 1-D"):
        cross_validate(NearestCentroid(), X, y[:, None])


def test_fold_errors_say_which_fold(iris: tuple[npt.NDArray[Any], npt.NDArray[Any]]) -> None:
    X, y = iris

    class ShortPredictions(NearestCentroid):
        def predict(self, X: Any) -> npt.NDArray[Any]:
            return super().predict(X)[:-1]

    with pytest.raises(
        ValueError, match=r"predict returned shape \(29,\) for 30 test rows"
    ) as info:
        cross_validate(ShortPredictions(), X, y, random_state=0)
    assert "(in cross-validation fold 1 of 5)" in info.value.__notes__

    class FailsInFit(NearestCentroid):
        def fit(self, X: Any, y: Any = None) -> FailsInFit:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as info2:
        cross_validate(FailsInFit(), X, y, random_state=0, n_jobs=2)
    assert any("fold" in note for note in info2.value.__notes__)
