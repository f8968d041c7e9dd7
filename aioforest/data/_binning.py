"""Binning: map every feature once to small integer codes shared by every tree.

Numeric features are cut at quantiles into at most ``max_bins`` bins. When a feature has at
most ``max_bins`` distinct values every value gets its own bin, so splits are exact; either
way the threshold between two bins is the midpoint of the largest value of the lower bin and
the smallest value of the upper one. Up to ``BIN_SAMPLE_ROWS`` rows, the quantiles are
those of every row; above, of a sample of about that many rows, chosen by a hash of each
row's global id (LightGBM's ``bin_construct_sample_cnt`` samples similarly, but at random).

The edges come from per-part :class:`BinSummary` objects (:meth:`Binner.summarize`, then
:meth:`Binner.fit_summaries`): each part's distinct values while they are few, and its
rows of the sample. Summaries merge exactly, so the same rows give the same bins whether
they sit in one array or are cut into 37 files read by different workers; a local fit is
one summary of all its rows. Categorical features use the category index as their
code. Missing values (NaN) get a bin of their own, the code right after the last real bin,
so each split can learn on which side missing values go.

:meth:`Binner.fit` learns a :class:`Bins` (the fitted schema: edges, categorical flags, bin
counts); :meth:`Bins.transform` turns rows into codes, plain ``uint8`` arrays stored
feature-major, ``(n_features, n_samples)``, because tree growth gathers one feature's codes
for a set of rows at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._hashing import mix64

__all__ = ["BIN_SAMPLE_ROWS", "MAX_BINS", "BinSummary", "Binner", "Bins", "in_bin_sample"]

#: Codes are uint8 and the missing-value bin takes one code, so 255 real bins at most.
MAX_BINS = 255
#: Above this many rows, numeric quantiles come from a sample of about this many rows.
BIN_SAMPLE_ROWS = 200_000
_SAMPLE_SALT = np.uint64(0xA4093822299F31D0)

FloatArray = npt.NDArray[np.float64]


def _midpoints(lower: FloatArray, upper: FloatArray) -> FloatArray:
    """Thresholds t with lower <= t < upper, midway where floating point allows."""
    # halves first: (upper - lower) overflows for values near the float64 limits
    mid = lower / 2.0 + upper / 2.0
    # For adjacent floats the midpoint can round up to ``upper``: ``x <= t`` must still
    # send ``upper`` to the right, so fall back to ``lower`` there.
    return np.where(mid < upper, mid, lower)


def in_bin_sample(row_ids: npt.ArrayLike, n_total: int) -> npt.NDArray[np.bool_]:
    """Whether each row (by global id) is in the sample that shapes numeric quantiles."""
    ids = np.asarray(row_ids, dtype=np.int64)
    if n_total <= BIN_SAMPLE_ROWS:
        return np.ones(ids.shape, dtype=bool)
    bits = mix64(ids.astype(np.uint64) ^ _SAMPLE_SALT) >> np.uint64(11)
    limit = np.uint64(math.ceil(BIN_SAMPLE_ROWS / n_total * 2.0**53))
    return np.asarray(bits < limit)


@dataclass(frozen=True, eq=False)
class BinSummary:
    """What one part of the rows tells about its numeric columns' bins; merges exactly.

    Per feature: ``distinct[f]``, the sorted distinct non-missing values when there are at
    most ``max_bins`` of them (None: more), and ``sample[f]``, the non-missing values of the
    part's rows in the binning sample (see :func:`in_bin_sample`), sorted. Categorical
    features carry empty arrays: their bins come from their category counts.
    """

    distinct: tuple[FloatArray | None, ...]
    sample: tuple[FloatArray, ...]

    def merge(self, other: BinSummary, max_bins: int) -> BinSummary:
        """The summary of the union of both parts' rows."""
        if len(self.distinct) != len(other.distinct):
            raise ValueError(
                f"bin summaries of {len(self.distinct)} and {len(other.distinct)} features "
                "cannot merge"
            )
        distinct: list[FloatArray | None] = []
        for a, b in zip(self.distinct, other.distinct, strict=True):
            both = None if a is None or b is None else np.union1d(a, b)
            distinct.append(None if both is None or both.size > max_bins else both)
        sample = tuple(
            np.sort(np.concatenate([a, b])) for a, b in zip(self.sample, other.sample, strict=True)
        )
        return BinSummary(tuple(distinct), sample)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Four plain arrays, whatever the feature count, for a wire or a file: the values
        concatenated feature by feature, and each feature's count (-1 for a distinct set
        that was too large)."""
        empty = np.zeros(0, dtype=np.float64)
        return {
            "distinct": np.concatenate([empty, *(d for d in self.distinct if d is not None)]),
            "distinct_counts": np.array(
                [-1 if d is None else d.size for d in self.distinct], dtype=np.int64),
            "sample": np.concatenate([empty, *self.sample]),
            "sample_counts": np.array([v.size for v in self.sample], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> BinSummary:
        """The summary :meth:`arrays` wrote; raises ``ValueError`` when it is malformed."""
        try:
            parts = {name: np.asarray(arrays[name]) for name in
                     ("distinct", "distinct_counts", "sample", "sample_counts")}
        except KeyError as exc:
            raise ValueError(f"bin summary: missing entry {exc}") from None
        d_counts, s_counts = parts["distinct_counts"], parts["sample_counts"]
        if (d_counts.dtype != np.int64 or s_counts.dtype != np.int64 or d_counts.ndim != 1
                or d_counts.shape != s_counts.shape):
            raise ValueError("bin summary: the counts must be int64 vectors of one length")
        if (s_counts < 0).any() or (d_counts < -1).any():
            raise ValueError("bin summary: negative counts")
        distinct_all = _sorted_floats(parts["distinct"], "distinct", check_order=False)
        sample_all = _sorted_floats(parts["sample"], "sample", check_order=False)
        if int(np.maximum(d_counts, 0).sum()) != distinct_all.size or int(
                s_counts.sum()) != sample_all.size:
            raise ValueError("bin summary: the counts do not add up to the values")
        d_ends = np.cumsum(np.maximum(d_counts, 0))
        s_ends = np.cumsum(s_counts)
        distinct = tuple(
            None if c < 0 else _sorted_floats(distinct_all[e - c : e], f"distinct[{f}]")
            for f, (c, e) in enumerate(zip(d_counts.tolist(), d_ends.tolist(), strict=True))
        )
        sample = tuple(
            _sorted_floats(sample_all[e - c : e], f"sample[{f}]")
            for f, (c, e) in enumerate(zip(s_counts.tolist(), s_ends.tolist(), strict=True))
        )
        return cls(distinct, sample)


def _sorted_floats(value: object, name: str, check_order: bool = True) -> FloatArray:
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.dtype != np.float64:
        raise ValueError(f"bin summary {name}: expected a float64 vector, got {arr.dtype}")
    if np.isnan(arr).any() or (check_order and arr.size > 1
                               and bool(np.any(arr[1:] < arr[:-1]))):
        raise ValueError(f"bin summary {name}: values must be sorted and not NaN")
    return arr


def _column_summary(column: FloatArray, sampled: npt.NDArray[np.bool_], max_bins: int
                    ) -> tuple[FloatArray | None, FloatArray]:
    present = ~np.isnan(column)
    distinct: FloatArray | None = np.unique(column[present])
    if distinct is not None and distinct.size > max_bins:
        distinct = None
    return distinct, np.sort(column[present & sampled])


def _numeric_edges(distinct: FloatArray | None, sample: FloatArray, max_bins: int
                   ) -> FloatArray:
    """Upper edges of the bins of one numeric column from its merged summary;
    len = n_bins - 1."""
    if distinct is not None:
        return _midpoints(distinct[:-1], distinct[1:])
    # Quantiles over the distinct values weighted by how often each occurs: pick cut points
    # at evenly spaced ranks of the sorted sample, then snap each cut to a gap between two
    # distinct values so that thresholds stay midpoints of real data.
    sorted_values = sample
    distinct = np.unique(sorted_values)
    if distinct.size < 2:
        return _midpoints(distinct[:-1], distinct[1:])
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

    @classmethod
    def concatenate(cls, parts: Sequence[Bins]) -> Bins:
        """The bins of the features of ``parts``, in order (bins learned column by column)."""
        if not parts:
            raise ValueError("concatenate needs at least one Bins")
        return cls(
            np.concatenate([p.n_bins for p in parts]),
            np.concatenate([p.is_categorical for p in parts]),
            tuple(e for p in parts for e in p.edges),
        )

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
        same as leaving the row out). The same as one :meth:`summarize` of all rows.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {X.shape}")
        summary = self.summarize(X, is_categorical, sample_weight=sample_weight)
        return self.fit_summaries([summary], is_categorical, n_categories)

    def summarize(
        self,
        X: FloatArray,
        is_categorical: npt.ArrayLike | None = None,
        *,
        row_ids: npt.ArrayLike | None = None,
        n_total: int | None = None,
        sample_weight: npt.ArrayLike | None = None,
    ) -> BinSummary:
        """The :class:`BinSummary` of one part of the rows.

        ``row_ids`` are the part's global row ids (default ``0 .. n - 1``) and ``n_total``
        the row count of the whole dataset (default: this part's): they choose the sample.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {X.shape}")
        n, d = X.shape
        cat = _flags(is_categorical, d)
        ids = np.arange(n) if row_ids is None else np.asarray(row_ids, dtype=np.int64)
        if ids.shape != (n,):
            raise ValueError(f"row_ids must have {n} entries, got {ids.shape}")
        sampled = in_bin_sample(ids, n if n_total is None else int(n_total))
        if sample_weight is not None:
            keep = np.asarray(sample_weight) > 0
            if not keep.all():
                X, sampled = X[keep], sampled[keep]
        distinct: list[FloatArray | None] = []
        sample: list[FloatArray] = []
        empty = np.zeros(0, dtype=np.float64)
        for f in range(d):
            if cat[f]:
                distinct.append(empty)
                sample.append(empty)
            else:
                dv, sv = _column_summary(X[:, f], sampled, self.max_bins)
                distinct.append(dv)
                sample.append(sv)
        return BinSummary(tuple(distinct), tuple(sample))

    def fit_summaries(
        self,
        summaries: Sequence[BinSummary],
        is_categorical: npt.ArrayLike | None = None,
        n_categories: npt.ArrayLike | None = None,
    ) -> Bins:
        """The bins of the union of the parts that ``summaries`` describe."""
        if not summaries:
            raise ValueError("fit_summaries needs at least one summary")
        merged = summaries[0]
        for other in summaries[1:]:
            merged = merged.merge(other, self.max_bins)
        n_features = len(merged.sample)
        cat = _flags(is_categorical, n_features)
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
                e = _numeric_edges(merged.distinct[f], merged.sample[f], self.max_bins)
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


def _flags(is_categorical: npt.ArrayLike | None, n_features: int) -> npt.NDArray[np.bool_]:
    cat = (
        np.zeros(n_features, dtype=bool)
        if is_categorical is None
        else np.asarray(is_categorical, dtype=bool)
    )
    if cat.shape != (n_features,):
        raise ValueError(f"is_categorical must have {n_features} entries, got {cat.shape}")
    return cat


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
