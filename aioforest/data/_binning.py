"""Binning: map every feature once to small integer codes shared by every tree.

Numeric features are cut at quantiles into at most ``max_bins`` bins. When a feature has at
most ``max_bins`` distinct values every value gets its own bin, so splits are exact; either
way the threshold between two bins is the midpoint of the largest value of the lower bin and
the smallest value of the upper one. Categorical features use the category index as their
code. Missing values (NaN) get a bin of their own, the code right after the last real bin,
so each split can learn on which side missing values go.

:meth:`Binner.fit` learns a :class:`Bins` (the fitted schema: edges, categorical flags, bin
counts); :meth:`Bins.transform` turns rows into codes, plain ``uint8`` arrays stored
feature-major, ``(n_features, n_samples)``, because tree growth gathers one feature's codes
for a set of rows at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_BINS", "Binner", "Bins"]

#: Codes are uint8 and the missing-value bin takes one code, so 255 real bins at most.
MAX_BINS = 255

FloatArray = npt.NDArray[np.float64]


def _midpoints(lower: FloatArray, upper: FloatArray) -> FloatArray:
    """Thresholds t with lower <= t < upper, midway where floating point allows."""
    # halves first: (upper - lower) overflows for values near the float64 limits
    mid = lower / 2.0 + upper / 2.0
    # For adjacent floats the midpoint can round up to ``upper``: ``x <= t`` must still
    # send ``upper`` to the right, so fall back to ``lower`` there.
    return np.where(mid < upper, mid, lower)


def _numeric_edges(column: FloatArray, max_bins: int) -> FloatArray:
    """Upper edges of the bins of one numeric column (NaN ignored); len = n_bins - 1."""
    values = column[~np.isnan(column)]
    if values.size == 0:
        return np.empty(0, dtype=np.float64)
    distinct = np.unique(values)
    if distinct.size <= max_bins:
        return _midpoints(distinct[:-1], distinct[1:])
    # Quantiles over the distinct values weighted by how often each occurs: pick cut points
    # at evenly spaced ranks of the sorted data, then snap each cut to a gap between two
    # distinct values so that thresholds stay midpoints of real data.
    sorted_values = np.sort(values)
    ranks = (np.arange(1, max_bins) * sorted_values.size) // max_bins
    cut_values = sorted_values[ranks]
    # index of the distinct value each cut lands on; the edge is after it
    pos = np.searchsorted(distinct, cut_values, side="left")
    pos = np.unique(np.clip(pos, 0, distinct.size - 2))
    return _midpoints(distinct[pos], distinct[pos + 1])


@dataclass(frozen=True, eq=False)
class Bins:
    """The fitted binning of a feature matrix: all that is needed to bin new rows the same way.

    ``n_bins[f]`` counts the real bins of feature ``f``; code ``n_bins[f]`` is its
    missing-value bin (:attr:`missing_bin`). ``edges[f]`` holds the ``n_bins[f] - 1`` upper
    edges of a numeric feature's bins (a value ``x`` is in bin ``b`` when
    ``edges[b - 1] < x <= edges[b]``); a categorical feature's code is its category index,
    and its ``n_bins[f]`` is its category count (its edges, ``0.5, 1.5, ...``, are unused
    for splitting). Category names live in the feature schema, not here.

    Codes, the binned training rows, are plain ``uint8`` arrays, feature-major
    ``(n_features, n_samples)`` (see :meth:`transform`); a :class:`Bins` never holds any.
    """

    n_bins: npt.NDArray[np.int32]
    is_categorical: npt.NDArray[np.bool_]
    edges: tuple[FloatArray, ...]

    def __post_init__(self) -> None:
        n = self.n_bins.shape[0] if self.n_bins.ndim == 1 else -1
        if n < 0 or self.is_categorical.shape != (n,) or len(self.edges) != n:
            raise ValueError(
                f"Bins need one n_bins, is_categorical and edges entry per feature, got "
                f"{self.n_bins.shape}, {self.is_categorical.shape} and {len(self.edges)}"
            )

    @property
    def n_features(self) -> int:
        """The number of features binned."""
        return int(self.n_bins.shape[0])

    @property
    def missing_bin(self) -> npt.NDArray[np.int32]:
        """Each feature's missing-value code (the code right after its last real bin)."""
        return self.n_bins

    def select(self, features: npt.ArrayLike) -> Bins:
        """The bins of the given features only (in that order)."""
        idx = np.asarray(features, dtype=np.int64).reshape(-1)
        return Bins(
            self.n_bins[idx], self.is_categorical[idx], tuple(self.edges[f] for f in idx)
        )

    def equals(self, other: Bins) -> bool:
        """Whether ``other`` bins every value exactly as this does."""
        return (
            np.array_equal(self.n_bins, other.n_bins)
            and np.array_equal(self.is_categorical, other.is_categorical)
            and len(self.edges) == len(other.edges)
            and all(np.array_equal(a, b) for a, b in zip(self.edges, other.edges, strict=True))
        )

    def transform(self, X: npt.ArrayLike) -> npt.NDArray[np.uint8]:
        """Codes of ``X`` (rows, features), feature-major ``(n_features, n_samples)``."""
        return _transform(self, np.asarray(X, dtype=np.float64))


class Binner:
    """Learns bin edges from a float matrix and turns float matrices into codes.

    ``X`` is the encoded float64 matrix (categorical features hold category indices, missing
    cells NaN). ``n_categories[f]`` gives the number of categories of a categorical feature.
    """

    def __init__(self, max_bins: int = MAX_BINS) -> None:
        if not isinstance(max_bins, int | np.integer) or not 2 <= max_bins <= MAX_BINS:
            raise ValueError(f"max_bins must be an integer in [2, {MAX_BINS}], got {max_bins!r}")
        self.max_bins = int(max_bins)

    def fit(
        self,
        X: FloatArray,
        is_categorical: npt.ArrayLike | None = None,
        n_categories: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
    ) -> Bins:
        """Learn the bins of ``X`` (bin rows with :meth:`Bins.transform`).

        Rows with zero ``sample_weight`` do not shape the bins (so that a zero weight is the
        same as leaving the row out).
        """
        X = np.asarray(X, dtype=np.float64)
        X_edges = X
        if sample_weight is not None:
            keep = np.asarray(sample_weight) > 0
            if not keep.all():
                X_edges = X[keep]
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {X.shape}")
        n_features = X.shape[1]
        cat = (
            np.zeros(n_features, dtype=bool)
            if is_categorical is None
            else np.asarray(is_categorical, dtype=bool)
        )
        if cat.shape != (n_features,):
            raise ValueError(f"is_categorical must have {n_features} entries, got {cat.shape}")
        ncat = (
            np.zeros(n_features, dtype=np.int64)
            if n_categories is None
            else np.asarray(n_categories, dtype=np.int64)
        )
        edges: list[FloatArray] = []
        n_bins = np.empty(n_features, dtype=np.int32)
        for f in range(n_features):
            if cat[f]:
                k = int(ncat[f])
                if k > self.max_bins:
                    raise ValueError(
                        f"feature {f} has {k} categories, more than max_bins={self.max_bins}; "
                        "group rare categories or raise max_bins"
                    )
                # The edges of a categorical feature are unused for splitting; keep the
                # category count so Bins.transform() can validate codes.
                edges.append(np.arange(max(k, 1) - 1, dtype=np.float64) + 0.5)
                n_bins[f] = max(k, 1)
            else:
                e = _numeric_edges(X_edges[:, f], self.max_bins)
                edges.append(e)
                n_bins[f] = e.size + 1
        return Bins(n_bins=n_bins, is_categorical=cat, edges=tuple(edges))

    def fit_transform(
        self,
        X: FloatArray,
        is_categorical: npt.ArrayLike | None = None,
        n_categories: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
    ) -> tuple[Bins, npt.NDArray[np.uint8]]:
        """Learn the bins of ``X`` and bin it: ``(bins, codes)``."""
        bins = self.fit(X, is_categorical, n_categories, sample_weight)
        return bins, bins.transform(X)


def _transform(binned: Bins, X: FloatArray) -> npt.NDArray[np.uint8]:
    """Codes of ``X`` under ``binned``, feature-major ``(n_features, n_samples)``."""
    if X.ndim != 2 or X.shape[1] != binned.n_bins.size:
        raise ValueError(
            f"X has shape {X.shape}, expected (n_samples, {binned.n_bins.size}) features"
        )
    codes = np.empty((X.shape[1], X.shape[0]), dtype=np.uint8)
    columns = np.ascontiguousarray(X.T)  # one contiguous row per feature
    for f in range(X.shape[1]):
        column = columns[f]
        missing = np.isnan(column)
        if binned.is_categorical[f]:
            # Category indices map to themselves; an index outside the known categories
            # (unseen at fit time) is treated as missing.
            k = int(binned.n_bins[f])
            idx = np.where(missing, -1.0, column)
            bad = (idx < 0) | (idx >= k) | (idx != np.floor(idx))
            codes[f] = np.where(bad, k, idx).astype(np.uint8)
        else:
            # bin(x) = number of edges < x, so that x <= edges[b] exactly when bin(x) <= b.
            b = np.searchsorted(binned.edges[f], column, side="left")
            if missing.any():
                b[missing] = binned.n_bins[f]
            codes[f] = b
    return codes
