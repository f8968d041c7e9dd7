"""Counter-based random numbers: the same (key, counter) gives the same draw everywhere.

Feature draws at a node derive from (tree key, node id, draw round, feature) through
SplitMix64, so a tree is the same whether it grows alone or batched with others, in any
process, in any order.
"""

from __future__ import annotations

import numpy as np

from .._hashing import mix64

__all__ = ["mix64", "tree_key"]


def tree_key(seed: int, index: int) -> int:
    """The 64-bit key of tree ``index`` of a forest seeded with ``seed``."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, index, 0x7EED]).generate_state(
        1, np.uint64
    )
    return int(state[0])
