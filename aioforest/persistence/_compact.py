"""The compact tree encoding of model files (format 3): store what cannot be rebuilt.

A forest's trees are concatenated. Most per-node arrays follow from a few others:

* **child links**: nodes are in level order and each split's children are the next two
  free ids, so the k-th split of a tree has children ``2k + 1`` and ``2k + 2``;
* **thresholds**: the upper edge of the split's bin (:func:`~aioforest.tree.split_thresholds`);
* **sample counts and weights** of a split: the sums of its children's (exact integers);
* **a classifier's values**: its class weights over their sum, the weights being integer
  counts summed up from the leaves.

So the file holds the split mask, each split's feature and bin as the smallest integers
that fit, the leaves' counts, and the floats nothing gives back (regression values,
impurities, improvements). Each rule is checked when saving: an array the rule does not
rebuild bit for bit (class weights, sample weights, trees spliced by other code) is stored
whole, so a loaded model is always the saved one, and old ``TreeArrays`` layouts need no
special case.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..data import Bins
from ..tree import TreeArrays, class_probabilities, split_thresholds
from ._container import FormatError

__all__ = ["ENCODING", "decode_trees", "encode_trees"]

ENCODING = "compact-1"
Arrays = dict[str, np.ndarray[Any, Any]]
I64 = npt.NDArray[np.int64]
_P = "trees."
_FIELDS = ("feature", "threshold", "threshold_bin", "missing_left", "left", "right", "value",
           "impurity", "n_node_samples", "weighted_n_node_samples", "improvement", "cat_index")
#: The leaf arrays a rule starts from, by the array it rebuilds.
_SEEDS = {"value": "leaf_counts", "n_node_samples": "leaf_n_node_samples",
          "weighted_n_node_samples": "leaf_weighted_n_node_samples"}


def _narrow(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Non-negative integers in the smallest unsigned type that holds them."""
    top = int(values.max(initial=0))
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.uint64)


def _counts_or_floats(values: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """Whole non-negative numbers as small integers; anything else stays float64."""
    if values.size and (values.min() < 0 or (values != np.rint(values)).any()
                        or values.max() >= 2.0**53):
        return values
    return _narrow(values.astype(np.int64))


def _same(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    """Equal bit for bit (NaNs included), with the same dtype and shape."""
    return bool(a.dtype == b.dtype and a.shape == b.shape
                and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


class _Layout:
    """Where each tree's nodes are, and its split ranks (all forest-wide, vectorized)."""

    def __init__(self, counts: I64, is_split: npt.NDArray[np.bool_]) -> None:
        self.counts = counts
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.tree = np.repeat(np.arange(counts.size), counts)
        self.is_split = is_split
        before: I64 = np.cumsum(is_split) - is_split  # splits before each node, forest-wide
        self.split_rank: I64 = before - before[self.starts][self.tree]  # ... within its tree
        self.local = np.arange(is_split.size) - self.starts[self.tree]

    def level_order_children(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        left = np.where(self.is_split, 2 * self.split_rank + 1, -1).astype(np.int32)
        right = np.where(self.is_split, left + 1, -1).astype(np.int32)
        return left, right

    def cat_index(self, cat_split: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32]:
        before: I64 = np.cumsum(cat_split) - cat_split
        rank: I64 = before - before[self.starts][self.tree]
        return np.where(cat_split, rank, -1).astype(np.int32)


Level = tuple[I64, I64, I64]


def _split_levels(layout: _Layout, left: npt.NDArray[Any], right: npt.NDArray[Any]
                  ) -> list[Level]:
    """The splits of each depth (forest-wide ids) with their children's, roots first."""
    split = np.flatnonzero(layout.is_split)
    glob_left = layout.starts[layout.tree[split]] + left[split]
    glob_right = layout.starts[layout.tree[split]] + right[split]
    child_of = np.full(layout.is_split.size, -1, dtype=np.int64)
    child_of[split] = np.arange(split.size)
    frontier = split[layout.local[split] == 0]
    levels = []
    while frontier.size:
        k = child_of[frontier]
        levels.append((frontier, glob_left[k], glob_right[k]))
        kids = np.concatenate([glob_left[k], glob_right[k]])
        frontier = kids[layout.is_split[kids]]
    return levels


def _sum_up(leaf_values: npt.NDArray[Any], levels: list[Level]) -> npt.NDArray[Any]:
    """Every node's sum of its leaves' values (leaves given, splits filled bottom up)."""
    out = leaf_values.copy()
    for parents, lefts, rights in reversed(levels):
        out[parents] = out[lefts] + out[rights]
    return out


def encode_trees(trees: list[TreeArrays], bins: Bins, classifier: bool) -> Arrays:
    """The arrays a model file stores for ``trees`` (see the module docstring)."""
    whole = {name: np.concatenate([getattr(t, name) for t in trees]) for name in _FIELDS}
    counts = np.array([t.node_count for t in trees], dtype=np.int64)
    feature = whole["feature"]
    is_split = feature >= 0
    leaf = ~is_split
    cat = np.concatenate([t.cat_left for t in trees]) if trees else np.zeros((0, 256), bool)
    out: Arrays = {
        _P + "node_counts": counts,
        _P + "split": np.packbits(is_split),
        _P + "split_feature": _narrow(feature[is_split]),
        _P + "split_bin": _narrow(whole["threshold_bin"][is_split].astype(np.int64)),
        _P + "split_missing_left": np.packbits(whole["missing_left"][is_split]),
        _P + "split_improvement": whole["improvement"][is_split],
        _P + "impurity": whole["impurity"],
        _P + "cat_counts": np.array([t.cat_left.shape[0] for t in trees], dtype=np.int64),
        _P + "cat_left_bits": np.packbits(cat.astype(bool), axis=1),
        # The seeds of the rules: the leaves' counts and weights ...
        _P + "leaf_n_node_samples": _counts_or_floats(
            whole["n_node_samples"][leaf].astype(np.float64)),
        _P + "leaf_weighted_n_node_samples": _counts_or_floats(
            whole["weighted_n_node_samples"][leaf]),
    }
    if classifier:  # ... and a classifier's class weights, from values and node weights
        weights = whole["value"] * whole["weighted_n_node_samples"][:, None]
        out[_P + "leaf_counts"] = _counts_or_floats(weights[leaf])
    derived = _derive(out, _Layout(counts, is_split), bins)
    for name, real in whole.items():
        rebuilt = derived.get(name)
        if rebuilt is None or not _same(rebuilt, real):
            out[_P + name] = real
            out.pop(_P + _SEEDS.get(name, ""), None)  # the seed of a rule that failed
    return out


def _derive(stored: Arrays, layout: _Layout, bins: Bins) -> Arrays:
    """Every per-node array the rules rebuild from the ``stored`` ones (a rule whose seed
    is not stored gives nothing: its array is stored whole)."""
    is_split = layout.is_split
    n = is_split.size
    got: Arrays = {}
    if _P + "left" in stored:
        left, right = stored[_P + "left"], stored[_P + "right"]
    else:
        left, right = layout.level_order_children()
    got["left"], got["right"] = left, right
    feature = np.full(n, -1, dtype=np.int32)
    feature[is_split] = stored[_P + "split_feature"]
    got["feature"] = feature
    threshold_bin = np.zeros(n, dtype=np.int16)
    threshold_bin[is_split] = stored[_P + "split_bin"]
    got["threshold_bin"] = threshold_bin
    missing = np.zeros(n, dtype=bool)
    missing[is_split] = np.unpackbits(stored[_P + "split_missing_left"],
                                      count=int(is_split.sum())).astype(bool)
    got["missing_left"] = missing
    improvement = np.zeros(n)
    improvement[is_split] = stored[_P + "split_improvement"]
    got["improvement"] = improvement
    got["threshold"] = split_thresholds(feature, threshold_bin, bins)
    got["cat_index"] = layout.cat_index(is_split & bins.is_categorical[np.maximum(feature, 0)])
    got["impurity"] = stored[_P + "impurity"]
    leaf = ~is_split
    levels = _split_levels(layout, left, right)
    for name, dtype in (("n_node_samples", np.int64), ("weighted_n_node_samples", np.float64)):
        seed = stored.get(_P + _SEEDS[name])
        if seed is not None:
            leaves = np.zeros(n, dtype=dtype)
            leaves[leaf] = seed
            got[name] = _sum_up(leaves, levels)
    counts = stored.get(_P + _SEEDS["value"])
    if counts is not None:
        totals = np.zeros((n, counts.shape[1]))
        totals[leaf] = counts
        with np.errstate(invalid="ignore", divide="ignore"):
            got["value"] = class_probabilities(_sum_up(totals, levels))
    return got


def decode_trees(arrays: Arrays, bins: Bins, classifier: bool) -> list[TreeArrays]:
    """The trees :func:`encode_trees` stored; ``FormatError`` if they are not a forest."""
    try:
        counts = arrays[_P + "node_counts"].astype(np.int64)
        n = int(counts.sum())
        is_split = np.unpackbits(arrays[_P + "split"], count=n).astype(bool)
        cat_counts = arrays[_P + "cat_counts"].astype(np.int64)
        cat = np.unpackbits(arrays[_P + "cat_left_bits"], axis=1, count=256).astype(bool)
    except KeyError as exc:
        raise FormatError(f"the file lacks tree array {exc}") from None
    except ValueError as exc:
        raise FormatError(f"damaged tree arrays: {exc}") from None
    if (counts < 1).any() or (cat_counts < 0).any() or cat.shape[0] != int(cat_counts.sum()):
        raise FormatError("damaged tree sizes or categorical split sets")
    if not classifier and _P + _SEEDS["value"] in arrays:
        raise FormatError("the trees of a regressor hold class counts")
    layout = _Layout(counts, is_split)
    _check_structure(arrays, layout, bins)
    try:
        got = _derive(arrays, layout, bins)
        for name in _FIELDS:
            got[name] = arrays[_P + name] if _P + name in arrays else got[name]
    except KeyError as exc:
        raise FormatError(f"the file lacks tree array {exc}") from None
    except (ValueError, IndexError) as exc:
        raise FormatError(f"damaged tree arrays: {exc}") from None
    for name, col in got.items():
        if col.shape[0] != n:
            raise FormatError(f"tree array {name!r} has {col.shape[0]} rows, expected {n}")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    cat_bounds = np.concatenate([[0], np.cumsum(cat_counts)])
    trees = []
    derived_links = _P + "left" not in arrays
    for t in range(counts.size):
        lo, hi = int(bounds[t]), int(bounds[t + 1])
        parts = {name: col[lo:hi] for name, col in got.items()}
        parts["cat_left"] = cat[int(cat_bounds[t]) : int(cat_bounds[t + 1])]
        try:
            # Derived links form a tree by construction (checked forest-wide above).
            trees.append(TreeArrays.from_arrays(parts, validate=not derived_links))
        except ValueError as exc:
            raise FormatError(f"tree {t} is damaged: {exc}") from None
    return trees


def _check_structure(arrays: Arrays, layout: _Layout, bins: Bins) -> None:
    """What the derivations rely on: whole trees, features and bins that exist."""
    splits = np.add.reduceat(layout.is_split.astype(np.int64), layout.starts)
    if _P + "left" not in arrays:
        bad = np.flatnonzero(np.asarray(splits) * 2 + 1 != layout.counts)
        if bad.size:
            raise FormatError(f"tree {int(bad[0])} is damaged: its split mask is not a tree")
        # The k-th split's children 2k+1, 2k+2 must come after it (so no node is orphaned).
        late = np.flatnonzero(layout.is_split & (2 * layout.split_rank + 1 <= layout.local))
        if late.size:
            raise FormatError(f"tree {int(layout.tree[late[0]])} is damaged: a child "
                              "comes before its parent")
    else:
        _check_links(arrays[_P + "left"], arrays.get(_P + "right"), layout)
    n_split = int(layout.is_split.sum())
    feature = arrays.get(_P + "split_feature", np.zeros(0, np.int64)).astype(np.int64)
    split_bin = arrays.get(_P + "split_bin", np.zeros(0, np.int64)).astype(np.int64)
    if feature.shape != (n_split,) or split_bin.shape != (n_split,):
        raise FormatError(f"split arrays do not hold one entry per split ({n_split})")
    if feature.size and feature.max() >= bins.n_features:
        raise FormatError("a tree splits on a feature that does not exist")
    if split_bin.size and (split_bin > bins.n_bins[feature]).any():
        raise FormatError("a tree splits at a bin its feature does not have")


def _check_links(left: npt.NDArray[Any], right: npt.NDArray[Any] | None, layout: _Layout) -> None:
    """Stored child links: each split's children come after it in its tree, and every node
    but the roots is a child exactly once (so the links form trees, with no cycle)."""
    n = layout.is_split.size
    if right is None or left.shape != (n,) or right.shape != (n,):
        raise FormatError(f"child link arrays do not hold one entry per node ({n})")
    split = layout.is_split
    local, size = layout.local[split], layout.counts[layout.tree[split]]
    kids = []
    for side in (left[split].astype(np.int64), right[split].astype(np.int64)):
        bad = np.flatnonzero((side <= local) | (side >= size))
        if bad.size:
            tree = int(layout.tree[np.flatnonzero(split)[bad[0]]])
            raise FormatError(f"tree {tree} is damaged: a child link points outside the "
                              "nodes after its parent")
        kids.append(layout.starts[layout.tree[split]] + side)
    seen = np.bincount(np.concatenate(kids), minlength=n)
    seen[layout.starts] += 1  # a root is nobody's child: count it as seen once
    if (seen != 1).any():
        tree = int(layout.tree[np.flatnonzero(seen != 1)[0]])
        raise FormatError(f"tree {tree} is damaged: its child links do not form a tree")
