"""Trees stay bit-identical across refactors, and old model files keep predicting.

The fingerprints in ``tests/data/tree_fingerprints.json`` were made by aioforest 0.3.0
(growth rules of format 2: per-row Poisson bootstrap); the model files in
``tests/data/models/`` by aioforest 0.2.0 (format 1). Refitting the same cases must give
the same trees bit for bit, and the old files must load and predict exactly as they did.
"""

from __future__ import annotations

import json

import pytest
from fingerprint_cases import (
    FINGERPRINTS,
    SAVED_MODELS,
    case_names,
    fingerprint_of,
    predictions_fingerprint,
    saved_model_inputs,
)

import aioforest
from aioforest.persistence import load_bytes, save_bytes
from aioforest.tree import GROWTH_VERSION

EXPECTED: dict[str, str] = json.loads(FINGERPRINTS.read_text())


def test_every_case_has_a_stored_fingerprint() -> None:
    assert sorted(case_names()) == sorted(k for k in EXPECTED if not k.startswith("saved:"))


@pytest.mark.parametrize("name", case_names())
def test_trees_are_bit_identical_to_the_stored_fingerprints(name: str) -> None:
    assert fingerprint_of(name) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(saved_model_inputs()))
def test_models_saved_by_0_2_load_and_predict_the_same(name: str) -> None:
    _, X = saved_model_inputs()[name]
    model = aioforest.load(SAVED_MODELS / f"{name}.aiof")
    assert predictions_fingerprint(model, X) == EXPECTED[f"saved:{name}"]


def test_a_model_of_format_1_predicts_but_refuses_warm_start() -> None:
    # Its trees came from the old bootstrap; new trees would not belong to one forest.
    _, X = saved_model_inputs()["classifier-0.2.0"]
    model = aioforest.load(SAVED_MODELS / "classifier-0.2.0.aiof")
    model.set_params(warm_start=True, n_estimators=len(model.trees_) + 2)
    y = model.predict(X)
    with pytest.raises(ValueError, match=r"format 1 .*refit it from scratch"):
        model.fit(X, y)
    resaved = load_bytes(save_bytes(model))
    assert resaved._growth_version_ == 1  # re-saving does not launder the old trees
    model.set_params(warm_start=False)
    assert model.fit(X, y)._growth_version_ == GROWTH_VERSION  # a refit is new
