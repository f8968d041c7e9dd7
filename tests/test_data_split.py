"""train_test_split, KFold, StratifiedKFold and split_rows: partitions, balance, determinism."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioforest import datasets
from aioforest.data import (
    Dataset,
    KFold,
    StratifiedKFold,
    split_rows,
    train_test_split,
)


def labels_of(ds: Dataset) -> list[Any]:
    assert ds.y is not None
    return list(ds.y.tolist())


# --------------------------------------------------------------------------- train/test


def test_dataset_split_sizes_disjoint_and_covering() -> None:
    iris = datasets.load_iris()
    train, test = train_test_split(iris, test_size=0.25, random_state=0)
    assert (len(train), len(test)) == (112, 38)  # ceil(0.25 * 150) test rows
    rows = {tuple(r) for r in iris.encoded().tolist()}
    # iris has duplicate rows, so check coverage through row ids instead of values
    ids = iris.with_labels(np.arange(150))
    tr_ids, te_ids = train_test_split(ids, 0.25, random_state=0)
    assert set(labels_of(tr_ids)).isdisjoint(labels_of(te_ids))
    assert sorted(labels_of(tr_ids) + labels_of(te_ids)) == list(range(150))
    assert labels_of(te_ids) == sorted(labels_of(te_ids))  # original order kept
    assert {tuple(r) for r in test.encoded().tolist()} <= rows
    assert train.features == iris.features


def test_split_is_deterministic_per_seed() -> None:
    ids = datasets.load_iris().with_labels(np.arange(150))
    a = train_test_split(ids, random_state=7)[1]
    b = train_test_split(ids, random_state=7)[1]
    c = train_test_split(ids, random_state=8)[1]
    assert labels_of(a) == labels_of(b)
    assert labels_of(a) != labels_of(c)


def test_stratified_split_keeps_proportions() -> None:
    iris = datasets.load_iris()
    train, test = train_test_split(iris, test_size=0.2, stratify=True, random_state=1)
    assert Counter(labels_of(test)) == {c: 10 for c in iris.classes}
    assert Counter(labels_of(train)) == {c: 40 for c in iris.classes}
    votes = datasets.load_house_votes()  # 267 democrat / 168 republican
    train, test = train_test_split(votes, test_size=0.3, stratify=True, random_state=3)
    counts = Counter(labels_of(test))
    assert len(test) == 131  # ceil(0.3 * 435)
    assert counts == {"democrat": 80, "republican": 51}  # 80.4 / 50.6 by largest remainder


def test_stratify_by_an_explicit_array() -> None:
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    groups = np.array([0] * 5 + [1] * 5)
    _, X_te, _, y_te = train_test_split(X, y, test_size=4, stratify=groups, random_state=2)
    assert Counter(groups[y_te].tolist()) == {0: 2, 1: 2}
    np.testing.assert_array_equal(X_te, X[y_te])


def test_array_form_returns_four_aligned_parts() -> None:
    X = np.arange(30).reshape(10, 3)
    y = np.arange(10) * 10
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, 0.3, random_state=0)
    assert (X_tr.shape, X_te.shape, y_tr.shape, y_te.shape) == ((7, 3), (3, 3), (7,), (3,))
    np.testing.assert_array_equal(X_tr[:, 0] * 10 // 3, y_tr)
    np.testing.assert_array_equal(X_te[:, 0] * 10 // 3, y_te)
    rows = [[1, "a"], [2, "b"], [3, "c"], [4, "d"]]
    lists = train_test_split(rows, ["p", "q", "p", "q"], test_size=2, shuffle=False)
    assert lists[1].tolist() == [[3, "c"], [4, "d"]]  # objects kept, last rows are the test
    assert lists[3].tolist() == ["p", "q"]


def test_no_shuffle_takes_the_last_rows() -> None:
    ids = datasets.load_iris().with_labels(np.arange(150))
    train, test = train_test_split(ids, test_size=0.1, shuffle=False)
    assert labels_of(test) == list(range(135, 150))
    assert labels_of(train) == list(range(135))


def test_fraction_rounding_is_exact() -> None:
    X, y = np.zeros((10, 1)), np.arange(10)
    assert len(train_test_split(X, y, test_size=0.3, random_state=0)[1]) == 3


@pytest.mark.parametrize("size", [0.0, 1.0, -0.1, 0, 10, 11])
def test_bad_test_size(size: float) -> None:
    with pytest.raises(ValueError, match="test"):
        train_test_split(np.zeros((10, 1)), np.arange(10), test_size=size)


def test_bad_split_arguments() -> None:
    iris = datasets.load_iris()
    with pytest.raises(TypeError):
        train_test_split(iris, test_size=True)
    with pytest.raises(TypeError, match="needs y"):
        train_test_split(np.zeros((4, 1)))  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="both"):
        train_test_split(iris, 0.2, test_size=0.3)
    with pytest.raises(ValueError, match="shuffle"):
        train_test_split(iris, stratify=True, shuffle=False)
    with pytest.raises(ValueError, match="rows"):
        train_test_split(np.zeros((4, 1)), np.arange(5))
    with pytest.raises(ValueError, match="labels"):
        train_test_split(Dataset.from_arrays(np.zeros((4, 1)), None), stratify=True)


# --------------------------------------------------------------------------- k-fold


def check_partition(folds: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
                    n: int, k: int) -> None:
    assert len(folds) == k
    tests = [test for _, test in folds]
    for train, test in folds:
        assert train.dtype == np.int64 and test.dtype == np.int64
        assert np.all(np.diff(test) > 0) and np.all(np.diff(train) > 0)
        assert np.intersect1d(train, test).size == 0
        assert train.size + test.size == n
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(n))
    sizes = [t.size for t in tests]
    assert max(sizes) - min(sizes) <= 1


def test_kfold_contiguous_without_shuffle() -> None:
    folds = list(KFold(3).split(np.zeros((8, 2))))
    check_partition(folds, 8, 3)
    assert [f[1].tolist() for f in folds] == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_kfold_shuffle_is_deterministic() -> None:
    a = [t.tolist() for _, t in KFold(4, shuffle=True, random_state=3).split(range(30))]
    b = [t.tolist() for _, t in KFold(4, shuffle=True, random_state=3).split(range(30))]
    c = [t.tolist() for _, t in KFold(4, shuffle=True, random_state=4).split(range(30))]
    assert a == b != c
    splitter = KFold(4, shuffle=True, random_state=3)
    assert [t.tolist() for _, t in splitter.split(range(30))] == a  # repeatable per object


def test_kfold_errors_and_repr() -> None:
    with pytest.raises(ValueError, match="5 folds from 4 rows"):
        KFold(5).split(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="at least 2"):
        KFold(1)
    with pytest.raises(TypeError):
        KFold(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rows but y"):
        KFold(2).split(np.zeros((4, 1)), np.zeros(3))
    assert KFold(3).get_n_splits() == 3
    assert repr(KFold(3)) == "KFold(n_splits=3, shuffle=False, random_state=None)"


def test_stratified_kfold_on_iris() -> None:
    iris = datasets.load_iris()
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(iris))
    check_partition(folds, 150, 5)
    assert iris.y is not None
    for _, test in folds:
        assert Counter(iris.y[test].tolist()) == {c: 10 for c in iris.classes}


def test_stratified_kfold_allows_small_classes() -> None:
    y = np.array(["a"] * 9 + ["b"] * 2)
    folds = list(StratifiedKFold(3).split(np.zeros((11, 1)), y))
    check_partition(folds, 11, 3)
    b_counts = sorted(int((y[test] == "b").sum()) for _, test in folds)
    assert b_counts == [0, 1, 1]


def test_stratified_kfold_needs_labels() -> None:
    with pytest.raises(ValueError, match="needs labels"):
        StratifiedKFold(2).split(np.zeros((4, 1)))


def test_splitters_work_with_scikit_learn() -> None:
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    iris = datasets.load_iris()
    assert iris.y is not None
    scores = cross_val_score(DecisionTreeClassifier(random_state=0), iris.encoded(),
                             iris.y.astype(str), cv=StratifiedKFold(5, shuffle=True,
                                                                    random_state=0))
    assert scores.shape == (5,) and scores.mean() > 0.9


@st.composite
def labelled_rows(draw: st.DrawFn) -> tuple[np.ndarray[Any, Any], int]:
    n = draw(st.integers(2, 60))
    k = draw(st.integers(2, n))
    y = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    return y, k


@settings(max_examples=80, deadline=None)
@given(labelled_rows(), st.booleans(), st.integers(0, 2**32 - 1))
def test_kfold_partition_invariants(
    data: tuple[np.ndarray[Any, Any], int], shuffle: bool, seed: int
) -> None:
    y, k = data
    n = y.size
    check_partition(list(KFold(k, shuffle=shuffle, random_state=seed).split(y)), n, k)
    folds = list(StratifiedKFold(k, shuffle=shuffle, random_state=seed).split(y, y))
    check_partition(folds, n, k)
    for label in np.unique(y):
        per_fold = [int((y[test] == label).sum()) for _, test in folds]
        assert max(per_fold) - min(per_fold) <= 1  # each class spread evenly


# --------------------------------------------------------------------------- split_rows


def test_split_rows_contiguous_views() -> None:
    X = np.arange(20.0).reshape(10, 2)
    shards = split_rows(X, 3)
    assert shards == [slice(0, 4), slice(4, 7), slice(7, 10)]
    for sel in shards:
        assert np.shares_memory(X[sel], X)
    iris = datasets.load_iris()
    parts = [iris.take(sel) for sel in split_rows(iris, 4)]
    assert [len(p) for p in parts] == [38, 38, 37, 37]
    assert all(np.shares_memory(p.encoded(), iris.encoded()) for p in parts)
    assert split_rows(5, 5) == [slice(i, i + 1) for i in range(5)]


def test_split_rows_shuffled() -> None:
    shards = split_rows(10, 3, shuffle=True, random_state=5)
    assert [s.size for s in shards] == [4, 3, 3]
    assert all(s.dtype == np.int64 and np.all(np.diff(s) > 0) for s in shards)
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.arange(10))
    again = split_rows(10, 3, shuffle=True, random_state=5)
    assert [s.tolist() for s in shards] == [s.tolist() for s in again]


@pytest.mark.parametrize("n", [0, 11])
def test_split_rows_bad_count(n: int) -> None:
    with pytest.raises(ValueError, match="shards"):
        split_rows(10, n)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 500), st.integers(1, 40), st.booleans())
def test_split_rows_sizes(n_rows: int, n: int, shuffle: bool) -> None:
    if n > n_rows:
        with pytest.raises(ValueError):
            split_rows(n_rows, n, shuffle=shuffle)
        return
    shards = split_rows(n_rows, n, shuffle=shuffle, random_state=0)
    idx = np.concatenate([np.arange(n_rows)[s] for s in shards])
    np.testing.assert_array_equal(np.sort(idx), np.arange(n_rows))
    sizes = [np.arange(n_rows)[s].size for s in shards]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
