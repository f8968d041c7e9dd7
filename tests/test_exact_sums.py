"""Exact float sums: the same total for any cut of the values, correctly rounded."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from aioforest._exact import SCALE_BITS, exact_sum, r2_from_sums, squared_deviations, to_float


def _awkward(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, n)
    v[:5] = [5e-324, -5e-324, 1.7e308, -1.7e308, 0.0]  # subnormals, the largest, zero
    return rng.permutation(v)


def test_the_sum_is_exact() -> None:
    v = _awkward(2000, 0)
    expected = sum((Fraction(x) for x in v.tolist()), Fraction(0))
    assert Fraction(exact_sum(v), 1 << SCALE_BITS) == expected
    assert to_float(exact_sum(v)) == math.fsum(v.tolist())  # rounded once, correctly


@pytest.mark.parametrize("cuts", [[1], [3, 1000, 997], [0, 1, 1999]])
def test_parts_add_up_to_the_whole_in_any_cut(cuts: list[int]) -> None:
    v = _awkward(2000, 1)
    bounds = np.cumsum([0, *cuts])
    bounds[-1] = v.size
    parts = [exact_sum(v[a:b]) for a, b in itertools.pairwise(bounds)]
    assert sum(reversed(parts)) == exact_sum(v)


def test_r2_from_exact_sums_matches_the_definition() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=500) * 3 + 1
    pred = y + rng.normal(size=500) * 0.5
    mean = to_float(exact_sum(y), y.size)
    r2 = r2_from_sums(squared_deviations(y, pred), squared_deviations(y, mean))
    assert r2 == pytest.approx(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2),
                               rel=1e-12)
    assert r2_from_sums(0, 0) == 1.0 and r2_from_sums(5, 0) == 0.0


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        exact_sum(np.array([1.0, np.inf]))
