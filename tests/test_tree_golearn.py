"""GoLearn's ID3 and C4.5 examples, on the bundled data, with their known answers."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from aioforest import DecisionTreeClassifier
from aioforest import datasets as bundled


def _entropy(labels: npt.NDArray[np.object_]) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def test_tennis_entropy_tree_splits_on_outlook_overcast_first() -> None:
    tennis = bundled.load_tennis()
    assert tennis.feature_names == ["outlook", "temp", "humidity", "windy"]
    tree = DecisionTreeClassifier(criterion="entropy", random_state=0).fit(tennis)
    t = tree.tree_
    assert t.feature[0] == tennis.feature_names.index("outlook")
    outlook = tennis.features[0]
    assert t.cat_index[0] >= 0, "outlook is categorical: the root split must be a category set"
    left = {c for c, m in zip(outlook.categories, t.cat_left[t.cat_index[0]], strict=False) if m}
    right = set(outlook.categories) - left
    assert {frozenset(left), frozenset(right)} == {
        frozenset({"overcast"}), frozenset({"rainy", "sunny"})
    }
    # Information gain of "overcast against the rest", in bits: H(9 yes, 5 no) - 10/14 * 1.
    root_entropy = -(9 / 14) * math.log2(9 / 14) - (5 / 14) * math.log2(5 / 14)
    expected_gain = root_entropy - 10 / 14 * 1.0
    assert round(expected_gain, 3) == 0.226
    assert math.isclose(t.impurity[0], root_entropy, rel_tol=1e-12)
    gain = t.improvement[0] / t.weighted_n_node_samples[0]
    assert math.isclose(gain, expected_gain, rel_tol=1e-9), gain
    # The overcast side is pure "yes"; the other side is an even 5/5 split.
    overcast_child = t.left[0] if left == {"overcast"} else t.right[0]
    other_child = t.right[0] if left == {"overcast"} else t.left[0]
    assert t.feature[overcast_child] == -1
    assert t.n_node_samples[overcast_child] == 4
    assert list(t.value[overcast_child]) == [0.0, 1.0]  # classes_ == ["no", "yes"]
    assert t.n_node_samples[other_child] == 10
    assert math.isclose(t.impurity[other_child], 1.0, rel_tol=1e-12)
    assert list(tree.classes_) == ["no", "yes"]


def test_tennis_entropy_tree_fits_the_data_perfectly() -> None:
    tennis = bundled.load_tennis()
    tree = DecisionTreeClassifier(criterion="entropy", random_state=0).fit(tennis)
    assert tree.score(tennis.X, tennis.y) == 1.0
    assert np.array_equal(tree.predict(tennis.X), np.asarray(tennis.y))
    # Fitted from X and y separately (object array of strings), the tree is the same.
    again = DecisionTreeClassifier(criterion="entropy", random_state=0).fit(
        np.asarray(tennis.X), np.asarray(tennis.y)
    )
    assert again.score(tennis.X, tennis.y) == 1.0
    assert np.array_equal(again.tree_.feature, tree.tree_.feature)


def test_c45_numeric_stump_on_attribute2_splits_at_82_5() -> None:
    c45 = bundled.load_c45_numeric()
    j = c45.feature_names.index("Attribute2")
    assert c45.features[j].kind == "numeric"
    x = np.asarray(c45.X[:, [j]], dtype=np.float64)
    y = np.asarray(c45.y)
    stump = DecisionTreeClassifier(criterion="entropy", max_depth=1, random_state=0).fit(x, y)
    t = stump.tree_
    assert t.node_count == 3
    assert t.feature[0] == 0
    assert t.threshold[0] == 82.5  # midway between 80 and 85
    assert t.n_node_samples[t.left[0]] == int((x[:, 0] <= 82.5).sum()) == 9
    # Brute force: 82.5 is the midpoint with the largest information gain.
    values = np.unique(x[:, 0])
    mids = (values[:-1] + values[1:]) / 2
    root = _entropy(y)
    gains = []
    for m in mids:
        go_left = x[:, 0] <= m
        gains.append(
            root
            - go_left.mean() * _entropy(y[go_left])
            - (~go_left).mean() * _entropy(y[~go_left])
        )
    assert mids[int(np.argmax(gains))] == 82.5
    assert math.isclose(
        t.improvement[0] / t.weighted_n_node_samples[0], max(gains), rel_tol=1e-9
    )


def test_c45_numeric_full_data_tree_fits_perfectly() -> None:
    c45 = bundled.load_c45_numeric()
    tree = DecisionTreeClassifier(criterion="entropy", random_state=0).fit(c45)
    assert tree.score(c45.X, c45.y) == 1.0
