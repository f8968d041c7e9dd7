"""export_text: scikit-learn's text layout, with categorical splits rendered as sets."""

from __future__ import annotations

import re

import numpy as np
import pytest

from aioforest import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    export_text,
)
from aioforest import datasets as bundled


def test_numeric_splits_show_feature_names_thresholds_and_classes() -> None:
    iris = bundled.load_iris()
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(iris)
    text = export_text(tree)
    lines = text.splitlines()
    assert text.endswith("\n")
    # Root: one "<=" line and one ">" line for the same feature and threshold.
    name = iris.feature_names[int(tree.tree_.feature[0])]
    thr = f"{tree.tree_.threshold[0]:.2f}"
    assert lines[0] == f"|--- {name} <= {thr}"
    assert f"|--- {name} >  {thr}" in lines
    leaves = [line for line in lines if "class:" in line]
    assert len(leaves) == tree.get_n_leaves()
    shown = {line.split("class: ")[1] for line in leaves}
    assert shown <= set(iris.classes)
    assert "Iris-setosa" in shown
    # Every split feature name appears (names come from the CSV header).
    for f in {int(f) for f in tree.tree_.feature if f >= 0}:
        assert iris.feature_names[f] in text


def test_categorical_splits_render_as_sets() -> None:
    tennis = bundled.load_tennis()
    tree = DecisionTreeClassifier(criterion="entropy", random_state=0).fit(tennis)
    text = export_text(tree)
    first = text.splitlines()[0]
    assert first in ("|--- outlook in {overcast}", "|--- outlook in {rainy, sunny}")
    assert "|--- outlook in {overcast}" in text
    assert "|--- outlook in {rainy, sunny}" in text
    assert "class: yes" in text and "class: no" in text
    assert "<=" not in text  # tennis has no numeric feature
    for line in text.splitlines():
        assert re.fullmatch(r"(\|   )*\|--- (\w+ in \{[\w, ]+\}|class: (yes|no))", line), line


def test_custom_names_depth_limit_and_weights() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    assert tree.get_depth() > 1
    text = export_text(
        tree, feature_names=["left_x", "right_x"], class_names=["neg", "pos"], max_depth=1,
        show_weights=True,
    )
    assert "feature_0" not in text and ("left_x" in text or "right_x" in text)
    assert "truncated branch of depth 1" in text
    default = export_text(tree)
    assert "x0" in default and "x1" in default  # Dataset.from_arrays' default names
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    weighted = export_text(stump, show_weights=True, decimals=1)
    counts = [
        [float(v) for v in m.split(", ")]
        for m in re.findall(r"\(weights: \[([^\]]*)\]\)", weighted)
    ]
    assert len(counts) == 2
    assert sum(sum(c) for c in counts) == 120  # every training row is in one leaf
    with pytest.raises(ValueError, match="feature_names"):
        export_text(tree, feature_names=["only_one"])


def test_regression_leaves_show_values_and_forest_members_export() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 1))
    reg = DecisionTreeRegressor(max_depth=1, random_state=0).fit(X, X[:, 0] * 2)
    text = export_text(reg)
    assert text.count("value: [") == 2
    forest = RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0, n_jobs=1)
    forest.fit(X, (X[:, 0] > 0).astype(np.int64))
    member = export_text(forest.estimators_[0])
    assert member.startswith("|--- ")


def test_export_text_rejects_unfitted_and_foreign_objects() -> None:
    with pytest.raises(TypeError):
        export_text(DecisionTreeClassifier())
    with pytest.raises(TypeError):
        export_text(object())
