"""Functions that run in pool processes. Arguments are small: arrays travel by shared memory."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data import Binner, Bins
from ..tree import ForestPlan, fit_trees
from ._pool import ArraySpec, attach

__all__ = ["bin_task", "fit_task", "warm_up"]


def bin_task(
    x_spec: ArraySpec,
    codes_spec: ArraySpec,
    binner: Binner,
    is_categorical: np.ndarray[Any, Any],
    n_categories: np.ndarray[Any, Any],
    sw_spec: ArraySpec | None = None,
) -> Bins:
    """Learn the bins of the shared matrix, write its codes to the shared codes array and
    return the bins.

    The codes array is row-major, shape (n_samples, n_features) (see :func:`fit_task`).
    """
    X = attach(x_spec)
    sw = attach(sw_spec) if sw_spec is not None else None
    bins, codes = binner.fit_transform(X, is_categorical, n_categories, sw)
    attach(codes_spec)[...] = codes.T
    return bins


def fit_task(
    codes_spec: ArraySpec,
    bins: Bins,
    y_spec: ArraySpec,
    sw_spec: ArraySpec | None,
    plan: dict[str, Any],
    indices: list[int],
    rows: tuple[int, int] | np.ndarray[Any, Any] | None = None,
    raw: bool = False,
    cancel: tuple[ArraySpec, int] | None = None,
    every_array: bool = False,
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """Fit trees ``indices`` of ``plan`` on the shared dataset; return each tree's arrays:
    what it keeps (:meth:`TreeArrays.stored_arrays`, rebuilt with the bins), or with
    ``every_array`` all its fields (what a cluster worker sends on).

    The shared codes are row-major, shape (n_samples, n_features): their transpose is the
    (n_features, n_samples) codes the tree builder takes, and the builder, which reads
    rows, uses the segment without copying it. The local pool and cluster workers both
    run this function; the last three arguments serve the cluster:

    * ``rows``: ``(start, stop)`` (a view, no copy) or an int64 index array (a copy of the
      selected rows); ``None`` uses all rows.
    * ``raw``: the shared matrix holds float64 features, and the selected rows are binned
      here with ``bins`` first (a cross-validation fold: the same codes a local
      fit on those rows computes).
    * ``cancel``: a shared cancel board and this task's slot on it; once that byte is set,
      the fit stops at its next level with ``FitCancelled``.
    """
    should_stop = None
    if cancel is not None:
        board, slot = attach(cancel[0]), cancel[1]

        def should_stop() -> bool:
            return bool(board[slot])

    matrix = attach(codes_spec)
    y = attach(y_spec)
    sw = attach(sw_spec) if sw_spec is not None else None
    if rows is not None:
        sel: slice | np.ndarray[Any, Any] = (
            slice(rows[0], rows[1]) if isinstance(rows, tuple) else np.asarray(rows, np.int64)
        )
        matrix, y = matrix[sel], y[sel]
        sw = sw[sel] if sw is not None else None
    codes = bins.transform(matrix) if raw else matrix.T
    trees = fit_trees(ForestPlan.from_json(plan), bins, codes, y, sw, indices, should_stop)
    return [t.arrays() if every_array else t.stored_arrays() for t in trees]


def warm_up() -> int:
    """A no-op run once at start (by a cluster worker), so the pool's processes exist
    before the first task."""
    return os.getpid()
