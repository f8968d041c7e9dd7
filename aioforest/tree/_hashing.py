"""Counter-based random numbers: the same (key, counter) gives the same draw everywhere.

Feature draws at a node derive from (tree key, node id, draw round, feature) through
SplitMix64, so a tree is the same whether it grows alone or batched with others, in any
process, in any order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["mix64", "tree_key"]

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


def tree_key(seed: int, index: int) -> int:
    """The 64-bit key of tree ``index`` of a forest seeded with ``seed``."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, index, 0x7EED]).generate_state(
        1, np.uint64
    )
    return int(state[0])
