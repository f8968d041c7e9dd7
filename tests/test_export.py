"""Export to treelite: the exported model predicts what the forest predicts on held-out
rows (to float32 precision), with categorical splits, missing values and unseen
categories, and after treelite saves and loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import treelite
import treelite.gtil

from aioforest import DecisionTreeClassifier, RandomForestClassifier, RandomForestRegressor, load
from aioforest.export import encoded_input, to_treelite
from aioforest.persistence import save


def _frame(n: int, seed: int, colours: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.integers(0, 5, size=n).astype(float),  # few values: exact splits
        "colour": rng.choice(colours, size=n),
        "c": rng.normal(size=n),
    })
    for column in ("a", "colour"):
        X.loc[rng.random(n) < 0.08, column] = None  # missing values on both kinds
    signal = (X["a"].fillna(0.5) + (X["colour"].isin(["red", "blue"])) * 1.2
              + 0.3 * X["b"] + 0.2 * rng.normal(size=n))
    return X, signal.to_numpy()


def _treelite_predict(model: Any, X: pd.DataFrame) -> np.ndarray:
    out = treelite.gtil.predict(to_treelite(model), encoded_input(model, X))
    return np.asarray(out).reshape(len(X), -1)


def _assert_float32_equal(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_allclose(theirs, ours, rtol=2.0**-23, atol=2.0**-24)


COLOURS = ("red", "green", "blue", "grey", "black")


@pytest.mark.parametrize("n_classes", [2, 3])
def test_a_classifier_exports_with_the_same_probabilities(n_classes: int) -> None:
    X, signal = _frame(3000, 0, COLOURS)
    y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1]))
    forest = RandomForestClassifier(n_estimators=15, random_state=3).fit(X[:2000], y[:2000])
    # held out, with a colour the forest never saw (it is treated as missing)
    held_out, _ = _frame(1000, 1, (*COLOURS, "violet"))
    assert (held_out["colour"] == "violet").any()
    proba = forest.predict_proba(held_out)
    exported = _treelite_predict(forest, held_out)
    assert exported.shape == proba.shape == (1000, n_classes)
    _assert_float32_equal(proba, exported)
    assert np.array_equal(forest.classes_[exported.argmax(axis=1)], forest.predict(held_out))


def test_a_regressor_and_a_single_tree_export_too() -> None:
    X, signal = _frame(3000, 2, COLOURS)
    held_out, _ = _frame(800, 3, COLOURS)
    forest = RandomForestRegressor(n_estimators=10, random_state=0, max_features=0.7)
    forest.fit(X[:2000], signal[:2000])
    _assert_float32_equal(forest.predict(held_out)[:, None], _treelite_predict(forest, held_out))
    tree = DecisionTreeClassifier(random_state=0).fit(X, signal > 1.0)
    _assert_float32_equal(tree.predict_proba(held_out), _treelite_predict(tree, held_out))


def test_a_loaded_model_exports_and_treelite_files_round_trip(tmp_path: Path) -> None:
    X, signal = _frame(2000, 4, COLOURS)
    forest = RandomForestClassifier(n_estimators=8, random_state=1).fit(X, signal > 1.0)
    save(forest, tmp_path / "model.aiof")
    model = to_treelite(load(tmp_path / "model.aiof"))
    model.serialize(str(tmp_path / "model.tl"))
    again = treelite.Model.deserialize(str(tmp_path / "model.tl"))
    held_out, _ = _frame(500, 5, COLOURS)
    out = np.asarray(treelite.gtil.predict(again, encoded_input(forest, held_out)))
    _assert_float32_equal(forest.predict_proba(held_out), out.reshape(500, -1))


def test_an_unfitted_model_is_refused() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        to_treelite(RandomForestClassifier())
    with pytest.raises(ValueError, match="not fitted"):
        encoded_input(RandomForestClassifier(), [[1.0]])
