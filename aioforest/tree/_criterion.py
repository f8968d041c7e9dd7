"""Split criteria as objects, evaluated on histogram statistics of many splits at once.

Statistics are **channel-major**: an array of shape ``(n_channels, n)`` whose row ``c`` is
channel ``c`` of every candidate (or node), so each channel is one contiguous row. The
channels are the weight of each class for classification, and ``(W, S, Q)`` = (sum of
weights, of weight*y, of weight*y^2) for regression.

A criterion scores a split with :meth:`Criterion.proxy`, a number to maximise over the
candidate splits of one node; :meth:`Criterion.node_term` turns the best one into the
weighted impurity decrease ``W_T*imp_T - W_L*imp_L - W_R*imp_R`` (scikit-learn's
definition, before dividing by the root weight), which ``min_impurity_decrease`` and
feature importances use.

Sums over channels always run in channel order (:func:`chansum`), never in an order NumPy
picks from the array's layout, so a node's score does not depend on the other nodes that
share its pass.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "CRITERIA",
    "Criterion",
    "Entropy",
    "Gini",
    "SquaredError",
    "chansum",
    "class_probabilities",
    "criterion_for",
]

F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]

CRITERIA: tuple[str, ...] = ("gini", "entropy", "squared_error")


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


def _xlog2x(v: F64) -> F64:
    out = np.zeros_like(v)
    pos = v > 0
    np.log2(v, out=out, where=pos)
    out *= v
    return out


class Criterion:
    """What a split criterion answers; one instance per criterion (see :func:`criterion_for`)."""

    name: ClassVar[str]
    classification: ClassVar[bool]

    def n_channels(self, n_classes: int) -> int:
        """Channels of a node's statistics: one per class, or (W, S, Q)."""
        raise NotImplementedError

    def histogram_channels(self, n_classes: int) -> int:
        """Channels of a histogram cell: those the split scores read (Q is not one)."""
        return self.n_channels(n_classes)

    def weight(self, stats: F64) -> F64:
        """The total weight of each column of channel-major statistics."""
        raise NotImplementedError

    def proxy(self, left: F64, right: F64) -> F64:
        """Score of each split from its two sides (larger is better)."""
        raise NotImplementedError

    def node_term(self, total: F64) -> F64:
        """What to subtract from :meth:`proxy` to get the weighted impurity decrease."""
        raise NotImplementedError

    def impurity(self, total: F64) -> F64:
        """Impurity of each node (gini index, entropy in bits, or variance)."""
        raise NotImplementedError

    def leaf_value(self, total_rows: F64) -> F64:
        """Each node's prediction from its statistics, node-major ``(n_nodes, n_channels)``:
        class probabilities, or the mean as one column."""
        raise NotImplementedError

    def is_pure(self, total_rows: F64, impurity: F64) -> B1:
        """Nodes that cannot be improved by any split (node-major statistics)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def class_probabilities(class_weights: F64) -> F64:
    """Each node's class probabilities from its class weights, node-major: a classifier's
    leaf values (model files rebuild them from the leaves' counts with this rule too)."""
    return np.asarray(class_weights / class_weights.sum(axis=1, keepdims=True),
                      dtype=np.float64)


class _ClassCriterion(Criterion):
    classification = True

    def n_channels(self, n_classes: int) -> int:
        return n_classes

    def weight(self, stats: F64) -> F64:
        return chansum(stats)

    def leaf_value(self, total_rows: F64) -> F64:
        return class_probabilities(total_rows)

    def is_pure(self, total_rows: F64, impurity: F64) -> B1:
        return np.asarray(np.count_nonzero(total_rows, axis=1) <= 1)


class Gini(_ClassCriterion):
    """Gini index; the proxy is ``sum_c L_c^2 / W_L + sum_c R_c^2 / W_R``."""

    name = "gini"

    def proxy(self, left: F64, right: F64) -> F64:
        # in place: the candidates of a level are many, and so would be the temporaries
        score: F64 = _sumsq(left)
        score /= chansum(left)
        term = _sumsq(right)
        term /= chansum(right)
        score += term
        return score

    def node_term(self, total: F64) -> F64:
        return np.asarray(_sumsq(total) / chansum(total), dtype=np.float64)

    def impurity(self, total: F64) -> F64:
        w = chansum(total)
        return np.asarray(1.0 - _sumsq(total) / (w * w), dtype=np.float64)


class Entropy(_ClassCriterion):
    """Shannon entropy in bits (GoLearn's ID3); the proxy is ``-(W_L*H_L + W_R*H_R)``."""

    name = "entropy"

    def proxy(self, left: F64, right: F64) -> F64:
        # W*H = W log W - sum_c w_c log w_c
        wl = chansum(left)
        wr = chansum(right)
        return np.asarray(
            chansum(_xlog2x(left)) - _xlog2x(wl) + chansum(_xlog2x(right)) - _xlog2x(wr),
            dtype=np.float64,
        )

    def node_term(self, total: F64) -> F64:
        w = chansum(total)
        return np.asarray(chansum(_xlog2x(total)) - _xlog2x(w), dtype=np.float64)

    def impurity(self, total: F64) -> F64:
        w = chansum(total)
        return np.asarray(np.log2(w) - chansum(_xlog2x(total)) / w, dtype=np.float64)


class SquaredError(Criterion):
    """Variance reduction; the proxy is ``S_L^2 / W_L + S_R^2 / W_R``."""

    name = "squared_error"
    classification = False

    def n_channels(self, n_classes: int) -> int:
        return 3

    def histogram_channels(self, n_classes: int) -> int:
        return 2  # (W, S): a split's score needs no sum of squares

    def weight(self, stats: F64) -> F64:
        return np.asarray(stats[0])

    def proxy(self, left: F64, right: F64) -> F64:
        return np.asarray(
            left[1] * left[1] / left[0] + right[1] * right[1] / right[0], dtype=np.float64
        )

    def node_term(self, total: F64) -> F64:
        return np.asarray(total[1] * total[1] / total[0], dtype=np.float64)

    def impurity(self, total: F64) -> F64:
        w, s, q = total[0], total[1], total[2]
        mean = s / w
        return np.asarray(np.maximum(q / w - mean * mean, 0.0), dtype=np.float64)

    def leaf_value(self, total_rows: F64) -> F64:
        return np.asarray((total_rows[:, 1] / total_rows[:, 0])[:, None], dtype=np.float64)

    def is_pure(self, total_rows: F64, impurity: F64) -> B1:
        mean = total_rows[:, 1] / total_rows[:, 0]
        return np.asarray(impurity <= np.finfo(np.float64).eps * np.maximum(1.0, mean * mean))


_BY_NAME: dict[str, Criterion] = {c.name: c for c in (Gini(), Entropy(), SquaredError())}


def criterion_for(name: str) -> Criterion:
    """The criterion object called ``name`` (one of :data:`CRITERIA`)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown criterion {name!r}; expected one of {CRITERIA}") from None
