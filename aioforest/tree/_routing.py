"""Stage 3 of a level: every row moves to the child its node's split sends it to.

Routing needs only the chosen splits (:class:`NodeSplits`) and the rows' own codes, so in
data-parallel growth each machine routes its own rows after the splits are broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._histogram import CodeTable, LevelRows

__all__ = ["NodeSplits", "route_rows"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class NodeSplits:
    """The split chosen for each open node of a level (``feature`` -1: a leaf).

    A row goes left when its bin is ``<= threshold_bin`` (numeric), when ``lut[node, bin]``
    is set (categorical), and a missing value when ``missing_left`` is set.
    """

    feature: I64
    threshold_bin: I64
    missing_left: B1
    improvement: F64
    lut: B1  # (n_nodes, 256)

    @property
    def found(self) -> B1:
        return np.asarray(self.feature >= 0)


def route_rows(table: CodeTable, rows: LevelRows, splits: NodeSplits) -> LevelRows:
    """The rows of split nodes, each at its child: left child ``2 * j``, right ``2 * j + 1``
    where ``j`` is its node's rank among the split nodes. Rows of leaves drop out."""
    found = splits.found
    child_of = np.full(found.size, -1, dtype=np.int64)
    split_nodes = np.flatnonzero(found)
    child_of[split_nodes] = np.arange(split_nodes.size) * 2
    c = child_of[rows.node]
    alive = c >= 0
    rows = rows.take(alive)
    c = c[alive]
    split_feature = splits.feature[rows.node]
    b = table.code(rows.row, split_feature)
    # numeric: bins up to the threshold go left; the missing bin follows missing_left
    goes_left = b <= splits.threshold_bin[rows.node]
    missing = b == table.n_bins[split_feature]
    if missing.any():
        goes_left[missing] = splits.missing_left[rows.node[missing]]
    del split_feature, missing
    cat_node = table.is_categorical[np.maximum(splits.feature, 0)] & found
    if cat_node.any():
        ci = np.flatnonzero(cat_node[rows.node])
        goes_left[ci] = splits.lut[rows.node[ci], b[ci]]
    return LevelRows(rows.row, rows.weight, rows.y, c + (~goes_left).astype(np.int64))
