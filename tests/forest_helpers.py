"""Helpers shared by the tree and forest tests: bit-exact tree comparison and small data."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from aioforest.tree import TreeArrays


def tree_fields(tree: TreeArrays) -> dict[str, npt.NDArray[Any]]:
    """Every array of one fitted tree, by field name."""
    return tree.arrays()


def assert_same_tree(a: TreeArrays, b: TreeArrays, where: str = "") -> None:
    """Every array of the two trees is identical: same dtype, shape and bits."""
    fa, fb = tree_fields(a), tree_fields(b)
    assert fa.keys() == fb.keys(), where
    for name, va in fa.items():
        vb = fb[name]
        assert va.dtype == vb.dtype, f"{where}{name}: dtype {va.dtype} != {vb.dtype}"
        assert va.shape == vb.shape, f"{where}{name}: shape {va.shape} != {vb.shape}"
        # Compare the bytes, so that NaN thresholds and -0.0 count as well.
        assert np.ascontiguousarray(va).tobytes() == np.ascontiguousarray(vb).tobytes(), (
            f"{where}{name} differs"
        )


def assert_same_forest(a: Any, b: Any) -> None:
    """Two fitted models hold bit-identical trees, in the same order."""
    assert len(a.trees_) == len(b.trees_), f"{len(a.trees_)} trees != {len(b.trees_)} trees"
    for i, (ta, tb) in enumerate(zip(a.trees_, b.trees_, strict=True)):
        assert_same_tree(ta, tb, where=f"tree {i}: ")


def same_forest(a: Any, b: Any) -> bool:
    """Whether two fitted models hold bit-identical trees."""
    try:
        assert_same_forest(a, b)
    except AssertionError:
        return False
    return True


def same_tree(a: TreeArrays, b: TreeArrays) -> bool:
    """Whether two trees are bit-identical."""
    try:
        assert_same_tree(a, b)
    except AssertionError:
        return False
    return True


def split_features(tree: TreeArrays) -> set[int]:
    """The features a tree splits on."""
    return {int(f) for f in tree.feature if f >= 0}


def classification_data(
    n: int = 300, d: int = 6, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """A small 3-class problem where every feature carries some signal."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    score = X @ np.linspace(1.0, 0.3, d) + 0.3 * rng.normal(size=n)
    y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(np.int64)
    return X, y


def regression_data(
    n: int = 300, d: int = 5, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A small non-linear regression problem."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, d))
    y = np.sin(X[:, 0]) * 3 + X[:, 1] ** 2 + 0.5 * X[:, 2] + 0.1 * rng.normal(size=n)
    return X, y
