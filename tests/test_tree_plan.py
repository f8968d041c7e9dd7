"""The one ForestPlan codec that files, checkpoints and the wire share."""

from __future__ import annotations

import orjson
import pytest

from aioforest.tree._plan import ForestPlan

PLAN = ForestPlan("gini", 3, 10**9, 2, 1, 0.0, 0.0, 2, True, 100, None, (0.5, 2.0), 2**70 + 3)


def test_a_plan_survives_json_with_a_seed_beyond_64_bits() -> None:
    data = orjson.loads(orjson.dumps(PLAN.to_json()))
    assert data["seed"] == str(2**70 + 3)
    assert ForestPlan.from_json(data) == PLAN


def test_integer_seeds_of_older_model_files_are_read() -> None:
    assert ForestPlan.from_json(PLAN.to_json() | {"seed": 7}).seed == 7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_depth": 0}, "plan.max_depth: must be an integer >= 1, got 0"),
        ({"n_classes": True}, "plan.n_classes: must be an integer >= 0"),
        ({"criterion": "gain"}, "plan.criterion: must be one of"),
        ({"min_impurity_decrease": float("nan")}, "plan.min_impurity_decrease: must be a finite"),
        ({"seed": "12ab"}, "plan.seed: must be a decimal string"),
        ({"class_weight": [1, "x"]}, "plan.class_weight: must be null or an array of numbers"),
    ],
)
def test_a_bad_field_is_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ForestPlan.from_json(PLAN.to_json() | change)


def test_missing_and_unknown_keys_are_listed() -> None:
    data = PLAN.to_json()
    del data["bootstrap"]
    data["extra"] = 1
    with pytest.raises(ValueError, match=r"missing \['bootstrap'\], unexpected \['extra'\]"):
        ForestPlan.from_json(data)
    with pytest.raises(ValueError, match="plan: must be an object, got list"):
        ForestPlan.from_json([])
