"""A fitted forest published in shared memory, so pool processes can predict with it.

The parent writes the flat node table once per fitted model; each pool process maps it on
first use and keeps the rebuilt :class:`FlatForest` while the same model is used.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from ..data import Bins
from ..tree import FlatForest
from ._pool import ArraySpec, SharedArrays, attach

__all__ = ["SharedModel", "shared_flat_forest"]


class SharedModel:
    """The parent's handle: owns the segments; ``task`` predicts a block in a pool process."""

    def __init__(self, flat: FlatForest, key: int, segments: SharedArrays | None = None):
        """``segments``: the shared arrays ``flat`` was built in (it then takes them
        over); without them, the table's parts are copied into new segments."""
        self.key = key
        self._shared = SharedArrays(flat.parts()) if segments is None else segments
        if set(self._shared.specs) != set(FlatForest.PARTS):
            raise ValueError(f"shared segments {sorted(self._shared.specs)} are not a table")
        self.specs = dict(self._shared.specs)
        self.bins = flat.bins

    def task(self, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        # Runs in a pool process: ``self`` arrives pickled (specs and bin edges only).
        return shared_flat_forest(self.specs, self.bins).mean_value(X)

    def task_rows(self, x_spec: ArraySpec, lo: int, hi: int) -> np.ndarray[Any, Any]:
        """Rows ``lo:hi`` of a shared matrix (runs in a pool process)."""
        return shared_flat_forest(self.specs, self.bins).mean_value(attach(x_spec)[lo:hi])

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key, "specs": self.specs, "bins": self.bins}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def close(self) -> None:
        shared = self.__dict__.get("_shared")
        if shared is not None:
            shared.close()

    def __del__(self) -> None:
        self.close()


_CACHE: OrderedDict[str, FlatForest] = OrderedDict()


def shared_flat_forest(specs: dict[str, ArraySpec], bins: Bins) -> FlatForest:
    key = specs["packed"][0]
    flat = _CACHE.get(key)
    if flat is None:
        flat = FlatForest.from_parts(bins, {n: attach(s) for n, s in specs.items()})
        _CACHE[key] = flat
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    return flat
