"""The bootstrap as a counter-based draw: each row's in-bag count needs no global draw.

Tree ``i``'s count for the row with global id ``r`` is a Poisson draw (Spark's
``BaggedPoint`` uses the same distribution) of mean ``n_draws / n_samples``, from a uniform
number that is a hash of (tree key, r). So a row's count is the same whether the rows sit
in one array, in 37 files or on 7 workers, and out-of-bag rows are the same everywhere.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ._hashing import mix64

__all__ = ["MAX_TOTAL_SLACK", "poisson_counts", "row_keys", "total_weight_bound"]

U64 = npt.NDArray[np.uint64]
_ROW_SALT = np.uint64(0x243F6A8885A308D3)
_TREE_SALT = np.uint64(0x13198A2E03707344)
#: A tree's total in-bag count stays below mean + this many standard deviations (+64)
#: except with probability far below 1e-12 (used only to pick the scoring precision).
MAX_TOTAL_SLACK = 10.0


def row_keys(row_ids: npt.ArrayLike) -> U64:
    """The hash of each global row id: compute once per fit, reuse for every tree."""
    ids = np.asarray(row_ids, dtype=np.int64).astype(np.uint64)
    return mix64(ids ^ _ROW_SALT)


def _poisson_cdf(mean: float) -> npt.NDArray[np.float64]:
    """P(X <= k) for k = 0, 1, ...; the last entry is 1 so every uniform falls inside."""
    p = math.exp(-mean)
    cdf = [p]
    k = 0
    while cdf[-1] < 1.0 - 2.0**-53 and k < 10_000:
        k += 1
        p *= mean / k
        cdf.append(cdf[-1] + p)
    cdf[-1] = 1.0
    return np.array(cdf, dtype=np.float64)


def poisson_counts(tree_key: int, keys: U64, mean: float) -> npt.NDArray[np.int64]:
    """Each row's in-bag count for the tree with key ``tree_key`` (``keys``: row_keys)."""
    if not mean > 0:
        raise ValueError(f"the mean in-bag count must be > 0, got {mean!r}")
    salt = mix64(np.array([tree_key & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) ^ _TREE_SALT)[0]
    bits = mix64(keys ^ salt) >> np.uint64(11)
    uniform = bits.astype(np.float64) * 2.0**-53
    counts = np.searchsorted(_poisson_cdf(mean), uniform, side="right")
    return counts.astype(np.int64, copy=False)


def total_weight_bound(mean_total: float) -> float:
    """A bound on a tree's total in-bag count (Poisson of mean ``mean_total``), that holds
    except with negligible probability: it only picks the precision of split scores."""
    return mean_total + MAX_TOTAL_SLACK * math.sqrt(mean_total) + 64.0
