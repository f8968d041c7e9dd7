"""Exact sums of float64 values, so that a sum over rows cut into parts does not depend on
the cut (``oob_score_`` of a regression forest, whose rows may live on many workers).

:func:`exact_sum` returns the sum with no rounding at all, as an integer count of
``2**-SCALE_BITS`` (every finite float64 is a whole number of those). Such sums add up
exactly, in any order, and :func:`to_float` rounds the total once, correctly.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

__all__ = ["SCALE_BITS", "exact_sum", "r2_from_sums", "squared_deviations", "to_float"]

#: The smallest float64 (subnormal) is 2**-1074.
SCALE_BITS = 1074
_LOW_BITS = 26


def exact_sum(values: npt.NDArray[np.float64]) -> int:
    """The exact sum of finite ``values``, in units of ``2**-SCALE_BITS``.

    Each value is ``mantissa * 2**exponent`` with a 53-bit integer mantissa: mantissas are
    summed per exponent in two 26/27-bit halves (float sums of such halves stay exact up
    to 2**26 values per call, which a caller's chunks respect), and only the few distinct
    exponents are combined in Python integers.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if not v.size:
        return 0
    if not np.isfinite(v).all():
        raise ValueError("exact_sum needs finite values")
    total = 0
    for start in range(0, v.size, 1 << 26):
        total += _chunk_sum(v[start : start + (1 << 26)])
    return total


def _chunk_sum(v: npt.NDArray[np.float64]) -> int:
    fraction, exponent = np.frexp(v)  # v = fraction * 2**exponent, |fraction| in [0.5, 1)
    mantissa = np.ldexp(fraction, 53).astype(np.int64)  # |mantissa| < 2**53, exact
    shift = exponent.astype(np.int64) - 53 + SCALE_BITS
    sign = np.sign(mantissa)
    # Subnormals have fewer mantissa bits: their low zero bits move into the exponent.
    below = np.minimum(shift, 0)
    magnitude = np.abs(mantissa) >> -below
    shift -= below
    low = (magnitude & ((1 << _LOW_BITS) - 1)) * sign
    high = (magnitude >> _LOW_BITS) * sign
    shifts, index = np.unique(shift, return_inverse=True)
    low_sums = np.bincount(index, weights=low.astype(np.float64), minlength=shifts.size)
    high_sums = np.bincount(index, weights=high.astype(np.float64), minlength=shifts.size)
    total = 0
    for s, lo, hi in zip(shifts.tolist(), low_sums.tolist(), high_sums.tolist(), strict=True):
        total += ((int(hi) << _LOW_BITS) + int(lo)) << s
    return total


def to_float(total: int, divisor: int = 1) -> float:
    """``total * 2**-SCALE_BITS / divisor``, correctly rounded."""
    return float(Fraction(total, divisor << SCALE_BITS))


def squared_deviations(y: npt.NDArray[np.float64], center: npt.NDArray[np.float64] | float
                       ) -> int:
    """The exact sum of ``(y - center)**2`` (each square rounded alone, as one row's)."""
    d = np.asarray(y, dtype=np.float64) - center
    return exact_sum(d * d)


def r2_from_sums(ss_res: int, ss_tot: int) -> float:
    """R² from exact sums of squared residuals and deviations (scikit-learn's convention
    for a constant target: 1 when predicted perfectly, else 0)."""
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return float(1 - Fraction(ss_res, ss_tot))
