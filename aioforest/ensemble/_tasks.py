"""Functions that run in pool processes. Arguments are small: arrays travel by shared memory."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data._binning import BinnedData, Binner
from ..tree._plan import ForestPlan, fit_trees
from ._pool import ArraySpec, attach

__all__ = ["bin_task", "fit_task"]


def bin_task(
    x_spec: ArraySpec,
    codes_spec: ArraySpec,
    is_categorical: np.ndarray[Any, Any],
    n_categories: np.ndarray[Any, Any],
    max_bins: int,
    sw_spec: ArraySpec | None = None,
) -> tuple[np.ndarray[Any, Any], list[np.ndarray[Any, Any]]]:
    """Bin the shared matrix into the shared codes array; return (n_bins, edges).

    The codes array is row-major, shape (n_samples, n_features) (see :func:`fit_task`).
    """
    X = attach(x_spec)
    sw = attach(sw_spec) if sw_spec is not None else None
    binned = Binner(max_bins).fit(X, is_categorical, n_categories, sw)
    attach(codes_spec)[...] = binned.codes.T
    return binned.n_bins, list(binned.edges)


def fit_task(
    codes_spec: ArraySpec,
    n_bins: np.ndarray[Any, Any],
    is_categorical: np.ndarray[Any, Any],
    edges: list[np.ndarray[Any, Any]],
    y_spec: ArraySpec,
    sw_spec: ArraySpec | None,
    plan: dict[str, Any],
    indices: list[int],
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """Fit trees ``indices``; return each tree's arrays.

    The shared codes are row-major, shape (n_samples, n_features): their transpose is the
    (n_features, n_samples) view :class:`BinnedData` holds, and the tree builder, which reads
    rows, uses the segment without copying it.
    """
    binned = BinnedData(
        codes=attach(codes_spec).T, n_bins=n_bins, is_categorical=is_categorical,
        edges=tuple(edges),
    )
    y = attach(y_spec)
    sw = attach(sw_spec) if sw_spec is not None else None
    trees = fit_trees(ForestPlan.from_json(plan), binned, y, sw, indices)
    return [t.arrays() for t in trees]

