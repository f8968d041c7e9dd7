"""SplitMix64's finaliser: the one counter-based hash behind every draw that must not
depend on where or in which order it is made (feature draws, bootstrap counts, the binning
sample)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["mix64"]

U64 = npt.NDArray[np.uint64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(x: U64) -> U64:
    """SplitMix64's finaliser, elementwise; uint64 arithmetic wraps modulo 2**64."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)
