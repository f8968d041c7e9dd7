"""A text rendering of a fitted tree, in scikit-learn's ``export_text`` layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._arrays import TreeArrays

__all__ = ["export_text"]


def export_text(
    tree: Any,
    *,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    decimals: int = 2,
    max_depth: int = 10,
    show_weights: bool = False,
) -> str:
    """Render a fitted tree estimator (or one of a forest's ``estimators_``) as text.

    Numeric splits read ``feature <= threshold``; categorical ones ``feature in {...}``.
    Branches deeper than ``max_depth`` are summarised as ``truncated``.
    """
    arrays: TreeArrays | None = getattr(tree, "tree_", None)
    if not isinstance(arrays, TreeArrays):
        raise TypeError(f"export_text needs a fitted tree estimator, got {type(tree).__name__}")
    features = getattr(tree, "features_", None)
    if feature_names is None:
        if features is not None:
            feature_names = [f.name for f in features]
        else:
            feature_names = [f"feature_{i}" for i in range(getattr(tree, "n_features_in_", 0))]
    if len(feature_names) != tree.n_features_in_:
        raise ValueError(
            f"feature_names has {len(feature_names)} names for {tree.n_features_in_} features"
        )
    classes = getattr(tree, "classes_", None)
    if class_names is None and classes is not None:
        class_names = [str(c) for c in classes]
    lines: list[str] = []
    # Rebuilt on each access (see TreeArrays): taken once, not per node.
    threshold, right, cat_index = arrays.threshold, arrays.right, arrays.cat_index
    weighted = arrays.weighted_n_node_samples

    def leaf_text(node: int) -> str:
        value = arrays.value[node]
        if class_names is not None:
            text = f"class: {class_names[int(np.argmax(value))]}"
            if show_weights:
                w = value * weighted[node]
                text += " (weights: [" + ", ".join(f"{v:.{decimals}f}" for v in w) + "])"
            return text
        return f"value: [{value[0]:.{decimals}f}]"

    def categories(node: int, left: bool) -> str:
        f = int(arrays.feature[node])
        cats = features[f].categories if features is not None else ()
        mask = arrays.cat_left[cat_index[node]][: len(cats)]
        chosen = [c for c, m in zip(cats, mask, strict=True) if bool(m) == left]
        return "{" + ", ".join(chosen) + "}"

    def walk(node: int, depth: int) -> None:
        indent = "|   " * depth + "|--- "
        if arrays.feature[node] < 0:
            lines.append(indent + leaf_text(node))
            return
        if depth >= max_depth:
            lines.append(indent + "truncated branch of depth " + str(depth))
            return
        name = feature_names[int(arrays.feature[node])]
        if cat_index[node] >= 0:
            left_text = f"{name} in {categories(node, True)}"
            right_text = f"{name} in {categories(node, False)}"
        else:
            thr = float(threshold[node])
            left_text = f"{name} <= {thr:.{decimals}f}"
            right_text = f"{name} >  {thr:.{decimals}f}"
        lines.append(indent + left_text)
        walk(int(arrays.left[node]), depth + 1)
        lines.append(indent + right_text)
        walk(int(right[node]), depth + 1)

    walk(0, 0)
    return "\n".join(lines) + "\n"
