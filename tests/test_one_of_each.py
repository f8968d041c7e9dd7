"""Helpers written once: the warm-start warning, JSON type names, integer and TLS checks."""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import pytest

from aioforest.ensemble import RandomForestRegressor
from aioforest.wire import json_type


@pytest.mark.parametrize(
    ("value", "name"),
    [(None, "null"), (True, "boolean"), (3, "integer"), (1.5, "number"), ("s", "string"),
     ([1], "array"), ({"a": 1}, "object"), (b"x", "bytes")],
)
def test_json_type_names(value: object, name: str) -> None:
    assert json_type(value) == name


def _warm_forest() -> tuple[RandomForestRegressor, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = X[:, 0]
    forest = RandomForestRegressor(n_estimators=2, warm_start=True, random_state=0).fit(X, y)
    return forest, X, y


def test_the_warm_start_warning_names_the_callers_line_in_fit_and_fit_async() -> None:
    forest, X, y = _warm_forest()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forest.fit(X, y)

        async def fit_async() -> None:
            async for _ in forest.iter_fit_async(X, y):
                pass

        asyncio.run(fit_async())
    assert [str(w.message) for w in caught] == [
        "warm_start fit without a larger n_estimators fits no new tree"
    ] * 2
    assert caught[0].filename == __file__
