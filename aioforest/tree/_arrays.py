"""The arrays of one fitted tree (scikit-learn's ``tree_`` idea, in plain NumPy).

Nodes are numbered in level order; node 0 is the root. A split node sends a sample left when
its feature value is ``<= threshold`` (numeric) or its category is in the node's left set
(categorical); a missing value goes left when ``missing_left`` is set. Leaves have
``feature == -1``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from ..data import Bins

__all__ = ["TreeArrays", "split_thresholds"]


def split_thresholds(
    feature: npt.NDArray[np.integer], threshold_bin: npt.NDArray[np.integer], bins: Bins
) -> npt.NDArray[np.float64]:
    """Each numeric split's threshold, the upper edge of its bin; NaN elsewhere.

    The last bin of a feature has +inf as its edge: the "missing vs rest" split sends every
    non-missing value left. Model files rebuild thresholds this way instead of storing them.
    """
    flat_edges = np.concatenate([np.append(e, np.inf) for e in bins.edges])
    edge_offsets = np.concatenate(
        [[0], np.cumsum([e.size + 1 for e in bins.edges])[:-1]]
    ).astype(np.int64)
    is_split = feature >= 0
    num = np.flatnonzero(is_split & ~bins.is_categorical[np.maximum(feature, 0)])
    threshold = np.full(feature.shape, np.nan)
    threshold[num] = flat_edges[edge_offsets[feature[num]] + threshold_bin[num]]
    return threshold


@dataclass(eq=False)
class TreeArrays:
    """One tree. ``value`` holds class probabilities (classification) or means (regression)."""

    feature: npt.NDArray[np.int32]
    threshold: npt.NDArray[np.float64]
    threshold_bin: npt.NDArray[np.int16]
    missing_left: npt.NDArray[np.bool_]
    left: npt.NDArray[np.int32]
    right: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    impurity: npt.NDArray[np.float64]
    n_node_samples: npt.NDArray[np.int64]
    weighted_n_node_samples: npt.NDArray[np.float64]
    improvement: npt.NDArray[np.float64]
    cat_index: npt.NDArray[np.int32]
    cat_left: npt.NDArray[np.bool_]

    @property
    def node_count(self) -> int:
        return int(self.feature.size)

    @property
    def n_leaves(self) -> int:
        return int(np.count_nonzero(self.feature < 0))

    @property
    def max_depth(self) -> int:
        depth = np.zeros(self.node_count, dtype=np.int64)
        for i in range(self.node_count):  # level order: parents come first
            if self.feature[i] >= 0:
                depth[self.left[i]] = depth[self.right[i]] = depth[i] + 1
        return int(depth.max(initial=0))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by field name (for saving and for the wire)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], *, validate: bool = True) -> TreeArrays:
        """A tree from its arrays, checked unless ``validate`` is False.

        Only trees fitted by this library's own pool processes skip the check: whatever
        crosses a wire or comes from a file is validated.
        """
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"tree arrays lack {missing}")
        tree = cls(**{n: np.asarray(arrays[n]) for n in names})
        if validate:
            tree.validate()
        return tree

    def validate(self) -> None:
        """Check shapes and that child links form a tree, so that a damaged model fails loudly."""
        n = self.node_count
        if n == 0:
            raise ValueError("a tree needs at least one node")
        for name in ("threshold", "threshold_bin", "missing_left", "left", "right", "impurity",
                     "n_node_samples", "weighted_n_node_samples", "improvement", "cat_index"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"tree array {name!r} has shape {getattr(self, name).shape}, "
                                 f"expected ({n},)")
        if self.value.ndim != 2 or self.value.shape[0] != n:
            raise ValueError(f"tree array 'value' has shape {self.value.shape}, expected ({n}, k)")
        split = self.feature >= 0
        kids = np.concatenate([self.left[split], self.right[split]])
        if kids.size and (kids.min() <= 0 or kids.max() >= n):
            raise ValueError("tree child index out of range")
        if np.unique(kids).size != kids.size or kids.size != n - 1:
            raise ValueError("tree child links do not form a tree")
        parents = np.flatnonzero(split)
        if np.any(self.left[split] <= parents) or np.any(self.right[split] <= parents):
            raise ValueError("tree children must come after their parent")
        if np.any(self.right[split] != self.left[split] + 1):
            # The prediction table stores one link a node and finds the right child next.
            raise ValueError("a split's right child must be the node after its left child")
        cats = self.cat_index[split & (self.cat_index >= 0)]
        if cats.size and cats.max() >= self.cat_left.shape[0]:
            raise ValueError("tree categorical split index out of range")
