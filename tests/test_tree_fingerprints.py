"""Trees and model files from before the engine refactor stay bit-identical.

The fingerprints in ``tests/data/tree_fingerprints.json`` and the model files in
``tests/data/models/`` were made by aioforest 0.2.0 before one level of growth was cut into
histogram, split-choice and routing stages. Refitting the same cases must give the same
trees bit for bit, and the old files must load and predict exactly as they did.
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

EXPECTED: dict[str, str] = json.loads(FINGERPRINTS.read_text())


def test_every_case_has_a_stored_fingerprint() -> None:
    assert sorted(case_names()) == sorted(k for k in EXPECTED if not k.startswith("saved:"))


@pytest.mark.parametrize("name", case_names())
def test_trees_are_bit_identical_to_before_the_refactor(name: str) -> None:
    assert fingerprint_of(name) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(saved_model_inputs()))
def test_models_saved_before_the_refactor_load_and_predict_the_same(name: str) -> None:
    _, X = saved_model_inputs()[name]
    model = aioforest.load(SAVED_MODELS / f"{name}.aiof")
    assert predictions_fingerprint(model, X) == EXPECTED[f"saved:{name}"]
