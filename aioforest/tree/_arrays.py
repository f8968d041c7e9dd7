"""The arrays of one fitted tree (scikit-learn's ``tree_`` idea, in plain NumPy).

Nodes are numbered in level order; node 0 is the root. A split node sends a sample left when
its feature value is ``<= threshold`` (numeric) or its category is in the node's left set
(categorical); a missing value goes left when ``missing_left`` is set. Leaves have
``feature == -1``.

A tree given its forest's bins keeps only what cannot be rebuilt: ``right`` is always
``left + 1``, ``threshold`` is the upper edge of ``threshold_bin``, ``cat_index`` numbers the
categorical splits, and ``n_node_samples`` and (without sample weights) the bootstrap counts
of ``weighted_n_node_samples`` fit in int32. Those are rebuilt on each access (take one once,
not per node): 24 bytes a node less, about a third of a fitted regression forest.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ..data import Bins

__all__ = ["TreeArrays", "split_thresholds"]

_I32_MAX = np.iinfo(np.int32).max


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


def _same(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    """Same dtype, shape and bits (so NaN and -0.0 count too)."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


def _as_int32(values: npt.NDArray[Any]) -> npt.NDArray[np.int32] | None:
    """``values`` as int32 when that loses nothing (counts, bootstrap weights); else None."""
    if not values.size or not np.isfinite(values).all():
        return None
    if values.min() < 0 or values.max() > _I32_MAX:
        return None
    narrow = values.astype(np.int32)
    return narrow if _same(narrow.astype(values.dtype), values) else None


class TreeArrays:
    """One tree. ``value`` holds class probabilities (classification) or means (regression).

    Build it with every array of :attr:`FIELDS`, or with ``bins`` and the arrays of
    :attr:`STORED` only (the rebuildable ones then come from ``bins``). :meth:`compact`
    turns the first kind into the second.
    """

    #: Every array of a tree, in the order of the wire and of model files.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "feature", "threshold", "threshold_bin", "missing_left", "left", "right", "value",
        "impurity", "n_node_samples", "weighted_n_node_samples", "improvement", "cat_index",
        "cat_left",
    )
    #: What a tree given its bins needs; the other fields are rebuilt from these.
    STORED: ClassVar[tuple[str, ...]] = (
        "feature", "threshold_bin", "missing_left", "left", "value", "impurity",
        "n_node_samples", "improvement", "cat_left",
    )
    _REBUILT: ClassVar[tuple[str, ...]] = ("threshold", "right", "cat_index")

    __slots__ = (
        "_bins",
        "_cat_index",
        "_n_node_samples",
        "_right",
        "_threshold",
        "_weighted",
        "cat_left",
        "feature",
        "improvement",
        "impurity",
        "left",
        "missing_left",
        "threshold_bin",
        "value",
    )

    def __init__(
        self,
        *,
        feature: npt.NDArray[np.int32],
        threshold_bin: npt.NDArray[np.int16],
        missing_left: npt.NDArray[np.bool_],
        left: npt.NDArray[np.int32],
        value: npt.NDArray[np.float64],
        impurity: npt.NDArray[np.float64],
        n_node_samples: npt.NDArray[np.integer],
        improvement: npt.NDArray[np.float64],
        cat_left: npt.NDArray[np.bool_],
        weighted_n_node_samples: npt.NDArray[np.float64 | np.int32] | None = None,
        threshold: npt.NDArray[np.float64] | None = None,
        right: npt.NDArray[np.int32] | None = None,
        cat_index: npt.NDArray[np.int32] | None = None,
        bins: Bins | None = None,
    ) -> None:
        if bins is None and (threshold is None or right is None or cat_index is None):
            raise ValueError("a tree without its bins needs threshold, right and cat_index")
        self.feature = feature
        self.threshold_bin = threshold_bin
        self.missing_left = missing_left
        self.left = left
        self.value = value
        self.impurity = impurity
        self.improvement = improvement
        self.cat_left = cat_left
        self._n_node_samples = n_node_samples
        self._weighted = weighted_n_node_samples
        self._threshold = threshold
        self._right = right
        self._cat_index = cat_index
        self._bins = bins

    # --- the rebuilt fields ---------------------------------------------------------------
    @property
    def right(self) -> npt.NDArray[np.int32]:
        if self._right is not None:
            return self._right
        return np.where(self.feature >= 0, self.left + 1, -1).astype(np.int32)

    @property
    def threshold(self) -> npt.NDArray[np.float64]:
        if self._threshold is not None:
            return self._threshold
        assert self._bins is not None  # the constructor's rule
        return split_thresholds(self.feature, self.threshold_bin, self._bins)

    @property
    def cat_index(self) -> npt.NDArray[np.int32]:
        if self._cat_index is not None:
            return self._cat_index
        assert self._bins is not None
        is_cat = (self.feature >= 0) & self._bins.is_categorical[np.maximum(self.feature, 0)]
        index = np.full(self.feature.shape, -1, dtype=np.int32)
        index[is_cat] = np.arange(int(np.count_nonzero(is_cat)), dtype=np.int32)
        return index

    @property
    def n_node_samples(self) -> npt.NDArray[np.int64]:
        return self._n_node_samples.astype(np.int64, copy=False)

    @property
    def weighted_n_node_samples(self) -> npt.NDArray[np.float64]:
        weighted = self._n_node_samples if self._weighted is None else self._weighted
        return weighted.astype(np.float64, copy=False)

    def compact(self, bins: Bins) -> None:
        """Drop every array that ``bins`` and the stored ones rebuild to the same values.

        An array that disagrees with its rebuilt form (a tree from another version, say)
        is kept as given, so what the tree reports never changes.
        """
        self._bins = bins
        for name in self._REBUILT:
            stored = getattr(self, "_" + name)
            if stored is None:
                continue
            setattr(self, "_" + name, None)
            if not _same(stored, getattr(self, name)):
                setattr(self, "_" + name, stored)
        if self._n_node_samples.dtype != np.int32:
            narrow = _as_int32(self._n_node_samples)
            self._n_node_samples = self._n_node_samples if narrow is None else narrow
        weighted = self._weighted
        if weighted is not None and weighted.dtype == np.float64:
            if _same(weighted, self._n_node_samples.astype(np.float64)):
                self._weighted = None  # no weights, no bootstrap: the counts themselves
            else:
                narrow = _as_int32(weighted)  # bootstrap counts without weights
                self._weighted = weighted if narrow is None else narrow

    # --- shape ------------------------------------------------------------------------------
    @property
    def node_count(self) -> int:
        return int(self.feature.size)

    @property
    def n_leaves(self) -> int:
        return int(np.count_nonzero(self.feature < 0))

    @property
    def max_depth(self) -> int:
        depth = np.zeros(self.node_count, dtype=np.int64)
        left, right = self.left, self.right
        for i in range(self.node_count):  # level order: parents come first
            if self.feature[i] >= 0:
                depth[left[i]] = depth[right[i]] = depth[i] + 1
        return int(depth.max(initial=0))

    # --- arrays in and out ---------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by field name, rebuilt ones included (for saving and for the wire)."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def stored_arrays(self) -> dict[str, np.ndarray]:
        """What this tree keeps: with the bins, :meth:`from_arrays` rebuilds the tree from
        it (how a pool process sends a tree back)."""
        out = {name: getattr(self, name) for name in self.STORED}
        out["n_node_samples"] = self._n_node_samples
        kept = {"weighted_n_node_samples": self._weighted, "threshold": self._threshold,
                "right": self._right, "cat_index": self._cat_index}
        out.update({name: array for name, array in kept.items() if array is not None})
        return out

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], *, validate: bool = True, bins: Bins | None = None
    ) -> TreeArrays:
        """A tree from its arrays, checked unless ``validate`` is False.

        With ``bins``, the arrays of :attr:`STORED` suffice. Only trees fitted by this
        library's own pool processes skip the check: whatever crosses a wire or comes from
        a file is validated.
        """
        names = cls.STORED if bins is not None else cls.FIELDS
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"tree arrays lack {missing}")
        given = {n: np.asarray(arrays[n]) for n in cls.FIELDS if n in arrays}
        tree = cls(**given, bins=bins)
        if validate:
            tree.validate()
        return tree

    def validate(self) -> None:
        """Check shapes and that child links form a tree, so that a damaged model fails loudly."""
        n = self.node_count
        if n == 0:
            raise ValueError("a tree needs at least one node")
        right = self.right
        for name, array in (("threshold_bin", self.threshold_bin),
                            ("missing_left", self.missing_left), ("left", self.left),
                            ("right", right), ("impurity", self.impurity),
                            ("n_node_samples", self._n_node_samples),
                            ("improvement", self.improvement),
                            ("threshold", self._threshold), ("cat_index", self._cat_index),
                            ("weighted_n_node_samples", self._weighted)):
            if array is not None and array.shape != (n,):
                raise ValueError(f"tree array {name!r} has shape {array.shape}, expected ({n},)")
        if self.value.ndim != 2 or self.value.shape[0] != n:
            raise ValueError(f"tree array 'value' has shape {self.value.shape}, expected ({n}, k)")
        split = self.feature >= 0
        kids = np.concatenate([self.left[split], right[split]])
        if kids.size and (kids.min() <= 0 or kids.max() >= n):
            raise ValueError("tree child index out of range")
        if np.unique(kids).size != kids.size or kids.size != n - 1:
            raise ValueError("tree child links do not form a tree")
        parents = np.flatnonzero(split)
        if np.any(self.left[split] <= parents) or np.any(right[split] <= parents):
            raise ValueError("tree children must come after their parent")
        if np.any(right[split] != self.left[split] + 1):
            # The prediction table stores one link a node and finds the right child next.
            raise ValueError("a split's right child must be the node after its left child")
        cat_index = self.cat_index
        cats = cat_index[split & (cat_index >= 0)]
        if cats.size and cats.max() >= self.cat_left.shape[0]:
            raise ValueError("tree categorical split index out of range")
