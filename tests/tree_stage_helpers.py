"""Small hand-made levels for the stage tests: codes, rows, drawn features."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from aioforest.tree._histogram import CodeTable, DrawnFeatures, LevelRows


def table_of(codes_rows: npt.ArrayLike, n_bins: npt.ArrayLike,
             categorical: npt.ArrayLike | None = None) -> CodeTable:
    """A code table from a row-major ``(n_rows, n_features)`` code matrix."""
    codes = np.asarray(codes_rows, dtype=np.uint8)
    nb = np.asarray(n_bins, dtype=np.int32)
    cat = np.zeros(nb.size, bool) if categorical is None else np.asarray(categorical, bool)
    return CodeTable(np.ascontiguousarray(codes).reshape(-1), codes.shape[1], nb, cat)


def random_level(
    seed: int, n_rows: int = 200, n_features: int = 5, n_nodes: int = 3, k: int = 3,
    n_classes: int = 3, max_bin: int = 6, missing: bool = True, float_weights: bool = False,
) -> tuple[CodeTable, LevelRows, DrawnFeatures]:
    """Random codes (some missing), rows spread over nodes, k features drawn per node."""
    rng = np.random.default_rng(seed)
    n_bins = rng.integers(2, max_bin + 1, size=n_features).astype(np.int32)
    codes = np.column_stack([rng.integers(0, nb + (1 if missing else 0), size=n_rows)
                             for nb in n_bins])
    table = table_of(codes, n_bins)
    weight = (rng.uniform(0.5, 2.0, n_rows) if float_weights
              else rng.integers(1, 4, n_rows).astype(np.float64))
    rows = LevelRows(np.arange(n_rows, dtype=np.int64), weight,
                     rng.integers(0, n_classes, n_rows).astype(np.int64),
                     np.sort(rng.integers(0, n_nodes, n_rows)).astype(np.int64))
    features = np.stack([rng.permutation(n_features)[:k] for _ in range(n_nodes)])
    valid = np.ones((n_nodes, k), dtype=bool)
    valid[0, k - 1] = False  # nodes draw different numbers of features
    return table, rows, DrawnFeatures(features.astype(np.int64), valid)


def brute_histogram(table: CodeTable, rows: LevelRows, drawn: DrawnFeatures,
                    n_channels: int, bins_per_group: int) -> dict[int, npt.NDArray[Any]]:
    """cell -> per-class weight, counted row by row."""
    out: dict[int, npt.NDArray[Any]] = {}
    k = drawn.features.shape[1]
    for i in range(rows.size):
        node = int(rows.node[i])
        for slot in range(k):
            if not drawn.valid[node, slot]:
                continue
            f = int(drawn.features[node, slot])
            b = int(table.codes[int(rows.row[i]) * table.n_features + f])
            cell = (node * k + slot) * bins_per_group + b
            acc = out.setdefault(cell, np.zeros(n_channels))
            acc[int(rows.y[i])] += rows.weight[i]
    return out
