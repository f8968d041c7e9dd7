"""Stage 3: every row moves to its child; rows of leaves drop out."""

from __future__ import annotations

import numpy as np
from tree_stage_helpers import table_of

from aioforest.tree._histogram import LevelRows
from aioforest.tree._routing import NodeSplits, route_rows


def test_rows_follow_thresholds_missing_directions_and_category_tables() -> None:
    # feature 0 numeric (3 bins, code 3 = missing), feature 1 categorical (4 categories)
    codes = [[0, 2], [1, 0], [2, 3], [3, 1], [3, 4], [0, 0]]
    table = table_of(codes, [3, 4], categorical=[False, True])
    rows = LevelRows(np.arange(6), np.ones(6), np.zeros(6, np.int64),
                     np.array([0, 0, 0, 0, 1, 2]))
    lut = np.zeros((3, 256), dtype=bool)
    lut[1, [1, 4]] = True  # node 1: categories {1} and missing go left
    splits = NodeSplits(
        feature=np.array([0, 1, -1]), threshold_bin=np.array([0, 0, 0]),
        missing_left=np.array([True, True, False]), improvement=np.zeros(3), lut=lut,
    )
    out = route_rows(table, rows, splits)
    # node 0 (rank 0): children 0/1; node 1 (rank 1): children 2/3; node 2 is a leaf
    assert out.row.tolist() == [0, 1, 2, 3, 4]
    assert out.node.tolist() == [0, 1, 1, 0, 2]


def test_routing_keeps_weights_and_targets_with_their_rows() -> None:
    table = table_of([[0], [1], [0], [1]], [2])
    rows = LevelRows(np.array([3, 2, 1, 0]), np.array([1.0, 2.0, 3.0, 4.0]),
                     np.array([10.0, 20.0, 30.0, 40.0]), np.zeros(4, np.int64))
    splits = NodeSplits(np.array([0]), np.array([0]), np.array([False]), np.zeros(1),
                        np.zeros((1, 256), bool))
    out = route_rows(table, rows, splits)
    assert out.row.tolist() == [3, 2, 1, 0]
    assert out.node.tolist() == [1, 0, 1, 0]
    assert out.weight.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert out.y.tolist() == [10.0, 20.0, 30.0, 40.0]
