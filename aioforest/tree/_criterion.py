"""Split criteria, evaluated on histogram statistics of many candidate splits at once.

Statistics are float64 arrays with one row per candidate (or node) and one column per
channel: the weight of each class for classification, ``(W, S, Q)`` = (sum of weights, of
weight*y, of weight*y^2) for regression.

``proxy`` is a score to maximise over the candidates of one node; ``node_term`` turns it into
the weighted impurity decrease ``W_T*imp_T - W_L*imp_L - W_R*imp_R`` (scikit-learn's
definition, before dividing by the root weight), which is what ``min_impurity_decrease`` and
feature importances use.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["CRITERIA", "Criterion", "chansum", "impurity", "node_term", "proxy"]

Criterion = Literal["gini", "entropy", "squared_error"]
CRITERIA: tuple[str, ...] = ("gini", "entropy", "squared_error")

F64 = npt.NDArray[np.float64]


def _xlog2x(v: F64) -> F64:
    out = np.zeros_like(v)
    pos = v > 0
    np.log2(v, out=out, where=pos)
    out *= v
    return out


def chansum(a: F64) -> F64:
    """Sum over channels (axis 0), always in channel order.

    ``a.sum(axis=0)`` picks its summation order from the array's shape and layout (pairwise
    when the channels are contiguous, as with one candidate), so a node's score would depend
    on how many other nodes shared its pass; with non-integer terms that changes last bits.
    """
    acc: F64 = a[0].copy()
    for c in range(1, a.shape[0]):
        acc += a[c]
    return acc


def _sumsq(a: F64) -> F64:
    """Sum over channels (axis 0) of squares, without a temporary of a's size per channel."""
    acc: F64 = a[0] * a[0]
    for c in range(1, a.shape[0]):
        acc += a[c] * a[c]
    return acc


def proxy(criterion: str, left: F64, right: F64) -> F64:
    """Score of each split (larger is better).

    ``left``/``right`` are channel-major: shape (n_channels, n_candidates), so every channel
    is one contiguous row.
    """
    if criterion == "squared_error":
        return np.asarray(
            left[1] * left[1] / left[0] + right[1] * right[1] / right[0], dtype=np.float64
        )
    wl = chansum(left)
    wr = chansum(right)
    if criterion == "gini":
        # in place: the candidates of a level are many, and so would be the temporaries
        score: F64 = _sumsq(left)
        score /= wl
        del wl
        term = _sumsq(right)
        term /= wr
        score += term
        return score
    # entropy: -(W_L*H_L + W_R*H_R) with W*H = W log W - sum_c w_c log w_c
    return np.asarray(
        chansum(_xlog2x(left)) - _xlog2x(wl) + chansum(_xlog2x(right)) - _xlog2x(wr),
        dtype=np.float64,
    )


def node_term(criterion: str, total: F64) -> F64:
    """What to subtract from ``proxy`` to get the weighted impurity decrease.

    ``total`` is channel-major, shape (n_channels, n_nodes).
    """
    if criterion == "squared_error":
        return np.asarray(total[1] * total[1] / total[0], dtype=np.float64)
    w = chansum(total)
    if criterion == "gini":
        return np.asarray(_sumsq(total) / w, dtype=np.float64)
    return np.asarray(chansum(_xlog2x(total)) - _xlog2x(w), dtype=np.float64)


def impurity(criterion: str, total: F64) -> F64:
    """Impurity of each node (gini index, entropy in bits, or variance); channel-major."""
    if criterion == "squared_error":
        w, s, q = total[0], total[1], total[2]
        mean = s / w
        return np.asarray(np.maximum(q / w - mean * mean, 0.0), dtype=np.float64)
    w = chansum(total)
    if criterion == "gini":
        return np.asarray(1.0 - _sumsq(total) / (w * w), dtype=np.float64)
    return np.asarray(np.log2(w) - chansum(_xlog2x(total)) / w, dtype=np.float64)
