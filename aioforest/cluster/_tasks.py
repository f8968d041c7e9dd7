"""The function a worker runs in its process pool: fit trees on a dataset in shared memory.

It is a top-level function so the pool can name it; its arguments are small (segment names,
bin metadata, the plan as JSON, tree indices): the data itself is read from shared memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data._binning import BinnedData, transform
from ..ensemble._pool import ArraySpec, attach
from ..tree._plan import ForestPlan, fit_trees

__all__ = ["fit_shared_task", "warm_up"]


def fit_shared_task(
    codes_spec: ArraySpec,
    n_bins: np.ndarray[Any, Any],
    is_categorical: np.ndarray[Any, Any],
    edges: list[np.ndarray[Any, Any]],
    y_spec: ArraySpec,
    sw_spec: ArraySpec | None,
    plan: dict[str, Any],
    indices: list[int],
    rows: tuple[int, int] | np.ndarray[Any, Any] | None = None,
    raw: bool = False,
    cancel: tuple[ArraySpec, int] | None = None,
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """Fit trees ``indices`` of ``plan`` on the shared dataset (optionally a subset of rows).

    ``rows`` is ``(start, stop)`` (a view, no copy) or an int64 index array (a copy of the
    selected rows); ``None`` uses all rows. With ``raw`` the shared "codes" are float64
    features and the selected rows are binned here with ``n_bins``/``edges`` first (a
    cross-validation fold: the same codes a local fit on those rows computes). ``cancel``
    names the worker's shared cancel board and this task's slot on it: once the worker
    sets that byte, the fit stops at the next level with ``FitCancelled``. Returns each
    tree's arrays.
    """
    should_stop = None
    if cancel is not None:
        board, slot = attach(cancel[0]), cancel[1]

        def should_stop() -> bool:
            return bool(board[slot])

    codes = attach(codes_spec)
    y = attach(y_spec)
    sw = attach(sw_spec) if sw_spec is not None else None
    if rows is not None:
        sel: slice | np.ndarray[Any, Any] = (
            slice(rows[0], rows[1]) if isinstance(rows, tuple) else np.asarray(rows, np.int64)
        )
        codes = np.ascontiguousarray(codes[:, sel])
        y = y[sel]
        sw = sw[sel] if sw is not None else None
    if raw:
        bins = BinnedData(np.zeros((0, 0), np.uint8), n_bins, is_categorical, tuple(edges))
        codes = transform(bins, codes.T)
    binned = BinnedData(codes=codes, n_bins=n_bins, is_categorical=is_categorical,
                        edges=tuple(edges))
    trees = fit_trees(ForestPlan.from_json(plan), binned, y, sw, indices, should_stop)
    return [t.arrays() for t in trees]


def warm_up() -> int:
    """A no-op run once at worker start, so the pool's processes exist before the first task."""
    import os

    return os.getpid()
