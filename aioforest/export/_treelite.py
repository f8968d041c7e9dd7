"""Export to treelite through its model builder (``treelite.model_builder``)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import numpy.typing as npt

from ..data import encode_features
from ..tree import TreeArrays

__all__ = ["encoded_input", "to_treelite"]


def encoded_input(model: Any, X: object) -> npt.NDArray[np.float64]:
    """``X`` as the exported model reads it (see the package docstring)."""
    features = getattr(model, "features_", None)
    if features is None:
        raise ValueError(f"{type(model).__name__} is not fitted")
    return np.asarray(encode_features(X, features), dtype=np.float64)


def to_treelite(model: Any) -> Any:
    """A fitted forest or tree as a ``treelite.Model`` that predicts what it predicts.

    Classification models output the class probabilities (the mean over trees of the
    leaves' class frequencies), regression models the mean of the leaves' values, both
    on :func:`encoded_input` rows. Thresholds and leaves stay float64, so only the order
    in which treelite sums the trees can change a result (in the last bits).
    """
    trees: list[TreeArrays] | None = getattr(model, "trees_", None)
    if not trees:
        raise ValueError(f"{type(model).__name__} is not fitted: there is nothing to export")
    try:
        builder_module = importlib.import_module("treelite.model_builder")
    except ImportError:
        raise ImportError("exporting to treelite needs treelite: pip install "
                          "'aioforest[treelite]'") from None
    classes = getattr(model, "classes_", None)
    n_outputs = int(trees[0].value.shape[1])
    is_categorical = [f.is_categorical for f in model.features_]
    metadata = builder_module.Metadata(
        num_feature=int(model.n_features_in_),
        task_type="kMultiClf" if classes is not None else "kRegressor",
        average_tree_output=True, num_target=1, num_class=[n_outputs],
        leaf_vector_shape=(1, n_outputs),
    )
    annotation = builder_module.TreeAnnotation(
        num_tree=len(trees), target_id=[0] * len(trees),
        class_id=[-1 if classes is not None else 0] * len(trees),
    )
    builder = builder_module.ModelBuilder(
        threshold_type="float64", leaf_output_type="float64", metadata=metadata,
        tree_annotation=annotation,
        postprocessor=builder_module.PostProcessorFunc(name="identity"),
        base_scores=[0.0] * n_outputs,
    )
    for tree in trees:
        _add_tree(builder, tree, is_categorical, vector_leaves=classes is not None)
    return builder.commit()


def _add_tree(builder: Any, tree: TreeArrays, is_categorical: list[bool], *,
              vector_leaves: bool) -> None:
    builder.start_tree()
    feature, left, right = tree.feature.tolist(), tree.left.tolist(), tree.right.tolist()
    threshold, missing_left = tree.threshold.tolist(), tree.missing_left.tolist()
    for node, f in enumerate(feature):
        builder.start_node(node)
        if f < 0:
            value = tree.value[node]
            builder.leaf(value.tolist() if vector_leaves else float(value[0]))
        elif is_categorical[f]:
            # Ours: a category in the left set goes left; missing and unseen categories go
            # where missing_left says. Treelite: a category in the list goes one way,
            # anything else (an unseen category too) the other, missing the default way.
            # So list the side that missing values do not take.
            goes_left = tree.cat_left[tree.cat_index[node]]
            listed = np.flatnonzero(~goes_left if missing_left[node] else goes_left)
            builder.categorical_test(
                f, default_left=missing_left[node], category_list=listed.tolist(),
                category_list_right_child=missing_left[node],
                left_child_key=left[node], right_child_key=right[node])
        else:
            builder.numerical_test(
                f, threshold[node], default_left=missing_left[node], opname="<=",
                left_child_key=left[node], right_child_key=right[node])
        builder.end_node()
    builder.end_tree()
