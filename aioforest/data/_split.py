"""Train/test splits, k-fold cross-validation splitters and row sharding.

Every random choice comes from ``np.random.default_rng(random_state)``: the same integer
``random_state`` always gives the same split. Index arrays are int64 and sorted, so subsets keep
the original relative order of rows.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from ._dataset import Dataset

__all__ = [
    "IndexArray",
    "KFold",
    "RandomState",
    "StratifiedKFold",
    "split_rows",
    "train_test_split",
]

#: Seeds accepted wherever randomness is involved (passed to ``np.random.default_rng``).
RandomState = int | np.random.Generator | np.random.SeedSequence | None
IndexArray = npt.NDArray[np.int64]


def _rng(random_state: RandomState) -> np.random.Generator:
    if isinstance(random_state, bool):
        raise TypeError("random_state must be an int, a Generator, a SeedSequence or None")
    return np.random.default_rng(random_state)


def _n_rows(data: object) -> int:
    if isinstance(data, Dataset):
        return len(data)
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            raise TypeError("expected an array with at least one dimension")
        return int(data.shape[0])
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"expected a Dataset, an array or a sequence of rows, got "
                        f"{type(data).__name__}") from None


def _check_n_splits(n_splits: object) -> int:
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise TypeError(f"n_splits must be an int, got {n_splits!r}")
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2, got {n_splits}")
    return int(n_splits)


def _factorize(y: object, n: int) -> tuple[npt.NDArray[np.intp], int]:
    """Labels as codes 0..k-1 (sorted label order when the labels are sortable)."""
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.shape[0] != n:
        raise ValueError(f"got {labels.shape[0]} labels for {n} rows")
    try:
        uniq, inverse = np.unique(labels, return_inverse=True)
        return inverse.reshape(-1).astype(np.intp), int(uniq.shape[0])
    except TypeError:
        # Unsortable mixtures (e.g. None and str): number the labels in order of appearance.
        index: dict[Any, int] = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in labels.tolist()),
                            dtype=np.intp, count=n)
        return codes, len(index)


def _fold_sizes(n: int, k: int) -> list[int]:
    """k sizes summing to n that differ by at most one (larger ones first)."""
    base, extra = divmod(n, k)
    return [base + 1 if i < extra else base for i in range(k)]


def _complement(test: IndexArray, n: int) -> IndexArray:
    mask = np.ones(n, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask).astype(np.int64)


# --------------------------------------------------------------------------- train/test


def _n_test(test_size: object, n: int) -> int:
    if isinstance(test_size, bool) or not isinstance(
            test_size, int | float | np.integer | np.floating):
        raise TypeError(f"test_size must be a fraction (float) or a row count (int), got "
                        f"{test_size!r}")
    if isinstance(test_size, float | np.floating):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size}")
        # The epsilon keeps 0.3 * 10 (== 3.0000000000000004) at 3 rows, not 4.
        k = math.ceil(float(test_size) * n - 1e-9)
    else:
        k = int(test_size)
    if not 1 <= k < n:
        raise ValueError(f"test_size={test_size!r} gives {k} test rows out of {n}; both the "
                         f"train and the test set must be non-empty")
    return k


def _stratified_test_rows(
    codes: npt.NDArray[np.intp], n_classes: int, n_test: int, rng: np.random.Generator
) -> IndexArray:
    n = codes.shape[0]
    counts = np.bincount(codes, minlength=n_classes).astype(np.int64)
    # Largest-remainder apportionment in exact integer arithmetic: each class gets
    # floor(count * n_test / n) test rows, the leftover rows go to the largest remainders.
    share = counts * n_test
    quota = share // n
    remainder = share % n
    leftover = n_test - int(quota.sum())
    order = np.argsort(-remainder, kind="stable")
    quota[order[:leftover]] += 1
    test_parts = []
    for c in range(n_classes):
        members = np.flatnonzero(codes == c)
        test_parts.append(rng.permutation(members)[: quota[c]])
    return np.sort(np.concatenate(test_parts)).astype(np.int64)


def _take(data: Any, rows: IndexArray) -> Any:
    if isinstance(data, np.ndarray):
        return data[rows]
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, pd.DataFrame | pd.Series):
        return data.iloc[rows]
    arr = np.asarray(data)
    if arr.dtype.kind in "US" and arr.ndim == 2:
        # Mixed rows such as [[1.5, "a"]]: keep the original objects, not their text.
        arr = np.empty(arr.shape, dtype=object)
        arr[...] = data
    return arr[rows]


@overload
def train_test_split(
    data: Dataset,
    test_size: float = ...,
    *,
    stratify: bool | npt.ArrayLike = ...,
    random_state: RandomState = ...,
    shuffle: bool = ...,
) -> tuple[Dataset, Dataset]: ...
@overload
def train_test_split(
    data: Any,
    y: Any,
    /,
    test_size: float = ...,
    *,
    stratify: bool | npt.ArrayLike = ...,
    random_state: RandomState = ...,
    shuffle: bool = ...,
) -> tuple[Any, Any, Any, Any]: ...
def train_test_split(
    data: Any,
    *args: Any,
    test_size: float | None = None,
    stratify: bool | npt.ArrayLike = False,
    random_state: RandomState = None,
    shuffle: bool = True,
) -> tuple[Any, ...]:
    """Split rows into a training and a test set.

    ``train_test_split(ds, test_size=0.25)`` returns ``(train, test)`` Datasets;
    ``train_test_split(X, y, test_size=0.25)`` returns ``(X_train, X_test, y_train, y_test)``
    (numpy arrays; pandas objects stay pandas).

    ``test_size`` is the **test** fraction, a float in (0, 1) (the test set gets
    ``ceil(test_size * n)`` rows), or an int row count. Both sets must be non-empty.
    ``stratify=True`` keeps each label's share of rows in both sets (largest-remainder
    rounding); an array stratifies by that array instead. With ``shuffle=False`` the last
    rows are the test set (stratification then is an error). Indices are sorted, so both sets
    keep the original row order.
    """
    if isinstance(data, Dataset):
        if len(args) > 1:
            raise TypeError("train_test_split(dataset, test_size) takes no y; a Dataset "
                            "carries its labels")
        y = data.y
    else:
        if not args:
            raise TypeError("train_test_split(X, y, ...) needs y when X is not a Dataset")
        if len(args) > 2:
            raise TypeError("train_test_split(X, y, test_size) got too many arguments")
        y = args[0]
        args = args[1:]
    if args:
        if test_size is not None:
            raise TypeError("test_size given both positionally and by keyword")
        test_size = args[0]
    n = _n_rows(data)
    if y is not None and _n_rows(y) != n:
        raise ValueError(f"X has {n} rows but y has {_n_rows(y)}")
    n_test = _n_test(0.25 if test_size is None else test_size, n)

    strata: object = None
    if stratify is True:
        if y is None:
            raise ValueError("stratify=True needs labels")
        strata = y
    elif stratify is not False and stratify is not None:
        strata = stratify
    rng = _rng(random_state)
    if strata is not None:
        if not shuffle:
            raise ValueError("stratified splitting requires shuffle=True")
        codes, n_classes = _factorize(strata, n)
        test = _stratified_test_rows(codes, n_classes, n_test, rng)
        train = _complement(test, n)
    elif shuffle:
        perm = rng.permutation(n)
        test = np.sort(perm[:n_test]).astype(np.int64)
        train = np.sort(perm[n_test:]).astype(np.int64)
    else:
        train = np.arange(n - n_test, dtype=np.int64)
        test = np.arange(n - n_test, n, dtype=np.int64)

    if isinstance(data, Dataset):
        return data.take(train), data.take(test)
    return _take(data, train), _take(data, test), _take(y, train), _take(y, test)


# --------------------------------------------------------------------------- k-fold


class KFold:
    """K-fold cross-validation over rows: every row is in exactly one test fold.

    Fold sizes differ by at most one (the first ``n % n_splits`` folds are one larger).
    Without ``shuffle`` the folds are contiguous blocks in row order; with it, rows are
    permuted by ``np.random.default_rng(random_state)`` first (``random_state`` is ignored
    without shuffle). An int ``random_state`` gives the same folds on every ``split`` call.
    """

    def __init__(
        self, n_splits: int = 5, *, shuffle: bool = False, random_state: RandomState = None
    ) -> None:
        self.n_splits = _check_n_splits(n_splits)
        self.shuffle = bool(shuffle)
        self.random_state = random_state

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:
        """The number of folds (the arguments exist for scikit-learn compatibility)."""
        return self.n_splits

    def split(
        self, X: object, y: object = None, groups: object = None
    ) -> Iterator[tuple[IndexArray, IndexArray]]:
        """Yield ``(train_idx, test_idx)`` int64 arrays, sorted, for each fold.

        ``X`` is a Dataset, an array or any sized sequence of rows (only its length is used).
        Raises ValueError when ``n_splits`` exceeds the number of rows.
        """
        n = _n_rows(X)
        self._check_rows(n)
        if y is not None and _n_rows(y) != n:
            raise ValueError(f"X has {n} rows but y has {_n_rows(y)}")
        order = _rng(self.random_state).permutation(n) if self.shuffle else np.arange(n)
        return self._iter(order, n)

    def _iter(self, order: npt.NDArray[Any], n: int) -> Iterator[tuple[IndexArray, IndexArray]]:
        start = 0
        for size in _fold_sizes(n, self.n_splits):
            test = np.sort(order[start:start + size]).astype(np.int64)
            start += size
            yield _complement(test, n), test

    def _check_rows(self, n: int) -> None:
        if self.n_splits > n:
            raise ValueError(f"cannot make {self.n_splits} folds from {n} rows")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, "
                f"random_state={self.random_state!r})")


class StratifiedKFold(KFold):
    """K-fold cross-validation that keeps each class's share of rows in every fold.

    Rows are dealt to folds round-robin, class after class (shuffled within each class when
    ``shuffle`` is set), so for every class the per-fold counts differ by at most one, and the
    fold sizes differ by at most one overall. A class with fewer rows than ``n_splits`` is
    allowed: it is simply absent from some test folds. Labels come from ``y``, or from the
    Dataset passed as ``X`` when ``y`` is omitted.
    """

    def split(
        self, X: object, y: object = None, groups: object = None
    ) -> Iterator[tuple[IndexArray, IndexArray]]:
        """Yield ``(train_idx, test_idx)`` int64 arrays, sorted, for each fold."""
        n = _n_rows(X)
        self._check_rows(n)
        if y is None:
            if not isinstance(X, Dataset) or X.y is None:
                raise ValueError("StratifiedKFold.split needs labels: pass y, or a labelled "
                                 "Dataset as X")
            y = X.y
        codes, n_classes = _factorize(y, n)
        rng = _rng(self.random_state) if self.shuffle else None
        parts = []
        for c in range(n_classes):
            members = np.flatnonzero(codes == c)
            parts.append(rng.permutation(members) if rng is not None else members)
        dealt = np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)
        fold_of = np.empty(n, dtype=np.intp)
        fold_of[dealt] = np.arange(n) % self.n_splits
        return self._iter_folds(fold_of, n)

    def _iter_folds(
        self, fold_of: npt.NDArray[np.intp], n: int
    ) -> Iterator[tuple[IndexArray, IndexArray]]:
        for f in range(self.n_splits):
            test_mask = fold_of == f
            yield (np.flatnonzero(~test_mask).astype(np.int64),
                   np.flatnonzero(test_mask).astype(np.int64))


# --------------------------------------------------------------------------- sharding


@overload
def split_rows(
    data: int | object, n: int, *, shuffle: Literal[False] = ..., random_state: RandomState = ...
) -> list[slice]: ...
@overload
def split_rows(
    data: int | object, n: int, *, shuffle: Literal[True], random_state: RandomState = ...
) -> list[IndexArray]: ...
@overload
def split_rows(
    data: int | object, n: int, *, shuffle: bool, random_state: RandomState = ...
) -> list[slice] | list[IndexArray]: ...
def split_rows(
    data: int | object, n: int, *, shuffle: bool = False, random_state: RandomState = None
) -> list[slice] | list[IndexArray]:
    """Cut rows into ``n`` shards whose sizes differ by at most one; return row selectors.

    ``data`` is a row count, a Dataset, an array or a sequence of rows (only its length is
    used). Without ``shuffle`` the shards are contiguous and returned as ``slice`` objects, so
    ``X[sel]`` on an array is a **view** (no copy) and ``ds.take(sel)`` shares memory with
    ``ds``. With ``shuffle`` the rows are permuted by ``np.random.default_rng(random_state)``
    and each shard is a sorted int64 index array. Raises ValueError when ``n`` is not in
    ``1 .. number of rows``.
    """
    if isinstance(data, bool):
        raise TypeError("data must be a row count, a Dataset or an array")
    n_rows = int(data) if isinstance(data, int | np.integer) else _n_rows(data)
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"n must be an int, got {n!r}")
    if not 1 <= n <= n_rows:
        raise ValueError(f"cannot split {n_rows} rows into {n} non-empty shards")
    sizes = _fold_sizes(n_rows, int(n))
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    if not shuffle:
        return [slice(bounds[i], bounds[i + 1]) for i in range(len(sizes))]
    perm = _rng(random_state).permutation(n_rows)
    return [np.sort(perm[bounds[i]:bounds[i + 1]]).astype(np.int64) for i in range(len(sizes))]
